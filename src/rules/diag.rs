//! Diagnostics: where a rule was broken, and how to show it (rustc-like).

use std::fmt;
use std::ops::Range;

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The file is rejected.
    Error,
    /// The file is accepted, but something looks unintended.
    Warning,
}

/// The offending source line and the part of it to underline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    /// The whole source line, without its line terminator.
    pub text: String,
    /// 0-based character offset of the underline within `text`.
    pub start: usize,
    /// Underline length in characters (at least 1).
    pub len: usize,
}

/// One problem found in a rules file or an API response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// A short stable name of the rule broken, e.g. `duplicate-external`.
    pub rule: &'static str,
    /// The message, naming the offending value.
    pub message: String,
    /// The file the problem is in.
    pub file: String,
    /// 1-based line; 0 when the source has no lines (JSON input is located by `json_path`).
    pub line: u32,
    /// 1-based column in characters; 0 when unknown.
    pub column: u32,
    /// For JSON input: the path of the offending value, e.g. `ForwardTableEntries.ForwardTableEntry[2].ExternalPort`.
    pub json_path: Option<String>,
    /// The source line with the span to underline, when the source is text with lines.
    pub snippet: Option<Snippet>,
    /// Extra lines shown after the snippet (`= note: ...`).
    pub notes: Vec<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        writeln!(f, "{level}[{}]: {}", self.rule, self.message)?;
        let gutter = if self.line > 0 {
            self.line.to_string().len()
        } else {
            1
        };
        let pad = " ".repeat(gutter);
        match (&self.json_path, self.line) {
            (Some(path), _) => writeln!(f, "{pad}--> {} at {path}", self.file)?,
            (None, 0) => writeln!(f, "{pad}--> {}", self.file)?,
            (None, line) => writeln!(f, "{pad}--> {}:{line}:{}", self.file, self.column)?,
        }
        if let Some(snippet) = &self.snippet {
            writeln!(f, "{pad} |")?;
            writeln!(f, "{} | {}", self.line, snippet.text)?;
            let lead: String = snippet
                .text
                .chars()
                .take(snippet.start)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            writeln!(f, "{pad} | {lead}{}", "^".repeat(snippet.len.max(1)))?;
        }
        for note in &self.notes {
            writeln!(f, "{pad} = note: {note}")?;
        }
        Ok(())
    }
}

/// Why a rules file (or a set of API responses) could not be turned into [`crate::rules::Rules`].
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The file could not be read.
    #[error("cannot read rules file {path}: {source}")]
    Read {
        /// The path as given.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is a packet capture (pcap or pcapng magic number), given where rules were
    /// expected: tcpdump's `-r` reads a capture, dnatsim's reads the rules.
    #[error("{path} is a capture ({format}), not a rules file")]
    Capture {
        /// The path as given.
        path: String,
        /// "pcap" or "pcapng".
        format: &'static str,
    },
    /// The input was read but broke one or more rules; every error found is listed.
    #[error("{}", render_all(file, errors))]
    Invalid {
        /// The file (or the files, comma-separated) the errors are in.
        file: String,
        /// Every error found, in source order.
        errors: Vec<Diagnostic>,
        /// Warnings found along the way, for a caller that wants to show them too.
        warnings: Vec<Diagnostic>,
    },
}

impl RulesError {
    /// The error diagnostics (empty for a read error).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            RulesError::Read { .. } | RulesError::Capture { .. } => &[],
            RulesError::Invalid { errors, .. } => errors,
        }
    }
}

fn render_all(file: &str, errors: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in errors {
        out.push_str(&d.to_string());
        out.push('\n');
    }
    let n = errors.len();
    let noun = if n == 1 { "error" } else { "errors" };
    out.push_str(&format!("{n} {noun} in {file}"));
    out
}

/// Where a value came from, before it is turned into a line:column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Loc {
    /// A byte span in the text source.
    Span(Range<usize>),
    /// A JSON path in a JSON source file.
    Json {
        /// The file the value is in.
        file: String,
        /// The JSON path, e.g. `ForwardTableEntries.ForwardTableEntry[2].ExternalPort`.
        path: String,
    },
    /// Nowhere in particular (the whole file).
    None,
}

/// Turns [`Loc`]s into [`Diagnostic`]s and collects them.
pub(crate) struct Diagnostics<'a> {
    file: &'a str,
    text: &'a str,
    /// Byte offset at which each line starts; line 1 starts at 0.
    line_starts: Vec<usize>,
    pub(crate) errors: Vec<Diagnostic>,
    pub(crate) warnings: Vec<Diagnostic>,
}

