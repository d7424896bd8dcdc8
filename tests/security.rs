//! The function's own security: it never reads a secret value, its IAM
//! policy holds exactly what the code calls, and its logs can neither leak
//! key policies or secret values nor be forged with line breaks.

mod support;

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use replica_auditor::aws::{
    ACCOUNT_LIST_ACTIONS, EVENT_SOURCE_ACTIONS, FOLLOW_UP_ACTIONS, IAM_ACTIONS,
    IMPLIED_KMS_ACTIONS, MEMBER_ROLE_ACTIONS, ORG_SWEEP_ACTIONS, POLICY_LEDGER_ACTIONS,
    SECURITY_HUB_ACTIONS, STATE_TABLE_ACTIONS, UNSCOPED_ACTIONS, WRITE_ACTIONS,
};
use replica_auditor::engine::Budget;
use replica_auditor::event::{
    DETAIL_TYPE_API_CALL, DETAIL_TYPE_SERVICE_EVENT, SOURCE_SECRETS_MANAGER,
};
use serde_json::{Value, json};
use support::*;

fn source_files() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![root.join("src"), root.join("crates")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push((
                    p.display().to_string(),
                    std::fs::read_to_string(&p).unwrap(),
                ));
            }
        }
    }
    assert!(out.len() >= 10, "found the sources");
    out
}

fn template() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("template.yaml")).unwrap()
}

#[test]
fn no_secret_value_is_ever_read() {
    let mut scanned = source_files();
    scanned.push(("template.yaml".into(), template()));
    for (name, text) in scanned {
        let lower = text.to_ascii_lowercase();
        for forbidden in [
            "getsecretvalue",
            "get_secret_value",
            "batchgetsecretvalue",
            "batch_get_secret_value",
            "secret_string",
        ] {
            assert!(!lower.contains(forbidden), "{name} mentions {forbidden}");
        }
    }
}

/// One granted action: (action, resource, condition, the template
/// condition it is granted under: `RemediationOn`, `SecurityHubOn`,
/// `OrgSweepOn` or none).
type Grant = (String, Value, Value, Option<String>);

/// Every IAM action granted (allowed) to the function in template.yaml;
/// the Deny statements that hold the remediation rules are [`denials`].
fn template_actions() -> Vec<Grant> {
    let doc = support::template::parsed();
    let mut out = Vec::new();
    for (_, res) in doc["Resources"].as_object().unwrap() {
        if res["Properties"].get("Policies").is_none() {
            continue;
        }
        for (st, when) in support::template::role_statements(res) {
            if st["Effect"] != "Allow" {
                assert_eq!(st["Effect"], "Deny", "{st}");
                continue;
            }
            assert!(st.get("NotAction").is_none() && st.get("NotResource").is_none());
            for a in support::template::actions(&st) {
                out.push((
                    a,
                    st["Resource"].clone(),
                    st["Condition"].clone(),
                    when.clone(),
                ));
            }
        }
    }
    out
}

/// A role's statements with `Effect` `effect`, with their template condition.
fn statements(role: &Value, effect: &str) -> Vec<(Value, Option<String>)> {
    support::template::role_statements(role)
        .into_iter()
        .filter(|(st, _)| st["Effect"] == effect)
        .collect()
}

/// The Deny statements of a role.
fn denials(role: &Value) -> Vec<(Value, Option<String>)> {
    statements(role, "Deny")
}

