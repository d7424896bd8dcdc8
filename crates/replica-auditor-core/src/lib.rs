//! Replica Auditor's pure core: everything that decides, and nothing that
//! calls AWS. No AWS SDK and no Lambda runtime (tests/layout.rs checks).
//!
//! - [`event`]: parsing EventBridge CloudTrail events, within size and depth bounds
//! - [`arn`]: the one place ARNs are read and written
//! - [`model`]: severities, codes, findings, the snapshot, actions, settings
//! - [`audit`]: the audit, snapshot in, findings out; [`policy`] judges
//!   key and secret resource policies for it
//! - [`report`]: the report document; [`notify`]: its email text and chat notification
//! - [`asff`]: the findings as Security Hub takes them (and resolves them);
//!   [`ocsf`]: as OCSF Detection Findings
//! - [`metrics`]: CloudWatch Embedded Metric Format lines of an audit or a sweep
//! - [`plan`]: the remediation decisions, the lease length, the loop guard
//! - [`org`]: the org sweep's cell message, its bookkeeping counters and summary;
//!   [`book`]: the items that bookkeeping is kept in, and every write to them
//! - [`ledger`]: which resource policies a sweep reads (the policy ledger)
//! - [`pace`]: a token bucket's arithmetic, per instance or shared through the state table
//! - [`roster`]: the organisation's accounts as last listed, shared through the state table
//! - [`cross_account`]: cross-account replication, its links and findings
//! - [`freshness`]: do replicas hold the primary's current version; [`followup`]:
//!   the chain of later looks after a new version; [`rotation`]: a failed or
//!   abandoned rotation of a primary with replicas

pub mod arn;
pub mod asff;
pub mod audit;
pub mod book;
pub mod cross_account;
pub mod event;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod followup;
pub mod freshness;
pub mod ledger;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod ocsf;
pub mod org;
pub mod pace;
pub mod plan;
pub mod policy;
pub mod report;
pub mod roster;
pub mod rotation;
