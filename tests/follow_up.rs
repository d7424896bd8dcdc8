//! The follow-up chain after a new version (issue 25,
//! docs/freshness.md#the-follow-up-chain), through the real Lambda binary
//! against moto. moto's replicas share the primary's versions, so the test
//! proxy rewrites DescribeSecret's answers to make a replica lag. No real
//! clock is waited on: each step's message is taken from the SendMessage
//! the function made (through the proxy) and delivered to the function as
//! the event source mapping would; where the scenario lets a step's delay
//! pass, the version's LastChangedDate moves back by that delay instead.

mod support;

use serde_json::{Value, json};
use support::emf::{emf_lines, validate};
use support::fault_proxy::FaultProxy;
use support::freshness::{V_NEW, V_OLD, V_OLDER, seconds_ago};
use support::{World, event, lambda};

const QUEUE: &str = "replica-auditor-follow-up";

/// The world, a proxy in front of its moto, the follow-up queue (URL, ARN).
struct Scene {
    w: World,
    proxy: FaultProxy,
    env: Vec<(String, String)>,
    queue_arn: String,
    primary: String,
    invocations: usize,
}

impl Scene {
    async fn start() -> Scene {
        let w = World::start();
        let proxy = FaultProxy::start(&w.moto.endpoint, vec![]).await;
        let sqs = aws_sdk_sqs::Client::new(&w.sdk().await);
        let url = sqs
            .create_queue()
            .queue_name(QUEUE)
            .send()
            .await
            .unwrap()
            .queue_url()
            .unwrap()
            .to_string();
        let queue_arn = support::esm::EventSourceMapping::new(sqs, &url)
            .await
            .queue_arn;
        let env = w.function_env(
            &proxy.endpoint,
            &[
                ("FOLLOW_UP_QUEUE_URL", &url),
                ("REPLICA_LAG_SECONDS", "900"),
                ("METRICS", "on"),
                ("REMEDIATION", "off"),
                ("RUST_LOG", "info"),
            ],
        );
        let primary = w.secrets["production/DBWest"].clone();
        Scene {
            w,
            proxy,
            env,
            queue_arn,
            primary,
            invocations: 0,
        }
    }

    /// The primary holds V_NEW as AWSCURRENT since `changed` (epoch s), its
    /// us-east-1 replica `replica_current` in `status`.
    fn versions(&self, changed: u64, replica_current: &str, status: &str) {
        let stages = |current: &str, previous: &str| json!({ current: ["AWSCURRENT"], previous: ["AWSPREVIOUS"] });
        self.proxy.add_describe_members(
            &self.primary,
            json!({
                "VersionIdsToStages": stages(V_NEW, V_OLD),
                "LastChangedDate": changed,
                "ReplicationStatus": [{"Region": "us-east-1", "Status": status,
                                       "StatusMessage": format!("Replication {status}")}],
            }),
        );
        let previous = if replica_current == V_OLD {
            V_OLDER
        } else {
            V_OLD
        };
        self.proxy.add_describe_members(
            &self.primary.replace("us-west-2", "us-east-1"),
            json!({ "VersionIdsToStages": stages(replica_current, previous) }),
        );
    }

