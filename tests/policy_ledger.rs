//! The policy ledger against moto (README "Resource policies between
//! sweeps"): the first sweep reads every resource policy; later sweeps
//! read only the flagged, changed and refresh-share ones; PutResourcePolicy
//! and DeleteResourcePolicy events flag and clear; a flagged secret's
//! finding is reported by every sweep.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use replica_auditor::engine::Budget;
use replica_auditor::ledger::{PolicyLedger, arn_digest};
use serde_json::{Value, json};
use support::fault_proxy;
use support::*;

const DBWEST: &str = "production/DBWest";

fn scheduled() -> Value {
    json!({
        "version": "0", "id": "0b5c3f3e-8a1e-4c55-9d0a-6f1f0e4a2b11", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012", "time": "2026-11-25T12:00:00Z", "region": "us-west-2",
        "resources": ["arn:aws:events:us-west-2:123456789012:rule/replica-auditor-sweep"], "detail": {}
    })
}

async fn sweep(app: &replica_auditor::engine::App<replica_auditor::aws::AwsClients>) -> Value {
    let summary = app
        .handle(&bytes(&scheduled()), Budget::unlimited())
        .await
        .expect("sweep succeeds");
    summary["sweep"].clone()
}

/// The ledger of the own account in us-west-2, as the state table holds it
/// (read through the adapter the sweeps use).
async fn ledger(w: &World) -> PolicyLedger {
    use replica_auditor::aws::PolicyLedgers;
    w.app(&[])
        .await
        .clients
        .policy_ledger(MOTO_ACCOUNT, "us-west-2")
        .await
        .expect("GetItem")
        .expect("a state table")
}

/// The world's primaries in us-west-2 that a sweep audits: every one with
/// replicas (tests/moto/world.py; Promoted has none left, Retired is
/// deleted), and the `bulk` healthy ones `bulk/secret-NNNN`.
fn audited(bulk: usize) -> BTreeSet<String> {
    [
        "DBWest",
        "Clash",
        "DisabledKey",
        "DoomedKey",
        "ClashOnDisabledKey",
        "PublicKey",
        "PartnerKey",
        "WeakReplica",
        "EuReplica",
        "LostKey",
        "Hijacked",
    ]
    .iter()
    .map(|n| format!("production/{n}"))
    .chain((0..bulk).map(|i| format!("bulk/secret-{i:04}")))
    .collect()
}

/// The secrets whose resource policies reached moto (GetResourcePolicy,
/// as the proxy saw them) since the proxy's log had `from` such calls,
/// by name; and the count now.
fn policies_read(proxy: &fault_proxy::FaultProxy, from: usize) -> (Vec<String>, usize) {
    let calls = proxy.calls("GetResourcePolicy");
    let names = calls[from..]
        .iter()
        .map(|c| {
            let body: Value = serde_json::from_str(&c.body).expect("a JSON request");
            let id = body["SecretId"].as_str().expect("SecretId");
            // An ARN's name ends in a dash and AWS's six random characters.
            match id.split_once(":secret:") {
                Some((_, name)) => name[..name.len() - 7].to_string(),
                None => id.to_string(),
            }
        })
        .collect();
    (names, calls.len())
}

/// One sweep through `app`: its summary's `sweep`, and the policies it
/// read (from the proxy's log), checked against the summary's counts of
/// `audited` secrets.
async fn sweep_reading(
    app: &replica_auditor::engine::App<replica_auditor::aws::AwsClients>,
    proxy: &fault_proxy::FaultProxy,
    audited: usize,
) -> (Value, Vec<String>) {
    let (_, before) = policies_read(proxy, 0);
    let s = sweep(app).await;
    let (read, _) = policies_read(proxy, before);
    assert_eq!(s["secrets_audited"], audited, "{s}");
    assert_eq!(s["resource_policies_read"], read.len(), "{s}");
    assert_eq!(s["resource_policies_not_due"], audited - read.len(), "{s}");
    (s, read)
}

async fn put_public_policy(w: &World) {
    aws_sdk_secretsmanager::Client::new(&w.sdk().await)
        .put_resource_policy()
        .secret_id(&w.secrets[DBWEST])
        .resource_policy(
            json!({"Version": "2012-10-17", "Statement": [{"Sid": "AnyoneMayRead", "Effect": "Allow",
                "Principal": {"AWS": "*"}, "Action": "secretsmanager:DescribeSecret", "Resource": "*"}]})
            .to_string(),
        )
        .block_public_policy(false)
        .send()
        .await
        .expect("PutResourcePolicy");
}