#[test]
fn iam_policy_is_exactly_what_the_code_calls() {
    let granted = template_actions();
    let mut names: Vec<&str> = granted.iter().map(|(a, ..)| a.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let mut expected: Vec<&str> = IAM_ACTIONS
        .iter()
        .chain(IMPLIED_KMS_ACTIONS.iter())
        .chain(EVENT_SOURCE_ACTIONS.iter())
        .copied()
        .collect();
    expected.sort_unstable();
    expected.dedup();
    assert_eq!(names, expected);
    for (action, resource, condition, when) in &granted {
        let when = when.as_deref();
        // The follow-up chain's queue calls: always, on its queue only.
        let follow_up_queue = json!({"!GetAtt": "FollowUpQueue.Arn"});
        if resource == &follow_up_queue {
            assert!(
                FOLLOW_UP_ACTIONS.contains(&action.as_str())
                    || EVENT_SOURCE_ACTIONS.contains(&action.as_str()),
                "{action} on the follow-up queue"
            );
            assert_eq!(when, None, "{action}: the follow-up chain is always on");
            continue;
        }
        // The org sweep's calls, and only they, are granted only when it is on.
        let org_only = ORG_SWEEP_ACTIONS.contains(&action.as_str())
            || EVENT_SOURCE_ACTIONS.contains(&action.as_str());
        assert_eq!(
            when == Some("OrgSweepOn"),
            org_only,
            "{action}: granted only when the org sweep is on, and only the org sweep's calls are"
        );
        if ACCOUNT_LIST_ACTIONS.contains(&action.as_str()) {
            assert_eq!(
                when, None,
                "{action}: the event path checks a member account against the organisation, org sweep or not"
            );
        }
        if action.starts_with("sqs:") {
            assert_eq!(
                resource,
                &json!({"!GetAtt": "SweepQueue.Arn"}),
                "{action} only on the sweep queue"
            );
        }
        assert!(!action.contains('*'), "wildcard action {action}");
        if !UNSCOPED_ACTIONS.contains(&action.as_str()) {
            assert_ne!(resource, &json!("*"), "{action} on every resource");
        }
        if WRITE_ACTIONS.contains(&action.as_str()) {
            assert!(
                when == Some("RemediationOn")
                    || (when == Some("SecurityHubOn")
                        && SECURITY_HUB_ACTIONS.contains(&action.as_str())),
                "{action} must be granted only when remediation (or, for the state table, Security Hub) is on"
            );
        }
        if SECURITY_HUB_ACTIONS.contains(&action.as_str())
            && !WRITE_ACTIONS.contains(&action.as_str())
        {
            assert_eq!(
                when,
                Some("SecurityHubOn"),
                "{action} only when Security Hub is on"
            );
        }
        if action == "securityhub:BatchImportFindings" {
            assert_eq!(
                resource,
                &json!({"!Sub": "arn:${AWS::Partition}:securityhub:*:${AWS::AccountId}:product/${AWS::AccountId}/default"}),
                "imports only into the account's own default product"
            );
        }
        if action == "dynamodb:PutItem" {
            assert!(
                when.is_some(),
                "PutItem only when remediation or Security Hub is on"
            );
        }
        if IMPLIED_KMS_ACTIONS.contains(&action.as_str()) {
            // The findings topic's key: this stack's, or the central topic's.
            let findings_key = resource
                == &json!({"!If": ["ExternalTopicKey", {"!Ref": "FindingsTopicKeyArn"}, {"!GetAtt": "FindingsKey.Arn"}]});
            let via_secrets_manager =
                condition["StringLike"]["kms:ViaService"] == "secretsmanager.*.amazonaws.com";
            assert!(
                findings_key || (via_secrets_manager && when == Some("RemediationOn")),
                "{action}: only on the findings key, or through Secrets Manager when remediation is on"
            );
        }
        if STATE_TABLE_ACTIONS.contains(&action.as_str()) {
            assert_eq!(
                resource,
                &json!({"!If": ["OwnStateTable", {"!GetAtt": "StateTable.Arn"}, {"!Ref": "StateTableArn"}]}),
                "{action} only on the state table"
            );
        }
        if POLICY_LEDGER_ACTIONS.contains(&action.as_str()) {
            assert_eq!(
                when, None,
                "{action}: every sweep and event keeps the policy ledger"
            );
            assert!(STATE_TABLE_ACTIONS.contains(&action.as_str()));
        }
        if action.starts_with("dynamodb:") {
            assert!(
                STATE_TABLE_ACTIONS.contains(&action.as_str()),
                "{action}: the only DynamoDB calls are on the state table"
            );
        }
        if MEMBER_ROLE_ACTIONS.contains(&action.as_str()) {
            assert_eq!(
                resource,
                &json!({"!Sub": "arn:${AWS::Partition}:iam::*:role/${MemberRoleName}"}),
                "{action} only on the member role"
            );
        }
        if action == "sns:Publish" {
            assert_eq!(
                resource,
                &json!([
                    {"!If": ["OwnTopic", {"!Ref": "FindingsTopic"}, {"!Ref": "FindingsTopicArn"}]},
                    {"!If": ["ChatNotifications", {"!Ref": "ChatTopicArn"}, {"!Ref": "AWS::NoValue"}]}
                ]),
                "sns:Publish only on the findings topic, and the chat topic when one is given"
            );
        }
    }
}

#[test]
fn log_statements_never_carry_policies_or_values() {
    for (name, text) in source_files() {
        for mac in ["info!(", "warn!(", "error!(", "debug!(", "trace!("] {
            let mut rest = text.as_str();
            while let Some(i) = rest.find(mac) {
                let call = &rest[i..];
                let end = call.find(");").unwrap_or(call.len());
                let body = &call[..end];
                for forbidden in ["policy", "doc", "secret_value", "SecretString"] {
                    assert!(
                        !body.contains(forbidden),
                        "{name}: a log statement mentions {forbidden}: {body}"
                    );
                }
                rest = &call[mac.len()..];
            }
        }
    }
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_cannot_be_forged_and_leak_nothing() {
    let w = World::start();
    let app = w.app(&[]).await;
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = replica_auditor::logging::subscriber(
        move || writer.clone(),
        replica_auditor::logging::filter("info").unwrap(),
    );
    let _guard = tracing::subscriber::set_default(subscriber);

    // A public key policy (its document must not reach the logs) and an
    // event whose outside text tries to start a log line of its own.
    app.handle(
        &bytes(&event("create-secret-public-key.json")),
        Budget::unlimited(),
    )
    .await
    .unwrap();
    let mut forged = event("replicate-secret-to-regions.json");
    forged["detail"]["eventID"] =
        json!("x\n{\"level\":\"ERROR\",\"fields\":{\"message\":\"forged\"}}");
    app.handle(&bytes(&forged), Budget::unlimited())
        .await
        .unwrap();
    let mut malformed = event("create-secret.json");
    malformed["detail"]["eventTime"] = json!(["\n{\"level\":\"ERROR\"}"]);
    app.handle(&bytes(&malformed), Budget::unlimited())
        .await
        .unwrap_err();

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}"))
        })
        .collect();
    let summaries: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "audit summary")
        .collect();
    assert_eq!(
        summaries.len(),
        2,
        "one summary line per audited event: {text}"
    );
    assert!(
        lines.iter().all(|l| l["level"] != "ERROR"),
        "no forged ERROR line: {text}"
    );
    assert_eq!(
        summaries[1]["fields"]["event_id"],
        "x\n{\"level\":\"ERROR\",\"fields\":{\"message\":\"forged\"}}"
    );
    assert_eq!(summaries[0]["fields"]["codes"], "KEY_POLICY_PUBLIC");
    for leak in [
        "kms:Decrypt",
        "Principal",
        "OpenToAll",
        "demo-value-never-read-by-the-auditor",
        "Statement",
    ] {
        assert!(!text.contains(leak), "logs contain {leak}: {text}");
    }
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["fields"]["outcome"] == "rejected")
            .count(),
        1
    );
}

