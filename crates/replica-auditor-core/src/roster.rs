//! The organisation's ACTIVE accounts as the auditor last listed them,
//! shared by every instance through the state table (docs/security.md,
//! "The organisation's accounts"): one instance lists with ListAccounts,
//! the others read its listing, so an organisation of 10,000 accounts is
//! listed once per [`REFRESH_SECONDS`], not once per instance. No I/O:
//! `aws::OrgRoster` sends these updates to DynamoDB.
//!
//! Items (partition key `pk`):
//!
//! | item | written | holds |
//! | --- | --- | --- |
//! | `org-accounts` (the head) | the claim to list; the listing's publication | the current listing (`generation`, `listed_at`, `pages`, `accounts`), the claim (`refresher`, `refreshing_until`) |
//! | `org-accounts#<generation>#<p>` | once per listing, before its head | [`ACCOUNTS_PER_PAGE`] account ids, sorted; expire a day on |
//!
//! Only one instance lists at a time: it claims the head (a conditional
//! update, granted when nobody's claim runs), lists, writes the pages of
//! its listing, then points the head at them, on the condition that the
//! claim is still its own. A reader reads the head, then the pages it
//! names: they were all written before the head named them.

use crate::book::{Attr, Cond, Item, ItemUpdate, number, strings, text};

pub use crate::book::ACCOUNTS_PER_PAGE;

/// The head's key.
pub const HEAD_KEY: &str = "org-accounts";

/// How long a listing is used before it is listed again: Organizations'
/// rates are low and shared by the whole organisation.
pub const REFRESH_SECONDS: u64 = 15 * 60;

/// An account missing from the listing is looked for again, but no sooner
/// than this after the listing: an account that joined gets in within a
/// minute (or one listing's time), and events naming accounts outside the
/// organisation cannot make the auditor list more than once a minute.
pub const RECHECK_SECONDS: u64 = 60;

/// The longest a claim to list runs: Lambda's longest invocation. A claim
/// ends with its invocation's deadline, so an instance that dies listing
/// holds nobody up for longer.
pub const CLAIM_MAX_SECONDS: u64 = 15 * 60;

/// The oldest listing used while another instance lists again; an older
/// one is listed by the instance itself (the refresher has died, or the
/// state table holds no listing).
pub const STALE_LIMIT_SECONDS: u64 = REFRESH_SECONDS + CLAIM_MAX_SECONDS;

/// How long a listing's pages stay after it (the table's TTL): readers of
/// an older head still find them.
pub const PAGES_KEPT_SECONDS: u64 = 24 * 3600;

/// Whether to list again before judging an account: never listed, listed
/// [`REFRESH_SECONDS`] ago, or the account is missing and the listing is
/// at least [`RECHECK_SECONDS`] old. `age` in seconds.
pub fn should_list(age: Option<u64>, listed_there: bool) -> bool {
    match age {
        None => true,
        Some(age) if age >= REFRESH_SECONDS => true,
        Some(age) => !listed_there && age >= RECHECK_SECONDS,
    }
}

/// The period of the template's `AccountListRefresh` schedule: the listing
/// is made ahead of time, so that events find it fresh and list nothing
/// themselves (docs/organisations.md, "Listed ahead of time").
pub const AHEAD_PERIOD_SECONDS: u64 = 10 * 60;

/// The longest listing the schedule is sized for: 10,000 accounts at the
/// default ORG_LIST_ACCOUNTS_PER_SECOND (4) take 125 s, plus publishing.
pub const LISTING_ALLOWANCE_SECONDS: u64 = 3 * 60;

/// Whether a scheduled refresh lists now: unless the shared listing (`age`
/// seconds old) will still be fresh when the next refresh's listing lands,
/// one period and one listing's time on. A refresh skipped at age
/// `REFRESH_SECONDS - AHEAD_PERIOD_SECONDS - LISTING_ALLOWANCE_SECONDS`
/// (2 minutes) or younger still leaves no listing due in between.
pub fn refresh_ahead(age: Option<u64>) -> bool {
    age.is_none_or(|age| age + AHEAD_PERIOD_SECONDS + LISTING_ALLOWANCE_SECONDS >= REFRESH_SECONDS)
}

/// A listing's page key.
pub fn page_key(generation: &str, page: u32) -> String {
    format!("{HEAD_KEY}#{generation}#{page}")
}

