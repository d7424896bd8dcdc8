//! template.yaml against the code: the EventBridge pattern names exactly the
//! events the code handles, the schedule feeds the sweep, and nothing is lost.

mod support;

use std::path::Path;

use replica_auditor::event::{
    DETAIL_TYPE_API_CALL, DETAIL_TYPE_SERVICE_EVENT, HandledEvent, SOURCE_SECRETS_MANAGER,
};
use serde_json::{Value, json};

fn template() -> Value {
    support::template::parsed()
}

fn function(t: &Value) -> &Value {
    &t["Resources"]["AuditorFunction"]["Properties"]
}

#[test]
fn event_pattern_and_code_handle_the_same_events() {
    let t = template();
    let pattern = &function(&t)["Events"]["SecretsManagerApiCalls"]["Properties"]["Pattern"];
    assert_eq!(pattern["source"], json!([SOURCE_SECRETS_MANAGER]));
    // The calls, and the rotation service events (issue 25).
    assert_eq!(
        pattern["detail-type"],
        json!([DETAIL_TYPE_API_CALL, DETAIL_TYPE_SERVICE_EVENT])
    );
    let mut in_template: Vec<&str> = pattern["detail"]["eventName"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    in_template.sort_unstable();
    let mut in_code: Vec<&str> = HandledEvent::ALL.iter().map(|e| e.as_str()).collect();
    in_code.sort_unstable();
    assert_eq!(
        in_template, in_code,
        "the pattern names every event the code handles, and no other"
    );
}

#[test]
fn the_schedule_delivers_the_event_the_sweep_runs_on() {
    let t = template();
    let sweep = &function(&t)["Events"]["Sweep"];
    // An EventBridge rule (not EventBridge Scheduler) sends the
    // "Scheduled Event" shape that event::parse_value turns into a sweep.
    assert_eq!(sweep["Type"], "Schedule");
    assert_eq!(
        sweep["Properties"]["Schedule"],
        json!({"!Ref": "SweepSchedule"})
    );
    assert_eq!(t["Parameters"]["SweepSchedule"]["Default"], "rate(6 hours)");
    let sample =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("events/scheduled-sweep.json"))
            .unwrap();
    assert!(matches!(
        replica_auditor::event::parse_bytes(&sample),
        Ok(replica_auditor::event::Incoming::Sweep(_))
    ));
}

#[test]
fn the_account_list_is_refreshed_ahead_wherever_the_organisation_is_listed() {
    let t = template();
    let refresh = &function(&t)["Events"]["AccountListRefresh"];
    assert_eq!(refresh["Type"], "Schedule");
    let p = &refresh["Properties"];
    // Its period is the one the refresh's rule is sized for.
    assert_eq!(
        p["Schedule"],
        format!(
            "rate({} minutes)",
            replica_auditor::roster::AHEAD_PERIOD_SECONDS / 60
        )
    );
    // Its input is the whole event Lambda gets: the refresh, as the sample.
    let input = p["Input"].as_str().unwrap();
    assert_eq!(
        replica_auditor::event::parse_bytes(input.as_bytes()),
        Ok(replica_auditor::event::Incoming::RefreshAccounts)
    );
    let sample = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("events/refresh-organisation-accounts.json"),
    )
    .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&sample).unwrap(),
        serde_json::from_str::<Value>(input).unwrap()
    );
    // On when the organisation is listed (no ACCOUNT_IDS) and other
    // accounts' events or cells come in; else the rule is there, disabled.
    assert_eq!(
        p["State"],
        json!({"!If": ["ListedAhead", "ENABLED", "DISABLED"]})
    );
    assert_eq!(
        t["Conditions"]["ListedAhead"],
        json!({"!And": [{"!Not": [{"!Condition": "AccountListGiven"}]},
            {"!Or": [{"!Condition": "OrgSweepOn"}, {"!Condition": "OrganisationBusPolicy"}]}]})
    );
}

