//! The org sweep's bookkeeping as items of the state table: which items a
//! sweep writes, what every write adds and on what condition, and how the
//! items read back. No I/O: `aws::Book` sends these updates to DynamoDB,
//! and the simulation (`tests/sim_org.rs`) to an in-memory table that
//! applies them with [`apply`], DynamoDB's UpdateItem semantics for these
//! expressions.
//!
//! Items (partition key `pk`; every one small, none hot):
//!
//! | item | written | holds |
//! | --- | --- | --- |
//! | `sweep#<id>` (the head) | once by the planner; once per group that completes; the summary's claim | the plan's shape, the groups complete (`g`), the close time, the summary's claim and receipt |
//! | `sweep#<id>#accounts#<p>` | once by the planner | [`ACCOUNTS_PER_PAGE`] account ids of the plan, in order |
//! | `sweep#<id>#shard#<k>` | one UpdateItem per count of a cell of its [`ACCOUNTS_PER_SHARD`] accounts | the cells counted done (`d`) and failed (`f`), the parts counted, the counters of its accounts |
//! | `sweep#<id>#group#<g>` | once per shard of its [`SHARDS_PER_GROUP`] that completes | the shards complete (`s`) |
//!
//! A count is one conditional UpdateItem of its cell's shard (not counted
//! yet: `NOT contains`), returning the shard after it, or as it was when
//! refused. The count that completes a shard adds the shard to its group
//! (an idempotent set ADD, conditional the same way), the one that
//! completes a group adds the group to the head: the delivery that counts
//! the last cell sees the head complete, and so does any later delivery
//! or close message that finds its shard complete (each step is repeated,
//! and refused harmlessly, until the head has it). So no item takes more
//! than [`SHARDS_PER_GROUP`] + its own cells' writes, and no write rewrites
//! a large item.

use std::collections::{BTreeMap, BTreeSet};

use crate::org::{NotPlanned, PartCount, SweepRecord, is_counter};

/// Accounts per page item: 200 ids of 12 digits are about 2.8 KB.
pub const ACCOUNTS_PER_PAGE: usize = 200;
/// Accounts per shard: with 17 Regions 34 cells, about 1 KB of counters
/// and cell numbers (docs/organisations.md measures it).
pub const ACCOUNTS_PER_SHARD: u32 = 2;
/// Shards per group: a group's set of complete shards stays under 1 KB.
pub const SHARDS_PER_GROUP: u32 = 100;

/// One attribute's value, as DynamoDB types it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attr {
    N(u64),
    S(String),
    Bool(bool),
    /// A list of strings.
    L(Vec<String>),
    Ns(BTreeSet<u64>),
    Ss(BTreeSet<String>),
}

/// An item: attribute name to value (`pk` included).
pub type Item = BTreeMap<String, Attr>;

/// One clause of a condition (the clauses are ANDed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    /// The item exists (`attribute_exists(pk)`).
    Exists,
    /// The item does not exist.
    Absent,
    /// The attribute is not there.
    NoAttr(String),
    /// The set attribute (absent counts as empty) does not hold the number.
    NotHasN(String, u64),
    /// The set attribute does not hold the string.
    NotHasS(String, String),
    /// The attribute equals the value.
    Is(String, Attr),
    /// The attribute is absent, or a number below this.
    AbsentOrBelow(String, u64),
}

/// One UpdateItem: SET, ADD (numbers add, sets union), DELETE (from sets),
/// on the conditions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemUpdate {
    pub key: String,
    pub set: Vec<(String, Attr)>,
    pub add: Vec<(String, Attr)>,
    pub delete: Vec<(String, Attr)>,
    pub conditions: Vec<Cond>,
}

impl ItemUpdate {
    pub(crate) fn new(key: String) -> ItemUpdate {
        ItemUpdate {
            key,
            ..ItemUpdate::default()
        }
    }
    pub(crate) fn set(mut self, name: &str, v: Attr) -> ItemUpdate {
        self.set.push((name.into(), v));
        self
    }
    fn add(mut self, name: &str, v: Attr) -> ItemUpdate {
        self.add.push((name.into(), v));
        self
    }
    pub(crate) fn when(mut self, c: Cond) -> ItemUpdate {
        self.conditions.push(c);
        self
    }
}

