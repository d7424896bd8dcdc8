//! The accounts the auditor may act in (docs/security.md): its own; the
//! accounts of ACCOUNT_IDS when set; else the ACTIVE accounts of its own
//! organisation, learned with ListAccounts and kept per container. Every
//! way into an account ([`App::enter`]) asks here first, so an account
//! named by an event, a queue message or a command line is refused before
//! any STS call.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::App;
use crate::aws::{AwsError, Ports};
use crate::engine::inspect::Budget;
use crate::model::{Gap, GapKind};

/// How long the organisation's account list is used before it is listed
/// again. Organizations' API rates are low and shared by the whole
/// organisation, so a container lists at most this often for accounts it
/// knows.
pub const ORG_ACCOUNTS_REFRESH: Duration = Duration::from_secs(15 * 60);

/// An account missing from the list is looked for again, but no sooner
/// than this after the last listing: an account that joined the
/// organisation gets in within a minute, and events naming accounts
/// outside it cannot make the auditor list more than once a minute.
pub const ORG_ACCOUNTS_RECHECK: Duration = Duration::from_secs(60);

/// Why an account is not one the auditor may act in.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("account {0} is not in ACCOUNT_IDS")]
    NotInAccountIds(String),
    #[error("account {0} is not an ACTIVE account of the auditor's organisation")]
    NotInOrganisation(String),
    /// The organisation's accounts cannot be learned (ListAccounts denied,
    /// or the auditor's account is in no organisation): only the own
    /// account, or ACCOUNT_IDS, may be entered.
    #[error(
        "account {account} is not the auditor's own, ACCOUNT_IDS is not set, and the organisation's accounts cannot be listed ({why})"
    )]
    OrganisationUnknown { account: String, why: String },
}

/// Why an account was not entered.
#[derive(Debug)]
pub enum NotEntered {
    /// Not an account the auditor may act in: nothing was called in it.
    Refused(Refusal),
    /// It may be entered, but could not be: the gap the audit reports.
    Failed(Gap),
}

impl NotEntered {
    /// The gap an audit reports for an account it did not enter: a refusal
    /// names the account and why, under the call it kept from being made.
    pub fn into_gap(self, home_region: &str) -> Gap {
        match self {
            NotEntered::Refused(refusal) => Gap {
                call: "sts:AssumeRole".into(),
                region: home_region.to_string(),
                kind: GapKind::Refused,
                reason: format!("sts:AssumeRole in {home_region}: refused: {refusal}"),
            },
            NotEntered::Failed(gap) => gap,
        }
    }
}

/// The organisation's ACTIVE accounts, as last listed.
#[derive(Debug, Default)]
pub struct OrgAccounts {
    listed: Option<(Instant, Arc<BTreeSet<String>>)>,
}

/// Whether to list the organisation's accounts again before judging an
/// account: never listed, listed [`ORG_ACCOUNTS_REFRESH`] ago, or the
/// account is missing and the list is at least [`ORG_ACCOUNTS_RECHECK`] old.
pub fn should_list(age: Option<Duration>, listed_there: bool) -> bool {
    match age {
        None => true,
        Some(age) if age >= ORG_ACCOUNTS_REFRESH => true,
        Some(age) => !listed_there && age >= ORG_ACCOUNTS_RECHECK,
    }
}

impl<C: Ports, S> App<C, S> {
    /// Whether the auditor may act in `account`; a refusal names why. Only
    /// a transient failure to list the organisation's accounts (throttled,
    /// unreachable, out of time) is an `Err` gap: the caller retries.
    pub async fn may_act_in(
        &self,
        account: &str,
        budget: &Budget,
    ) -> Result<Result<(), Refusal>, Gap> {
        // Known at cold start in Lambda: no call, and no time needed.
        let own = self
            .clients
            .own_account()
            .await
            .map_err(AwsError::into_gap)?;
        if account == own {
            return Ok(Ok(()));
        }
        let only = &self.settings.accounts.only;
        if !only.is_empty() {
            return Ok(if only.iter().any(|a| a == account) {
                Ok(())
            } else {
                Err(Refusal::NotInAccountIds(account.to_string()))
            });
        }
        let accounts = match self.org_accounts(account, budget).await? {
            Ok(accounts) => accounts,
            Err(why) => {
                return Ok(Err(Refusal::OrganisationUnknown {
                    account: account.to_string(),
                    why,
                }));
            }
        };
        Ok(if accounts.contains(account) {
            Ok(())
        } else {
            Err(Refusal::NotInOrganisation(account.to_string()))
        })
    }

