//! The org sweep at scale, simulated: the real planning (the paced
//! listing of `OrganizationsApi::active_accounts` with `rate::TokenBucket`,
//! the plan's items, one `org::PlanPage` per page of accounts, each
//! delivery of which sends its page's cells through `SweepBook::page_cells`;
//! the cell bodies and their parsing), the real bookkeeping
//! (`aws::SweepBook`'s provided methods, `book`'s items and updates) and
//! the real summary (the engine's `org_summary_report`, fitted to SNS by
//! the sink) against an in-memory state table and queue, in virtual time.
//!
//! The table ([`Table`]) applies each update with DynamoDB's semantics
//! (`book::apply`: conditions, ADD, sets), refuses an item over 400 KB,
//! throttles a partition past 1,000 write units in a second, and loses
//! answers: a write applied whose answer is lost, retried by "the SDK".
//! The queue delivers at least once: seeded random duplicates, deletes
//! lost (a redelivery after the visibility timeout), failed deliveries,
//! cells that fail every delivery (to the dead-letter queue, counted
//! failed on their last delivery), cells that run out of time (a
//! remainder), and cells lost outright (only the close message counts
//! them). Consumers run `SweepMaximumConcurrency` at once, each cell
//! taking seconds of virtual time.
//!
//! `cargo test --test sim_org` runs 300 accounts x 17 Regions in seconds;
//! `make sim-org` runs 10,000 x 17 (SIM_ORG_ACCOUNTS, SIM_ORG_SEED,
//! SIM_ORG_CONCURRENCY) and writes bench/sim-org.md.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Mutex;

use replica_auditor::aws::{
    AccountsPage, AwsError, Opened, OrganizationsApi, StateItems, SweepBook, SweepPlan,
};
use replica_auditor::book::{self, ACCOUNTS_PER_PAGE, Applied, Item, ItemUpdate, SweepHead, Tally};
use replica_auditor::event::Scheduled;
use replica_auditor::model::{AccountCounts, CallCounts};
use replica_auditor::org::{Cell, Close, Closing, PartCount, PlanPage, Position, SweepRecord};
use replica_auditor::rate::TokenBucket;
use replica_auditor::sinks::sns;

/// DynamoDB's item limit, and a partition's write units per second.
const ITEM_LIMIT: usize = 400 * 1024;
const PARTITION_WCU: u64 = 1_000;
/// Partitions of the table (a new on-demand table's).
const PARTITIONS: u64 = 4;
const VISIBILITY_MS: u64 = 1_800_000;
const MAX_RECEIVE: u32 = 3;
/// Every AWS call of the planner and of a planning message's delivery
/// takes this long (virtual): SendMessageBatch, UpdateItem, GetItem,
/// ListAccounts (then paced at ORG_LIST_ACCOUNTS_PER_SECOND).
const CALL_MS: u64 = 50;
/// ListAccounts' largest page (its MaxResults is at most 20).
const LIST_ACCOUNTS_PAGE: u32 = 20;
/// SNS's limit on a message with its attributes.
const SNS_LIMIT: usize = 256 * 1024;
/// The function's timeout in the template.
const TIMEOUT_MS: u64 = 300_000;

/// Organizations with `accounts` ACTIVE accounts, 20 a ListAccounts page,
/// each call taking [`CALL_MS`] of (tokio's paused) time: the real listing
/// loop (`OrganizationsApi::active_accounts`) and pace run over it.
struct Organization {
    accounts: u32,
    calls: std::sync::atomic::AtomicU64,
}

fn account_id(i: u32) -> String {
    format!("{:012}", 100_000_000_000u64 + u64::from(i) * 7919)
}

impl OrganizationsApi for Organization {
    async fn own_organization(&self) -> Result<Option<String>, AwsError> {
        Ok(Some("o-a1b2c3d4e5".into()))
    }

    async fn accounts_page(&self, token: Option<String>) -> Result<Option<AccountsPage>, AwsError> {
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(std::time::Duration::from_millis(CALL_MS)).await;
        let from: u32 = token.map_or(0, |t| t.parse().unwrap());
        let to = (from + LIST_ACCOUNTS_PAGE).min(self.accounts);
        Ok(Some(AccountsPage {
            accounts: (from..to).map(account_id).collect(),
            next_token: (to < self.accounts).then(|| to.to_string()),
        }))
    }
}

