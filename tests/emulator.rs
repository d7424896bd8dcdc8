//! The test emulator itself: the fault proxy's "post" faults (a request
//! applied at moto whose answer is lost or replaced, or held past the
//! client's deadline, then applied or dropped), its seeded rates and its
//! record of requests, and moto's DynamoDB made atomic by tests/moto/moto_shim.py.
//! Each test starts its own moto and talks to it through the SDK.

mod support;

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ReturnValue,
    ScalarAttributeType,
};
use support::fault_proxy::{Fault, FaultProxy, Rule};
use support::{Moto, sdk_config};

const TABLE: &str = "emulator";

/// A moto with an empty table `emulator` (key `pk`, a string) in us-west-2.
async fn moto_with_table() -> Moto {
    let moto = Moto::start(&[]);
    let created = dynamodb(&moto.endpoint, 3, None)
        .await
        .create_table()
        .table_name(TABLE)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await;
    match created {
        Ok(_) => {}
        // The SDK's retry of a CreateTable whose first attempt moto applied
        // but whose answer was lost (a new server's first connection):
        // the table is there.
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) => {}
        Err(e) => panic!("create the table: {e:?}"),
    }
    moto
}

/// A DynamoDB client to `endpoint` making at most `attempts` attempts
/// (10 ms apart at first), each given `attempt_timeout` if any.
async fn dynamodb(endpoint: &str, attempts: u32, attempt_timeout: Option<Duration>) -> Client {
    let sdk = sdk_config(endpoint).await;
    let mut conf =
        aws_sdk_dynamodb::config::Builder::from(&sdk).retry_config(quick_retries(attempts));
    if let Some(t) = attempt_timeout {
        conf = conf.timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(t)
                .build(),
        );
    }
    Client::from_conf(conf.build())
}

/// The SDK's standard retries, `attempts` at most, backing off from 10 ms.
fn quick_retries(attempts: u32) -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(attempts)
        .with_initial_backoff(Duration::from_millis(10))
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

async fn put(c: &Client, pk: &str) -> Result<(), String> {
    c.put_item()
        .table_name(TABLE)
        .item("pk", s(pk))
        .item("v", s("written"))
        .send()
        .await
        .map(drop)
        .map_err(|e| describe(&e))
}

/// What an SDK error was: the service's code, or the kind of failure.
fn describe<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    e: &SdkError<E, R>,
) -> String {
    match e {
        SdkError::ServiceError(_) => e.code().unwrap_or("no code").to_string(),
        SdkError::TimeoutError(_) => "timeout".to_string(),
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => "no answer".to_string(),
        other => format!("{other:?}"),
    }
}

/// Whether the item is at moto (read there directly, not through a proxy).
async fn at_moto(moto: &Moto, pk: &str) -> bool {
    dynamodb(&moto.endpoint, 3, None)
        .await
        .get_item()
        .table_name(TABLE)
        .key("pk", s(pk))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem at moto")
        .item()
        .is_some()
}