/// DBWest's entry in the flagged set: `printf %s ARN | sha256sum`, the
/// first 16 hex digits, for its fixed ARN (world.py's `AbCdEf` suffix).
/// As a number it is 1 modulo 3: DBWest is in slice 1 of 3, which the
/// sweep that finds the ledger at 1 sweep reads for its refresh share.
const DBWEST_DIGEST: &str = "e0f04bad6a3cd5f5";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_sweeps_read_only_flagged_changed_and_refresh_policies() {
    let w = World::start_bulk(40);
    let audited = audited(40);
    let n = audited.len();
    assert_eq!(n, 51);
    // The proxy only logs: which policies each sweep reads.
    let proxy = fault_proxy::FaultProxy::start(&w.moto.endpoint, vec![]).await;
    let app = w.app_with_sdk(
        &[("SWEEP_POLICY_REFRESH", "3")],
        sdk_config(&proxy.endpoint).await,
    );
    let dbwest = w.secrets[DBWEST].clone();
    assert_eq!(arn_digest(&dbwest), DBWEST_DIGEST);

    // No ledger yet: every audited secret's policy is read, once.
    let (_, read1) = sweep_reading(&app, &proxy, n).await;
    assert_eq!(BTreeSet::from_iter(read1.iter().cloned()), audited);
    assert_eq!(read1.len(), n, "each once");
    let l1 = ledger(&w).await;
    assert_eq!(l1.sweeps, 1);
    assert!(l1.flagged.is_empty(), "no policy had a finding: {l1:?}");
    let started = l1.read_as_of.unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((now - 120..=now).contains(&started), "{started} vs {now}");

    // A public policy arrives; its CloudTrail event is audited and flags
    // the secret (moto, unlike what AWS may do, leaves LastChangedDate as
    // it was: only the flag makes the next sweep look).
    w.an_hour_after_the_last_sweep().await;
    put_public_policy(&w).await;
    let report = run(&app, &event("put-resource-policy.json")).await;
    assert_eq!(report["trigger"]["event_name"], "PutResourcePolicy");
    assert_eq!(
        finding(&report, "SECRET_POLICY_PUBLIC")["region"],
        "us-west-2"
    );
    let l2 = ledger(&w).await;
    assert_eq!(l2.flagged, BTreeSet::from([DBWEST_DIGEST.to_string()]));
    assert_eq!(l2.version, 1);
    w.published().await;

    // The second sweep reads the flagged policy and its refresh share,
    // and reports the finding again.
    let (s2, read2) = sweep_reading(&app, &proxy, n).await;
    assert!(read2.contains(&DBWEST.to_string()), "{read2:?}");
    assert_eq!(s2["by_code"]["SECRET_POLICY_PUBLIC"], 1, "{s2}");
    let published = w.published().await;
    let dbwest_report = published
        .iter()
        .find(|p| p.report["secret"]["name"] == DBWEST)
        .expect("DBWest reported by the sweep");
    finding(&dbwest_report.report, "SECRET_POLICY_PUBLIC");
    let l3 = ledger(&w).await;
    assert_eq!(l3.sweeps, 2);
    assert_eq!(l3.flagged, l2.flagged, "still flagged: the finding stands");

    // The policy is deleted. Its event writes nothing (a clean read);
    // the next sweep reads the still flagged policy (not in its slice),
    // clean, and clears it.
    aws_sdk_secretsmanager::Client::new(&w.sdk().await)
        .delete_resource_policy()
        .secret_id(&dbwest)
        .send()
        .await
        .expect("DeleteResourcePolicy");
    let report = run(&app, &event("delete-resource-policy.json")).await;
    assert_eq!(report["trigger"]["event_name"], "DeleteResourcePolicy");
    assert_eq!(report["findings"], json!([]));
    assert_eq!(ledger(&w).await, l3, "a clean read writes nothing");
    w.an_hour_after_the_last_sweep().await;
    let (s3, read3) = sweep_reading(&app, &proxy, n).await;
    assert!(read3.contains(&DBWEST.to_string()), "{read3:?}");
    assert!(s3["by_code"].get("SECRET_POLICY_PUBLIC").is_none(), "{s3}");
    let l5 = ledger(&w).await;
    assert!(l5.flagged.is_empty(), "{l5:?}");
    assert_eq!((l5.sweeps, l5.version), (3, 1));

    // The fourth sweep reads only its own refresh share: DBWest, cleared
    // and not in it, is not read.
    w.an_hour_after_the_last_sweep().await;
    let (_, read4) = sweep_reading(&app, &proxy, n).await;
    assert!(!read4.contains(&DBWEST.to_string()), "{read4:?}");

    // Three sweeps in a row are three slices that are the whole: every
    // other audited secret was read by exactly one of them, DBWest by the
    // two that found it flagged, nothing else was read.
    let mut times: BTreeMap<&str, usize> = BTreeMap::new();
    for name in read2.iter().chain(&read3).chain(&read4) {
        *times.entry(name).or_default() += 1;
    }
    let expected: BTreeMap<&str, usize> = audited
        .iter()
        .map(|a| (a.as_str(), if a == DBWEST { 2 } else { 1 }))
        .collect();
    assert_eq!(times, expected);
    assert_eq!(read2.len() + read3.len() + read4.len(), n + 1);
}

