//! The documentation against the code (issue 23): the configuration table
//! is the settings the code reads, the findings table is `Code::ALL`, the
//! command line's synopsis names every flag, every relative link resolves,
//! and the README stays short enough to read in ten minutes.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Mutex;

use clap::CommandFactory;
use replica_auditor::config::Config;
use replica_auditor::config::table::{SETTINGS, setting};
use replica_auditor::model::Code;
use serde_json::Value;

// The command line's arguments, compiled here from the binary's own source
// (`src/cli/args.rs` is not in the library: clap stays out of the Lambda).
// Its output formats are a value enum whose variants do not matter here.
mod output {
    #[derive(Debug, Clone, Copy, clap::ValueEnum)]
    pub enum Format {
        Table,
    }
}
#[allow(dead_code)]
#[path = "../src/cli/args.rs"]
mod args;

/// The README's budget: a newcomer reads it in ten minutes.
const README_MAX_LINES: usize = 300;

fn read(path: &str) -> String {
    std::fs::read_to_string(support::root().join(path))
        .unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// The rows of the first Markdown table whose header starts with `first`:
/// each row's cells, trimmed.
fn table(text: &str, first: &str) -> Vec<Vec<String>> {
    let cells = |line: &str| -> Vec<String> {
        let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
        // A `|` inside backticks would split a cell; the tables avoid it.
        inner.split('|').map(|c| c.trim().to_string()).collect()
    };
    let mut lines = text
        .lines()
        .skip_while(|l| !l.starts_with('|') || cells(l).first().map(String::as_str) != Some(first));
    let header = lines
        .next()
        .unwrap_or_else(|| panic!("no table headed {first:?}"));
    let width = cells(header).len();
    lines
        .skip(1) // | --- |
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let row = cells(l);
            assert_eq!(row.len(), width, "a row of the {first:?} table: {l}");
            row
        })
        .collect()
}

/// A cell's leading `token`, or `None` when the cell starts with "—".
fn token(cell: &str) -> Option<String> {
    if cell.starts_with('—') {
        return None;
    }
    let rest = cell
        .strip_prefix('`')
        .unwrap_or_else(|| panic!("a cell must start with `token` or —: {cell:?}"));
    Some(rest[..rest.find('`').expect("a closing backtick")].to_string())
}

/// Every environment variable `Config::from_lookup` reads, when every
/// setting is valid (so no early return hides one).
fn variables_the_config_reads() -> BTreeSet<String> {
    let asked = Mutex::new(BTreeSet::new());
    let valid: BTreeMap<&str, &str> = [
        (
            "FINDINGS_TOPIC_ARN",
            "arn:aws:sns:us-west-2:123456789012:findings",
        ),
        ("STATE_TABLE", "replica-auditor-state"),
        (
            "SWEEP_QUEUE_URL",
            "https://sqs.us-west-2.amazonaws.com/123456789012/sweep",
        ),
        ("SECURITY_HUB", "on"),
    ]
    .into();
    Config::from_lookup(|k| {
        asked.lock().unwrap().insert(k.to_string());
        valid.get(k).map(|v| v.to_string())
    })
    .expect("a valid configuration");
    asked.into_inner().unwrap()
}

/// Variables read straight from the process environment in `src/`
/// (`env::var("X")`, `env::var_os("X")`): RUST_LOG, the command line's NO_COLOR.
fn variables_read_directly() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![support::root().join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for call in ["env::var(\"", "env::var_os(\""] {
                for (i, _) in text.match_indices(call) {
                    let rest = &text[i + call.len()..];
                    out.insert(rest[..rest.find('"').unwrap()].to_string());
                }
            }
        }
    }
    out
}

/// The template parameters an expression depends on: its `!Ref`s to
/// parameters, and those of the conditions it names.
fn parameters_in(t: &Value, v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, inner) in m {
                match (k.as_str(), inner) {
                    ("!Ref", Value::String(name)) if t["Parameters"].get(name).is_some() => {
                        out.insert(name.clone());
                    }
                    ("!Condition", Value::String(c)) => parameters_in(t, &t["Conditions"][c], out),
                    ("!If", Value::Array(branches)) => {
                        if let Some(c) = branches[0].as_str() {
                            parameters_in(t, &t["Conditions"][c], out);
                        }
                        for b in &branches[1..] {
                            parameters_in(t, b, out);
                        }
                    }
                    _ => parameters_in(t, inner, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| parameters_in(t, i, out)),
        _ => {}
    }
}

/// `A to B` as two numbers.
fn numeric_range(cell: &str) -> Option<(u64, u64)> {
    let (lo, hi) = cell.split_once(" to ")?;
    let n = |s: &str| s.trim().replace(',', "").parse::<u64>().ok();
    Some((n(lo)?, n(hi)?))
}

