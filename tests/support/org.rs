//! An AWS Organization in moto for the org sweep's tests
//! (tests/org_sweep.rs, tests/schemas.rs): the management account and its
//! members seeded by tests/moto/org_world.py, the sweep queue and its
//! dead-letter queue; and invocations with a deadline, as the event source
//! mapping makes them.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use replica_auditor::aws::AwsClients;
use replica_auditor::engine::{App, Budget};
use serde_json::Value;

use super::{Moto, World, python, root, sdk_config};

/// A seeded organisation: the management account (where the auditor runs)
/// and its members.
pub struct OrgWorld {
    pub world: World,
    pub accounts: Vec<String>,
    /// Per account: the primaries seeded, those with replicas, the weak ones.
    pub held: BTreeMap<String, Value>,
    pub sweep_queue: String,
    pub dlq: String,
}

impl OrgWorld {
    /// `members` accounts besides the management one; `healthy` (+ i for
    /// the i-th account) healthy replicated secrets each, or with
    /// `bulk_regions`, `healthy` primaries in each of those Regions only.
    pub fn start(members: usize, healthy: usize, bulk_regions: Option<&str>) -> OrgWorld {
        let moto = Moto::start(&[]);
        let mut cmd = Command::new(python());
        cmd.arg(root().join("tests/moto/org_world.py"))
            .arg(&moto.endpoint)
            .arg(members.to_string())
            .arg(healthy.to_string());
        if let Some(r) = bulk_regions {
            cmd.arg(r);
        }
        let out = cmd.output().expect("run org_world.py");
        assert!(
            out.status.success(),
            "org_world.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let w: Value = serde_json::from_slice(&out.stdout).expect("world JSON");
        let s = |k: &str| w[k].as_str().unwrap().to_string();
        OrgWorld {
            accounts: w["accounts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect(),
            held: w["held"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            sweep_queue: s("sweep_queue_url"),
            dlq: s("sweep_dlq_url"),
            world: World {
                topic_arn: s("topic_arn"),
                queue_url: s("queue_url"),
                secrets: Default::default(),
                keys: Default::default(),
                state_table: s("state_table"),
                moto,
            },
        }
    }

    /// The auditor, talking to `endpoint` (moto, or a proxy in front of
    /// it), with the org sweep's queue and `vars`.
    pub async fn app(&self, endpoint: &str, vars: &[(&str, &str)]) -> App<AwsClients> {
        let mut all = vec![
            ("SWEEP_QUEUE_URL", self.sweep_queue.as_str()),
            ("SWEEP_MAX_RECEIVE_COUNT", "2"),
            ("REMEDIATION", "off"),
            ("METRICS", "off"),
        ];
        all.extend_from_slice(vars);
        self.world.app_with_sdk(&all, sdk_config(endpoint).await)
    }

    pub async fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.world.sdk().await)
    }

    /// The sweep queue's ARN, as SQS says it.
    pub async fn sweep_queue_arn(&self) -> String {
        self.sqs()
            .await
            .get_queue_attributes()
            .queue_url(&self.sweep_queue)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("GetQueueAttributes")
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
            .expect("QueueArn")
            .clone()
    }

    pub fn count(&self, account: &str, what: &str) -> usize {
        self.held[account][what].as_array().unwrap().len()
    }
}

/// A budget as Lambda gives an invocation `seconds` long.
pub fn budget(seconds: f64) -> Budget {
    let total = Duration::from_secs_f64(seconds);
    Budget::until(Instant::now() + total, Budget::reserve_for(total))
}

/// Invoke `app` with one SQS event, as the event source mapping does.
pub async fn invoke(app: &App<AwsClients>, event: Vec<u8>, seconds: f64) -> Result<Value, String> {
    let request_id = uuid::Uuid::new_v4().to_string();
    app.handle_invocation(&event, budget(seconds), &request_id)
        .await
        .map_err(|e| e.to_string())
}
