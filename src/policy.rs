//! KMS key policy analysis. A key policy is written by whoever holds
//! kms:PutKeyPolicy, so it is treated as hostile input: every legal shape
//! is accepted, anything else is a typed error, nothing panics.
//!
//! The question asked of a policy: who outside the secret's own account and
//! the trusted accounts can be allowed to use this key?
//! - an Allow for principal `*` (bare, `{"AWS": "*"}`, or NotPrincipal)
//!   whose conditions do not pin the caller's account or organisation is
//!   **public**;
//! - an Allow for a principal in another account, or pinned by condition to
//!   another account, is an **untrusted account** unless that account is
//!   trusted;
//! - a Deny that covers the same actions for the same callers (no
//!   condition, or a `StringNotEquals`-style condition on the caller's
//!   account or organisation) overrides the Allow.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// KMS's own limit on a key policy document.
pub const MAX_POLICY_BYTES: usize = 32 * 1024;

/// Condition keys that identify the calling account or organisation.
const ACCOUNT_KEYS: [&str; 3] = [
    "aws:principalaccount",
    "kms:calleraccount",
    "aws:sourceaccount",
];
const ORG_KEYS: [&str; 2] = ["aws:principalorgid", "aws:principalorgpaths"];
const ARN_KEYS: [&str; 2] = ["aws:principalarn", "aws:sourcearn"];

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PolicyError {
    #[error("key policy is {0} bytes; KMS allows at most {MAX_POLICY_BYTES}")]
    TooLarge(usize),
    #[error("key policy is not valid JSON: {0}")]
    NotJson(String),
    #[error("key policy has an invalid shape: {0}")]
    Shape(String),
}

/// What is wrong with a key policy.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum PolicyIssue {
    /// Anyone can be allowed to use the key.
    Public { sid: Option<String> },
    /// A principal in this account can be allowed to use the key.
    UntrustedAccount {
        sid: Option<String>,
        account: String,
    },
}

/// Whose accounts count as ours.
#[derive(Debug, Clone, Default)]
pub struct Trust<'a> {
    pub own_account: Option<&'a str>,
    pub trusted: &'a [String],
}

