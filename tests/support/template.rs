//! The CloudFormation templates (template.yaml, member.yaml) as JSON,
//! CloudFormation's short tags (`!Ref`, `!Sub`, `!If`, ...) kept as
//! `{"!Tag": value}` objects.

use serde_json::{Value, json};

/// template.yaml's text.
pub fn text() -> String {
    file_text("template.yaml")
}

/// template.yaml as JSON.
pub fn parsed() -> Value {
    parsed_file("template.yaml")
}

/// A file of the repository, as text.
pub fn file_text(file: &str) -> String {
    std::fs::read_to_string(super::root().join(file)).unwrap()
}

/// A template of the repository as JSON.
pub fn parsed_file(file: &str) -> Value {
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&file_text(file)).unwrap();
    serde_json::to_value(strip_tags(yaml)).unwrap()
}

/// A policy statement, and whether it is granted only when remediation is
/// on: the form `!If [RemediationOn, statement, !Ref AWS::NoValue]`, and no
/// other condition.
pub fn remediation_only(st: &Value) -> (&Value, bool) {
    let (st, when) = granted_when(st);
    if let Some(when) = when {
        assert_eq!(when, "RemediationOn", "{st}");
    }
    (st, when.is_some())
}

/// A policy statement, and the condition it is granted under, if any: the
/// form `!If [CONDITION, statement, !Ref AWS::NoValue]` with CONDITION
/// `RemediationOn`, `SecurityHubOn` or `OrgSweepOn` (an Allow), or
/// `ForceOverwriteForbidden` (the Deny that holds that remediation rule).
pub fn granted_when(st: &Value) -> (&Value, Option<&str>) {
    match st.get("!If") {
        Some(branches) => {
            let when = branches[0].as_str().expect("a condition name");
            assert!(
                [
                    "RemediationOn",
                    "SecurityHubOn",
                    "OrgSweepOn",
                    "ForceOverwriteForbidden"
                ]
                .contains(&when),
                "{st}"
            );
            assert_eq!(branches[2], json!({"!Ref": "AWS::NoValue"}), "{st}");
            (&branches[1], Some(when))
        }
        None => (st, None),
    }
}

/// The statements of a role's inline policies, each with the template
/// condition it is under (see [`granted_when`]): a SAM function's
/// `Policies` (`[{Statement: [...]}]`) or an IAM role's
/// (`[{PolicyName, PolicyDocument: {Statement: [...]}}]`).
pub fn role_statements(resource: &Value) -> Vec<(Value, Option<String>)> {
    let mut out = Vec::new();
    for policy in resource["Properties"]["Policies"]
        .as_array()
        .expect("inline policies")
    {
        let doc = policy.get("PolicyDocument").unwrap_or(policy);
        for st in doc["Statement"].as_array().expect("statements") {
            let (st, when) = granted_when(st);
            out.push((st.clone(), when.map(str::to_string)));
        }
    }
    out
}

/// A policy statement's actions (`Action` as a string or a list).
pub fn actions(st: &Value) -> Vec<String> {
    match &st["Action"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_string()).collect(),
        other => panic!("Action {other}"),
    }
}

/// The statements of an SQS queue policy or of an event bus policy.
pub fn resource_policy_statements(resource: &Value) -> Vec<Value> {
    let p = &resource["Properties"];
    match p.get("PolicyDocument") {
        Some(doc) => doc["Statement"].as_array().expect("statements").clone(),
        None => vec![p["Statement"].clone()],
    }
}

fn strip_tags(v: serde_yaml_ng::Value) -> serde_yaml_ng::Value {
    use serde_yaml_ng::Value as Y;
    match v {
        Y::Tagged(t) => {
            let mut m = serde_yaml_ng::Mapping::new();
            m.insert(
                Y::String(format!("!{}", t.tag.to_string().trim_start_matches('!'))),
                strip_tags(t.value),
            );
            Y::Mapping(m)
        }
        Y::Sequence(s) => Y::Sequence(s.into_iter().map(strip_tags).collect()),
        Y::Mapping(m) => Y::Mapping(m.into_iter().map(|(k, v)| (k, strip_tags(v))).collect()),
        other => other,
    }
}
