//! The org sweep's bookkeeping on the state table (`sweep#<id>...` items,
//! laid out and written as [`crate::book`] says). [`SweepBook`]'s methods
//! are provided, on two primitives of [`StateItems`] (one conditional
//! UpdateItem, one consistent GetItem): the state table implements those
//! on DynamoDB, and the simulation (`tests/sim_org.rs`) on an in-memory
//! table, so both run this very code.

use std::future::Future;

use futures::{StreamExt, TryStreamExt};

use super::{AwsError, Opened, SweepPlan};
use crate::book::{
    self, Applied, Counting, Item, ItemUpdate, NewSweep, PageCells, SweepHead, Tally,
};
use crate::org::{Cell, NotPlanned, PlanPage, SweepRecord};

/// State-table items read (or written) at once: a sweep's record, a
/// shared account listing.
pub(super) const READS_AT_ONCE: usize = 16;

/// The accounts of a page item (none when it is not there).
fn page_accounts(item: Option<Item>) -> Vec<String> {
    match item.and_then(|mut i| i.remove("accounts")) {
        Some(book::Attr::L(l)) => l,
        _ => Vec::new(),
    }
}

/// The state table's two primitives the bookkeeping needs.
pub trait StateItems: Send + Sync {
    /// One UpdateItem with its condition: the item after it (`ALL_NEW`),
    /// or refused and the item as it was (`ALL_OLD`).
    fn update_item(&self, u: &ItemUpdate)
    -> impl Future<Output = Result<Applied, AwsError>> + Send;
    /// One consistent GetItem.
    fn get_item(&self, key: &str) -> impl Future<Output = Result<Option<Item>, AwsError>> + Send;
}

/// The org sweep's bookkeeping: every count one conditional update of a
/// small item, idempotent under redelivery (docs/organisations.md).
pub trait SweepBook: StateItems {
    /// Write the sweep's head (unless it is there) and its account pages.
    fn open_sweep(
        &self,
        plan: &SweepPlan,
    ) -> impl Future<Output = Result<Opened, AwsError>> + Send {
        async move {
            let new = NewSweep {
                sweep_id: &plan.sweep_id,
                accounts: &plan.accounts,
                regions: &plan.regions,
                planned_at: &plan.planned_at,
                close_at: plan.close_at,
                expires_at: plan.expires_at,
            };
            let opened = match self.update_item(&new.head()).await? {
                Applied::Done(_) => Opened::New,
                Applied::Refused(old) => {
                    let old = SweepHead::from_item(&plan.sweep_id, &old.unwrap_or_default());
                    if old.accounts_digest != book::accounts_digest(&plan.accounts) {
                        return Ok(Opened::Changed);
                    }
                    // The SDK's retry of this very write, applied but not
                    // acknowledged: the head is this plan's own.
                    match old.planned_at.as_deref() == Some(plan.planned_at.as_str())
                        && !old.all_sent
                    {
                        true => Opened::New,
                        false => Opened::Existing {
                            all_sent: old.all_sent,
                        },
                    }
                }
            };
            if opened != (Opened::Existing { all_sent: true }) {
                for page in new.pages() {
                    self.update_item(&page).await?;
                }
            }
            Ok(opened)
        }
    }

    /// Every message of the sweep is sent.
    fn sweep_sent(&self, sweep_id: &str) -> impl Future<Output = Result<(), AwsError>> + Send {
        async move { self.update_item(&book::all_sent(sweep_id)).await.map(drop) }
    }

    /// The sweep's head as it is now; `None` when there is none.
    fn sweep_head(
        &self,
        sweep_id: &str,
    ) -> impl Future<Output = Result<Option<SweepHead>, AwsError>> + Send {
        async move {
            let item = self.get_item(&book::head_key(sweep_id)).await?;
            Ok(item.map(|i| SweepHead::from_item(sweep_id, &i)))
        }
    }

    /// The head of `cell`'s sweep, if the cell is one of its plan: two
    /// reads, the head and the page of accounts that holds the cell's.
    fn planned(
        &self,
        cell: &Cell,
    ) -> impl Future<Output = Result<Result<SweepHead, NotPlanned>, AwsError>> + Send {
        async move {
            let Some(head) = self.sweep_head(&cell.sweep_id).await? else {
                return Ok(Err(NotPlanned::NoSweep(cell.sweep_id.clone())));
            };
            let page = head.layout().page_of_account(cell.account_index);
            let accounts = self.get_item(&book::page_key(&cell.sweep_id, page)).await?;
            Ok(head
                .check_planned(&page_accounts(accounts), cell)
                .map(|()| head))
        }
    }

    /// The cells a planning message sends, if its page is one of its
    /// sweep's plan: two reads, the head and the page of accounts.
    fn page_cells(
        &self,
        plan: &PlanPage,
    ) -> impl Future<Output = Result<Result<PageCells, NotPlanned>, AwsError>> + Send {
        async move {
            let Some(head) = self.sweep_head(&plan.sweep_id).await? else {
                return Ok(Err(NotPlanned::NoSweep(plan.sweep_id.clone())));
            };
            let page = self
                .get_item(&book::page_key(&plan.sweep_id, plan.page))
                .await?;
            let sent = match page.as_ref().and_then(|p| p.get("sent")) {
                Some(book::Attr::N(n)) => *n,
                _ => 0,
            };
            Ok(head.page_cells(plan, &page_accounts(page), sent))
        }
    }