/// What an update came to: the item after it, or refused with the item
/// as it was (`None`: there was none).
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    Done(Item),
    Refused(Option<Item>),
}

/// DynamoDB's UpdateItem on `item` (the simulation's table and the tests;
/// the state table does this itself).
pub fn apply(item: Option<&Item>, u: &ItemUpdate) -> Applied {
    let holds = |c: &Cond| {
        let get = |n: &str| item.and_then(|i| i.get(n));
        match c {
            Cond::Exists => item.is_some(),
            Cond::Absent => item.is_none(),
            Cond::NoAttr(n) => get(n).is_none(),
            Cond::NotHasN(n, x) => !matches!(get(n), Some(Attr::Ns(s)) if s.contains(x)),
            Cond::NotHasS(n, x) => !matches!(get(n), Some(Attr::Ss(s)) if s.contains(x)),
            Cond::Is(n, v) => get(n) == Some(v),
            Cond::AbsentOrBelow(n, x) => match get(n) {
                None => true,
                Some(Attr::N(v)) => v < x,
                Some(_) => false,
            },
        }
    };
    if !u.conditions.iter().all(holds) {
        return Applied::Refused(item.cloned());
    }
    let mut out = item.cloned().unwrap_or_default();
    out.insert("pk".into(), Attr::S(u.key.clone()));
    for (n, v) in &u.set {
        out.insert(n.clone(), v.clone());
    }
    for (n, v) in &u.add {
        match (out.get_mut(n), v) {
            (Some(Attr::N(a)), Attr::N(b)) => *a += b,
            (Some(Attr::Ns(a)), Attr::Ns(b)) => a.extend(b.iter().copied()),
            (Some(Attr::Ss(a)), Attr::Ss(b)) => a.extend(b.iter().cloned()),
            _ => {
                out.insert(n.clone(), v.clone());
            }
        }
    }
    for (n, v) in &u.delete {
        let empty = match (out.get_mut(n), v) {
            (Some(Attr::Ns(a)), Attr::Ns(b)) => {
                a.retain(|x| !b.contains(x));
                a.is_empty()
            }
            (Some(Attr::Ss(a)), Attr::Ss(b)) => {
                a.retain(|x| !b.contains(x));
                a.is_empty()
            }
            _ => false,
        };
        // DynamoDB keeps no empty set: the attribute goes.
        if empty {
            out.remove(n);
        }
    }
    Applied::Done(out)
}

/// An item's size as DynamoDB counts it: names plus values; a number is
/// one byte per two significant digits plus one; a list 3 bytes plus one
/// per element.
pub fn item_bytes(item: &Item) -> usize {
    let number = |n: u64| n.to_string().trim_end_matches('0').len().max(1).div_ceil(2) + 1;
    item.iter()
        .map(|(name, v)| {
            name.len()
                + match v {
                    Attr::N(n) => number(*n),
                    Attr::S(s) => s.len(),
                    Attr::Bool(_) => 1,
                    Attr::L(l) => 3 + l.iter().map(|s| s.len() + 1).sum::<usize>(),
                    Attr::Ns(s) => s.iter().map(|n| number(*n)).sum(),
                    Attr::Ss(s) => s.iter().map(String::len).sum(),
                }
        })
        .sum()
}

/// The write units an update of an item costs: one per KB of the larger
/// of the item before and after.
pub fn write_units(before: Option<&Item>, after: &Item) -> u64 {
    let bytes = before.map_or(0, item_bytes).max(item_bytes(after));
    bytes.div_ceil(1024).max(1) as u64
}

pub fn head_key(sweep_id: &str) -> String {
    format!("sweep#{sweep_id}")
}
pub fn page_key(sweep_id: &str, page: u32) -> String {
    format!("sweep#{sweep_id}#accounts#{page}")
}
pub fn shard_key(sweep_id: &str, shard: u32) -> String {
    format!("sweep#{sweep_id}#shard#{shard}")
}
pub fn group_key(sweep_id: &str, group: u32) -> String {
    format!("sweep#{sweep_id}#group#{group}")
}

