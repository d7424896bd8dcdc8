//! Resource policy analysis: KMS key policies and Secrets Manager secret
//! resource policies share it; only the action namespace and the size limit
//! differ ([`Service`]). A policy is written by whoever holds
//! kms:PutKeyPolicy or secretsmanager:PutResourcePolicy, so it is treated as
//! hostile input: every legal shape is accepted, anything else is a typed
//! error, nothing panics.
//!
//! The question asked of a policy: who outside the secret's own account, the
//! trusted accounts and the trusted organisations can be allowed to use the
//! key or the secret? Conditions are judged the way AWS evaluates them (IAM
//! User Guide, "condition operators" and "global condition context keys"):
//! - an Allow for every caller (`*`, `{"AWS": "*"}`, NotPrincipal, or an ARN
//!   whose account is `*`) whose conditions do not pin the caller's account
//!   or organisation is **public**;
//! - an Allow for principals in another account, or pinned by condition to
//!   another account, is an **untrusted account** unless that account is
//!   trusted; one pinned to an organisation that is not trusted is an
//!   **untrusted organisation**;
//! - a principal or a pin that cannot be judged (an ARN whose account is a
//!   partial wildcard, a principal ARN without an account) is **unjudged**,
//!   never dropped;
//! - an ARN-valued condition whose account component is empty, as an S3
//!   bucket's is (`aws:SourceArn` = `arn:aws:s3:::bucket`), pins no account:
//!   the ARN does not say who owns the bucket, and a bucket name can be
//!   deleted and taken by another account (AWS: "If the aws:SourceArn value
//!   does not contain the account ID, such as an Amazon S3 bucket ARN, you
//!   must use both global condition context keys"). Alone it leaves the
//!   grant public; beside an account or organisation pin, that pin decides;
//! - a CloudFront origin access identity
//!   (`arn:aws:iam::cloudfront:user/CloudFront Origin Access Identity ID`,
//!   CloudFront's "special CloudFront user") is an AWS-owned identity like a
//!   service principal, not another customer's account: it adds no account;
//! - a Deny that covers the same actions for the same callers (no
//!   condition, or a `StringNotEquals`-style condition on the caller's
//!   account or organisation and nothing else) overrides the Allow.
//!
//! How values match, by operator (IAM User Guide, condition operators):
//! - `StringEquals`/`StringEqualsIgnoreCase` read `*` and `?` literally;
//! - `StringLike` matches the whole string. On an ARN-valued key it is
//!   judged component by component all the same: the ARNs it is compared
//!   with are made by AWS, six components whose partition, service, Region
//!   and account never hold a colon, so a `*` in the Region could only
//!   reach the account if the request's ARN repeated `:ACCOUNT:` inside
//!   its resource, which no AWS ARN format does. A wildcard in the account
//!   component itself leaves the account open;
//! - `ArnLike` and `ArnEquals` (the guide lists them together) match each of
//!   the six colon-separated ARN components separately, so only a wildcard
//!   in the account component leaves the account open;
//! - `...IfExists` and `ForAllValues:` never pin (they match when the key is
//!   absent or empty); `ForAnyValue:` pins like the plain operator.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::arn::{Arn, is_account_id};

/// KMS's own limit on a key policy document.
pub const MAX_POLICY_BYTES: usize = 32 * 1024;
/// Secrets Manager's limit on a secret's resource policy (20,480 characters).
pub const MAX_SECRET_POLICY_BYTES: usize = 20 * 1024;

/// `${aws:ResourceAccount}` in a pin: the account that owns the key or the
/// secret, which is ours by definition.
const RESOURCE_ACCOUNT: &str = "${aws:resourceaccount}";
/// `${aws:ResourceOrgID}`: the organisation of the resource's account.
const RESOURCE_ORG: &str = "${aws:resourceorgid}";