    /// Mark the first `sent` cells of the planning message's page sent.
    fn page_sent(
        &self,
        plan: &PlanPage,
        sent: u64,
    ) -> impl Future<Output = Result<(), AwsError>> + Send {
        async move {
            self.update_item(&book::page_sent(&plan.sweep_id, plan.page, sent))
                .await
                .map(drop)
        }
    }

    /// The whole bookkeeping (the head, every page, every shard: one read
    /// each); `None` when there is no head.
    fn sweep_record(
        &self,
        sweep_id: &str,
    ) -> impl Future<Output = Result<Option<SweepRecord>, AwsError>> + Send {
        async move {
            let Some(head) = self.sweep_head(sweep_id).await? else {
                return Ok(None);
            };
            Ok(Some(self.assemble(&head).await?))
        }
    }

    /// [`book::assemble`] from the table.
    fn assemble(
        &self,
        head: &SweepHead,
    ) -> impl Future<Output = Result<SweepRecord, AwsError>> + Send {
        async move {
            let l = head.layout();
            let id = &head.sweep_id;
            let pages: Vec<Vec<String>> = futures::stream::iter(0..l.pages())
                .map(|p| self.get_item_owned(book::page_key(id, p)))
                .buffered(READS_AT_ONCE)
                .map_ok(page_accounts)
                .try_collect()
                .await?;
            let shards: Vec<Item> = futures::stream::iter(0..l.shards())
                .map(|k| self.get_item_owned(book::shard_key(id, k)))
                .buffer_unordered(READS_AT_ONCE)
                .try_filter_map(|i| async move { Ok(i) })
                .try_collect()
                .await?;
            Ok(book::assemble(head, &pages, &shards))
        }
    }

    /// [`StateItems::get_item`] of an owned key (for streams).
    fn get_item_owned(
        &self,
        key: String,
    ) -> impl Future<Output = Result<Option<Item>, AwsError>> + Send {
        async move { self.get_item(&key).await }
    }

    /// Count one delivery of cell `cell` (part `part`), once; the head
    /// when the count reached it ([`Counting`]).
    fn count(
        &self,
        head: &SweepHead,
        cell: u32,
        part: u32,
        tally: &Tally,
    ) -> impl Future<Output = Result<Counting, AwsError>> + Send {
        async move {
            let (mut counting, mut update) = Counting::new(head, cell, part, tally);
            loop {
                let applied = self.update_item(&update).await?;
                match counting.next(&applied) {
                    Some(next) => update = next,
                    None => return Ok(counting),
                }
            }
        }
    }

    /// Take the right to publish the org summary: granted when it is not
    /// published yet and nobody else holds the right (or their hold ended
    /// by `now`, epoch seconds); then the whole record, to summarise.
    fn claim_summary(
        &self,
        sweep_id: &str,
        owner: &str,
        until: u64,
        now: u64,
    ) -> impl Future<Output = Result<Option<SweepRecord>, AwsError>> + Send {
        async move {
            let head = match self
                .update_item(&book::claim(sweep_id, owner, until, now))
                .await?
            {
                Applied::Done(item) => SweepHead::from_item(sweep_id, &item),
                // The SDK's retry of this very claim, applied but not
                // acknowledged: the claim is ours (same owner, same hold).
                Applied::Refused(Some(item)) => {
                    let h = SweepHead::from_item(sweep_id, &item);
                    let ours = h.summary_sent.is_none()
                        && h.summary_owner.as_deref() == Some(owner)
                        && h.summary_until == Some(until);
                    if !ours {
                        return Ok(None);
                    }
                    h
                }
                Applied::Refused(None) => return Ok(None),
            };
            Ok(Some(self.assemble(&head).await?))
        }
    }

    /// Give the right back (the publish failed), so that the next
    /// delivery need not wait for the hold to end.
    fn release_summary(
        &self,
        sweep_id: &str,
        owner: &str,
    ) -> impl Future<Output = Result<(), AwsError>> + Send {
        // Refused: somebody else's claim by now, or already published.
        async move {
            self.update_item(&book::release(sweep_id, owner))
                .await
                .map(drop)
        }
    }

    /// The org summary is published (`receipt`: its SNS MessageId).
    fn summary_sent(
        &self,
        sweep_id: &str,
        owner: &str,
        receipt: &str,
    ) -> impl Future<Output = Result<(), AwsError>> + Send {
        async move {
            match self
                .update_item(&book::sent(sweep_id, owner, receipt))
                .await?
            {
                Applied::Done(_) => Ok(()),
                Applied::Refused(_) => Err(AwsError::Service {
                    call: "dynamodb:UpdateItem",
                    region: String::new(),
                    code: "ConditionalCheckFailedException".into(),
                    message: format!(
                        "the org summary of sweep {sweep_id} is no longer {owner}'s to mark sent"
                    ),
                }),
            }
        }
    }
}
