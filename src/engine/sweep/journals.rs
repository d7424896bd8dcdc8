//! The remediation journal's index in a sweep: which primaries of an
//! account and Region may have journal entries, read once per account and
//! Region (one consistent GetItem), so that a sweep reads the journal of
//! those only rather than one GetItem per audited secret (issue 27's
//! `make bench-org`: 103 GetItem a cell before). An index that cannot be
//! read falls back to reading every journal, as before: a Region removed
//! by remediation is never hidden by it (docs/remediation.md).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use crate::aws::RemediationJournal;
use crate::engine::JOURNAL_READ;
use crate::engine::inspect::Budget;

type Index = Option<BTreeSet<String>>;
/// Each (account, Region)'s index, read once by whichever audit asks first.
type Reads = HashMap<(String, String), Arc<OnceCell<Index>>>;

/// One sweep's reads of the journal's index, by (account, Region).
pub(crate) struct JournalIndex<'a, C> {
    clients: &'a C,
    /// The state table's Region; `None`: no state table, no journal.
    table_region: Option<&'a str>,
    read: Mutex<Reads>,
}

impl<'a, C: RemediationJournal> JournalIndex<'a, C> {
    pub(crate) fn new(clients: &'a C, table_region: Option<&'a str>) -> Self {
        JournalIndex {
            clients,
            table_region,
            read: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the journal of the primary `arn` must be read: yes without
    /// an index (none kept, or it could not be read), else when the index
    /// lists it.
    pub(crate) async fn may_hold(&self, arn: &str, budget: &Budget) -> bool {
        let (Some(region), Some(at)) = (self.table_region, crate::arn::parse_secret_arn(arn))
        else {
            return true;
        };
        let cell = self
            .read
            .lock()
            .expect("the index map is never poisoned")
            .entry((at.account.clone(), at.region.clone()))
            .or_default()
            .clone();
        let index = cell
            .get_or_init(|| async {
                budget
                    .run(
                        JOURNAL_READ,
                        region,
                        self.clients.journaled(&at.account, &at.region),
                    )
                    .await
                    .ok()
                    .flatten()
            })
            .await;
        index.as_ref().is_none_or(|arns| arns.contains(arn))
    }
}
