//! The settings table against the parser it drives: every default parses
//! and is what an unset variable gives, every range is enforced, the
//! STATE_TABLE rule holds for each setting that needs the table, and the
//! table renders as docs/configuration.md's rows.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::config::{Config, REQUIREMENTS};

const TOPIC: &str = "arn:aws:sns:us-east-1:111122223333:replica-findings";

/// The configuration with these variables over a valid base (a topic and a state table).
fn load(extra: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let mut map: BTreeMap<&str, &str> = [
        ("FINDINGS_TOPIC_ARN", TOPIC),
        ("STATE_TABLE", "replica-auditor-state"),
    ]
    .into();
    map.extend(extra.iter().copied());
    Config::from_lookup(|k| map.get(k).map(|v| v.to_string()))
}

/// A value no text setting accepts (a space is in no ARN, name, URL or id).
const NOT_VALID: &str = "not valid";

#[test]
fn every_default_parses_and_is_what_unset_gives() {
    let unset = load(&[]).unwrap();
    let mut checked = 0;
    for s in SETTINGS {
        // The default as docs/configuration.md writes it: its leading `value`.
        let written = s.default_value().or(match s.unset {
            Unset::Derived(text) => text
                .strip_prefix('`')
                .and_then(|t| t.split('`').next())
                .map(str::to_string),
            _ => None,
        });
        let Some(d) = written else { continue };
        if s.var == "STATE_TABLE" {
            continue;
        }
        assert_eq!(
            load(&[(s.var, &d)]),
            Ok(unset.clone()),
            "{}={d} is the default",
            s.var
        );
        checked += 1;
    }
    assert!(checked >= 13, "{checked} defaults checked");
}

#[test]
fn every_entry_refuses_what_is_outside_its_range() {
    for s in SETTINGS {
        let refused = |value: &str| match load(&[(s.var, value)]) {
            Err(ConfigError::Invalid { var, .. }) => assert_eq!(var, s.var, "{value}"),
            other => panic!("{}={value}: {other:?}", s.var),
        };
        match s.parse {
            Parse::Number { min, max, .. } => {
                for ok in [min, max] {
                    load(&[(s.var, &ok.to_string())]).unwrap_or_else(|e| panic!("{e}"));
                }
                if min > 0 {
                    refused(&(min - 1).to_string());
                }
                refused(&(max + 1).to_string());
                refused("x");
            }
            Parse::Switch { .. } | Parse::OneOf { .. } => refused("bogus"),
            Parse::List { .. } | Parse::Text { .. } => refused(NOT_VALID),
        }
    }
}

#[test]
fn every_switch_speaks_one_vocabulary() {
    let switches: Vec<&Setting> = SETTINGS
        .iter()
        .filter(|s| matches!(s.parse, Parse::Switch { .. }))
        .collect();
    let names: BTreeSet<&str> = switches.iter().map(|s| s.var).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "REQUIRE_CUSTOMER_MANAGED_KEY",
            "ALLOW_FORCE_OVERWRITE",
            "SECURITY_HUB",
            "METRICS"
        ])
    );
    for s in switches {
        for (on, off) in [("on", "off"), ("TRUE", "False"), (" true ", " OFF ")] {
            assert_ne!(
                load(&[(s.var, on)]).unwrap(),
                load(&[(s.var, off)]).unwrap(),
                "{}",
                s.var
            );
        }
        for same in [["on", "true"], ["off", "false"]] {
            assert_eq!(
                load(&[(s.var, same[0])]),
                load(&[(s.var, same[1])]),
                "{}",
                s.var
            );
        }
    }
    // The message keeps each setting's documented spelling.
    let e = load(&[("METRICS", "yes")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "configuration error in METRICS: \"yes\" is not on or off"
    );
    let e = load(&[("ALLOW_FORCE_OVERWRITE", "yes")]).unwrap_err();
    assert_eq!(e.message(), "\"yes\" is not true or false");
}