/// One published listing, as its head names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The refresher's claim id: the pages' keys.
    pub generation: String,
    /// Epoch seconds.
    pub listed_at: u64,
    pub pages: u32,
    pub accounts: u64,
}

/// The head as it reads back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RosterHead {
    /// The current listing; `None` before the first is published.
    pub listing: Option<Listing>,
    pub refresher: Option<String>,
    pub refreshing_until: Option<u64>,
}

impl RosterHead {
    pub fn from_item(item: &Item) -> RosterHead {
        let listing = match (
            text(item, "generation"),
            number(item, "listed_at"),
            number(item, "pages"),
        ) {
            (Some(generation), Some(listed_at), Some(pages)) => Some(Listing {
                generation,
                listed_at,
                pages: pages as u32,
                accounts: number(item, "accounts").unwrap_or(0),
            }),
            _ => None,
        };
        RosterHead {
            listing,
            refresher: text(item, "refresher"),
            refreshing_until: number(item, "refreshing_until"),
        }
    }

    /// Whether this head holds `owner`'s claim, running `until`: an update
    /// that came back refused was an SDK retry of the claim itself.
    pub fn claimed_by(&self, owner: &str, until: u64) -> bool {
        self.refresher.as_deref() == Some(owner) && self.refreshing_until == Some(until)
    }
}

/// Claim the right to list: granted when nobody's claim runs at `now`
/// (epoch seconds); it runs `until`.
pub fn claim(owner: &str, until: u64, now: u64) -> ItemUpdate {
    ItemUpdate::new(HEAD_KEY.into())
        .when(Cond::AbsentOrBelow("refreshing_until".into(), now))
        .set("kind", Attr::S("org-accounts".into()))
        .set("refresher", Attr::S(owner.into()))
        .set("refreshing_until", Attr::N(until))
}

/// The pages of `owner`'s listing (sorted accounts), unconditional: a
/// retried write writes the same.
pub fn pages(owner: &str, accounts: &[String], listed_at: u64) -> Vec<ItemUpdate> {
    accounts
        .chunks(ACCOUNTS_PER_PAGE)
        .enumerate()
        .map(|(p, chunk)| {
            ItemUpdate::new(page_key(owner, p as u32))
                .set("kind", Attr::S("org-accounts-page".into()))
                .set("accounts", Attr::L(chunk.to_vec()))
                .set("expires_at", Attr::N(listed_at + PAGES_KEPT_SECONDS))
        })
        .collect()
}

/// Point the head at `owner`'s listing and end the claim, only while the
/// claim is `owner`'s (a retry of this write applies the same again).
pub fn publish(owner: &str, accounts: usize, listed_at: u64) -> ItemUpdate {
    ItemUpdate::new(HEAD_KEY.into())
        .when(Cond::Is("refresher".into(), Attr::S(owner.into())))
        .set("generation", Attr::S(owner.into()))
        .set("listed_at", Attr::N(listed_at))
        .set(
            "pages",
            Attr::N(accounts.div_ceil(ACCOUNTS_PER_PAGE) as u64),
        )
        .set("accounts", Attr::N(accounts as u64))
        .set("refreshing_until", Attr::N(0))
}

/// End `owner`'s claim without a listing (it failed).
pub fn release(owner: &str) -> ItemUpdate {
    ItemUpdate::new(HEAD_KEY.into())
        .when(Cond::Is("refresher".into(), Attr::S(owner.into())))
        .set("refreshing_until", Attr::N(0))
}