/// splitmix64: a seeded generator (no dependency).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// True with probability `p` per mille.
    fn per_mille(&mut self, p: u64) -> bool {
        self.next() % 1000 < p
    }
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// What the table measured.
#[derive(Default, Debug)]
struct TableStats {
    writes: u64,
    write_units: u64,
    reads: u64,
    read_units: u64,
    largest_item: usize,
    largest_key: String,
    throttled: u64,
    lost_answers: u64,
    /// Write units per (partition, second), and per (item, second).
    per_partition: HashMap<(u64, u64), u64>,
    per_item: HashMap<(String, u64), u64>,
    writes_by_kind: BTreeMap<&'static str, u64>,
}

struct TableState {
    items: HashMap<String, Item>,
    now_ms: u64,
    rng: Rng,
    lost_answer_per_mille: u64,
    stats: TableStats,
}

/// The in-memory state table.
struct Table(Mutex<TableState>);

fn partition(key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h % PARTITIONS
}

fn kind(key: &str) -> &'static str {
    ["#shard#", "#group#", "#accounts#"]
        .into_iter()
        .find(|k| key.contains(k))
        .unwrap_or("head")
}

fn refused(code: &str, message: String) -> AwsError {
    AwsError::Service {
        call: "dynamodb:UpdateItem",
        region: "sim".into(),
        code: code.into(),
        message,
    }
}

impl TableState {
    fn write(&mut self, u: &ItemUpdate) -> Result<Applied, AwsError> {
        let before = self.items.get(&u.key);
        let applied = book::apply(before, u);
        let empty = Item::new();
        let after = match &applied {
            Applied::Done(i) => i,
            Applied::Refused(_) => before.unwrap_or(&empty),
        };
        let bytes = book::item_bytes(after);
        if bytes > ITEM_LIMIT {
            return Err(refused("ValidationException", format!("{bytes} bytes")));
        }
        // A refused conditional write still consumes write units.
        let units = book::write_units(before, after);
        let second = self.now_ms / 1000;
        let p = self
            .stats
            .per_partition
            .entry((partition(&u.key), second))
            .or_default();
        if *p + units > PARTITION_WCU {
            self.stats.throttled += 1;
            return Err(refused(
                "ProvisionedThroughputExceededException",
                u.key.clone(),
            ));
        }
        *p += units;
        *self
            .stats
            .per_item
            .entry((u.key.clone(), second))
            .or_default() += units;
        self.stats.writes += 1;
        self.stats.write_units += units;
        *self.stats.writes_by_kind.entry(kind(&u.key)).or_default() += 1;
        if bytes > self.stats.largest_item {
            self.stats.largest_item = bytes;
            self.stats.largest_key = u.key.clone();
        }
        if let Applied::Done(i) = &applied {
            self.items.insert(u.key.clone(), i.clone());
        }
        Ok(applied)
    }
}

impl StateItems for Table {
    async fn update_item(&self, u: &ItemUpdate) -> Result<Applied, AwsError> {
        let mut t = self.0.lock().unwrap();
        let first = t.write(u)?;
        let p = t.lost_answer_per_mille;
        if t.rng.per_mille(p) {
            // Applied, the answer lost: the SDK sends it again.
            t.stats.lost_answers += 1;
            return t.write(u);
        }
        Ok(first)
    }

    async fn get_item(&self, key: &str) -> Result<Option<Item>, AwsError> {
        let mut t = self.0.lock().unwrap();
        let item = t.items.get(key).cloned();
        t.stats.reads += 1;
        // A consistent read: one unit per 4 KB.
        t.stats.read_units +=
            item.as_ref()
                .map_or(1, |i| book::item_bytes(i).div_ceil(4096).max(1)) as u64;
        Ok(item)
    }
}

impl SweepBook for Table {}

/// The scenario: its size and how often each fault happens (per mille).
#[derive(Debug, Clone)]
struct Scenario {
    accounts: u32,
    regions: usize,
    concurrency: usize,
    seed: u64,
    duplicate: u64,
    delete_lost: u64,
    fail: u64,
    poison: u64,
    remainder: u64,
    lost: u64,
    lost_answer: u64,
}

