//! The accounts the auditor may act in (docs/security.md): its own; the
//! accounts of ACCOUNT_IDS when set; else the ACTIVE accounts of its own
//! organisation, learned with ListAccounts at most
//! [`crate::roster::REFRESH_SECONDS`] ago
//! and shared by every instance through the state table
//! ([`crate::roster`]): one instance lists, the others read its listing.
//! Every way into an account ([`App::enter`]) asks here first, so an
//! account named by an event, a queue message or a command line is refused
//! before any STS call.

use std::collections::BTreeSet;
use std::sync::Arc;

use tracing::{info, warn};

use super::App;
use crate::aws::{AwsError, Claimed, Ports};
use crate::engine::inspect::Budget;
use crate::model::{Gap, GapKind};
use crate::roster::{
    CLAIM_MAX_SECONDS, RosterHead, STALE_LIMIT_SECONDS, refresh_ahead, should_list,
};

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

/// The organisation's ACTIVE accounts, as last listed (by this instance
/// or, through the state table, by another).
#[derive(Debug, Default)]
pub struct OrgAccounts {
    /// When the listing was made (epoch seconds), and its accounts.
    listed: Option<(u64, Arc<BTreeSet<String>>)>,
    /// Another instance is listing: the shared head is not read again
    /// before this (epoch seconds), and the listing held serves meanwhile.
    quiet_until: u64,
}

/// What a scheduled refresh of the shared listing did
/// ([`App::refresh_accounts`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Refreshed {
    /// ACCOUNT_IDS is set: the organisation is never listed.
    AccountIdsGiven,
    /// No state table to share a listing through (the command line
    /// without STATE_TABLE): each instance lists when it needs to.
    NotShared,
    /// The shared listing, `age` seconds old, stays fresh until the next
    /// refresh's listing lands ([`refresh_ahead`]).
    Fresh { age: u64 },
    /// Another instance holds the claim to list.
    Busy,
    /// Listed here and shared.
    Listed { accounts: usize },
    /// The organisation cannot be listed for good (no organisation, or
    /// ListAccounts denied): why.
    Unlisted(String),
}

/// An answer of [`App::org_accounts`]: the accounts; `Ok(Err(why))` when
/// they cannot be listed for good; `Err(gap)` when not for now.
type Answer = Result<Result<Arc<BTreeSet<String>>, String>, Gap>;

impl OrgAccounts {
    /// The listing, when [`should_list`] says it serves for `account`.
    fn serves(&self, account: &str, now: u64) -> Option<Arc<BTreeSet<String>>> {
        let (at, accounts) = self.listed.as_ref()?;
        let age = now.saturating_sub(*at);
        (!should_list(Some(age), accounts.contains(account))).then(|| accounts.clone())
    }

    /// The listing, when it is younger than `limit` seconds.
    fn within(&self, now: u64, limit: u64) -> Option<Arc<BTreeSet<String>>> {
        let (at, accounts) = self.listed.as_ref()?;
        (now.saturating_sub(*at) < limit).then(|| accounts.clone())
    }

    /// Keep a listing made at `at`, unless the one held is newer.
    fn keep(&mut self, at: u64, accounts: Vec<String>) -> Arc<BTreeSet<String>> {
        match &self.listed {
            Some((held, list)) if *held > at => list.clone(),
            _ => {
                let list = Arc::new(accounts.into_iter().collect::<BTreeSet<_>>());
                self.listed = Some((at, list.clone()));
                list
            }
        }
    }

    /// The listing held, while another instance lists and it is young
    /// enough to serve meanwhile.
    fn meanwhile(&self, now: u64) -> Option<Arc<BTreeSet<String>>> {
        (now < self.quiet_until)
            .then(|| self.within(now, STALE_LIMIT_SECONDS))
            .flatten()
    }

    fn older_than(&self, at: u64) -> bool {
        self.listed.as_ref().is_none_or(|(held, _)| *held < at)
    }
}