/// A plan's shape: how its cells fall into pages, shards and groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub accounts: u32,
    pub regions: u32,
}

impl Layout {
    pub fn cells(&self) -> u32 {
        self.accounts * self.regions
    }
    pub fn pages(&self) -> u32 {
        self.accounts.div_ceil(ACCOUNTS_PER_PAGE as u32)
    }
    pub fn shards(&self) -> u32 {
        self.accounts.div_ceil(ACCOUNTS_PER_SHARD)
    }
    pub fn groups(&self) -> u32 {
        self.shards().div_ceil(SHARDS_PER_GROUP)
    }
    pub fn page_of_account(&self, account: u32) -> u32 {
        account / ACCOUNTS_PER_PAGE as u32
    }
    pub fn shard_of_cell(&self, cell: u32) -> u32 {
        cell / self.regions.max(1) / ACCOUNTS_PER_SHARD
    }
    pub fn cells_in_shard(&self, shard: u32) -> u32 {
        let first = shard * ACCOUNTS_PER_SHARD;
        self.accounts.saturating_sub(first).min(ACCOUNTS_PER_SHARD) * self.regions
    }
    pub fn shards_in_group(&self, group: u32) -> u32 {
        let first = group * SHARDS_PER_GROUP;
        self.shards().saturating_sub(first).min(SHARDS_PER_GROUP)
    }
}

/// A digest of the plan's accounts (FNV-1a): a planner resending a sweep
/// whose head is there checks it planned the same accounts.
pub fn accounts_digest(accounts: &[String]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in accounts.join(",").bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// A new sweep as the planner writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSweep<'a> {
    pub sweep_id: &'a str,
    pub accounts: &'a [String],
    pub regions: &'a [String],
    pub planned_at: &'a str,
    pub close_at: u64,
    pub expires_at: u64,
}

impl NewSweep<'_> {
    pub fn layout(&self) -> Layout {
        Layout {
            accounts: self.accounts.len() as u32,
            regions: self.regions.len() as u32,
        }
    }

    /// The head, written first and only if absent.
    pub fn head(&self) -> ItemUpdate {
        let planned = u64::from(self.layout().cells());
        ItemUpdate::new(head_key(self.sweep_id))
            .set("kind", Attr::S("org-sweep".into()))
            .set("planned", Attr::N(planned))
            .set("accounts_total", Attr::N(self.accounts.len() as u64))
            .set("accounts_digest", Attr::S(accounts_digest(self.accounts)))
            .set("regions", Attr::L(self.regions.to_vec()))
            .set("planned_at", Attr::S(self.planned_at.into()))
            .set("close_at", Attr::N(self.close_at))
            .set("expires_at", Attr::N(self.expires_at))
            .when(Cond::Absent)
    }

    /// The account pages (unconditional: a resent plan writes the same).
    pub fn pages(&self) -> Vec<ItemUpdate> {
        self.accounts
            .chunks(ACCOUNTS_PER_PAGE)
            .enumerate()
            .map(|(p, chunk)| {
                ItemUpdate::new(page_key(self.sweep_id, p as u32))
                    .set("kind", Attr::S("org-sweep-accounts".into()))
                    .set("accounts", Attr::L(chunk.to_vec()))
                    .set("expires_at", Attr::N(self.expires_at))
            })
            .collect()
    }
}

/// The sweep's head as it reads back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SweepHead {
    pub sweep_id: String,
    pub planned: u64,
    pub accounts_total: u32,
    pub accounts_digest: String,
    pub regions: Vec<String>,
    pub planned_at: Option<String>,
    pub close_at: Option<u64>,
    pub expires_at: u64,
    pub all_sent: bool,
    /// Groups whose every shard is complete.
    pub groups_done: BTreeSet<u32>,
    /// The org summary's receipt, once it is published.
    pub summary_sent: Option<String>,
    pub summary_owner: Option<String>,
    pub summary_until: Option<u64>,
}