impl Scenario {
    fn from_env(accounts: u32) -> Scenario {
        let env = |k: &str, d: u64| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(d)
        };
        Scenario {
            accounts: env("SIM_ORG_ACCOUNTS", accounts.into()) as u32,
            regions: 17,
            concurrency: env("SIM_ORG_CONCURRENCY", 1000) as usize,
            seed: env("SIM_ORG_SEED", 27),
            duplicate: 20,
            delete_lost: 10,
            fail: 30,
            poison: 1,
            remainder: 20,
            lost: 1,
            lost_answer: 10,
        }
    }
}

/// A message on the sim's queue.
struct Message {
    body: String,
    receives: u32,
}

/// What the run counted.
#[derive(Default, Debug)]
struct Run {
    invocations: u64,
    /// SendMessage and SendMessageBatch calls.
    send_calls: u64,
    receives: u64,
    deletes: u64,
    dead_lettered: u64,
    summaries: Vec<SweepRecord>,
    end_ms: u64,
    /// When the last cell delivery that succeeded ended.
    last_cell_ms: u64,
    /// What the cells counted, to check the summary against.
    expected: AccountCounts,
    poisoned: std::collections::BTreeSet<u32>,
    dropped: std::collections::BTreeSet<u32>,
    counted_parts: std::collections::BTreeSet<(u32, u32)>,
    /// Cells whose fate (poisoned, lost) is decided: once per cell, however
    /// often its page sends it.
    fated: std::collections::BTreeSet<u32>,
    /// The planner's invocation (virtual ms): the paced listing, and the
    /// part after it; ListAccounts calls.
    planner_ms: u64,
    listing_ms: u64,
    list_calls: u64,
    /// The longest delivery of a planning message (virtual ms), and how
    /// many there were.
    longest_page_ms: u64,
    page_deliveries: u64,
    /// The org summary as published: its report's JSON and the SNS
    /// message's bytes.
    summary_body_bytes: usize,
    summary_message_bytes: usize,
}

/// The secrets a part of a cell lists: fixed by the cell and part.
fn part_count(cell: &Cell) -> PartCount {
    let seen = (cell.cell as usize * 7 + cell.part as usize) % 13;
    let mut by_code = BTreeMap::new();
    if seen.is_multiple_of(3) {
        by_code.insert("REPLICA_KEY_WEAKER_THAN_PRIMARY".to_string(), 1);
    }
    PartCount {
        account: cell.account_index,
        secrets: AccountCounts {
            secrets_seen: seen,
            secrets_audited: seen,
            secrets_with_findings: by_code.len(),
            reports_published: by_code.len(),
            by_code,
            ..AccountCounts::default()
        },
        calls: CallCounts {
            kms_calls: 2,
            ..CallCounts::default()
        },
    }
}

fn trigger() -> Scheduled {
    Scheduled {
        event_id: Some("53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa".into()),
        time: Some("2026-11-23T12:00:00Z".into()),
        region: Some("us-west-2".into()),
        account: Some("123456789012".into()),
    }
}

const REGIONS: [&str; 17] = [
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "ca-central-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-north-1",
    "ap-south-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
    "sa-east-1",
];

/// The simulation: the table, the queue, the consumers' clock.
struct Sim {
    s: Scenario,
    table: Table,
    rng: Rng,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    messages: HashMap<u64, Message>,
    seq: u64,
    run: Run,
    sweep_id: String,
    /// Cells counted done or failed, as the sim saw its counts go in.
    final_state: HashMap<u32, bool>,
    unlucky: std::collections::BTreeSet<u32>,
}

impl Sim {
    fn new(s: Scenario) -> Sim {
        let table = Table(Mutex::new(TableState {
            items: HashMap::new(),
            now_ms: 0,
            rng: Rng(s.seed ^ 0xdead_beef),
            lost_answer_per_mille: s.lost_answer,
            stats: TableStats::default(),
        }));
        Sim {
            rng: Rng(s.seed),
            s,
            table,
            queue: BinaryHeap::new(),
            messages: HashMap::new(),
            seq: 0,
            run: Run::default(),
            sweep_id: trigger().event_id.unwrap(),
            final_state: HashMap::new(),
            unlucky: Default::default(),
        }
    }