impl<'a> Diagnostics<'a> {
    /// A collector for `text` read from `file` (pass "" as text for JSON sources).
    pub(crate) fn new(file: &'a str, text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Diagnostics {
            file,
            text,
            line_starts,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// The 1-based line and column of a byte offset (clamped into the text).
    pub(crate) fn line_col(&self, offset: usize) -> (u32, u32) {
        let offset = offset.min(self.text.len());
        let idx = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = self.line_starts.get(idx).copied().unwrap_or(0);
        let col = self
            .text
            .get(start..offset)
            .map(|s| s.chars().count())
            .unwrap_or(0);
        (to_u32(idx + 1), to_u32(col + 1))
    }

    /// The line of a location, for messages such as "first defined at line 12".
    pub(crate) fn line_of(&self, loc: &Loc) -> String {
        match loc {
            Loc::Span(r) => format!("line {}", self.line_col(r.start).0),
            Loc::Json { file, path } => format!("{file} at {path}"),
            Loc::None => "elsewhere".to_string(),
        }
    }

    fn build(
        &self,
        severity: Severity,
        rule: &'static str,
        loc: &Loc,
        message: String,
        notes: Vec<String>,
    ) -> Diagnostic {
        let mut d = Diagnostic {
            severity,
            rule,
            message,
            file: self.file.to_string(),
            line: 0,
            column: 0,
            json_path: None,
            snippet: None,
            notes,
        };
        match loc {
            Loc::Span(r) => {
                let (line, column) = self.line_col(r.start);
                d.line = line;
                d.column = column;
                d.snippet = self.snippet(r.clone(), line);
            }
            Loc::Json { file, path } => {
                d.file = file.clone();
                d.json_path = Some(path.clone());
            }
            Loc::None => {}
        }
        d
    }

    fn snippet(&self, span: Range<usize>, line: u32) -> Option<Snippet> {
        let idx = usize::try_from(line).ok()?.checked_sub(1)?;
        let start = *self.line_starts.get(idx)?;
        let end = self
            .line_starts
            .get(idx + 1)
            .map(|e| e.saturating_sub(1))
            .unwrap_or(self.text.len());
        let text = self.text.get(start..end)?.trim_end_matches('\r');
        let from = span.start.clamp(start, start + text.len());
        let to = span.end.clamp(from, start + text.len());
        let lead = self.text.get(start..from)?.chars().count();
        let len = self.text.get(from..to)?.chars().count();
        Some(Snippet {
            text: text.to_string(),
            start: lead,
            len: len.max(1),
        })
    }

    /// Records an error.
    pub(crate) fn error(&mut self, rule: &'static str, loc: &Loc, message: impl Into<String>) {
        let d = self.build(Severity::Error, rule, loc, message.into(), Vec::new());
        self.errors.push(d);
    }

    /// Records an error with notes.
    pub(crate) fn error_with(
        &mut self,
        rule: &'static str,
        loc: &Loc,
        message: impl Into<String>,
        notes: Vec<String>,
    ) {
        let d = self.build(Severity::Error, rule, loc, message.into(), notes);
        self.errors.push(d);
    }

    /// Records a warning.
    pub(crate) fn warning(&mut self, rule: &'static str, loc: &Loc, message: impl Into<String>) {
        let d = self.build(Severity::Warning, rule, loc, message.into(), Vec::new());
        self.warnings.push(d);
    }

    /// Sorts the diagnostics by position so the report reads top to bottom.
    pub(crate) fn sort(&mut self) {
        let key = |d: &Diagnostic| (d.file.clone(), d.line, d.column, d.json_path.clone());
        self.errors.sort_by_key(key);
        self.warnings.sort_by_key(key);
    }
}

/// Saturating conversion for line/column numbers of absurdly large inputs.
pub(crate) fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Levenshtein distance, for "did you mean" suggestions on short key names.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The closest candidate to `word`, if close enough to be a plausible typo.
pub(crate) fn did_you_mean<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let lower = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (edit_distance(&lower, &c.to_ascii_lowercase()), *c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance() {
        assert_eq!(edit_distance("extrenal_ip", "external_ip"), 2);
        assert_eq!(
            did_you_mean("extrenal_ip", &["external_ip", "id"]),
            Some("external_ip")
        );
        assert_eq!(did_you_mean("zzzzzz", &["external_ip", "id"]), None);
    }

    #[test]
    fn line_col_and_snippet() {
        let text = "a = 1\nbé = \"x\"\n";
        let mut s = Diagnostics::new("f.toml", text);
        assert_eq!(s.line_col(0), (1, 1));
        let off = text.find('"').unwrap_or(0);
        assert_eq!(s.line_col(off), (2, 6));
        s.error("r", &Loc::Span(off..off + 3), "m");
        let d = &s.errors[0];
        assert_eq!(d.snippet.as_ref().map(|x| (x.start, x.len)), Some((5, 3)));
        assert!(d.to_string().contains("--> f.toml:2:6"));
    }
}