const SETTLE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_then_500_applies_the_write_and_its_retry_meets_it() {
    let moto = moto_with_table().await;
    let once = || {
        vec![
            Rule::new(Some("dynamodb"), None, Fault::AppliedThen500)
                .action("PutItem")
                .times(1),
        ]
    };
    let proxy = FaultProxy::start(&moto.endpoint, once()).await;
    let c = dynamodb(&proxy.endpoint, 1, None).await;
    assert_eq!(put(&c, "a").await, Err("InternalServerError".to_string()));
    assert!(
        at_moto(&moto, "a").await,
        "applied although the answer was a 500"
    );
    let calls = proxy.requests("dynamodb", "PutItem");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].fault, Some(Fault::AppliedThen500));
    assert_eq!(calls[0].moto_status, Some(200));
    assert!(calls[0].applied());

    // Issue 28's path: the SDK retries the 500 by itself, and a conditional
    // write's retry is refused by its own first attempt.
    proxy.set_rules(once());
    let retrying = dynamodb(&proxy.endpoint, 3, None).await;
    let err = retrying
        .put_item()
        .table_name(TABLE)
        .item("pk", s("b"))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await
        .expect_err("the retry meets the write its first attempt made");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_conditional_check_failed_exception()),
        "{err:?}"
    );
    assert!(at_moto(&moto, "b").await);
    let b: Vec<_> = proxy.requests("dynamodb", "PutItem")[1..].to_vec();
    assert_eq!(
        b.iter().map(|c| c.moto_status).collect::<Vec<_>>(),
        [Some(200), Some(400)],
        "applied, then refused by its condition"
    );
    assert_eq!(proxy.applied("dynamodb", "PutItem"), 2, "a, and b once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_then_drop_applies_the_write_and_answers_nothing() {
    let moto = moto_with_table().await;
    let proxy = FaultProxy::start(
        &moto.endpoint,
        vec![Rule::new(Some("dynamodb"), None, Fault::AppliedThenDrop).action("PutItem")],
    )
    .await;
    let c = dynamodb(&proxy.endpoint, 1, None).await;
    assert_eq!(put(&c, "a").await, Err("no answer".to_string()));
    assert!(at_moto(&moto, "a").await);
    let calls = proxy.requests("dynamodb", "PutItem");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].fault, Some(Fault::AppliedThenDrop));
    assert!(calls[0].applied());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_then_apply_lands_after_the_client_gave_up() {
    let moto = moto_with_table().await;
    let hold = Fault::HoldThenApply(Duration::from_millis(1500));
    let proxy = FaultProxy::start(
        &moto.endpoint,
        vec![Rule::new(Some("dynamodb"), None, hold).action("PutItem")],
    )
    .await;
    let c = dynamodb(&proxy.endpoint, 1, Some(Duration::from_millis(300))).await;
    assert_eq!(put(&c, "a").await, Err("timeout".to_string()));
    assert!(!at_moto(&moto, "a").await, "still held");
    assert_eq!(proxy.requests("dynamodb", "PutItem")[0].moto_status, None);
    proxy.settle(SETTLE).await;
    assert!(at_moto(&moto, "a").await, "applied late, the client gone");
    let calls = proxy.requests("dynamodb", "PutItem");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].fault, Some(hold));
    assert!(calls[0].applied());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_then_drop_never_applies() {
    let moto = moto_with_table().await;
    let hold = Fault::HoldThenDrop(Duration::from_millis(800));
    let proxy = FaultProxy::start(
        &moto.endpoint,
        vec![Rule::new(Some("dynamodb"), None, hold).action("PutItem")],
    )
    .await;
    let c = dynamodb(&proxy.endpoint, 1, Some(Duration::from_millis(300))).await;
    assert_eq!(put(&c, "a").await, Err("timeout".to_string()));
    proxy.settle(SETTLE).await;
    assert!(!at_moto(&moto, "a").await, "dropped, never applied");
    let calls = proxy.requests("dynamodb", "PutItem");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].fault, Some(hold));
    assert!(!calls[0].reached_moto());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_throttles_are_modelled_errors_the_sdk_retries() {
    let moto = moto_with_table().await;
    let rule = |fault| Rule::new(Some("dynamodb"), None, fault).action("PutItem");
    let proxy = FaultProxy::start(
        &moto.endpoint,
        vec![rule(Fault::ProvisionedThroughputExceeded)],
    )
    .await;
    let once = dynamodb(&proxy.endpoint, 1, None).await;
    let err = once
        .put_item()
        .table_name(TABLE)
        .item("pk", s("a"))
        .send()
        .await
        .expect_err("throttled");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_provisioned_throughput_exceeded_exception()),
        "{err:?}"
    );
    // What Fault::Throttle gives DynamoDB: its ThrottlingException.
    proxy.set_rules(vec![rule(Fault::Throttle)]);
    let err = once
        .put_item()
        .table_name(TABLE)
        .item("pk", s("a"))
        .send()
        .await
        .expect_err("throttled");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_throttling_exception()),
        "{err:?}"
    );
    assert!(!at_moto(&moto, "a").await);
    // Both are retried by the SDK as throttling.
    for fault in [Fault::ProvisionedThroughputExceeded, Fault::Throttle] {
        proxy.set_rules(vec![rule(fault).times(2)]);
        let before = proxy.requests("dynamodb", "PutItem").len();
        let retrying = dynamodb(&proxy.endpoint, 3, None).await;
        assert_eq!(put(&retrying, "a").await, Ok(()), "{fault:?}");
        assert_eq!(proxy.requests("dynamodb", "PutItem").len() - before, 3);
    }
}