    fn enqueue(&mut self, body: String, visible_at: u64, receives: u32) {
        self.seq += 1;
        self.messages.insert(self.seq, Message { body, receives });
        self.queue.push(Reverse((visible_at, self.seq)));
    }

    /// Send with SQS's at-least-once: now and then twice.
    fn send(&mut self, body: String, visible_at: u64) {
        if self.rng.per_mille(self.s.duplicate) {
            self.enqueue(body.clone(), visible_at, 0);
        }
        self.enqueue(body, visible_at, 0);
    }

    /// The table's calls so far (reads and writes, each [`CALL_MS`]).
    fn table_calls(&self) -> u64 {
        let t = self.table.0.lock().unwrap();
        t.stats.reads + t.stats.writes + t.stats.throttled
    }

    /// The planner, as `plan_org_sweep`: the accounts listed through the
    /// real paced loop (tokio's clock paused: the pace's sleeps are
    /// virtual), the head and pages, one planning message per page, the
    /// close message, the mark.
    async fn plan(&mut self) {
        tokio::time::pause();
        let org = Organization {
            accounts: self.s.accounts,
            calls: 0.into(),
        };
        let pace = TokenBucket::new(
            replica_auditor::config::DEFAULT_LIST_ACCOUNTS_PER_SECOND as u32,
            1,
        );
        let t0 = tokio::time::Instant::now();
        let accounts = org.active_accounts(&pace).await.unwrap().unwrap();
        self.run.listing_ms = t0.elapsed().as_millis() as u64;
        self.run.list_calls = org.calls.into_inner();
        assert_eq!(accounts.len(), self.s.accounts as usize);
        let regions: Vec<String> = REGIONS[..self.s.regions]
            .iter()
            .map(|r| r.to_string())
            .collect();
        let plan = SweepPlan {
            sweep_id: self.sweep_id.clone(),
            accounts: accounts.clone(),
            regions: regions.clone(),
            planned_at: "2026-11-23T12:00:00Z".into(),
            expires_at: 14 * 86_400,
            close_at: replica_auditor::org::CLOSE_AFTER_SECONDS,
        };
        let table_before = self.table_calls();
        assert_eq!(self.table.open_sweep(&plan).await.unwrap(), Opened::New);
        let pages = accounts.len().div_ceil(ACCOUNTS_PER_PAGE) as u32;
        let messages = PlanPage::plan(&self.sweep_id, pages, &trigger());
        let sends = messages.len().div_ceil(10) as u64 + 1;
        self.run.send_calls += sends;
        for m in &messages {
            self.send(m.to_body(), 0);
        }
        let close = Close::new(&self.sweep_id, &trigger()).to_body();
        self.enqueue(
            close,
            u64::from(replica_auditor::org::CLOSE_CHECK_SECONDS) * 1000,
            0,
        );
        self.table.sweep_sent(&self.sweep_id).await.unwrap();
        let after = (self.table_calls() - table_before + sends) * CALL_MS;
        self.run.planner_ms = self.run.listing_ms + after;
    }

    /// One delivery of a planning message, as `send_page`: its page's
    /// cells from the page item, sent (SendMessageBatch, 10 a call) in
    /// runs, each marked sent in the page item. Whether its record
    /// succeeded, and how long it took (virtual ms). A failed delivery
    /// dies after a random number of its runs (none to all: timed out,
    /// or its answer lost), and its redelivery sends the runs not marked;
    /// the bookkeeping counts each cell once.
    async fn send_page(&mut self, plan: &PlanPage, now_ms: u64) -> (bool, u64) {
        let before = self.table_calls();
        let page = self
            .table
            .page_cells(plan)
            .await
            .unwrap()
            .expect("a page of the plan");
        let runs: Vec<(Vec<Cell>, u64)> = page.runs().map(|(r, m)| (r.to_vec(), m)).collect();
        let fails = self.rng.per_mille(self.s.fail);
        let dies_after = match fails {
            true => self.rng.between(0, runs.len() as u64) as usize,
            false => runs.len(),
        };
        let mut batches = 0;
        for (run, mark) in runs.iter().take(dies_after) {
            batches += run.len().div_ceil(10) as u64;
            for c in run {
                if self.run.fated.insert(c.cell) {
                    if self.rng.per_mille(self.s.poison) {
                        self.run.poisoned.insert(c.cell);
                    }
                    if self.rng.per_mille(self.s.lost) {
                        self.run.dropped.insert(c.cell);
                    }
                }
                if !self.run.dropped.contains(&c.cell) {
                    self.send(c.to_body(), now_ms);
                }
            }
            // The mark is written once its run is sent: later in the
            // delivery by the calls made so far.
            let at = now_ms + (self.table_calls() - before + batches) * CALL_MS;
            self.table.0.lock().unwrap().now_ms = at;
            self.table.page_sent(plan, *mark).await.unwrap();
        }
        self.run.send_calls += batches;
        let ms = (self.table_calls() - before + batches) * CALL_MS;
        self.run.longest_page_ms = self.run.longest_page_ms.max(ms);
        self.run.page_deliveries += 1;
        (!fails, ms)
    }

