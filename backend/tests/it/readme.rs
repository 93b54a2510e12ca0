//! The README tells the truth about the binary: its flag table lists exactly the flags
//! `huddle --help` has, each with its environment variable.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// Every `--flag` (and `HUDDLE_*` variable) named in a text.
fn names(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        let tail = &rest[at..];
        let end = tail[prefix.len()..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .map_or(tail.len(), |i| i + prefix.len());
        // `|---|` in a table is not a flag: a name starts with a letter.
        if tail[prefix.len()..].starts_with(|c: char| c.is_ascii_alphabetic()) {
            found.insert(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    found
}

#[test]
fn the_flag_table_lists_exactly_the_flags_of_huddle_help() {
    let help = Command::new(env!("CARGO_BIN_EXE_huddle"))
        .arg("--help")
        .output()
        .expect("huddle --help runs");
    assert!(help.status.success());
    let help = String::from_utf8(help.stdout).unwrap();
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    // The table: the rows after its `| flag | env | default | meaning |` header.
    let rows: Vec<&str> = readme
        .lines()
        .skip_while(|l| !l.starts_with("| flag | env |"))
        .take_while(|l| l.starts_with('|'))
        .collect();
    assert!(rows.len() > 2, "the README has no flag table");
    let table = rows.join("\n");
    // A flag is documented by a row of its own (its name in the first two columns), not
    // by being mentioned in another flag's meaning.
    let named: String = rows
        .iter()
        .map(|row| row.split('|').skip(1).take(2).collect::<Vec<_>>().join("|"))
        .collect::<Vec<_>>()
        .join("\n");
    for (prefix, what) in [("--", "flag"), ("HUDDLE_", "environment variable")] {
        let mut in_help = names(&help, prefix);
        // clap's own flags, not the server's.
        in_help.remove("--help");
        in_help.remove("--version");
        assert!(in_help.len() > 10, "too few {what}s found: {in_help:?}");
        let undocumented: Vec<_> = in_help
            .difference(&names(&named, prefix))
            .cloned()
            .collect();
        // Anywhere in the table, meanings included, a name must be one huddle has.
        let unknown: Vec<_> = names(&table, prefix)
            .difference(&in_help)
            .cloned()
            .collect();
        assert!(
            undocumented.is_empty() && unknown.is_empty(),
            "the README's flag table is out of date: {what}s without a row: \
             {undocumented:?}; {what}s huddle does not have: {unknown:?}"
        );
    }
}
