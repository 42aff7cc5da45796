//! The documentation points only at what the repository holds, and its command synopses list
//! what `--help` lists.

mod common;

use common::dnatsim;

fn read(path: &str) -> String {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

#[test]
fn docs_point_to_no_file_outside_the_repository() {
    // The design notes, the tutorial and the corpus live in a `shared/` directory next to the
    // repository, which a reader of the repository does not have.
    for doc in [
        "README.md",
        "pcaps/seed/README.md",
        "pcaps/seed/rules.toml",
        "fuzz/README.md",
        "tests/kernel/README.md",
    ] {
        let text = read(doc);
        let bad: Vec<&str> = text.lines().filter(|l| l.contains("shared/")).collect();
        assert!(
            bad.is_empty(),
            "{doc} points outside the repository: {bad:#?}"
        );
    }
}

/// The options `dnatsim COMMAND... --help` lists, as (short, long), without --help and
/// --version.
fn options(command: &[&str]) -> Vec<(Option<String>, String)> {
    let mut args = command.to_vec();
    args.push("--help");
    let help = String::from_utf8_lossy(&dnatsim(&args).stdout).into_owned();
    let mut options: Vec<(Option<String>, String)> = help
        .lines()
        .map(str::trim_start)
        // "-o, --output <OUT>" or "--seed <SEED>", not a value's "- udp: ... (see --size)".
        .filter(|l| l.starts_with('-') && l.chars().nth(1).is_some_and(|c| c != ' '))
        .filter_map(|l| {
            let words: Vec<&str> = l.split([',', ' ']).filter(|w| !w.is_empty()).collect();
            let long = words.iter().find(|w| w.starts_with("--"))?.to_string();
            let short = words
                .first()
                .filter(|w| !w.starts_with("--"))
                .map(|w| w.to_string());
            Some((short, long))
        })
        .filter(|(_, o)| o != "--help" && o != "--version")
        .collect();
    options.dedup();
    options
}

/// Every command `dnatsim [COMMAND] --help` lists.
fn commands(parent: &[&str]) -> Vec<String> {
    let mut args = parent.to_vec();
    args.push("--help");
    let help = String::from_utf8_lossy(&dnatsim(&args).stdout).into_owned();
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        // A wrapped description continues on a line indented further.
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn readme_synopses_of_every_command_list_every_option() {
    let readme = read("README.md");
    let top = commands(&[]);
    assert!(top.len() >= 8, "{top:?}");
    // The global option is described once, above the table.
    assert!(readme.contains("`--color auto|always|never`"));
    for command in &top {
        let command = command.as_str();
        let row = readme
            .lines()
            .find(|l| {
                l.starts_with(&format!("| `{command} ")) || l.starts_with(&format!("| `{command}`"))
            })
            .unwrap_or_else(|| panic!("no `{command}` row in the README's command table"));
        // A command with commands of its own (api) lists theirs in the same row.
        let subs = commands(&[command]);
        let mut listed: Vec<_> = options(&[command]);
        for sub in &subs {
            assert!(
                row.contains(&format!("`{command} {sub}")),
                "the `{command}` row lacks {sub}"
            );
            listed.extend(options(&[command, sub]));
        }
        let listed: Vec<_> = listed
            .into_iter()
            .filter(|(_, long)| long != "--color")
            .collect();
        let names = |o: &str| [format!("{o} "), format!("{o}]")];
        for (short, long) in listed {
            let found = names(&long)
                .into_iter()
                .chain(short.iter().flat_map(|s| names(s)))
                .any(|n| row.contains(&n));
            assert!(found, "the README's `{command}` row lacks {long}: {row}");
        }
    }
}