    /// Every message, `concurrency` consumers at once, until the queue is
    /// empty.
    async fn consume(&mut self) {
        let mut consumers: BinaryHeap<Reverse<u64>> =
            (0..self.s.concurrency).map(|_| Reverse(0)).collect();
        while let Some(Reverse((visible_at, seq))) = self.queue.pop() {
            let mut m = self.messages.remove(&seq).expect("queued");
            let Reverse(free) = consumers.pop().expect("consumers");
            let start = free.max(visible_at);
            self.run.invocations += 1;
            self.run.receives += 1;
            m.receives += 1;
            let (ok, end) = match PlanPage::parse(&m.body) {
                Some(plan) => {
                    self.table.0.lock().unwrap().now_ms = start;
                    let (ok, ms) = self.send_page(&plan.expect("the planner's"), start).await;
                    (ok, start + ms)
                }
                None => {
                    let end = start + self.rng.between(2_000, 6_000);
                    self.table.0.lock().unwrap().now_ms = end;
                    (self.deliver(&m, end).await, end)
                }
            };
            match ok {
                true if self.rng.per_mille(self.s.delete_lost) => {
                    self.run.deletes += 1;
                    self.enqueue(m.body, start + VISIBILITY_MS, m.receives);
                }
                true => {
                    self.run.deletes += 1;
                    if Close::parse(&m.body).is_none() && PlanPage::parse(&m.body).is_none() {
                        self.run.last_cell_ms = self.run.last_cell_ms.max(end);
                    }
                }
                false if m.receives >= MAX_RECEIVE => self.run.dead_lettered += 1,
                false => self.enqueue(m.body, start + VISIBILITY_MS, m.receives),
            }
            self.run.end_ms = self.run.end_ms.max(end);
            consumers.push(Reverse(end));
        }
    }

    /// One delivery: whether its record succeeded.
    async fn deliver(&mut self, m: &Message, now_ms: u64) -> bool {
        if let Some(close) = Close::parse(&m.body) {
            return self.close(&close, now_ms).await;
        }
        let cell = Cell::parse(&m.body).expect("the planner's cells parse");
        let head = self.table.planned(&cell).await.unwrap().expect("planned");
        let fails = self.run.poisoned.contains(&cell.cell) || self.rng.per_mille(self.s.fail);
        if fails {
            if m.receives >= MAX_RECEIVE {
                if !self.run.poisoned.contains(&cell.cell) {
                    self.unlucky.insert(cell.cell);
                }
                // Counted failed first; not counted: the close counts it.
                let _ = self
                    .count((cell.cell, cell.part), &head, Tally::Failed, now_ms)
                    .await;
            }
            return false;
        }
        let more = cell.part < 3 && self.rng.per_mille(self.s.remainder);
        let tally = match more {
            true => Tally::Part(part_count(&cell)),
            false => Tally::Done(part_count(&cell)),
        };
        if more {
            let rest = cell.remainder(Position {
                listed_all: true,
                ..Position::default()
            });
            self.run.send_calls += 1;
            self.send(rest.to_body(), now_ms);
        }
        self.count((cell.cell, cell.part), &head, tally, now_ms)
            .await
    }