#[test]
fn each_setting_that_needs_the_state_table_says_so() {
    let triggers: BTreeMap<&str, (&str, &str)> = [
        ("REMEDIATION", ("REMEDIATION", "on")),
        ("SECURITY_HUB", ("SECURITY_HUB", "on")),
        (
            "SWEEP_QUEUE_URL",
            (
                "SWEEP_QUEUE_URL",
                "https://sqs.eu-west-1.amazonaws.com/111122223333/sweep",
            ),
        ),
        (
            "FOLLOW_UP_QUEUE_URL",
            (
                "FOLLOW_UP_QUEUE_URL",
                "https://sqs.eu-west-1.amazonaws.com/111122223333/follow-up",
            ),
        ),
    ]
    .into();
    assert_eq!(REQUIREMENTS.len(), triggers.len());
    for r in &REQUIREMENTS {
        let (var, value) = triggers[r.by];
        let without = |vars: &[(&str, &str)]| {
            let map: BTreeMap<&str, &str> = vars.iter().copied().collect();
            Config::from_lookup(|k| map.get(k).map(|v| v.to_string()))
        };
        let off = [
            ("FINDINGS_TOPIC_ARN", TOPIC),
            ("REMEDIATION", "off"),
            (var, value),
        ];
        assert_eq!(
            without(&off),
            Err(ConfigError::Requires {
                var: "STATE_TABLE",
                because: r
            }),
            "{}",
            r.by
        );
        load(&[(var, value)]).unwrap_or_else(|e| panic!("{}: {e}", r.by));
    }
    let e = load(&[("STATE_TABLE", ""), ("REMEDIATION", "on")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "configuration error in STATE_TABLE: is required when REMEDIATION is on (the DynamoDB table that holds the remediation leases, so that one retry per secret and Region runs at a time); set it, or set REMEDIATION to dry-run or off"
    );
}

#[test]
fn lists_share_one_validator_per_kind() {
    for (var, good, bad, expected) in [
        ("ALLOWED_REGIONS", "us-east-1", "Mars", REGION.expected),
        ("SWEEP_REGIONS", "eu-west-1", "Mars", REGION.expected),
        (
            "TRUSTED_ACCOUNT_IDS",
            "111122223333",
            "1111",
            ACCOUNT_ID.expected,
        ),
        ("ACCOUNT_IDS", "111122223333", "1111", ACCOUNT_ID.expected),
        ("TRUSTED_ORG_IDS", "o-a1b2c3d4e5", "o-abc", ORG_ID.expected),
    ] {
        load(&[(var, good)]).unwrap();
        assert_eq!(
            load(&[(var, &format!("{good}, {bad}"))]),
            Err(ConfigError::Invalid {
                var,
                value: bad.into(),
                expected: expected.into()
            })
        );
    }
}

#[test]
fn the_table_is_well_formed() {
    let mut vars = BTreeSet::new();
    let mut longs = BTreeSet::new();
    for s in SETTINGS {
        assert!(vars.insert(s.var), "{} twice", s.var);
        let row = s.markdown_row();
        // A `|` in a cell would split it (tests/docs.rs reads the cells).
        assert_eq!(row.matches('|').count(), 7, "{row}");
        if let Parameter::None(why) = s.parameter {
            assert!(!why.is_empty(), "{}: say why there is no parameter", s.var);
        }
        if let Flag::Choice { switches, .. } = s.flag {
            for c in switches {
                assert!(longs.insert(c.long), "--{} twice", c.long);
            }
        } else if let Some(long) = s.flag.long() {
            assert!(longs.insert(long), "--{long} twice");
        }
        if let Unset::Number(n) = s.unset {
            assert!(
                matches!(s.parse, Parse::Number { min, max, .. } if (min..=max).contains(&n)),
                "{}",
                s.var
            );
        }
    }
    assert_eq!(
        setting("SWEEP_CONCURRENCY").unwrap().markdown_row(),
        "| `SWEEP_CONCURRENCY` | `SweepConcurrency` | `--concurrency` | `64` | 1 to 256 | the most secrets a sweep audits at once; within it, the observed latency decides ([sweep](sweep.md#sweep-concurrency)) |"
    );
}