/// Epoch seconds now.
fn epoch_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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

    /// The organisation's ACTIVE accounts: the listing held, while
    /// [`should_list`] says it serves; else the shared listing, when
    /// another instance made a newer one; else listed here (one listing at
    /// a time per container, and with a state table one per organisation).
    /// A listing that cannot be made for good (denied, no organisation) is
    /// `Ok(Err(why))`; a transient failure keeps using the last listing
    /// when there is one, else is the gap.
    async fn org_accounts(&self, account: &str, budget: &Budget) -> Answer {
        let mut held = self.org_accounts.lock().await;
        let now = epoch_now();
        if let Some(accounts) = held.serves(account, now).or_else(|| held.meanwhile(now)) {
            return Ok(Ok(accounts));
        }
        if self.clients.shares_roster()
            && let Some(answer) = self.shared_accounts(&mut held, account, budget).await
        {
            return answer;
        }
        self.list_here(&mut held, None, budget).await
    }

    /// The shared listing (docs/security.md): read when newer than the
    /// one held; when it does not serve either, claim the listing and list
    /// here, or, while another instance lists, use the one held if it is
    /// younger than [`STALE_LIMIT_SECONDS`]. `None`: list here, unshared
    /// (the state table cannot be read or written, or no listing young
    /// enough is there while another instance lists).
    async fn shared_accounts(
        &self,
        held: &mut OrgAccounts,
        account: &str,
        budget: &Budget,
    ) -> Option<Answer> {
        let region = self.state_region();
        let unshared = |gap: Gap| -> Option<Answer> {
            warn!(reason = %gap.reason, "the organisation's shared account list cannot be used: this instance lists the accounts itself");
            None
        };
        let head = match budget
            .run("dynamodb:GetItem", &region, self.clients.roster_head())
            .await
        {
            Ok(head) => head,
            Err(gap) => return unshared(gap),
        };
        if let Err(gap) = self.adopt(held, head.as_ref(), &region, budget).await {
            return unshared(gap);
        }
        let now = epoch_now();
        if let Some(accounts) = held.serves(account, now) {
            return Some(Ok(Ok(accounts)));
        }
        let owner = uuid::Uuid::new_v4().to_string();
        match self.claim_listing(&owner, now, budget).await {
            Ok(Claimed::Ours(head)) => {
                // Another instance published between the read of the head
                // and the claim: its listing serves, and the claim goes back.
                if self.adopt(held, Some(&head), &region, budget).await.is_ok()
                    && let Some(accounts) = held.serves(account, epoch_now())
                {
                    self.give_back(&owner, budget).await;
                    return Some(Ok(Ok(accounts)));
                }
                Some(self.list_here(held, Some(&owner), budget).await)
            }
            Ok(Claimed::Busy(head)) => {
                let young = held.within(now, STALE_LIMIT_SECONDS)?;
                // Not asked again for a while: a thousand instances waiting
                // on one listing read its head twice a minute each, at most.
                held.quiet_until =
                    (now + QUIET_SECONDS).min(head.refreshing_until.unwrap_or(now).max(now + 1));
                info!(
                    account,
                    "another instance is listing the organisation's accounts: the last listing is used meanwhile"
                );
                Some(Ok(Ok(young)))
            }
            Err(gap) => unshared(gap),
        }
    }

    /// Claim the right to list the organisation for `owner`, until the
    /// invocation's deadline.
    async fn claim_listing(&self, owner: &str, now: u64, budget: &Budget) -> Result<Claimed, Gap> {
        let claim = self
            .clients
            .claim_roster(owner, claim_until(now, budget), now);
        budget
            .run("dynamodb:UpdateItem", &self.state_region(), claim)
            .await
    }

    /// End `owner`'s claim to list unused; if that fails, it ends with the
    /// invocation's deadline anyway.
    async fn give_back(&self, owner: &str, budget: &Budget) {
        let release = self.clients.release_roster(owner);
        if let Err(gap) = budget
            .run("dynamodb:UpdateItem", &self.state_region(), release)
            .await
        {
            warn!(reason = %gap.reason, "a claim to list could not be given back: it ends with this invocation");
        }
    }

    /// The `AccountListRefresh` schedule's task: list the organisation
    /// ahead of time and share the listing, unless the shared one stays
    /// fresh until the next refresh ([`refresh_ahead`]), so that events and
    /// cells find it fresh and never wait for a listing themselves. `Err`:
    /// a transient failure (the state table or Organizations did not
    /// answer); the next tick tries again.
    pub(crate) async fn refresh_accounts(&self, budget: &Budget) -> Result<Refreshed, Gap> {
        if !self.settings.accounts.only.is_empty() {
            return Ok(Refreshed::AccountIdsGiven);
        }
        if !self.clients.shares_roster() {
            return Ok(Refreshed::NotShared);
        }
        let region = self.state_region();
        let mut held = self.org_accounts.lock().await;
        let head = budget
            .run("dynamodb:GetItem", &region, self.clients.roster_head())
            .await?;
        let now = epoch_now();
        // The age of the head's listing, when it stays fresh until the
        // next refresh's listing lands.
        let fresh = |head: Option<&RosterHead>| {
            head.and_then(|h| h.listing.as_ref())
                .map(|l| now.saturating_sub(l.listed_at))
                .filter(|age| !refresh_ahead(Some(*age)))
        };
        if let Some(age) = fresh(head.as_ref()) {
            return Ok(Refreshed::Fresh { age });
        }
        let owner = uuid::Uuid::new_v4().to_string();
        match self.claim_listing(&owner, now, budget).await? {
            Claimed::Busy(_) => Ok(Refreshed::Busy),
            Claimed::Ours(head) => {
                // Published by another instance since the read.
                if let Some(age) = fresh(Some(&head)) {
                    self.give_back(&owner, budget).await;
                    return Ok(Refreshed::Fresh { age });
                }
                match for_good(self.list_organisation(Some(&owner), budget).await)? {
                    Ok((at, accounts)) => {
                        let listed = accounts.len();
                        held.keep(at, accounts);
                        Ok(Refreshed::Listed { accounts: listed })
                    }
                    Err(why) => Ok(Refreshed::Unlisted(why)),
                }
            }
        }
    }

    /// Keep the listing `head` names, when it is newer than the one held
    /// (its pages read); a listing whose pages have expired (a day old) is
    /// left.
    async fn adopt(
        &self,
        held: &mut OrgAccounts,
        head: Option<&crate::roster::RosterHead>,
        region: &str,
        budget: &Budget,
    ) -> Result<(), Gap> {
        let Some(listing) = head.and_then(|h| h.listing.as_ref()) else {
            return Ok(());
        };
        if !held.older_than(listing.listed_at) {
            return Ok(());
        }
        let pages = self.clients.roster_accounts(listing);
        if let Some(accounts) = budget.run("dynamodb:GetItem", region, pages).await? {
            held.keep(listing.listed_at, accounts);
        }
        Ok(())
    }

    /// List the organisation's ACTIVE accounts here (paced), keep the
    /// listing, and publish it to the shared list when `owner` holds the
    /// claim (or end the claim, when the listing failed).
    async fn list_here(
        &self,
        held: &mut OrgAccounts,
        owner: Option<&str>,
        budget: &Budget,
    ) -> Answer {
        match for_good(self.list_organisation(owner, budget).await) {
            Ok(Ok((at, accounts))) => {
                info!(
                    accounts = accounts.len(),
                    shared = owner.is_some(),
                    "the organisation's accounts, listed: the auditor may act in these"
                );
                Ok(Ok(held.keep(at, accounts)))
            }
            Ok(Err(why)) => {
                held.listed = None;
                warn!(
                    call = LIST_ACCOUNTS,
                    why,
                    "the organisation's accounts cannot be listed: only the own account and ACCOUNT_IDS may be entered"
                );
                Ok(Err(why))
            }
            Err(gap) => match held.listed.as_ref() {
                Some((_, accounts)) => {
                    warn!(call = LIST_ACCOUNTS, reason = %gap.reason, "could not list the organisation's accounts again: the last list is used");
                    Ok(Ok(accounts.clone()))
                }
                None => Err(gap),
            },
        }
    }

    /// One listing of the organisation's ACTIVE accounts (paced by
    /// ORG_LIST_ACCOUNTS_PER_SECOND), sorted, with when it was made; when
    /// `owner` holds the claim to list, published to the shared list, or
    /// the claim ended if the listing failed. `Ok(None)`: the auditor's
    /// account is in no organisation.
    pub(crate) async fn list_organisation(
        &self,
        owner: Option<&str>,
        budget: &Budget,
    ) -> Result<Option<(u64, Vec<String>)>, Gap> {
        let listed = budget
            .run(
                LIST_ACCOUNTS,
                &self.home_region,
                self.clients.active_accounts(&self.list_accounts),
            )
            .await;
        let at = epoch_now();
        let Some(owner) = owner else {
            return listed.map(|l| l.map(|a| (at, a)));
        };
        let region = self.state_region();
        let shared = match &listed {
            Ok(Some(accounts)) => {
                budget
                    .run(
                        "dynamodb:UpdateItem",
                        &region,
                        self.clients.publish_roster(owner, accounts, at),
                    )
                    .await
            }
            _ => budget
                .run(
                    "dynamodb:UpdateItem",
                    &region,
                    self.clients.release_roster(owner),
                )
                .await
                .map(|()| false),
        };
        match shared {
            Ok(true) => {}
            Ok(false) if listed.as_ref().is_ok_and(Option::is_some) => {
                warn!(
                    "the listing ran past its claim, which another instance now holds: it is not shared"
                );
            }
            Ok(false) => {}
            Err(gap) => {
                warn!(reason = %gap.reason, "the organisation's listing could not be shared: other instances list it themselves when their own is due");
            }
        }
        listed.map(|l| l.map(|a| (at, a)))
    }

    /// The organisation's accounts for the org sweep's plan: listed now,
    /// and shared with every instance when no other instance is listing
    /// (the cells' scope checks then read this listing). `Ok(None)`: in no
    /// organisation.
    pub(crate) async fn plan_accounts(&self, budget: &Budget) -> Result<Option<Vec<String>>, Gap> {
        let mut held = self.org_accounts.lock().await;
        let now = epoch_now();
        let owner = uuid::Uuid::new_v4().to_string();
        let ours = self.clients.shares_roster()
            && matches!(
                self.claim_listing(&owner, now, budget).await,
                Ok(Claimed::Ours(_))
            );
        let listed = self
            .list_organisation(ours.then_some(owner.as_str()), budget)
            .await?;
        Ok(listed.map(|(at, accounts)| {
            held.keep(at, accounts.clone());
            accounts
        }))
    }
}