    /// Count, then publish the summary if this count completed the sweep.
    async fn count(
        &mut self,
        (cell, part): (u32, u32),
        head: &SweepHead,
        tally: Tally,
        now_ms: u64,
    ) -> bool {
        let Ok(counted) = self.table.count(head, cell, part, &tally).await else {
            return false;
        };
        self.expect(cell, part, &tally);
        match counted.head {
            Some(h) if h.complete() && h.summary_sent.is_none() => self.publish(now_ms).await,
            _ => true,
        }
    }

    /// What the scenario expects the summary to hold: each part's counts
    /// once, until its cell is counted done or failed.
    fn expect(&mut self, cell: u32, part: u32, tally: &Tally) {
        if self.final_state.contains_key(&cell) || !self.run.counted_parts.insert((cell, part)) {
            return;
        }
        match tally {
            Tally::Part(p) => self.run.expected.add(&p.secrets),
            Tally::Done(p) => {
                self.run.expected.add(&p.secrets);
                self.final_state.insert(cell, true);
            }
            Tally::Failed => {
                self.final_state.insert(cell, false);
            }
        }
    }

    async fn publish(&mut self, now_ms: u64) -> bool {
        let owner = format!("invocation-{}", self.run.invocations);
        let now = now_ms / 1000;
        match self
            .table
            .claim_summary(&self.sweep_id, &owner, now + 330, now)
            .await
        {
            Ok(Some(record)) => {
                // The report the engine publishes, fitted to SNS as the
                // sink does: its size, and no finding dropped to fit.
                let report = replica_auditor::engine::sweep::org::org_summary_report(
                    &trigger(),
                    &record,
                    now_ms,
                    MAX_RECEIVE,
                    "us-west-2",
                );
                let fitted = sns::fitted(&report);
                assert!(fitted.truncated.is_none(), "the summary fits whole");
                self.run.summary_body_bytes = replica_auditor::report::body(&fitted).len();
                let topic = "arn:aws:sns:us-west-2:123456789012:replica-auditor-findings";
                self.run.summary_message_bytes = sns::batch_bytes(&sns::message(topic, &fitted));
                self.run.summaries.push(record);
                self.table
                    .summary_sent(&self.sweep_id, &owner, "m")
                    .await
                    .is_ok()
            }
            Ok(None) => true,
            Err(_) => false,
        }
    }

    /// The close message, as the engine's: wait, publish, or close.
    async fn close(&mut self, close: &Close, now_ms: u64) -> bool {
        let head = self
            .table
            .sweep_head(&close.sweep_id)
            .await
            .unwrap()
            .expect("planned");
        let again = match head.closing(now_ms / 1000) {
            Closing::Done => return true,
            Closing::Wait(s) => s,
            Closing::Publish => match self.publish(now_ms).await {
                true => return true,
                false => 60,
            },
            Closing::CloseIncomplete => {
                let record = self.table.assemble(&head).await.unwrap();
                for c in record.missing() {
                    if !self.count((c, 0), &head, Tally::Failed, now_ms).await {
                        return false;
                    }
                }
                return self.publish(now_ms).await;
            }
        };
        self.run.send_calls += 1;
        self.enqueue(close.to_body(), now_ms + u64::from(again) * 1000, 0);
        true
    }
}

/// The figures of one run.
struct Figures {
    cells: u64,
    text: String,
}