/// A ledger made under other trust rules is read anew, whole. The world's
/// 11 audited secrets have fixed ARNs; none of their digests is 1 modulo
/// 1,000 (sha256sum, as for [`DBWEST_DIGEST`]): with nothing flagged or
/// changed, the second sweep reads no policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_trust_rules_read_every_policy_again() {
    let w = World::start();
    let read = |s: &Value| {
        (
            s["resource_policies_read"].clone(),
            s["resource_policies_not_due"].clone(),
        )
    };
    let app = w.app(&[("SWEEP_POLICY_REFRESH", "1000")]).await;
    assert_eq!(
        read(&sweep(&app).await),
        (json!(11), json!(0)),
        "no ledger yet"
    );
    w.an_hour_after_the_last_sweep().await;
    assert_eq!(read(&sweep(&app).await), (json!(0), json!(11)));
    w.an_hour_after_the_last_sweep().await;
    let trusting = w
        .app(&[
            ("SWEEP_POLICY_REFRESH", "1000"),
            ("TRUSTED_ACCOUNT_IDS", "999988887777"),
        ])
        .await;
    assert_eq!(
        read(&sweep(&trusting).await),
        (json!(11), json!(0)),
        "other rules"
    );
    // SWEEP_POLICY_REFRESH=1: every sweep reads every policy, as before the ledger.
    w.an_hour_after_the_last_sweep().await;
    let every = w
        .app(&[
            ("SWEEP_POLICY_REFRESH", "1"),
            ("TRUSTED_ACCOUNT_IDS", "999988887777"),
        ])
        .await;
    assert_eq!(
        read(&sweep(&every).await),
        (json!(11), json!(0)),
        "refresh 1"
    );
}

/// Writers at once, through the adapter itself: a sweep whose view of the
/// ledger is out of date neither moves the mark over a later sweep's nor
/// clears a secret an event flagged after it read the ledger; it still
/// adds what it found wanting. One that is up to date does both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_sweep_neither_moves_the_mark_nor_clears_a_fresh_flag() {
    use replica_auditor::aws::PolicyLedgers;
    use replica_auditor::ledger::PolicyPass;

    let w = World::start();
    let app = w.app(&[]).await;
    let c = &app.clients;
    let (account, region) = (MOTO_ACCOUNT, "us-west-2");
    let arn = |name: &str| {
        format!("arn:aws:secretsmanager:us-west-2:{MOTO_ACCOUNT}:secret:{name}-AbCdEf")
    };
    let (x, z) = (arn("x"), arn("z"));
    let read = || async { c.policy_ledger(account, region).await.unwrap().unwrap() };
    let pass = |clean: &[&str], wanting: &[&str]| {
        let mut p = PolicyPass {
            complete: true,
            ..PolicyPass::default()
        };
        clean.iter().for_each(|a| p.count(a, true, Some(true)));
        wanting.iter().for_each(|a| p.count(a, true, Some(false)));
        p
    };

    assert_eq!(
        read().await,
        PolicyLedger::default(),
        "nothing recorded yet"
    );
    c.note_policy(account, region, &x).await.unwrap();
    // Sweep A reads the ledger: x flagged.
    let seen_by_a = read().await;
    assert_eq!(seen_by_a.flagged, BTreeSet::from([arn_digest(&x)]));
    // x's policy is broken again after A read it, and its event flags it.
    c.note_policy(account, region, &x).await.unwrap();
    // Sweep B, which started later, records first.
    let seen_by_b = read().await;
    c.record_policy_pass(
        account,
        region,
        &pass(&[], &[]),
        (2_000, "rules"),
        &seen_by_b,
    )
    .await
    .unwrap();
    // A records late: it read x clean (before the second break) and z wanting.
    c.record_policy_pass(
        account,
        region,
        &pass(&[&x], &[&z]),
        (1_000, "rules"),
        &seen_by_a,
    )
    .await
    .unwrap();
    let l = read().await;
    assert_eq!(
        (l.read_as_of, l.sweeps),
        (Some(2_000), 1),
        "B's mark stands: {l:?}"
    );
    assert_eq!(
        l.flagged,
        BTreeSet::from([arn_digest(&x), arn_digest(&z)]),
        "x stays flagged (an event flagged it after A read), z is added"
    );
    assert_eq!(l.version, 2);

    // A sweep under looser rules (another trusted account), up to date
    // otherwise, reads both clean and stops early: it clears nothing, for
    // the ledger's own sweeps would still flag them.
    let mut looser = pass(&[&x, &z], &[]);
    looser.complete = false;
    c.record_policy_pass(account, region, &looser, (2_500, "looser rules"), &l)
        .await
        .unwrap();
    assert_eq!(read().await, l, "nothing changed");

    // Sweep C, up to date, reads both clean: both cleared, its mark moves.
    c.record_policy_pass(account, region, &pass(&[&x, &z], &[]), (3_000, "rules"), &l)
        .await
        .unwrap();
    let l = read().await;
    assert_eq!(
        (l.read_as_of, l.sweeps, l.rules.as_str()),
        (Some(3_000), 2, "rules")
    );
    assert!(l.flagged.is_empty(), "{l:?}");
}