/// The call that lists the organisation's accounts, as gaps and logs name it.
const LIST_ACCOUNTS: &str = "organizations:ListAccounts";

/// A listing's outcome ([`App::list_organisation`]), told once: the
/// listing; `Ok(Err(why))` for a failure that retrying does not heal (the
/// auditor's account is in no organisation, or ListAccounts is denied: not
/// the management account or a delegated administrator); `Err(gap)` for a
/// transient one.
fn for_good<T>(listed: Result<Option<T>, Gap>) -> Result<Result<T, String>, Gap> {
    match listed {
        Ok(Some(listing)) => Ok(Ok(listing)),
        Ok(None) => Ok(Err(format!(
            "{LIST_ACCOUNTS}: the auditor's account is in no organisation"
        ))),
        Err(gap) if gap.kind == GapKind::AccessDenied => Ok(Err(gap.reason)),
        Err(gap) => Err(gap),
    }
}

/// While another instance lists, how long an instance uses the listing it
/// holds before it reads the shared head again.
const QUIET_SECONDS: u64 = 30;

/// When a claim to list made `now` ends: the invocation's deadline (it
/// cannot list past it), at most [`CLAIM_MAX_SECONDS`] on.
fn claim_until(now: u64, budget: &Budget) -> u64 {
    let left = budget
        .time_left()
        .map_or(CLAIM_MAX_SECONDS, |t| t.as_secs().min(CLAIM_MAX_SECONDS));
    now + left.max(1)
}
