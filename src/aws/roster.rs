//! The organisation's account list shared through the state table
//! (`org-accounts` items, laid out and written as [`crate::roster`] says),
//! on the two primitives of [`StateItems`].

use std::future::Future;

use futures::{StreamExt, TryStreamExt};

use super::book::READS_AT_ONCE;
use super::{AwsError, StateItems};
use crate::roster::{self, Listing, RosterHead};

/// What a claim to list came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// Ours: list, then publish or release. The head after the claim: it
    /// names a listing published since the head was last read, if any.
    Ours(RosterHead),
    /// Another instance's claim runs: the head as it is.
    Busy(RosterHead),
}

/// The shared account list.
pub trait OrgRoster: StateItems {
    /// Whether there is a state table to share the list through.
    fn shares_roster(&self) -> bool {
        false
    }

    /// The head as it is; `None` when there is none yet. One consistent
    /// GetItem.
    fn roster_head(&self) -> impl Future<Output = Result<Option<RosterHead>, AwsError>> + Send {
        async move {
            let item = self.get_item(roster::HEAD_KEY).await?;
            Ok(item.map(|i| RosterHead::from_item(&i)))
        }
    }

    /// The accounts of `listing`, every page in order; `None` when a page
    /// is missing (its pages expired: a listing a day old is not used).
    fn roster_accounts(
        &self,
        listing: &Listing,
    ) -> impl Future<Output = Result<Option<Vec<String>>, AwsError>> + Send {
        async move {
            let pages: Vec<Option<Vec<String>>> = futures::stream::iter(0..listing.pages)
                .map(|p| async move {
                    let item = self
                        .get_item(&roster::page_key(&listing.generation, p))
                        .await?;
                    Ok::<_, AwsError>(roster::page_accounts(item.as_ref()))
                })
                .buffered(READS_AT_ONCE)
                .try_collect()
                .await?;
            Ok(pages
                .into_iter()
                .collect::<Option<Vec<_>>>()
                .map(|p| p.concat()))
        }
    }

    /// Claim the right to list, for `owner` until `until` (epoch seconds).
    fn claim_roster(
        &self,
        owner: &str,
        until: u64,
        now: u64,
    ) -> impl Future<Output = Result<Claimed, AwsError>> + Send {
        async move {
            match self.update_item(&roster::claim(owner, until, now)).await? {
                crate::book::Applied::Done(item) => Ok(Claimed::Ours(RosterHead::from_item(&item))),
                crate::book::Applied::Refused(item) => {
                    let head = item.map(|i| RosterHead::from_item(&i)).unwrap_or_default();
                    // The SDK's retry of this very claim, applied but not
                    // acknowledged: the claim is ours.
                    Ok(match head.claimed_by(owner, until) {
                        true => Claimed::Ours(head),
                        false => Claimed::Busy(head),
                    })
                }
            }
        }
    }

    /// Publish `owner`'s listing (`accounts` sorted): its pages, then the
    /// head. `false` when the claim was no longer `owner`'s (it ran past
    /// its deadline and another instance claimed): nothing is named.
    fn publish_roster(
        &self,
        owner: &str,
        accounts: &[String],
        listed_at: u64,
    ) -> impl Future<Output = Result<bool, AwsError>> + Send {
        async move {
            let pages = roster::pages(owner, accounts, listed_at);
            futures::stream::iter(pages)
                .map(|p| async move { self.update_item(&p).await })
                .buffer_unordered(READS_AT_ONCE)
                .try_collect::<Vec<_>>()
                .await?;
            let head = roster::publish(owner, accounts.len(), listed_at);
            Ok(matches!(
                self.update_item(&head).await?,
                crate::book::Applied::Done(_)
            ))
        }
    }

    /// End `owner`'s claim without a listing.
    fn release_roster(&self, owner: &str) -> impl Future<Output = Result<(), AwsError>> + Send {
        async move { self.update_item(&roster::release(owner)).await.map(drop) }
    }
}
