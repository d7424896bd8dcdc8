//! The verdict table: policies written from AWS's documentation, each with
//! the verdict AWS's own evaluation gives and where that is documented. Every
//! row is judged twice, as a KMS key policy (`kms:` actions) and as a Secrets
//! Manager resource policy (`secretsmanager:` actions): the analysis is the
//! same, only the action namespace differs.
//!
//! Trust in every row: own account 111122223333, TRUSTED_ACCOUNT_IDS
//! 444455556666, the auditor's own organisation o-a1b2c3d4e5 and
//! TRUSTED_ORG_IDS o-p4r7n3r0rg9. Everything else is a stranger.

use replica_auditor::policy::{PolicyIssue, Service, Trust, analyse_policy};
use serde_json::{Value, json};

const OWN: &str = "111122223333";
const PARTNER: &str = "444455556666";
const STRANGER: &str = "999988887777";
const OWN_ORG: &str = "o-a1b2c3d4e5";
const PARTNER_ORG: &str = "o-p4r7n3r0rg9";
const FOREIGN_ORG: &str = "o-f0r31gn0rg1";

/// Where the verdict is documented.
#[derive(Debug, Clone, Copy)]
enum Doc {
    /// IAM User Guide, "IAM JSON policy elements: Condition operators".
    Operators,
    /// IAM User Guide, "AWS global condition context keys".
    GlobalKeys,
    /// IAM User Guide, "Policy evaluation logic" (explicit Deny wins).
    Evaluation,
    /// IAM User Guide, "AWS JSON policy elements: Principal".
    Principal,
    /// AWS KMS Developer Guide, "Key policies in AWS KMS".
    KmsKeyPolicies,
    /// Secrets Manager User Guide, "Resource-based policies".
    SecretsPolicies,
    /// IAM User Guide, "The confused deputy problem" (cross-service): "If
    /// the aws:SourceArn value does not contain the account ID, such as an
    /// Amazon S3 bucket ARN, you must use both global condition context keys
    /// to limit permissions"; Amazon S3 User Guide, "Amazon S3 resources":
    /// an S3 ARN excludes the Region and the account.
    ConfusedDeputy,
    /// CloudFront Developer Guide, "Restrict access to an Amazon S3 origin":
    /// an origin access identity is "a special CloudFront user", named in a
    /// bucket policy as `arn:aws:iam::cloudfront:user/CloudFront Origin
    /// Access Identity ID`.
    CloudFrontOai,
}