/// Which of 60 PutItems (one attempt each) a 30% AppliedThen500 rule
/// seeded `seed` hit; asserts every one was applied all the same.
async fn hits(moto: &Moto, seed: u64, run: &str) -> Vec<bool> {
    let proxy = FaultProxy::start(
        &moto.endpoint,
        vec![
            Rule::new(Some("dynamodb"), None, Fault::AppliedThen500)
                .action("PutItem")
                .rate(0.3, seed),
        ],
    )
    .await;
    let c = dynamodb(&proxy.endpoint, 1, None).await;
    let mut hit = Vec::new();
    for i in 0..60 {
        let r = put(&c, &format!("{run}-{i}")).await;
        assert!(
            r.as_ref().err().is_none_or(|e| e == "InternalServerError"),
            "{r:?}"
        );
        hit.push(r.is_err());
    }
    let calls = proxy.requests("dynamodb", "PutItem");
    assert_eq!(
        calls.iter().map(|c| c.fault.is_some()).collect::<Vec<_>>(),
        hit,
        "the record says which were hit"
    );
    assert_eq!(proxy.applied("dynamodb", "PutItem"), 60);
    hit
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_rate_hits_the_same_requests_for_the_same_seed() {
    let moto = moto_with_table().await;
    let first = hits(&moto, 7, "first").await;
    let again = hits(&moto, 7, "again").await;
    let other = hits(&moto, 8, "other").await;
    assert_eq!(first, again, "seed 7 twice");
    assert_ne!(first, other, "seeds 7 and 8");
    for h in [&first, &other] {
        let n = h.iter().filter(|&&x| x).count();
        assert!((9..=27).contains(&n), "about 30% of 60: {n}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_record_says_which_roles_were_assumed_and_what_reached_moto() {
    const B: &str = "111111111111";
    const C: &str = "222222222222";
    let moto = Moto::start(&[]);
    let direct = sdk_config(&moto.endpoint).await;
    let topic = aws_sdk_sns::Client::new(&direct)
        .create_topic()
        .name("record")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let proxy = FaultProxy::start(
        &moto.endpoint,
        vec![
            Rule::new(Some("sts"), None, Fault::AccessDenied).account(C),
            Rule::new(Some("sns"), None, Fault::Throttle)
                .action("Publish")
                .times(1),
            Rule::new(Some("sns"), None, Fault::AppliedThen500)
                .action("Publish")
                .times(1),
        ],
    )
    .await;
    let sdk = sdk_config(&proxy.endpoint).await;
    let sts = aws_sdk_sts::Client::new(&sdk);
    let assume = |account: &str| {
        sts.assume_role()
            .role_arn(format!("arn:aws:iam::{account}:role/auditor"))
            .role_session_name("record")
            .send()
    };
    let creds = assume(B).await.expect("assumed in B").credentials.unwrap();
    assert!(assume(C).await.is_err(), "denied in C");
    // A call made with the role's credentials acts in its account.
    let in_b = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(replica_auditor::aws::http_client())
        .region(aws_config::Region::new("us-west-2"))
        .endpoint_url(&proxy.endpoint)
        .credentials_provider(aws_sdk_sts::config::Credentials::new(
            creds.access_key_id(),
            creds.secret_access_key(),
            Some(creds.session_token().to_string()),
            None,
            "assumed",
        ))
        .load()
        .await;
    aws_sdk_sts::Client::new(&in_b)
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    // Three Publishes. The first is throttled, then applied and answered
    // 500, then applied again (the SDK's third attempt); two go through.
    let sns = aws_sdk_sns::Client::from_conf(
        aws_sdk_sns::config::Builder::from(&sdk)
            .retry_config(quick_retries(3))
            .build(),
    );
    for i in 0..3 {
        sns.publish()
            .topic_arn(&topic)
            .message(format!("m{i}"))
            .send()
            .await
            .expect("published after the SDK's retries");
    }

    assert_eq!(proxy.assume_role_calls(B).len(), 1);
    assert!(proxy.assume_role_calls(B)[0].applied());
    let denied = proxy.assume_role_calls(C);
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0].fault, Some(Fault::AccessDenied));
    assert!(!denied[0].reached_moto());
    assert!(proxy.assume_role_calls("333333333333").is_empty());
    let who = proxy.requests("sts", "GetCallerIdentity");
    assert_eq!(who.len(), 1);
    assert_eq!(who[0].account.as_deref(), Some(B));
    assert_eq!(
        (who[0].service.as_str(), who[0].region.as_str()),
        ("sts", "us-west-2")
    );
    assert_eq!(proxy.requests("sns", "Publish").len(), 5);
    assert_eq!(proxy.applied("sns", "Publish"), 4, "one published twice");
    assert_eq!(proxy.requests("sns", "Publish")[0].account, None, "own");
}

/// Issue 27: moto's DynamoDB applies concurrent UpdateItems on one item one
/// at a time, as DynamoDB does (moto_shim.py's lock). 6 tasks count 150
/// cells each into one item; every count lands, and each sees its own
/// total in ALL_NEW (so exactly one sees the last).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_counts_on_one_item_are_all_applied() {
    const TASKS: usize = 6;
    const EACH: usize = 150;
    let moto = moto_with_table().await;
    let c = dynamodb(&moto.endpoint, 1, None).await;
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let c = c.clone();
            tokio::spawn(async move {
                let mut totals = Vec::new();
                for i in 0..EACH {
                    let cell = (t * EACH + i).to_string();
                    let out = c
                        .update_item()
                        .table_name(TABLE)
                        .key("pk", s("count"))
                        .update_expression("ADD done :one, cells :c")
                        .condition_expression("NOT contains(cells, :cell)")
                        .expression_attribute_values(":one", AttributeValue::N("1".into()))
                        .expression_attribute_values(":c", AttributeValue::Ns(vec![cell.clone()]))
                        .expression_attribute_values(":cell", AttributeValue::N(cell))
                        .return_values(ReturnValue::AllNew)
                        .send()
                        .await
                        .unwrap_or_else(|e| panic!("count {t}/{i}: {}", describe(&e)));
                    let done = out.attributes().unwrap()["done"].as_n().unwrap();
                    totals.push(done.parse::<usize>().unwrap());
                }
                totals
            })
        })
        .collect();
    let mut totals = Vec::new();
    for t in tasks {
        totals.extend(t.await.unwrap());
    }
    let item = c
        .get_item()
        .table_name(TABLE)
        .key("pk", s("count"))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let done: usize = item["done"].as_n().unwrap().parse().unwrap();
    let cells = item["cells"].as_ns().unwrap().len();
    totals.sort();
    let distinct = {
        let mut d = totals.clone();
        d.dedup();
        d.len()
    };
    assert_eq!(
        (done, cells, distinct),
        (TASKS * EACH, TASKS * EACH, TASKS * EACH),
        "(done, cells in the set, distinct ALL_NEW totals)"
    );
    assert_eq!(totals, (1..=TASKS * EACH).collect::<Vec<_>>());
}