impl Trust<'_> {
    fn trusts(&self, account: &str) -> bool {
        self.own_account == Some(account) || self.trusted.iter().any(|t| t == account)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Effect {
    Allow,
    Deny,
}

/// Who a statement applies to.
#[derive(Debug, Clone, PartialEq)]
enum Who {
    /// Every caller (`*`, `{"AWS": "*"}`).
    Anyone,
    /// Every caller except the listed ones (NotPrincipal).
    AnyoneExcept,
    /// Named principals: the accounts their ARNs or ids name. Service and
    /// federated principals without an account add nothing here.
    Accounts(BTreeSet<String>),
}

#[derive(Debug, Clone, PartialEq)]
enum Actions {
    Only(Vec<String>),
    AllBut(Vec<String>),
}

/// What a statement's conditions say about the caller.
#[derive(Debug, Clone, PartialEq, Default)]
struct CallerPin {
    /// `StringEquals`-style: caller must be in one of these accounts.
    accounts: Option<BTreeSet<String>>,
    /// `StringEquals`-style on the organisation: pinned to an organisation.
    org: bool,
    /// `StringNotEquals`-style: callers outside these accounts match.
    outside_accounts: Option<BTreeSet<String>>,
    /// `StringNotEquals`-style on the organisation.
    outside_org: bool,
    /// There is some condition (of any kind).
    any: bool,
}

#[derive(Debug, Clone)]
struct Statement {
    sid: Option<String>,
    effect: Effect,
    who: Who,
    actions: Actions,
    pin: CallerPin,
}

/// Analyse a key policy document.
pub fn analyse(doc: &str, trust: &Trust<'_>) -> Result<Vec<PolicyIssue>, PolicyError> {
    if doc.len() > MAX_POLICY_BYTES {
        return Err(PolicyError::TooLarge(doc.len()));
    }
    let value: Value =
        serde_json::from_str(doc).map_err(|e| PolicyError::NotJson(e.to_string()))?;
    let statements = statements(&value)?;
    let denies: Vec<&Statement> = statements
        .iter()
        .filter(|s| s.effect == Effect::Deny)
        .collect();
    let mut issues = BTreeSet::new();
    for allow in statements.iter().filter(|s| s.effect == Effect::Allow) {
        for issue in allow_issues(allow, trust) {
            if !denies.iter().any(|d| overrides(d, allow, &issue, trust)) {
                issues.insert(issue);
            }
        }
    }
    Ok(issues.into_iter().collect())
}

/// The issues one Allow statement raises, before Deny statements.
fn allow_issues(s: &Statement, trust: &Trust<'_>) -> Vec<PolicyIssue> {
    let sid = || s.sid.clone();
    let untrusted = |accounts: &mut dyn Iterator<Item = &String>| -> Vec<PolicyIssue> {
        accounts
            .filter(|a| !trust.trusts(a))
            .map(|a| PolicyIssue::UntrustedAccount {
                sid: sid(),
                account: a.clone(),
            })
            .collect()
    };
    match (&s.who, &s.pin.accounts) {
        // Open to anyone, but the caller's account is pinned: the pinned
        // accounts are who is allowed.
        (Who::Anyone | Who::AnyoneExcept, Some(pinned)) => untrusted(&mut pinned.iter()),
        (Who::Anyone | Who::AnyoneExcept, None) if s.pin.org => Vec::new(),
        (Who::Anyone | Who::AnyoneExcept, None) => vec![PolicyIssue::Public { sid: sid() }],
        // Named principals, further pinned: only principals in both count.
        (Who::Accounts(named), Some(pinned)) => untrusted(&mut named.intersection(pinned)),
        (Who::Accounts(named), None) => untrusted(&mut named.iter()),
    }
}

/// Does this Deny take away what `issue` says the Allow grants?
fn overrides(deny: &Statement, allow: &Statement, issue: &PolicyIssue, trust: &Trust<'_>) -> bool {
    if !covers(&deny.actions, &allow.actions) {
        return false;
    }
    let denied_account = |account: &str| -> bool {
        match &deny.who {
            Who::Anyone => {}
            Who::Accounts(named) if named.contains(account) => {}
            _ => return false,
        }
        if !deny.pin.any {
            return true;
        }
        match &deny.pin.outside_accounts {
            Some(outside) => !outside.contains(account),
            None => false,
        }
    };
    match issue {
        PolicyIssue::UntrustedAccount { account, .. } => denied_account(account),
        PolicyIssue::Public { .. } => {
            if deny.who != Who::Anyone {
                return false;
            }
            if !deny.pin.any {
                return true;
            }
            // Deny everyone outside our accounts or our organisation.
            deny.pin.outside_org
                || deny
                    .pin
                    .outside_accounts
                    .as_ref()
                    .is_some_and(|o| !o.is_empty() && o.iter().all(|a| trust.trusts(a)))
        }
    }
}

/// Does the Deny's action set include every action the Allow grants?
fn covers(deny: &Actions, allow: &Actions) -> bool {
    match (deny, allow) {
        (Actions::Only(d), Actions::Only(a)) => {
            a.iter().all(|act| d.iter().any(|pat| glob(pat, act)))
        }
        (Actions::Only(d), Actions::AllBut(_)) => d
            .iter()
            .any(|pat| pat == "*" || pat.eq_ignore_ascii_case("kms:*")),
        // Deny all but N covers the Allow when no allowed action is in N.
        // An allowed wildcard (`kms:*`) may reach into N, so it is never
        // taken as covered: the verdict errs towards reporting.
        (Actions::AllBut(n), Actions::Only(a)) => a
            .iter()
            .all(|act| !act.contains(['*', '?']) && !n.iter().any(|pat| glob(pat, act))),
        (Actions::AllBut(_), Actions::AllBut(_)) => false,
    }
}

/// IAM-style wildcard match (`*` any run, `?` one character), case-insensitive.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let t: Vec<char> = text.to_ascii_lowercase().chars().collect();
    let (mut pi, mut ti, mut star, mut mark) = (0usize, 0usize, None, 0usize);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

fn statements(root: &Value) -> Result<Vec<Statement>, PolicyError> {
    let obj = root
        .as_object()
        .ok_or_else(|| PolicyError::Shape("the document is not an object".into()))?;
    let raw = obj
        .get("Statement")
        .ok_or_else(|| PolicyError::Shape("no Statement".into()))?;
    let list: Vec<&Value> = match raw {
        Value::Array(a) => a.iter().collect(),
        Value::Object(_) => vec![raw],
        _ => {
            return Err(PolicyError::Shape(
                "Statement is neither an object nor a list".into(),
            ));
        }
    };
    list.into_iter()
        .enumerate()
        .map(|(i, s)| statement(s).map_err(|e| PolicyError::Shape(format!("Statement[{i}]: {e}"))))
        .collect()
}

fn statement(v: &Value) -> Result<Statement, String> {
    let s = v.as_object().ok_or("not an object")?;
    let sid = match s.get("Sid") {
        None | Some(Value::Null) => None,
        Some(Value::String(x)) => Some(x.clone()),
        Some(_) => return Err("Sid is not a string".into()),
    };
    let effect = match s.get("Effect").and_then(Value::as_str) {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        _ => return Err("Effect must be \"Allow\" or \"Deny\"".into()),
    };
    let who = match (s.get("Principal"), s.get("NotPrincipal")) {
        (Some(p), None) => principal(p)?,
        (None, Some(np)) => {
            principal(np)?;
            Who::AnyoneExcept
        }
        (Some(_), Some(_)) => return Err("both Principal and NotPrincipal".into()),
        (None, None) => return Err("no Principal".into()),
    };
    let actions = match (s.get("Action"), s.get("NotAction")) {
        (Some(a), None) => {
            Actions::Only(strings(a).ok_or("Action is not a string or list of strings")?)
        }
        (None, Some(a)) => {
            Actions::AllBut(strings(a).ok_or("NotAction is not a string or list of strings")?)
        }
        (Some(_), Some(_)) => return Err("both Action and NotAction".into()),
        (None, None) => return Err("no Action".into()),
    };
    for key in ["Resource", "NotResource"] {
        if let Some(r) = s.get(key) {
            strings(r).ok_or_else(|| format!("{key} is not a string or list of strings"))?;
        }
    }
    let pin = match s.get("Condition") {
        None | Some(Value::Null) => CallerPin::default(),
        Some(Value::Object(c)) => caller_pin(c)?,
        Some(_) => return Err("Condition is not an object".into()),
    };
    Ok(Statement {
        sid,
        effect,
        who,
        actions,
        pin,
    })
}

/// Who a Principal names. Besides the grammar's `"*"` and the map of
/// `AWS`/`Service`/`Federated`/`CanonicalUser`, a bare string or list of
/// account ids and ARNs is read as AWS principals: hostile input gets the
/// strictest reasonable reading, not a shrug.
fn principal(p: &Value) -> Result<Who, String> {
    let aws = |ids: &[String]| -> Who {
        if ids.iter().any(|i| i == "*") {
            Who::Anyone
        } else {
            Who::Accounts(ids.iter().filter_map(|i| account_of(i)).collect())
        }
    };
    match p {
        Value::String(_) | Value::Array(_) => {
            let ids = strings(p).ok_or("Principal list holds a non-string")?;
            match aws(&ids) {
                Who::Accounts(a) if a.is_empty() => {
                    Err("Principal names no account and is not \"*\"".into())
                }
                who => Ok(who),
            }
        }
        Value::Object(m) => {
            let mut accounts = BTreeSet::new();
            for (kind, ids) in m {
                let ids = strings(ids)
                    .ok_or_else(|| format!("Principal.{kind} is not a string or list"))?;
                match kind.as_str() {
                    "AWS" => match aws(&ids) {
                        Who::Accounts(a) => accounts.extend(a),
                        anyone => return Ok(anyone),
                    },
                    "Federated" => accounts.extend(ids.iter().filter_map(|i| account_of(i))),
                    "Service" | "CanonicalUser" => {}
                    other => return Err(format!("unknown principal type {other:?}")),
                }
            }
            Ok(Who::Accounts(accounts))
        }
        _ => Err("Principal must be \"*\", an object, or account ids".into()),
    }
}

/// The account an AWS principal names: a bare account id, or the account
/// field of an `arn:PARTITION:iam::ACCOUNT:...`/`sts` ARN.
fn account_of(id: &str) -> Option<String> {
    if crate::event::is_account_id(id) {
        return Some(id.to_string());
    }
    let mut parts = id.splitn(6, ':');
    let (arn, _partition, _service, _region, account) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    (arn == "arn" && crate::event::is_account_id(account)).then(|| account.to_string())
}

fn caller_pin(conditions: &Map<String, Value>) -> Result<CallerPin, String> {
    let mut pin = CallerPin {
        any: !conditions.is_empty(),
        ..Default::default()
    };
    for (operator, block) in conditions {
        let block = block
            .as_object()
            .ok_or_else(|| format!("Condition.{operator} is not an object"))?;
        let op = operator.to_ascii_lowercase();
        // Set operators and IfExists do not pin: ForAllValues matches an
        // empty set, IfExists matches when the key is absent.
        if op.starts_with("forallvalues:") || op.ends_with("ifexists") {
            continue;
        }
        let op = op.strip_prefix("foranyvalue:").unwrap_or(&op);
        let positive = matches!(
            op,
            "stringequals" | "stringequalsignorecase" | "stringlike" | "arnequals" | "arnlike"
        );
        let negative = matches!(
            op,
            "stringnotequals"
                | "stringnotequalsignorecase"
                | "stringnotlike"
                | "arnnotequals"
                | "arnnotlike"
        );
        if !positive && !negative {
            continue;
        }
        for (key, values) in block {
            let key = key.to_ascii_lowercase();
            let values = scalars(values)
                .ok_or_else(|| format!("Condition.{operator}.{key} has an invalid value"))?;
            let accounts: Option<BTreeSet<String>> = if ACCOUNT_KEYS.contains(&key.as_str()) {
                exact_values(&values).map(|v| {
                    v.into_iter()
                        .filter(|a| crate::event::is_account_id(a))
                        .collect()
                })
            } else if ARN_KEYS.contains(&key.as_str()) {
                exact_values(&values).and_then(|v| v.iter().map(|a| account_of(a)).collect())
            } else if ORG_KEYS.contains(&key.as_str()) {
                if exact_values(&values).is_some() {
                    if positive {
                        pin.org = true;
                    } else {
                        pin.outside_org = true;
                    }
                }
                continue;
            } else {
                continue;
            };
            let Some(accounts) = accounts else { continue };
            let slot = if positive {
                &mut pin.accounts
            } else {
                &mut pin.outside_accounts
            };
            *slot = Some(match slot.take() {
                // Two positive pins must both hold: intersect.
                Some(prev) if positive => prev.intersection(&accounts).cloned().collect(),
                Some(prev) => prev.union(&accounts).cloned().collect(),
                None => accounts,
            });
        }
    }
    Ok(pin)
}

/// Values without wildcards; `None` when any value could match more.
fn exact_values(values: &[String]) -> Option<Vec<String>> {
    if values.is_empty()
        || values
            .iter()
            .any(|v| v.contains('*') || v.contains('?') || v.contains("${"))
    {
        None
    } else {
        Some(values.to_vec())
    }
}

fn strings(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(a) => a.iter().map(|x| x.as_str().map(str::to_string)).collect(),
        _ => None,
    }
}