#[derive(Debug, Clone, PartialEq)]
enum Expect {
    Public,
    Account(&'static str),
    Org(&'static str),
    /// AUDIT_INCOMPLETE naming this statement (Sid, or `Statement[i]`).
    Unjudged(&'static str),
    PublicNoSid,
}

struct Case {
    name: &'static str,
    doc: Doc,
    reason: &'static str,
    statements: Vec<Value>,
    expect: Vec<Expect>,
}

/// An Allow of every action of the service (`NS:` is replaced by the
/// namespace) for `principal`, under `condition` (null: none).
fn grant(principal: Value, condition: Value) -> Value {
    let mut s = json!({"Sid": "Grant", "Effect": "Allow", "Principal": principal, "Action": "NS:*", "Resource": "*"});
    if !condition.is_null() {
        s["Condition"] = condition;
    }
    s
}

fn open() -> Value {
    grant(json!({"AWS": "*"}), Value::Null)
}

fn deny(condition: Value) -> Value {
    let mut s = json!({"Sid": "Deny", "Effect": "Deny", "Principal": "*", "Action": "NS:*", "Resource": "*"});
    if !condition.is_null() {
        s["Condition"] = condition;
    }
    s
}

fn root(account: &str) -> Value {
    json!({"AWS": format!("arn:aws:iam::{account}:root")})
}

fn c(
    name: &'static str,
    doc: Doc,
    reason: &'static str,
    statements: Vec<Value>,
    expect: Vec<Expect>,
) -> Case {
    Case {
        name,
        doc,
        reason,
        statements,
        expect,
    }
}

/// One condition on a `*` principal.
fn pinned(
    name: &'static str,
    doc: Doc,
    reason: &'static str,
    condition: Value,
    expect: Vec<Expect>,
) -> Case {
    c(
        name,
        doc,
        reason,
        vec![grant(json!({"AWS": "*"}), condition)],
        expect,
    )
}

use Doc::*;
use Expect::*;

fn cases() -> Vec<Case> {
    let none = Vec::new;
    let own_role = format!("arn:aws:iam::{OWN}:role/app");
    let stranger_role = format!("arn:aws:iam::{STRANGER}:role/app");
    let oai = "arn:aws:iam::cloudfront:user/CloudFront Origin Access Identity E2QWRUHAPOMQZL";
    let bucket = "arn:aws:s3:::logs-bucket";
    vec![
        // --- Principal shapes -------------------------------------------------
        c(
            "own account root",
            KmsKeyPolicies,
            "the default key policy: the account's root lets its IAM policies grant access",
            vec![grant(root(OWN), Value::Null)],
            none(),
        ),
        c(
            "own account id",
            Principal,
            "an account id is shorthand for that account's root",
            vec![grant(json!({"AWS": OWN}), Value::Null)],
            none(),
        ),
        c(
            "own role",
            Principal,
            "a role ARN names a principal of that account",
            vec![grant(json!({"AWS": own_role}), Value::Null)],
            none(),
        ),
        c(
            "stranger root",
            SecretsPolicies,
            "cross-account access: a principal in another account",
            vec![grant(root(STRANGER), Value::Null)],
            vec![Account(STRANGER)],
        ),
        c(
            "stranger id",
            Principal,
            "an account id is that account",
            vec![grant(json!({"AWS": STRANGER}), Value::Null)],
            vec![Account(STRANGER)],
        ),
        c(
            "stranger session",
            Principal,
            "an assumed-role session ARN names its account",
            vec![grant(
                json!({"AWS": format!("arn:aws:sts::{STRANGER}:assumed-role/app/s")}),
                Value::Null,
            )],
            vec![Account(STRANGER)],
        ),
        c(
            "stranger in another partition",
            Principal,
            "the account field is read in any partition",
            vec![grant(
                json!({"AWS": format!("arn:aws-cn:iam::{STRANGER}:root")}),
                Value::Null,
            )],
            vec![Account(STRANGER)],
        ),
        c(
            "trusted partner",
            KmsKeyPolicies,
            "an account in TRUSTED_ACCOUNT_IDS is allowed",
            vec![grant(root(PARTNER), Value::Null)],
            none(),
        ),
        c(
            "own and stranger listed",
            Principal,
            "a list names every account in it",
            vec![grant(
                json!({"AWS": [own_role, stranger_role]}),
                Value::Null,
            )],
            vec![Account(STRANGER)],
        ),
        c(
            "bare star",
            Principal,
            "Principal \"*\" is every principal, anonymous included",
            vec![grant(json!("*"), Value::Null)],
            vec![Public],
        ),
        c(
            "AWS star",
            Principal,
            "{\"AWS\": \"*\"} is every AWS principal",
            vec![open()],
            vec![Public],
        ),
        c(
            "star in a list",
            Principal,
            "one \"*\" in the list opens the statement",
            vec![grant(json!({"AWS": [own_role, "*"]}), Value::Null)],
            vec![Public],
        ),
        c(
            "star as a list",
            Principal,
            "[\"*\"] outside the grammar is read as \"*\"",
            vec![grant(json!(["*"]), Value::Null)],
            vec![Public],
        ),
        c(
            "every account's root",
            Principal,
            "an ARN whose account is * names every account",
            vec![grant(json!({"AWS": "arn:aws:iam::*:root"}), Value::Null)],
            vec![Public],
        ),
        c(
            "a role name in every account",
            Principal,
            "anyone can create a role of that name in an account of their own",
            vec![grant(
                json!({"AWS": "arn:aws:iam::*:role/app"}),
                Value::Null,
            )],
            vec![Public],
        ),
        c(
            "partial wildcard account",
            Principal,
            "KMS rejects wildcards in principals; an old document may hold one, and the accounts it names cannot be listed",
            vec![grant(
                json!({"AWS": "arn:aws:iam::1111*:root"}),
                Value::Null,
            )],
            vec![Unjudged("Grant")],
        ),
        c(
            "single-character wildcard account",
            Principal,
            "? in the account field names up to ten accounts nobody can list",
            vec![grant(
                json!({"AWS": "arn:aws:iam::11112222333?:root"}),
                Value::Null,
            )],
            vec![Unjudged("Grant")],
        ),
        c(
            "principal without an account",
            Principal,
            "an ARN with an empty account field names no caller we can judge",
            vec![grant(json!({"AWS": "arn:aws:s3:::bucket"}), Value::Null)],
            vec![Unjudged("Grant")],
        ),
        c(
            "no Sid, wildcard account",
            Principal,
            "a statement without Sid is named by its index",
            vec![
                json!({"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::99998888777?:root"}, "Action": "NS:*", "Resource": "*"}),
            ],
            vec![Unjudged("Statement[0]")],
        ),
        c(
            "deleted principal",
            Principal,
            "a deleted role shows as its unique id, which no caller can match again",
            vec![grant(json!({"AWS": "AROAJQABLZS4A3QDU576Q"}), Value::Null)],
            none(),
        ),
        c(
            "service principal",
            KmsKeyPolicies,
            "a service principal is the AWS service itself",
            vec![grant(
                json!({"Service": "secretsmanager.amazonaws.com"}),
                Value::Null,
            )],
            none(),
        ),
        c(
            "CloudFront origin access identity",
            CloudFrontOai,
            "an origin access identity is CloudFront's own user, in no customer's account: AWS-owned, like a service principal",
            vec![grant(json!({"AWS": oai}), Value::Null)],
            none(),
        ),
        c(
            "origin access identity as a bare string",
            CloudFrontOai,
            "outside the grammar, a bare ARN is read as an AWS principal: still CloudFront's own user",
            vec![grant(json!(oai), Value::Null)],
            none(),
        ),
        c(
            "origin access identity in the China partition",
            CloudFrontOai,
            "the identity's ARN is read in any partition",
            vec![grant(
                json!({"AWS": "arn:aws-cn:iam::cloudfront:user/CloudFront Origin Access Identity EH1HDMB1FH2TC"}),
                Value::Null,
            )],
            none(),
        ),
        c(
            "origin access identity and a stranger",
            Principal,
            "the identity adds no account; the stranger listed beside it is still let in",
            vec![grant(
                json!({"AWS": [oai, format!("arn:aws:iam::{STRANGER}:root")]}),
                Value::Null,
            )],
            vec![Account(STRANGER)],
        ),
        c(
            "origin access identity, own root and a stranger id",
            Principal,
            "every AWS principal in the list is judged on its own",
            vec![grant(json!({"AWS": [oai, OWN, STRANGER]}), Value::Null)],
            vec![Account(STRANGER)],
        ),
        c(
            "another cloudfront user",
            Principal,
            "only the origin access identity's own form is CloudFront's user; any other name under that account field cannot be judged",
            vec![grant(
                json!({"AWS": "arn:aws:iam::cloudfront:user/someone"}),
                Value::Null,
            )],
            vec![Unjudged("Grant")],
        ),
        c(
            "federated SAML provider of a stranger",
            Principal,
            "a SAML provider ARN belongs to its account",
            vec![grant(
                json!({"Federated": format!("arn:aws:iam::{STRANGER}:saml-provider/idp")}),
                Value::Null,
            )],
            vec![Account(STRANGER)],
        ),
        c(
            "federated web identity",
            Principal,
            "a web identity provider names no AWS account",
            vec![grant(
                json!({"Federated": "cognito-identity.amazonaws.com"}),
                Value::Null,
            )],
            none(),
        ),
        c(
            "canonical user",
            Principal,
            "a canonical user id names no account the key or secret can be used from",
            vec![grant(
                json!({"CanonicalUser": "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"}),
                Value::Null,
            )],
            none(),
        ),
        c(
            "NotPrincipal allow",
            Principal,
            "Allow with NotPrincipal allows everyone not listed",
            vec![
                json!({"Sid": "Grant", "Effect": "Allow", "NotPrincipal": root(OWN), "Action": "NS:*", "Resource": "*"}),
            ],
            vec![Public],
        ),
        c(
            "no Sid, open",
            Principal,
            "a finding for a statement without Sid carries no Sid",
            vec![json!({"Effect": "Allow", "Principal": "*", "Action": "NS:*", "Resource": "*"})],
            vec![PublicNoSid],
        ),
        c(
            "own root beside an open grant",
            Evaluation,
            "every Allow counts: one open statement is enough",
            vec![grant(root(OWN), Value::Null), open()],
            vec![Public],
        ),
        // --- Calling-account keys ---------------------------------------------
        pinned(
            "PrincipalAccount own",
            GlobalKeys,
            "aws:PrincipalAccount is the caller's account",
            json!({"StringEquals": {"aws:PrincipalAccount": OWN}}),
            none(),
        ),
        pinned(
            "PrincipalAccount stranger",
            GlobalKeys,
            "pinned to one untrusted account: that account, not everyone",
            json!({"StringEquals": {"aws:PrincipalAccount": STRANGER}}),
            vec![Account(STRANGER)],
        ),
        pinned(
            "PrincipalAccount own or stranger",
            Operators,
            "the values of one key are alternatives",
            json!({"StringEquals": {"aws:PrincipalAccount": [OWN, STRANGER]}}),
            vec![Account(STRANGER)],
        ),
        pinned(
            "PrincipalAccount partner",
            GlobalKeys,
            "a trusted account",
            json!({"StringEquals": {"aws:PrincipalAccount": PARTNER}}),
            none(),
        ),
        pinned(
            "CallerAccount own",
            KmsKeyPolicies,
            "kms:CallerAccount is the caller's account",
            json!({"StringEquals": {"kms:CallerAccount": OWN}}),
            none(),
        ),
        pinned(
            "CallerAccount stranger",
            KmsKeyPolicies,
            "kms:CallerAccount pinned to another account",
            json!({"StringEquals": {"kms:CallerAccount": STRANGER}}),
            vec![Account(STRANGER)],
        ),
        pinned(
            "SourceAccount own",
            GlobalKeys,
            "aws:SourceAccount: the account of the resource a service acts for",
            json!({"StringEquals": {"aws:SourceAccount": OWN}}),
            none(),
        ),
        pinned(
            "SourceAccount stranger",
            GlobalKeys,
            "a service acting for another account's resource",
            json!({"StringEquals": {"aws:SourceAccount": STRANGER}}),
            vec![Account(STRANGER)],
        ),
        pinned(
            "SourceOwner own",
            GlobalKeys,
            "aws:SourceOwner names the calling account too",
            json!({"StringEquals": {"aws:SourceOwner": OWN}}),
            none(),
        ),
        pinned(
            "SourceOwner stranger",
            GlobalKeys,
            "aws:SourceOwner pinned to another account",
            json!({"StringEquals": {"aws:SourceOwner": STRANGER}}),
            vec![Account(STRANGER)],
        ),
        pinned(
            "StringLike without wildcard",
            Operators,
            "StringLike with a literal value matches only that value",
            json!({"StringLike": {"aws:PrincipalAccount": OWN}}),
            none(),
        ),
        pinned(
            "StringLike account prefix",
            Operators,
            "* matches any run of characters: many accounts",
            json!({"StringLike": {"kms:CallerAccount": "1111*"}}),
            vec![Public],
        ),
        pinned(
            "StringLike star",
            Operators,
            "* alone matches every account",
            json!({"StringLike": {"aws:PrincipalAccount": "*"}}),
            vec![Public],
        ),
        pinned(
            "StringLike question marks",
            Operators,
            "? matches any one character",
            json!({"StringLike": {"aws:PrincipalAccount": "11112222333?"}}),
            vec![Public],
        ),
        pinned(
            "StringEquals literal star",
            Operators,
            "StringEquals has no wildcards: no account is the string \"*\"",
            json!({"StringEquals": {"aws:PrincipalAccount": "*"}}),
            none(),
        ),
        pinned(
            "StringEquals literal question mark",
            Operators,
            "StringEquals reads ? literally",
            json!({"StringEquals": {"aws:PrincipalAccount": "11112222333?"}}),
            none(),
        ),
        pinned(
            "StringEqualsIgnoreCase own",
            Operators,
            "case does not matter for digits",
            json!({"StringEqualsIgnoreCase": {"aws:PrincipalAccount": OWN}}),
            none(),
        ),
        pinned(
            "ForAnyValue own",
            Operators,
            "ForAnyValue on a single-valued key is the plain operator",
            json!({"ForAnyValue:StringEquals": {"aws:PrincipalAccount": OWN}}),
            none(),
        ),
        pinned(
            "ForAllValues own",
            Operators,
            "ForAllValues is true for an absent key (empty set)",
            json!({"ForAllValues:StringEquals": {"aws:PrincipalAccount": OWN}}),
            vec![Public],
        ),
        pinned(
            "IfExists own",
            Operators,
            "...IfExists is true when the key is absent from the request",
            json!({"StringEqualsIfExists": {"aws:PrincipalAccount": OWN}}),
            vec![Public],
        ),
        pinned(
            "ResourceAccount variable",
            GlobalKeys,
            "${aws:ResourceAccount} is the account that owns the key or secret",
            json!({"StringEquals": {"aws:PrincipalAccount": "${aws:ResourceAccount}"}}),
            none(),
        ),
        pinned(
            "other variable",
            Operators,
            "a policy variable the caller controls pins nothing",
            json!({"StringEquals": {"aws:PrincipalAccount": "${aws:username}"}}),
            vec![Public],
        ),
        pinned(
            "two keys intersect",
            Evaluation,
            "every key in a Condition must hold",
            json!({"StringEquals": {"aws:PrincipalAccount": [OWN, STRANGER], "kms:CallerAccount": OWN}}),
            none(),
        ),
        pinned(
            "operator and key case",
            Operators,
            "condition key names are case-insensitive",
            json!({"StringEquals": {"AWS:PRINCIPALACCOUNT": STRANGER}}),
            vec![Account(STRANGER)],
        ),
        // --- ARN-valued keys --------------------------------------------------
        pinned(
            "ArnLike own roles",
            Operators,
            "ArnLike matches each ARN component; the account is literal",
            json!({"ArnLike": {"aws:PrincipalArn": format!("arn:aws:iam::{OWN}:role/*")}}),
            none(),
        ),
        pinned(
            "ArnLike stranger roles",
            Operators,
            "a literal untrusted account in the account component",
            json!({"ArnLike": {"aws:PrincipalArn": format!("arn:aws:iam::{STRANGER}:role/*")}}),
            vec![Account(STRANGER)],
        ),
        pinned(
            "ArnLike any account",
            Operators,
            "* in the account component matches every account",
            json!({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/admin"}}),
            vec![Public],
        ),
        pinned(
            "ArnLike ? in account",
            Operators,
            "? in the account component matches other accounts",
            json!({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::1111222233?3:role/x"}}),
            vec![Public],
        ),
        pinned(
            "ArnLike wildcard service and region",
            Operators,
            "a wildcard in another component cannot reach the account",
            json!({"ArnLike": {"aws:PrincipalArn": format!("arn:aws:*:*:{OWN}:*")}}),
            none(),
        ),
        pinned(
            "ArnLike SourceArn region wildcard",
            GlobalKeys,
            "aws:SourceArn with * in the Region still pins the account",
            json!({"ArnLike": {"aws:SourceArn": format!("arn:aws:sns:*:{OWN}:topic")}}),
            none(),
        ),
        pinned(
            "ArnLike SourceArn stranger",
            GlobalKeys,
            "a service acting for another account's resource",
            json!({"ArnLike": {"aws:SourceArn": format!("arn:aws:sns:us-east-1:{STRANGER}:topic")}}),
            vec![Account(STRANGER)],
        ),
        pinned(
            "ArnLike star",
            Operators,
            "* alone matches any ARN",
            json!({"ArnLike": {"aws:SourceArn": "*"}}),
            vec![Public],
        ),
        pinned(
            "ArnLike S3 source",
            ConfusedDeputy,
            "an S3 bucket ARN has an empty account component: it pins no account, and alone the grant is open to whoever holds the bucket name",
            json!({"ArnLike": {"aws:SourceArn": bucket}}),
            vec![Public],
        ),
        pinned(
            "ArnEquals S3 source",
            ConfusedDeputy,
            "ArnEquals matches the same components as ArnLike: still no account",
            json!({"ArnEquals": {"aws:SourceArn": bucket}}),
            vec![Public],
        ),
        pinned(
            "StringEquals S3 source",
            ConfusedDeputy,
            "an exact match on a bucket ARN still names no owner",
            json!({"StringEquals": {"aws:SourceArn": bucket}}),
            vec![Public],
        ),
        pinned(
            "ArnLike S3 wildcard bucket",
            Operators,
            "a wildcard in the resource component ranges over bucket names, and no account is named",
            json!({"ArnLike": {"aws:SourceArn": "arn:aws:s3:::logs-*"}}),
            vec![Public],
        ),
        pinned(
            "ArnLike S3 source, wildcard scheme",
            Operators,
            "* in the first component matches the arn every AWS ARN begins with: the value is a bucket ARN all the same",
            json!({"ArnLike": {"aws:SourceArn": "*:aws:s3:::logs-bucket"}}),
            vec![Public],
        ),
        pinned(
            "S3 source with own organisation",
            Evaluation,
            "every key must hold: the bucket ARN pins nothing, aws:PrincipalOrgID pins the caller to our organisation",
            json!({"ArnLike": {"aws:SourceArn": bucket}, "StringEquals": {"aws:PrincipalOrgID": OWN_ORG}}),
            none(),
        ),
        pinned(
            "S3 wildcard bucket with own organisation",
            Evaluation,
            "a wildcard bucket beside an own-organisation pin: the pin decides",
            json!({"ArnLike": {"aws:SourceArn": "arn:aws:s3:::logs-*"}, "StringEquals": {"aws:PrincipalOrgID": OWN_ORG}}),
            none(),
        ),
        pinned(
            "S3 source with own SourceOrgID",
            GlobalKeys,
            "aws:SourceOrgID is the organisation of the resource a service acts for: ours",
            json!({"ArnLike": {"aws:SourceArn": bucket}, "StringEquals": {"aws:SourceOrgID": OWN_ORG}}),
            none(),
        ),
        pinned(
            "S3 source with partner SourceOrgID",
            GlobalKeys,
            "an organisation in TRUSTED_ORG_IDS",
            json!({"ArnLike": {"aws:SourceArn": bucket}, "StringEquals": {"aws:SourceOrgID": PARTNER_ORG}}),
            none(),
        ),
        pinned(
            "S3 source with foreign SourceOrgID",
            GlobalKeys,
            "the bucket's owner must be in another organisation: that organisation",
            json!({"ArnLike": {"aws:SourceArn": bucket}, "StringEquals": {"aws:SourceOrgID": FOREIGN_ORG}}),
            vec![Org(FOREIGN_ORG)],
        ),
        pinned(
            "S3 source with own SourceAccount",
            ConfusedDeputy,
            "the documented pairing: aws:SourceAccount names the bucket's owner",
            json!({"ArnLike": {"aws:SourceArn": bucket}, "StringEquals": {"aws:SourceAccount": OWN}}),
            none(),
        ),
        pinned(
            "S3 source with stranger SourceAccount",
            ConfusedDeputy,
            "the bucket's owner pinned to an untrusted account: that account, not everyone",
            json!({"ArnLike": {"aws:SourceArn": bucket}, "StringEquals": {"aws:SourceAccount": STRANGER}}),
            vec![Account(STRANGER)],
        ),
        pinned(
            "S3 source or own topic",
            Operators,
            "the values of one key are alternatives: the bucket ARN leaves the key open",
            json!({"ArnLike": {"aws:SourceArn": [format!("arn:aws:sns:us-east-1:{OWN}:topic"), bucket]}}),
            vec![Public],
        ),
        c(
            "deny outside an S3 source",
            Operators,
            "ArnNotLike a bucket ARN excepts no account: the Deny is not relied on",
            vec![
                open(),
                deny(json!({"ArnNotLike": {"aws:SourceArn": bucket}})),
            ],
            vec![Public],
        ),
        pinned(
            "ArnEquals own role",
            Operators,
            "ArnEquals on a literal ARN",
            json!({"ArnEquals": {"aws:PrincipalArn": own_role}}),
            none(),
        ),
        pinned(
            "ArnEquals wildcard account",
            Operators,
            "the guide lists ArnEquals with ArnLike: components may hold wildcards",
            json!({"ArnEquals": {"aws:PrincipalArn": "arn:aws:iam::*:root"}}),
            vec![Public],
        ),
        pinned(
            "ForAnyValue ArnLike own",
            Operators,
            "ForAnyValue on a single-valued key is the plain operator",
            json!({"ForAnyValue:ArnLike": {"aws:PrincipalArn": format!("arn:aws:iam::{OWN}:role/*")}}),
            none(),
        ),
        pinned(
            "ArnLikeIfExists own",
            Operators,
            "IfExists is true when the key is absent",
            json!({"ArnLikeIfExists": {"aws:PrincipalArn": format!("arn:aws:iam::{OWN}:role/*")}}),
            vec![Public],
        ),
        pinned(
            "StringLike own roles",
            Operators,
            "StringLike with a literal prefix through the account",
            json!({"StringLike": {"aws:PrincipalArn": format!("arn:aws:iam::{OWN}:role/*")}}),
            none(),
        ),
        pinned(
            "StringLike stranger",
            Operators,
            "StringLike with a literal untrusted account",
            json!({"StringLike": {"aws:PrincipalArn": format!("arn:aws:iam::{STRANGER}:*")}}),
            vec![Account(STRANGER)],
        ),
        pinned(
            "StringLike any account",
            Operators,
            "* in the account field",
            json!({"StringLike": {"aws:PrincipalArn": "arn:aws:iam::*:root"}}),
            vec![Public],
        ),
        pinned(
            "StringLike wildcard in the Region",
            Operators,
            "a * in the Region component of an ARN value still leaves the literal account pinned: an AWS-made ARN has no colon in its Region or account, so the * cannot reach another account",
            json!({"StringLike": {"aws:SourceArn": format!("arn:aws:sns:*:{OWN}:topic")}}),
            none(),
        ),
        pinned(
            "StringLike wildcard in the Region, stranger",
            Operators,
            "the same shape pinned to an untrusted account names that account, never PUBLIC",
            json!({"StringLike": {"aws:SourceArn": format!("arn:aws:sns:*:{STRANGER}:*")}}),
            vec![Account(STRANGER)],
        ),
        pinned(
            "StringEquals literal star ARN",
            Operators,
            "StringEquals reads * literally: no caller's ARN has account \"*\"",
            json!({"StringEquals": {"aws:PrincipalArn": "arn:aws:iam::*:root"}}),
            none(),
        ),
        pinned(
            "StringEquals own ARN",
            Operators,
            "an exact ARN in the own account",
            json!({"StringEquals": {"aws:PrincipalArn": own_role}}),
            none(),
        ),
        pinned(
            "StringEquals stranger ARN",
            Operators,
            "an exact ARN in another account",
            json!({"StringEquals": {"aws:PrincipalArn": stranger_role}}),
            vec![Account(STRANGER)],
        ),
        pinned(
            "ARN list own and stranger",
            Operators,
            "alternatives: the stranger's role is allowed",
            json!({"ArnLike": {"aws:PrincipalArn": [own_role, stranger_role]}}),
            vec![Account(STRANGER)],
        ),
        // --- Organisations ----------------------------------------------------
        pinned(
            "PrincipalOrgID own",
            GlobalKeys,
            "aws:PrincipalOrgID: the caller's organisation is ours",
            json!({"StringEquals": {"aws:PrincipalOrgID": OWN_ORG}}),
            none(),
        ),
        pinned(
            "PrincipalOrgID trusted",
            GlobalKeys,
            "an organisation in TRUSTED_ORG_IDS",
            json!({"StringEquals": {"aws:PrincipalOrgID": PARTNER_ORG}}),
            none(),
        ),
        pinned(
            "PrincipalOrgID foreign",
            GlobalKeys,
            "every account of another organisation",
            json!({"StringEquals": {"aws:PrincipalOrgID": FOREIGN_ORG}}),
            vec![Org(FOREIGN_ORG)],
        ),
        pinned(
            "PrincipalOrgID own or foreign",
            Operators,
            "alternatives: the foreign organisation is allowed",
            json!({"StringEquals": {"aws:PrincipalOrgID": [OWN_ORG, FOREIGN_ORG]}}),
            vec![Org(FOREIGN_ORG)],
        ),
        pinned(
            "PrincipalOrgID StringLike wildcard",
            Operators,
            "o-* matches every organisation",
            json!({"StringLike": {"aws:PrincipalOrgID": "o-*"}}),
            vec![Public],
        ),
        pinned(
            "PrincipalOrgID StringLike literal",
            Operators,
            "StringLike without wildcards is exact",
            json!({"StringLike": {"aws:PrincipalOrgID": OWN_ORG}}),
            none(),
        ),
        pinned(
            "PrincipalOrgID literal star",
            Operators,
            "StringEquals reads o-* literally: no organisation has that id",
            json!({"StringEquals": {"aws:PrincipalOrgID": "o-*"}}),
            none(),
        ),
        pinned(
            "SourceOrgID own",
            GlobalKeys,
            "aws:SourceOrgID pins the organisation as aws:SourceAccount pins the account",
            json!({"StringEquals": {"aws:SourceOrgID": OWN_ORG}}),
            none(),
        ),
        pinned(
            "SourceOrgPaths own OU",
            GlobalKeys,
            "aws:SourceOrgPaths is read by its first segment, as aws:PrincipalOrgPaths is",
            json!({"ForAnyValue:StringLike": {"aws:SourceOrgPaths": [format!("{OWN_ORG}/r-ab12/*")]}}),
            none(),
        ),
        pinned(
            "ResourceOrgID variable",
            GlobalKeys,
            "${aws:ResourceOrgID} is the organisation of the resource's account",
            json!({"StringEquals": {"aws:PrincipalOrgID": "${aws:ResourceOrgID}"}}),
            none(),
        ),
        pinned(
            "OrgPaths own OU",
            GlobalKeys,
            "the documented form: o-id/r-root/ou-id/* under ForAnyValue:StringLike pins the organisation",
            json!({"ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": [format!("{OWN_ORG}/r-ab12/ou-ab12-11111111/*")]}}),
            none(),
        ),
        pinned(
            "OrgPaths foreign OU",
            GlobalKeys,
            "a path in another organisation",
            json!({"ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": [format!("{FOREIGN_ORG}/r-ab12/*")]}}),
            vec![Org(FOREIGN_ORG)],
        ),
        pinned(
            "OrgPaths wildcard organisation",
            Operators,
            "o-*/... matches paths in every organisation",
            json!({"ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": ["o-*/r-ab12/*"]}}),
            vec![Public],
        ),
        pinned(
            "OrgPaths leading star",
            Operators,
            "*/ou-.../* matches that OU id under any organisation",
            json!({"ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": ["*/ou-ab12-11111111/*"]}}),
            vec![Public],
        ),
        pinned(
            "OrgPaths organisation prefix",
            Operators,
            "a * inside the first segment reaches other organisation ids",
            json!({"ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": [format!("{OWN_ORG}*")]}}),
            vec![Public],
        ),
        pinned(
            "OrgPaths StringLike own",
            Operators,
            "plain StringLike with the organisation literal",
            json!({"StringLike": {"aws:PrincipalOrgPaths": format!("{OWN_ORG}/*")}}),
            none(),
        ),
        pinned(
            "OrgPaths StringEquals own",
            Operators,
            "an exact path in the own organisation",
            json!({"ForAnyValue:StringEquals": {"aws:PrincipalOrgPaths": [format!("{OWN_ORG}/r-ab12/ou-ab12-11111111/")]}}),
            none(),
        ),
        pinned(
            "OrgPaths ForAllValues",
            Operators,
            "ForAllValues is true for a caller outside any organisation (empty set)",
            json!({"ForAllValues:StringLike": {"aws:PrincipalOrgPaths": [format!("{OWN_ORG}/*")]}}),
            vec![Public],
        ),
        c(
            "stranger in the own organisation",
            GlobalKeys,
            "a named account that must also be in a trusted organisation",
            vec![grant(
                root(STRANGER),
                json!({"StringEquals": {"aws:PrincipalOrgID": OWN_ORG}}),
            )],
            none(),
        ),
        c(
            "stranger in a foreign organisation",
            GlobalKeys,
            "a named untrusted account, whatever organisation it is in",
            vec![grant(
                root(STRANGER),
                json!({"StringEquals": {"aws:PrincipalOrgID": FOREIGN_ORG}}),
            )],
            vec![Account(STRANGER)],
        ),
        pinned(
            "account and own organisation",
            Evaluation,
            "both keys must hold: the account must be in our organisation",
            json!({"StringEquals": {"aws:PrincipalAccount": STRANGER, "aws:PrincipalOrgID": OWN_ORG}}),
            none(),
        ),
        // --- Conditions that do not pin the caller ---------------------------
        pinned(
            "ViaService alone",
            KmsKeyPolicies,
            "kms:ViaService limits the path, not the caller",
            json!({"StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}}),
            vec![Public],
        ),
        pinned(
            "SecureTransport",
            GlobalKeys,
            "TLS says nothing about who calls",
            json!({"Bool": {"aws:SecureTransport": "true"}}),
            vec![Public],
        ),
        pinned(
            "SourceIp",
            GlobalKeys,
            "an address range is not an account",
            json!({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}),
            vec![Public],
        ),
        pinned(
            "SourceVpce",
            GlobalKeys,
            "a VPC endpoint id is not an account",
            json!({"StringEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}}),
            vec![Public],
        ),
        pinned(
            "MFA age",
            GlobalKeys,
            "MFA says nothing about the account",
            json!({"NumericLessThan": {"aws:MultiFactorAuthAge": 300}}),
            vec![Public],
        ),
        pinned(
            "ViaService and own account",
            KmsKeyPolicies,
            "the account pin holds besides ViaService",
            json!({"StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com", "kms:CallerAccount": OWN}}),
            none(),
        ),
        pinned(
            "VersionStage",
            SecretsPolicies,
            "secretsmanager:VersionStage limits versions, not callers",
            json!({"StringEquals": {"secretsmanager:VersionStage": "AWSCURRENT"}}),
            vec![Public],
        ),
        // --- Deny statements --------------------------------------------------
        c(
            "open then deny all",
            Evaluation,
            "an explicit Deny overrides every Allow",
            vec![open(), deny(Value::Null)],
            none(),
        ),
        c(
            "deny outside own account",
            Evaluation,
            "who is left after the Deny is the own account",
            vec![
                open(),
                deny(json!({"StringNotEquals": {"aws:PrincipalAccount": OWN}})),
            ],
            none(),
        ),
        c(
            "deny outside own organisation",
            Evaluation,
            "who is left is the own organisation",
            vec![
                open(),
                deny(json!({"StringNotEquals": {"aws:PrincipalOrgID": OWN_ORG}})),
            ],
            none(),
        ),
        c(
            "deny outside own organisation by SourceOrgID",
            Evaluation,
            "StringNotEquals is true when the key is absent, so the Deny reaches every direct caller too; who is left is a service acting for our organisation",
            vec![
                open(),
                deny(json!({"StringNotEquals": {"aws:SourceOrgID": OWN_ORG}})),
            ],
            none(),
        ),
        c(
            "deny outside a foreign organisation",
            Evaluation,
            "who is left is another organisation: still open to it",
            vec![
                open(),
                deny(json!({"StringNotEquals": {"aws:PrincipalOrgID": FOREIGN_ORG}})),
            ],
            vec![Public],
        ),
        c(
            "deny outside a stranger",
            Evaluation,
            "who is left is the stranger",
            vec![
                open(),
                deny(json!({"StringNotEquals": {"aws:PrincipalAccount": STRANGER}})),
            ],
            vec![Public],
        ),
        c(
            "data perimeter deny",
            GlobalKeys,
            "the documented perimeter: deny outside the organisation unless an AWS service calls",
            vec![
                open(),
                deny(
                    json!({"StringNotEqualsIfExists": {"aws:PrincipalOrgID": OWN_ORG}, "BoolIfExists": {"aws:PrincipalIsAWSService": "false"}}),
                ),
            ],
            none(),
        ),
        c(
            "deny only over plain HTTP",
            Evaluation,
            "a Deny with another condition applies only sometimes",
            vec![
                open(),
                deny(
                    json!({"StringNotEquals": {"aws:PrincipalAccount": OWN}, "Bool": {"aws:SecureTransport": "false"}}),
                ),
            ],
            vec![Public],
        ),
        c(
            "deny fewer actions",
            Evaluation,
            "a Deny of some actions leaves the others allowed",
            vec![
                open(),
                json!({"Sid": "Deny", "Effect": "Deny", "Principal": "*", "Action": "NS:Get*", "Resource": "*"}),
            ],
            vec![Public],
        ),
        c(
            "NotAction deny against a wildcard allow",
            Evaluation,
            "Deny all but one action; the Allow of NS:* still grants that one",
            vec![
                open(),
                json!({"Sid": "Deny", "Effect": "Deny", "Principal": "*", "NotAction": "NS:Describe*", "Resource": "*"}),
            ],
            vec![Public],
        ),
        c(
            "NotAction allow, full deny",
            Evaluation,
            "a Deny of NS:* covers an Allow of everything but one action",
            vec![
                json!({"Sid": "Grant", "Effect": "Allow", "Principal": "*", "NotAction": "NS:Delete*", "Resource": "*"}),
                deny(Value::Null),
            ],
            none(),
        ),
        c(
            "deny the stranger",
            Evaluation,
            "an explicit Deny of the account removes its grant",
            vec![
                grant(root(STRANGER), Value::Null),
                json!({"Sid": "Deny", "Effect": "Deny", "Principal": root(STRANGER), "Action": "NS:*", "Resource": "*"}),
            ],
            none(),
        ),
        c(
            "deny another account",
            Evaluation,
            "a Deny of a different account leaves the grant",
            vec![
                grant(root(STRANGER), Value::Null),
                json!({"Sid": "Deny", "Effect": "Deny", "Principal": root(PARTNER), "Action": "NS:*", "Resource": "*"}),
            ],
            vec![Account(STRANGER)],
        ),
        c(
            "deny outside own roles by StringNotLike",
            Operators,
            "StringNotLike with a literal account prefix denies every other account",
            vec![
                open(),
                deny(
                    json!({"StringNotLike": {"aws:PrincipalArn": format!("arn:aws:iam::{OWN}:*")}}),
                ),
            ],
            none(),
        ),
        c(
            "deny outside own roles by ArnNotLike",
            Operators,
            "ArnNotLike denies callers outside the own account",
            vec![
                grant(root(STRANGER), Value::Null),
                deny(json!({"ArnNotLike": {"aws:PrincipalArn": format!("arn:aws:iam::{OWN}:*")}})),
            ],
            none(),
        ),
        c(
            "deny with a wildcard exception",
            Operators,
            "StringNotLike with * in the account excepts every account: not relied on",
            vec![
                open(),
                deny(json!({"StringNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/admin"}})),
            ],
            vec![Public],
        ),
        c(
            "foreign organisation grant, deny outside own",
            Evaluation,
            "callers must be in both organisations: none from the foreign one are left",
            vec![
                grant(
                    json!({"AWS": "*"}),
                    json!({"StringEquals": {"aws:PrincipalOrgID": FOREIGN_ORG}}),
                ),
                deny(json!({"StringNotEquals": {"aws:PrincipalOrgID": OWN_ORG}})),
            ],
            none(),
        ),
        c(
            "deny with IfExists on the allow side",
            Operators,
            "an allow pin with IfExists does not pin, the deny does not cover",
            vec![
                grant(
                    json!({"AWS": "*"}),
                    json!({"StringEqualsIfExists": {"aws:PrincipalOrgID": OWN_ORG}}),
                ),
                json!({"Sid": "Deny", "Effect": "Deny", "Principal": "*", "Action": "NS:Put*", "Resource": "*"}),
            ],
            vec![Public],
        ),
        // --- Service-specific documentation -----------------------------------
        c(
            "cross-account role with own-organisation pin",
            SecretsPolicies,
            "the guide's cross-account example narrowed to the organisation",
            vec![grant(
                json!({"AWS": stranger_role}),
                json!({"StringEquals": {"aws:PrincipalOrgID": OWN_ORG}}),
            )],
            none(),
        ),
        c(
            "key users in the own account",
            KmsKeyPolicies,
            "the default policy's key-users statement",
            vec![
                grant(root(OWN), Value::Null),
                json!({"Sid": "Allow use of the key", "Effect": "Allow", "Principal": {"AWS": own_role}, "Action": ["NS:Describe*", "NS:Get*"], "Resource": "*"}),
            ],
            none(),
        ),
        c(
            "grant to a stranger's role with ViaService",
            KmsKeyPolicies,
            "ViaService does not change whose role it is",
            vec![grant(
                json!({"AWS": stranger_role}),
                json!({"StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}}),
            )],
            vec![Account(STRANGER)],
        ),
        c(
            "public and a stranger in one policy",
            Evaluation,
            "each Allow is judged",
            vec![
                open(),
                json!({"Sid": "Grant", "Effect": "Allow", "Principal": root(STRANGER), "Action": "NS:*", "Resource": "*"}),
            ],
            vec![Public, Account(STRANGER)],
        ),
    ]
}

fn verdict(service: Service, statements: &[Value]) -> Vec<PolicyIssue> {
    let doc = json!({"Version": "2012-10-17", "Statement": statements})
        .to_string()
        .replace("NS:", &format!("{}:", service.namespace()));
    let trusted = vec![PARTNER.to_string()];
    let orgs = vec![OWN_ORG.to_string(), PARTNER_ORG.to_string()];
    let trust = Trust {
        own_account: Some(OWN),
        trusted: &trusted,
        trusted_orgs: &orgs,
    };
    analyse_policy(service, &doc, &trust).expect("every row is a legal policy")
}

fn expected(e: &Expect) -> PolicyIssue {
    let sid = Some("Grant".to_string());
    match e {
        Public => PolicyIssue::Public { sid },
        PublicNoSid => PolicyIssue::Public { sid: None },
        Account(a) => PolicyIssue::UntrustedAccount {
            sid,
            account: a.to_string(),
        },
        Org(o) => PolicyIssue::UntrustedOrg {
            sid,
            org: o.to_string(),
        },
        Unjudged(_) => unreachable!("compared by statement"),
    }
}

#[test]
fn verdicts_agree_with_aws_for_key_and_secret_policies() {
    let cases = cases();
    assert!(cases.len() >= 100, "{} rows", cases.len());
    let mut names = std::collections::BTreeSet::new();
    let mut wrong = Vec::new();
    for case in &cases {
        assert!(names.insert(case.name), "duplicate row {}", case.name);
        assert!(!case.reason.is_empty());
        for service in [Service::Kms, Service::SecretsManager] {
            let got = verdict(service, &case.statements);
            let (unjudged, mut rest): (Vec<_>, Vec<_>) = got
                .iter()
                .partition(|i| matches!(i, PolicyIssue::Unjudged { .. }));
            let got_unjudged: Vec<&str> = unjudged
                .iter()
                .map(|i| match i {
                    PolicyIssue::Unjudged { statement, .. } => statement.as_str(),
                    _ => unreachable!(),
                })
                .collect();
            let want_unjudged: Vec<&str> = case
                .expect
                .iter()
                .filter_map(|e| match e {
                    Unjudged(s) => Some(*s),
                    _ => None,
                })
                .collect();
            let mut want: Vec<PolicyIssue> = case
                .expect
                .iter()
                .filter(|e| !matches!(e, Unjudged(_)))
                .map(expected)
                .collect();
            want.sort();
            rest.sort();
            let rest: Vec<PolicyIssue> = rest.into_iter().cloned().collect();
            if rest != want || got_unjudged != want_unjudged {
                wrong.push(format!(
                    "{:?} {:?} ({:?}: {}): got {got:?}, want {:?}",
                    service, case.name, case.doc, case.reason, case.expect
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} verdicts disagree:\n{}",
        wrong.len(),
        cases.len() * 2,
        wrong.join("\n")
    );
}

#[test]
fn each_service_has_its_own_size_limit() {
    // KMS allows 32 KB, Secrets Manager 20 KB (20,480 characters).
    let filler = "x".repeat(24 * 1024);
    let doc = json!({"Statement": [grant(root(OWN), Value::Null)], "Id": filler}).to_string();
    let doc = doc.replace("NS:", "kms:");
    let own = Trust {
        own_account: Some(OWN),
        ..Trust::default()
    };
    assert_eq!(analyse_policy(Service::Kms, &doc, &own), Ok(vec![]));
    assert!(matches!(
        analyse_policy(Service::SecretsManager, &doc, &own),
        Err(replica_auditor::policy::PolicyError::TooLarge(n)) if n == doc.len()
    ));
}

#[test]
fn unjudged_statements_say_why_without_quoting_the_policy() {
    let issues = verdict(
        Service::SecretsManager,
        &[grant(
            json!({"AWS": "arn:aws:iam::4444*:role/SecretName-x"}),
            Value::Null,
        )],
    );
    let [PolicyIssue::Unjudged { statement, reason }] = issues.as_slice() else {
        panic!("{issues:?}");
    };
    assert_eq!(statement, "Grant");
    assert!(reason.contains("partial wildcard"), "{reason}");
    assert!(
        !reason.contains("4444") && !reason.contains("SecretName"),
        "{reason}"
    );
}