#[test]
fn nothing_is_lost() {
    let t = template();
    let f = function(&t);
    let dlq = json!({"!GetAtt": "DeadLetterQueue.Arn"});
    assert_eq!(
        f["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Destination"],
        dlq
    );
    assert_eq!(f["EventInvokeConfig"]["MaximumRetryAttempts"], 2);
    for ev in ["SecretsManagerApiCalls", "Sweep", "AccountListRefresh"] {
        assert_eq!(
            f["Events"][ev]["Properties"]["DeadLetterConfig"]["Arn"], dlq,
            "{ev}"
        );
        assert!(
            f["Events"][ev]["Properties"]["RetryPolicy"]["MaximumEventAgeInSeconds"].is_number(),
            "{ev}"
        );
    }
    let r = &t["Resources"];
    // The dead-letter queue takes the rules' undeliverable events: SAM
    // names each rule function + event.
    let senders = &r["DeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]["Condition"]
        ["ArnEquals"]["aws:SourceArn"];
    for ev in ["SecretsManagerApiCalls", "Sweep", "AccountListRefresh"] {
        let rule = json!({"!GetAtt": format!("AuditorFunction{ev}.Arn")});
        assert!(
            senders.as_array().unwrap().contains(&rule),
            "{ev}: {senders}"
        );
    }
    assert_eq!(r["ErrorsAlarm"]["Properties"]["MetricName"], "Errors");
    assert_eq!(r["ThrottlesAlarm"]["Properties"]["MetricName"], "Throttles");
    assert_eq!(
        r["DeadLetterAlarm"]["Properties"]["MetricName"],
        "ApproximateNumberOfMessagesVisible"
    );
    // The findings topic, or (a FIFO findings topic cannot take alarms) the
    // stack's standard operations topic.
    let topic = json!([{"!If": ["OperationsTopicNeeded", {"!Ref": "OperationsTopic"},
        {"!If": ["OwnTopic", {"!Ref": "FindingsTopic"}, {"!Ref": "FindingsTopicArn"}]}]}]);
    assert_eq!(
        t["Conditions"]["OperationsTopicNeeded"],
        json!({"!Condition": "OwnFifoTopic"})
    );
    for alarm in ["ErrorsAlarm", "ThrottlesAlarm", "DeadLetterAlarm"] {
        assert_eq!(
            r[alarm]["Properties"]["AlarmActions"], topic,
            "{alarm} alerts the findings topic"
        );
    }
    // The topic and the dead-letter queue are encrypted.
    assert_eq!(
        r["FindingsTopic"]["Properties"]["KmsMasterKeyId"],
        json!({"!Ref": "FindingsKey"})
    );
    assert_eq!(
        r["DeadLetterQueue"]["Properties"]["KmsMasterKeyId"],
        json!({"!Ref": "FindingsKey"})
    );
}

#[test]
fn the_function_is_built_and_sized_as_documented() {
    let t = template();
    let f = &t["Resources"]["AuditorFunction"];
    assert_eq!(f["Metadata"]["BuildMethod"], "rust-cargolambda");
    assert_eq!(
        f["Metadata"]["BuildProperties"]["Binary"], "replica-auditor-lambda",
        "SAM builds the Lambda binary, not the command line"
    );
    let p = &f["Properties"];
    assert_eq!(p["Runtime"], "provided.al2023");
    assert_eq!(p["Architectures"], json!([{"!Ref": "Architecture"}]));
    assert_eq!(t["Parameters"]["Architecture"]["Default"], "arm64");
    assert_eq!(p["MemorySize"], 128);
    assert_eq!(p["LoggingConfig"]["LogFormat"], "JSON");
    // Every setting the code reads is wired from a parameter or resource.
    let env = p["Environment"]["Variables"].as_object().unwrap();
    for var in [
        "FINDINGS_TOPIC_ARN",
        "CHAT_TOPIC_ARN",
        "ALLOWED_REGIONS",
        "REQUIRED_REGIONS",
        "REQUIRE_CUSTOMER_MANAGED_KEY",
        "TRUSTED_ACCOUNT_IDS",
        "TRUSTED_ORG_IDS",
        "MIN_SEVERITY",
        "REMEDIATION",
        "ALLOW_FORCE_OVERWRITE",
        "SWEEP_REGIONS",
        "STATE_TABLE",
        "REMEDIATION_WRITES_PER_SECOND",
        "SWEEP_POLICY_REFRESH",
        "SWEEP_CONCURRENCY",
        "RETRY_MAX_ATTEMPTS",
        "RETRY_VERIFY_SECONDS",
        "METRICS",
        "RUST_LOG",
    ] {
        assert!(env.contains_key(var), "{var} is not set by the template");
    }
}

#[test]
fn the_state_table_is_as_the_code_uses_it() {
    let t = template();
    let table = &t["Resources"]["StateTable"];
    assert_eq!(table["Type"], "AWS::DynamoDB::Table");
    // Created unless the stack is given a central one.
    assert_eq!(table["Condition"], "OwnStateTable");
    assert_eq!(
        t["Conditions"]["OwnStateTable"],
        json!({"!Equals": [{"!Ref": "StateTableArn"}, ""]})
    );
    let p = &table["Properties"];
    assert_eq!(p["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(
        p["KeySchema"],
        json!([{"AttributeName": "pk", "KeyType": "HASH"}])
    );
    assert_eq!(
        p["AttributeDefinitions"],
        json!([{"AttributeName": "pk", "AttributeType": "S"}])
    );
    assert_eq!(
        p["TimeToLiveSpecification"],
        json!({"AttributeName": "expires_at", "Enabled": true})
    );
    assert_eq!(p["SSESpecification"]["SSEEnabled"], true);
    // The Security Hub findings held and the policy ledgers would not come
    // back by themselves: point-in-time recovery.
    assert_eq!(
        p["PointInTimeRecoverySpecification"],
        json!({"PointInTimeRecoveryEnabled": true})
    );
    let env = &function(&t)["Environment"]["Variables"];
    assert_eq!(
        env["STATE_TABLE"],
        json!({"!If": ["OwnStateTable", {"!Ref": "StateTable"}, {"!Ref": "StateTableArn"}]})
    );
    // The parameter's range is the code's.
    let writes = &t["Parameters"]["RemediationWritesPerSecond"];
    let range = replica_auditor::config::WRITES_PER_SECOND_RANGE;
    assert_eq!(
        writes["Default"],
        replica_auditor::config::DEFAULT_WRITES_PER_SECOND
    );
    assert_eq!(writes["MinValue"], *range.start());
    assert_eq!(writes["MaxValue"], *range.end());
}

/// The dashboard graphs every metric the code emits, in the code's
/// namespace, and names no metric the code does not emit.
#[test]
fn the_dashboard_shows_every_metric_the_code_emits() {
    use replica_auditor::metrics;
    let t = template();
    let dash = &t["Resources"]["MetricsDashboard"];
    assert_eq!(dash["Type"], "AWS::CloudWatch::Dashboard");
    let body = dash["Properties"]["DashboardBody"]["!Sub"]
        .as_str()
        .expect("the body is one !Sub string");
    // ${AWS::Region} is the only substitution; the rest is JSON.
    let body: Value = serde_json::from_str(&body.replace("${AWS::Region}", "us-east-1"))
        .expect("the dashboard body is JSON");
    // Per dimension set: the metrics on {Trigger, Region}, and those on
    // {Region} alone (freshness).
    let schemas = [
        (
            format!("{{{},Trigger,Region}}", metrics::NAMESPACE),
            metrics::metric_names(),
        ),
        (
            format!("{{{},Region}}", metrics::NAMESPACE),
            metrics::region_metric_names(),
        ),
    ];
    let mut shown: Vec<Vec<String>> = vec![Vec::new(); schemas.len()];
    for w in body["widgets"].as_array().unwrap() {
        assert_eq!(w["properties"]["region"], "us-east-1");
        for m in w["properties"]["metrics"].as_array().unwrap() {
            let e = m[0]["expression"].as_str().unwrap();
            let schema = schemas
                .iter()
                .position(|(s, _)| e.contains(s.as_str()))
                .unwrap_or_else(|| panic!("the code's namespace and dimensions: {e}"));
            let name = e
                .split("MetricName=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap();
            shown[schema].push(name.to_string());
        }
    }
    for (shown, (schema, names)) in shown.iter_mut().zip(&schemas) {
        shown.sort();
        let mut emitted: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        emitted.sort();
        assert_eq!(*shown, emitted, "{schema}");
    }
    assert_eq!(metrics::REGION_DIMENSIONS, ["Region"]);
    assert_eq!(
        metrics::DIMENSIONS,
        ["Trigger", "Region"],
        "the SEARCH schema above"
    );
}

// --- issue 15 org sweep (branch issue-15-org) ---

/// The org sweep's queue, dead-letter queue and event source mapping as the
/// code relies on them: the redrive policy's maxReceiveCount is the same
/// parameter as the function's SWEEP_MAX_RECEIVE_COUNT (so the last
/// delivery the code counts failed is the queue's last), the visibility
/// timeout is at least six times the function's timeout (Lambda's SQS
/// guide), batch item failures are on, and all of it exists only when the
/// org sweep is on.
#[test]
fn the_org_sweep_queue_is_wired_as_the_code_reads_it() {
    let t = template();
    let r = &t["Resources"];
    assert_eq!(
        t["Conditions"]["OrgSweepOn"],
        json!({"!Equals": [{"!Ref": "OrgSweep"}, "on"]})
    );
    assert_eq!(
        t["Parameters"]["OrgSweep"]["Default"], "off",
        "off unless asked"
    );
    for name in [
        "SweepQueue",
        "SweepDeadLetterQueue",
        "SweepCells",
        "SweepDeadLetterAlarm",
    ] {
        assert_eq!(r[name]["Condition"], "OrgSweepOn", "{name}");
    }
    let queue = &r["SweepQueue"]["Properties"];
    let timeout = function(&t)["Timeout"].as_u64().unwrap();
    assert!(queue["VisibilityTimeout"].as_u64().unwrap() >= 6 * timeout);
    assert_eq!(
        queue["RedrivePolicy"],
        json!({"deadLetterTargetArn": {"!GetAtt": "SweepDeadLetterQueue.Arn"},
               "maxReceiveCount": {"!Ref": "SweepMaxReceiveCount"}})
    );
    let env = &function(&t)["Environment"]["Variables"];
    assert_eq!(
        env["SWEEP_MAX_RECEIVE_COUNT"],
        json!({"!Ref": "SweepMaxReceiveCount"})
    );
    assert_eq!(
        env["SWEEP_QUEUE_URL"],
        json!({"!If": ["OrgSweepOn", {"!Ref": "SweepQueue"}, ""]})
    );
    let count = &t["Parameters"]["SweepMaxReceiveCount"];
    assert_eq!(
        count["Default"],
        replica_auditor::config::DEFAULT_MAX_RECEIVE_COUNT
    );
    assert_eq!(
        (count["MinValue"].as_u64(), count["MaxValue"].as_u64()),
        (Some(1), Some(1000))
    );
    let esm = &r["SweepCells"];
    assert_eq!(esm["Type"], "AWS::Lambda::EventSourceMapping");
    let p = &esm["Properties"];
    assert_eq!(p["EventSourceArn"], json!({"!GetAtt": "SweepQueue.Arn"}));
    assert_eq!(p["FunctionName"], json!({"!Ref": "AuditorFunction"}));
    assert_eq!(
        p["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    assert_eq!(p["BatchSize"], 1);
    assert_eq!(
        p["ScalingConfig"]["MaximumConcurrency"],
        json!({"!Ref": "SweepMaximumConcurrency"})
    );
    let concurrency = &t["Parameters"]["SweepMaximumConcurrency"];
    assert_eq!(
        (
            concurrency["MinValue"].as_u64(),
            concurrency["MaxValue"].as_u64()
        ),
        (Some(2), Some(1000)),
        "Lambda's range for MaximumConcurrency"
    );
    // No SAM SQS event: it would attach the polling actions on every queue.
    let events = function(&t)["Events"].as_object().unwrap();
    assert!(events.values().all(|e| e["Type"] != "SQS"));
    assert_eq!(
        r["SweepDeadLetterAlarm"]["Properties"]["Dimensions"][0]["Value"],
        json!({"!GetAtt": "SweepDeadLetterQueue.QueueName"})
    );
}

// The default bus's policy: tests/security.rs
// (the_bus_admits_only_the_organisations_forwarded_secrets_manager_events).
// --- end of the org sweep's checks ---