/// Condition keys whose value is the calling account (IAM User Guide,
/// global condition keys; KMS Developer Guide for kms:CallerAccount).
const ACCOUNT_KEYS: [&str; 4] = [
    "aws:principalaccount",
    "kms:calleraccount",
    "aws:sourceaccount",
    "aws:sourceowner",
];
/// Condition keys whose value is the caller's organisation: the calling
/// principal's, or (`aws:SourceOrgID`, the service-to-service counterpart
/// of aws:SourceAccount) that of the resource an AWS service acts for.
const ORG_ID_KEYS: [&str; 2] = ["aws:principalorgid", "aws:sourceorgid"];
/// The same as organisation paths (`o-id/r-root/ou-.../`).
const ORG_PATHS_KEYS: [&str; 2] = ["aws:principalorgpaths", "aws:sourceorgpaths"];
/// Condition keys whose value is an ARN naming the caller's account.
const ARN_KEYS: [&str; 2] = ["aws:principalarn", "aws:sourcearn"];

/// Which service holds the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// A KMS key policy (`kms:*` actions).
    Kms,
    /// A Secrets Manager secret's resource policy (`secretsmanager:*` actions).
    SecretsManager,
}

impl Service {
    /// The action namespace, e.g. `kms`.
    pub fn namespace(self) -> &'static str {
        match self {
            Service::Kms => "kms",
            Service::SecretsManager => "secretsmanager",
        }
    }

    /// The service's own limit on the document.
    pub fn max_bytes(self) -> usize {
        match self {
            Service::Kms => MAX_POLICY_BYTES,
            Service::SecretsManager => MAX_SECRET_POLICY_BYTES,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PolicyError {
    #[error("the policy is {0} bytes, over the limit of the service that holds it")]
    TooLarge(usize),
    #[error("the policy is not valid JSON: {0}")]
    NotJson(String),
    #[error("the policy has an invalid shape: {0}")]
    Shape(String),
}

/// What is wrong with a policy.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum PolicyIssue {
    /// Anyone can be allowed.
    Public { sid: Option<String> },
    /// A principal in this account can be allowed.
    UntrustedAccount {
        sid: Option<String>,
        account: String,
    },
    /// Principals in this organisation can be allowed.
    UntrustedOrg { sid: Option<String>, org: String },
    /// A statement whose principal or caller pin cannot be judged;
    /// `statement` is its Sid, or `Statement[i]` without one.
    Unjudged { statement: String, reason: String },
}

/// Whose accounts and organisations count as ours.
#[derive(Debug, Clone, Default)]
pub struct Trust<'a> {
    pub own_account: Option<&'a str>,
    pub trusted: &'a [String],
    /// The auditor's own organisation and TRUSTED_ORG_IDS.
    pub trusted_orgs: &'a [String],
}

impl Trust<'_> {
    fn trusts(&self, account: &str) -> bool {
        account == RESOURCE_ACCOUNT
            || self.own_account == Some(account)
            || self.trusted.iter().any(|t| t == account)
    }

    fn trusts_org(&self, org: &str) -> bool {
        org == RESOURCE_ORG || self.trusted_orgs.iter().any(|t| t == org)
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
    /// Every caller (`*`, `{"AWS": "*"}`, an ARN whose account is `*`).
    Anyone,
    /// Every caller except the listed ones (NotPrincipal).
    AnyoneExcept,
    /// Named principals: the accounts their ARNs or ids name. Service and
    /// federated principals without an account, and CloudFront origin
    /// access identities, add nothing here.
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
    /// Positive: the caller's account must be one of these.
    accounts: Option<BTreeSet<String>>,
    /// Positive: the caller's organisation must be one of these.
    orgs: Option<BTreeSet<String>>,
    /// Negative (`StringNotEquals`-style): callers outside these accounts match.
    outside_accounts: Option<BTreeSet<String>>,
    /// Negative: callers outside these organisations match.
    outside_orgs: Option<BTreeSet<String>>,
    /// There is some condition (of any kind).
    any: bool,
    /// There is a condition that is not a caller pin (it narrows when the
    /// statement applies, so a Deny carrying it does not always apply).
    other: bool,
}

#[derive(Debug, Clone)]
struct Statement {
    /// The Sid, or `Statement[i]`.
    label: String,
    sid: Option<String>,
    effect: Effect,
    who: Who,
    /// Principals that cannot be judged, and why.
    unjudged: Vec<String>,
    actions: Actions,
    pin: CallerPin,
}

/// Analyse a KMS key policy document.
pub fn analyse(doc: &str, trust: &Trust<'_>) -> Result<Vec<PolicyIssue>, PolicyError> {
    analyse_policy(Service::Kms, doc, trust)
}