// --- issue 22: what IAM, the queue and the bus admit (Checkov cannot see
// these conditions; tests/template.rs and tests/member_template.rs check the
// rest of the wiring) ---

fn function_role(doc: &Value) -> &Value {
    &doc["Resources"]["AuditorFunction"]
}

/// The one statement of a role with this Sid, and its template condition.
fn statement_by_sid(role: &Value, sid: &str) -> (Value, Option<String>) {
    let mut found: Vec<_> = support::template::role_statements(role)
        .into_iter()
        .filter(|(st, _)| st["Sid"] == sid)
        .collect();
    assert_eq!(found.len(), 1, "one statement {sid}");
    found.remove(0)
}

fn no_value() -> Value {
    json!({"!Ref": "AWS::NoValue"})
}

/// The function may enter only the accounts the code may: with ACCOUNT_IDS,
/// those and its own; without, those of its own organisation
/// (aws:ResourceOrgID against the policy variable of the caller's
/// organisation). A member's event naming another account's secret can
/// then not take it outside, whatever the code does.
#[test]
fn the_function_enters_only_its_organisation_or_the_listed_accounts() {
    let doc = support::template::parsed();
    let role = function_role(&doc);
    let granting: Vec<_> = statements(role, "Allow")
        .into_iter()
        .filter(|(st, _)| {
            support::template::actions(st)
                .iter()
                .any(|a| MEMBER_ROLE_ACTIONS.contains(&a.as_str()))
        })
        .collect();
    assert_eq!(granting.len(), 1, "one statement grants sts:AssumeRole");
    let (st, when) = statement_by_sid(role, "EnterMemberAccounts");
    assert_eq!(when, None);
    assert_eq!(st, granting[0].0);
    assert_eq!(st["Action"], "sts:AssumeRole");
    assert_eq!(
        st["Condition"],
        json!({"!If": [
            "AccountListGiven",
            {"StringEquals": {"aws:ResourceAccount":
                {"!Split": [",", {"!Sub": "${AccountIds},${AWS::AccountId}"}]}}},
            {"StringEquals": {"aws:ResourceOrgID": "${aws:PrincipalOrgID}"}}
        ]}),
        "the listed accounts and its own, else its own organisation"
    );
    assert_eq!(
        doc["Conditions"]["AccountListGiven"],
        json!({"!Not": [{"!Equals": [{"!Ref": "AccountIds"}, ""]}]})
    );
    // The list IAM splits is the code's ACCOUNT_IDS, and splits as it
    // reads it: 12-digit ids, commas, no spaces.
    let env = &role["Properties"]["Environment"]["Variables"];
    assert_eq!(env["ACCOUNT_IDS"], json!({"!Ref": "AccountIds"}));
    assert_eq!(
        doc["Parameters"]["AccountIds"]["AllowedPattern"],
        "^([0-9]{12}(,[0-9]{12})*)?$"
    );
}