pub(crate) fn number(item: &Item, name: &str) -> Option<u64> {
    match item.get(name) {
        Some(Attr::N(n)) => Some(*n),
        _ => None,
    }
}
pub(crate) fn text(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(Attr::S(s)) => Some(s.clone()),
        _ => None,
    }
}
pub(crate) fn strings(item: &Item, name: &str) -> Vec<String> {
    match item.get(name) {
        Some(Attr::L(l)) => l.clone(),
        _ => Vec::new(),
    }
}
fn numbers(item: &Item, name: &str) -> BTreeSet<u64> {
    match item.get(name) {
        Some(Attr::Ns(s)) => s.clone(),
        _ => BTreeSet::new(),
    }
}

impl SweepHead {
    pub fn from_item(sweep_id: &str, item: &Item) -> SweepHead {
        SweepHead {
            sweep_id: sweep_id.into(),
            planned: number(item, "planned").unwrap_or(0),
            accounts_total: number(item, "accounts_total").unwrap_or(0) as u32,
            accounts_digest: text(item, "accounts_digest").unwrap_or_default(),
            regions: strings(item, "regions"),
            planned_at: text(item, "planned_at"),
            close_at: number(item, "close_at"),
            expires_at: number(item, "expires_at").unwrap_or(0),
            all_sent: item.get("all_sent") == Some(&Attr::Bool(true)),
            groups_done: numbers(item, "g").into_iter().map(|g| g as u32).collect(),
            summary_sent: text(item, "summary_sent"),
            summary_owner: text(item, "summary_owner"),
            summary_until: number(item, "summary_until"),
        }
    }

    pub fn layout(&self) -> Layout {
        Layout {
            accounts: self.accounts_total,
            regions: self.regions.len() as u32,
        }
    }

    /// Every planned cell is counted done or failed.
    pub fn complete(&self) -> bool {
        self.planned > 0 && self.groups_done.len() as u32 >= self.layout().groups()
    }

    /// Whether `cell` is one its sweep planned: the account at its index
    /// in the plan (`page`: the accounts of the page that holds it), the
    /// Region among the plan's, the cell's index and total those of that
    /// account and Region. A cell message is the sender's word; only the
    /// plan in the state table is ours.
    pub fn check_planned(
        &self,
        page: &[String],
        cell: &crate::org::Cell,
    ) -> Result<(), NotPlanned> {
        let regions = self.regions.len();
        let l = self.layout();
        let at = (cell.account_index as usize)
            .checked_sub(l.page_of_account(cell.account_index) as usize * ACCOUNTS_PER_PAGE);
        let fits = cell.account_index < self.accounts_total
            && at.and_then(|i| page.get(i)) == Some(&cell.account)
            && self
                .regions
                .iter()
                .position(|r| *r == cell.region)
                .is_some_and(|r| cell.cell as usize == cell.account_index as usize * regions + r)
            && u64::from(cell.cells_total) == self.planned
            && self.planned == u64::from(l.cells());
        if fits {
            Ok(())
        } else {
            Err(NotPlanned::NotInPlan {
                sweep_id: self.sweep_id.clone(),
                cell: cell.cell,
                account: cell.account.clone(),
                region: cell.region.clone(),
            })
        }
    }
}

impl SweepHead {
    /// The cells a planning message sends: those of its page, whose
    /// accounts (`page`, the page item's) the planner wrote. Refused when
    /// the message's page is not one of this plan's, or its page item
    /// does not hold the accounts the plan's shape says it does.
    pub fn page_cells(
        &self,
        plan: &crate::org::PlanPage,
        page: &[String],
        sent: u64,
    ) -> Result<PageCells, NotPlanned> {
        let l = self.layout();
        let first = plan.page as usize * ACCOUNTS_PER_PAGE;
        let expected = (l.accounts as usize)
            .saturating_sub(first)
            .min(ACCOUNTS_PER_PAGE);
        let fits = plan.pages == l.pages()
            && plan.page < l.pages()
            && page.len() == expected
            && self.planned == u64::from(l.cells());
        if !fits {
            return Err(NotPlanned::NoPage {
                sweep_id: self.sweep_id.clone(),
                page: plan.page,
                pages: plan.pages,
            });
        }
        let cells = crate::org::Cell::plan_page(
            &self.sweep_id,
            (first as u32, page),
            &self.regions,
            l.cells(),
            &plan.trigger,
        );
        let sent = (sent as usize).min(cells.len());
        Ok(PageCells { cells, sent })
    }
}

