//! The organisation-wide sweep against moto: an AWS Organization of
//! several accounts (tests/moto/org_world.py), the sweep queue with its
//! dead-letter queue, and a test-side event source mapping
//! (tests/support/esm.rs) feeding the queue's messages to the function.
//!
//! The function runs in-process (`App::handle_invocation`, the same raw
//! bytes the Lambda binary hands it): the SQS events go through the same
//! parser, each invocation gets its own deadline (the remainder test needs
//! a short one), several consumers run at once without a process each, and
//! a whole sweep takes seconds. The binary's wiring of the same handler is
//! covered by the other suites (tests/remediation.rs, tests/metrics.rs).

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use replica_auditor::aws::AwsClients;
use replica_auditor::engine::{App, Budget};
use serde_json::{Value, json};
use support::esm::{Delivery, EventSourceMapping};
use support::fault_proxy::{Fault, FaultProxy, Rule};
use support::org::{OrgWorld, invoke};
use support::*;

const WEST: &str = "us-west-2";
const EU: &str = "eu-west-1";

fn scheduled() -> Value {
    json!({
        "version": "0", "id": "7a1c9e52-7d0a-4e53-9d35-4a1e1f0c0b11", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012", "time": "2026-11-23T12:00:00Z", "region": WEST,
        "resources": ["arn:aws:events:us-west-2:123456789012:rule/replica-auditor-sweep"], "detail": {}
    })
}

/// The org summaries among the published reports.
fn org_summaries(published: &[Published]) -> Vec<&Published> {
    published
        .iter()
        .filter(|p| p.report["sweep"]["scope"] == "organization")
        .collect()
}

/// The scheduled event through `app`: the sweep planned.
async fn plan(app: &App<AwsClients>) -> Value {
    let planned = app
        .handle(&bytes(&scheduled()), Budget::unlimited())
        .await
        .expect("the sweep is planned");
    assert_eq!(planned["status"], "planned");
    planned
}

/// Every cell through the event source mapping, `consumers` at once, each
/// invocation `seconds` long, until the queue is empty.
async fn deliver(
    org: &OrgWorld,
    app: &App<AwsClients>,
    consumers: usize,
    seconds: f64,
) -> Vec<Delivery> {
    let esm = EventSourceMapping::new(org.sqs().await, &org.sweep_queue).await;
    let all = esm
        .run(consumers, Duration::from_secs(90), |_, event| {
            invoke(app, event, seconds)
        })
        .await;
    cells_only(all)
}

/// The cells' deliveries: the planning messages' (each page of accounts
/// sending its cells) checked to have succeeded and left out.
fn cells_only(all: Vec<Delivery>) -> Vec<Delivery> {
    let (pages, cells): (Vec<Delivery>, Vec<Delivery>) = all
        .into_iter()
        .partition(|d| d.body["schema"] == "replica-auditor.plan/v1");
    assert!(!pages.is_empty(), "the planner sent planning messages");
    assert!(pages.iter().all(|d| !d.failed), "{pages:#?}");
    cells
}

