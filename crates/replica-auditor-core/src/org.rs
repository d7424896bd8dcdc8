//! The organisation-wide sweep's pure parts: the cell message that goes
//! through the sweep queue (one per account and Region), what one
//! delivery of a cell adds to the sweep's bookkeeping, and the org summary
//! made from that bookkeeping. No I/O: the engine sends and receives the
//! messages, the state table adapter stores the counters.
//!
//! A cell message (`replica-auditor.cell/v1`, JSON):
//!
//! ```json
//! {"schema": "replica-auditor.cell/v1", "sweep_id": "53dc4d37-...", "account": "111122223333",
//!  "region": "us-east-1", "cell": 2, "account_index": 1, "part": 1, "cells_total": 6,
//!  "position": {"next_token": null, "listed_all": false, "pending": []},
//!  "trigger": {"event_id": "53dc4d37-...", "time": "2026-11-23T12:00:00Z", "region": "us-west-2", "account": "123456789012"}}
//! ```
//!
//! `part` 1 starts the cell's ListSecrets listing; a cell that cannot
//! finish before its deadline sends part n+1 with its `position`: where the
//! listing resumes (`next_token`, or `listed_all`) and the primaries it
//! listed but did not reach (`pending`, their ARNs).
//!
//! The bookkeeping names cells and accounts by their index in the plan
//! (accounts sorted, each times every Region: cell = account index x
//! Regions + Region index), not by their ids: 3 bytes instead of 26 per
//! cell. Its items, and every write to them, are [`crate::book`]'s.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::arn::{is_account_id, is_region_name, parse_secret_arn};
use crate::event::Scheduled;
use crate::model::{AccountCounts, CallCounts, CellCounts, SweepSummary};

/// The cell message's schema (a compatible addition keeps it; a change
/// that an older consumer would misread makes a v2).
pub const CELL_SCHEMA: &str = "replica-auditor.cell/v1";
/// SQS's limit on a message body.
pub const MAX_CELL_BYTES: usize = 256 * 1024;
/// Primaries a remainder may carry: a ListSecrets page holds at most 100,
/// and a remainder carries at most the page being audited and the next.
pub const MAX_PENDING: usize = 1000;
/// Secrets Manager's limit on a ListSecrets NextToken.
const MAX_NEXT_TOKEN_CHARS: usize = 4096;
/// A sweep id: the scheduled event's id (a UUID), or one made up.
const MAX_SWEEP_ID_CHARS: usize = 128;

/// Where a cell's listing stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Position {
    /// ListSecrets' token for the next page; `None` with `listed_all`
    /// false is the start.
    #[serde(default)]
    pub next_token: Option<String>,
    /// Every page has been listed: only `pending` is left.
    #[serde(default)]
    pub listed_all: bool,
    /// Primary ARNs listed but not audited yet.
    #[serde(default)]
    pub pending: Vec<String>,
}

/// One cell of an org sweep: audit the secrets of `account` listed in
/// `region`, from `position` on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub schema: String,
    pub sweep_id: String,
    pub account: String,
    pub region: String,
    /// The cell's index in the plan: account index x Regions + Region index.
    pub cell: u32,
    /// The account's index in the plan's (sorted) accounts.
    pub account_index: u32,
    /// 1 for the planner's message, n+1 for the remainder of part n.
    pub part: u32,
    /// The cells the sweep planned (every account times every Region).
    pub cells_total: u32,
    #[serde(default)]
    pub position: Position,
    /// The scheduled event that started the sweep (its reports name it).
    pub trigger: Scheduled,
}

/// Why a cell message cannot be used: the path and what is wrong there.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("malformed cell message at `{path}`: {message}")]
pub struct CellError {
    pub path: String,
    pub message: String,
}

fn bad(path: impl Into<String>, message: impl Into<String>) -> CellError {
    CellError {
        path: path.into(),
        message: message.into(),
    }
}

impl Cell {
    /// The planner's messages: one per (account, Region), accounts in
    /// the order given (sorted by the planner), each with every Region.
    pub fn plan(
        sweep_id: &str,
        accounts: &[String],
        regions: &[String],
        trigger: &Scheduled,
    ) -> Vec<Cell> {
        let total = (accounts.len() * regions.len()) as u32;
        Cell::plan_page(sweep_id, (0, accounts), regions, total, trigger)
    }

    /// The cells of a run of the plan's accounts (`first`: the index of
    /// its first account in the plan), each with every Region: what one
    /// planning message ([`PlanPage`]) sends for its page.
    pub fn plan_page(
        sweep_id: &str,
        (first, accounts): (u32, &[String]),
        regions: &[String],
        cells_total: u32,
        trigger: &Scheduled,
    ) -> Vec<Cell> {
        let mut cells = Vec::with_capacity(accounts.len() * regions.len());
        for (a, account) in accounts.iter().enumerate() {
            let account_index = first + a as u32;
            for (r, region) in regions.iter().enumerate() {
                cells.push(Cell {
                    schema: CELL_SCHEMA.into(),
                    sweep_id: sweep_id.into(),
                    account: account.clone(),
                    region: region.clone(),
                    cell: account_index * regions.len() as u32 + r as u32,
                    account_index,
                    part: 1,
                    cells_total,
                    position: Position::default(),
                    trigger: trigger.clone(),
                });
            }
        }
        cells
    }

    /// What is left of this cell, as the next part.
    pub fn remainder(&self, position: Position) -> Cell {
        Cell {
            part: self.part + 1,
            position,
            ..self.clone()
        }
    }

    /// `<account>/<Region>`: the cell's name in logs and the summary.
    pub fn cell_id(&self) -> String {
        cell_id(&self.account, &self.region)
    }

    /// `<cell index>#<part>`: one part's name in the bookkeeping.
    pub fn part_id(&self) -> String {
        crate::book::part_id(self.cell, self.part)
    }

    /// The message body.
    pub fn to_body(&self) -> String {
        serde_json::to_string(self).expect("a cell always serialises")
    }

    /// Parse and check a message body. Total: any input is a cell or an
    /// error naming what is wrong.
    pub fn parse(body: &str) -> Result<Cell, CellError> {
        let cell: Cell = parse_body(body)?;
        cell.check()?;
        Ok(cell)
    }

