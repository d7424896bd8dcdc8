//! Replica Auditor: audits AWS Secrets Manager multi-Region replication
//! from CloudTrail events and publishes one finding report per event.
//!
//! The pure core (events, ARNs, policies, the audit, the report, the
//! remediation plan) is the `replica-auditor-core` crate, re-exported here
//! under its own module names. Around it:
//!
//! - [`aws`]: the AWS adapters behind small traits, clients pooled per Region
//! - [`engine`]: one audit end to end over the adapters: inspect, audit,
//!   remediate, report, send; the invocation ([`engine::handler`]) and the
//!   sweep ([`engine::sweep`])
//! - [`sinks`]: where reports go, behind one trait (SNS; Security Hub; in memory)
//! - [`rate`]: token buckets that pace quota-shared AWS calls
//! - [`config`]: the settings, from the environment
//! - [`runtime`], [`logging`]: what the Lambda binary (`src/bin/`) runs on

pub use replica_auditor_core::{
    arn, asff, audit, book, cross_account, event, followup, freshness, ledger, metrics, model,
    notify, ocsf, org, pace, plan, policy, report, roster, rotation,
};

pub mod aws;
pub mod config;
pub mod engine;
pub mod logging;
pub mod rate;
pub mod runtime;
pub mod sinks;