fn cell_of(d: &Delivery) -> String {
    format!(
        "{}/{}",
        d.body["account"].as_str().unwrap(),
        d.body["region"].as_str().unwrap()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_org_sweep_audits_every_cell_and_one_summary_names_the_cell_that_failed() {
    let org = OrgWorld::start(2, 2, None);
    let failing = org.accounts[1].clone();
    // That account's ListSecrets in eu-west-1 fails every time: its
    // eu-west-1 cell can never be listed.
    let proxy = FaultProxy::start(
        &org.world.moto.endpoint,
        vec![
            Rule::new(Some("secretsmanager"), Some(EU), Fault::ServerError)
                .action("ListSecrets")
                .account(&failing),
        ],
    )
    .await;
    let app = org
        .app(&proxy.endpoint, &[("SWEEP_REGIONS", "us-west-2,eu-west-1")])
        .await;

    let planned = plan(&app).await;
    let mut accounts = org.accounts.clone();
    accounts.sort();
    assert_eq!(
        planned["accounts"],
        json!(accounts),
        "ListAccounts, every ACTIVE account"
    );
    assert_eq!(planned["cells"], 6, "3 accounts x 2 Regions");

    let deliveries = deliver(&org, &app, 2, 20.0).await;

    // Every cell delivered; the failing one twice (maxReceiveCount 2),
    // failed both times; the others once, done.
    let failing_cell = format!("{failing}/{EU}");
    let mut by_cell: BTreeMap<String, Vec<&Delivery>> = BTreeMap::new();
    for d in &deliveries {
        by_cell.entry(cell_of(d)).or_default().push(d);
    }
    assert_eq!(by_cell.len(), 6, "{by_cell:#?}");
    for (cell, ds) in &by_cell {
        if *cell == failing_cell {
            assert_eq!(ds.len(), 2, "{cell}");
            assert!(ds.iter().all(|d| d.failed));
            assert_eq!(ds[1].receive_count, 2);
        } else {
            assert_eq!(ds.len(), 1, "{cell}: {ds:#?}");
            assert!(!ds[0].failed, "{cell}");
        }
    }
    // The dead-letter queue took the failing cell's message.
    let dead = drain(&org.sqs().await, &org.dlq).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    let dead: Value = serde_json::from_str(&dead[0]).unwrap();
    assert_eq!(
        (dead["account"].as_str(), dead["region"].as_str()),
        (Some(failing.as_str()), Some(EU))
    );
    assert!(
        proxy.injected("secretsmanager", EU) >= 6,
        "3 attempts per delivery"
    );

    let published = org.world.published().await;
    let summaries = org_summaries(&published);
    assert_eq!(summaries.len(), 1, "exactly one org summary");
    let summary = &summaries[0].report;
    let s = &summary["sweep"];
    eprintln!("org summary: {}", serde_json::to_string(s).unwrap());
    assert_eq!(
        s["cells"],
        json!({"total": 6, "done": 5, "failed": 1, "failed_cells": [failing_cell]})
    );
    assert_eq!(s["accounts"], json!(accounts));
    assert_eq!(s["regions"], json!([WEST, EU]));
    // Counts per account match what was seeded; the failing account's
    // eu-west-1 primary was never listed.
    let mut total_seen = 0;
    for account in &org.accounts {
        let lost = usize::from(*account == failing);
        let seen = org.count(account, "primaries") - lost;
        let audited = org.count(account, "audited") - lost;
        total_seen += seen;
        assert_eq!(
            s["by_account"][account],
            json!({"secrets_seen": seen, "secrets_audited": audited, "secrets_with_findings": 1,
                   "reports_published": 1, "by_code": {"REPLICA_KEY_WEAKER_THAN_PRIMARY": 1}}),
            "{account}"
        );
    }
    assert_eq!(s["secrets_seen"], total_seen);
    assert_eq!(s["by_code"], json!({"REPLICA_KEY_WEAKER_THAN_PRIMARY": 3}));
    assert_eq!(s["reports_published"], 3);
    // The failed cell is an AUDIT_INCOMPLETE finding of the summary.
    let incomplete = finding(summary, "AUDIT_INCOMPLETE");
    assert_eq!(incomplete["region"], EU);
    assert!(
        incomplete["message"]
            .as_str()
            .unwrap()
            .contains(&failing_cell),
        "{incomplete}"
    );
    assert_eq!(
        summaries[0].subject,
        "[MEDIUM] replica-auditor: org sweep of 3 accounts: 3 with findings, 1 of 6 cells failed"
    );
    // One report per weak secret, in its own account.
    let mut reports: Vec<(String, String)> = published
        .iter()
        .filter(|p| p.report.get("sweep").is_none())
        .map(|p| {
            assert_eq!(p.report["trigger"]["source"], "schedule");
            assert_eq!(
                p.codes(),
                vec![(
                    "REPLICA_KEY_WEAKER_THAN_PRIMARY".to_string(),
                    Some(EU.to_string())
                )]
            );
            (
                p.report["secret"]["account"].as_str().unwrap().to_string(),
                p.report["secret"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    reports.sort();
    let expected: Vec<(String, String)> = accounts
        .iter()
        .map(|a| (a.clone(), "production/Weak".to_string()))
        .collect();
    assert_eq!(reports, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_member_role_completes_its_cell_with_audit_incomplete() {
    let org = OrgWorld::start(1, 1, None);
    let member = org.accounts[1].clone();
    let proxy = FaultProxy::start(
        &org.world.moto.endpoint,
        vec![Rule::new(Some("sts"), None, Fault::AccessDenied).account(&member)],
    )
    .await;
    let app = org.app(&proxy.endpoint, &[("SWEEP_REGIONS", WEST)]).await;
    let planned = plan(&app).await;
    assert_eq!(planned["cells"], 2);
    let deliveries = deliver(&org, &app, 1, 20.0).await;
    assert_eq!(
        deliveries.len(),
        2,
        "each cell once: a denial is not retried"
    );
    assert!(deliveries.iter().all(|d| !d.failed));
    assert!(drain(&org.sqs().await, &org.dlq).await.is_empty());

    let published = org.world.published().await;
    let denied: Vec<&Published> = published
        .iter()
        .filter(|p| p.report["secret"]["account"] == member.as_str())
        .collect();
    assert_eq!(denied.len(), 1, "one report for the member's cell");
    let f = finding(&denied[0].report, "AUDIT_INCOMPLETE");
    let message = f["message"].as_str().unwrap();
    assert!(message.contains("sts:AssumeRole"), "{message}");
    assert!(message.contains(&member), "names the account: {message}");
    assert!(message.contains("ReplicaAuditorMember"), "{message}");

    let summaries = org_summaries(&published);
    assert_eq!(summaries.len(), 1);
    let s = &summaries[0].report["sweep"];
    assert_eq!(
        s["cells"],
        json!({"total": 2, "done": 2, "failed": 0, "failed_cells": []})
    );
    assert_eq!(
        s["by_account"][&member],
        json!({"secrets_seen": 0, "secrets_audited": 0, "secrets_with_findings": 1,
               "reports_published": 1, "by_code": {"AUDIT_INCOMPLETE": 1}})
    );
    // Only us-west-2 is swept: EuPrimary's replica there is followed to its
    // primary in eu-west-1, which no cell lists.
    let own = &org.accounts[0];
    assert_eq!(
        s["by_account"][own]["secrets_seen"],
        org.count(own, "primaries")
    );
    assert_eq!(
        s["by_account"][own]["secrets_audited"],
        org.count(own, "audited")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cell_out_of_time_sends_its_remainder_and_counts_each_secret_once() {
    // 45 replicated primaries in one account and Region. The sweep reads
    // resource policies at 25 a second per Region (after a burst of 5), so
    // invocations of 1.6 s (1.1 s of calls before the publish reserve)
    // cannot audit them all: each sends the rest back to the queue.
    let org = OrgWorld::start(0, 45, Some(WEST));
    let app = org
        .app(&org.world.moto.endpoint.clone(), &[("SWEEP_REGIONS", WEST)])
        .await;
    let planned = plan(&app).await;
    assert_eq!(planned["cells"], 1);
    let deliveries = deliver(&org, &app, 1, 1.6).await;
    let parts: Vec<u64> = deliveries
        .iter()
        .map(|d| d.body["part"].as_u64().unwrap())
        .collect();
    assert!(parts.len() >= 2, "at least one remainder: {parts:?}");
    assert_eq!(
        parts,
        (1..=parts.len() as u64).collect::<Vec<_>>(),
        "parts in order"
    );
    assert!(deliveries.iter().all(|d| !d.failed));
    // A remainder carries the primaries not reached (and, here, no token:
    // one page listed them all).
    let second = &deliveries[1].body["position"];
    assert_eq!(second["listed_all"], true);
    assert!(
        !second["pending"].as_array().unwrap().is_empty(),
        "{second}"
    );

    let published = org.world.published().await;
    let summaries = org_summaries(&published);
    assert_eq!(summaries.len(), 1);
    let s = &summaries[0].report["sweep"];
    assert_eq!(
        s["cells"],
        json!({"total": 1, "done": 1, "failed": 0, "failed_cells": []})
    );
    // Every secret seen and audited exactly once across the parts.
    assert_eq!(s["secrets_seen"], 45, "{s}");
    assert_eq!(s["secrets_audited"], 45, "{s}");
    // The secrets are healthy. An audit that could not start a call before
    // the deadline is the remainder's (audited whole later); only one whose
    // call started and was cut by the deadline is reported, AUDIT_INCOMPLETE
    // naming the call and the deadline, as everywhere. None twice.
    let cut: Vec<&str> = published
        .iter()
        .filter(|p| p.report.get("sweep").is_none())
        .map(|p| {
            let f = finding(&p.report, "AUDIT_INCOMPLETE");
            let message = f["message"].as_str().unwrap();
            assert!(message.contains("(invocation deadline)"), "{message}");
            p.report["secret"]["name"].as_str().unwrap()
        })
        .collect();
    let mut once = cut.clone();
    once.sort_unstable();
    once.dedup();
    assert_eq!(once.len(), cut.len(), "{cut:?}");
    // In flight, never more than SWEEP_CONCURRENCY (the default ceiling).
    let ceiling = replica_auditor::config::DEFAULT_SWEEP_CONCURRENCY as usize;
    assert!(
        cut.len() <= ceiling * parts.len(),
        "at most SWEEP_CONCURRENCY per part: {cut:?}"
    );
    assert_eq!(s["secrets_with_findings"], cut.len());
    eprintln!(
        "45 secrets in {} parts of 1.6 s; {} cut by a deadline mid-call",
        parts.len(),
        cut.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeliveries_count_once_and_publish_one_summary_even_when_sns_failed_first() {
    let org = OrgWorld::start(0, 2, None);
    let proxy = FaultProxy::start(&org.world.moto.endpoint, vec![]).await;
    let app = org
        .app(&proxy.endpoint, &[("SWEEP_REGIONS", "us-west-2,eu-west-1")])
        .await;
    plan(&app).await;
    // The scheduled event again (EventBridge delivers at least once): the
    // sweep is planned already, no message is sent twice.
    let again = app
        .handle(&bytes(&scheduled()), Budget::unlimited())
        .await
        .unwrap();
    assert_eq!(again["status"], "already_planned");
    // Take both cells off the queue by hand.
    let mut bodies = drain_cells(&org, &app, 1).await;
    assert_eq!(bodies.len(), 2);
    // The us-west-2 cell (its Weak secret has a report) first; the
    // eu-west-1 cell has no report of its own, only the summary to send.
    bodies.sort_by_key(|b| serde_json::from_str::<Value>(b).unwrap()["cell"].as_u64());
    let queue_arn = org.sweep_queue_arn().await;
    let record = |id: &str, body: &str, count: u32| {
        json!({"messageId": id, "body": body, "eventSource": "aws:sqs",
               "eventSourceARN": queue_arn,
               "attributes": {"ApproximateReceiveCount": count.to_string()}})
    };
    let event = |records: Vec<Value>| bytes(&json!({ "Records": records }));
    // The first cell, beside a body that is not a cell message: only that
    // record fails.
    let answer = invoke(
        &app,
        event(vec![
            record("junk", "{\"schema\": \"nope\"}", 1),
            record("a", &bodies[0], 1),
        ]),
        20.0,
    )
    .await
    .unwrap();
    assert_eq!(
        answer,
        json!({"batchItemFailures": [{"itemIdentifier": "junk"}]})
    );
    // The first cell again (its deletion was lost, say): audited again,
    // not counted again.
    let answer = invoke(&app, event(vec![record("a", &bodies[0], 2)]), 20.0)
        .await
        .unwrap();
    assert_eq!(answer, json!({"batchItemFailures": []}));
    assert!(
        org_summaries(&org.world.published().await).is_empty(),
        "one of two cells done: no summary yet"
    );
    // The last cell, while SNS refuses (all 3 attempts of the summary's
    // Publish): counted, and the summary handed to a close message, so the
    // record succeeds (the summary never goes down with it)...
    proxy.set_rules(vec![
        Rule::new(Some("sns"), None, Fault::ServerError).times(3),
    ]);
    let answer = invoke(&app, event(vec![record("b", &bodies[1], 1)]), 20.0)
        .await
        .unwrap();
    assert_eq!(answer, json!({"batchItemFailures": []}));
    assert!(org_summaries(&org.world.published().await).is_empty());
    assert_eq!(
        proxy.injected("sns", WEST),
        3,
        "the summary's Publish, 3 attempts"
    );
    // ... and the close message, once its delay has passed, publishes it.
    let close = close_body(planned_sweep_id(&org).await.as_str());
    let answer = invoke(&app, event(vec![record("close", &close, 1)]), 20.0)
        .await
        .unwrap();
    assert_eq!(answer, json!({"batchItemFailures": []}));
    // And the last cell redelivered after the summary went out: nothing more.
    invoke(&app, event(vec![record("b", &bodies[1], 3)]), 20.0)
        .await
        .unwrap();

    let published = org.world.published().await;
    let summaries = org_summaries(&published);
    assert_eq!(summaries.len(), 1, "one summary, not one per delivery");
    let s = &summaries[0].report["sweep"];
    assert_eq!(
        s["cells"],
        json!({"total": 2, "done": 2, "failed": 0, "failed_cells": []})
    );
    let own = &org.accounts[0];
    assert_eq!(
        s["by_account"][own]["secrets_seen"],
        org.count(own, "primaries")
    );
    assert_eq!(
        s["by_account"][own]["secrets_audited"],
        org.count(own, "audited")
    );
    assert_eq!(s["by_account"][own]["secrets_with_findings"], 1);
    assert_eq!(s["by_code"], json!({"REPLICA_KEY_WEAKER_THAN_PRIMARY": 1}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cell_its_sweep_did_not_plan_fails_alone_and_counts_nothing() {
    let org = OrgWorld::start(1, 1, None);
    let proxy = FaultProxy::start(&org.world.moto.endpoint, vec![]).await;
    let app = org.app(&proxy.endpoint, &[("SWEEP_REGIONS", WEST)]).await;
    let planned = plan(&app).await;
    let sweep_id = planned["sweep_id"].as_str().unwrap().to_string();
    let mut bodies = drain_cells(&org, &app, 1).await;
    bodies.sort_by_key(|b| serde_json::from_str::<Value>(b).unwrap()["cell"].as_u64());
    assert_eq!(bodies.len(), 2, "two accounts x one Region");
    let queue_arn = org.sweep_queue_arn().await;
    // The last delivery (SWEEP_MAX_RECEIVE_COUNT=2): a cell of the plan
    // that failed would be counted failed now; a forged one must not be.
    let record = |id: &str, body: &str, source: Option<&str>| {
        let mut r = json!({"messageId": id, "body": body, "eventSource": "aws:sqs",
                           "attributes": {"ApproximateReceiveCount": "2"}});
        if let Some(arn) = source {
            r["eventSourceARN"] = json!(arn);
        }
        r
    };
    let forged = |f: &dyn Fn(&mut Value)| {
        let mut cell: Value = serde_json::from_str(&bodies[1]).unwrap();
        f(&mut cell);
        cell.to_string()
    };
    let outside = "999988887777";
    let batch = vec![
        record(
            "unknown-sweep",
            &forged(&|c| c["sweep_id"] = json!("another-sweep")),
            Some(&queue_arn),
        ),
        record(
            "account-outside",
            &forged(&|c| c["account"] = json!(outside)),
            Some(&queue_arn),
        ),
        record(
            "region-outside",
            &forged(&|c| c["region"] = json!(EU)),
            Some(&queue_arn),
        ),
        record(
            "other-queue",
            &bodies[1],
            Some(&queue_arn.replace(":replica-auditor-sweep", ":someone-elses")),
        ),
        record("no-queue", &bodies[1], None),
    ];
    let answer = invoke(&app, bytes(&json!({ "Records": batch })), 20.0)
        .await
        .unwrap();
    assert_eq!(
        answer,
        json!({"batchItemFailures": [
            {"itemIdentifier": "unknown-sweep"},
            {"itemIdentifier": "account-outside"},
            {"itemIdentifier": "region-outside"},
            {"itemIdentifier": "other-queue"},
            {"itemIdentifier": "no-queue"},
        ]})
    );
    assert!(
        proxy.requests("sts", "AssumeRole").is_empty(),
        "no account entered"
    );
    for region in [WEST, EU] {
        assert_eq!(proxy.seen("secretsmanager", region), 0, "{region}");
    }
    assert!(org.world.published().await.is_empty(), "nothing published");
    use replica_auditor::aws::SweepBook;
    let record_now = app.clients.sweep_record(&sweep_id).await.unwrap().unwrap();
    assert_eq!(
        (record_now.done, record_now.failed, record_now.parts.len()),
        (0, 0, 0),
        "nothing counted"
    );
    assert!(
        app.clients
            .sweep_record("another-sweep")
            .await
            .unwrap()
            .is_none(),
        "no item made for the unknown sweep"
    );

    // The plan's own cells, from the sweep queue: audited, counted, and
    // the one summary says two cells done.
    let real: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| record(&format!("real-{i}"), b, Some(&queue_arn)))
        .collect();
    let answer = invoke(&app, bytes(&json!({ "Records": real })), 20.0)
        .await
        .unwrap();
    assert_eq!(answer, json!({"batchItemFailures": []}));
    let published = org.world.published().await;
    let summaries = org_summaries(&published);
    assert_eq!(summaries.len(), 1);
    assert_eq!(
        summaries[0].report["sweep"]["cells"],
        json!({"total": 2, "done": 2, "failed": 0, "failed_cells": []})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_from_an_account_outside_the_organisation_is_refused_before_sts() {
    let org = OrgWorld::start(1, 1, None);
    let member = org.accounts[1].clone();
    let proxy = FaultProxy::start(&org.world.moto.endpoint, vec![]).await;
    // No ACCOUNT_IDS: the organisation's ACTIVE accounts are the scope.
    let app = org.world.app_with_sdk(
        &[("REMEDIATION", "off"), ("METRICS", "off")],
        sdk_config(&proxy.endpoint).await,
    );
    let call = weak_replication_from;
    // An account of the organisation: listed, entered, audited.
    let report = run(&app, &call(&member)).await;
    assert_eq!(report["secret"]["account"], member.as_str(), "{report:#}");
    assert_eq!(
        codes(&report)[0].0,
        "REPLICA_KEY_WEAKER_THAN_PRIMARY",
        "the member's own Weak secret: {report:#}"
    );
    assert_eq!(
        proxy.assume_role_calls(&member).len(),
        1,
        "one AssumeRole, into the member"
    );
    let sts = proxy.requests("sts", "AssumeRole").len();
    assert_eq!(sts, 1);
    let listings = proxy.requests("organizations", "ListAccounts").len();
    assert!(listings >= 1, "the organisation's accounts were listed");

    // An account outside it: refused before any STS call, nothing published.
    // (published() drains the findings inbox: the member's report.)
    assert_eq!(org.world.published().await.len(), 1);
    for _ in 0..2 {
        let out = run(&app, &call("999988887777")).await;
        assert_eq!(out["status"], "refused", "{out:#}");
        assert_eq!(
            out["reason"],
            "account 999988887777 is not an ACTIVE account of the auditor's organisation"
        );
    }
    assert!(
        proxy.assume_role_calls("999988887777").is_empty(),
        "no AssumeRole for it"
    );
    assert_eq!(proxy.requests("sts", "AssumeRole").len(), sts);
    assert_eq!(
        proxy.requests("organizations", "ListAccounts").len(),
        listings,
        "listed again at most once a minute: not for these two"
    );
    assert!(org.world.published().await.is_empty(), "nothing published");

    // The member again: from the cached list, no listing and no AssumeRole
    // (its credentials are kept).
    run(&app, &call(&member)).await;
    assert_eq!(
        proxy.requests("organizations", "ListAccounts").len(),
        listings
    );
    assert_eq!(proxy.requests("sts", "AssumeRole").len(), sts);
}

/// A ReplicateSecretToRegions event of `production/Weak` (seeded in every
/// account) from `account`, without its response.
fn weak_replication_from(account: &str) -> Value {
    let mut ev = event("replicate-secret-to-regions.json");
    ev["account"] = json!(account);
    ev["detail"]["requestParameters"]["secretId"] = json!("production/Weak");
    ev["detail"]["responseElements"] = Value::Null;
    ev
}

/// Epoch seconds now.
fn epoch_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Publish a listing of `accounts` made at `listed_at`, as another
/// instance `generation` would: claim, then publish.
async fn publish_listing(
    clients: &AwsClients,
    generation: &str,
    accounts: &[String],
    listed_at: u64,
) {
    use replica_auditor::aws::{Claimed, OrgRoster};
    let now = epoch_now();
    let claimed = clients
        .claim_roster(generation, now + 60, now)
        .await
        .unwrap();
    assert!(matches!(claimed, Claimed::Ours(_)), "{generation}'s claim");
    let published = clients
        .publish_roster(generation, accounts, listed_at)
        .await;
    assert!(published.unwrap(), "{generation}'s listing published");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_organisation_is_listed_once_for_every_instance() {
    use replica_auditor::aws::OrgRoster;
    let org = OrgWorld::start(2, 1, None);
    let member = org.accounts[1].clone();
    let proxy = FaultProxy::start(&org.world.moto.endpoint, vec![]).await;
    let sdk = || sdk_config(&proxy.endpoint);
    let vars = [("REMEDIATION", "off"), ("METRICS", "off")];
    let call = weak_replication_from;
    let listings = || proxy.requests("organizations", "ListAccounts").len();
    let audited = |report: &Value| {
        assert_eq!(report["secret"]["account"], member.as_str(), "{report:#}");
    };

    // The first instance lists the organisation and shares the listing.
    let first = org.world.app_with_sdk(&vars, sdk().await);
    audited(&run(&first, &call(&member)).await);
    let listed = listings();
    assert!(listed >= 1, "the first instance listed the organisation");
    let head = first.clients.roster_head().await.unwrap().expect("a head");
    let listing = head.listing.expect("the listing is shared");
    let accounts = first.clients.roster_accounts(&listing).await.unwrap();
    assert_eq!(
        accounts,
        Some(
            org.accounts
                .iter()
                .cloned()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect()
        ),
        "the organisation's three accounts, sorted"
    );
    assert_eq!(
        head.refreshing_until,
        Some(0),
        "the claim ended with the listing"
    );

    // Two more instances (cold starts): they read that listing, and list nothing.
    for _ in 0..2 {
        let next = org.world.app_with_sdk(&vars, sdk().await);
        audited(&run(&next, &call(&member)).await);
        // An account outside the organisation is still refused, and a
        // listing a few seconds old is not listed again for it.
        let out = run(&next, &call("999988887777")).await;
        assert_eq!(out["status"], "refused", "{out:#}");
    }
    assert_eq!(listings(), listed, "one listing served three instances");

    // A listing due again (16 minutes old) while another instance's claim
    // to list runs: a new instance uses the due listing meanwhile.
    let now = epoch_now();
    let org_accounts: Vec<String> = accounts.unwrap();
    let age = |seconds: u64, generation: &'static str| {
        let (clients, org_accounts) = (&first.clients, &org_accounts);
        async move {
            publish_listing(clients, generation, org_accounts, now - seconds).await;
            // Another instance is listing, for ten minutes yet.
            assert!(matches!(
                clients
                    .claim_roster("listing-elsewhere", now + 600, now)
                    .await
                    .unwrap(),
                replica_auditor::aws::Claimed::Ours(_)
            ));
        }
    };
    age(16 * 60, "sixteen-minutes-old").await;
    let meanwhile = org.world.app_with_sdk(&vars, sdk().await);
    audited(&run(&meanwhile, &call(&member)).await);
    assert_eq!(
        listings(),
        listed,
        "no listing while another instance lists"
    );
    // Its next event, within half a minute, does not ask again: no claim
    // (the audit itself writes nothing here, with REMEDIATION off).
    let updates = proxy.requests("dynamodb", "UpdateItem").len();
    audited(&run(&meanwhile, &call(&member)).await);
    assert_eq!(proxy.requests("dynamodb", "UpdateItem").len(), updates);

    // Older than that (31 minutes: the lister has died), a new instance
    // lists itself, and leaves the head to the claim's holder.
    first
        .clients
        .release_roster("listing-elsewhere")
        .await
        .unwrap();
    age(31 * 60, "thirty-one-minutes-old").await;
    let alone = org.world.app_with_sdk(&vars, sdk().await);
    audited(&run(&alone, &call(&member)).await);
    assert!(listings() > listed, "listed itself");
    let head = first.clients.roster_head().await.unwrap().unwrap();
    assert_eq!(
        head.listing.map(|l| l.generation),
        Some("thirty-one-minutes-old".to_string()),
        "not published over the running claim"
    );
    assert_eq!(head.refresher.as_deref(), Some("listing-elsewhere"));

    // Once the claim is over, the next instance due to list claims,
    // lists and shares: the head names its fresh listing.
    first
        .clients
        .release_roster("listing-elsewhere")
        .await
        .unwrap();
    let listed = listings();
    let refresher = org.world.app_with_sdk(&vars, sdk().await);
    audited(&run(&refresher, &call(&member)).await);
    assert!(listings() > listed);
    let head = first.clients.roster_head().await.unwrap().unwrap();
    let fresh = head.listing.unwrap();
    assert!(fresh.listed_at >= now, "{fresh:?}");
    assert_eq!(fresh.accounts, 3);
    assert_ne!(fresh.generation, "thirty-one-minutes-old");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_list_is_refreshed_ahead_so_events_list_nothing() {
    use replica_auditor::aws::OrgRoster;
    let org = OrgWorld::start(1, 1, None);
    let member = org.accounts[1].clone();
    let proxy = FaultProxy::start(&org.world.moto.endpoint, vec![]).await;
    let vars: &'static [(&str, &str)] = &[("REMEDIATION", "off"), ("METRICS", "off")];
    let app = |vars: &'static [(&'static str, &'static str)]| {
        let endpoint = proxy.endpoint.clone();
        let world = &org.world;
        async move { world.app_with_sdk(vars, sdk_config(&endpoint).await) }
    };
    let refresh = event("refresh-organisation-accounts.json");
    let listings = || proxy.requests("organizations", "ListAccounts").len();
    let claims = || proxy.requests("dynamodb", "UpdateItem").len();
    let mut accounts = org.accounts.clone();
    accounts.sort();
    let scheduled = app(vars).await;
    let now = epoch_now();

    // The shared listing is 16 minutes old: an event would list now. The
    // schedule's refresh lists and shares instead.
    publish_listing(
        &scheduled.clients,
        "sixteen-minutes-old",
        &accounts,
        now - 16 * 60,
    )
    .await;
    let (before, updates) = (listings(), claims());
    let out = run(&scheduled, &refresh).await;
    assert_eq!(out, json!({"status": "listed", "accounts": 2}));
    assert!(listings() > before, "listed");
    // A claim, the pages (one), the publication.
    assert_eq!(claims(), updates + 3);
    let head = scheduled.clients.roster_head().await.unwrap().unwrap();
    let listing = head.listing.expect("shared");
    assert!(listing.listed_at >= now, "{listing:?}");
    assert_eq!(head.refreshing_until, Some(0), "the claim ended");

    // A new instance's event about the member lists nothing.
    let listed = listings();
    let event_instance = app(vars).await;
    let report = run(&event_instance, &weak_replication_from(&member)).await;
    assert_eq!(report["secret"]["account"], member.as_str(), "{report:#}");
    assert_eq!(listings(), listed, "the event used the refreshed listing");

    // The next tick, with the listing a moment old: nothing listed, nothing
    // claimed.
    let updates = claims();
    let out = run(&scheduled, &refresh).await;
    assert_eq!(out["status"], "fresh", "{out}");
    assert!(out["listed_seconds_ago"].as_u64().unwrap() < 120, "{out}");
    assert_eq!((listings(), claims()), (listed, updates));

    // Due, but another instance is listing: the tick leaves it to that one.
    publish_listing(&scheduled.clients, "due-again", &accounts, now - 16 * 60).await;
    let claimed = scheduled
        .clients
        .claim_roster("listing-elsewhere", now + 600, now)
        .await
        .unwrap();
    assert!(matches!(claimed, replica_auditor::aws::Claimed::Ours(_)));
    let out = run(&scheduled, &refresh).await;
    assert_eq!(out["status"], "skipped", "{out}");
    assert_eq!(listings(), listed);
    let head = scheduled.clients.roster_head().await.unwrap().unwrap();
    assert_eq!(head.refresher.as_deref(), Some("listing-elsewhere"));
    assert_eq!(
        head.listing.map(|l| l.generation),
        Some("due-again".to_string())
    );

    // With ACCOUNT_IDS, the organisation is never listed: no call at all.
    let given = app(&[
        ("REMEDIATION", "off"),
        ("METRICS", "off"),
        ("ACCOUNT_IDS", "210987654321"),
    ])
    .await;
    let calls = proxy.log().len();
    let out = run(&given, &refresh).await;
    assert_eq!(out["status"], "skipped", "{out}");
    assert_eq!(proxy.log().len(), calls);

    // Any other task is a clean error; the instance serves on.
    let bad = given
        .handle(
            br#"{"replica-auditor": "refresh-everything"}"#,
            replica_auditor::engine::Budget::unlimited(),
        )
        .await;
    assert!(bad.is_err(), "{bad:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_published_while_an_instance_claims_serves_it() {
    use replica_auditor::aws::OrgRoster;
    let org = OrgWorld::start(1, 1, None);
    let member = org.accounts[1].clone();
    let proxy = FaultProxy::start(&org.world.moto.endpoint, vec![]).await;
    let vars = [("REMEDIATION", "off"), ("METRICS", "off")];
    let other = org
        .world
        .app_with_sdk(&vars, sdk_config(&proxy.endpoint).await);
    let mut accounts = org.accounts.clone();
    accounts.sort();
    // A listing 16 minutes old, due, and nobody listing.
    publish_listing(&other.clients, "old", &accounts, epoch_now() - 16 * 60).await;
    // A new instance reads it and claims to list again; its claim is held
    // at the proxy while another instance publishes a fresh listing.
    proxy.set_rules(vec![
        Rule::new(Some("dynamodb"), None, Fault::Delay(Duration::from_secs(5)))
            .action("UpdateItem")
            .times(1),
    ]);
    let listings = || proxy.requests("organizations", "ListAccounts").len();
    let before = listings();
    let updates = proxy.requests("dynamodb", "UpdateItem").len();
    let late = org
        .world
        .app_with_sdk(&vars, sdk_config(&proxy.endpoint).await);
    let ev = weak_replication_from(&member);
    let (report, ()) = tokio::join!(run(&late, &ev), async {
        // Bounded: the claim reaches the proxy within 20 s.
        for _ in 0..200 {
            if proxy.requests("dynamodb", "UpdateItem").len() > updates {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            proxy.requests("dynamodb", "UpdateItem").len() > updates,
            "the claim came"
        );
        // Not delayed (the one delay was the late claim's).
        publish_listing(&other.clients, "fresh", &accounts, epoch_now()).await;
    });
    assert_eq!(report["secret"]["account"], member.as_str(), "{report:#}");
    assert_eq!(
        listings(),
        before,
        "the fresh listing served: nothing listed"
    );
    let head = other.clients.roster_head().await.unwrap().unwrap();
    assert_eq!(head.listing.map(|l| l.generation).as_deref(), Some("fresh"));
    assert_eq!(
        head.refreshing_until,
        Some(0),
        "the late claim was given back"
    );
    assert_ne!(
        head.refresher.as_deref(),
        Some("fresh"),
        "it was the late instance's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_planners_listing_serves_the_cells() {
    use replica_auditor::aws::OrgRoster;
    let org = OrgWorld::start(2, 1, None);
    let proxy = FaultProxy::start(&org.world.moto.endpoint, vec![]).await;
    // No ACCOUNT_IDS: the cells' accounts are checked against the organisation.
    let planner = org.app(&proxy.endpoint, &[("SWEEP_REGIONS", WEST)]).await;
    let planned = plan(&planner).await;
    assert_eq!(planned["cells"], 3, "{planned}");
    let listed = proxy.requests("organizations", "ListAccounts").len();
    let head = planner.clients.roster_head().await.unwrap().unwrap();
    assert_eq!(
        head.listing.map(|l| l.accounts),
        Some(3),
        "the planner shared its listing"
    );
    // Another instance audits the cells: it enters each account on the
    // planner's listing, and lists nothing.
    let consumer = org.app(&proxy.endpoint, &[("SWEEP_REGIONS", WEST)]).await;
    let esm = EventSourceMapping::new(org.sqs().await, &org.sweep_queue).await;
    esm.run(1, Duration::from_secs(120), |_, event| {
        invoke(&consumer, event, 60.0)
    })
    .await;
    let published = org.world.published().await;
    let summaries = org_summaries(&published);
    assert_eq!(summaries.len(), 1);
    assert_eq!(summaries[0].report["sweep"]["cells"]["done"], 3);
    assert_eq!(
        proxy.requests("organizations", "ListAccounts").len(),
        listed,
        "the cells listed nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_or_lease_applied_but_unanswered_is_still_ours() {
    use replica_auditor::aws::{Acquired, Lease, LeaseStore, SweepBook};
    let org = OrgWorld::start(0, 1, None);
    let proxy = FaultProxy::start(&org.world.moto.endpoint, vec![]).await;
    let app = org.app(&proxy.endpoint, &[("SWEEP_REGIONS", WEST)]).await;
    let sweep_id = plan(&app).await["sweep_id"].as_str().unwrap().to_string();
    // moto applies the claim, its answer is lost; the SDK retries it and
    // the condition refuses the claim it made itself.
    proxy.set_rules(vec![
        Rule::new(Some("dynamodb"), None, Fault::AppliedThen500)
            .action("UpdateItem")
            .times(1),
    ]);
    let claimed = app
        .clients
        .claim_summary(&sweep_id, "delivery-1", 2_000_000_000, 1_800_000_000)
        .await
        .unwrap();
    assert_eq!(proxy.injected("dynamodb", WEST), 1, "the fault was met");
    assert!(
        claimed.is_some(),
        "the claim is this delivery's: it publishes the summary"
    );
    // Another delivery's claim is still refused.
    assert!(
        app.clients
            .claim_summary(&sweep_id, "delivery-2", 2_000_000_000, 1_800_000_000)
            .await
            .unwrap()
            .is_none()
    );
    // The same for a remediation lease's conditional PutItem.
    proxy.set_rules(vec![
        Rule::new(Some("dynamodb"), None, Fault::AppliedThen500)
            .action("PutItem")
            .times(1),
    ]);
    let lease = Lease {
        key: "lease#test".into(),
        owner: "req-1".into(),
        since: "2026-12-04T10:00:00Z".into(),
        expires_at: 2_000_000_000,
    };
    assert_eq!(
        app.clients
            .try_acquire(&lease, 1_800_000_000)
            .await
            .unwrap(),
        Acquired::Acquired
    );
    let other = Lease {
        owner: "req-2".into(),
        ..lease.clone()
    };
    assert!(matches!(
        app.clients
            .try_acquire(&other, 1_800_000_000)
            .await
            .unwrap(),
        Acquired::HeldBy(_)
    ));
    // The same for the claim to list the organisation, and for the
    // publication of its listing.
    use replica_auditor::aws::{Claimed, OrgRoster};
    let once = || {
        vec![
            Rule::new(Some("dynamodb"), None, Fault::AppliedThen500)
                .action("UpdateItem")
                .times(1),
        ]
    };
    proxy.set_rules(once());
    let met = proxy.injected("dynamodb", WEST);
    let (now, until) = (1_800_000_000, 1_800_000_300);
    assert!(
        matches!(
            app.clients
                .claim_roster("lister-1", until, now)
                .await
                .unwrap(),
            Claimed::Ours(_)
        ),
        "the claim is this instance's: it lists"
    );
    assert_eq!(
        proxy.injected("dynamodb", WEST),
        met + 1,
        "the fault was met"
    );
    assert!(matches!(
        app.clients
            .claim_roster("lister-2", until, now + 1)
            .await
            .unwrap(),
        Claimed::Busy(_)
    ));
    // The listing's pages, then its head, whose answer is lost: the
    // SDK's retry finds the claim still this instance's and applies the
    // same again.
    use replica_auditor::aws::StateItems;
    use replica_auditor::roster;
    let accounts = vec![MOTO_ACCOUNT.to_string()];
    for page in roster::pages("lister-1", &accounts, now + 2) {
        app.clients.update_item(&page).await.unwrap();
    }
    proxy.set_rules(once());
    assert!(matches!(
        app.clients
            .update_item(&roster::publish("lister-1", 1, now + 2))
            .await
            .unwrap(),
        replica_auditor::book::Applied::Done(_)
    ));
    assert_eq!(
        proxy.injected("dynamodb", WEST),
        met + 2,
        "the fault was met"
    );
    let head = app.clients.roster_head().await.unwrap().unwrap();
    let listing = head.listing.unwrap();
    assert_eq!(
        (listing.generation.as_str(), listing.listed_at),
        ("lister-1", now + 2)
    );
    assert_eq!(
        app.clients.roster_accounts(&listing).await.unwrap(),
        Some(accounts)
    );
}

/// The id of the one sweep planned in `org`'s state table.
async fn planned_sweep_id(org: &OrgWorld) -> String {
    let ddb = aws_sdk_dynamodb::Client::new(&org.world.sdk().await);
    let items = ddb
        .scan()
        .table_name(&org.world.state_table)
        .send()
        .await
        .unwrap();
    let ids: Vec<String> = items
        .items()
        .iter()
        .filter_map(|i| {
            i.get("pk")?
                .as_s()
                .ok()?
                .strip_prefix("sweep#")
                // The head, not its pages and shards (`sweep#<id>#...`).
                .filter(|id| !id.contains('#'))
                .map(str::to_string)
        })
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    ids[0].clone()
}

/// The planner's messages taken off the sweep queue by hand: each
/// planning message delivered (`times` times: a redelivery sends its
/// page's cells again), then the cells taken off (the close message is
/// delayed, so not among them).
async fn drain_cells(org: &OrgWorld, app: &App<AwsClients>, times: u32) -> Vec<String> {
    let sqs = org.sqs().await;
    let pages = drain(&sqs, &org.sweep_queue).await;
    assert!(!pages.is_empty());
    let queue_arn = org.sweep_queue_arn().await;
    for delivery in 1..=times {
        let records: Vec<Value> = pages
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let page: Value = serde_json::from_str(b).unwrap();
                assert_eq!(page["schema"], "replica-auditor.plan/v1", "{b}");
                queue_record(&queue_arn, &format!("page-{i}"), b, delivery)
            })
            .collect();
        let answer = invoke(app, bytes(&json!({ "Records": records })), 20.0)
            .await
            .unwrap();
        assert_eq!(answer, json!({"batchItemFailures": []}));
    }
    drain(&sqs, &org.sweep_queue).await
}

/// A record of the sweep queue, delivered for the `count`-th time.
fn queue_record(queue_arn: &str, id: &str, body: &str, count: u32) -> Value {
    json!({"messageId": id, "body": body, "eventSource": "aws:sqs",
           "eventSourceARN": queue_arn,
           "attributes": {"ApproximateReceiveCount": count.to_string()}})
}

/// The sweep's close message, as the planner (or a deferred summary)
/// sends it; its delay has passed.
fn close_body(sweep_id: &str) -> String {
    let trigger: replica_auditor::event::Scheduled =
        serde_json::from_value(json!({"event_id": sweep_id, "time": "2026-11-23T12:00:00Z",
                                      "region": WEST, "account": "123456789012"}))
        .unwrap();
    replica_auditor::org::Close::new(sweep_id, &trigger).to_body()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_planning_message_and_a_malformed_cell_count_each_cell_once() {
    let org = OrgWorld::start(1, 1, None);
    let member = org.accounts[1].clone();
    let app = org
        .app(&org.world.moto.endpoint, &[("SWEEP_REGIONS", WEST)])
        .await;
    let sweep_id = plan(&app).await["sweep_id"].as_str().unwrap().to_string();
    let queue_arn = org.sweep_queue_arn().await;
    // The one planning message (2 accounts: one page) delivered twice, as
    // SQS may: the first delivery marked its page sent, so the second sends
    // nothing again.
    let bodies = drain_cells(&org, &app, 2).await;
    assert_eq!(bodies.len(), 2, "2 cells, each sent once: {bodies:?}");
    use replica_auditor::aws::StateItems;
    let page = app
        .clients
        .get_item(&replica_auditor::book::page_key(&sweep_id, 0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(page.get("sent"), Some(&replica_auditor::book::Attr::N(2)));
    // SQS's own duplicates (two deliveries at once, before either marks):
    // every cell twice.
    let bodies = [bodies.clone(), bodies].concat();
    let cells: Vec<Value> = bodies
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    let members: Vec<&Value> = cells.iter().filter(|c| c["account"] == *member).collect();
    assert_eq!(members.len(), 2);
    let member_index = members[0]["cell"].as_u64().unwrap();
    // The member's cell, malformed (its Region is not one), on its first
    // delivery: its sweep_id and cell can be read, so it is counted failed
    // now; the record still fails (the dead-letter queue keeps it). One
    // naming a cell the plan does not have, and one naming no sweep,
    // count nothing.
    let mut bad = members[0].clone();
    bad["region"] = json!("Mars");
    let mut outside = bad.clone();
    outside["cell"] = json!(99);
    let mut unknown = bad.clone();
    unknown["sweep_id"] = json!("another-sweep");
    let batch: Vec<Value> = [("bad", &bad), ("outside", &outside), ("unknown", &unknown)]
        .iter()
        .map(|(id, body)| queue_record(&queue_arn, id, &body.to_string(), 1))
        .collect();
    let answer = invoke(&app, bytes(&json!({ "Records": batch })), 20.0)
        .await
        .unwrap();
    assert_eq!(
        answer,
        json!({"batchItemFailures": [{"itemIdentifier": "bad"}, {"itemIdentifier": "outside"},
                                     {"itemIdentifier": "unknown"}]})
    );
    use replica_auditor::aws::SweepBook;
    let counted = app.clients.sweep_record(&sweep_id).await.unwrap().unwrap();
    assert_eq!(
        (counted.done, counted.failed, counted.failed_cells.clone()),
        (
            0,
            1,
            std::collections::BTreeSet::from([member_index as u32])
        ),
        "the malformed cell counted failed, once"
    );
    // Every copy of both cells: the management account's counted done once
    // (its copy refused), the member's refused (already failed).
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| queue_record(&queue_arn, &format!("cell-{i}"), b, 1))
        .collect();
    let answer = invoke(&app, bytes(&json!({ "Records": records })), 20.0)
        .await
        .unwrap();
    assert_eq!(answer, json!({"batchItemFailures": []}));
    let published = org.world.published().await;
    let summaries = org_summaries(&published);
    assert_eq!(summaries.len(), 1, "one summary, without the close time");
    let s = &summaries[0].report["sweep"];
    assert_eq!(
        s["cells"],
        json!({"total": 2, "done": 1, "failed": 1, "failed_cells": [format!("{member}/{WEST}")]})
    );
    assert_eq!(s["accounts_total"], 2);
    let own_seen = org.count(MOTO_ACCOUNT, "primaries");
    assert_eq!(
        s["by_account"][MOTO_ACCOUNT]["secrets_seen"], own_seen,
        "the management account's cell counted once of its two copies"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_cells_last_delivery_and_a_refused_summary_lose_nothing() {
    let org = OrgWorld::start(1, 1, None);
    let member = org.accounts[1].clone();
    let proxy = FaultProxy::start(&org.world.moto.endpoint, vec![]).await;
    let app = org.app(&proxy.endpoint, &[("SWEEP_REGIONS", WEST)]).await;
    let sweep_id = plan(&app).await["sweep_id"].as_str().unwrap().to_string();
    let queue_arn = org.sweep_queue_arn().await;
    let mut bodies = drain_cells(&org, &app, 1).await;
    // The management account's cell first (the member's random account id
    // may sort before it in the plan).
    bodies.sort_by_key(|b| serde_json::from_str::<Value>(b).unwrap()["account"] != MOTO_ACCOUNT);
    assert_eq!(bodies.len(), 2, "the close message is delayed: {bodies:?}");
    let invoke_one = |id: &str, body: &str, count: u32| {
        let event = bytes(&json!({"Records": [queue_record(&queue_arn, id, body, count)]}));
        let app = &app;
        async move { invoke(app, event, 20.0).await.unwrap() }
    };
    // The management account's cell: done.
    assert_eq!(
        invoke_one("own", &bodies[0], 1).await,
        json!({"batchItemFailures": []})
    );
    // The member's cell on its last delivery (SWEEP_MAX_RECEIVE_COUNT=2):
    // its member role cannot be entered (STS fails), so it is counted
    // failed; then SNS refuses the summary (every attempt).
    proxy.set_rules(vec![
        Rule::new(Some("sts"), None, Fault::ServerError).account(&member),
        Rule::new(Some("sns"), None, Fault::ServerError),
    ]);
    let answer = invoke_one("member", &bodies[1], 2).await;
    assert_eq!(
        answer,
        json!({"batchItemFailures": [{"itemIdentifier": "member"}]}),
        "the cell's own record fails (the dead-letter queue keeps it)"
    );
    assert!(proxy.injected("sns", WEST) >= 1, "the summary was refused");
    assert!(org_summaries(&org.world.published().await).is_empty());
    // The summary was handed to a close message (delayed a minute): its
    // delivery publishes it once SNS answers again.
    proxy.set_rules(vec![]);
    let close = close_body(&sweep_id);
    assert_eq!(
        invoke_one("close", &close, 1).await,
        json!({"batchItemFailures": []})
    );
    // And once more (a duplicate delivery): nothing more.
    invoke_one("close-again", &close, 1).await;
    let published = org.world.published().await;
    let summaries = org_summaries(&published);
    assert_eq!(summaries.len(), 1, "exactly one summary");
    assert_eq!(
        summaries[0].report["sweep"]["cells"],
        json!({"total": 2, "done": 1, "failed": 1,
               "failed_cells": [format!("{member}/{WEST}")]})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_not_finished_by_its_close_time_is_summarised_as_incomplete() {
    let org = OrgWorld::start(1, 1, None);
    let member = org.accounts[1].clone();
    let app = org
        .app(&org.world.moto.endpoint, &[("SWEEP_REGIONS", WEST)])
        .await;
    let sweep_id = plan(&app).await["sweep_id"].as_str().unwrap().to_string();
    let queue_arn = org.sweep_queue_arn().await;
    let bodies = drain_cells(&org, &app, 1).await;
    // The management account's cell, by its account (moto's member account
    // ids are random, so the plan's order is not known in advance).
    let own = bodies
        .iter()
        .find(|b| serde_json::from_str::<Value>(b).unwrap()["account"] != member.as_str())
        .expect("the management account's cell");
    let close = close_body(&sweep_id);
    let deliver_one = |id: &str, body: &str| {
        let event = bytes(&json!({"Records": [queue_record(&queue_arn, id, body, 1)]}));
        let app = &app;
        async move { invoke(app, event, 20.0).await.unwrap() }
    };
    // Only the management account's cell is ever delivered (the member's
    // message is lost, or malformed beyond counting).
    deliver_one("own", own).await;
    // Before the close time the close message looks again later.
    assert_eq!(
        deliver_one("close-1", &close).await,
        json!({"batchItemFailures": []})
    );
    assert!(org_summaries(&org.world.published().await).is_empty());
    let sent_on = drain(&org.sqs().await, &org.sweep_queue).await;
    assert!(sent_on.is_empty(), "sent on with a delay, not visible yet");
    // The close time passes (moved into the past in the sweep's item).
    let ddb = aws_sdk_dynamodb::Client::new(&org.world.sdk().await);
    ddb.update_item()
        .table_name(&org.world.state_table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("sweep#{sweep_id}")),
        )
        .update_expression("SET close_at = :past")
        .expression_attribute_values(
            ":past",
            aws_sdk_dynamodb::types::AttributeValue::N("1".into()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        deliver_one("close-2", &close).await,
        json!({"batchItemFailures": []})
    );
    let published = org.world.published().await;
    let summaries = org_summaries(&published);
    assert_eq!(summaries.len(), 1);
    let s = &summaries[0].report;
    assert_eq!(
        s["sweep"]["cells"],
        json!({"total": 2, "done": 1, "failed": 1,
               "failed_cells": [format!("{member}/{WEST}")]})
    );
    let incomplete: Vec<&Value> = s["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "AUDIT_INCOMPLETE")
        .collect();
    assert_eq!(incomplete.len(), 1, "{s:#}");
    assert!(
        incomplete[0]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("{member}/{WEST}"))
    );
    // The member's cell arriving late is not counted twice.
    deliver_one("late", &bodies[1]).await;
    assert!(org_summaries(&org.world.published().await).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_faults_lose_no_cell_and_no_summary() {
    // "post": a seeded rate of lost answers on DynamoDB and STS (applied,
    // then a 500) and refused SNS publishes. SNS is refused before it
    // arrives in both modes: a standard topic delivers a Publish whose
    // answer was lost twice when the SDK retries it (at least once; the
    // FIFO topic deduplicates, tests/remediation.rs).
    random_faults(Fault::AppliedThen500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_refusals_lose_no_cell_and_no_summary() {
    // "pre": the same rates, every fault a 500 before the request arrives.
    random_faults(Fault::ServerError).await;
}

/// A whole sweep through the event source mapping with seeded faults
/// (FAULT_SEED, default 7; `make fault-soak` runs 20 seeds) of `mode` on
/// DynamoDB and STS and refused SNS publishes: exact counts, exactly one
/// summary, every weak secret reported.
async fn random_faults(mode: Fault) {
    let seed: u64 = env_or("FAULT_SEED", "7").parse().unwrap();
    let org = OrgWorld::start(2, 2, None);
    let proxy = FaultProxy::start(&org.world.moto.endpoint, vec![]).await;
    let app = org
        .app(
            &proxy.endpoint,
            &[
                ("SWEEP_REGIONS", "us-west-2,eu-west-1"),
                ("SWEEP_MAX_RECEIVE_COUNT", "10"),
            ],
        )
        .await;
    let sweep_id = plan(&app).await["sweep_id"].as_str().unwrap().to_string();
    proxy.set_rules(vec![
        Rule::new(Some("dynamodb"), None, mode).rate(0.3, seed),
        Rule::new(Some("sts"), None, mode).rate(0.3, seed + 1),
        Rule::new(Some("sns"), None, Fault::ServerError).rate(0.3, seed + 2),
    ]);
    // One consumer, invocations of a minute: the faults, not the clock,
    // decide (a part cut short by its deadline is the remainder test's).
    deliver(&org, &app, 1, 60.0).await;
    // Whatever the summary's own path deferred: its close message.
    proxy.set_rules(vec![]);
    let queue_arn = org.sweep_queue_arn().await;
    let close = close_body(&sweep_id);
    invoke(
        &app,
        bytes(&json!({"Records": [queue_record(&queue_arn, "close", &close, 1)]})),
        20.0,
    )
    .await
    .unwrap();
    let published = org.world.published().await;
    let summaries = org_summaries(&published);
    assert_eq!(summaries.len(), 1, "exactly one summary (seed {seed})");
    let s = &summaries[0].report["sweep"];
    assert_eq!(
        s["cells"],
        json!({"total": 6, "done": 6, "failed": 0, "failed_cells": []}),
        "seed {seed}"
    );
    for account in &org.accounts {
        // An unreplicated secret whose remediation journal could not be
        // read is audited and reported (AUDIT_INCOMPLETE): a Region the
        // auditor removed may be behind it (docs/reliability.md).
        let journal_gaps = published
            .iter()
            .filter(|p| {
                p.report["secret"]["name"] == "production/Single"
                    && p.report["secret"]["account"] == account.as_str()
                    && p.codes().iter().any(|(c, _)| c == "AUDIT_INCOMPLETE")
            })
            .count();
        assert_eq!(
            s["by_account"][account]["secrets_seen"],
            org.count(account, "primaries"),
            "{account}, seed {seed}"
        );
        assert_eq!(
            s["by_account"][account]["secrets_audited"],
            org.count(account, "audited") + journal_gaps,
            "{account}, seed {seed}"
        );
    }
    // Every weak secret was reported (each account has one).
    let weak = published
        .iter()
        .filter(|p| p.report["secret"]["name"] == "production/Weak")
        .map(|p| p.report["secret"]["account"].as_str().unwrap().to_string())
        .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(weak.len(), org.accounts.len(), "seed {seed}");
}

/// The latency proxy of `make bench` (bench/latency-proxy) in front of moto;
/// stopped when dropped.
struct LatencyProxy {
    child: std::process::Child,
    endpoint: String,
}

impl LatencyProxy {
    fn start(bin: &str, moto: &str, delay_ms: u64) -> LatencyProxy {
        use std::io::BufRead;
        let port = moto.rsplit(':').next().unwrap();
        let mut child = Command::new(bin)
            .args([port, &delay_ms.to_string()])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start the latency proxy (BENCH_LATENCY_PROXY)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        LatencyProxy {
            child,
            endpoint: format!("http://127.0.0.1:{}", line.trim()),
        }
    }

    /// `POST /__proxy/reset` or `GET /__proxy/stats`: the answer's JSON
    /// (the proxy keeps the connection open: read the Content-Length).
    fn control(&self, method: &str, path: &str) -> Value {
        use std::io::{BufRead, Read, Write};
        let mut s =
            std::net::TcpStream::connect(self.endpoint.trim_start_matches("http://")).unwrap();
        // A proxy that never answers fails the read, not the whole run.
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            s,
            "{method} /__proxy/{path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
        )
        .unwrap();
        let mut r = std::io::BufReader::new(s);
        let mut length = 0;
        loop {
            let mut line = String::new();
            r.read_line(&mut line)
                .unwrap_or_else(|e| panic!("the latency proxy's {path} answer: {e}"));
            if line.trim().is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        r.read_exact(&mut body)
            .unwrap_or_else(|e| panic!("the latency proxy's {path} body: {e}"));
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    }
}

impl Drop for LatencyProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn env_or(var: &str, default: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// `make bench-org` (scripts/bench-org.sh): an org sweep of
/// BENCH_ORG_ACCOUNTS accounts x 3 Regions x BENCH_ORG_SECRETS primaries
/// per Region, every AWS call held BENCH_ORG_DELAY_MS by the latency proxy,
/// with 1, 4 and 16 consumers (BENCH_ORG_CONSUMERS; each its own App, as
/// Lambda would run separate instances): wall time, and the AWS calls per
/// cell counted at the proxy. Writes its section of bench/results-org.md
/// (one per accounts x primaries: `make bench-org` 20 x 100,
/// `make bench-org-2000` 2,000 x 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: make bench-org"]
async fn org_sweep_benchmark() {
    let accounts: usize = env_or("BENCH_ORG_ACCOUNTS", "20").parse().unwrap();
    let secrets: usize = env_or("BENCH_ORG_SECRETS", "100").parse().unwrap();
    let delay: u64 = env_or("BENCH_ORG_DELAY_MS", "50").parse().unwrap();
    let consumers: Vec<usize> = env_or("BENCH_ORG_CONSUMERS", "1,4,16")
        .split(',')
        .map(|c| c.trim().parse().unwrap())
        .collect();
    // The bound on one timed run: an hour by default; the 2,000-account
    // run takes about that long on two shared cores.
    let limit = Duration::from_secs(env_or("BENCH_ORG_LIMIT_S", "3600").parse().unwrap());
    let regions = "us-west-2,us-east-1,eu-west-1";
    let proxy_bin = std::env::var("BENCH_LATENCY_PROXY")
        .expect("BENCH_LATENCY_PROXY: the latency proxy's binary");
    let seeding = Instant::now();
    let org = OrgWorld::start(accounts - 1, secrets, Some(regions));
    let seeded = seeding.elapsed();
    let proxy = LatencyProxy::start(&proxy_bin, &org.world.moto.endpoint, delay);
    let cells = accounts * 3;
    let mut rows = Vec::new();
    for &c in &consumers {
        let mut apps = Vec::new();
        for _ in 0..c {
            apps.push(
                org.app(
                    &proxy.endpoint,
                    &[("SWEEP_REGIONS", regions), ("RUST_LOG", "error")],
                )
                .await,
            );
        }
        proxy.control("POST", "reset");
        let mut event = scheduled();
        event["id"] = json!(uuid::Uuid::new_v4().to_string());
        let planned = apps[0]
            .handle(&bytes(&event), Budget::unlimited())
            .await
            .expect("planned");
        assert_eq!(planned["cells"], cells);
        let planning = proxy.control("GET", "stats");
        proxy.control("POST", "reset");
        let mut esm = EventSourceMapping::new(org.sqs().await, &org.sweep_queue).await;
        // Longer than any invocation (300 s below), so a record of a slow
        // invocation is not delivered twice at once; not the template's six
        // times, since a receive whose answer moto loses hides its messages
        // for this long (the 2,000-account run waited 30 minutes for some).
        esm.visibility_timeout = 360;
        let started = Instant::now();
        let mut deliveries = esm
            .run(c, limit, |n, event| invoke(&apps[n], event, 300.0))
            .await;
        // A summary the last cell could not publish is the sweep's close
        // message's (60 s after the failed publish, else at its next look,
        // at most 15 minutes on): consumed as it comes due, within the limit.
        let mut published = org.world.published().await;
        let mut idle = Instant::now();
        while org_summaries(&published).is_empty() {
            // The close message looks at least every 15 minutes: a quarter
            // of an hour with nothing delivered and no summary is a sweep
            // left incomplete, told now rather than at the limit.
            if started.elapsed() >= limit || idle.elapsed() > Duration::from_secs(16 * 60) {
                use replica_auditor::aws::SweepBook;
                let sweep_id = planned["sweep_id"].as_str().unwrap();
                let head = apps[0].clients.sweep_head(sweep_id).await;
                let missing = match &head {
                    Ok(Some(h)) => Some(apps[0].clients.assemble(h).await.map(|r| r.missing())),
                    _ => None,
                };
                panic!(
                    "no org summary within {limit:?}: the head {head:?}; missing cells {missing:?}"
                );
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
            let left = limit.saturating_sub(started.elapsed());
            let more = esm
                .run(c, left, |n, event| invoke(&apps[n], event, 300.0))
                .await;
            if !more.is_empty() {
                idle = Instant::now();
            }
            deliveries.extend(more);
            published.extend(org.world.published().await);
        }
        let wall = started.elapsed();
        let stats = proxy.control("GET", "stats");
        let summaries = org_summaries(&published);
        assert_eq!(summaries.len(), 1);
        let s = &summaries[0].report["sweep"];
        assert_eq!(s["cells"]["done"], cells, "{s}");
        assert_eq!(s["secrets_seen"], accounts * 3 * secrets, "{s}");
        let calls = stats["calls"].as_object().unwrap().clone();
        let total: u64 = calls.values().map(|v| v.as_u64().unwrap()).sum();
        let mut by_action: BTreeMap<String, u64> = BTreeMap::new();
        for (k, v) in &calls {
            let action = k.split('@').next().unwrap().to_string();
            *by_action.entry(action).or_default() += v.as_u64().unwrap();
        }
        eprintln!("org summary: {s}");
        eprintln!(
            "{c} consumers: {:.1} s for {cells} cells ({} deliveries), {total} calls",
            wall.as_secs_f64(),
            deliveries.len()
        );
        rows.push((c, wall, deliveries.len(), total, by_action, planning));
    }
    let mut md = format!("## {accounts} accounts x 3 Regions x {secrets} primaries\n\n");
    md.push_str(&format!(
        "{accounts} accounts x 3 Regions ({regions}) x {secrets} primaries per account and Region \
         ({} secrets, each replicated to one other swept Region), every AWS call held {delay} ms by \
         bench/latency-proxy in front of moto; the function in-process (tests/org_sweep.rs \
         `org_sweep_benchmark`, {} build), one App per consumer as Lambda runs one instance per \
         concurrent batch, fed by the test-side event source mapping (BatchSize 1). SWEEP_CONCURRENCY {} \
         (the most in flight; within it the observed latency decides), REMEDIATION off. Each cell's first \
         sweep (no policy ledger yet: every resource policy read, at 25 a second). Seeding took {:.0} s (not \
         timed below). Machine: {} cores, load average {} at the end (other agents' builds share \
         them); {}.\n\n",
        accounts * 3 * secrets,
        if cfg!(debug_assertions) { "dev (unoptimised)" } else { "release" },
        replica_auditor::config::DEFAULT_SWEEP_CONCURRENCY,
        seeded.as_secs_f64(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next().map(str::to_string))
            .unwrap_or_default(),
        replica_auditor::model::now_rfc3339(),
    ));
    md.push_str("| consumers | wall time (s) | cells/s | invocations | AWS calls | calls per cell |\n| --- | --- | --- | --- | --- | --- |\n");
    for (c, wall, n, total, ..) in &rows {
        md.push_str(&format!(
            "| {c} | {:.1} | {:.2} | {n} | {total} | {:.1} |\n",
            wall.as_secs_f64(),
            cells as f64 / wall.as_secs_f64(),
            *total as f64 / cells as f64
        ));
    }
    let (_, _, _, _, by_action, planning) = &rows[rows.len() - 1];
    md.push_str(
        "\nCalls per cell by action (the last run; every run makes the same calls but for \
         AssumeRole, once per account per consumer):\n\n| call | total | per cell |\n| --- | --- | --- |\n",
    );
    for (action, n) in by_action {
        md.push_str(&format!(
            "| {action} | {n} | {:.2} |\n",
            *n as f64 / cells as f64
        ));
    }
    md.push_str(&format!(
        "\nThe planner's calls (the scheduled event, before the timed run): {}.\n",
        planning["calls"]
    ));
    md.push_str(&format!(
        "\nCommand: `make {}` (BENCH_ORG_CONSUMERS={}, BENCH_ORG_ACCOUNTS={accounts}, \
         BENCH_ORG_SECRETS={secrets}, BENCH_ORG_DELAY_MS={delay}).\n\n",
        env_or("BENCH_ORG_TARGET", "bench-org"),
        consumers
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(",")
    ));
    let path = root().join("bench/results-org.md");
    let was = std::fs::read_to_string(&path).unwrap_or_default();
    std::fs::write(&path, with_section(&was, &md)).unwrap();
    eprintln!("{md}");
}

/// `file` (bench/results-org.md: a title, then one `## ` section per
/// configuration) with `section` in place of the one of its heading, or
/// added at the end.
fn with_section(file: &str, section: &str) -> String {
    const TITLE: &str = "# Org sweep benchmark (`make bench-org`)\n\n";
    let heading = section.lines().next().unwrap_or_default();
    let mut parts: Vec<String> = Vec::new();
    for chunk in file.split("\n## ").skip(1) {
        parts.push(format!("## {}", chunk.trim_end()));
    }
    let mut placed = false;
    for p in &mut parts {
        if p.lines().next() == Some(heading) {
            *p = section.trim_end().to_string();
            placed = true;
        }
    }
    if !placed {
        parts.push(section.trim_end().to_string());
    }
    format!("{TITLE}{}\n", parts.join("\n\n"))
}