/// The backticked values of a cell listing allowed values (`on`, `off`).
fn listed_values(cell: &str) -> Option<Vec<String>> {
    let parts: Vec<&str> = cell.split(", ").collect();
    parts
        .iter()
        .map(|p| {
            p.strip_prefix('`')
                .and_then(|p| p.strip_suffix('`'))
                .map(str::to_string)
        })
        .collect()
}

#[test]
fn the_configuration_table_is_every_setting_the_code_reads() {
    let doc = read("docs/configuration.md");
    let rows = table(&doc, "variable");
    let t = support::template::parsed();

    // The settings' rows are the settings table's, rendered by the code.
    let generated: Vec<String> = SETTINGS.iter().map(|s| s.markdown_row()).collect();
    let written: Vec<&str> = doc
        .lines()
        .filter(|l| {
            SETTINGS
                .iter()
                .any(|s| l.starts_with(&format!("| `{}` |", s.var)))
        })
        .collect();
    assert!(
        written == generated,
        "docs/configuration.md's setting rows are not the settings table's \
         (src/config/table.rs); they should read, in this order:\n{}",
        generated.join("\n")
    );

    // The rows: every variable the code reads, and every template parameter.
    let config_vars = variables_the_config_reads();
    let mut code_vars = config_vars.clone();
    code_vars.extend(variables_read_directly());
    let documented_vars: BTreeSet<String> = rows.iter().filter_map(|r| token(&r[0])).collect();
    assert_eq!(
        documented_vars, code_vars,
        "docs/configuration.md's variables are exactly those the code reads"
    );
    let mut documented_params = BTreeSet::new();
    for r in &rows {
        if let Some(p) = token(&r[1]) {
            assert!(documented_params.insert(p.clone()), "{p} has two rows");
        }
    }
    let params: BTreeSet<String> = t["Parameters"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        documented_params, params,
        "docs/configuration.md's parameters are exactly template.yaml's"
    );

    for r in &rows {
        row_against_the_template(&t, r);
    }
}