    fn check(&self) -> Result<(), CellError> {
        check_schema(&self.schema, CELL_SCHEMA)?;
        check_sweep_id(&self.sweep_id)?;
        if !is_account_id(&self.account) {
            return Err(bad("account", "is not a 12-digit account id"));
        }
        if !is_region_name(&self.region) {
            return Err(bad("region", "is not a Region name like us-east-1"));
        }
        if self.part == 0 {
            return Err(bad("part", "starts at 1"));
        }
        if self.cells_total == 0 {
            return Err(bad("cells_total", "is at least 1"));
        }
        if self.cell >= self.cells_total || self.account_index > self.cell {
            return Err(bad(
                "cell",
                format!(
                    "cell {} (account {}) is not within the {} cells planned",
                    self.cell, self.account_index, self.cells_total
                ),
            ));
        }
        let p = &self.position;
        if p.next_token
            .as_ref()
            .is_some_and(|t| t.is_empty() || t.chars().count() > MAX_NEXT_TOKEN_CHARS)
        {
            return Err(bad(
                "position.next_token",
                format!("is empty or longer than {MAX_NEXT_TOKEN_CHARS} characters"),
            ));
        }
        if p.listed_all && p.next_token.is_some() {
            return Err(bad(
                "position",
                "listed_all with a next_token: the listing cannot be both finished and not",
            ));
        }
        if p.pending.len() > MAX_PENDING {
            return Err(bad(
                "position.pending",
                format!("holds {} secrets; at most {MAX_PENDING}", p.pending.len()),
            ));
        }
        for (i, arn) in p.pending.iter().enumerate() {
            match parse_secret_arn(arn) {
                Some(a) if a.account == self.account => {}
                Some(_) => {
                    return Err(bad(
                        format!("position.pending[{i}]"),
                        "is a secret of another account",
                    ));
                }
                None => {
                    return Err(bad(format!("position.pending[{i}]"), "is not a secret ARN"));
                }
            }
        }
        Ok(())
    }
}

fn check_schema(schema: &str, want: &str) -> Result<(), CellError> {
    match schema == want {
        true => Ok(()),
        false => Err(bad("schema", format!("{schema:?} is not {want:?}"))),
    }
}

fn check_sweep_id(id: &str) -> Result<(), CellError> {
    let ok = (1..=MAX_SWEEP_ID_CHARS).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    match ok {
        true => Ok(()),
        false => Err(bad(
            "sweep_id",
            format!("1 to {MAX_SWEEP_ID_CHARS} of a-z, A-Z, 0-9 and -_.:"),
        )),
    }
}

/// A message body parsed as `T` with its path-naming errors, within
/// SQS's size and the event nesting limit. Total: any input is a `T` or
/// an error naming what is wrong.
fn parse_body<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, CellError> {
    if body.len() > MAX_CELL_BYTES {
        return Err(bad(
            "(body)",
            format!("{} bytes; SQS allows {MAX_CELL_BYTES}", body.len()),
        ));
    }
    crate::event::check_depth(body.as_bytes()).map_err(|e| bad("(body)", e.to_string()))?;
    let mut de = serde_json::Deserializer::from_str(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = match e.path().to_string() {
            p if p == "." => "(top level)".to_string(),
            p => p,
        };
        bad(path, e.inner().to_string())
    })?;
    de.end().map_err(|e| bad("(body)", e.to_string()))?;
    Ok(value)
}

/// The schema of a planning message.
pub const PLAN_SCHEMA: &str = "replica-auditor.plan/v1";

/// A planning message (`replica-auditor.plan/v1`): send the cells of one
/// page of the sweep's accounts ([`crate::book::ACCOUNTS_PER_PAGE`]). The
/// planner sends one per page, so no invocation sends more than one
/// page's cells; the accounts come from the page item the planner wrote,
/// never from the message. A redelivered one sends its cells again: the
/// bookkeeping counts each cell once.
///
/// ```json
/// {"schema": "replica-auditor.plan/v1", "sweep_id": "53dc4d37-...", "page": 0, "pages": 50,
///  "trigger": {"event_id": "53dc4d37-...", "time": "2026-11-23T12:00:00Z", "region": "us-west-2", "account": "123456789012"}}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanPage {
    pub schema: String,
    pub sweep_id: String,
    /// The page of the plan's accounts whose cells this message sends.
    pub page: u32,
    /// The pages the plan has.
    pub pages: u32,
    /// The scheduled event that started the sweep (its cells carry it).
    pub trigger: Scheduled,
}

impl PlanPage {
    /// One message per page of the plan.
    pub fn plan(sweep_id: &str, pages: u32, trigger: &Scheduled) -> Vec<PlanPage> {
        (0..pages)
            .map(|page| PlanPage {
                schema: PLAN_SCHEMA.into(),
                sweep_id: sweep_id.into(),
                page,
                pages,
                trigger: trigger.clone(),
            })
            .collect()
    }

    pub fn to_body(&self) -> String {
        serde_json::to_string(self).expect("a planning message always serialises")
    }

    /// `None` when the body is not a planning message (by its schema);
    /// else the message, or what is wrong with it.
    pub fn parse(body: &str) -> Option<Result<PlanPage, CellError>> {
        #[derive(Deserialize)]
        struct Schema {
            schema: String,
        }
        let schema: Schema = serde_json::from_str(body).ok()?;
        if schema.schema != PLAN_SCHEMA {
            return None;
        }
        Some(parse_body::<PlanPage>(body).and_then(|p| p.check().map(|()| p)))
    }

    fn check(&self) -> Result<(), CellError> {
        check_schema(&self.schema, PLAN_SCHEMA)?;
        check_sweep_id(&self.sweep_id)?;
        if self.page >= self.pages {
            return Err(bad(
                "page",
                format!("page {} is not within the {} pages", self.page, self.pages),
            ));
        }
        Ok(())
    }
}