/// An org sweep cell directs an audit, and remediation, at an account and
/// Region: nobody but the function's role (the planner, AUDITOR_ROLE_ARN)
/// may send one, and only over TLS.
#[test]
fn only_the_function_role_sends_org_sweep_cells() {
    let doc = support::template::parsed();
    let role = json!({"!GetAtt": "AuditorFunctionRole.Arn"});
    // The follow-up chain's steps direct an audit too (docs/freshness.md).
    for (name, queue, condition) in [
        ("SweepQueuePolicy", "SweepQueue", json!("OrgSweepOn")),
        ("FollowUpQueuePolicy", "FollowUpQueue", Value::Null),
    ] {
        let policy = &doc["Resources"][name];
        assert_eq!(policy["Type"], "AWS::SQS::QueuePolicy");
        assert_eq!(policy["Condition"], condition, "{name}");
        assert_eq!(policy["Properties"]["Queues"], json!([{"!Ref": queue}]));
        let statements = support::template::resource_policy_statements(policy);
        assert!(
            statements.iter().all(|st| st["Effect"] == "Deny"),
            "{name} grants nothing: {statements:?}"
        );
        let queue = json!({"!GetAtt": format!("{queue}.Arn")});
        assert!(
            statements.iter().any(|st| st["Principal"] == "*"
                && st["Action"] == "sqs:SendMessage"
                && st["Resource"] == queue
                && st["Condition"]
                    == json!({"StringNotEquals": {"aws:PrincipalArn": role.clone()}})),
            "{name}: a Deny of SendMessage to every principal but the function's role: {statements:?}"
        );
        assert!(
            statements.iter().any(|st| is_tls_only(st, &queue)),
            "{name}: a Deny of every call without TLS: {statements:?}"
        );
    }
    // The role the Deny spares is the one the code knows itself by.
    assert_eq!(
        function_role(&doc)["Properties"]["Environment"]["Variables"]["AUDITOR_ROLE_ARN"],
        role
    );
}

fn is_tls_only(st: &Value, resource: &Value) -> bool {
    st["Effect"] == "Deny"
        && st["Principal"] == "*"
        && st["Action"] == "sqs:*"
        && &st["Resource"] == resource
        && st["Condition"] == json!({"Bool": {"aws:SecureTransport": "false"}})
}

