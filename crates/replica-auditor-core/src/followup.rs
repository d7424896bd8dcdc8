//! The follow-up chain (issue 25, docs/freshness.md#the-follow-up-chain):
//! after a call that makes a new current version, the auditor looks at the
//! secret again later, from a delayed SQS message, until every replica holds
//! that version or `REPLICA_LAG_SECONDS` have passed. Pure: the steps and
//! their delays, when a chain is done, what a look measured, the message
//! and the chain's item in the state table (written through
//! [`crate::book`]'s conditional updates).
//!
//! The chain item (`followup#<secret ARN>#<version id>`): `step` is the
//! next step a message may run (0: the chain has ended); `version_at` the
//! version's time (epoch seconds); `measured` the replica Regions whose
//! convergence was already measured; `expires_at` its TTL. Only a message
//! of the item's `step` acts, and it moves `step` on with a condition on
//! it: a redelivered or duplicate message finds the chain past its step and
//! does nothing.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::book::{Attr, Cond, Item, ItemUpdate};
use crate::model::{Lookup, Snapshot};

/// The schema of a follow-up message.
pub const SCHEMA: &str = "replica-auditor.followup/v1";
/// SQS's largest per-message DelaySeconds.
pub const MAX_DELAY_SECONDS: u32 = 900;
/// The back-off: the delay before step 1, step 2, and every later step.
pub const DELAYS: [u32; 3] = [30, 120, 300];
/// How long a chain item outlives its limit before TTL may delete it.
const KEEP_SECONDS: u64 = 86_400;
/// A message body's bound (an ARN of 2,048 and a version id of 64 fit).
const MAX_BODY_BYTES: usize = 4_096;

/// The state table key of the chain following `version` of `secret_arn`.
pub fn key(secret_arn: &str, version: &str) -> String {
    format!("followup#{secret_arn}#{version}")
}

/// The delay before step `step` (1 is the first follow-up).
pub fn delay_before(step: u32) -> u32 {
    let i = (step.max(1) - 1).min(DELAYS.len() as u32 - 1);
    DELAYS[i as usize]
}

/// The most steps a chain takes for a limit of `lag` seconds, with room
/// for a version time that moves: it ends there whatever it sees.
pub fn max_steps(lag: u64) -> u32 {
    (lag / u64::from(DELAYS[2])) as u32 + DELAYS.len() as u32 + 2
}

/// What one audit saw of a primary's current version and its replicas.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub secret_arn: String,
    /// The version labelled AWSCURRENT in the primary.
    pub version: String,
    /// The version's time: the primary's LastChangedDate (the freshness
    /// rule's), else the look's own time.
    pub version_at: i64,
    /// When the look was made (epoch seconds).
    pub observed_at: i64,
    /// Each replica Region, and whether it holds `version` as AWSCURRENT.
    pub replicas: Vec<(String, bool)>,
}

impl Seen {
    /// What `s` says, when it found a primary with a current version and
    /// has a clock; a replica not seen (missing, or its check failed)
    /// does not hold the version.
    pub fn from_snapshot(s: &Snapshot) -> Option<Seen> {
        let Lookup::Found(p) = &s.primary else {
            return None;
        };
        let version = p.current_version()?;
        let observed_at = s.observed_at?;
        let replicas = s
            .replicas
            .iter()
            .map(|r| {
                let held =
                    matches!(&r.presence, Lookup::Found(c) if c.current_version() == Some(version));
                (r.status.region.clone(), held)
            })
            .collect();
        Some(Seen {
            secret_arn: p.arn.clone(),
            version: version.to_string(),
            version_at: p.last_changed.unwrap_or(observed_at),
            observed_at,
            replicas,
        })
    }

    /// Every replica holds the version.
    pub fn converged(&self) -> bool {
        self.replicas.iter().all(|(_, held)| *held)
    }

    /// The Regions holding the version, not in `measured`, with the
    /// seconds from `version_at` to this look.
    fn newly_converged(&self, version_at: i64, measured: &BTreeSet<String>) -> Vec<Converged> {
        self.replicas
            .iter()
            .filter(|(region, held)| *held && !measured.contains(region))
            .map(|(region, _)| Converged {
                region: region.clone(),
                seconds: self.observed_at.saturating_sub(version_at).max(0) as u64,
            })
            .collect()
    }
}

