//! The shared pace (`rate::SharedPace`, `aws::pace`) against moto's state
//! table, through the fault proxy: several instances (each its own App's
//! clients and its own pace, as Lambda runs them) taking tokens of one
//! account and Region keep the rate together, and an UpdateItem applied
//! but whose answer is lost gives no token extra.
//!
//! Real time, but no race with it: a start may come after its token's time
//! (a loaded machine), never before it. Every take carries its `:now`
//! (microseconds since the epoch) and moves the bucket by one interval per
//! token, so the i-th start comes at least i intervals after the first
//! take's `now`, which no lateness can break ([`assert_paced`]).

mod support;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use replica_auditor::aws::AwsClients;
use replica_auditor::engine::App;
use replica_auditor::rate::SharedPace;
use support::fault_proxy::{Fault, FaultProxy, Rule};
use support::*;

const ACCOUNT: &str = "111122223333";
const REGION: &str = "eu-west-1";
const RATE: f64 = 10.0;

/// `instances` Apps on `endpoint`, each with its own pace of RATE a second
/// (burst 1), each with `callers` tasks taking one token: when each started
/// (microseconds since the epoch), in order.
async fn starts(w: &World, endpoint: &str, instances: usize, callers: usize) -> Vec<u64> {
    let mut tasks = Vec::new();
    for _ in 0..instances {
        let app: Arc<App<AwsClients>> =
            Arc::new(w.app_with_sdk(&[("REMEDIATION", "off")], sdk_config(endpoint).await));
        let pace = Arc::new(SharedPace::new("test", RATE, 1));
        for _ in 0..callers {
            let (app, pace) = (app.clone(), pace.clone());
            tasks.push(tokio::spawn(async move {
                pace.acquire(&app.clients, ACCOUNT, REGION, None)
                    .await
                    .expect("a token");
                epoch_us()
            }));
        }
    }
    let mut at = Vec::new();
    for t in tasks {
        at.push(t.await.unwrap());
    }
    at.sort();
    at
}

/// The i-th start came at least i intervals after the first take's `:now`
/// ([`FaultProxy::assert_paced`]).
fn assert_paced(proxy: &FaultProxy, at: &[u64]) {
    proxy.assert_paced(
        &format!("pace#test#{ACCOUNT}#{REGION}"),
        (1e6 / RATE) as u64,
        at,
    );
}

/// The bucket's `tat` (microseconds since the epoch), as moto holds it.
async fn tat(w: &World) -> u64 {
    let db = aws_sdk_dynamodb::Client::new(&w.sdk().await);
    let item = db
        .get_item()
        .table_name(&w.state_table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("pace#test#{ACCOUNT}#{REGION}")),
        )
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem");
    item.item().unwrap()["tat"].as_n().unwrap().parse().unwrap()
}

fn epoch_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_instances_sharing_the_table_keep_one_rate_in_few_calls() {
    let w = World::start();
    let proxy = FaultProxy::start(&w.moto.endpoint, vec![]).await;
    let before = epoch_us();
    let at = starts(&w, &proxy.endpoint, 4, 10).await;
    assert_eq!(at.len(), 40);
    // Each instance alone would start its 10 within a second; the four
    // together take 40 tokens at 10 a second: the last 3.9 s after the
    // first take at least.
    assert_paced(&proxy, &at);
    // The bucket counted every token: 40 of 100 ms from the first take.
    let counted = (tat(&w).await - before) / 100_000;
    assert!((40..=41).contains(&counted), "{counted} tokens counted");
    // What it cost: UpdateItems per token taken.
    let updates = proxy.requests("dynamodb", "UpdateItem").len();
    eprintln!("{updates} UpdateItem for 40 tokens in 4 instances");
    assert!(updates < 40, "{updates} UpdateItem for 40 tokens");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_take_applied_whose_answer_is_lost_gives_no_token_extra() {
    let w = World::start();
    // The first two UpdateItems reach moto and their answers are lost: the
    // SDK retries them, and a retry of an applied take takes its tokens again.
    let proxy = FaultProxy::start(
        &w.moto.endpoint,
        vec![
            Rule::new(Some("dynamodb"), None, Fault::AppliedThenDrop)
                .action("UpdateItem")
                .times(2),
        ],
    )
    .await;
    let before = epoch_us();
    let at = starts(&w, &proxy.endpoint, 2, 10).await;
    assert_eq!(at.len(), 20);
    let updates = proxy.requests("dynamodb", "UpdateItem");
    let dropped: Vec<_> = updates
        .iter()
        .filter(|c| c.fault == Some(Fault::AppliedThenDrop))
        .collect();
    assert_eq!(dropped.len(), 2);
    // The first take to reach the empty table is applied (its retry then
    // finds the bucket taken, and takes again); the other instance's may
    // have been a refused condition, which moto did not apply.
    assert!(dropped.iter().any(|c| c.applied()), "{dropped:?}");
    // The rate holds: 20 starts take 1.9 s at least.
    assert_paced(&proxy, &at);
    // The lost takes' tokens stay taken: the bucket counted more than the
    // 20 used, so nobody was given a token twice.
    let counted = (tat(&w).await - before) / 100_000;
    assert!(counted > 20, "{counted} tokens counted for 20 calls");
}
