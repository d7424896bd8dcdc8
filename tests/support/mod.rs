//! Test support: a moto server (through tests/moto/moto_shim.py) started
//! on a free 127.0.0.1 port and stopped when dropped, seeded with the
//! world from tests/moto/world.py, and an SQS reader for what the auditor
//! published to SNS.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use replica_auditor::aws::AwsClients;
use replica_auditor::config::Config;
use replica_auditor::engine::App;
use serde_json::Value;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python that has moto (the project venv, made by `make test`).
pub fn python() -> PathBuf {
    let p = std::env::var_os("REPLICA_AUDITOR_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv/bin/python"));
    assert!(
        p.exists(),
        "{} not found: run `make test`, which installs moto into .venv",
        p.display()
    );
    p
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A moto server process; killed on drop.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    pub fn start(env: &[(&str, &str)]) -> Moto {
        let port = free_port();
        let mut cmd = Command::new(python());
        cmd.arg(root().join("tests/moto/moto_shim.py"))
            .args(["-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start moto_shim.py");
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "moto did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A seeded moto account.
pub struct World {
    pub moto: Moto,
    pub topic_arn: String,
    pub queue_url: String,
    pub secrets: HashMap<String, String>,
    pub keys: HashMap<String, String>,
    /// The auditor's state table (remediation leases), in us-west-2.
    pub state_table: String,
}

impl World {
    pub fn start() -> World {
        Self::start_with(&[])
    }

    pub fn start_with(shim_env: &[(&str, &str)]) -> World {
        Self::start_full(shim_env, 0)
    }

    /// A world with `bulk` extra healthy replicated secrets.
    pub fn start_bulk(bulk: usize) -> World {
        Self::start_full(&[], bulk)
    }

    fn start_full(shim_env: &[(&str, &str)], bulk: usize) -> World {
        let moto = Moto::start(shim_env);
        let out = Command::new(python())
            .arg(root().join("tests/moto/world.py"))
            .arg(&moto.endpoint)
            .arg(bulk.to_string())
            .output()
            .expect("run world.py");
        assert!(
            out.status.success(),
            "world.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let w: Value = serde_json::from_slice(&out.stdout).expect("world JSON");
        let map = |k: &str| -> HashMap<String, String> {
            w[k].as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect()
        };
        World {
            topic_arn: w["topic_arn"].as_str().unwrap().to_string(),
            queue_url: w["queue_url"].as_str().unwrap().to_string(),
            secrets: map("secrets"),
            keys: map("keys"),
            state_table: w["state_table"].as_str().unwrap().to_string(),
            moto,
        }
    }

    /// A proxy in front of this world's moto that holds every request for
    /// `ms` before passing it on, as an AWS round trip would.
    pub async fn latency_proxy(&self, ms: u64) -> fault_proxy::FaultProxy {
        let delay = fault_proxy::Fault::Delay(Duration::from_millis(ms));
        fault_proxy::FaultProxy::start(
            &self.moto.endpoint,
            vec![fault_proxy::Rule::new(None, None, delay)],
        )
        .await
    }

    /// The environment of a function process talking to `endpoint` (this
    /// world's moto or a proxy in front of it), on top of `vars`.
    pub fn function_env(&self, endpoint: &str, vars: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = [
            ("AWS_REGION", "us-west-2"),
            ("AWS_ENDPOINT_URL", endpoint),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("FINDINGS_TOPIC_ARN", &self.topic_arn),
            ("STATE_TABLE", &self.state_table),
            ("AUDITOR_ROLE_ARN", MOTO_CALLER_ARN),
            ("RUST_LOG", "warn"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        env.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env
    }

    pub async fn sdk(&self) -> SdkConfig {
        sdk_config(&self.moto.endpoint).await
    }

    /// The auditor with `vars` as its environment (FINDINGS_TOPIC_ARN is
    /// the world's topic and STATE_TABLE its state table unless given).
    pub async fn app(&self, vars: &[(&str, &str)]) -> App<AwsClients> {
        self.app_with_sdk(vars, self.sdk().await)
    }

    pub fn app_with_sdk(&self, vars: &[(&str, &str)], sdk: SdkConfig) -> App<AwsClients> {
        let (clients, config) = self.clients_and_config(vars, sdk);
        let sink = replica_auditor::sinks::configured(&clients, &config);
        App::with_sink(clients, sink, config.settings, "us-west-2".into())
            .with_identity(Some(MOTO_CALLER_ARN.into()))
    }

    /// The auditor as [`World::app`] makes it, its reports going to `sink`.
    pub async fn app_with_sink<S>(&self, vars: &[(&str, &str)], sink: S) -> App<AwsClients, S> {
        let (clients, config) = self.clients_and_config(vars, self.sdk().await);
        App::with_sink(clients, sink, config.settings, "us-west-2".into())
            .with_identity(Some(MOTO_CALLER_ARN.into()))
    }

    fn clients_and_config(&self, vars: &[(&str, &str)], sdk: SdkConfig) -> (AwsClients, Config) {
        let mut env: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.entry("FINDINGS_TOPIC_ARN".into())
            .or_insert_with(|| self.topic_arn.clone());
        env.entry("STATE_TABLE".into())
            .or_insert_with(|| self.state_table.clone());
        // An in-process app would write its EMF lines to the test's own
        // stdout, which the test harness does not capture; tests/metrics.rs
        // reads them from the real binary's stdout instead.
        env.entry("METRICS".into())
            .or_insert_with(|| "off".to_string());
        let config =
            Config::from_lookup(|k| env.get(k).cloned()).expect("valid test configuration");
        let topic_region =
            replica_auditor::config::topic_region(&config.findings_topic_arn).map(str::to_string);
        let clients = AwsClients::from_config(sdk, topic_region.as_deref())
            .with_state_table(config.settings.remediation.state_table.as_ref())
            .with_member_role(&config.settings.accounts.member_role_name)
            // As the Lambda binary does from its identity (MOTO_CALLER_ARN's).
            .with_own_account(Some(MOTO_ACCOUNT));
        (clients, config)
    }

    /// Time passes: the own account's policy ledger in us-west-2 (README
    /// "Resource policies between sweeps") says its last complete sweep
    /// started an hour later than it did, so the world's secrets (created
    /// seconds before) count as last changed long before it.
    pub async fn an_hour_after_the_last_sweep(&self) {
        aws_sdk_dynamodb::Client::new(&self.sdk().await)
            .update_item()
            .table_name(&self.state_table)
            .key(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S(format!(
                    "policy#{MOTO_ACCOUNT}#us-west-2"
                )),
            )
            .update_expression("SET read_as_of = read_as_of + :h")
            .condition_expression("attribute_exists(read_as_of)")
            .expression_attribute_values(
                ":h",
                aws_sdk_dynamodb::types::AttributeValue::N("3600".into()),
            )
            .send()
            .await
            .expect("a sweep recorded the ledger");
    }

    /// Every message published to the findings topic so far, drained
    /// from its SQS subscription.
    pub async fn published(&self) -> Vec<Published> {
        let sqs = aws_sdk_sqs::Client::new(&self.sdk().await);
        drain(&sqs, &self.queue_url)
            .await
            .into_iter()
            .map(|body| {
                let envelope: Value = serde_json::from_str(&body).expect("SNS envelope");
                Published {
                    subject: envelope["Subject"].as_str().unwrap_or_default().to_string(),
                    report: serde_json::from_str(envelope["Message"].as_str().unwrap())
                        .expect("report JSON"),
                    attributes: envelope["MessageAttributes"].clone(),
                }
            })
            .collect()
    }
}

/// Receive and delete every message waiting in an SQS queue; their bodies.
pub async fn drain(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let resp = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("receive from SQS");
        if resp.messages().is_empty() {
            return out;
        }
        for m in resp.messages() {
            out.push(m.body().unwrap_or_default().to_string());
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

/// Wait until `done()` holds, looking every 10 ms; fails the test naming
/// `what` (what was waited for) once `within` has passed without it.
pub async fn poll_until(within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < within,
            "waited {within:?} for this, in vain: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Run one event through the handler; what it returned.
pub async fn run(app: &App<AwsClients>, event: &Value) -> Value {
    app.handle(&bytes(event), replica_auditor::engine::Budget::unlimited())
        .await
        .expect("handler succeeds")
}

/// moto's default account: the auditor's own in the tests.
pub const MOTO_ACCOUNT: &str = "123456789012";

/// What moto's STS GetCallerIdentity answers: the tests' auditor identity.
pub const MOTO_CALLER_ARN: &str = "arn:aws:sts::123456789012:user/moto";

pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(replica_auditor::aws::http_client())
        .region(Region::new("us-west-2"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .load()
        .await
}

/// One message as an SQS subscriber of the topic received it.
#[derive(Debug)]
pub struct Published {
    pub subject: String,
    pub report: Value,
    pub attributes: Value,
}

impl Published {
    pub fn codes(&self) -> Vec<(String, Option<String>)> {
        codes(&self.report)
    }

    pub fn attribute(&self, name: &str) -> Option<String> {
        self.attributes[name]["Value"].as_str().map(str::to_string)
    }
}

/// A report's findings as sorted (code, Region) pairs.
pub fn codes(report: &Value) -> Vec<(String, Option<String>)> {
    let mut c: Vec<_> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_string(),
                f["region"].as_str().map(str::to_string),
            )
        })
        .collect();
    c.sort();
    c
}

/// Seed a member account of the organisation (tests/moto/member.py) in
/// `w`'s moto: its secrets' and keys' ARNs, as JSON.
pub fn seed_member(w: &World, account: &str) -> Value {
    let out = Command::new(python())
        .arg(root().join("tests/moto/member.py"))
        .args([&w.moto.endpoint, account])
        .output()
        .expect("run member.py");
    assert!(
        out.status.success(),
        "member.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("member JSON")
}

/// A sample event from events/.
pub fn event(name: &str) -> Value {
    let path = root().join("events").join(name);
    serde_json::from_slice(
        &std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

pub fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

pub fn finding<'a>(report: &'a Value, code: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == code)
        .unwrap_or_else(|| panic!("no {code} in {report:#}"))
}
pub mod emf;
pub mod esm;
pub mod fault_proxy;
pub mod freshness;
pub mod lambda;
pub mod org;
pub mod schema;
pub mod security_hub;
pub mod template;