/// What a cell message that is not valid still says: its sweep and its
/// cell's index, read when the body is a JSON object of the cell schema
/// with a well-formed `sweep_id` and an integer `cell`. Such a cell is
/// counted failed in its sweep (if the sweep planned that index), so the
/// summary need not wait for the close time (docs/organisations.md).
#[derive(Debug, Clone, PartialEq)]
pub struct MalformedCell {
    pub sweep_id: String,
    pub cell: u32,
    /// The body's trigger, when it reads as one.
    pub trigger: Option<Scheduled>,
}

impl MalformedCell {
    /// `None` when the body does not allow it.
    pub fn read(body: &str) -> Option<MalformedCell> {
        let value: serde_json::Value = parse_body(body).ok()?;
        if value.get("schema")?.as_str()? != CELL_SCHEMA {
            return None;
        }
        let sweep_id = value.get("sweep_id")?.as_str()?.to_string();
        check_sweep_id(&sweep_id).ok()?;
        let cell = u32::try_from(value.get("cell")?.as_u64()?).ok()?;
        let trigger = value
            .get("trigger")
            .and_then(|t| serde_json::from_value(t.clone()).ok());
        Some(MalformedCell {
            sweep_id,
            cell,
            trigger,
        })
    }
}

/// `<account>/<Region>`.
pub fn cell_id(account: &str, region: &str) -> String {
    format!("{account}/{region}")
}

/// What one delivery of a cell (a part) adds to the sweep's counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartCount {
    /// The account's index in the plan ([`Cell::account_index`]).
    pub account: u32,
    /// `secrets_seen`: the primaries this cell is responsible for, listed
    /// in this part.
    pub secrets: AccountCounts,
    pub calls: CallCounts,
}

/// The bookkeeping's counter attributes: per account (by its index)
/// `a/<index>/<what>`: `s` secrets seen, `a` audited, `f` with findings,
/// `p` reports published, `c/<CODE>` findings of a code; for the whole
/// sweep `t/<name>` ([`CallCounts::named`]). Short names: every byte counts
/// toward DynamoDB's 400 KB item limit (docs/organisations.md).
const CODE: &str = "c/";

/// An account's counts by their short names: the one list
/// [`PartCount::counters`] writes and [`SweepRecord::summary`] reads.
type CountOf = fn(&mut AccountCounts) -> &mut usize;
const ACCOUNT_COUNTS: [(&str, CountOf); 4] = [
    ("s", |c| &mut c.secrets_seen),
    ("a", |c| &mut c.secrets_audited),
    ("f", |c| &mut c.secrets_with_findings),
    ("p", |c| &mut c.reports_published),
];

/// Cross-account replicas of one status: `x/<status>`.
const CROSS_ACCOUNT: &str = "x/";

/// An account's count by its short name, by `c/<CODE>` or by `x/<status>`.
fn account_count<'c>(c: &'c mut AccountCounts, what: &str) -> Option<&'c mut usize> {
    if let Some((_, count)) = ACCOUNT_COUNTS.iter().find(|(short, _)| *short == what) {
        return Some(count(c));
    }
    if let Some(status) = what.strip_prefix(CROSS_ACCOUNT) {
        return Some(
            c.cross_account_replicas
                .entry(status.to_string())
                .or_default(),
        );
    }
    Some(
        c.by_code
            .entry(what.strip_prefix(CODE)?.to_string())
            .or_default(),
    )
}

impl PartCount {
    /// The counters this part adds (zeros left out: an attribute that is
    /// never added to is never stored).
    pub fn counters(&self) -> Vec<(String, u64)> {
        let a = |what: &str| format!("a/{}/{what}", self.account);
        let mut c = self.secrets.clone();
        let mut out: Vec<(String, u64)> = ACCOUNT_COUNTS
            .iter()
            .map(|(short, count)| (a(short), *count(&mut c) as u64))
            .collect();
        out.extend(
            c.by_code
                .iter()
                .map(|(code, n)| (a(&format!("{CODE}{code}")), *n as u64)),
        );
        out.extend(
            c.cross_account_replicas
                .iter()
                .map(|(status, n)| (a(&format!("{CROSS_ACCOUNT}{status}")), *n as u64)),
        );
        out.extend(self.calls.named().map(|(name, n)| (format!("t/{name}"), n)));
        out.retain(|(_, n)| *n > 0);
        out
    }
}

/// Whether a bookkeeping attribute is one of [`PartCount::counters`].
pub fn is_counter(attribute: &str) -> bool {
    attribute.starts_with("a/") || attribute.starts_with("t/")
}

/// The sweep's whole bookkeeping, read back from its items
/// ([`crate::book::assemble`]): its head and what its shards counted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SweepRecord {
    pub head: crate::book::SweepHead,
    pub done: u64,
    pub failed: u64,
    /// Cell indices counted done, and failed.
    pub done_cells: BTreeSet<u32>,
    pub failed_cells: BTreeSet<u32>,
    /// Parts counted that did not finish their cell ([`Cell::part_id`]).
    pub parts: BTreeSet<String>,
    /// The plan's accounts, in order (its pages).
    pub accounts: Vec<String>,
    /// [`PartCount::counters`], summed.
    pub counters: BTreeMap<String, u64>,
}

/// The org summary's lists, capped so that it fits one SNS message at any
/// organisation size (at 10,000 accounts x 17 Regions every account's
/// counts were about 1.5 MB; SNS takes 256 KB): planned accounts listed,
/// accounts in `by_account`, failed cells named. The totals count all.
pub const SUMMARY_MAX_ACCOUNTS: usize = 1000;
pub const SUMMARY_MAX_BY_ACCOUNT: usize = 250;
pub const SUMMARY_MAX_FAILED_CELLS: usize = 1000;

/// The schema of a sweep's close message.
pub const CLOSE_SCHEMA: &str = "replica-auditor.close/v1";

/// A sweep not complete this long after it was planned is closed as
/// incomplete: its missing cells are counted failed and the summary names
/// them (docs/reliability.md). Shorter than the template's 6-hour schedule.
pub const CLOSE_AFTER_SECONDS: u64 = 4 * 3600;

/// How often a close message looks again (SQS's largest DelaySeconds).
pub const CLOSE_CHECK_SECONDS: u32 = 900;