/// One replica seen holding the version for the first time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converged {
    pub region: String,
    /// From the version's time to the look that saw it: its resolution is
    /// the chain's step.
    pub seconds: u64,
}

/// The message of one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    pub schema: String,
    /// The primary's full ARN.
    pub secret: String,
    pub version: String,
    pub step: u32,
}

impl Message {
    pub fn new(secret: &str, version: &str, step: u32) -> Message {
        Message {
            schema: SCHEMA.into(),
            secret: secret.into(),
            version: version.into(),
            step,
        }
    }

    pub fn body(&self) -> String {
        serde_json::to_string(self).expect("a follow-up message always serialises")
    }

    /// Read a body: what is wrong with it, else the message.
    pub fn parse(body: &str) -> Result<Message, String> {
        if body.len() > MAX_BODY_BYTES {
            return Err(format!("{} bytes; at most {MAX_BODY_BYTES}", body.len()));
        }
        let m: Message = serde_json::from_str(body).map_err(|e| e.to_string())?;
        if m.schema != SCHEMA {
            return Err(format!("schema {:?} is not {SCHEMA:?}", m.schema));
        }
        if crate::arn::parse_secret_arn(&m.secret).is_none() {
            return Err(format!("secret {:?} is not a secret ARN", m.secret));
        }
        let id_ok = |v: &str| {
            (1..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if !id_ok(&m.version) {
            return Err(format!("version {:?} is not a version id", m.version));
        }
        if m.step == 0 {
            return Err("step 0: steps start at 1".into());
        }
        Ok(m)
    }

    pub fn key(&self) -> String {
        key(&self.secret, &self.version)
    }
}

/// Where a chain stands, as its item says.
#[derive(Debug, Clone, PartialEq)]
pub struct Chain {
    /// The next step a message may run; 0: ended.
    pub step: u32,
    pub version_at: i64,
    pub measured: BTreeSet<String>,
}

impl Chain {
    /// The chain an item holds (`None`: not a chain item).
    pub fn from_item(item: &Item) -> Option<Chain> {
        let Some(Attr::N(step)) = item.get("step") else {
            return None;
        };
        let Some(Attr::N(version_at)) = item.get("version_at") else {
            return None;
        };
        let measured = match item.get("measured") {
            Some(Attr::Ss(set)) => set.clone(),
            _ => BTreeSet::new(),
        };
        Some(Chain {
            step: u32::try_from(*step).ok()?,
            version_at: *version_at as i64,
            measured,
        })
    }
}

/// How a chain starts from the first look (the event's audit).
#[derive(Debug, Clone, PartialEq)]
pub struct Start {
    /// The conditional write: only when there is no chain yet.
    pub write: ItemUpdate,
    /// The first step's message and its delay; `None` when every replica
    /// holds the version already (the chain is born ended).
    pub first: Option<(Message, u32)>,
    /// The replicas converged at the first look.
    pub converged: Vec<Converged>,
}

/// The chain for what `seen` saw, with the limit `lag`: `None` when there
/// is nothing to follow (no replica).
pub fn start(seen: &Seen, lag: u64) -> Option<Start> {
    if seen.replicas.is_empty() {
        return None;
    }
    let converged = seen.newly_converged(seen.version_at, &BTreeSet::new());
    let step = if seen.converged() { 0 } else { 1 };
    let expires_at = (seen.version_at.max(0) as u64) + lag + KEEP_SECONDS;
    let mut write = ItemUpdate {
        key: key(&seen.secret_arn, &seen.version),
        set: vec![
            ("kind".into(), Attr::S("followup".into())),
            ("step".into(), Attr::N(step)),
            ("version_at".into(), Attr::N(seen.version_at.max(0) as u64)),
            ("expires_at".into(), Attr::N(expires_at)),
        ],
        conditions: vec![Cond::Absent],
        ..ItemUpdate::default()
    };
    if !converged.is_empty() {
        let regions = converged.iter().map(|c| c.region.clone()).collect();
        write.add.push(("measured".into(), Attr::Ss(regions)));
    }
    let first = (step == 1).then(|| {
        let delay = delay_before(1).min(remaining(seen, lag));
        (Message::new(&seen.secret_arn, &seen.version, 1), delay)
    });
    Some(Start {
        write,
        first,
        converged,
    })
}

/// Seconds until a look would be past the limit (at least 1, at most SQS's).
fn remaining(seen: &Seen, lag: u64) -> u32 {
    let due = seen.version_at + lag as i64 + 1 - seen.observed_at;
    due.clamp(1, i64::from(MAX_DELAY_SECONDS)) as u32
}

/// Where a look leaves the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Look again: this step, after this many seconds.
    Step { step: u32, delay: u32 },
    /// Every replica holds the version.
    Converged,
    /// Past `REPLICA_LAG_SECONDS` (the audit's REPLICA_STALE reports the
    /// replicas behind), or out of steps.
    AtLimit,
    /// The primary's current version is another one now (its own chain
    /// follows it), or the primary is gone.
    Superseded,
}

/// What one step's look came to.
#[derive(Debug, Clone, PartialEq)]
pub struct Look {
    pub converged: Vec<Converged>,
    pub next: Next,
}

impl Look {
    /// The conditional write that moves the chain from `m`'s step on.
    pub fn advance(&self, m: &Message) -> ItemUpdate {
        let to = match self.next {
            Next::Step { step, .. } => step,
            _ => 0,
        };
        moved(&m.key(), m.step, to, &self.converged, false)
    }

