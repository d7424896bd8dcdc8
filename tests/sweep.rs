//! The scheduled sweep against moto: 212 secrets, a handful broken.

mod support;

use std::time::{Duration, Instant};

use replica_auditor::engine::Budget;
use replica_auditor::sinks::collect::Collect;
use serde_json::{Value, json};
use support::*;

fn scheduled() -> Value {
    json!({
        "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012", "time": "2026-11-23T12:00:00Z", "region": "us-west-2",
        "resources": ["arn:aws:events:us-west-2:123456789012:rule/replica-auditor-sweep"], "detail": {}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_reports_each_broken_secret_and_a_summary() {
    let w = World::start_bulk(200);
    let app = w.app(&[]).await;
    let summary = app
        .handle(&bytes(&scheduled()), Budget::unlimited())
        .await
        .expect("sweep succeeds");
    let s = &summary["sweep"];
    assert_eq!(s["regions"], json!(["us-west-2"]));
    // 200 bulk + 12 world primaries in us-west-2 (Retired is deleted).
    assert_eq!(s["secrets_seen"], 212);
    // production/Promoted has no replicas left: not audited.
    assert_eq!(s["secrets_audited"], 211);
    assert_eq!(s["secrets_with_findings"], 10);
    assert_eq!(s["reports_published"], 10);
    assert_eq!(s["not_reached"], 0);
    // Every audited secret's resource policy was read at the sweep's pace
    // (25/s per Region after a burst of 5): the pace, not the concurrency,
    // bounds the sweep now.
    let ms = s["duration_ms"].as_u64().unwrap();
    eprintln!(
        "sweep of 212 secrets ({} audited): {ms} ms",
        s["secrets_audited"]
    );
    assert!(ms >= (211 - 5) * 1000 / 25, "{ms} ms");
    assert_eq!(
        s["by_code"],
        json!({
            "KEY_DISABLED": 2, "KEY_NOT_FOUND": 1, "KEY_PENDING_DELETION": 1, "KEY_POLICY_PUBLIC": 1,
            "KEY_POLICY_UNTRUSTED_ACCOUNT": 1, "REPLICA_FAILED": 2, "REPLICA_KEY_WEAKER_THAN_PRIMARY": 2,
            "REPLICA_MISSING": 1, "REQUIRED_REGION_MISSING": 1
        })
    );
    // Many secrets share a key: most KMS answers came from the cache.
    assert!(s["kms_cache_hits"].as_u64().unwrap() > 700, "{s}");
    assert!(s["kms_calls"].as_u64().unwrap() < 40, "{s}");
    // Replicas come from one ListSecrets listing per Region: the 207 true
    // replicas in us-east-1 (200 bulk + 7 world secrets; 3 pages of 100)
    // and EuReplica's in eu-west-1 (1 page). The two name clashes and the
    // Hijacked copy (a replica of eu-west-1) are not in a listing of
    // us-west-2's replicas: each was described, which is how their
    // findings above were made.
    assert_eq!(s["replicas_from_listing"], 208, "{s}");
    assert_eq!(s["replica_listing_calls"], 4, "{s}");
    assert_eq!(summary["trigger"]["source"], "schedule");
    assert_eq!(summary["findings"], json!([]));

    let published = w.published().await;
    assert_eq!(published.len(), 11, "ten secret reports and the summary");
    let summaries: Vec<_> = published
        .iter()
        .filter(|p| p.report.get("sweep").is_some())
        .collect();
    assert_eq!(summaries.len(), 1);
    assert_eq!(
        summaries[0].subject,
        "[INFO] replica-auditor: sweep of 212 secrets: 10 with findings"
    );
    let mut names: Vec<&str> = published
        .iter()
        .filter(|p| p.report.get("sweep").is_none())
        .map(|p| {
            assert_eq!(p.report["trigger"]["source"], "schedule");
            assert_eq!(p.report["trigger"]["event_name"], "Scheduled Event");
            p.report["secret"]["name"].as_str().unwrap()
        })
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        vec![
            "production/Clash",
            "production/ClashOnDisabledKey",
            "production/DisabledKey",
            "production/DoomedKey",
            "production/EuReplica",
            "production/Hijacked",
            "production/LostKey",
            "production/PartnerKey",
            "production/PublicKey",
            "production/WeakReplica",
        ]
    );
}

/// A proxy in front of the world's moto that adds 20 ms to every call, as
/// an AWS round trip would.
/// The engine hands its reports to whatever sink it is given: a
/// collecting sink gets every per-secret report, then the summary, and
/// nothing goes to SNS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_hands_its_reports_to_any_sink() {
    let w = World::start();
    let app = w.app_with_sink(&[], Collect::default()).await;
    let summary = app
        .handle(&bytes(&scheduled()), Budget::unlimited())
        .await
        .expect("sweep succeeds");
    let reports = app.sink.take();
    let (last, each) = reports.split_last().expect("the summary at least");
    assert_eq!(
        serde_json::to_value(last).unwrap(),
        summary,
        "the summary comes last"
    );
    let s = &summary["sweep"];
    let n = s["reports_published"].as_u64().unwrap() as usize;
    assert!(n > 0, "{s}");
    assert_eq!(each.len(), n);
    assert_eq!(s["secrets_with_findings"].as_u64().unwrap() as usize, n);
    assert!(
        each.iter()
            .all(|r| r.sweep.is_none() && !r.findings.is_empty())
    );
    assert!(w.published().await.is_empty(), "nothing went to SNS");
}

async fn aws_like_latency(w: &World) -> fault_proxy::FaultProxy {
    w.latency_proxy(20).await
}

/// Run a sweep with a deadline `total` away (a fifth of it kept back to
/// publish), through `proxy`, bounded by a minute more than the deadline;
/// the summary, and how long the sweep took.
async fn sweep_until(
    w: &World,
    proxy: &fault_proxy::FaultProxy,
    vars: &[(&str, &str)],
    total: Duration,
) -> (Value, Duration) {
    let app = w.app_with_sdk(vars, sdk_config(&proxy.endpoint).await);
    let started = Instant::now();
    let budget = Budget::until(started + total, Budget::reserve_for(total));
    let within = total + Duration::from_secs(60);
    let Ok(swept) = tokio::time::timeout(within, app.handle(&bytes(&scheduled()), budget)).await
    else {
        panic!("the sweep did not stop at its {total:?} deadline");
    };
    let summary = swept.expect("sweep succeeds");
    (summary, started.elapsed())
}

// The deadline tests below decide what the deadline cuts with the fault
// proxy, not with the clock: the calls it cuts hang until the deadline,
// however fast or loaded the machine (Budget reads the real clock, and
// moto is a real process, so tokio's paused clock does not apply). What
// must happen before the deadline (a listing page or three) has seconds
// to do what takes milliseconds. No assertion says how long publishing
// took within the reserve: that is the machine's speed, not the sweep's.

/// Every DescribeSecret hangs: one secret at a time (SWEEP_CONCURRENCY=1),
/// the first one audited waits for the deadline, the other 211 listed are
/// never reached, and the summary says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_stops_before_the_deadline_and_says_what_it_missed() {
    let w = World::start_bulk(200);
    let hang = fault_proxy::Fault::Hang;
    let proxy = fault_proxy::FaultProxy::start(
        &w.moto.endpoint,
        vec![fault_proxy::Rule::new(Some("secretsmanager"), None, hang).action("DescribeSecret")],
    )
    .await;
    let total = Duration::from_secs(5);
    let (summary, took) = sweep_until(&w, &proxy, &[("SWEEP_CONCURRENCY", "1")], total).await;
    // The hung call was given up when the calls' window closed (the
    // deadline less the 1 s reserve), not before.
    assert!(took >= Duration::from_secs(4), "returned after {took:?}");
    let s = &summary["sweep"];
    // The listing (three pages, no DescribeSecret) is done long before the
    // deadline: every one of the 212 secrets listed; one in flight.
    assert_eq!(s["secrets_seen"], 212, "{s}");
    assert_eq!(s["not_reached"], 211, "{s}");
    assert_eq!(proxy.calls("DescribeSecret").len(), 1, "{s}");
    let f = finding(&summary, "AUDIT_INCOMPLETE");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("211 of 212 secrets were not reached"),
        "{f}"
    );
    let published = w.published().await;
    assert!(
        published.iter().any(|p| p.report.get("sweep").is_some()),
        "the summary is published"
    );
}