/// Every queue policy of both templates refuses calls without TLS, and
/// every one that lets EventBridge in pins the rules it takes from
/// (aws:SourceArn, not just the account): no other rule of the account
/// can fill a dead-letter queue whose alarm pages someone.
#[test]
fn queue_policies_admit_their_own_rules_only_and_tls_only() {
    let central = support::template::parsed();
    let member = support::template::parsed_file("member.yaml");
    let mut seen = 0;
    for (file, doc) in [("template.yaml", &central), ("member.yaml", &member)] {
        for (name, res) in doc["Resources"].as_object().unwrap() {
            if res["Type"] != "AWS::SQS::QueuePolicy" {
                continue;
            }
            seen += 1;
            let queues = res["Properties"]["Queues"].as_array().unwrap();
            assert_eq!(queues.len(), 1, "{file} {name}");
            let queue = json!({"!GetAtt": format!("{}.Arn", queues[0]["!Ref"].as_str().unwrap())});
            let statements = support::template::resource_policy_statements(res);
            assert!(
                statements.iter().any(|st| is_tls_only(st, &queue)),
                "{file} {name}: a Deny of every call without TLS"
            );
            for st in statements.iter().filter(|st| st["Effect"] == "Allow") {
                assert_eq!(
                    st["Principal"],
                    json!({"Service": "events.amazonaws.com"}),
                    "{file} {name}: only EventBridge is let in"
                );
                assert_eq!(st["Action"], "sqs:SendMessage", "{file} {name}");
                assert_eq!(st["Resource"], queue, "{file} {name}");
                let pinned = &st["Condition"]["ArnEquals"]["aws:SourceArn"];
                assert!(
                    !pinned.is_null() && st["Condition"].as_object().unwrap().len() == 1,
                    "{file} {name}: pinned to its rules by aws:SourceArn alone: {st}"
                );
            }
        }
    }
    assert_eq!(
        seen, 4,
        "DeadLetterQueue, SweepQueue, FollowUpQueue and ForwardingDeadLetterQueue"
    );
    // The central dead-letter queue takes from exactly the rules SAM makes
    // for the function's events that name it (SAM names each rule
    // function + event).
    let f = function_role(&central);
    let mut rules: Vec<Value> = f["Properties"]["Events"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, e)| {
            e["Properties"]["DeadLetterConfig"]["Arn"] == json!({"!GetAtt": "DeadLetterQueue.Arn"})
        })
        .map(|(name, e)| {
            assert!(
                ["EventBridgeRule", "Schedule"].contains(&e["Type"].as_str().unwrap()),
                "{name}: an event SAM turns into an AWS::Events::Rule"
            );
            json!({"!GetAtt": format!("AuditorFunction{name}.Arn")})
        })
        .collect();
    rules.sort_by_key(|r| r.to_string());
    assert_eq!(
        rules.len(),
        3,
        "the CloudTrail rule, the sweep's schedule and the account list's refresh"
    );
    let st = support::template::resource_policy_statements(
        &central["Resources"]["DeadLetterQueuePolicy"],
    )
    .into_iter()
    .find(|st| st["Effect"] == "Allow")
    .unwrap();
    let mut pinned = st["Condition"]["ArnEquals"]["aws:SourceArn"]
        .as_array()
        .expect("a list of rule ARNs")
        .clone();
    pinned.sort_by_key(|r| r.to_string());
    assert_eq!(pinned, rules);
}

/// The default bus admits from the organisation only what the member
/// stacks' rules forward: Secrets Manager's CloudTrail events, forwarded by
/// a rule (not put by a PutEvents call), and only when the organisation is
/// given. Every other rule on the bus is out of the organisation's reach.
#[test]
fn the_bus_admits_only_the_organisations_forwarded_secrets_manager_events() {
    let doc = support::template::parsed();
    let policy = &doc["Resources"]["OrganisationEventsPolicy"];
    assert_eq!(policy["Type"], "AWS::Events::EventBusPolicy");
    assert_eq!(policy["Condition"], "OrganisationBusPolicy");
    assert_eq!(
        doc["Conditions"]["OrganisationBusPolicy"],
        json!({"!Not": [{"!Equals": [{"!Ref": "OrganizationId"}, ""]}]})
    );
    let p = &policy["Properties"];
    assert_eq!(p["EventBusName"], "default");
    assert!(p.get("Condition").is_none() && p.get("Principal").is_none());
    let st = &p["Statement"];
    assert_eq!(st["Effect"], "Allow");
    assert_eq!(st["Action"], "events:PutEvents");
    assert_eq!(st["Principal"], "*");
    assert_eq!(
        st["Resource"],
        json!({"!Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/default"})
    );
    assert_eq!(
        st["Condition"],
        json!({
            "StringEquals": {"aws:PrincipalOrgID": {"!Ref": "OrganizationId"}},
            "ForAllValues:StringEquals": {
                "events:source": [SOURCE_SECRETS_MANAGER],
                "events:detail-type": [DETAIL_TYPE_API_CALL, DETAIL_TYPE_SERVICE_EVENT]
            },
            "Null": {"events:source": "false", "events:detail-type": "false"},
            "BoolIfExists": {"events:eventBusInvocation": "true"}
        })
    );
    // Exactly what member.yaml's rule forwards.
    let member = support::template::parsed_file("member.yaml");
    let pattern =
        &member["Resources"]["ForwardSecretsManagerApiCalls"]["Properties"]["EventPattern"];
    let admitted = &st["Condition"]["ForAllValues:StringEquals"];
    assert_eq!(admitted["events:source"], pattern["source"]);
    assert_eq!(admitted["events:detail-type"], pattern["detail-type"]);
}