/// Cells a planning message sends between two marks of its progress: 10
/// SendMessageBatch calls. Small, so that a delivery that runs out of time
/// still moves the mark: `make bench-org-2000` against a saturated
/// emulator sent about 340 cells of a page in a whole invocation.
pub const CELLS_PER_MARK: usize = 100;

/// A planning message's cells: every cell of its page, in the plan's
/// order, and how many of them an earlier delivery marked sent (the page
/// item's `sent`), which a redelivery does not send again.
#[derive(Debug, Clone, PartialEq)]
pub struct PageCells {
    pub cells: Vec<crate::org::Cell>,
    pub sent: usize,
}

impl PageCells {
    /// The cells not marked sent, in runs of [`CELLS_PER_MARK`], each with
    /// the mark to write once it is sent.
    pub fn runs(&self) -> impl Iterator<Item = (&[crate::org::Cell], u64)> {
        let sent = self.sent;
        self.cells[sent..]
            .chunks(CELLS_PER_MARK)
            .scan(sent, |done, run| {
                *done += run.len();
                Some((run, *done as u64))
            })
    }
}

/// Mark the first `sent` cells of a page sent (only forward: a late mark
/// of a slower delivery is refused).
pub fn page_sent(sweep_id: &str, page: u32, sent: u64) -> ItemUpdate {
    ItemUpdate::new(page_key(sweep_id, page))
        .when(Cond::Exists)
        .when(Cond::AbsentOrBelow("sent".into(), sent))
        .set("sent", Attr::N(sent))
}

/// What one delivery of a cell counts.
#[derive(Debug, Clone, PartialEq)]
pub enum Tally {
    /// A part that sent its remainder back to the queue: its counts only.
    Part(PartCount),
    /// The part that finished the cell: its counts, and the cell done.
    Done(PartCount),
    /// The cell failed on its last delivery (or was missing at the close
    /// time): counted failed, nothing else.
    Failed,
}

/// The count of one delivery of `cell` (part `part`): one conditional
/// UpdateItem of its shard. Refused when the cell is counted done or
/// failed, or when that part is counted as unfinished (a redelivery of
/// it that finished the cell included: the remainder it sent counts the
/// rest): a redelivery, a duplicate or the SDK's retry of an applied
/// write adds nothing.
pub fn count(sweep: &SweepHead, cell: u32, part: u32, tally: &Tally) -> ItemUpdate {
    let l = sweep.layout();
    let mut u = ItemUpdate::new(shard_key(&sweep.sweep_id, l.shard_of_cell(cell)))
        .set("kind", Attr::S("org-sweep-shard".into()))
        .set("expires_at", Attr::N(sweep.expires_at))
        .when(Cond::NotHasN("d".into(), cell.into()))
        .when(Cond::NotHasN("f".into(), cell.into()));
    let one = |c: u32| Attr::Ns([u64::from(c)].into());
    let counts = match tally {
        Tally::Part(p) => {
            let id = part_id(cell, part);
            u = u
                .when(Cond::NotHasS("parts".into(), id.clone()))
                .add("parts", Attr::Ss([id].into()));
            Some(p)
        }
        Tally::Done(p) => {
            // Not a redelivery of a part already counted as unfinished:
            // its remainder, on the queue, finishes the cell.
            u = u
                .when(Cond::NotHasS("parts".into(), part_id(cell, part)))
                .add("d", one(cell));
            // Its earlier parts are no longer needed: `d` refuses them.
            if part > 1 {
                let ids = (1..part).map(|p| part_id(cell, p)).collect();
                u.delete.push(("parts".into(), Attr::Ss(ids)));
            }
            Some(p)
        }
        Tally::Failed => {
            u = u.add("f", one(cell));
            None
        }
    };
    for (name, n) in counts.map(PartCount::counters).unwrap_or_default() {
        u = u.add(&name, Attr::N(n));
    }
    u
}

