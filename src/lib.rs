//! Replica Auditor: audits AWS Secrets Manager multi-Region replication
//! from CloudTrail events and publishes one finding report per event.
//!
//! - [`event`]: parsing EventBridge CloudTrail events (pure)
//! - [`audit`]: the audit, snapshot in, findings out (pure); [`policy`]
//!   analyses KMS key policies for it (pure)
//! - [`aws`]: the AWS adapters behind small traits
//! - [`inspect`]: builds the snapshot through the adapters, within a time budget
//! - [`rate`]: token buckets that pace quota-shared AWS calls
//! - [`report`], [`publish`]: the report document and its SNS message;
//!   [`notify`]: its email text and chat notification
//! - [`handler`]: one invocation end to end; [`runtime`] and `main.rs` run it on lambda_runtime

pub mod arn;
pub mod audit;
pub mod aws;
pub mod config;
pub mod engine;
pub mod event;
pub mod logging;
pub mod model;
pub mod notify;
pub mod policy;
pub mod rate;
pub mod report;
pub mod runtime;
pub mod sinks;
