//! template.yaml as JSON, CloudFormation's short tags (`!Ref`, `!Sub`,
//! `!If`, ...) kept as `{"!Tag": value}` objects.

use serde_json::Value;

pub fn text() -> String {
    std::fs::read_to_string(super::root().join("template.yaml")).unwrap()
}

pub fn parsed() -> Value {
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text()).unwrap();
    serde_json::to_value(strip_tags(yaml)).unwrap()
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
