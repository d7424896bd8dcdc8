//! member.yaml, the stack every member account and Region gets for
//! organisation-wide operation, against the code: plain CloudFormation (a
//! service-managed StackSet rejects a Transform), a forwarding rule for
//! exactly the events the code handles (checked with the sample events), a
//! member role holding exactly what the code calls in a member account (read
//! and remediation apart), and nothing trusted or reachable beyond the
//! central auditor.

mod support;

use std::collections::BTreeSet;

use replica_auditor::aws::{
    DEFAULT_MEMBER_ROLE_NAME, IAM_ACTIONS, IMPLIED_KMS_ACTIONS, SECURITY_HUB_ACTIONS,
    UNSCOPED_ACTIONS, WRITE_ACTIONS,
};
use replica_auditor::event::{
    DETAIL_TYPE_API_CALL, DETAIL_TYPE_SERVICE_EVENT, HandledEvent, Incoming, SOURCE_SECRETS_MANAGER,
};
use serde_json::{Value, json};
use support::template;

fn member() -> Value {
    template::parsed_file("member.yaml")
}

const CENTRAL_BUS: &str =
    "arn:${AWS::Partition}:events:${AWS::Region}:${CentralAccountId}:event-bus/default";

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_string()).collect(),
        other => panic!("expected a string or a list of strings, got {other}"),
    }
}

fn set<'a>(items: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    items.into_iter().map(str::to_string).collect()
}

#[test]
fn plain_cloudformation_without_a_transform() {
    let t = member();
    assert_eq!(t["AWSTemplateFormatVersion"], "2010-09-09");
    assert!(
        t.get("Transform").is_none(),
        "service-managed StackSets reject a Transform"
    );
    for (name, res) in t["Resources"].as_object().unwrap() {
        let ty = res["Type"].as_str().unwrap();
        assert!(!ty.starts_with("AWS::Serverless::"), "{name} is {ty}");
    }
    // Never a secret-value call, in any spelling.
    let lower = template::file_text("member.yaml").to_ascii_lowercase();
    for forbidden in ["getsecretvalue", "batchgetsecretvalue"] {
        assert!(
            !lower.contains(forbidden),
            "member.yaml mentions {forbidden}"
        );
    }
}

fn rule(t: &Value) -> &Value {
    &t["Resources"]["ForwardSecretsManagerApiCalls"]
}

#[test]
fn the_rule_forwards_exactly_the_handled_events_as_template_yaml_matches_them() {
    let t = member();
    let r = rule(&t);
    assert_eq!(r["Type"], "AWS::Events::Rule");
    assert!(
        r["Properties"].get("EventBusName").is_none(),
        "the default bus"
    );
    let pattern = &r["Properties"]["EventPattern"];
    assert_eq!(pattern["source"], json!([SOURCE_SECRETS_MANAGER]));
    assert_eq!(
        pattern["detail-type"],
        json!([DETAIL_TYPE_API_CALL, DETAIL_TYPE_SERVICE_EVENT])
    );
    assert_eq!(
        pattern["detail"]["eventSource"],
        json!(["secretsmanager.amazonaws.com"])
    );
    let in_member: BTreeSet<String> = strings(&pattern["detail"]["eventName"])
        .into_iter()
        .collect();
    let in_code = set(HandledEvent::ALL.iter().map(|e| e.as_str()));
    assert_eq!(
        in_member, in_code,
        "the pattern names every event the code handles, and no other"
    );
    // The central stack's own rule matches the same events.
    let central = template::parsed();
    assert_eq!(
        pattern,
        &central["Resources"]["AuditorFunction"]["Properties"]["Events"]["SecretsManagerApiCalls"]
            ["Properties"]["Pattern"]
    );
}

/// EventBridge matching, as far as the rule's pattern uses it: every field
/// of the pattern is present in the event, and a list of values matches an
/// event value equal to one of them.
fn matches(pattern: &Value, event: &Value) -> bool {
    match pattern {
        Value::Object(fields) => fields
            .iter()
            .all(|(key, sub)| event.get(key).is_some_and(|value| matches(sub, value))),
        Value::Array(allowed) => allowed.contains(event),
        other => panic!("pattern shape {other} is not used here"),
    }
}