/// A row of the configuration table against template.yaml: the parameter
/// is the one wired to the variable, with the same default and range; the
/// flag is the settings table's. (A setting's default and range are what
/// its parser accepts: the table's own tests, src/config/table/tests.rs.)
fn row_against_the_template(t: &Value, r: &[String]) {
    let env = t["Resources"]["AuditorFunction"]["Properties"]["Environment"]["Variables"]
        .as_object()
        .unwrap();
    let (var, param, flag, default, range) =
        (token(&r[0]), token(&r[1]), token(&r[2]), &r[3], &r[4]);
    let what = var.clone().or(param.clone()).unwrap();
    // The parameter is the one the template wires to the variable.
    match &var {
        Some(v) => {
            let wired = env.get(v.as_str()).map(|e| {
                let mut ps = BTreeSet::new();
                parameters_in(t, e, &mut ps);
                ps
            });
            match (&param, wired) {
                (Some(p), Some(ps)) => assert_eq!(
                    ps,
                    BTreeSet::from([p.clone()]),
                    "{v}: template.yaml sets it from these parameters"
                ),
                (Some(p), None) => {
                    panic!("{v}: template.yaml does not set it, yet {p} is named")
                }
                (None, Some(ps)) => assert!(
                    ps.is_empty(),
                    "{v}: the template sets it from {ps:?}, the table says none"
                ),
                (None, None) => {}
            }
        }
        None => assert!(
            param.is_some() && flag.is_none(),
            "a row with no variable is a template parameter's: {r:?}"
        ),
    }
    if var.is_some() && param.is_none() {
        assert!(
            r[1].len() > "— ".len(),
            "{what}: say why there is no parameter"
        );
    }
    // The flag is the one the settings table gives the variable.
    let want_flag = var
        .as_deref()
        .and_then(setting)
        .and_then(|s| s.flag.long())
        .map(|f| format!("--{f}"));
    assert_eq!(flag, want_flag, "{what}: the command line's flag");
    // The default and the range: the template's, and the code's.
    let p = param.as_ref().map(|p| &t["Parameters"][p.as_str()]);
    let default_token = default.starts_with('`').then(|| token(default).unwrap());
    if let (Some(p), Some(d)) = (p, &default_token) {
        let pd = match &p["Default"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        assert_eq!(&pd, d, "{what}: template.yaml's default");
    }
    if let (Some((lo, hi)), Some(p)) = (numeric_range(range), p) {
        assert_eq!(p["MinValue"].as_u64(), Some(lo), "{what}: MinValue");
        assert_eq!(p["MaxValue"].as_u64(), Some(hi), "{what}: MaxValue");
    }
    if let (Some(values), Some(p)) = (listed_values(range), p) {
        {
            let allowed: Vec<String> = p["AllowedValues"]
                .as_array()
                .unwrap_or_else(|| panic!("{what}: AllowedValues"))
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect();
            assert_eq!(allowed, values, "{what}: template.yaml's AllowedValues");
        }
    }
    if var.as_deref() == Some("RUST_LOG") {
        assert_eq!(
            default_token.as_deref(),
            Some(replica_auditor::logging::DEFAULT_FILTER),
            "RUST_LOG's default is logging::DEFAULT_FILTER"
        );
    }
}

#[test]
fn every_flag_with_a_variable_is_the_settings_tables() {
    let cmd = args::Cli::command();
    let mut seen = 0;
    for c in std::iter::once(&cmd).chain(cmd.get_subcommands()) {
        for a in c.get_arguments() {
            if let (Some(var), Some(long)) = (a.get_env(), a.get_long()) {
                let var = var.to_str().unwrap();
                assert_eq!(
                    setting(var).and_then(|s| s.flag.long()),
                    Some(long),
                    "{var}: the settings table's flag"
                );
                seen += 1;
            }
        }
    }
    assert!(seen > 10, "clap's env attributes were read ({seen})");
}

/// The synopsis in docs/cli.md: the first ```text block.
fn synopsis() -> String {
    let doc = read("docs/cli.md");
    let start = doc.find("```text\n").expect("a synopsis") + "```text\n".len();
    doc[start..start + doc[start..].find("```").unwrap()].to_string()
}

#[test]
fn the_command_lines_synopsis_names_every_flag_and_subcommand() {
    let synopsis = synopsis();
    let cmd = args::Cli::command();
    let mut missing = Vec::new();
    for c in std::iter::once(&cmd).chain(cmd.get_subcommands()) {
        if c.get_name() != "replica-auditor" && !synopsis.contains(c.get_name()) {
            missing.push(c.get_name().to_string());
        }
        for a in c.get_arguments() {
            if let Some(long) = a.get_long()
                && !synopsis.contains(&format!("--{long}"))
            {
                missing.push(format!("--{long}"));
            }
            if let Some(short) = a.get_short()
                && !synopsis.contains(&format!("-{short}"))
            {
                missing.push(format!("-{short}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/cli.md's synopsis lacks {missing:?}"
    );
}

#[test]
fn the_findings_table_is_every_code_with_its_severity() {
    let doc = read("docs/findings.md");
    let rows = table(&doc, "code");
    let documented: Vec<(String, String)> = rows
        .iter()
        .map(|r| (token(&r[0]).unwrap(), r[1].clone()))
        .collect();
    let in_code: Vec<(String, String)> = Code::ALL
        .iter()
        .map(|c| (c.as_str().to_string(), c.severity().as_str().to_string()))
        .collect();
    let missing: Vec<String> = in_code
        .iter()
        .filter(|c| !documented.contains(c))
        .map(|(c, s)| format!("| `{c}` | {s} | ... |"))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/findings.md lacks these rows (Code::ALL, with the severity the code gives):\n{}",
        missing.join("\n")
    );
    assert_eq!(
        documented, in_code,
        "docs/findings.md lists Code::ALL, in its order, each with its severity, and nothing else"
    );
    // The report schema names the same codes.
    let schema: Value = serde_json::from_str(&read("docs/schemas/report.schema.json")).unwrap();
    let mut enumerated: Vec<String> = schema["$defs"]["code"]["enum"]
        .as_array()
        .expect("report.schema.json: $defs.code.enum")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let mut codes: Vec<String> = in_code.into_iter().map(|(c, _)| c).collect();
    enumerated.sort();
    codes.sort();
    assert_eq!(
        enumerated, codes,
        "report.schema.json's codes are Code::ALL"
    );
}

#[test]
fn the_readme_stays_short() {
    let lines = read("README.md").lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines, more than {README_MAX_LINES}: move reference to docs/"
    );
}

/// GitHub's anchor for a heading: lower case, punctuation dropped but `-`
/// and `_`, spaces to `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// A Markdown file's anchors (its headings', numbered as GitHub does for
/// repeats), outside code blocks.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let Some(h) = line.strip_prefix('#') else {
            continue;
        };
        let h = h.trim_start_matches('#');
        if !h.starts_with(' ') {
            continue;
        }
        let s = slug(&h.replace('`', ""));
        let n = seen.entry(s.clone()).or_insert(0);
        out.insert(if *n == 0 {
            s.clone()
        } else {
            format!("{s}-{n}")
        });
        *n += 1;
    }
    out
}