/// Run a scenario and check it: one summary, exact counts, small items,
/// no partition past its rate.
async fn simulate(s: Scenario) -> Figures {
    let started = std::time::Instant::now();
    let mut sim = Sim::new(s.clone());
    sim.plan().await;
    sim.consume().await;
    let run = &sim.run;
    let planned = u64::from(s.accounts) * s.regions as u64;
    assert_eq!(run.summaries.len(), 1, "exactly one summary");
    let r = &run.summaries[0];
    // Failed: the cells whose first count that went in was a failure (a
    // copy of an unlucky cell may have been counted done before).
    let failed: std::collections::BTreeSet<u32> = sim
        .final_state
        .iter()
        .filter(|(_, done)| !**done)
        .map(|(c, _)| *c)
        .collect();
    assert_eq!(r.failed_cells, failed, "the failed cells");
    let known: std::collections::BTreeSet<u32> =
        run.poisoned.iter().chain(&run.dropped).copied().collect();
    assert!(
        known.is_subset(&failed),
        "every poisoned and lost cell failed"
    );
    assert!(
        failed.difference(&known).all(|c| sim.unlucky.contains(c)),
        "the rest failed three times"
    );
    assert_eq!(
        (r.done + r.failed, r.failed),
        (planned, failed.len() as u64)
    );
    let summary = r.summary(0);
    let e = &run.expected;
    assert_eq!(
        (
            summary.secrets_seen,
            summary.secrets_audited,
            summary.secrets_with_findings
        ),
        (e.secrets_seen, e.secrets_audited, e.secrets_with_findings),
        "every part counted once"
    );
    assert_eq!(summary.by_code, e.by_code);
    let t = sim.table.0.lock().unwrap();
    let st = &t.stats;
    assert!(
        st.largest_item < 4096,
        "largest item {} bytes ({})",
        st.largest_item,
        st.largest_key
    );
    let peak_partition = st.per_partition.values().max().copied().unwrap_or(0);
    let peak_item = st.per_item.values().max().copied().unwrap_or(0);
    assert!(peak_partition <= PARTITION_WCU);
    assert!(
        peak_item < PARTITION_WCU / 4,
        "no hot item: {peak_item} WCU in a second"
    );
    // The planner's invocations: the listing and plan, and each planning
    // message's, well within the function's timeout.
    assert!(
        run.planner_ms < TIMEOUT_MS * 3 / 4,
        "the planner took {} ms",
        run.planner_ms
    );
    assert!(
        run.longest_page_ms < TIMEOUT_MS / 4,
        "{}",
        run.longest_page_ms
    );
    assert_eq!(
        run.list_calls,
        u64::from(s.accounts.div_ceil(LIST_ACCOUNTS_PAGE))
    );
    assert!(
        run.summary_message_bytes < SNS_LIMIT,
        "the summary is {} bytes",
        run.summary_message_bytes
    );
    let text = format!(
        "| {accounts} x {regions} | {planned} | {conc} | {plan_s:.1} s ({list_calls} ListAccounts in {list_s:.1} s) | {pages} ({page_s:.1} s longest) | {inv} | {cells_s:.0} s | {wall:.2} h | {dead} | {failed} | {writes} ({kinds}) | {wcu} | {reads} / {rcu} | {largest} B | {peak_p} | {peak_i} | {thr} | {lost} | {sqs} | {body} B / {msg} B | {secs:.1} s |",
        accounts = s.accounts,
        regions = s.regions,
        conc = s.concurrency,
        inv = run.invocations,
        wall = run.end_ms as f64 / 3_600_000.0,
        cells_s = run.last_cell_ms as f64 / 1000.0,
        dead = run.dead_lettered,
        failed = failed.len(),
        writes = st.writes,
        kinds = st
            .writes_by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        wcu = st.write_units,
        reads = st.reads,
        rcu = st.read_units,
        largest = st.largest_item,
        peak_p = peak_partition,
        peak_i = peak_item,
        thr = st.throttled,
        lost = st.lost_answers,
        sqs = run.send_calls + run.receives + run.deletes,
        plan_s = run.planner_ms as f64 / 1000.0,
        list_calls = run.list_calls,
        list_s = run.listing_ms as f64 / 1000.0,
        pages = run.page_deliveries,
        page_s = run.longest_page_ms as f64 / 1000.0,
        body = run.summary_body_bytes,
        msg = run.summary_message_bytes,
        secs = started.elapsed().as_secs_f64(),
    );
    eprintln!("{text}");
    Figures {
        cells: planned,
        text,
    }
}

/// 300 accounts x 17 Regions (5,100 cells) with every fault: seconds.
#[tokio::test]
async fn an_org_sweep_of_5100_cells_counts_each_once_and_summarises_once() {
    let f = simulate(Scenario::from_env(300)).await;
    assert!(f.cells > 0);
}

/// `make sim-org`: 10,000 accounts x 17 Regions, figures into
/// bench/sim-org.md (SIM_ORG_REPORT names the file).
#[tokio::test]
#[ignore = "full scale: make sim-org"]
async fn full_scale() {
    let f = simulate(Scenario::from_env(10_000)).await;
    if let Ok(path) = std::env::var("SIM_ORG_REPORT") {
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        std::fs::write(&path, format!("{old}{}\n", f.text)).unwrap();
    }
}