/// How soon a close message looks again after a summary that could not be
/// published.
pub const CLOSE_RETRY_SECONDS: u32 = 60;

/// The sweep's close message, on the sweep queue beside its cells: the
/// summary's own retry path. It looks at the sweep until its summary is
/// out, and sends itself again (delayed) rather than fail, so the
/// dead-letter queue never ends it. Only its sweep id is taken from it;
/// what it does comes from the sweep's item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Close {
    pub schema: String,
    pub sweep_id: String,
    /// The scheduled event that started the sweep (its summary names it).
    pub trigger: Scheduled,
}

impl Close {
    pub fn new(sweep_id: &str, trigger: &Scheduled) -> Close {
        Close {
            schema: CLOSE_SCHEMA.into(),
            sweep_id: sweep_id.into(),
            trigger: trigger.clone(),
        }
    }

    pub fn to_body(&self) -> String {
        serde_json::to_string(self).expect("a close message always serialises")
    }

    /// A close message, when the body is one (by its schema).
    pub fn parse(body: &str) -> Option<Close> {
        if body.len() > MAX_CELL_BYTES {
            return None;
        }
        crate::event::check_depth(body.as_bytes()).ok()?;
        serde_json::from_str::<Close>(body)
            .ok()
            .filter(|c| c.schema == CLOSE_SCHEMA && !c.sweep_id.is_empty())
    }
}

/// What a close message does with its sweep now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closing {
    /// The summary is out: nothing more.
    Done,
    /// Every cell is counted: publish the summary.
    Publish,
    /// Not complete, before its close time: look again in this many seconds.
    Wait(u32),
    /// Not complete at its close time: count its missing cells
    /// ([`SweepRecord::missing`]) failed, then publish.
    CloseIncomplete,
}

impl crate::book::SweepHead {
    /// What a close message does at `now` (epoch seconds).
    pub fn closing(&self, now: u64) -> Closing {
        if self.summary_sent.is_some() {
            return Closing::Done;
        }
        if self.complete() {
            return Closing::Publish;
        }
        let close_at = self.close_at.unwrap_or(0);
        if now < close_at {
            return Closing::Wait(
                ((close_at - now).min(u64::from(CLOSE_CHECK_SECONDS)) as u32).max(1),
            );
        }
        Closing::CloseIncomplete
    }
}

/// Why a cell message is not one of its sweep's plan.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NotPlanned {
    #[error("no sweep {0} is in the state table (never planned, or expired)")]
    NoSweep(String),
    #[error("sweep {sweep_id} has no page {page} of {pages} of accounts")]
    NoPage {
        sweep_id: String,
        page: u32,
        pages: u32,
    },
    #[error("sweep {sweep_id} planned no cell {cell} for {account}/{region}")]
    NotInPlan {
        sweep_id: String,
        cell: u32,
        account: String,
        region: String,
    },
}

impl SweepRecord {
    /// The planned cells counted neither done nor failed.
    pub fn missing(&self) -> Vec<u32> {
        (0..self.head.planned as u32)
            .filter(|c| !self.done_cells.contains(c) && !self.failed_cells.contains(c))
            .collect()
    }

    /// Every planned cell is done or failed.
    pub fn complete(&self) -> bool {
        self.head.planned > 0 && self.done + self.failed >= self.head.planned
    }

    /// The org summary: the sweep summary object with `scope`,
    /// `accounts`, `cells` and the counts per account, within SNS's
    /// message limit at any size: the totals count everything, the lists
    /// are capped with a count of what they leave out (`SUMMARY_MAX_*`).
    /// `duration_ms`: since the sweep was planned.
    pub fn summary(&self, duration_ms: u64) -> SweepSummary {
        let (by_account, calls) = self.counts();
        let mut all = AccountCounts::default();
        for c in by_account.values() {
            all.add(c);
        }
        let left_out = |total: usize, shown: usize| (total > shown).then_some(total - shown);
        let accounts: Vec<String> = self
            .accounts
            .iter()
            .take(SUMMARY_MAX_ACCOUNTS)
            .cloned()
            .collect();
        let failed_cells: Vec<String> = self
            .failed_cells
            .iter()
            .take(SUMMARY_MAX_FAILED_CELLS)
            .map(|c| self.cell_name(*c))
            .collect();
        let shown = self.shown_accounts(by_account);
        SweepSummary {
            duration_ms,
            scope: Some("organization".into()),
            accounts_total: Some(self.accounts.len()),
            accounts_left_out: left_out(self.accounts.len(), accounts.len()),
            accounts: Some(accounts),
            cells: Some(CellCounts {
                total: self.head.planned as usize,
                done: self.done as usize,
                failed: self.failed as usize,
                failed_cells_left_out: left_out(self.failed_cells.len(), failed_cells.len()),
                failed_cells,
            }),
            by_account_left_out: left_out(self.accounts.len(), shown.len()),
            by_account: Some(shown),
            ..SweepSummary::with_counts(self.head.regions.clone(), &all, &calls)
        }
    }

    /// Every account's counts (zeros for an account nothing counted),
    /// and the sweep's calls.
    fn counts(&self) -> (BTreeMap<String, AccountCounts>, CallCounts) {
        let mut by_account: BTreeMap<String, AccountCounts> = self
            .accounts
            .iter()
            .map(|a| (a.clone(), AccountCounts::default()))
            .collect();
        let account_of = |index: &str| {
            index
                .parse::<usize>()
                .ok()
                .and_then(|i| self.accounts.get(i))
                .cloned()
                .unwrap_or_else(|| format!("(account #{index})"))
        };
        let mut calls = CallCounts::default();
        for (name, n) in &self.counters {
            if let Some(total) = name.strip_prefix("t/") {
                if let Some((_, c)) = calls.named_mut().into_iter().find(|(t, _)| *t == total) {
                    *c += n;
                }
                continue;
            }
            let Some((account, what)) = name
                .strip_prefix("a/")
                .and_then(|rest| rest.split_once('/'))
            else {
                continue;
            };
            let c = by_account.entry(account_of(account)).or_default();
            if let Some(count) = account_count(c, what) {
                *count += *n as usize;
            }
        }
        (by_account, calls)
    }