/// `<cell>#<part>`: one part's name in its shard.
pub fn part_id(cell: u32, part: u32) -> String {
    format!("{cell}#{part}")
}

/// Whether a shard item holds every cell of shard `shard`.
pub fn shard_complete(layout: &Layout, shard: u32, item: &Item) -> bool {
    let counted = numbers(item, "d").len() + numbers(item, "f").len();
    counted as u32 >= layout.cells_in_shard(shard)
}

/// A complete shard's entry in its group (idempotent).
pub fn roll_shard(sweep: &SweepHead, shard: u32) -> ItemUpdate {
    ItemUpdate::new(group_key(&sweep.sweep_id, shard / SHARDS_PER_GROUP))
        .set("kind", Attr::S("org-sweep-group".into()))
        .set("expires_at", Attr::N(sweep.expires_at))
        .when(Cond::NotHasN("s".into(), shard.into()))
        .add("s", Attr::Ns([u64::from(shard)].into()))
}

/// Whether a group item holds every shard of group `group`.
pub fn group_complete(layout: &Layout, group: u32, item: &Item) -> bool {
    numbers(item, "s").len() as u32 >= layout.shards_in_group(group)
}

/// A complete group's entry in the head (idempotent; only into a head
/// that is there).
pub fn roll_group(sweep: &SweepHead, group: u32) -> ItemUpdate {
    ItemUpdate::new(head_key(&sweep.sweep_id))
        .when(Cond::Exists)
        .when(Cond::NotHasN("g".into(), group.into()))
        .add("g", Attr::Ns([u64::from(group)].into()))
}

/// The planner has sent every message.
pub fn all_sent(sweep_id: &str) -> ItemUpdate {
    ItemUpdate::new(head_key(sweep_id))
        .when(Cond::Exists)
        .set("all_sent", Attr::Bool(true))
}

/// Claim the summary: not published, and nobody's claim running.
pub fn claim(sweep_id: &str, owner: &str, until: u64, now: u64) -> ItemUpdate {
    ItemUpdate::new(head_key(sweep_id))
        .when(Cond::Exists)
        .when(Cond::NoAttr("summary_sent".into()))
        .when(Cond::AbsentOrBelow("summary_until".into(), now))
        .set("summary_owner", Attr::S(owner.into()))
        .set("summary_until", Attr::N(until))
}

/// Give a claim back (only the owner's, only while unpublished).
pub fn release(sweep_id: &str, owner: &str) -> ItemUpdate {
    ItemUpdate::new(head_key(sweep_id))
        .when(Cond::Is("summary_owner".into(), Attr::S(owner.into())))
        .when(Cond::NoAttr("summary_sent".into()))
        .set("summary_until", Attr::N(0))
}

/// Mark the summary published (only by the claim's owner).
pub fn sent(sweep_id: &str, owner: &str, receipt: &str) -> ItemUpdate {
    ItemUpdate::new(head_key(sweep_id))
        .when(Cond::Is("summary_owner".into(), Attr::S(owner.into())))
        .set("summary_sent", Attr::S(receipt.into()))
}

/// The whole bookkeeping as one record: the head, its account pages in
/// order, and its shard items (any order; a shard never written is none).
pub fn assemble(head: &SweepHead, pages: &[Vec<String>], shards: &[Item]) -> SweepRecord {
    let mut r = SweepRecord {
        head: head.clone(),
        accounts: pages.concat(),
        ..SweepRecord::default()
    };
    for item in shards {
        r.done_cells
            .extend(numbers(item, "d").iter().map(|c| *c as u32));
        r.failed_cells
            .extend(numbers(item, "f").iter().map(|c| *c as u32));
        if let Some(Attr::Ss(parts)) = item.get("parts") {
            r.parts.extend(parts.iter().cloned());
        }
        for (name, v) in item {
            if let (true, Attr::N(n)) = (is_counter(name), v) {
                *r.counters.entry(name.clone()).or_default() += n;
            }
        }
    }
    r.done = r.done_cells.len() as u64;
    r.failed = r.failed_cells.len() as u64;
    r
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Shard,
    Group,
    Head,
}

