//! Validation against the JSON Schemas in docs/schemas/ (draft 2020-12),
//! by Python's jsonschema in the project's venv (scripts/validate_json.py):
//! it is already there for cfn-lint, so no new Rust dependency.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

/// Validate each `(schema file, document)`; `Err` lists what is invalid.
pub fn validate(docs: &[(&str, &Value)]) -> Result<(), String> {
    let items: Vec<Value> = docs
        .iter()
        .map(|(schema, instance)| json!({"schema": schema, "instance": instance}))
        .collect();
    let mut child = Command::new(super::python())
        .arg(super::root().join("scripts/validate_json.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run scripts/validate_json.py");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(&items).unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Panic unless every document is valid.
pub fn assert_valid(docs: &[(&str, &Value)]) {
    if let Err(e) = validate(docs) {
        panic!("invalid against docs/schemas/:\n{e}");
    }
}