    /// Whether `account` is an ACTIVE account of the auditor's
    /// organisation, from the same cached list as [`App::may_act_in`]
    /// (cross-account trust, issue 26). A transient failure to list is the
    /// gap, and the membership not known.
    pub(crate) async fn membership(
        &self,
        account: &str,
        budget: &Budget,
    ) -> (crate::cross_account::Membership, Option<Gap>) {
        use crate::cross_account::Membership;
        match self.org_accounts(account, budget).await {
            Ok(Ok(accounts)) if accounts.contains(account) => (Membership::InOrganisation, None),
            Ok(Ok(_)) => (Membership::NotInOrganisation, None),
            Ok(Err(why)) => (Membership::Unlisted(why), None),
            Err(gap) => (Membership::NotKnown, Some(gap)),
        }
    }

    /// The organisation's ACTIVE accounts, listed again when
    /// [`should_list`] says so (one listing at a time per container). A
    /// listing that cannot be made for good (denied, no organisation) is
    /// `Ok(Err(why))`; a transient failure keeps using the last list when
    /// there is one, else is the gap.
    async fn org_accounts(
        &self,
        account: &str,
        budget: &Budget,
    ) -> Result<Result<Arc<BTreeSet<String>>, String>, Gap> {
        let call = "organizations:ListAccounts";
        let mut held = self.org_accounts.lock().await;
        let known = held.listed.clone();
        let age = known.as_ref().map(|(at, _)| at.elapsed());
        let there = known.as_ref().is_some_and(|(_, a)| a.contains(account));
        if !should_list(age, there) {
            return Ok(Ok(known.expect("listed").1));
        }
        let listed = budget
            .run(call, &self.home_region, async {
                Ok(self.clients.active_accounts(&self.list_accounts).await)
            })
            .await;
        let lasting = |why: String| {
            warn!(
                call,
                why,
                "the organisation's accounts cannot be listed: only the own account and ACCOUNT_IDS may be entered"
            );
            Ok(Err(why))
        };
        match listed {
            Ok(Ok(Some(accounts))) => {
                info!(
                    accounts = accounts.len(),
                    "the organisation's accounts, listed: the auditor may act in these"
                );
                let accounts = Arc::new(accounts.into_iter().collect::<BTreeSet<_>>());
                held.listed = Some((Instant::now(), accounts.clone()));
                Ok(Ok(accounts))
            }
            // Failures that retrying does not heal: in no organisation, or
            // denied (not the management account or a delegated
            // administrator).
            Ok(Ok(None)) => {
                held.listed = None;
                lasting(format!(
                    "{call}: the auditor's account is in no organisation"
                ))
            }
            Ok(Err(e)) if e.kind() == GapKind::AccessDenied => {
                held.listed = None;
                lasting(e.to_string())
            }
            Ok(Err(e)) => stale_or(known, e.into_gap(), call),
            Err(gap) => stale_or(known, gap, call),
        }
    }
}

/// The last list, when there is one, after a transient failure to list
/// again; else the gap.
fn stale_or(
    known: Option<(Instant, Arc<BTreeSet<String>>)>,
    gap: Gap,
    call: &str,
) -> Result<Result<Arc<BTreeSet<String>>, String>, Gap> {
    match known {
        Some((_, accounts)) => {
            warn!(call, reason = %gap.reason, "could not list the organisation's accounts again: the last list is used");
            Ok(Ok(accounts))
        }
        None => Err(gap),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_refreshed_rarely_and_rechecked_for_a_missing_account() {
        let s = Duration::from_secs;
        assert!(should_list(None, false), "never listed");
        assert!(!should_list(Some(s(5)), true));
        assert!(!should_list(Some(s(5)), false), "a miss within a minute");
        assert!(should_list(Some(s(60)), false), "a miss a minute on");
        assert!(!should_list(Some(s(14 * 60)), true));
        assert!(should_list(Some(s(15 * 60)), true), "refreshed");
    }
}
