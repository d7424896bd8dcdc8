//! The policy ledger against moto (README "Resource policies between
//! sweeps"): the first sweep reads every resource policy; later sweeps
//! read only the flagged, changed and refresh-share ones; PutResourcePolicy
//! and DeleteResourcePolicy events flag and clear; a flagged secret's
//! finding is reported by every sweep.

mod support;

use std::collections::BTreeSet;

use replica_auditor::engine::Budget;
use replica_auditor::ledger::{Due, PolicyLedger, arn_digest};
use serde_json::{Value, json};
use support::*;

const DBWEST: &str = "production/DBWest";
const REFRESH: u32 = 50;

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

/// The primaries in us-west-2 the sweep audits (those with replicas).
async fn audited_primaries(w: &World) -> Vec<String> {
    let sm = aws_sdk_secretsmanager::Client::new(&w.sdk().await);
    let mut out = Vec::new();
    let mut pages = sm.list_secrets().into_paginator().send();
    while let Some(page) = pages.next().await {
        for s in page.expect("ListSecrets").secret_list() {
            let arn = s.arn().unwrap();
            let d = sm
                .describe_secret()
                .secret_id(arn)
                .send()
                .await
                .expect("DescribeSecret");
            let primary_here = d.primary_region().is_none_or(|r| r == "us-west-2");
            if primary_here && !d.replication_status().is_empty() {
                out.push(arn.to_string());
            }
        }
    }
    out
}

/// The audited primaries whose policies a sweep reads for its refresh
/// share alone, under `ledger` (as the sweep starting now reads it).
fn refresh_share(ledger: &PolicyLedger, primaries: &[String]) -> BTreeSet<String> {
    primaries
        .iter()
        .filter(|a| ledger.due(a, Some(0), &ledger.rules, REFRESH) == Some(Due::Refresh))
        .cloned()
        .collect()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_sweeps_read_only_flagged_changed_and_refresh_policies() {
    let w = World::start_bulk(40);
    let refresh = REFRESH.to_string();
    let app = w.app(&[("SWEEP_POLICY_REFRESH", refresh.as_str())]).await;
    let primaries = audited_primaries(&w).await;
    let dbwest = w.secrets[DBWEST].clone();
    assert!(primaries.contains(&dbwest));

    // No ledger yet: every audited secret's policy is read.
    let s1 = sweep(&app).await;
    let audited = s1["secrets_audited"].as_u64().unwrap();
    assert_eq!(audited as usize, primaries.len(), "{s1}");
    assert_eq!(s1["resource_policies_read"], audited, "{s1}");
    assert_eq!(s1["resource_policies_not_due"], 0, "{s1}");
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
    assert_eq!(l2.flagged, BTreeSet::from([arn_digest(&dbwest)]));
    assert_eq!(l2.version, 1);
    w.published().await;

    // The second sweep reads the flagged policy and its refresh share only,
    // and reports the finding again.
    let share = refresh_share(&l2, &primaries);
    assert!(share.len() < primaries.len() / 4, "{share:?}");
    let s2 = sweep(&app).await;
    let read = share.len() as u64 + u64::from(!share.contains(&dbwest));
    assert_eq!(s2["resource_policies_read"], read, "{s2}");
    assert_eq!(s2["resource_policies_not_due"], audited - read, "{s2}");
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
    // the next sweep reads the still flagged policy, clean, and clears it.
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
    let l4 = ledger(&w).await;
    let share = refresh_share(&l4, &primaries);
    let s3 = sweep(&app).await;
    let read = share.len() as u64 + u64::from(!share.contains(&dbwest));
    assert_eq!(s3["resource_policies_read"], read, "{s3}");
    assert!(s3["by_code"].get("SECRET_POLICY_PUBLIC").is_none(), "{s3}");
    let l5 = ledger(&w).await;
    assert!(l5.flagged.is_empty(), "{l5:?}");
    assert_eq!((l5.sweeps, l5.version), (3, 1));

    // The fourth sweep reads only its own refresh share (another slice).
    w.an_hour_after_the_last_sweep().await;
    let share = refresh_share(&ledger(&w).await, &primaries);
    let s4 = sweep(&app).await;
    assert_eq!(s4["resource_policies_read"], share.len() as u64, "{s4}");
}

/// A ledger made under other trust rules is read anew, whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_trust_rules_read_every_policy_again() {
    let w = World::start();
    let app = w.app(&[("SWEEP_POLICY_REFRESH", "1000")]).await;
    let s1 = sweep(&app).await;
    w.an_hour_after_the_last_sweep().await;
    let s2 = sweep(&app).await;
    assert!(
        s2["resource_policies_read"].as_u64().unwrap()
            < s1["resource_policies_read"].as_u64().unwrap(),
        "{s2}"
    );
    w.an_hour_after_the_last_sweep().await;
    let trusting = w
        .app(&[
            ("SWEEP_POLICY_REFRESH", "1000"),
            ("TRUSTED_ACCOUNT_IDS", "999988887777"),
        ])
        .await;
    let s3 = sweep(&trusting).await;
    assert_eq!(
        s3["resource_policies_read"], s1["resource_policies_read"],
        "{s3}"
    );
    assert_eq!(s3["resource_policies_not_due"], 0, "{s3}");
    // SWEEP_POLICY_REFRESH=1: every sweep reads every policy, as before the ledger.
    w.an_hour_after_the_last_sweep().await;
    let every = w
        .app(&[
            ("SWEEP_POLICY_REFRESH", "1"),
            ("TRUSTED_ACCOUNT_IDS", "999988887777"),
        ])
        .await;
    let s4 = sweep(&every).await;
    assert_eq!(
        s4["resource_policies_read"], s1["resource_policies_read"],
        "{s4}"
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
