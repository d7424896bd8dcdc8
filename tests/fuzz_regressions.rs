//! Replays every input kept in fuzz/regressions/ (crashes found by
//! `make fuzz`, and inputs the property tests once failed on) through the
//! parsers: each must give a verdict or a named error, never a panic.

use std::path::Path;

use replica_auditor::event::{self, EventError};
use replica_auditor::policy::{self, PolicyIssue, Trust};

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect()
}

#[test]
fn event_parser_regressions() {
    let all = inputs("event_parser");
    assert!(!all.is_empty());
    for (name, data) in all {
        if let Err(e) = event::parse_bytes(&data) {
            assert!(!e.to_string().is_empty(), "{name}");
        }
    }
    let list = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/regressions/event_parser/detail-is-a-list.json"),
    )
    .unwrap();
    assert!(
        matches!(event::parse_bytes(&list), Err(EventError::Shape { path, .. }) if path == "detail")
    );
}

#[test]
fn key_policy_regressions() {
    let trust = Trust {
        own_account: Some("111122223333"),
        ..Trust::default()
    };
    let all = inputs("key_policy");
    assert!(!all.is_empty());
    for (name, data) in &all {
        if let Ok(doc) = std::str::from_utf8(data)
            && let Err(e) = policy::analyse(doc, &trust)
        {
            assert!(!e.to_string().is_empty(), "{name}");
        }
    }
    let (_, doc) = all
        .iter()
        .find(|(n, _)| n.ends_with("not-action-deny-vs-wildcard-allow.json"))
        .unwrap();
    assert_eq!(
        policy::analyse(std::str::from_utf8(doc).unwrap(), &trust).unwrap(),
        vec![PolicyIssue::Public {
            sid: Some("Open".into())
        }]
    );
}
