//! Property tests over thousands of generated events and key policies:
//! nothing panics, what is invalid gets a clean, named error, and the
//! verdicts keep their invariants.

use proptest::prelude::*;
use replica_auditor::event::{self, EventError, HandledEvent, Incoming};
use replica_auditor::policy::{self, PolicyError, PolicyIssue, Service, Trust};
use serde_json::{Value, json};

const OWN: &str = "111122223333";
const OWN_ORG: &str = "o-a1b2c3d4e5";

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[ -~]{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "*",
            "Allow",
            "Deny",
            "kms:*",
            "arn:aws:iam::999988887777:root",
            OWN,
            "AWS"
        ])
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "eventName",
                    "requestParameters",
                    "responseElements",
                    "secretId",
                    "name",
                    "arn",
                    "aRN",
                    "userIdentity",
                    "errorCode",
                    "Effect",
                    "Principal",
                    "NotPrincipal",
                    "Action",
                    "NotAction",
                    "Condition",
                    "Statement",
                    "Sid",
                    "AWS",
                    "x",
                ])
                .prop_map(str::to_string),
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn envelope(detail: Value) -> Value {
    json!({"version": "0", "id": "1", "detail-type": "AWS API Call via CloudTrail", "source": "aws.secretsmanager",
           "account": "123456789012", "time": "2026-11-20T10:00:00Z", "region": "us-west-2", "resources": [], "detail": detail})
}

fn secret_ids() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9/_+=.@-]{1,64}",
        "[a-zA-Z0-9/_+=.@-]{1,40}"
            .prop_map(|n| format!("arn:aws:secretsmanager:eu-west-1:123456789012:secret:{n}")),
        "[a-zA-Z0-9/_+=.@-]{1,40}".prop_map(|n| format!(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:{n}-AbCdEf"
        )),
    ]
}

fn identities() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        Just(json!({})),
        Just(json!({"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/a"})),
        Just(
            json!({"type": "AssumedRole", "sessionContext": {"sessionIssuer": {"arn": "arn:aws:iam::123456789012:role/r"}}})
        ),
        Just(json!({"type": "AWSService", "invokedBy": "secretsmanager.amazonaws.com"})),
        Just(json!({"type": "Root", "principalId": "123456789012"})),
    ]
}

