//! CloudWatch Embedded Metric Format lines, checked against the
//! specification (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html).
#![allow(dead_code)]

use replica_auditor::metrics::MAX_METRICS;
use serde_json::Value;

/// The stdout lines that are EMF documents (they carry `_aws`).
pub fn emf_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect()
}

/// Every rule of the EMF specification a document must keep, plus the
/// auditor's own: no dimension that could name a secret or an account.
pub fn validate(doc: &Value) -> Result<(), String> {
    let root = doc.as_object().ok_or("the root is not an object")?;
    let aws = root["_aws"].as_object().ok_or("_aws is not an object")?;
    let ts = &aws["Timestamp"];
    if !ts.is_u64() {
        return Err(format!("Timestamp {ts} is not an integer of ms"));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let t = ts.as_u64().unwrap();
    // CloudWatch accepts 14 days back and 2 hours ahead.
    if t + 14 * 86_400_000 < now || t > now + 2 * 3_600_000 {
        return Err(format!("Timestamp {t} is out of CloudWatch's window"));
    }
    let directives = aws
        .get("CloudWatchMetrics")
        .and_then(Value::as_array)
        .ok_or("_aws.CloudWatchMetrics is missing or not an array")?;
    if directives.is_empty() {
        return Err("no metric directive".into());
    }
    for d in directives {
        let ns = d["Namespace"].as_str().ok_or("Namespace is not a string")?;
        if ns.is_empty()
            || ns.len() > 255
            || !ns
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._#:/-".contains(c))
        {
            return Err(format!("Namespace {ns:?} does not match the pattern"));
        }
        let sets = d["Dimensions"]
            .as_array()
            .ok_or("Dimensions is not an array")?;
        for set in sets {
            let set = set.as_array().ok_or("a dimension set is not an array")?;
            if set.len() > 30 {
                return Err("more than 30 dimensions in a set".into());
            }
            for dim in set {
                let name = dim.as_str().ok_or("a dimension name is not a string")?;
                let value = root
                    .get(name)
                    .ok_or(format!("dimension {name} is not a root member"))?;
                let value = value
                    .as_str()
                    .ok_or(format!("dimension {name}'s value is not a string"))?;
                let lower = name.to_ascii_lowercase();
                if ["secret", "account", "arn"]
                    .iter()
                    .any(|w| lower.contains(w))
                    || value.contains("arn:")
                    || (value.len() == 12 && value.chars().all(|c| c.is_ascii_digit()))
                {
                    return Err(format!(
                        "dimension {name}={value} names a secret or account"
                    ));
                }
            }
        }
        let list = d["Metrics"].as_array().ok_or("Metrics is not an array")?;
        if list.len() > MAX_METRICS {
            return Err(format!("{} metrics, more than {MAX_METRICS}", list.len()));
        }
        for m in list {
            let name = m["Name"].as_str().ok_or("a metric has no Name")?;
            if let Some(unit) = m.get("Unit") {
                unit.as_str().ok_or("Unit is not a string")?;
            }
            match root.get(name) {
                Some(Value::Number(_)) => {}
                Some(Value::Array(a)) if a.iter().all(Value::is_number) && a.len() <= 100 => {}
                Some(other) => return Err(format!("metric {name} = {other} is not numeric")),
                None => return Err(format!("metric {name} is not a root member")),
            }
        }
    }
    Ok(())
}