    /// `by_account` as the summary shows it: every account when the plan
    /// has at most [`SUMMARY_MAX_BY_ACCOUNT`]; else the accounts with
    /// failed cells or findings, the most failed cells first, then the
    /// most secrets with findings, at most that many.
    fn shown_accounts(
        &self,
        mut by_account: BTreeMap<String, AccountCounts>,
    ) -> BTreeMap<String, AccountCounts> {
        if by_account.len() <= SUMMARY_MAX_BY_ACCOUNT {
            return by_account;
        }
        let regions = self.head.regions.len().max(1);
        let mut failed: BTreeMap<&str, usize> = BTreeMap::new();
        for c in &self.failed_cells {
            if let Some(a) = self.accounts.get(*c as usize / regions) {
                *failed.entry(a.as_str()).or_default() += 1;
            }
        }
        let mut ranked: Vec<(usize, usize, &String)> = by_account
            .iter()
            .map(|(a, c)| {
                let f = failed.get(a.as_str()).copied().unwrap_or(0);
                (f, c.secrets_with_findings + c.by_code.len(), a)
            })
            .filter(|(f, findings, _)| *f > 0 || *findings > 0)
            .collect();
        ranked.sort_by(|x, y| (y.0, y.1, x.2).cmp(&(x.0, x.1, y.2)));
        let keep: BTreeSet<String> = ranked
            .into_iter()
            .take(SUMMARY_MAX_BY_ACCOUNT)
            .map(|(_, _, a)| a.clone())
            .collect();
        by_account.retain(|a, _| keep.contains(a));
        by_account
    }

    /// `<account>/<Region>` of a cell index.
    pub fn cell_name(&self, cell: u32) -> String {
        match self.cell(cell) {
            Some((account, region)) => cell_id(account, region),
            None => format!("(cell #{cell})"),
        }
    }

