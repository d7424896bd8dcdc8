//! Notifications people read, made from a report (pure, no I/O):
//! - [`email_text`]: the plain text SNS sends to email subscribers (the
//!   `email` member of a `MessageStructure=json` message);
//! - [`chat_message`]: the custom-notification document Amazon Q Developer
//!   in chat applications (formerly AWS Chatbot) renders in Slack or Teams.
//!
//! Secret names, status messages and actors are outside text: both forms
//! put them on one line (no forged lines), and the chat form also defuses
//! the characters Slack reads as markup or mentions.

use serde_json::{Value, json};

use crate::model::Finding;
use crate::report::{self, Report};

/// The email text stays well inside SNS's 256 KB message with the JSON
/// report beside it (see the SNS sink's `MAX_BODY_BYTES`).
pub const MAX_EMAIL_BYTES: usize = 32 * 1024;
/// Chat cards are read on a phone: the description stays short, and the
/// full report is one click away in the findings topic's subscribers.
pub const MAX_CHAT_DESCRIPTION_CHARS: usize = 3000;
pub const MAX_CHAT_TITLE_CHARS: usize = 250;
pub const MAX_CHAT_NEXT_STEPS: usize = 5;
const MAX_CHAT_STEP_CHARS: usize = 500;

/// The account a report concerns: the secret ARN's, else the trigger's.
fn account(r: &Report) -> Option<String> {
    r.secret
        .arn
        .as_deref()
        .and_then(|arn| crate::arn::parse_secret_arn(arn).map(|a| a.account))
        .or_else(|| r.trigger.account.clone())
}

fn count(n: usize, one: &str) -> String {
    format!("{n} {one}{}", if n == 1 { "" } else { "s" })
}

/// Plain text for an email: what is wrong, where, and what to do.
pub fn email_text(r: &Report) -> String {
    let line = |s: &str| report::one_line(s);
    let mut out = String::new();
    out.push_str(&report::subject(r));
    out.push_str("\n\n");
    if let Some(sweep) = &r.sweep {
        out.push_str(&format!(
            "Sweep of {} in {}: {} audited, {} with findings, {} published, {} not reached.\n",
            count(sweep.secrets_seen, "secret"),
            sweep.regions.join(", "),
            sweep.secrets_audited,
            sweep.secrets_with_findings,
            count(sweep.reports_published, "report"),
            sweep.not_reached,
        ));
        if !sweep.by_code.is_empty() {
            let codes: Vec<String> = sweep
                .by_code
                .iter()
                .map(|(c, n)| format!("{c} {n}"))
                .collect();
            out.push_str(&format!("Findings by code: {}.\n", codes.join(", ")));
        }
    } else {
        out.push_str(&format!("Secret:  {}\n", line(&r.secret.name)));
        if let Some(arn) = &r.secret.arn {
            out.push_str(&format!("ARN:     {}\n", line(arn)));
        }
        if let Some(a) = account(r) {
            out.push_str(&format!("Account: {a}\n"));
        }
        if let Some(p) = &r.secret.primary_region {
            out.push_str(&format!("Primary: {p}\n"));
        }
    }
    let t = &r.trigger;
    let mut trigger = format!("Trigger: {}", line(&t.event_name));
    if let Some(actor) = &t.actor {
        trigger.push_str(&format!(" by {}", line(actor)));
    }
    if let Some(time) = &t.event_time {
        trigger.push_str(&format!(" at {}", line(time)));
    }
    if let Some(code) = &t.error_code {
        trigger.push_str(&format!(" (the call failed: {})", line(code)));
    }
    out.push_str(&trigger);
    out.push('\n');

    if !r.findings.is_empty() {
        out.push_str(&format!(
            "\n{}, most severe first:\n",
            count(r.summary.count, "finding")
        ));
    }
    // 600 bytes kept for the "more" line, the actions' header, the report id.
    let entries = r
        .findings
        .iter()
        .enumerate()
        .map(|(i, f)| email_finding(i + 1, f));
    let listed = append_within(&mut out, entries, MAX_EMAIL_BYTES - 600, str::len);
    // Findings the email could not hold, or the report itself left out.
    if listed < r.summary.count {
        out.push_str(&format!(
            "\n... and {} more: see the JSON report {} (and the function's logs) for all of them.\n",
            count(r.summary.count - listed, "finding"),
            r.report_id
        ));
    }
    if !r.actions.is_empty() {
        out.push_str("\nRemediation:\n");
        let entries = r.actions.iter().map(|a| {
            let detail = line(&a.detail);
            format!("- {} {}: {}. {detail}\n", a.action, a.region, a.outcome)
        });
        if append_within(&mut out, entries, MAX_EMAIL_BYTES - 200, str::len) < r.actions.len() {
            out.push_str("- (more actions in the JSON report)\n");
        }
    }
    out.push_str(&format!(
        "\nReport {} generated {} by replica-auditor.\n",
        r.report_id, r.generated_at
    ));
    out
}