    /// The write that undoes [`Look::advance`] when what should follow it
    /// (the next message, the report) could not be done: the message's
    /// redelivery then runs the step again.
    pub fn undo(&self, m: &Message) -> ItemUpdate {
        let to = match self.next {
            Next::Step { step, .. } => step,
            _ => 0,
        };
        moved(&m.key(), to, m.step, &self.converged, true)
    }
}

fn moved(key: &str, from: u32, to: u32, converged: &[Converged], undo: bool) -> ItemUpdate {
    let mut u = ItemUpdate {
        key: key.to_string(),
        set: vec![("step".into(), Attr::N(u64::from(to)))],
        conditions: vec![Cond::Is("step".into(), Attr::N(u64::from(from)))],
        ..ItemUpdate::default()
    };
    if !converged.is_empty() {
        let regions = Attr::Ss(converged.iter().map(|c| c.region.clone()).collect());
        match undo {
            false => u.add.push(("measured".into(), regions)),
            true => u.delete.push(("measured".into(), regions)),
        }
    }
    u
}

/// Step `m.step` of `chain` saw `seen` (`None`: no primary with a current
/// version): what converged since, and what follows, for the limit `lag`.
/// The limit is the freshness rule's: the version's age by the primary's
/// LastChangedDate, so the look that ends a chain at its limit is the one
/// whose audit reports REPLICA_STALE.
pub fn look(seen: Option<&Seen>, m: &Message, chain: &Chain, lag: u64) -> Look {
    let Some(seen) = seen.filter(|s| s.version == m.version) else {
        return Look {
            converged: Vec::new(),
            next: Next::Superseded,
        };
    };
    let converged = seen.newly_converged(chain.version_at, &chain.measured);
    let next = if seen.converged() {
        Next::Converged
    } else if seen.observed_at - seen.version_at > lag as i64 || m.step >= max_steps(lag) {
        Next::AtLimit
    } else {
        let step = m.step + 1;
        Next::Step {
            step,
            delay: delay_before(step).min(remaining(seen, lag)),
        }
    };
    Look { converged, next }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::{Applied, apply};

    const ARN: &str = "arn:aws:secretsmanager:us-west-2:111122223333:secret:db-AbCdEf";
    const T0: i64 = 1_800_000_000;

    fn seen(at: i64, held: &[(&str, bool)]) -> Seen {
        Seen {
            secret_arn: ARN.into(),
            version: "v-new".into(),
            version_at: T0,
            observed_at: T0 + at,
            replicas: held.iter().map(|(r, h)| (r.to_string(), *h)).collect(),
        }
    }

    fn chain_after(start: &Start) -> Chain {
        let Applied::Done(item) = apply(None, &start.write) else {
            panic!("a new chain is written");
        };
        Chain::from_item(&item).unwrap()
    }

    #[test]
    fn the_back_off_is_30_s_2_min_then_every_5_min() {
        let delays: Vec<u32> = (1..=5).map(delay_before).collect();
        assert_eq!(delays, vec![30, 120, 300, 300, 300]);
        assert!(max_steps(900) >= 5, "30 + 120 + 300 + 300 + 300 > 900");
    }

    #[test]
    fn a_chain_starts_once_and_its_first_step_is_30_s_on() {
        let s = start(&seen(2, &[("eu-west-1", true), ("us-east-1", false)]), 900).unwrap();
        assert_eq!(
            s.first,
            Some((Message::new(ARN, "v-new", 1), 30)),
            "one replica still behind"
        );
        assert_eq!(
            s.converged,
            vec![Converged {
                region: "eu-west-1".into(),
                seconds: 2
            }]
        );
        let Applied::Done(item) = apply(None, &s.write) else {
            panic!()
        };
        assert!(matches!(apply(Some(&item), &s.write), Applied::Refused(_)));
        let none = start(&seen(2, &[]), 900);
        assert_eq!(none, None, "no replica: nothing to follow");
        let done = start(&seen(2, &[("eu-west-1", true)]), 900).unwrap();
        assert_eq!(done.first, None, "converged at the first look");
        assert_eq!(chain_after(&done).step, 0);
    }

    #[test]
    fn a_step_runs_once_and_measures_each_replica_once() {
        let s = start(&seen(2, &[("eu-west-1", true), ("us-east-1", false)]), 900).unwrap();
        let Applied::Done(item) = apply(None, &s.write) else {
            panic!()
        };
        let m = Message::new(ARN, "v-new", 1);
        let l = look(
            Some(&seen(40, &[("eu-west-1", true), ("us-east-1", false)])),
            &m,
            &Chain::from_item(&item).unwrap(),
            900,
        );
        assert_eq!(l.converged, vec![], "eu-west-1 was measured at the start");
        assert_eq!(
            l.next,
            Next::Step {
                step: 2,
                delay: 120
            }
        );
        let Applied::Done(item) = apply(Some(&item), &l.advance(&m)) else {
            panic!()
        };
        assert!(
            matches!(apply(Some(&item), &l.advance(&m)), Applied::Refused(_)),
            "the redelivered step 1 finds the chain past it"
        );
        let m2 = Message::new(ARN, "v-new", 2);
        let l2 = look(
            Some(&seen(170, &[("eu-west-1", true), ("us-east-1", true)])),
            &m2,
            &Chain::from_item(&item).unwrap(),
            900,
        );
        assert_eq!(l2.next, Next::Converged);
        assert_eq!(
            l2.converged,
            vec![Converged {
                region: "us-east-1".into(),
                seconds: 170
            }]
        );
        let Applied::Done(after) = apply(Some(&item), &l2.advance(&m2)) else {
            panic!()
        };
        let c = Chain::from_item(&after).unwrap();
        assert_eq!(c.step, 0);
        assert_eq!(c.measured.len(), 2);
        let Applied::Done(back) = apply(Some(&after), &l2.undo(&m2)) else {
            panic!()
        };
        assert_eq!(Chain::from_item(&back), Chain::from_item(&item));
    }

    #[test]
    fn the_last_look_lands_past_the_limit_and_ends_there() {
        let chain = Chain {
            step: 4,
            version_at: T0,
            measured: BTreeSet::new(),
        };
        let behind = [("us-east-1", false)];
        let l = look(
            Some(&seen(750, &behind)),
            &Message::new(ARN, "v-new", 4),
            &chain,
            900,
        );
        assert_eq!(
            l.next,
            Next::Step {
                step: 5,
                delay: 151
            },
            "due at 901 s, not 1050"
        );
        let l = look(
            Some(&seen(901, &behind)),
            &Message::new(ARN, "v-new", 5),
            &chain,
            900,
        );
        assert_eq!(l.next, Next::AtLimit);
    }

    #[test]
    fn another_current_version_supersedes_the_chain() {
        let chain = Chain {
            step: 1,
            version_at: T0,
            measured: BTreeSet::new(),
        };
        let m = Message::new(ARN, "v-older", 1);
        let l = look(Some(&seen(30, &[("us-east-1", true)])), &m, &chain, 900);
        assert_eq!(l.next, Next::Superseded);
        assert_eq!(look(None, &m, &chain, 900).next, Next::Superseded);
    }

    #[test]
    fn messages_round_trip_and_bad_ones_are_named() {
        let m = Message::new(ARN, "v-new", 3);
        assert_eq!(Message::parse(&m.body()), Ok(m));
        for bad in [
            "not json",
            r#"{"schema":"x","secret":"a","version":"v","step":1}"#,
            &Message::new("db", "v", 1).body(),
            &Message::new(ARN, "v\u{1}", 1).body(),
            &Message::new(ARN, "v", 0).body(),
        ] {
            assert!(Message::parse(bad).is_err(), "{bad}");
        }
    }
}