/// One count, step by step: the shard's update, then (when it completed
/// its shard) the group's, then (when that completed its group) the
/// head's. The caller sends each update and hands back what it came to.
#[derive(Debug, Clone)]
pub struct Counting {
    sweep: SweepHead,
    shard: u32,
    stage: Stage,
    /// The shard's update was applied: this delivery counted the cell
    /// (or part); false for a redelivery.
    pub fresh: bool,
    /// The head, when the count reached it (its shard and group
    /// complete): whether the sweep is complete is [`SweepHead::complete`].
    pub head: Option<SweepHead>,
}

impl Counting {
    /// The count and its first update (the shard's).
    pub fn new(sweep: &SweepHead, cell: u32, part: u32, tally: &Tally) -> (Counting, ItemUpdate) {
        let c = Counting {
            sweep: sweep.clone(),
            shard: sweep.layout().shard_of_cell(cell),
            stage: Stage::Shard,
            fresh: false,
            head: None,
        };
        (c, count(sweep, cell, part, tally))
    }

    /// What the last update came to; the next update, or `None` when the
    /// count is over.
    pub fn next(&mut self, applied: &Applied) -> Option<ItemUpdate> {
        let item = match applied {
            Applied::Done(i) => Some(i),
            Applied::Refused(i) => i.as_ref(),
        };
        let layout = self.sweep.layout();
        let group = self.shard / SHARDS_PER_GROUP;
        match self.stage {
            Stage::Shard => {
                self.fresh = matches!(applied, Applied::Done(_));
                if !shard_complete(&layout, self.shard, item?) {
                    return None;
                }
                self.stage = Stage::Group;
                Some(roll_shard(&self.sweep, self.shard))
            }
            Stage::Group => {
                if !group_complete(&layout, group, item?) {
                    return None;
                }
                self.stage = Stage::Head;
                Some(roll_group(&self.sweep, group))
            }
            Stage::Head => {
                self.head = item.map(|i| SweepHead::from_item(&self.sweep.sweep_id, i));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AccountCounts, CallCounts};

    type Table = BTreeMap<String, Item>;

    fn run(table: &mut Table, u: ItemUpdate) -> Applied {
        let a = apply(table.get(&u.key), &u);
        if let Applied::Done(i) = &a {
            table.insert(u.key.clone(), i.clone());
        }
        a
    }

    fn count_in(table: &mut Table, head: &SweepHead, cell: u32, part: u32, t: &Tally) -> Counting {
        let (mut c, mut u) = Counting::new(head, cell, part, t);
        loop {
            let a = run(table, u);
            match c.next(&a) {
                Some(next) => u = next,
                None => return c,
            }
        }
    }

    fn accounts(n: u32) -> Vec<String> {
        (0..n)
            .map(|i| format!("{:012}", 100_000_000_000u64 + u64::from(i)))
            .collect()
    }

    fn regions(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("xx-region-{i}")).collect()
    }

    fn open(table: &mut Table, accounts: &[String], regions: &[String]) -> SweepHead {
        let new = NewSweep {
            sweep_id: "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
            accounts,
            regions,
            planned_at: "2026-11-23T12:00:00Z",
            close_at: 1_800_000_000,
            expires_at: 1_800_000_000,
        };
        assert!(matches!(run(table, new.head()), Applied::Done(_)));
        assert!(
            matches!(run(table, new.head()), Applied::Refused(Some(_))),
            "only once"
        );
        for p in new.pages() {
            run(table, p);
        }
        SweepHead::from_item(new.sweep_id, &table[&head_key(new.sweep_id)])
    }

    fn part(account: u32, seen: usize) -> PartCount {
        PartCount {
            account,
            secrets: AccountCounts {
                secrets_seen: seen,
                secrets_audited: seen,
                secrets_with_findings: 1,
                reports_published: 1,
                by_code: BTreeMap::from([("REPLICA_KEY_WEAKER_THAN_PRIMARY".into(), 1)]),
                ..AccountCounts::default()
            },
            calls: CallCounts {
                kms_calls: 2,
                ..CallCounts::default()
            },
        }
    }

    /// 5 accounts x 2 Regions (shards of 4, 4 and 2 cells, one group):
    /// every cell counted once whatever comes twice, and only the count
    /// of the last cell (or a redelivery after it) sees the head complete.
    #[test]
    fn each_cell_counts_once_and_the_last_completes_the_sweep() {
        let mut t = Table::new();
        let h = open(&mut t, &accounts(5), &regions(2));
        assert_eq!((h.layout().shards(), h.layout().groups()), (3, 1));
        // Cell 3 in two parts, cell 7 failed, the rest done; 9 last.
        let order = [0, 3, 1, 2, 4, 5, 6, 7, 8, 9];
        for (i, cell) in order.iter().copied().enumerate() {
            let account = cell / 2;
            if cell == 3 {
                let p = count_in(&mut t, &h, 3, 1, &Tally::Part(part(account, 5)));
                assert!(p.fresh);
                let again = count_in(&mut t, &h, 3, 1, &Tally::Part(part(account, 5)));
                assert!(!again.fresh, "a part counts once");
            }
            let tally = match cell {
                7 => Tally::Failed,
                3 => Tally::Done(part(account, 5)),
                _ => Tally::Done(part(account, 10)),
            };
            let c = count_in(&mut t, &h, cell, 1 + u32::from(cell == 3), &tally);
            assert!(c.fresh, "cell {cell}");
            let complete = c.head.as_ref().is_some_and(SweepHead::complete);
            assert_eq!(complete, i == order.len() - 1, "cell {cell}");
            let dup = count_in(&mut t, &h, cell, 1, &tally);
            assert!(!dup.fresh, "cell {cell} counted once");
            assert_eq!(dup.head.is_some_and(|h| h.complete()), complete);
        }
        let shards: Vec<Item> = (0..3)
            .map(|k| t[&shard_key(&h.sweep_id, k)].clone())
            .collect();
        let pages = vec![accounts(5)];
        let r = assemble(&h, &pages, &shards);
        assert_eq!((r.done, r.failed), (9, 1));
        assert!(r.parts.is_empty(), "cell 3's part went when it was done");
        let s = r.summary(0);
        // 8 cells of 10 and cell 3's two parts of 5: 90 secrets.
        assert_eq!(s.secrets_seen, 90);
        assert_eq!(s.kms_calls, 20);
        assert_eq!(
            s.cells.unwrap().failed_cells,
            vec![format!("{}/xx-region-1", accounts(5)[3])]
        );
    }

    /// The full-scale shape (10,000 accounts x 17 Regions): every item
    /// under 4 KB, a shard of the last accounts with its every cell
    /// counted under 2 KB.
    #[test]
    fn every_item_of_a_ten_thousand_account_sweep_is_small() {
        let mut t = Table::new();
        let h = open(&mut t, &accounts(10_000), &regions(17));
        let l = h.layout();
        assert_eq!((l.pages(), l.shards(), l.groups()), (50, 5_000, 50));
        let last = l.shards() - 1;
        for cell in (last * ACCOUNTS_PER_SHARD * 17)..l.cells() {
            count_in(&mut t, &h, cell, 1, &Tally::Done(part(cell / 17, 150)));
        }
        let shard = &t[&shard_key(&h.sweep_id, last)];
        let largest = t.values().map(item_bytes).max().unwrap();
        eprintln!("shard {} bytes, largest {largest} bytes", item_bytes(shard));
        assert!(item_bytes(shard) < 2048, "{}", item_bytes(shard));
        assert!(largest < 4096, "{largest}");
        assert!(item_bytes(&t[&head_key(&h.sweep_id)]) < 1024);
    }
}