/// AllowForceOverwrite and AllowedRegions hold in IAM, in the central
/// function's role and in the member role alike: ReplicateSecretToRegions
/// is denied with ForceOverwriteReplicaSecret unless overwriting is
/// allowed, and allowed only to the allowed Regions when they are given.
#[test]
fn iam_holds_the_remediation_rules_in_both_templates() {
    let central = support::template::parsed();
    let member = support::template::parsed_file("member.yaml");
    let replicate = "secretsmanager:ReplicateSecretToRegions";
    for (file, doc, role) in [
        ("template.yaml", &central, function_role(&central)),
        ("member.yaml", &member, &member["Resources"]["MemberRole"]),
    ] {
        let allows: Vec<_> = statements(role, "Allow")
            .into_iter()
            .filter(|(st, _)| support::template::actions(st).contains(&replicate.to_string()))
            .collect();
        assert_eq!(allows.len(), 1, "{file}: one statement allows {replicate}");
        let (st, when) = &allows[0];
        assert_eq!(when.as_deref(), Some("RemediationOn"), "{file}");
        assert_eq!(support::template::actions(st), [replicate], "{file}");
        assert_eq!(
            st["Condition"],
            json!({"!If": [
                "ReplicaRegionsRestricted",
                {
                    "ForAllValues:StringEquals": {"secretsmanager:AddReplicaRegions":
                        {"!Split": [",", {"!Ref": "AllowedRegions"}]}},
                    "Null": {"secretsmanager:AddReplicaRegions": "false"}
                },
                no_value()
            ]}),
            "{file}: with AllowedRegions, only to those Regions"
        );
        let denials = denials(role);
        assert_eq!(denials.len(), 1, "{file}: {denials:?}");
        let (st, when) = &denials[0];
        assert_eq!(when.as_deref(), Some("ForceOverwriteForbidden"), "{file}");
        assert_eq!(st["Action"], replicate, "{file}");
        assert_eq!(st["Resource"], "*", "{file}: whatever the secret");
        assert_eq!(
            st["Condition"],
            json!({"Bool": {"secretsmanager:ForceOverwriteReplicaSecret": "true"}}),
            "{file}: never with force overwrite unless it is allowed"
        );
        let c = &doc["Conditions"];
        assert_eq!(
            c["ForceOverwriteForbidden"],
            json!({"!Equals": [{"!Ref": "AllowForceOverwrite"}, "false"]}),
            "{file}"
        );
        assert_eq!(
            c["ReplicaRegionsRestricted"],
            json!({"!Not": [{"!Equals": [{"!Ref": "AllowedRegions"}, ""]}]}),
            "{file}"
        );
        // IAM compares each Region exactly; the code trims spaces, so the
        // list has none.
        assert_eq!(
            doc["Parameters"]["AllowedRegions"]["AllowedPattern"], "^([a-z0-9-]+(,[a-z0-9-]+)*)?$",
            "{file}"
        );
    }
    // The member stack takes the same parameters, and the central function
    // reads the ones IAM holds.
    for param in ["AllowForceOverwrite", "AllowedRegions"] {
        assert_eq!(
            member["Parameters"][param], central["Parameters"][param],
            "{param}: the same in both templates"
        );
    }
    assert_eq!(
        central["Parameters"]["AllowForceOverwrite"]["Default"],
        "false"
    );
    let env = &function_role(&central)["Properties"]["Environment"]["Variables"];
    assert_eq!(
        env["ALLOW_FORCE_OVERWRITE"],
        json!({"!Ref": "AllowForceOverwrite"})
    );
    assert_eq!(env["ALLOWED_REGIONS"], json!({"!Ref": "AllowedRegions"}));
}