/// Analyse a policy document held by `service`.
pub fn analyse_policy(
    service: Service,
    doc: &str,
    trust: &Trust<'_>,
) -> Result<Vec<PolicyIssue>, PolicyError> {
    if doc.len() > service.max_bytes() {
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
            if !denies
                .iter()
                .any(|d| overrides(service, d, allow, &issue, trust))
            {
                issues.insert(issue);
            }
        }
    }
    Ok(issues.into_iter().collect())
}

/// The issues one Allow statement raises, before Deny statements.
fn allow_issues(s: &Statement, trust: &Trust<'_>) -> Vec<PolicyIssue> {
    let sid = || s.sid.clone();
    let mut out: Vec<PolicyIssue> = s
        .unjudged
        .iter()
        .map(|reason| PolicyIssue::Unjudged {
            statement: s.label.clone(),
            reason: reason.clone(),
        })
        .collect();
    // The accounts a caller can be in, when they are bounded.
    let accounts = match (&s.who, &s.pin.accounts) {
        (Who::Anyone | Who::AnyoneExcept, pinned) => pinned.clone(),
        // Named principals, further pinned: only principals in both count.
        (Who::Accounts(named), Some(pinned)) => Some(named.intersection(pinned).cloned().collect()),
        (Who::Accounts(named), None) => Some(named.clone()),
    };
    let orgs_all_trusted = s
        .pin
        .orgs
        .as_ref()
        .is_some_and(|o| o.iter().all(|org| trust.trusts_org(org)));
    match (accounts, &s.pin.orgs) {
        // Every caller must also be in a trusted organisation.
        (Some(_), Some(_)) if orgs_all_trusted => {}
        (Some(accounts), _) => out.extend(accounts.into_iter().filter(|a| !trust.trusts(a)).map(
            |account| PolicyIssue::UntrustedAccount {
                sid: sid(),
                account,
            },
        )),
        (None, Some(orgs)) => out.extend(orgs.iter().filter(|o| !trust.trusts_org(o)).map(|org| {
            PolicyIssue::UntrustedOrg {
                sid: sid(),
                org: org.clone(),
            }
        })),
        (None, None) => out.push(PolicyIssue::Public { sid: sid() }),
    }
    out
}

/// Does this Deny take away what `issue` says the Allow grants?
fn overrides(
    service: Service,
    deny: &Statement,
    allow: &Statement,
    issue: &PolicyIssue,
    trust: &Trust<'_>,
) -> bool {
    if !covers(service, &deny.actions, &allow.actions)
        || deny.pin.other
        || !deny.unjudged.is_empty()
    {
        return false;
    }
    let pin = &deny.pin;
    match issue {
        PolicyIssue::UntrustedAccount { account, .. } => {
            match &deny.who {
                Who::Anyone => {}
                Who::Accounts(named) if named.contains(account) => {}
                _ => return false,
            }
            // Unconditional, or the account is outside the Deny's
            // exceptions (an organisation exception may include it: kept).
            !pin.any
                || (pin.outside_orgs.is_none()
                    && pin
                        .outside_accounts
                        .as_ref()
                        .is_some_and(|o| !o.contains(account)))
        }
        PolicyIssue::UntrustedOrg { org, .. } => {
            deny.who == Who::Anyone
                && (!pin.any
                    || (pin.outside_accounts.is_none()
                        && pin.outside_orgs.as_ref().is_some_and(|o| !o.contains(org))))
        }
        PolicyIssue::Public { .. } => {
            if deny.who != Who::Anyone {
                return false;
            }
            if !pin.any {
                return true;
            }
            // Deny everyone outside our accounts and/or our organisations:
            // who is left is trusted.
            let accounts_ok = pin
                .outside_accounts
                .as_ref()
                .map(|o| !o.is_empty() && o.iter().all(|a| trust.trusts(a)));
            let orgs_ok = pin
                .outside_orgs
                .as_ref()
                .map(|o| !o.is_empty() && o.iter().all(|x| trust.trusts_org(x)));
            match (accounts_ok, orgs_ok) {
                (None, None) => false,
                (a, o) => a.unwrap_or(true) && o.unwrap_or(true),
            }
        }
        // Whatever the statement names, an unconditional Deny for everyone
        // takes it back.
        PolicyIssue::Unjudged { .. } => deny.who == Who::Anyone && !pin.any,
    }
}