#[test]
fn the_sample_events_it_forwards_are_those_the_auditor_audits() {
    let t = member();
    let pattern = &rule(&t)["Properties"]["EventPattern"];
    let (mut forwarded, mut kept) = (0, 0);
    for entry in std::fs::read_dir(support::root().join("events")).unwrap() {
        let path = entry.unwrap().path();
        let raw = std::fs::read(&path).unwrap();
        let event: Value = serde_json::from_slice(&raw).unwrap();
        let audited = matches!(
            replica_auditor::event::parse_bytes(&raw),
            Ok(Incoming::ApiCall(_))
        );
        assert_eq!(
            matches(pattern, &event),
            audited,
            "{}: forwarded to the central bus if and only if the auditor audits it",
            path.display()
        );
        if audited {
            forwarded += 1;
        } else {
            kept += 1;
        }
    }
    // The samples hold both kinds (a scheduled sweep and an ignored
    // TagResource stay in the member account).
    assert!(
        forwarded >= 4 && kept >= 2,
        "{forwarded} forwarded, {kept} kept"
    );
}

#[test]
fn the_target_is_the_central_default_bus_through_a_role_with_a_dead_letter_queue() {
    let t = member();
    let targets = rule(&t)["Properties"]["Targets"].as_array().unwrap();
    assert_eq!(targets.len(), 1, "one target: the central bus");
    let target = &targets[0];
    // Same Region (the stack's), the central account, its default bus.
    assert_eq!(target["Arn"], json!({ "!Sub": CENTRAL_BUS }));
    // The central bus policy grants the organisation, so the target must
    // carry a RoleArn.
    assert_eq!(target["RoleArn"], json!({"!GetAtt": "ForwardingRole.Arn"}));
    assert_eq!(
        target["DeadLetterConfig"]["Arn"],
        json!({"!GetAtt": "ForwardingDeadLetterQueue.Arn"})
    );
    // Only this rule may drop events into the dead-letter queue.
    let policy = &t["Resources"]["ForwardingDeadLetterQueuePolicy"]["Properties"];
    assert_eq!(
        policy["Queues"],
        json!([{"!Ref": "ForwardingDeadLetterQueue"}])
    );
    // The one Allow; the rest deny plain HTTP (tests/security.rs).
    let allows: Vec<&Value> = policy["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|st| st["Effect"] != "Deny")
        .collect();
    assert_eq!(allows.len(), 1);
    let st = allows[0];
    assert_eq!(st["Effect"], "Allow");
    assert_eq!(st["Principal"], json!({"Service": "events.amazonaws.com"}));
    assert_eq!(st["Action"], "sqs:SendMessage");
    assert_eq!(
        st["Resource"],
        json!({"!GetAtt": "ForwardingDeadLetterQueue.Arn"})
    );
    assert_eq!(
        st["Condition"],
        json!({"ArnEquals": {"aws:SourceArn": {"!GetAtt": "ForwardSecretsManagerApiCalls.Arn"}}})
    );
}

#[test]
fn the_forwarding_role_may_only_put_events_on_the_central_default_bus() {
    let t = member();
    let role = &t["Resources"]["ForwardingRole"];
    assert_eq!(role["Type"], "AWS::IAM::Role");
    let p = &role["Properties"];
    let trust = p["AssumeRolePolicyDocument"]["Statement"]
        .as_array()
        .unwrap();
    assert_eq!(trust.len(), 1);
    assert_eq!(trust[0]["Effect"], "Allow");
    assert_eq!(
        trust[0]["Principal"],
        json!({"Service": "events.amazonaws.com"})
    );
    assert_eq!(trust[0]["Action"], "sts:AssumeRole");
    assert_eq!(
        trust[0]["Condition"],
        json!({"StringEquals": {"aws:SourceAccount": {"!Ref": "AWS::AccountId"}}})
    );
    let mut grants = Vec::new();
    for policy in p["Policies"].as_array().unwrap() {
        for st in policy["PolicyDocument"]["Statement"].as_array().unwrap() {
            assert_eq!(st["Effect"], "Allow");
            assert!(st.get("Condition").is_none(), "{st}");
            for action in strings(&st["Action"]) {
                grants.push((action, st["Resource"].clone()));
            }
        }
    }
    assert_eq!(
        grants,
        vec![(
            "events:PutEvents".to_string(),
            json!({ "!Sub": CENTRAL_BUS })
        )]
    );
    assert!(p.get("ManagedPolicyArns").is_none());
}

/// One action granted to the member role: (action, resource, condition,
/// the template condition it is granted under).
type Grant = (String, Value, Value, Option<String>);

/// What the member role is allowed. Its one Deny (no force overwrite unless
/// AllowForceOverwrite) is checked with the remediation rules in
/// tests/security.rs.
fn member_role_grants(t: &Value) -> Vec<Grant> {
    let role = &t["Resources"]["MemberRole"];
    assert!(role["Properties"].get("ManagedPolicyArns").is_none());
    let mut out = Vec::new();
    for (st, when) in template::role_statements(role) {
        assert!(st.get("NotAction").is_none() && st.get("NotResource").is_none());
        if st["Effect"] == "Deny" {
            assert_eq!(when.as_deref(), Some("ForceOverwriteForbidden"), "{st}");
            continue;
        }
        assert_eq!(st["Effect"], "Allow", "{st}");
        for action in strings(&st["Action"]) {
            out.push((
                action,
                st["Resource"].clone(),
                st["Condition"].clone(),
                when.clone(),
            ));
        }
    }
    out
}

/// What the code calls in a member account: the Secrets Manager and KMS
/// calls of IAM_ACTIONS (SNS, DynamoDB and Organizations are the central
/// account's), the writes apart; and Security Hub's import, made as the
/// findings' own account.
fn member_calls() -> (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>) {
    let in_member = |a: &str| a.starts_with("secretsmanager:") || a.starts_with("kms:");
    let read = set(IAM_ACTIONS
        .iter()
        .copied()
        .filter(|a| in_member(a) && !WRITE_ACTIONS.contains(a)));
    let remediation = set(WRITE_ACTIONS
        .iter()
        .copied()
        .filter(|a| a.starts_with("secretsmanager:"))
        .chain(IMPLIED_KMS_ACTIONS));
    let security_hub = set(SECURITY_HUB_ACTIONS
        .iter()
        .copied()
        .filter(|a| a.starts_with("securityhub:")));
    (read, remediation, security_hub)
}

#[test]
fn the_member_role_holds_what_the_code_calls_in_a_member_account() {
    let t = member();
    let grants = member_role_grants(&t);
    let (read, remediation, security_hub) = member_calls();
    assert!(!read.is_empty() && !remediation.is_empty() && !security_hub.is_empty());
    let granted = |when: Option<&str>| -> BTreeSet<String> {
        grants
            .iter()
            .filter(|g| g.3.as_deref() == when)
            .map(|g| g.0.clone())
            .collect()
    };
    assert_eq!(granted(None), read, "always granted: the audit's reads");
    assert_eq!(
        granted(Some("RemediationOn")),
        remediation,
        "granted only when Remediation is on: the replication writes and KMS through Secrets Manager"
    );
    assert_eq!(
        granted(Some("SecurityHubOn")),
        security_hub,
        "granted only when SecurityHub is on: the import, as this account"
    );
    let own_product = json!({"!Sub": "arn:${AWS::Partition}:securityhub:*:${AWS::AccountId}:product/${AWS::AccountId}/default"});
    let secrets =
        json!({"!Sub": "arn:${AWS::Partition}:secretsmanager:*:${AWS::AccountId}:secret:*"});
    let keys = json!({"!Sub": "arn:${AWS::Partition}:kms:*:${AWS::AccountId}:key/*"});
    for (action, resource, condition, _) in &grants {
        assert!(!action.contains('*'), "wildcard action {action}");
        if resource == &json!("*") {
            assert!(
                UNSCOPED_ACTIONS.contains(&action.as_str()),
                "{action} on every resource"
            );
            assert_eq!(action, "secretsmanager:ListSecrets");
        } else if action.starts_with("secretsmanager:") {
            assert_eq!(resource, &secrets, "{action}: this account's secrets");
        } else if action.starts_with("securityhub:") {
            assert_eq!(
                resource, &own_product,
                "{action}: this account's own product only"
            );
        } else {
            assert_eq!(resource, &keys, "{action}: this account's keys");
        }
        if IMPLIED_KMS_ACTIONS.contains(&action.as_str()) {
            assert_eq!(
                condition,
                &json!({"StringLike": {"kms:ViaService": "secretsmanager.*.amazonaws.com"}}),
                "{action} only through Secrets Manager"
            );
        } else if action == "secretsmanager:ReplicateSecretToRegions" {
            // AllowedRegions, held by IAM: tests/security.rs.
            assert_eq!(condition["!If"][0], "ReplicaRegionsRestricted");
        } else {
            assert!(condition.is_null(), "{action}: {condition}");
        }
    }
    // The switch: off by default, on or off only.
    assert_eq!(
        t["Conditions"]["RemediationOn"],
        json!({"!Equals": [{"!Ref": "Remediation"}, "on"]})
    );
    for switch in ["Remediation", "SecurityHub"] {
        let param = &t["Parameters"][switch];
        assert_eq!(param["Default"], "off", "{switch}");
        assert_eq!(param["AllowedValues"], json!(["on", "off"]), "{switch}");
        assert_eq!(
            t["Conditions"][format!("{switch}On")],
            json!({"!Equals": [{"!Ref": switch}, "on"]})
        );
    }
}

#[test]
fn the_member_role_trusts_only_the_central_function_role_pinned_to_the_organisation() {
    let t = member();
    let p = &t["Resources"]["MemberRole"]["Properties"];
    assert_eq!(p["RoleName"], json!({"!Ref": "MemberRoleName"}));
    // The role the central function assumes (MEMBER_ROLE_NAME, from the
    // central stack's MemberRoleName) is the one this stack creates.
    let central = template::parsed();
    for (stack, default) in [
        ("member.yaml", &t["Parameters"]["MemberRoleName"]["Default"]),
        (
            "template.yaml",
            &central["Parameters"]["MemberRoleName"]["Default"],
        ),
    ] {
        assert_eq!(default, DEFAULT_MEMBER_ROLE_NAME, "{stack}");
    }
    let env = &central["Resources"]["AuditorFunction"]["Properties"]["Environment"]["Variables"];
    assert_eq!(env["MEMBER_ROLE_NAME"], json!({"!Ref": "MemberRoleName"}));
    let trust = p["AssumeRolePolicyDocument"]["Statement"]
        .as_array()
        .unwrap();
    assert_eq!(trust.len(), 1, "one trust statement");
    let st = &trust[0];
    assert_eq!(st["Effect"], "Allow");
    assert!(st.get("NotPrincipal").is_none());
    assert_eq!(st["Action"], "sts:AssumeRole");
    // The central account's function role, by name: the account is part of
    // the ARN, so no other account's role can match.
    assert_eq!(
        st["Principal"],
        json!({"AWS": {"!Sub": "arn:${AWS::Partition}:iam::${CentralAccountId}:role/${CentralFunctionRoleName}"}})
    );
    assert_eq!(
        st["Condition"],
        json!({"StringEquals": {"aws:PrincipalOrgID": {"!Ref": "OrganizationId"}}})
    );
    let params = &t["Parameters"];
    assert_eq!(params["CentralAccountId"]["AllowedPattern"], "^[0-9]{12}$");
    assert_eq!(
        params["OrganizationId"]["AllowedPattern"],
        "^o-[a-z0-9]{10,32}$"
    );
    for p in [
        "CentralAccountId",
        "CentralFunctionRoleName",
        "OrganizationId",
    ] {
        assert!(params[p].get("Default").is_none(), "{p} must be given");
    }
}

#[test]
fn only_the_member_role_is_made_in_one_region_everything_else_in_every_region() {
    let t = member();
    // IAM is global: a named role made by the stack of every Region would
    // collide, so it is made where AWS::Region is RoleRegion only.
    assert_eq!(
        t["Conditions"]["MemberRoleRegion"],
        json!({"!Equals": [{"!Ref": "AWS::Region"}, {"!Ref": "RoleRegion"}]})
    );
    assert!(t["Parameters"]["RoleRegion"].get("Default").is_none());
    for (name, res) in t["Resources"].as_object().unwrap() {
        let named_role =
            res["Type"] == "AWS::IAM::Role" && res["Properties"].get("RoleName").is_some();
        if name == "MemberRole" {
            assert_eq!(res["Condition"], "MemberRoleRegion");
        } else {
            assert!(
                res.get("Condition").is_none(),
                "{name} is needed in every Region"
            );
            assert!(!named_role, "{name}: a named role in every Region collides");
        }
    }
    assert_eq!(
        t["Outputs"]["MemberRoleArn"]["Condition"],
        "MemberRoleRegion"
    );
}