    /// The (account, Region) of a cell index, if the plan has it.
    pub fn cell(&self, cell: u32) -> Option<(&str, &str)> {
        let regions = self.head.regions.len().max(1);
        let (a, r) = (cell as usize / regions, cell as usize % regions);
        Some((self.accounts.get(a)?, self.head.regions.get(r)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trigger() -> Scheduled {
        Scheduled {
            event_id: Some("53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa".into()),
            time: Some("2026-11-23T12:00:00+00:00".into()),
            region: Some("us-west-2".into()),
            account: Some("123456789012".into()),
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn plan() -> Vec<Cell> {
        Cell::plan(
            "sweep-1",
            &strings(&["111122223333", "222233334444", "333344445555"]),
            &strings(&["us-west-2", "eu-west-1"]),
            &trigger(),
        )
    }

    #[test]
    fn the_plan_is_every_account_times_every_region() {
        let cells = plan();
        assert_eq!(cells.len(), 6);
        let names: Vec<String> = cells.iter().map(Cell::cell_id).collect();
        assert_eq!(
            names,
            [
                "111122223333/us-west-2",
                "111122223333/eu-west-1",
                "222233334444/us-west-2",
                "222233334444/eu-west-1",
                "333344445555/us-west-2",
                "333344445555/eu-west-1"
            ]
        );
        let record = SweepRecord {
            accounts: strings(&["111122223333", "222233334444", "333344445555"]),
            head: crate::book::SweepHead {
                regions: strings(&["us-west-2", "eu-west-1"]),
                ..Default::default()
            },
            ..SweepRecord::default()
        };
        for c in &cells {
            assert_eq!(c.cells_total, 6);
            assert_eq!(c.part, 1);
            assert_eq!(c.account_index, c.cell / 2);
            assert_eq!(
                record.cell_name(c.cell),
                c.cell_id(),
                "the record names it back"
            );
        }
    }

    #[test]
    fn a_close_message_waits_publishes_or_closes_incomplete() {
        // 3 accounts x 1 Region: two shards, one group.
        let mut h = crate::book::SweepHead {
            sweep_id: "s".into(),
            planned: 3,
            accounts_total: 3,
            regions: strings(&["us-west-2"]),
            close_at: Some(10_000),
            ..Default::default()
        };
        assert_eq!(h.closing(9_990), Closing::Wait(10), "until the close time");
        assert_eq!(h.closing(1_000), Closing::Wait(CLOSE_CHECK_SECONDS));
        assert_eq!(h.closing(10_000), Closing::CloseIncomplete);
        let r = SweepRecord {
            head: h.clone(),
            done_cells: [0].into(),
            failed_cells: [2].into(),
            ..SweepRecord::default()
        };
        assert_eq!(r.missing(), vec![1]);
        h.groups_done.insert(0);
        assert_eq!(h.closing(1_000), Closing::Publish, "complete");
        h.summary_sent = Some("m-1".into());
        assert_eq!(h.closing(1_000), Closing::Done);
        let c = Close::new("s", &trigger());
        assert_eq!(Close::parse(&c.to_body()), Some(c));
        assert_eq!(
            Close::parse(&plan()[0].to_body()),
            None,
            "a cell is not one"
        );
    }

    #[test]
    fn only_a_cell_of_the_plan_is_planned() {
        let head = crate::book::SweepHead {
            sweep_id: "sweep-1".into(),
            planned: 6,
            accounts_total: 3,
            regions: strings(&["us-west-2", "eu-west-1"]),
            ..Default::default()
        };
        let page = strings(&["111122223333", "222233334444", "333344445555"]);
        for c in plan() {
            assert_eq!(head.check_planned(&page, &c), Ok(()), "{}", c.cell_id());
        }
        let forged = |f: &dyn Fn(&mut Cell)| {
            let mut c = plan()[3].clone();
            f(&mut c);
            head.check_planned(&page, &c)
        };
        let not = |account: &str, region: &str, cell: u32| {
            Err(NotPlanned::NotInPlan {
                sweep_id: "sweep-1".into(),
                cell,
                account: account.into(),
                region: region.into(),
            })
        };
        // An account outside the plan, at a planned account's index.
        assert_eq!(
            forged(&|c| c.account = "999988887777".into()),
            not("999988887777", "eu-west-1", 3)
        );
        // A Region outside the plan.
        assert_eq!(
            forged(&|c| c.region = "ap-south-1".into()),
            not("222233334444", "ap-south-1", 3)
        );
        // A planned account and Region under another cell's index.
        assert_eq!(forged(&|c| c.cell = 0), not("222233334444", "eu-west-1", 0));
        // Another account's index.
        assert_eq!(
            forged(&|c| c.account_index = 0),
            not("222233334444", "eu-west-1", 3)
        );
        // A total that is not the plan's.
        assert_eq!(
            forged(&|c| c.cells_total = 7),
            not("222233334444", "eu-west-1", 3)
        );
    }

    #[test]
    fn a_cell_goes_through_its_body_unchanged() {
        let c = plan()[3].clone();
        assert_eq!(Cell::parse(&c.to_body()).unwrap(), c);
        assert_eq!(c.cell_id(), "222233334444/eu-west-1");
        assert_eq!(c.part_id(), "3#1");
        let r = c.remainder(Position {
            next_token: Some("tok".into()),
            listed_all: false,
            pending: vec!["arn:aws:secretsmanager:eu-west-1:222233334444:secret:a-AbCdEf".into()],
        });
        assert_eq!(r.part, 2);
        assert_eq!(r.part_id(), "3#2");
        assert_eq!(Cell::parse(&r.to_body()).unwrap(), r);
        let body: serde_json::Value = serde_json::from_str(&r.to_body()).unwrap();
        assert_eq!(body["schema"], CELL_SCHEMA);
        assert_eq!(body["position"]["next_token"], "tok");
    }

    #[test]
    fn malformed_bodies_name_what_is_wrong() {
        let good: serde_json::Value = serde_json::from_str(&plan()[0].to_body()).unwrap();
        let with = |path: &str, v: serde_json::Value| {
            let mut b = good.clone();
            let mut at = &mut b;
            let parts: Vec<&str> = path.split('.').collect();
            for p in &parts[..parts.len() - 1] {
                at = &mut at[*p];
            }
            at[parts[parts.len() - 1]] = v;
            Cell::parse(&b.to_string()).unwrap_err()
        };
        let cases = [
            (with("schema", "replica-auditor.cell/v9".into()), "schema"),
            (with("account", "1234".into()), "account"),
            (with("account", 111122223333u64.into()), "account"),
            (with("region", "Mars".into()), "region"),
            (with("part", 0.into()), "part"),
            (with("part", (-1).into()), "part"),
            (with("cells_total", 0.into()), "cells_total"),
            (with("cell", 6.into()), "cell"),
            (with("sweep_id", "a b".into()), "sweep_id"),
            (
                with("position.next_token", "".into()),
                "position.next_token",
            ),
            (
                with("position.pending", serde_json::json!(["not-an-arn"])),
                "position.pending[0]",
            ),
            (
                with(
                    "position.pending",
                    serde_json::json!(["arn:aws:secretsmanager:us-east-1:999988887777:secret:x"]),
                ),
                "position.pending[0]",
            ),
        ];
        for (e, path) in cases {
            assert_eq!(e.path, path, "{e}");
            assert!(
                e.to_string().starts_with("malformed cell message at"),
                "{e}"
            );
        }
        for body in ["", "not json", "[]", "{}", "null", "{\"schema\": 1}"] {
            assert!(Cell::parse(body).is_err(), "{body:?}");
        }
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(Cell::parse(&deep).is_err());
        assert!(Cell::parse(&" ".repeat(MAX_CELL_BYTES + 1)).is_err());
        let mut b = good.clone();
        b["position"] = serde_json::json!({"next_token": "t", "listed_all": true});
        assert_eq!(Cell::parse(&b.to_string()).unwrap_err().path, "position");
    }

    #[test]
    fn a_redelivered_planning_message_sends_only_the_runs_not_marked_sent() {
        use crate::book::{Applied, Attr, apply, page_key, page_sent};
        // A full page: 200 accounts x 17 Regions, 3,400 cells.
        let accounts: Vec<String> = (0..200u64)
            .map(|i| format!("{:012}", 100_000_000_000 + i))
            .collect();
        let regions: Vec<String> = (0..17).map(|r| format!("region-{r:02}")).collect();
        let head = crate::book::SweepHead {
            sweep_id: "sweep-1".into(),
            planned: 3_400,
            accounts_total: 200,
            regions: regions.clone(),
            ..Default::default()
        };
        let m = &PlanPage::plan("sweep-1", 1, &trigger())[0];
        let runs = |sent: u64| -> Vec<(usize, u64)> {
            let page = head.page_cells(m, &accounts, sent).unwrap();
            page.runs().map(|(run, mark)| (run.len(), mark)).collect()
        };
        // First delivery: 34 runs of 100, each marked once sent.
        let first = runs(0);
        assert_eq!(first.len(), 34);
        assert_eq!(first[0], (100, 100));
        assert_eq!(first[33], (100, 3_400));
        assert!(first.iter().all(|(n, _)| *n == 100));
        // It died after two runs: the redelivery sends the other 2,400.
        let again = head.page_cells(m, &accounts, 1_000).unwrap();
        let rest: Vec<&Cell> = again.runs().flat_map(|(run, _)| run).collect();
        assert_eq!(rest.len(), 2_400);
        assert_eq!(
            rest[0], &again.cells[1_000],
            "from the first cell not marked"
        );
        // All marked: nothing; a mark past the page (not written by this
        // code) sends nothing either.
        assert!(runs(3_400).is_empty());
        assert!(runs(9_999).is_empty());
        // A mark moves only forward: a slower delivery's earlier mark is refused.
        let page_item = match apply(
            None,
            &crate::book::NewSweep {
                sweep_id: "sweep-1",
                accounts: &accounts,
                regions: &regions,
                planned_at: "2026-12-05T00:00:00Z",
                close_at: 0,
                expires_at: 0,
            }
            .pages()[0],
        ) {
            Applied::Done(i) => i,
            Applied::Refused(_) => unreachable!(),
        };
        let Applied::Done(marked) = apply(Some(&page_item), &page_sent("sweep-1", 0, 1_500)) else {
            panic!("the first mark is refused")
        };
        assert_eq!(marked.get("sent"), Some(&Attr::N(1_500)));
        assert!(matches!(
            apply(Some(&marked), &page_sent("sweep-1", 0, 1_000)),
            Applied::Refused(_)
        ));
        assert_eq!(page_sent("sweep-1", 0, 1).key, page_key("sweep-1", 0));
        // No page item, no mark (nothing made from a stray message).
        assert!(matches!(
            apply(None, &page_sent("sweep-1", 0, 500)),
            Applied::Refused(None)
        ));
    }

    #[test]
    fn a_planning_message_sends_exactly_its_pages_cells() {
        // 450 accounts x 2 Regions: pages of 200, 200 and 50.
        let accounts: Vec<String> = (0..450u64)
            .map(|i| format!("{:012}", 100_000_000_000 + i))
            .collect();
        let regions = strings(&["us-west-2", "eu-west-1"]);
        let head = crate::book::SweepHead {
            sweep_id: "sweep-1".into(),
            planned: 900,
            accounts_total: 450,
            regions: regions.clone(),
            ..Default::default()
        };
        let messages = PlanPage::plan("sweep-1", 3, &trigger());
        assert_eq!(messages.len(), 3);
        let whole = Cell::plan("sweep-1", &accounts, &regions, &trigger());
        let mut sent = Vec::new();
        for (m, page) in messages.iter().zip(accounts.chunks(200)) {
            let body = m.to_body();
            assert_eq!(PlanPage::parse(&body), Some(Ok(m.clone())));
            assert!(Cell::parse(&body).is_err(), "not a cell");
            let cells = head.page_cells(m, page, 0).unwrap();
            assert_eq!(cells.sent, 0);
            assert_eq!(cells.cells.len(), page.len() * 2);
            for c in &cells.cells {
                assert_eq!(head.check_planned(page, c), Ok(()), "{}", c.cell_id());
            }
            sent.extend(cells.cells);
        }
        assert_eq!(sent, whole, "the pages' cells are the plan's, once each");
        // The last page is 50 accounts: a page item of another length, or a
        // page the plan does not have, sends nothing.
        let no_page = Err(NotPlanned::NoPage {
            sweep_id: "sweep-1".into(),
            page: 2,
            pages: 3,
        });
        assert_eq!(
            head.page_cells(&messages[2], &accounts[400..449], 0),
            no_page
        );
        let beyond = PlanPage {
            page: 3,
            pages: 4,
            ..messages[0].clone()
        };
        assert!(head.page_cells(&beyond, &accounts[..200], 0).is_err());
        // Malformed planning messages name what is wrong; others are not one.
        let mut bad: serde_json::Value = serde_json::from_str(&messages[0].to_body()).unwrap();
        bad["page"] = 3.into();
        assert_eq!(
            PlanPage::parse(&bad.to_string()).unwrap().unwrap_err().path,
            "page"
        );
        bad["page"] = 0.into();
        bad["extra"] = 1.into();
        assert!(PlanPage::parse(&bad.to_string()).unwrap().is_err());
        assert_eq!(PlanPage::parse(&whole[0].to_body()), None);
        assert_eq!(PlanPage::parse("not json"), None);
    }

    #[test]
    fn a_malformed_cell_is_read_for_its_sweep_and_index_where_it_allows() {
        let good: serde_json::Value = serde_json::from_str(&plan()[3].to_body()).unwrap();
        let mut bad = good.clone();
        bad["region"] = "Mars".into();
        bad["position"] = serde_json::json!({"pending": ["not-an-arn"]});
        assert!(Cell::parse(&bad.to_string()).is_err());
        assert_eq!(
            MalformedCell::read(&bad.to_string()),
            Some(MalformedCell {
                sweep_id: "sweep-1".into(),
                cell: 3,
                trigger: Some(trigger()),
            })
        );
        bad["trigger"] = "not one".into();
        assert_eq!(MalformedCell::read(&bad.to_string()).unwrap().trigger, None);
        for (field, value) in [
            ("sweep_id", serde_json::json!("a b")),
            ("sweep_id", serde_json::json!(7)),
            ("cell", serde_json::json!(-1)),
            ("cell", serde_json::json!("3")),
            ("schema", serde_json::json!("replica-auditor.cell/v9")),
        ] {
            let mut b = good.clone();
            b[field] = value;
            assert_eq!(MalformedCell::read(&b.to_string()), None, "{field}");
        }
        for body in ["", "[]", "{}", "not json"] {
            assert_eq!(MalformedCell::read(body), None, "{body:?}");
        }
    }

    #[test]
    fn the_org_summary_keeps_its_lists_within_sns_at_any_size() {
        // 10,000 accounts x 1 Region; 1,500 failed cells; every third
        // account with a finding.
        let accounts: Vec<String> = (0..10_000u64)
            .map(|i| format!("{:012}", 100_000_000_000 + i))
            .collect();
        let mut r = SweepRecord {
            head: crate::book::SweepHead {
                sweep_id: "s".into(),
                planned: 10_000,
                regions: strings(&["us-west-2"]),
                ..Default::default()
            },
            done: 8_500,
            failed: 1_500,
            failed_cells: (0..1_500).map(|c| c * 5).collect(),
            accounts: accounts.clone(),
            ..SweepRecord::default()
        };
        for a in (0..10_000u32).step_by(3) {
            r.counters.insert(format!("a/{a}/s"), 2);
            r.counters.insert(format!("a/{a}/f"), 1);
            r.counters
                .insert(format!("a/{a}/c/REPLICA_KEY_WEAKER_THAN_PRIMARY"), 1);
        }
        let s = r.summary(0);
        assert_eq!(s.accounts_total, Some(10_000));
        assert_eq!(s.accounts.as_ref().unwrap().len(), SUMMARY_MAX_ACCOUNTS);
        assert_eq!(s.accounts_left_out, Some(9_000));
        let cells = s.cells.as_ref().unwrap();
        assert_eq!(
            (cells.total, cells.done, cells.failed),
            (10_000, 8_500, 1_500)
        );
        assert_eq!(cells.failed_cells.len(), SUMMARY_MAX_FAILED_CELLS);
        assert_eq!(cells.failed_cells_left_out, Some(500));
        let by = s.by_account.as_ref().unwrap();
        assert_eq!(by.len(), SUMMARY_MAX_BY_ACCOUNT);
        assert_eq!(s.by_account_left_out, Some(10_000 - SUMMARY_MAX_BY_ACCOUNT));
        // The accounts with failed cells and findings first: account 0
        // (cell 0 failed, findings), 15, 30, ... (multiples of 15 both).
        assert!(by.contains_key(&accounts[0]) && by.contains_key(&accounts[15]));
        assert!(!by.contains_key(&accounts[1]), "neither failed nor found");
        // The totals count every account.
        assert_eq!(s.secrets_with_findings, 3_334);
        assert_eq!(s.secrets_seen, 6_668);
        assert!(serde_json::to_string(&s).unwrap().len() < 100 * 1024);
        // A small plan lists every account, zeros too, and leaves nothing out.
        r.accounts.truncate(3);
        r.failed_cells = [0].into();
        r.counters.clear();
        let small = r.summary(0);
        assert_eq!(small.by_account.unwrap().len(), 3);
        assert_eq!(
            (small.accounts_left_out, small.by_account_left_out),
            (None, None)
        );
        assert_eq!(small.cells.unwrap().failed_cells_left_out, None);
    }

    #[test]
    fn a_part_adds_only_what_it_counted() {
        let part = PartCount {
            account: 7,
            secrets: AccountCounts {
                secrets_seen: 3,
                secrets_audited: 2,
                secrets_with_findings: 1,
                reports_published: 1,
                by_code: BTreeMap::from([("REPLICA_FAILED".into(), 2)]),
                ..AccountCounts::default()
            },
            calls: CallCounts {
                kms_calls: 4,
                ..CallCounts::default()
            },
        };
        let c = part.counters();
        assert_eq!(
            c,
            vec![
                ("a/7/s".to_string(), 3),
                ("a/7/a".into(), 2),
                ("a/7/f".into(), 1),
                ("a/7/p".into(), 1),
                ("a/7/c/REPLICA_FAILED".into(), 2),
                ("t/kms_calls".into(), 4),
            ]
        );
        assert!(c.iter().all(|(k, _)| is_counter(k)));
        assert!(!is_counter("done_cells"));
    }

    #[test]
    fn the_org_summary_sums_the_accounts() {
        let mut r = SweepRecord {
            head: crate::book::SweepHead {
                sweep_id: "s".into(),
                planned: 6,
                regions: strings(&["us-west-2", "eu-west-1"]),
                ..Default::default()
            },
            done: 5,
            failed: 1,
            failed_cells: BTreeSet::from([3]),
            accounts: strings(&["111122223333", "222233334444", "333344445555"]),
            ..SweepRecord::default()
        };
        for (account, seen, code) in [(0, 4, "REPLICA_FAILED"), (1, 2, "KEY_DISABLED")] {
            let part = PartCount {
                account,
                secrets: AccountCounts {
                    secrets_seen: seen,
                    secrets_audited: seen,
                    secrets_with_findings: 1,
                    reports_published: 1,
                    by_code: BTreeMap::from([(code.to_string(), 1)]),
                    ..AccountCounts::default()
                },
                calls: CallCounts {
                    kms_calls: 2,
                    ..CallCounts::default()
                },
            };
            for (k, v) in part.counters() {
                *r.counters.entry(k).or_default() += v;
            }
        }
        assert!(r.complete());
        let s = r.summary(1500);
        assert_eq!(s.scope.as_deref(), Some("organization"));
        assert_eq!(s.secrets_seen, 6);
        assert_eq!(s.secrets_with_findings, 2);
        assert_eq!(s.kms_calls, 4);
        assert_eq!(
            s.by_code,
            BTreeMap::from([("KEY_DISABLED".into(), 1), ("REPLICA_FAILED".into(), 1)])
        );
        let cells = s.cells.as_ref().unwrap();
        assert_eq!((cells.total, cells.done, cells.failed), (6, 5, 1));
        assert_eq!(cells.failed_cells, vec!["222233334444/eu-west-1"]);
        let by = s.by_account.as_ref().unwrap();
        assert_eq!(
            by.len(),
            3,
            "an account with nothing counted is listed with zeros"
        );
        assert_eq!(by["111122223333"].secrets_seen, 4);
        assert_eq!(by["333344445555"], AccountCounts::default());
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["scope"], "organization");
        assert_eq!(json["cells"]["failed_cells"][0], "222233334444/eu-west-1");
        assert_eq!(
            json["by_account"]["222233334444"]["by_code"]["KEY_DISABLED"],
            1
        );
        // The sweep of one account keeps its summary as it was.
        let plain = serde_json::to_value(SweepSummary::default()).unwrap();
        assert!(plain.get("scope").is_none() && plain.get("cells").is_none());
        r.done = 4;
        assert!(!r.complete());
    }

    #[test]
    fn cross_account_replicas_are_counted_by_status_through_the_bookkeeping() {
        let part = PartCount {
            account: 0,
            secrets: AccountCounts {
                cross_account_replicas: BTreeMap::from([
                    ("InSync".into(), 2),
                    ("Failed".into(), 1),
                ]),
                ..AccountCounts::default()
            },
            calls: CallCounts::default(),
        };
        let counters = part.counters();
        assert_eq!(
            counters,
            vec![("a/0/x/Failed".to_string(), 1), ("a/0/x/InSync".into(), 2)]
        );
        let mut r = SweepRecord {
            accounts: vec!["111122223333".into()],
            head: crate::book::SweepHead {
                regions: vec!["us-east-1".into()],
                planned: 1,
                ..Default::default()
            },
            done: 1,
            ..SweepRecord::default()
        };
        r.counters.extend(counters);
        let s = r.summary(0);
        let want = BTreeMap::from([("Failed".to_string(), 1), ("InSync".to_string(), 2)]);
        assert_eq!(s.cross_account_replicas, want);
        assert_eq!(
            s.by_account.unwrap()["111122223333"].cross_account_replicas,
            want
        );
    }
}
