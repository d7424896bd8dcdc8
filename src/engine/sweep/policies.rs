//! The sweep's policy ledgers for one invocation ([`crate::ledger`]): each
//! account and Region's ledger read once (GetItem) when its first secret
//! is audited, every audited secret's policy verdict counted, and what the
//! sweep learned recorded at its end.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;
use tracing::warn;

use crate::aws::PolicyLedgers;
use crate::engine::inspect::PolicyCheck;
use crate::ledger::{PolicyLedger, PolicyPass};

/// (account, Region).
type Key = (String, String);
/// A ledger read once; `None` when there is none.
type LedgerCell = Arc<OnceCell<Option<Arc<PolicyLedger>>>>;

pub struct PolicyBook<'a, P> {
    store: &'a P,
    /// SWEEP_POLICY_REFRESH.
    refresh: u32,
    /// The trust rules' fingerprint, taken from the first check (the
    /// sweep learns its own organisation before its first audit).
    rules: std::sync::OnceLock<Arc<str>>,
    /// When the sweep started (epoch seconds): the next sweep reads the
    /// policies of secrets changed since (`None`: nothing is marked
    /// complete, as when the start is not known).
    started: Option<i64>,
    /// Each (account, Region)'s ledger, read once; `None` when there is
    /// none (no state table, or the read failed): every policy there is
    /// read and nothing is recorded.
    ledgers: Mutex<HashMap<Key, LedgerCell>>,
    passes: Mutex<HashMap<Key, PolicyPass>>,
}

impl<'a, P: PolicyLedgers> PolicyBook<'a, P> {
    pub fn new(store: &'a P, refresh: u32, started: Option<i64>) -> Self {
        PolicyBook {
            store,
            refresh,
            rules: std::sync::OnceLock::new(),
            started,
            ledgers: Mutex::default(),
            passes: Mutex::default(),
        }
    }

    /// The check for a secret of `account` whose primary is in `region`,
    /// under the trust rules `rules` makes; `None` (read the policy)
    /// without a ledger.
    pub async fn check(
        &self,
        account: &str,
        region: &str,
        rules: impl FnOnce() -> String,
    ) -> Option<PolicyCheck> {
        let rules = self.rules.get_or_init(|| rules().into()).clone();
        let cell = {
            let mut m = self.ledgers.lock().unwrap_or_else(|p| p.into_inner());
            m.entry((account.to_string(), region.to_string()))
                .or_default()
                .clone()
        };
        let ledger = cell
            .get_or_init(|| async {
                match self.store.policy_ledger(account, region).await {
                    Ok(l) => l.map(Arc::new),
                    Err(e) => {
                        warn!(account, region, error = %e, "sweep ledger not read: every secret there is read in full");
                        None
                    }
                }
            })
            .await
            .clone()?;
        Some(PolicyCheck {
            ledger,
            rules,
            refresh: self.refresh,
        })
    }

    /// Count one audited secret: whether its policy was `read`, and its
    /// verdict ([`crate::ledger::verdict`]).
    pub fn count(&self, account: &str, region: &str, arn: &str, read: bool, verdict: Option<bool>) {
        let mut m = self.passes.lock().unwrap_or_else(|p| p.into_inner());
        m.entry((account.to_string(), region.to_string()))
            .or_default()
            .count(arn, read, verdict);
    }

    /// Policies read and passed over, over every account and Region.
    pub fn totals(&self) -> (u64, u64) {
        let m = self.passes.lock().unwrap_or_else(|p| p.into_inner());
        m.values()
            .fold((0, 0), |(r, s), p| (r + p.read, s + p.skipped))
    }

    /// Record every pass whose ledger was read, `complete` saying whether
    /// the sweep audited all of that account and Region. A record that
    /// fails is logged, not fatal: the next sweep then reads more, never
    /// less (see [`PolicyLedgers::record_policy_pass`]).
    pub async fn record(&self, complete: impl Fn(&str, &str) -> bool) {
        let ledgers: Vec<(Key, Arc<PolicyLedger>)> = {
            let m = self.ledgers.lock().unwrap_or_else(|p| p.into_inner());
            m.iter()
                .filter_map(|(k, c)| Some((k.clone(), c.get()?.clone()?)))
                .collect()
        };
        let Some(rules) = self.rules.get() else {
            return; // no secret was checked
        };
        let mut passes =
            std::mem::take(&mut *self.passes.lock().unwrap_or_else(|p| p.into_inner()));
        for ((account, region), seen) in ledgers {
            let mut pass = passes
                .remove(&(account.clone(), region.clone()))
                .unwrap_or_default();
            pass.complete = self.started.is_some() && complete(&account, &region);
            let started = self.started.unwrap_or(0);
            if let Err(e) = self
                .store
                .record_policy_pass(&account, &region, &pass, (started, rules), &seen)
                .await
            {
                warn!(account, region = %region, error = %e, "sweep ledger not recorded: the next sweep reads more");
            }
        }
    }
}
