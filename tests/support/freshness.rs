//! Freshness scenes (issue 25, docs/freshness.md). moto's replicas share
//! the primary's versions live, so the fault proxy rewrites DescribeSecret's
//! (and ListSecrets') VersionIdsToStages, and the primary's LastChangedDate
//! and ReplicationStatus, as Secrets Manager's model shapes them.
#![allow(dead_code)]

use serde_json::json;

use super::fault_proxy::FaultProxy;

pub const V_NEW: &str = "a1b2c3d4-0000-4000-8000-00000000000a";
pub const V_OLD: &str = "a1b2c3d4-0000-4000-8000-00000000000b";
pub const V_OLDER: &str = "a1b2c3d4-0000-4000-8000-00000000000c";

/// Epoch seconds `n` seconds ago.
pub fn seconds_ago(n: u64) -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - n
}

/// The primary (`primary`, in us-west-2) holding `V_NEW` as AWSCURRENT
/// since two hours ago, its us-east-1 replica in `status` (`message`)
/// holding `replica_current`.
pub fn versions(
    proxy: &FaultProxy,
    primary: &str,
    replica_current: &str,
    status: &str,
    message: &str,
) {
    let stages = |current: &str, previous: &str| json!({ current: ["AWSCURRENT"], previous: ["AWSPREVIOUS"] });
    proxy.add_describe_members(
        primary,
        json!({
            "VersionIdsToStages": stages(V_NEW, V_OLD),
            "LastChangedDate": seconds_ago(7200),
            "ReplicationStatus": [{"Region": "us-east-1", "Status": status, "StatusMessage": message}],
        }),
    );
    let previous = if replica_current == V_OLD {
        V_OLDER
    } else {
        V_OLD
    };
    proxy.add_describe_members(
        &primary.replace("us-west-2", "us-east-1"),
        json!({ "VersionIdsToStages": stages(replica_current, previous) }),
    );
}