/// When the deadline comes while ListSecrets is still listing (the first
/// page of 100 answered, the second held until the deadline), the summary
/// says how many were listed and that the rest were neither listed nor
/// audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_whose_listing_the_deadline_cut_short_says_so() {
    let w = World::start_bulk(200);
    let list = |fault| {
        fault_proxy::Rule::new(Some("secretsmanager"), Some("us-west-2"), fault)
            .action("ListSecrets")
    };
    let proxy = fault_proxy::FaultProxy::start(
        &w.moto.endpoint,
        vec![
            list(fault_proxy::Fault::Delay(Duration::ZERO)).times(1),
            list(fault_proxy::Fault::Hang),
        ],
    )
    .await;
    let (summary, _) = sweep_until(&w, &proxy, &[], Duration::from_secs(4)).await;
    let s = &summary["sweep"];
    assert_eq!(s["secrets_seen"], 100, "one page: {s}");
    let messages: Vec<&str> = summary["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "AUDIT_INCOMPLETE")
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    let cut = "in us-west-2: 100 were listed; the rest were neither listed nor audited";
    assert!(messages.iter().any(|m| m.contains(cut)), "{messages:?}");
    assert!(
        !messages.iter().any(|m| m.contains("could not run")),
        "a deadline is not a listing failure: {messages:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_over_several_regions_follows_replicas_to_their_primary() {
    let w = World::start();
    let app = w.app(&[("SWEEP_REGIONS", "us-west-2,us-east-1")]).await;
    let summary = app
        .handle(&bytes(&scheduled()), Budget::unlimited())
        .await
        .unwrap();
    let s = &summary["sweep"];
    // us-east-1 adds its replicas (the same primaries), the two same-named
    // standalone secrets behind the clashes, the promoted standalone, and
    // the eu-west-1 primary whose replica took over production/Hijacked.
    assert_eq!(s["secrets_seen"], 12 + 4);
    assert_eq!(s["secrets_with_findings"], 10);
}

/// Picks SWEEP_CONCURRENCY: a sweep of 212 secrets at each concurrency,
/// every AWS call delayed 20 ms by the proxy (an AWS-like round trip).
/// `make bench-sweep` runs it; the README records the numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: make bench-sweep"]
async fn sweep_concurrency_benchmark() {
    let w = World::start_bulk(200);
    let proxy = aws_like_latency(&w).await;
    println!("concurrency  seconds  secrets/s  aws_calls");
    for c in [1, 2, 4, 8, 16, 32] {
        let app = w.app_with_sdk(
            &[("SWEEP_CONCURRENCY", &c.to_string())],
            sdk_config(&proxy.endpoint).await,
        );
        let before: usize = ["secretsmanager", "kms", "sns"]
            .iter()
            .map(|s| proxy.seen(s, "us-west-2") + proxy.seen(s, "us-east-1"))
            .sum();
        let started = Instant::now();
        let summary = app
            .handle(&bytes(&scheduled()), Budget::unlimited())
            .await
            .unwrap();
        let secs = started.elapsed().as_secs_f64();
        let after: usize = ["secretsmanager", "kms", "sns"]
            .iter()
            .map(|s| proxy.seen(s, "us-west-2") + proxy.seen(s, "us-east-1"))
            .sum();
        assert_eq!(summary["sweep"]["secrets_audited"], 211);
        println!(
            "{c:>11}  {secs:>7.2}  {:>9.0}  {:>9}",
            212.0 / secs,
            after - before
        );
        w.published().await; // drain
    }
}

/// A replica that says InSync while it serves an older version, two hours
/// after the primary's current one was made: the sweep reports it
/// (docs/freshness.md), from its listings and the primary's description,
/// as an event would. moto's replicas share the primary's versions, so
/// the proxy rewrites the answers (DescribeSecret and ListSecrets).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_reports_a_stale_replica_that_says_in_sync() {
    use support::freshness::{V_NEW, V_OLD, versions};
    let w = World::start();
    let proxy = fault_proxy::FaultProxy::start(&w.moto.endpoint, vec![]).await;
    let app = w.app_with_sdk(&[], sdk_config(&proxy.endpoint).await);
    let primary = w.secrets["production/DBWest"].clone();
    versions(&proxy, &primary, V_OLD, "InSync", "Replication succeeded");
    let summary = app
        .handle(&bytes(&scheduled()), Budget::unlimited())
        .await
        .expect("sweep succeeds");
    assert_eq!(
        summary["sweep"]["by_code"]["REPLICA_STALE"], 1,
        "{summary:#}"
    );
    let published = w.published().await;
    let report = &published
        .iter()
        .find(|p| p.report["secret"]["arn"] == primary.as_str())
        .expect("DBWest's report is published")
        .report;
    let stale: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "REPLICA_STALE")
        .collect();
    assert_eq!(stale.len(), 1, "{report:#}");
    assert_eq!(stale[0]["region"], "us-east-1");
    let message = stale[0]["message"].as_str().unwrap();
    for part in [V_NEW, V_OLD, "InSync", "not trusted"] {
        assert!(message.contains(part), "{part:?} missing: {message}");
    }
}