fn is_named(e: &EventError) -> bool {
    !e.to_string().is_empty()
        && matches!(
            e,
            EventError::Shape { .. }
                | EventError::NoSecret { .. }
                | EventError::Unsupported { .. }
                | EventError::NotJson(_)
                | EventError::TooLarge(_)
                | EventError::TooDeep
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(raw in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Err(e) = event::parse_bytes(&raw) {
            prop_assert!(is_named(&e));
        }
    }

    #[test]
    fn random_details_parse_or_fail_cleanly(detail in any_json(), name in prop::sample::select(vec![
        "CreateSecret", "ReplicateSecretToRegions", "RemoveRegionsFromReplication", "StopReplicationToReplica", "GetSecretValue",
    ])) {
        let mut d = detail;
        if let Value::Object(m) = &mut d {
            m.insert("eventName".into(), json!(name));
        }
        match event::parse_value(envelope(d)) {
            Ok(Incoming::ApiCall(t)) => {
                prop_assert!(!t.secret.id.trim().is_empty());
                prop_assert!(!t.secret.id.chars().any(char::is_control));
            }
            Ok(Incoming::Ignored { event_name }) => prop_assert_eq!(event_name, "GetSecretValue"),
            Ok(Incoming::Sweep(_)) => prop_assert!(false, "a CloudTrail envelope is never a sweep"),
            Ok(Incoming::SweepCells(_)) => prop_assert!(false, "a CloudTrail envelope is never an SQS batch"),
            Ok(Incoming::RefreshAccounts) => prop_assert!(false, "a CloudTrail envelope is never the refresh"),
            Err(e) => prop_assert!(is_named(&e), "{e}"),
        }
    }

    #[test]
    fn realistic_events_always_parse(id in secret_ids(), ident in identities(), err in prop::option::of("[A-Za-z]{1,20}"),
                                     which in 0usize..4, arn_in_response in any::<bool>()) {
        let ev = HandledEvent::ALL[which];
        let key = if ev == HandledEvent::CreateSecret { "name" } else { "secretId" };
        let response = if arn_in_response && err.is_none() {
            json!({"arn": format!("arn:aws:secretsmanager:us-west-2:123456789012:secret:{}-XyZaBc", id.rsplit(':').next().unwrap())})
        } else {
            Value::Null
        };
        let detail = json!({"eventName": ev.as_str(), "eventID": "e", "awsRegion": "us-west-2", "userIdentity": ident,
                            "requestParameters": {key: id}, "responseElements": response, "errorCode": err});
        let raw = serde_json::to_vec(&envelope(detail)).unwrap();
        let Incoming::ApiCall(t) = event::parse_bytes(&raw).expect("a realistic event parses") else {
            return Err(TestCaseError::fail("not an API call"));
        };
        prop_assert_eq!(t.event, ev);
        if arn_in_response && t.error_code.is_none() {
            prop_assert_eq!(t.secret.arn_region.as_deref(), Some("us-west-2"));
        } else {
            prop_assert_eq!(t.secret.id, id);
        }
    }

    #[test]
    fn random_policies_never_panic(doc in any_json()) {
        match policy::analyse(&doc.to_string(), &Trust { own_account: Some(OWN), ..Trust::default() }) {
            Ok(_) => {}
            Err(e) => prop_assert!(matches!(e, PolicyError::Shape(_) | PolicyError::NotJson(_) | PolicyError::TooLarge(_)) && !e.to_string().is_empty()),
        }
    }

    #[test]
    fn random_text_policies_are_refused_as_text_or_as_shape(doc in "[ -~]{0,200}") {
        // Text that is not JSON is NotJson; JSON that is not a policy is a
        // Shape error; what analyses is JSON.
        let is_json = serde_json::from_str::<Value>(&doc).is_ok();
        match policy::analyse(&doc, &Trust::default()) {
            Err(PolicyError::NotJson(_)) => prop_assert!(!is_json, "{doc:?} is JSON"),
            Err(PolicyError::Shape(_)) | Ok(_) => prop_assert!(is_json, "{doc:?} is not JSON"),
            Err(e) => prop_assert!(false, "{doc:?}: {e}"),
        }
    }

    #[test]
    fn legal_policies_keep_their_invariants(statements in prop::collection::vec(statement(), 1..6), secret in any::<bool>()) {
        // The same grammar as a key policy and as a secret's resource policy.
        let (service, ns) = if secret { (Service::SecretsManager, "secretsmanager:") } else { (Service::Kms, "kms:") };
        let analyse = |doc: &Value| policy::analyse_policy(service, &doc.to_string().replace("kms:", ns), &trust());
        let any_deny = statements.iter().any(|s| s["Effect"] == "Deny");
        let doc = json!({"Version": "2012-10-17", "Statement": statements});
        let issues = analyse(&doc).expect("legal shapes always analyse");
        // Untrusted accounts and organisations are never our own.
        for i in &issues {
            match i {
                PolicyIssue::UntrustedAccount { account, .. } => prop_assert_ne!(account.as_str(), OWN),
                PolicyIssue::UntrustedOrg { org, .. } => prop_assert_ne!(org.as_str(), OWN_ORG),
                _ => {}
            }
        }
        // A blanket Deny for everyone takes every grant back.
        let mut denied = doc.clone();
        denied["Statement"].as_array_mut().unwrap().push(json!({"Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "*"}));
        prop_assert_eq!(analyse(&denied).unwrap(), vec![]);
        // An unconditional open Allow of everything is always public.
        let mut opened = doc;
        opened["Statement"].as_array_mut().unwrap().push(json!({"Sid": "Open", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:*", "Resource": "*"}));
        let opened_issues = analyse(&opened).unwrap();
        // Where no statement denies anything, nothing can take it back.
        if !any_deny {
            let public = PolicyIssue::Public { sid: Some("Open".into()) };
            prop_assert!(opened_issues.contains(&public), "{opened_issues:?}");
        }
    }
}

fn trust() -> Trust<'static> {
    static ORGS: std::sync::LazyLock<Vec<String>> =
        std::sync::LazyLock::new(|| vec![OWN_ORG.to_string()]);
    Trust {
        own_account: Some(OWN),
        trusted: &[],
        trusted_orgs: &ORGS,
    }
}

/// One statement in a legal shape, with principals, actions and
/// conditions drawn from the forms AWS accepts.
fn statement() -> impl Strategy<Value = Value> {
    let principal = prop_oneof![
        Just(json!("*")),
        Just(json!({"AWS": "*"})),
        Just(json!({"AWS": format!("arn:aws:iam::{OWN}:root")})),
        Just(json!({"AWS": ["999988887777", format!("arn:aws:iam::{OWN}:role/app")]})),
        Just(json!({"Service": "secretsmanager.amazonaws.com"})),
        Just(json!({"Federated": "arn:aws:iam::444455556666:saml-provider/idp"})),
        // Outside what KMS accepts, but an old document may hold them.
        Just(json!({"AWS": "arn:aws:iam::*:root"})),
        Just(json!({"AWS": "arn:aws:iam::1111*:role/app"})),
        Just(json!({"AWS": "AROAJQABLZS4A3QDU576Q"})),
    ];
    let action = prop_oneof![
        Just(json!("kms:*")),
        Just(json!("*")),
        Just(json!("kms:Decrypt")),
        Just(json!(["kms:Decrypt", "kms:GenerateDataKey*"])),
    ];
    let condition = prop_oneof![
        Just(None),
        Just(Some(json!({"StringEquals": {"aws:PrincipalAccount": OWN}}))),
        Just(Some(
            json!({"StringEquals": {"kms:CallerAccount": "999988887777"}})
        )),
        Just(Some(
            json!({"StringEquals": {"aws:PrincipalOrgID": "o-abc"}})
        )),
        Just(Some(
            json!({"StringNotEquals": {"aws:PrincipalAccount": [OWN]}})
        )),
        Just(Some(
            json!({"StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}})
        )),
        Just(Some(
            json!({"StringEqualsIfExists": {"aws:SourceAccount": OWN}})
        )),
        Just(Some(json!({"Bool": {"aws:SecureTransport": "true"}}))),
        Just(Some(json!({"StringEquals": {"aws:SourceOwner": OWN}}))),
        Just(Some(
            json!({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::999988887777:role/*"}})
        )),
        Just(Some(
            json!({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/*"}})
        )),
        Just(Some(
            json!({"StringLike": {"aws:SourceArn": "arn:aws:sns:*:111122223333:t"}})
        )),
        Just(Some(
            json!({"ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": [format!("{OWN_ORG}/r-ab12/*")]}})
        )),
        Just(Some(
            json!({"ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": ["o-f0r31gn0rg1/*"]}})
        )),
        Just(Some(json!({"StringEquals": {"aws:PrincipalAccount": "*"}}))),
        Just(Some(
            json!({"ArnLike": {"aws:SourceArn": "arn:aws:s3:::bucket"}})
        )),
    ];
    (
        prop::sample::select(vec!["Allow", "Deny"]),
        any::<bool>(),
        principal,
        any::<bool>(),
        action,
        condition,
        prop::option::of("[A-Za-z0-9]{1,10}"),
    )
        .prop_map(
            |(effect, not_principal, principal, not_action, action, condition, sid)| {
                let mut s = json!({"Effect": effect, "Resource": "*"});
                s[if not_principal {
                    "NotPrincipal"
                } else {
                    "Principal"
                }] = principal;
                s[if not_action { "NotAction" } else { "Action" }] = action;
                if let Some(c) = condition {
                    s["Condition"] = c;
                }
                if let Some(sid) = sid {
                    s["Sid"] = json!(sid);
                }
                s
            },
        )
}

// Cross-account replication events (issue 26): the new calls and
// CreateSecret's crossAccountPrimaryARN, with any value in the new fields,
// parse or fail cleanly; a well-formed one always parses and keeps the
// other secret's ARN exactly when it is a full secret ARN.
fn cross_account_values() -> impl Strategy<Value = Value> {
    prop_oneof![
        any_json(),
        "[a-zA-Z0-9/_+=.@-]{1,40}".prop_map(|n| json!(format!(
            "arn:aws:secretsmanager:us-west-2:210987654321:secret:{n}"
        ))),
        "[ -~]{0,60}".prop_map(|s| json!(s)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn cross_account_events_parse_or_fail_cleanly(
        which in prop::sample::select(vec![
            ("AssociateCrossAccountReplica", "crossAccountReplicaARN"),
            ("DisassociateCrossAccountReplica", "crossAccountReplicaARN"),
            ("CreateSecret", "crossAccountPrimaryARN"),
        ]),
        id in secret_ids(),
        other in cross_account_values(),
        restriction in cross_account_values(),
        role in cross_account_values(),
    ) {
        let (name, other_key) = which;
        let id_key = if name == "CreateSecret" { "name" } else { "secretId" };
        let detail = json!({"eventName": name, "awsRegion": "us-west-2",
            "requestParameters": {id_key: id, other_key: other, "replicaRestriction": restriction, "replicationRoleARN": role}});
        let raw = serde_json::to_vec(&envelope(detail)).unwrap();
        let Incoming::ApiCall(t) = event::parse_bytes(&raw).expect("a well-formed event parses") else {
            return Err(TestCaseError::fail("not an API call"));
        };
        prop_assert_eq!(t.event.as_str(), name);
        let full_arn = other.as_str().and_then(|s| event::parse_secret_arn(s.trim())).is_some()
            && !other.as_str().unwrap().chars().any(char::is_control);
        let kept = t.cross_account.as_ref().and_then(|x| x.other_arn.clone());
        prop_assert_eq!(kept.is_some(), full_arn, "{:?}", other);
        if name == "CreateSecret" {
            prop_assert_eq!(t.cross_account.is_some(), full_arn);
        } else {
            prop_assert!(t.cross_account.is_some());
        }
    }
}

proptest! {
    /// Issue 25: UpdateSecret is handled exactly when its request carried a
    /// value (the redacted `secretString` / `secretBinary` keys), and
    /// UpdateSecretVersionStage exactly when it moves AWSCURRENT; other
    /// requests of theirs are ignored, never an error.
    #[test]
    fn only_calls_making_a_new_current_version_are_handled(
        string in any::<bool>(), binary in any::<bool>(),
        stage in prop::sample::select(vec!["AWSCURRENT", "AWSPENDING", "AWSPREVIOUS", "custom"]),
        moved in any::<bool>(),
    ) {
        let mut update = json!({"secretId": "production/DBWest"});
        if string { update["secretString"] = json!("HIDDEN_DUE_TO_SECURITY_REASONS"); }
        if binary { update["secretBinary"] = json!("HIDDEN_DUE_TO_SECURITY_REASONS"); }
        let mut labels = json!({"secretId": "production/DBWest", "versionStage": stage});
        if moved { labels["moveToVersionId"] = json!("EXAMPLE1-90ab-cdef-fedc-ba987EXAMPLE"); }
        for (name, params, handled) in [
            ("UpdateSecret", update, string || binary),
            ("UpdateSecretVersionStage", labels, stage == "AWSCURRENT" && moved),
        ] {
            let detail = json!({"eventName": name, "awsRegion": "us-west-2", "requestParameters": params});
            match event::parse_value(envelope(detail)) {
                Ok(Incoming::ApiCall(t)) => {
                    prop_assert!(handled, "{name} handled");
                    prop_assert_eq!(t.event.as_str(), name);
                }
                Ok(Incoming::Ignored { event_name }) => {
                    prop_assert!(!handled, "{name} ignored");
                    prop_assert_eq!(event_name, name);
                }
                other => prop_assert!(false, "{name}: {other:?}"),
            }
        }
    }
}

proptest! {
    /// Issue 25: Secrets Manager's rotation service events. Under their own
    /// detail-type they name the secret in `additionalEventData.SecretId`
    /// and are handled; under the API call's they are ignored; any other
    /// `additionalEventData` parses or fails with a named error.
    #[test]
    fn rotation_service_events_parse_by_their_secret_id(
        id in secret_ids(), ident in identities(), junk in any_json(),
        which in 0usize..3, service in any::<bool>(), well_formed in any::<bool>(),
    ) {
        let ev = [HandledEvent::RotationSucceeded, HandledEvent::RotationFailed, HandledEvent::RotationAbandoned][which];
        let data = if well_formed { json!({"SecretId": id}) } else { json!({"SecretId": junk}) };
        let mut v = envelope(json!({"eventName": ev.as_str(), "awsRegion": "us-west-2", "userIdentity": ident,
                                   "requestParameters": null, "responseElements": null,
                                   "additionalEventData": data, "eventType": "AwsServiceEvent"}));
        if service {
            v["detail-type"] = json!(event::DETAIL_TYPE_SERVICE_EVENT);
        }
        match event::parse_value(v) {
            Ok(Incoming::ApiCall(t)) => {
                prop_assert!(service, "handled only as a service event");
                prop_assert_eq!(t.event, ev);
                prop_assert!(!t.secret.id.trim().is_empty() && !t.secret.id.chars().any(char::is_control));
                if well_formed {
                    prop_assert_eq!(t.secret.id, id);
                }
            }
            Ok(Incoming::Ignored { event_name }) => {
                prop_assert!(!service, "a service event is handled or refused");
                prop_assert_eq!(event_name, ev.as_str());
            }
            Err(e) => {
                prop_assert!(service && !well_formed, "{e}");
                prop_assert!(matches!(e, EventError::NoSecret { .. }), "{e}");
            }
            other => prop_assert!(false, "{other:?}"),
        }
    }
}
