//! The parser and the importer never panic, whatever the input, and always explain a rejection.

use dnatsim::rules::{import_api_json, parse_str, to_toml};
use proptest::prelude::*;

const SEED: &str = include_str!("../pcaps/seed/rules.toml");
const API: &str = include_str!("data/api/DescribeForwardTableEntries.json");
const BWP: &str = include_str!("data/api/DescribeBandwidthPackages.json");

/// Fragments that steer mutations toward the interesting corners of the schema.
const FRAGMENTS: &[&str] = &[
    "\"any\"",
    "0",
    "70000",
    "\"8000/8010\"",
    "\"9/1\"",
    "\"tcp\"",
    "\"Any\"",
    "\"udp\"",
    "-1",
    "1.5",
    "[",
    "]",
    "{",
    "}",
    "\"",
    "\n",
    "=",
    "[[forward_entry]]\n",
    "[gateway]\n",
    "profile = \"permissive\"\n",
    "\"203.0.113.107\"",
    "\"192.168.1.1\"",
    "é",
    "\u{0}",
    "#",
    "extrenal_ip",
    "external_ip.x",
    "1e400",
    "\"999.1.1.1\"",
];

/// Applies `edits` (position, fragment or deletion) to `base`, at char boundaries.
fn mutate(base: &str, edits: &[(usize, usize, bool)]) -> String {
    let mut s = base.to_string();
    for &(pos, frag, delete) in edits {
        let mut at = pos % (s.len() + 1);
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        if delete {
            let mut end = (at + 1 + frag % 16).min(s.len());
            while !s.is_char_boundary(end) {
                end += 1;
            }
            s.replace_range(at..end, "");
        } else {
            s.insert_str(at, FRAGMENTS[frag % FRAGMENTS.len()]);
        }
    }
    s
}

/// A rejection must come with at least one located explanation.
fn check(text: &str) {
    match parse_str(text, "fuzz.toml") {
        Ok(parsed) => {
            // Anything accepted can be written back and read again.
            let again = to_toml(&parsed.rules);
            assert!(parse_str(&again, "again.toml").is_ok(), "{again}");
        }
        Err(e) => {
            assert!(!e.diagnostics().is_empty(), "empty rejection for {text:?}");
            let _ = e.to_string();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        check(&text);
    }

    #[test]
    fn toml_shaped_text_never_panics(text in "(\\[\\[?[a-z_]{1,12}\\]\\]?\n|[a-zA-Z_]{1,14} = (\"[ -~]{0,16}\"|-?[0-9]{1,6}|\\[\"[0-9.]{0,15}\"\\])\n){0,20}") {
        check(&text);
    }

    #[test]
    fn mutated_seed_never_panics(edits in prop::collection::vec((any::<usize>(), any::<usize>(), any::<bool>()), 1..6)) {
        check(&mutate(SEED, &edits));
    }

    #[test]
    fn mutated_api_json_never_panics(edits in prop::collection::vec((any::<usize>(), any::<usize>(), any::<bool>()), 1..6)) {
        let inputs = vec![
            ("f.json".to_string(), mutate(API, &edits)),
            ("b.json".to_string(), BWP.to_string()),
        ];
        if let Err(e) = import_api_json(&inputs) {
            prop_assert!(!e.diagnostics().is_empty());
        }
    }
}

#[test]
fn unmutated_seed_is_accepted() {
    // Guards the property tests above: the base they mutate is valid.
    assert!(parse_str(SEED, "seed.toml").is_ok());
    let inputs = vec![
        ("f.json".to_string(), API.to_string()),
        ("b.json".to_string(), BWP.to_string()),
    ];
    assert!(import_api_json(&inputs).is_ok());
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    for (open, close) in [("[", "]"), ("{a=", "}")] {
        let text = format!("x = {}{}", open.repeat(100_000), close.repeat(100_000));
        let err = parse_str(&text, "deep.toml").err();
        assert!(err.is_some_and(|e| !e.diagnostics().is_empty()));
    }
    let json = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let inputs = vec![("deep.json".to_string(), json)];
    assert!(import_api_json(&inputs).is_err());
}