/// Append entries to `out` while it stays within `max` (as `size`
/// measures); how many went in.
fn append_within(
    out: &mut String,
    entries: impl Iterator<Item = String>,
    max: usize,
    size: impl Fn(&str) -> usize,
) -> usize {
    let mut n = 0;
    for entry in entries {
        if size(out) + size(&entry) > max {
            break;
        }
        out.push_str(&entry);
        n += 1;
    }
    n
}

/// " in REGION", or nothing for a finding about no one Region.
fn in_region(f: &Finding) -> String {
    f.region
        .as_deref()
        .map(|r| format!(" in {r}"))
        .unwrap_or_default()
}

fn email_finding(n: usize, f: &Finding) -> String {
    format!(
        "\n{n}. {} {}{}\n   {}\n   What to do: {}\n",
        f.severity.as_str(),
        f.code.as_str(),
        in_region(f),
        report::one_line(&f.message),
        report::one_line(&f.remediation),
    )
}

/// Outside text made safe for a chat card: one line; `&`, `<` and `>`
/// escaped as Slack requires, so no mention (`<!channel>`, `<@U123>`) or
/// link can be formed from it; and no backtick to close a code span early.
/// Names keep their `_` and `*`, so they can be copied as they are.
fn chat_safe(s: &str) -> String {
    report::one_line(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('`', "'")
}

/// The Amazon Q Developer custom notification for a report.
pub fn chat_message(r: &Report) -> Value {
    let mut description = String::new();
    if let Some(sweep) = &r.sweep {
        description.push_str(&format!(
            "Sweep of {} in {}: *{}* with findings, {} not reached.",
            count(sweep.secrets_seen, "secret"),
            sweep.regions.join(", "),
            sweep.secrets_with_findings,
            sweep.not_reached
        ));
    } else {
        description.push_str(&format!("Secret `{}`", chat_safe(&r.secret.name)));
        if let Some(a) = account(r) {
            description.push_str(&format!(" in account {a}"));
        }
        if let Some(p) = &r.secret.primary_region {
            description.push_str(&format!(", primary Region {p}"));
        }
        description.push('.');
    }
    let chars = |s: &str| s.chars().count();
    let entries = r.findings.iter().map(|f| {
        format!(
            "\n• *{}* `{}`{}: {}",
            f.severity.as_str(),
            f.code.as_str(),
            in_region(f),
            chat_safe(&f.message)
        )
    });
    // 80 characters kept for the "more" line.
    let listed = append_within(
        &mut description,
        entries,
        MAX_CHAT_DESCRIPTION_CHARS - 80,
        chars,
    );
    if listed < r.summary.count {
        description.push_str(&format!(
            "\n…and {} more in report {}.",
            count(r.summary.count - listed, "finding"),
            r.report_id
        ));
    }
    let entries = r.actions.iter().map(|a| {
        let outcome = chat_safe(a.outcome.as_str());
        format!("\nRemediation {} {}: *{outcome}*.", a.action, a.region)
    });
    append_within(&mut description, entries, MAX_CHAT_DESCRIPTION_CHARS, chars);
    let mut next_steps: Vec<String> = Vec::new();
    for f in &r.findings {
        let step = report::cut(&chat_safe(&f.remediation), MAX_CHAT_STEP_CHARS);
        if !next_steps.contains(&step) {
            next_steps.push(step);
        }
        if next_steps.len() == MAX_CHAT_NEXT_STEPS {
            break;
        }
    }
    let mut keywords: Vec<String> = r
        .summary
        .highest_severity
        .map(|s| s.as_str().to_string())
        .into_iter()
        .collect();
    keywords.extend(r.codes().into_iter().take(4).map(str::to_string));
    let thread = r
        .secret
        .arn
        .clone()
        .unwrap_or_else(|| format!("replica-auditor:{}", report::one_line(&r.secret.name)));
    let mut context = serde_json::Map::new();
    context.insert("report_id".into(), json!(r.report_id));
    context.insert("event_name".into(), json!(r.trigger.event_name));
    if let Some(a) = account(r) {
        context.insert("account".into(), json!(a));
    }
    json!({
        "version": "1.0",
        "source": "custom",
        "id": r.report_id,
        "content": {
            "textType": "client-markdown",
            "title": report::cut(&chat_safe(&report::subject(r)), MAX_CHAT_TITLE_CHARS),
            "description": description,
            "nextSteps": next_steps,
            "keywords": keywords,
        },
        "metadata": {
            "threadId": report::cut(&thread, 256),
            "summary": report::cut(&chat_safe(&report::subject(r)), MAX_CHAT_TITLE_CHARS),
            "eventType": "ReplicaAuditorReport",
            "relatedResources": r.secret.arn.iter().collect::<Vec<_>>(),
            "additionalContext": context,
        }
    })
}