    /// One invocation of the Lambda binary: its answer and its EMF lines.
    async fn invoke(&mut self, event: &Value) -> (Value, Vec<Value>) {
        self.invocations += 1;
        let id = format!("follow-up-{}", self.invocations);
        let mut function = lambda::Environment::start(&self.env, event, &id).await;
        let (outcome, body) = function.result().await;
        assert_eq!(outcome, "response", "{body}");
        let lines = emf_lines(&function.stdout().await);
        for line in &lines {
            validate(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        }
        (body, lines)
    }

    /// Every follow-up step the function sent so far: (message, delay).
    fn sent(&self) -> Vec<(Value, u64)> {
        self.proxy
            .calls("SendMessage")
            .iter()
            .map(|c| {
                let req: Value = serde_json::from_str(&c.body).expect("SQS JSON request");
                let body = req["MessageBody"].as_str().expect("a message body");
                (
                    serde_json::from_str(body).expect("a JSON message"),
                    req["DelaySeconds"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    }

    /// `message` as the event source mapping delivers it from `queue_arn`.
    fn record(&self, message: &Value, id: &str, queue_arn: &str) -> Value {
        json!({"Records": [{
            "messageId": id,
            "receiptHandle": "handle",
            "body": message.to_string(),
            "attributes": {"ApproximateReceiveCount": "1"},
            "messageAttributes": {},
            "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn,
            "awsRegion": "us-west-2",
        }]})
    }

    /// Deliver one step from the follow-up queue: its batch response.
    async fn deliver(&mut self, message: &Value, id: &str) -> (Value, Vec<Value>) {
        let record = self.record(message, id, &self.queue_arn.clone());
        self.invoke(&record).await
    }
}

fn convergence(lines: &[Value]) -> Vec<(String, u64)> {
    lines
        .iter()
        .filter_map(|l| {
            let s = l.get("ReplicaConvergenceSeconds")?.as_u64()?;
            Some((l["Region"].as_str()?.to_string(), s))
        })
        .collect()
}

fn no_failures(response: &Value) {
    assert_eq!(response, &json!({"batchItemFailures": []}));
}

fn stale(report: &Value) -> bool {
    report["findings"]
        .as_array()
        .is_some_and(|f| f.iter().any(|f| f["code"] == "REPLICA_STALE"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_converging_within_the_limit_is_measured_once() {
    let mut s = Scene::start().await;
    let t0 = seconds_ago(5);
    s.versions(t0, V_OLD, "InProgress");
    let (report, lines) = s.invoke(&event("put-secret-value.json")).await;
    assert!(!stale(&report), "within the limit: {report:#}");
    assert_eq!(convergence(&lines), vec![], "the replica is behind");
    let sent = s.sent();
    assert_eq!(sent.len(), 1, "one chain, its first step");
    let step1 = json!({"schema": "replica-auditor.followup/v1", "secret": s.primary,
                       "version": V_NEW, "step": 1});
    assert_eq!(sent[0], (step1.clone(), 30));

    // 30 s on, still behind: the next look 2 min on.
    let (response, lines) = s.deliver(&step1, "m-1").await;
    no_failures(&response);
    assert_eq!(convergence(&lines), vec![]);
    let step2 = json!({"schema": "replica-auditor.followup/v1", "secret": s.primary,
                       "version": V_NEW, "step": 2});
    assert_eq!(s.sent()[1..], [(step2.clone(), 120)]);

    // The replica holds the version: measured once, and the chain ends.
    s.versions(t0, V_NEW, "InSync");
    let (response, lines) = s.deliver(&step2, "m-2").await;
    no_failures(&response);
    let measured = convergence(&lines);
    assert_eq!(measured.len(), 1, "{lines:#?}");
    // docs/observability.md's sample (`-- --nocapture`).
    for l in lines
        .iter()
        .filter(|l| l.get("ReplicaConvergenceSeconds").is_some())
    {
        println!("{l}");
    }
    assert_eq!(measured[0].0, "us-east-1");
    assert!(
        (5..120).contains(&measured[0].1),
        "from the version's time (5 s before the event) to this look: {measured:?}"
    );
    assert_eq!(s.sent().len(), 2, "converged: no further step");
    // A redelivered step finds the chain ended: nothing measured, nothing sent.
    let (response, lines) = s.deliver(&step2, "m-2").await;
    no_failures(&response);
    assert_eq!(convergence(&lines), vec![]);
    assert_eq!(s.sent().len(), 2);
    assert!(
        !s.w.published().await.iter().any(|p| stale(&p.report)),
        "no REPLICA_STALE"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_never_converges_is_stale_at_the_limit_once() {
    let mut s = Scene::start().await;
    let mut changed = seconds_ago(5);
    s.versions(changed, V_OLD, "InProgress");
    // The event twice (EventBridge delivers at least once): one chain.
    let event = event("put-secret-value.json");
    s.invoke(&event).await;
    s.invoke(&event).await;
    let sent = s.sent();
    assert_eq!(sent.len(), 2, "each delivery sends step 1: {sent:?}");
    assert_eq!(sent[0], sent[1]);
    let mut delivered = 0;
    let mut stale_lines = 0;
    // Each step once, as if its delay had passed; step 1's duplicate and
    // step 2 redelivered besides. Bounded: the chain must end.
    let (mut next, mut last_step) = (0, 0);
    while next < s.sent().len() {
        let (message, delay) = s.sent()[next].clone();
        next += 1;
        // A step's delay passes once; its duplicate arrives with it.
        let step = message["step"].as_u64().unwrap();
        if step > last_step {
            changed -= delay;
            last_step = step;
        }
        s.versions(changed, V_OLD, "InProgress");
        let (response, lines) = s.deliver(&message, &format!("m-{next}")).await;
        no_failures(&response);
        delivered += 1;
        stale_lines += lines
            .iter()
            .filter_map(|l| l["ReplicaStale"].as_u64())
            .sum::<u64>();
        assert_eq!(convergence(&lines), vec![], "never converges");
        if message["step"] == 2 {
            let (again, _) = s.deliver(&message, "m-2-again").await;
            no_failures(&again);
        }
        assert!(delivered <= 10, "the chain did not end: {:?}", s.sent());
    }
    let steps: Vec<(u64, u64)> = s
        .sent()
        .iter()
        .map(|(m, d)| (m["step"].as_u64().unwrap(), *d))
        .collect();
    // 30 s, 2 min, then 5 min until the limit; the last look lands just past it.
    assert_eq!(steps[..5], [(1, 30), (1, 30), (2, 120), (3, 300), (4, 300)]);
    assert_eq!(steps.len(), 6, "{steps:?}");
    assert_eq!(steps[5].0, 5);
    assert!(
        (100..=146).contains(&steps[5].1),
        "30 + 120 + 300 + 300 = 750 s after step 0 (5 s after the version): due at 901 s: {steps:?}"
    );
    assert_eq!(stale_lines, 1, "one REPLICA_STALE, at the limit");
    let published: Vec<Value> =
        s.w.published()
            .await
            .into_iter()
            .map(|p| p.report)
            .filter(stale)
            .collect();
    assert_eq!(published.len(), 1, "published once: {published:#?}");
    let f = &published[0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "REPLICA_STALE")
        .unwrap()
        .clone();
    assert_eq!(f["region"], "us-east-1");
    let message = f["message"].as_str().unwrap();
    for part in [V_NEW, V_OLD, "InProgress"] {
        assert!(message.contains(part), "{part}: {message}");
    }
    assert_eq!(published[0]["trigger"]["source"], "followup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_record_from_another_queue_is_refused() {
    let mut s = Scene::start().await;
    s.versions(seconds_ago(5), V_OLD, "InProgress");
    let step1 = json!({"schema": "replica-auditor.followup/v1", "secret": s.primary,
                       "version": V_NEW, "step": 1});
    let other = s.queue_arn.replace(QUEUE, "someone-elses");
    let record = s.record(&step1, "m-other", &other);
    let (response, lines) = s.invoke(&record).await;
    assert_eq!(
        response,
        json!({"batchItemFailures": [{"itemIdentifier": "m-other"}]})
    );
    assert_eq!(lines, Vec::<Value>::new(), "nothing audited");
    assert_eq!(s.proxy.calls("DescribeSecret").len(), 0, "nothing called");
    assert_eq!(s.sent().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_without_its_chain_acts_on_nothing() {
    // A message on the right queue that no trusted event started (no chain
    // item for it): the table is its anchor, so nothing is audited or sent.
    let mut s = Scene::start().await;
    s.versions(seconds_ago(5), V_OLD, "InProgress");
    let forged = json!({"schema": "replica-auditor.followup/v1", "secret": s.primary,
                        "version": V_NEW, "step": 1});
    let (response, lines) = s.deliver(&forged, "m-forged").await;
    no_failures(&response);
    assert_eq!(lines, Vec::<Value>::new(), "nothing audited");
    assert_eq!(s.proxy.calls("DescribeSecret").len(), 0, "nothing called");
    assert_eq!(s.sent().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_that_succeeded_starts_a_chain() {
    // RotationSucceeded (a service event, no API call) made the new
    // current version: it is followed like a PutSecretValue.
    let mut s = Scene::start().await;
    s.versions(seconds_ago(5), V_OLD, "InProgress");
    let (report, _) = s.invoke(&event("rotation-succeeded.json")).await;
    assert_eq!(report["trigger"]["event_name"], "RotationSucceeded");
    assert!(!stale(&report), "within the limit: {report:#}");
    let step1 = json!({"schema": "replica-auditor.followup/v1", "secret": s.primary,
                       "version": V_NEW, "step": 1});
    assert_eq!(s.sent(), vec![(step1, 30)]);
}