/// Does the Deny's action set include every action the Allow grants?
fn covers(service: Service, deny: &Actions, allow: &Actions) -> bool {
    let everything = format!("{}:*", service.namespace());
    match (deny, allow) {
        (Actions::Only(d), Actions::Only(a)) => {
            a.iter().all(|act| d.iter().any(|pat| glob(pat, act)))
        }
        (Actions::Only(d), Actions::AllBut(_)) => d
            .iter()
            .any(|pat| pat == "*" || pat.eq_ignore_ascii_case(&everything)),
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
        .map(|(i, s)| {
            statement(s, i).map_err(|e| PolicyError::Shape(format!("Statement[{i}]: {e}")))
        })
        .collect()
}

fn statement(v: &Value, index: usize) -> Result<Statement, String> {
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
    let (who, unjudged) = match (s.get("Principal"), s.get("NotPrincipal")) {
        (Some(p), None) => principal(p)?,
        (None, Some(np)) => {
            principal(np)?;
            (Who::AnyoneExcept, Vec::new())
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
        label: sid.clone().unwrap_or_else(|| format!("Statement[{index}]")),
        sid,
        effect,
        who,
        unjudged,
        actions,
        pin,
    })
}

/// What one AWS principal string names.
#[derive(Debug, PartialEq)]
enum Named {
    /// `*`, or an ARN whose account is `*`: every account.
    Everyone,
    Account(String),
    /// An identity AWS owns, in no customer's account: a CloudFront origin
    /// access identity.
    AwsOwned,
    /// A deleted principal's unique id (`AROA...`, `AIDA...`): KMS and IAM
    /// show it in place of the ARN, and no caller can match it again.
    Deleted,
    /// Something that cannot be judged, and why.
    Unknown(String),
}

/// Read one AWS principal: `*`, an account id, an ARN, or a unique id.
fn named(id: &str) -> Named {
    if id == "*" {
        return Named::Everyone;
    }
    if is_account_id(id) {
        return Named::Account(id.to_string());
    }
    if is_unique_id(id) {
        return Named::Deleted;
    }
    let Some(arn) = Arn::parse(id) else {
        return Named::Unknown("a principal that is neither an account id nor an ARN".into());
    };
    let account = arn.account;
    if is_account_id(account) {
        Named::Account(account.to_string())
    } else if is_origin_access_identity(&arn) {
        Named::AwsOwned
    } else if !account.is_empty() && account.chars().all(|c| c == '*') {
        Named::Everyone
    } else if account.contains(['*', '?']) {
        Named::Unknown(
            "a principal ARN whose account is a partial wildcard, naming accounts that cannot be listed"
                .into(),
        )
    } else {
        Named::Unknown("a principal ARN without an account".into())
    }
}

/// A CloudFront origin access identity, as bucket policies name it:
/// `arn:PARTITION:iam::cloudfront:user/CloudFront Origin Access Identity ID`
/// (CloudFront Developer Guide, restricting access to an Amazon S3 origin).
/// The account field is `cloudfront`, not a customer's account: the identity
/// is CloudFront's own user. It signs only CloudFront's requests to S3, so
/// it can use no key or secret either. The id must be literal (letters and
/// digits): anything else is left to the "without an account" reading.
fn is_origin_access_identity(arn: &Arn<'_>) -> bool {
    arn.service == "iam"
        && arn.region.is_empty()
        && arn.account == "cloudfront"
        && arn
            .resource
            .strip_prefix("user/CloudFront Origin Access Identity ")
            .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// An IAM unique id: a four-letter prefix such as AIDA or AROA and
/// upper-case letters and digits, 16 to 32 characters in all.
fn is_unique_id(id: &str) -> bool {
    (16..=32).contains(&id.len())
        && id.starts_with('A')
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        && id[..4].bytes().all(|b| b.is_ascii_uppercase())
}

/// Who a Principal names, and what cannot be judged. Besides the
/// grammar's `"*"` and the map of `AWS`/`Service`/`Federated`/
/// `CanonicalUser`, a bare string or list of account ids and ARNs is read
/// as AWS principals: hostile input gets the strictest reasonable reading,
/// not a shrug.
fn principal(p: &Value) -> Result<(Who, Vec<String>), String> {
    let mut accounts = BTreeSet::new();
    let mut unjudged = Vec::new();
    let mut read = |ids: &[String], federated: bool| -> bool {
        for id in ids {
            match named(id) {
                Named::Everyone if !federated || id != "*" => return true,
                Named::Account(a) => {
                    accounts.insert(a);
                }
                // A federated identity provider's name (cognito, a web IdP).
                Named::Unknown(_) if federated && !id.starts_with("arn:") => {}
                Named::Unknown(reason) => unjudged.push(reason),
                // Nothing of a customer's: like a service principal.
                Named::Everyone | Named::Deleted | Named::AwsOwned => {}
            }
        }
        false
    };
    match p {
        Value::String(_) | Value::Array(_) => {
            let ids = strings(p).ok_or("Principal list holds a non-string")?;
            if ids
                .iter()
                .any(|i| i != "*" && !i.starts_with("arn:") && !is_account_id(i))
            {
                return Err("Principal names no account and is not \"*\"".into());
            }
            if read(&ids, false) {
                return Ok((Who::Anyone, Vec::new()));
            }
        }
        Value::Object(m) => {
            for (kind, ids) in m {
                let ids = strings(ids)
                    .ok_or_else(|| format!("Principal.{kind} is not a string or list"))?;
                match kind.as_str() {
                    "AWS" => {
                        if read(&ids, false) {
                            return Ok((Who::Anyone, Vec::new()));
                        }
                    }
                    "Federated" => {
                        read(&ids, true);
                    }
                    "Service" | "CanonicalUser" => {}
                    other => return Err(format!("unknown principal type {other:?}")),
                }
            }
        }
        _ => return Err("Principal must be \"*\", an object, or account ids".into()),
    }
    Ok((Who::Accounts(accounts), unjudged))
}

/// How an operator matches a value against the request.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Matching {
    /// `StringEquals`: `*` and `?` are literal characters.
    Literal,
    /// `StringLike`, `ArnLike`, `ArnEquals`: `*` and `?` are wildcards (on
    /// an ARN, judged within each component; see the module's notes).
    Wildcards,
}

/// What one condition value says about the caller.
#[derive(Debug, PartialEq)]
enum ValuePin {
    /// The caller must be in this account or organisation.
    Is(String),
    /// No caller can match this value (a literal `*` under StringEquals).
    Nobody,
    /// Any caller may match (a wildcard reaching into the account, or an
    /// ARN that names no account).
    Open,
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?'])
}

/// A policy variable: `${aws:ResourceAccount}` and `${aws:ResourceOrgID}`
/// name the resource's own account and organisation; any other variable
/// may be anything.
fn variable(v: &str) -> Option<ValuePin> {
    if !v.contains("${") {
        return None;
    }
    let lower = v.to_ascii_lowercase();
    Some(if lower == RESOURCE_ACCOUNT || lower == RESOURCE_ORG {
        ValuePin::Is(lower)
    } else {
        ValuePin::Open
    })
}

fn account_value(v: &str, m: Matching) -> ValuePin {
    if let Some(p) = variable(v) {
        return p;
    }
    if m != Matching::Literal && has_wildcard(v) {
        ValuePin::Open
    } else if is_account_id(v) {
        ValuePin::Is(v.to_string())
    } else {
        ValuePin::Nobody
    }
}

fn arn_value(v: &str, m: Matching) -> ValuePin {
    if v.contains("${") {
        return ValuePin::Open;
    }
    let wild = m != Matching::Literal;
    let Some((scheme, arn)) = Arn::fields(v) else {
        return if wild && has_wildcard(v) {
            ValuePin::Open
        } else {
            ValuePin::Nobody
        };
    };
    let account = arn.account;
    // StringLike, too, by component (see the module's notes): only a
    // wildcard in the account component itself reaches other accounts.
    let reaches = m != Matching::Literal && has_wildcard(account);
    // The first component can match the `arn` every AWS ARN starts with.
    let arn_scheme = if wild {
        glob(scheme, "arn")
    } else {
        scheme == "arn"
    };
    if reaches {
        ValuePin::Open
    } else if is_account_id(account) {
        ValuePin::Is(account.to_string())
    } else if account.is_empty() && arn_scheme {
        // An ARN without an account (an S3 bucket's, `arn:aws:s3:::bucket`)
        // matches resources whose ARNs name no owner: whoever owns or
        // later takes that bucket name, in any account. It pins no
        // account. (No principal's ARN lacks an account, so under
        // aws:PrincipalArn it would match nobody; read as pinning nothing
        // all the same, the verdict errs towards reporting.)
        ValuePin::Open
    } else {
        ValuePin::Nobody
    }
}

fn org_value(v: &str, m: Matching, paths: bool) -> ValuePin {
    // aws:PrincipalOrgPaths is `o-id/r-root/ou-.../`: the first segment is
    // the organisation.
    let org = if paths {
        v.split('/').next().unwrap_or_default()
    } else {
        v
    };
    if let Some(p) = variable(org) {
        return p;
    }
    // A wildcard in the organisation's own segment reaches other
    // organisations; one after it only ranges over this one's OUs.
    if m != Matching::Literal && has_wildcard(org) {
        ValuePin::Open
    } else if is_org_id(org) {
        ValuePin::Is(org.to_string())
    } else {
        ValuePin::Nobody
    }
}

/// `o-` and 10 to 32 lower-case letters or digits.
pub fn is_org_id(s: &str) -> bool {
    s.strip_prefix("o-").is_some_and(|rest| {
        (10..=32).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

/// Which caller a condition key names.
#[derive(Debug, Clone, Copy, PartialEq)]
enum KeyKind {
    Account,
    Arn,
    OrgId,
    OrgPaths,
}

fn key_kind(key: &str) -> Option<KeyKind> {
    if ACCOUNT_KEYS.contains(&key) {
        Some(KeyKind::Account)
    } else if ARN_KEYS.contains(&key) {
        Some(KeyKind::Arn)
    } else if ORG_ID_KEYS.contains(&key) {
        Some(KeyKind::OrgId)
    } else if ORG_PATHS_KEYS.contains(&key) {
        Some(KeyKind::OrgPaths)
    } else {
        None
    }
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
        // ForAllValues matches an empty set: never a pin either way.
        if op.starts_with("forallvalues:") {
            pin.other = true;
            continue;
        }
        let op = op.strip_prefix("foranyvalue:").unwrap_or(&op);
        // IfExists matches when the key is absent: a positive pin is no pin,
        // but a negative one (a Deny's "outside these") only grows.
        let (op, if_exists) = match op.strip_suffix("ifexists") {
            Some(base) => (base, true),
            None => (op, false),
        };
        let (positive, matching) = match op {
            "stringequals" | "stringequalsignorecase" => (true, Matching::Literal),
            "stringlike" => (true, Matching::Wildcards),
            "arnequals" | "arnlike" => (true, Matching::Wildcards),
            "stringnotequals" | "stringnotequalsignorecase" => (false, Matching::Literal),
            "stringnotlike" => (false, Matching::Wildcards),
            "arnnotequals" | "arnnotlike" => (false, Matching::Wildcards),
            "bool" if aws_services_exempted(block) => continue,
            _ => {
                pin.other = true;
                continue;
            }
        };
        if positive && if_exists {
            pin.other = true;
            continue;
        }
        for (key, values) in block {
            let key = key.to_ascii_lowercase();
            let values = scalars(values)
                .ok_or_else(|| format!("Condition.{operator}.{key} has an invalid value"))?;
            let Some(kind) = key_kind(&key) else {
                pin.other = true;
                continue;
            };
            // The values of one key are alternatives: one open value leaves
            // the key open.
            let mut named = BTreeSet::new();
            let mut open = values.is_empty();
            for v in &values {
                let read = match kind {
                    KeyKind::Account => account_value(v, matching),
                    KeyKind::Arn => arn_value(v, matching),
                    KeyKind::OrgId => org_value(v, matching, false),
                    KeyKind::OrgPaths => org_value(v, matching, true),
                };
                match read {
                    ValuePin::Is(x) => {
                        named.insert(x);
                    }
                    ValuePin::Nobody => {}
                    ValuePin::Open => open = true,
                }
            }
            if open {
                // A negative condition with an open value cannot be read as
                // "outside these": the Deny is not relied on.
                if !positive {
                    pin.other = true;
                }
                continue;
            }
            let is_org = matches!(kind, KeyKind::OrgId | KeyKind::OrgPaths);
            let slot = match (positive, is_org) {
                (true, false) => &mut pin.accounts,
                (true, true) => &mut pin.orgs,
                (false, false) => &mut pin.outside_accounts,
                (false, true) => &mut pin.outside_orgs,
            };
            *slot = Some(match slot.take() {
                // Two positive pins must both hold: intersect.
                Some(prev) if positive => prev.intersection(&named).cloned().collect(),
                Some(prev) => prev.union(&named).cloned().collect(),
                None => named,
            });
        }
    }
    Ok(pin)
}

/// `Bool`/`BoolIfExists` `{"aws:PrincipalIsAWSService": "false"}` and
/// nothing else: the data-perimeter Deny's exemption for AWS services
/// acting with their own service principals (IAM User Guide, global
/// condition keys). It leaves no account or organisation outside the Deny.
fn aws_services_exempted(block: &Map<String, Value>) -> bool {
    block.len() == 1
        && block.iter().all(|(k, v)| {
            k.eq_ignore_ascii_case("aws:principalisawsservice")
                && scalars(v).is_some_and(|v| v.iter().all(|x| x.eq_ignore_ascii_case("false")))
        })
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
    const OWN_ORG: &str = "o-a1b2c3d4e5";

    fn verdict(policy: Value) -> Vec<PolicyIssue> {
        let trusted = vec![PARTNER.to_string()];
        let orgs = vec![OWN_ORG.to_string()];
        analyse(
            &policy.to_string(),
            &Trust {
                own_account: Some(OWN),
                trusted: &trusted,
                trusted_orgs: &orgs,
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
            ("StringEquals", "aws:PrincipalOrgID", json!(OWN_ORG)),
            (
                "ArnLike",
                "aws:PrincipalArn",
                json!(format!("arn:aws:iam::{OWN}:role/app")),
            ),
            (
                "ForAnyValue:StringEquals",
                "aws:PrincipalOrgPaths",
                json!([format!("{OWN_ORG}/r-ab12/ou-ab12-11111111/")]),
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
                              "Condition": {"StringNotEquals": {"aws:PrincipalOrgID": OWN_ORG}}});
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
    fn an_arn_without_an_account_pins_no_account() {
        let s3 = |extra: Value| {
            let mut c = json!({"ArnLike": {"aws:SourceArn": "arn:aws:s3:::logs-bucket"}});
            if let Value::Object(m) = extra {
                c.as_object_mut().unwrap().extend(m);
            }
            policy(
                json!([{"Sid": "S3", "Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*",
                           "Condition": c}]),
            )
        };
        // Alone: the bucket's owner could be anyone.
        assert_eq!(verdict(s3(Value::Null)), vec![public("S3")]);
        // Beside an own-organisation or own-account pin: that pin decides.
        for pin in [
            json!({"StringEquals": {"aws:PrincipalOrgID": OWN_ORG}}),
            json!({"StringEquals": {"aws:SourceOrgID": OWN_ORG}}),
            json!({"StringEquals": {"aws:SourceAccount": OWN}}),
        ] {
            assert_eq!(verdict(s3(pin.clone())), vec![], "{pin}");
        }
        assert_eq!(
            verdict(s3(json!({"StringEquals": {"aws:SourceAccount": STRANGER}}))),
            vec![untrusted("S3", STRANGER)]
        );
    }

    #[test]
    fn origin_access_identity_is_aws_owned() {
        let oai = "arn:aws:iam::cloudfront:user/CloudFront Origin Access Identity E2QWRUHAPOMQZL";
        let grant = |p: Value| {
            policy(
                json!([{"Sid": "Oai", "Effect": "Allow", "Principal": p, "Action": "kms:Decrypt", "Resource": "*"}]),
            )
        };
        assert_eq!(verdict(grant(json!({"AWS": oai}))), vec![]);
        assert_eq!(
            verdict(grant(json!({"AWS": [oai, STRANGER]}))),
            vec![untrusted("Oai", STRANGER)]
        );
        // Only that form: another name under `cloudfront` is not judged.
        let issues = verdict(grant(json!({"AWS": "arn:aws:iam::cloudfront:user/x"})));
        assert!(
            matches!(issues.as_slice(), [PolicyIssue::Unjudged { statement, .. }] if statement == "Oai"),
            "{issues:?}"
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
            ..Trust::default()
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
