//! The configuration reference in docs/operations.md cannot drift from the binary: every
//! option that `tollgate --help` and `tollgate serve --help` show (flag, environment variable,
//! default) is in the table, and everything the table names exists.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
mod support;

use std::collections::BTreeSet;

/// One option as `--help` shows it.
#[derive(Debug)]
struct HelpOption {
    flag: String,
    env: Option<String>,
    default: Option<String>,
}

fn help(args: &[&str]) -> String {
    let out = support::command().args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Splits clap's help into option blocks: a block starts at an option line and runs to the
/// next one.
fn options(text: &str) -> Vec<HelpOption> {
    let mut blocks: Vec<String> = Vec::new();
    for line in text.lines() {
        let t = line.trim_start();
        // Option lines are indented by 2 (`-h, --help`) or 6 (`--name`); descriptions, which
        // may also begin with a flag they mention, by 10.
        let indent = line.len() - t.len();
        if indent <= 6 && t.starts_with('-') {
            blocks.push(String::new());
        }
        if let Some(b) = blocks.last_mut() {
            b.push_str(t);
            b.push(' ');
        }
    }
    blocks
        .iter()
        .filter_map(|b| {
            let flag = b
                .split_whitespace()
                .find(|w| w.starts_with("--"))?
                .trim_end_matches(',')
                .to_owned();
            let between = |open: &str, close: char| {
                b.split(open)
                    .nth(1)
                    .and_then(|rest| rest.split(close).next())
                    .map(str::to_owned)
            };
            Some(HelpOption {
                env: b.split("[env: ").nth(1).map(|rest| {
                    rest.chars()
                        .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                        .collect()
                }),
                default: between("[default: ", ']'),
                flag,
            })
        })
        .filter(|o| o.flag != "--help" && o.flag != "--version")
        .collect()
}

fn words(text: &str, prefix: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .filter(|w| w.starts_with(prefix) && w.len() > prefix.len())
        .map(str::to_owned)
        .collect()
}

/// The rows of the table under `## Configuration`.
fn config_table(doc: &str) -> Vec<String> {
    doc.split("\n## Configuration")
        .nth(1)
        .expect("a `## Configuration` section")
        .split("\n## ")
        .next()
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn configuration_reference_matches_help() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/operations.md"
    ))
    .unwrap();
    let rows = config_table(&doc);
    assert!(rows.len() > 10, "the configuration table has rows");
    let table = rows.join("\n");

    let mut shown = Vec::new();
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["migrate", "--help"],
    ] {
        shown.extend(options(&help(args)));
    }
    let serve_help = help(&["serve", "--help"]);
    assert!(
        shown.iter().any(|o| o.flag == "--cache-ttl"),
        "help parsed: {shown:?}"
    );

    for o in &shown {
        let row = rows
            .iter()
            .find(|r| r.contains(&format!("`{}`", o.flag)))
            .unwrap_or_else(|| panic!("{} is not in the configuration table", o.flag));
        if let Some(env) = &o.env {
            assert!(
                row.contains(&format!("`{env}`")),
                "the row of {} does not name {env}: {row}",
                o.flag
            );
        }
        if let Some(default) = &o.default {
            assert!(
                row.contains(&format!("`{default}`")),
                "the row of {} does not give its default `{default}`: {row}",
                o.flag
            );
        }
    }

    // Nothing in the table that the binary does not have.
    let envs: BTreeSet<String> = shown.iter().filter_map(|o| o.env.clone()).collect();
    for env in words(&table, "TOLLGATE_") {
        assert!(
            envs.contains(&env),
            "{env} is in the docs but not in --help"
        );
    }
    let flags: BTreeSet<String> = shown.iter().map(|o| o.flag.clone()).collect();
    for flag in words(&table, "--") {
        assert!(
            flags.contains(&flag),
            "{flag} is in the docs but not in --help"
        );
    }
    // And every variable the help text mentions anywhere is documented.
    for env in words(&serve_help, "TOLLGATE_") {
        assert!(
            table.contains(&env),
            "{env} (in serve --help) is not in the table"
        );
    }
}