/// The accounts of a page item; `None` when there is none.
pub fn page_accounts(item: Option<&Item>) -> Option<Vec<String>> {
    item.map(|i| strings(i, "accounts"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::{Applied, apply, item_bytes};

    fn done(a: Applied) -> Item {
        match a {
            Applied::Done(i) => i,
            Applied::Refused(_) => panic!("refused"),
        }
    }

    #[test]
    fn the_list_is_refreshed_rarely_and_rechecked_for_a_missing_account() {
        assert!(should_list(None, false), "never listed");
        assert!(!should_list(Some(5), true));
        assert!(!should_list(Some(5), false), "a miss within a minute");
        assert!(should_list(Some(60), false), "a miss a minute on");
        assert!(!should_list(Some(14 * 60), true));
        assert!(should_list(Some(15 * 60), true), "refreshed");
    }

    #[test]
    fn the_scheduled_refresh_keeps_the_listing_from_falling_due() {
        assert!(refresh_ahead(None), "nothing listed yet");
        assert!(!refresh_ahead(Some(30)), "listed half a minute ago");
        assert!(!refresh_ahead(Some(119)));
        assert!(refresh_ahead(Some(120)));
        assert!(refresh_ahead(Some(10 * 60)), "the last tick's listing");
        // Ticks a period apart, each listing landing an allowance after
        // its tick: from any listing that a listing made at the first tick
        // can still replace in time, the listing in use never falls due.
        for start_age in 0..REFRESH_SECONDS - LISTING_ALLOWANCE_SECONDS {
            let mut listed_at = -(start_age as i64);
            let mut oldest = 0;
            for tick in 0..12 {
                let now = tick * AHEAD_PERIOD_SECONDS as i64;
                let age = (now - listed_at) as u64;
                if refresh_ahead(Some(age)) {
                    // The old listing serves until the new one lands.
                    let lands = now + LISTING_ALLOWANCE_SECONDS as i64;
                    oldest = oldest.max((lands - listed_at) as u64);
                    listed_at = lands;
                } else {
                    oldest = oldest.max(age);
                }
            }
            assert!(oldest < REFRESH_SECONDS, "from {start_age} s: {oldest} s");
        }
    }

    #[test]
    fn one_claim_runs_at_a_time_and_ends_with_its_deadline_or_its_listing() {
        let now = 1_800_000_000;
        let head = done(apply(None, &claim("a", now + 300, now)));
        // Another instance, while the claim runs: refused, and told whose.
        let Applied::Refused(Some(seen)) = apply(Some(&head), &claim("b", now + 300, now + 10))
        else {
            panic!("a second claim was granted")
        };
        let seen = RosterHead::from_item(&seen);
        assert!(seen.claimed_by("a", now + 300) && !seen.claimed_by("b", now + 300));
        assert_eq!(seen.listing, None, "nothing published yet");
        // The claimer's SDK retry of its own claim: refused, but its own.
        let Applied::Refused(Some(retry)) = apply(Some(&head), &claim("a", now + 300, now)) else {
            panic!("granted twice")
        };
        assert!(RosterHead::from_item(&retry).claimed_by("a", now + 300));
        // Past its deadline, the next instance may claim.
        let taken = done(apply(Some(&head), &claim("b", now + 900, now + 301)));
        // The first claimer, late: its listing is not published.
        assert!(matches!(
            apply(Some(&taken), &publish("a", 10, now + 302)),
            Applied::Refused(_)
        ));
        let published = done(apply(Some(&taken), &publish("b", 401, now + 320)));
        let head = RosterHead::from_item(&published);
        assert_eq!(
            head.listing,
            Some(Listing {
                generation: "b".into(),
                listed_at: now + 320,
                pages: 3,
                accounts: 401
            })
        );
        // Published, the claim has ended: anyone may claim again.
        assert!(matches!(
            apply(Some(&published), &claim("c", now + 400, now + 321)),
            Applied::Done(_)
        ));
        // The publish's retry applies the same again.
        assert_eq!(
            RosterHead::from_item(&done(apply(
                Some(&published),
                &publish("b", 401, now + 320)
            )))
            .listing,
            head.listing
        );
        // A released claim ends at once.
        let released = done(apply(Some(&head_with("d", now + 900)), &release("d")));
        assert!(matches!(
            apply(Some(&released), &claim("e", now + 900, now + 1)),
            Applied::Done(_)
        ));
    }

    fn head_with(owner: &str, until: u64) -> Item {
        done(apply(None, &claim(owner, until, 0)))
    }

    #[test]
    fn ten_thousand_accounts_make_fifty_pages_each_under_4_kb() {
        let accounts: Vec<String> = (0..10_000u64)
            .map(|n| format!("{:012}", 100_000_000_000 + n * 7))
            .collect();
        let pages = pages(
            "0b6f5a44-8c55-4d0a-9d1e-3f3c6d9a1b2c",
            &accounts,
            1_800_000_000,
        );
        assert_eq!(pages.len(), 50);
        let mut read = Vec::new();
        for p in &pages {
            let item = done(apply(None, p));
            assert!(item_bytes(&item) < 4096, "{} B", item_bytes(&item));
            read.extend(page_accounts(Some(&item)).unwrap());
        }
        assert_eq!(read, accounts, "the pages read back in order");
        assert_eq!(
            pages[49].key,
            page_key("0b6f5a44-8c55-4d0a-9d1e-3f3c6d9a1b2c", 49)
        );
    }
}