/// Condition values may be strings, numbers or booleans, alone or listed.
fn scalars(v: &Value) -> Option<Vec<String>> {
    let one = |x: &Value| match x {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match v {
        Value::Array(a) => a.iter().map(one).collect(),
        other => one(other).map(|s| vec![s]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const OWN: &str = "111122223333";
    const PARTNER: &str = "444455556666";
    const STRANGER: &str = "999988887777";

    fn verdict(policy: Value) -> Vec<PolicyIssue> {
        let trusted = vec![PARTNER.to_string()];
        analyse(
            &policy.to_string(),
            &Trust {
                own_account: Some(OWN),
                trusted: &trusted,
            },
        )
        .expect("valid policy")
    }

    fn policy(statements: Value) -> Value {
        json!({"Version": "2012-10-17", "Id": "key-policy", "Statement": statements})
    }

    fn root_statement() -> Value {
        json!({"Sid": "Enable IAM User Permissions", "Effect": "Allow",
               "Principal": {"AWS": format!("arn:aws:iam::{OWN}:root")}, "Action": "kms:*", "Resource": "*"})
    }

    fn public(sid: &str) -> PolicyIssue {
        PolicyIssue::Public {
            sid: Some(sid.into()),
        }
    }

    fn untrusted(sid: &str, account: &str) -> PolicyIssue {
        PolicyIssue::UntrustedAccount {
            sid: Some(sid.into()),
            account: account.into(),
        }
    }

    #[test]
    fn default_key_policy_is_clean() {
        assert_eq!(verdict(policy(json!([root_statement()]))), vec![]);
        // A single statement object instead of a list is legal too.
        assert_eq!(verdict(policy(root_statement())), vec![]);
    }

    #[test]
    fn principal_star_in_every_spelling_is_public() {
        for principal in [
            json!("*"),
            json!({"AWS": "*"}),
            json!({"AWS": ["arn:aws:iam::111122223333:root", "*"]}),
            json!(["*"]),
        ] {
            let p = policy(
                json!([{"Sid": "Open", "Effect": "Allow", "Principal": principal, "Action": ["kms:Decrypt"], "Resource": "*"}]),
            );
            assert_eq!(verdict(p), vec![public("Open")]);
        }
    }

    #[test]
    fn not_principal_allow_is_public() {
        let p = policy(
            json!([{"Sid": "AllBut", "Effect": "Allow", "NotPrincipal": {"AWS": format!("arn:aws:iam::{OWN}:root")}, "Action": "kms:Decrypt", "Resource": "*"}]),
        );
        assert_eq!(verdict(p), vec![public("AllBut")]);
    }

    #[test]
    fn conditions_that_pin_the_caller_make_star_safe() {
        for (op, key, value) in [
            ("StringEquals", "aws:PrincipalAccount", json!(OWN)),
            ("StringEquals", "kms:CallerAccount", json!([OWN, PARTNER])),
            ("StringEquals", "aws:SourceAccount", json!(OWN)),
            ("StringEquals", "aws:PrincipalOrgID", json!("o-abc123")),
            (
                "ArnLike",
                "aws:PrincipalArn",
                json!(format!("arn:aws:iam::{OWN}:role/app")),
            ),
            (
                "ForAnyValue:StringEquals",
                "aws:PrincipalOrgPaths",
                json!(["o-abc/r-1/ou-2/"]),
            ),
        ] {
            let p = policy(
                json!([{"Sid": "Pinned", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:Decrypt", "Resource": "*",
                                   "Condition": {op: {key: value}}}]),
            );
            assert_eq!(verdict(p), vec![], "{op} {key}");
        }
    }

    #[test]
    fn conditions_that_do_not_pin_the_caller_leave_star_public() {
        for condition in [
            json!({"StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}}),
            json!({"StringEqualsIfExists": {"aws:PrincipalAccount": OWN}}),
            json!({"ForAllValues:StringEquals": {"aws:PrincipalAccount": [OWN]}}),
            json!({"StringLike": {"kms:CallerAccount": "1111*"}}),
            json!({"Bool": {"aws:SecureTransport": true}}),
            json!({"NumericLessThan": {"aws:MultiFactorAuthAge": 300}}),
        ] {
            let p = policy(
                json!([{"Sid": "Loose", "Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*", "Condition": condition}]),
            );
            assert_eq!(verdict(p), vec![public("Loose")], "{condition}");
        }
    }

    #[test]
    fn star_pinned_to_a_foreign_account_is_untrusted_not_public() {
        let p = policy(
            json!([{"Sid": "Foreign", "Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*",
                               "Condition": {"StringEquals": {"kms:CallerAccount": STRANGER}}}]),
        );
        assert_eq!(verdict(p), vec![untrusted("Foreign", STRANGER)]);
    }

    #[test]
    fn principals_in_other_accounts() {
        for principal in [
            json!({"AWS": format!("arn:aws:iam::{STRANGER}:root")}),
            json!({"AWS": STRANGER}),
            json!({"AWS": [format!("arn:aws:iam::{OWN}:role/app"), format!("arn:aws:sts::{STRANGER}:assumed-role/x/y")]}),
            json!({"Federated": format!("arn:aws:iam::{STRANGER}:saml-provider/idp")}),
            // Outside the grammar, read strictly: a bare ARN or list of ids.
            json!(format!("arn:aws:iam::{STRANGER}:root")),
            json!([STRANGER]),
        ] {
            let p = policy(
                json!([root_statement(), {"Sid": "Cross", "Effect": "Allow", "Principal": principal, "Action": "kms:Decrypt", "Resource": "*"}]),
            );
            assert_eq!(
                verdict(p),
                vec![untrusted("Cross", STRANGER)],
                "{principal}"
            );
        }
    }

    #[test]
    fn trusted_and_service_principals_are_fine() {
        let p = policy(json!([
            {"Sid": "Partner", "Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{PARTNER}:root")}, "Action": "kms:Decrypt", "Resource": "*"},
            {"Sid": "Svc", "Effect": "Allow", "Principal": {"Service": ["secretsmanager.amazonaws.com", "logs.amazonaws.com"]}, "Action": "kms:*", "Resource": "*"},
            {"Sid": "Fed", "Effect": "Allow", "Principal": {"Federated": "cognito-identity.amazonaws.com"}, "Action": "kms:Decrypt", "Resource": "*"},
        ]));
        assert_eq!(verdict(p), vec![]);
    }

    #[test]
    fn deny_overrides_allow() {
        let open = json!({"Sid": "Open", "Effect": "Allow", "Principal": "*", "Action": ["kms:Decrypt", "kms:DescribeKey"], "Resource": "*"});
        // Deny everyone outside our account: the open Allow is neutralised.
        let deny_outside = json!({"Sid": "DenyOutside", "Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*",
                                  "Condition": {"StringNotEquals": {"aws:PrincipalAccount": [OWN]}}});
        assert_eq!(verdict(policy(json!([open.clone(), deny_outside]))), vec![]);
        // Deny outside the organisation: also neutralised.
        let deny_org = json!({"Sid": "DenyOrg", "Effect": "Deny", "Principal": {"AWS": "*"}, "NotAction": "kms:ListAliases", "Resource": "*",
                              "Condition": {"StringNotEquals": {"aws:PrincipalOrgID": "o-abc123"}}});
        assert_eq!(verdict(policy(json!([open.clone(), deny_org]))), vec![]);
        // A deny that covers only some of the allowed actions does not.
        let partial = json!({"Sid": "DenyDecrypt", "Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"});
        assert_eq!(
            verdict(policy(json!([open.clone(), partial]))),
            vec![public("Open")]
        );
        // A deny outside a stranger's account does not make star safe.
        let deny_wrong = json!({"Sid": "DenyWrong", "Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "*",
                                "Condition": {"StringNotEquals": {"aws:PrincipalAccount": STRANGER}}});
        assert_eq!(
            verdict(policy(json!([open, deny_wrong]))),
            vec![public("Open")]
        );
        // An explicit deny of the stranger's account removes that grant.
        let cross = json!({"Sid": "Cross", "Effect": "Allow", "Principal": {"AWS": STRANGER}, "Action": "kms:Decrypt", "Resource": "*"});
        let deny_stranger = json!({"Sid": "NoStranger", "Effect": "Deny", "Principal": {"AWS": format!("arn:aws:iam::{STRANGER}:root")}, "Action": "kms:*", "Resource": "*"});
        assert_eq!(
            verdict(policy(json!([cross.clone(), deny_stranger]))),
            vec![]
        );
        let deny_other = json!({"Sid": "NoPartner", "Effect": "Deny", "Principal": {"AWS": PARTNER}, "Action": "kms:*", "Resource": "*"});
        assert_eq!(
            verdict(policy(json!([cross, deny_other]))),
            vec![untrusted("Cross", STRANGER)]
        );
    }

    #[test]
    fn not_action_deny_does_not_cover_a_wildcard_allow() {
        // Deny everything but Decrypt; Allow kms:* still grants Decrypt to all.
        let allow = json!({"Sid": "Open", "Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"});
        let deny = json!({"Sid": "D", "Effect": "Deny", "Principal": "*", "NotAction": "kms:Decrypt", "Resource": "*"});
        assert_eq!(
            verdict(policy(json!([allow, deny.clone()]))),
            vec![public("Open")]
        );
        // The same deny does cover an Allow of actions outside its exception.
        let encrypt = json!({"Sid": "Enc", "Effect": "Allow", "Principal": "*", "Action": "kms:Encrypt", "Resource": "*"});
        assert_eq!(verdict(policy(json!([encrypt, deny]))), vec![]);
    }

    #[test]
    fn not_action_allow_needs_a_full_deny() {
        let allow = json!({"Sid": "AllButDelete", "Effect": "Allow", "Principal": "*", "NotAction": "kms:ScheduleKeyDeletion", "Resource": "*"});
        let narrow = json!({"Sid": "D", "Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"});
        assert_eq!(
            verdict(policy(json!([allow.clone(), narrow]))),
            vec![public("AllButDelete")]
        );
        let full = json!({"Sid": "D", "Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*"});
        assert_eq!(verdict(policy(json!([allow, full]))), vec![]);
    }

    #[test]
    fn invalid_shapes_are_named_errors() {
        let t = Trust::default();
        assert!(matches!(analyse("{", &t), Err(PolicyError::NotJson(_))));
        assert!(matches!(analyse("[]", &t), Err(PolicyError::Shape(_))));
        assert!(matches!(
            analyse(r#"{"Statement": 3}"#, &t),
            Err(PolicyError::Shape(_))
        ));
        let e = analyse(
            r#"{"Statement": [{"Effect": "Maybe", "Principal": "*", "Action": "kms:*"}]}"#,
            &t,
        )
        .unwrap_err();
        assert!(e.to_string().contains("Statement[0]"), "{e}");
        assert!(matches!(
            analyse(
                r#"{"Statement": [{"Effect": "Allow", "Principal": "someone", "Action": "kms:*"}]}"#,
                &t
            ),
            Err(PolicyError::Shape(_))
        ));
        assert!(matches!(
            analyse(
                r#"{"Statement": [{"Effect": "Allow", "Principal": {"AWS": 5}, "Action": "kms:*"}]}"#,
                &t
            ),
            Err(PolicyError::Shape(_))
        ));
        assert!(matches!(
            analyse(
                r#"{"Statement": [{"Effect": "Allow", "Principal": "*"}]}"#,
                &t
            ),
            Err(PolicyError::Shape(_))
        ));
    }

    #[test]
    fn size_limit_is_kms_limit() {
        let pad = |n: usize| {
            let base = policy(json!([root_statement()])).to_string();
            let filler = "x".repeat(n - base.len() - r#","Pad":"""#.len());
            format!("{},\"Pad\":\"{filler}\"}}", &base[..base.len() - 1])
        };
        let at_limit = pad(MAX_POLICY_BYTES);
        assert_eq!(at_limit.len(), MAX_POLICY_BYTES);
        let own = Trust {
            own_account: Some(OWN),
            trusted: &[],
        };
        assert_eq!(analyse(&at_limit, &own), Ok(vec![]));
        let over = pad(MAX_POLICY_BYTES + 1);
        assert_eq!(
            analyse(&over, &own),
            Err(PolicyError::TooLarge(MAX_POLICY_BYTES + 1))
        );
    }

    #[test]
    fn glob_matches_like_iam() {
        assert!(glob("kms:*", "kms:Decrypt"));
        assert!(glob("*", "anything"));
        assert!(glob("KMS:De?rypt", "kms:decrypt"));
        assert!(!glob("kms:Encrypt", "kms:Decrypt"));
        assert!(glob("kms:*Key*", "kms:GenerateDataKeyPair"));
    }
}