/// The Markdown files the link check reads: the README, docs/, and every
/// other README of the repository's own folders.
fn markdown_files() -> Vec<PathBuf> {
    let root = support::root();
    let mut out = vec![root.join("README.md")];
    let mut stack = vec![root.join("docs"), root.join("bench")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "md") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The targets of a Markdown text's inline links `[text](target)` and
/// reference definitions `[id]: target`, outside code blocks and spans.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Drop code spans: `[a](b)` inside backticks is not a link.
        let mut plain = String::new();
        for (i, part) in line.split('`').enumerate() {
            if i % 2 == 0 {
                plain.push_str(part);
            }
        }
        for (i, _) in plain.match_indices("](") {
            let rest = &plain[i + 2..];
            if let Some(end) = rest.find(')') {
                out.push(rest[..end].trim().to_string());
            }
        }
        let t = plain.trim_start();
        if t.starts_with('[')
            && let Some(i) = t.find("]: ")
        {
            out.push(t[i + 3..].trim().to_string());
        }
    }
    out
}

#[test]
fn every_relative_link_resolves() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let dir = file.parent().unwrap();
        for link in links(&text) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (path, anchor) = match link.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (link.as_str(), None),
            };
            let target = if path.is_empty() {
                file.clone()
            } else {
                dir.join(path)
            };
            let name = file
                .strip_prefix(support::root())
                .unwrap()
                .display()
                .to_string();
            if !target.exists() {
                broken.push(format!("{name}: {link}: no such file"));
                continue;
            }
            if let Some(a) = anchor {
                let is_md = target.extension().is_some_and(|x| x == "md");
                if is_md && !anchors(&std::fs::read_to_string(&target).unwrap()).contains(a) {
                    broken.push(format!("{name}: {link}: no heading with that anchor"));
                }
            }
        }
    }
    assert!(checked > 50, "the links were read ({checked})");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_link_check_finds_a_broken_link() {
    let text = "[a](docs/nowhere.md) `[b](nowhere)`\n```\n[c](nowhere)\n```\n[d]: docs/x.md#y";
    assert_eq!(links(text), vec!["docs/nowhere.md", "docs/x.md#y"]);
    assert_eq!(
        anchors("# The org sweep\n## What `member.yaml` creates\n# The org sweep"),
        BTreeSet::from([
            "the-org-sweep".to_string(),
            "the-org-sweep-1".to_string(),
            "what-memberyaml-creates".to_string()
        ])
    );
}

/// The ```text (or ```json) block of a page that follows `after`.
fn block_after(page: &str, after: &str, fence: &str) -> String {
    let text = read(page);
    let from = text
        .find(after)
        .unwrap_or_else(|| panic!("{page}: {after:?}"));
    let start = from + text[from..].find(fence).unwrap() + fence.len();
    text[start..start + text[start..].find("```").unwrap()].to_string()
}

#[test]
fn the_alert_samples_are_what_the_code_makes() {
    // The email: the fixture tests/notifications.rs makes with the code.
    assert_eq!(
        block_after(
            "docs/alerts.md",
            "tests/fixtures/notifications/email.txt",
            "```text\n"
        ),
        read("tests/fixtures/notifications/email.txt"),
        "docs/alerts.md's email sample is tests/fixtures/notifications/email.txt"
    );
    // The chat notification, abridged: the fixture's fields, the same
    // values where they are not cut short with "...".
    let sample: Value = serde_json::from_str(&block_after(
        "docs/alerts.md",
        "tests/fixtures/notifications/chat.json",
        "```json\n",
    ))
    .expect("the chat sample parses");
    let fixture: Value =
        serde_json::from_str(&read("tests/fixtures/notifications/chat.json")).unwrap();
    fn same(sample: &Value, fixture: &Value, path: &str) {
        match (sample, fixture) {
            (Value::Object(s), Value::Object(f)) => {
                assert_eq!(
                    s.keys().collect::<BTreeSet<_>>(),
                    f.keys().collect::<BTreeSet<_>>(),
                    "chat sample at {path}"
                );
                for (k, v) in s {
                    same(v, &f[k], &format!("{path}.{k}"));
                }
            }
            (Value::Array(s), Value::Array(f)) => {
                assert_eq!(s.len(), f.len(), "chat sample at {path}");
                for (i, v) in s.iter().enumerate() {
                    same(v, &f[i], &format!("{path}[{i}]"));
                }
            }
            (Value::String(s), Value::String(f)) if s.contains("...") => {
                for part in s.split("...").filter(|p| !p.is_empty()) {
                    assert!(
                        f.contains(part),
                        "chat sample at {path}: {part:?} not in {f:?}"
                    );
                }
            }
            _ => assert_eq!(sample, fixture, "chat sample at {path}"),
        }
    }
    same(&sample, &fixture, "$");
}
