//! What the command line prints: reports as JSON Lines, CSV (one row per
//! finding) or a table for people, and the exit status they come to.

use std::io::{self, Write};

use replica_auditor::asff::{self, Context};
use replica_auditor::freshness::Freshness;
use replica_auditor::model::{Finding, Severity};
use replica_auditor::ocsf;
use replica_auditor::report::Report;

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people, most severe first.
    Table,
    /// JSON Lines: one `replica-auditor.report/v1` document per line.
    Json,
    /// A header, then one row per finding.
    Csv,
    /// A JSON array of the findings as Security Hub's BatchImportFindings
    /// takes them (ASFF), one finding per line.
    Asff,
    /// A JSON array of OCSF 1.3 Detection Findings (class_uid 2004), one
    /// finding per line.
    Ocsf,
}

impl Format {
    /// The default: a table for a terminal, JSON Lines for anything else.
    pub fn default_for(to_terminal: bool) -> Format {
        if to_terminal {
            Format::Table
        } else {
            Format::Json
        }
    }
}

/// The CSV columns, in order.
pub const CSV_HEADER: [&str; 9] = [
    "account",
    "region",
    "secret",
    "code",
    "severity",
    "message",
    "remediation",
    "finding_id",
    "secret_arn",
];

/// Write `reports` in `format`. `colour` applies to the table only; `ctx`
/// (the caller's account and Region) to ASFF and OCSF, for findings whose
/// secret and trigger name no account.
pub fn write(
    out: &mut dyn Write,
    reports: &[Report],
    format: Format,
    colour: bool,
    ctx: &Context<'_>,
) -> io::Result<()> {
    match format {
        Format::Json => write_json_lines(out, reports),
        Format::Csv => write_csv(out, reports),
        Format::Table => write_table(out, reports, colour),
        Format::Asff => write_array(
            out,
            reports.iter().flat_map(|r| {
                // Created and updated when the report was made.
                let at = asff::parse_timestamp(&r.generated_at)
                    .map(asff::timestamp)
                    .unwrap_or_else(|| r.generated_at.clone());
                asff::findings(r, ctx, &at)
                    .into_iter()
                    .map(|f| serde_json::to_value(f).expect("a finding serialises"))
            }),
        ),
        Format::Ocsf => write_array(out, reports.iter().flat_map(|r| ocsf::findings(r, ctx))),
    }
}

/// A JSON array, one element per line (`[` and `]` on lines of their own).
fn write_array(
    out: &mut dyn Write,
    items: impl Iterator<Item = serde_json::Value>,
) -> io::Result<()> {
    out.write_all(b"[")?;
    for (i, item) in items.enumerate() {
        out.write_all(if i == 0 { b"\n" } else { b",\n" })?;
        serde_json::to_writer(&mut *out, &item)?;
    }
    out.write_all(b"\n]\n")
}

fn write_json_lines(out: &mut dyn Write, reports: &[Report]) -> io::Result<()> {
    for r in reports {
        serde_json::to_writer(&mut *out, r)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// The account a report's findings are about: the secret's, else the trigger's.
fn account(report: &Report) -> String {
    asff::secret_or_trigger_account(report).unwrap_or_default()
}

fn write_csv(out: &mut dyn Write, reports: &[Report]) -> io::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(CSV_HEADER)?;
    for r in reports {
        let account = account(r);
        let arn = r.secret.arn.as_deref().unwrap_or("");
        for f in &r.findings {
            w.write_record([
                account.as_str(),
                f.region.as_deref().unwrap_or(""),
                r.secret.name.as_str(),
                f.code.as_str(),
                f.severity.as_str(),
                f.message.as_str(),
                f.remediation.as_str(),
                f.id.as_str(),
                arn,
            ])?;
        }
    }
    w.flush()
}

fn paint(text: &str, severity: Severity, colour: bool) -> String {
    if !colour {
        return text.to_string();
    }
    let code = match severity {
        Severity::Critical => "1;31",
        Severity::High => "31",
        Severity::Medium => "33",
        Severity::Low => "36",
        Severity::Info => "2",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

fn write_table(out: &mut dyn Write, reports: &[Report], colour: bool) -> io::Result<()> {
    let mut rows: Vec<(&Report, &Finding)> = reports
        .iter()
        .flat_map(|r| r.findings.iter().map(move |f| (r, f)))
        .collect();
    // Most severe first across every report; stable, so each report's own
    // order (code, Region) holds within a severity.
    rows.sort_by_key(|r| std::cmp::Reverse(r.1.severity));
    if rows.is_empty() {
        writeln!(out, "No findings.")?;
    } else {
        let width = |f: &dyn Fn(&(&Report, &Finding)) -> usize, title: &str| {
            rows.iter().map(f).max().unwrap_or(0).max(title.len())
        };
        let w_sev = width(&|r| r.1.severity.as_str().len(), "SEVERITY");
        let w_code = width(&|r| r.1.code.as_str().len(), "CODE");
        let w_secret = width(&|r| r.0.secret.name.chars().count(), "SECRET");
        let w_region = width(&|r| r.1.region.as_deref().unwrap_or("-").len(), "REGION");
        writeln!(
            out,
            "{:w_sev$}  {:w_code$}  {:w_secret$}  {:w_region$}  MESSAGE",
            "SEVERITY", "CODE", "SECRET", "REGION"
        )?;
        for (r, f) in &rows {
            let sev = format!("{:w_sev$}", f.severity.as_str());
            writeln!(
                out,
                "{}  {:w_code$}  {:w_secret$}  {:w_region$}  {}",
                paint(&sev, f.severity, colour),
                f.code.as_str(),
                r.secret.name,
                f.region.as_deref().unwrap_or("-"),
                f.message
            )?;
        }
    }
    write_versions(out, reports)?;
    for r in reports {
        if let Some(line) = replicas_line(r) {
            writeln!(out, "{line}")?;
        }
        for a in &r.actions {
            writeln!(
                out,
                "Remediation of {} in {}: {} {}: {}",
                r.secret.name, a.region, a.action, a.outcome, a.detail
            )?;
        }
    }
    let audited: Vec<&Report> = reports.iter().filter(|r| r.sweep.is_none()).collect();
    let with_findings = audited.iter().filter(|r| !r.findings.is_empty()).count();
    writeln!(
        out,
        "{} finding{} in {} of {} secret{} reported.",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        with_findings,
        audited.len(),
        if audited.len() == 1 { "" } else { "s" }
    )?;
    for s in reports.iter().filter_map(|r| r.sweep.as_ref()) {
        writeln!(
            out,
            "Sweep of {}: {} secrets seen, {} audited, {} with findings, {} not reached, {} ms.",
            s.regions.join(", "),
            s.secrets_seen,
            s.secrets_audited,
            s.secrets_with_findings,
            s.not_reached,
            s.duration_ms
        )?;
    }
    Ok(())
}

/// The version table (issue 25): for every audited secret with replicas,
/// the primary's AWSCURRENT version id, then each replica's, with how far
/// behind it is ([`version_state`]). Nothing when no secret has replicas.
fn write_versions(out: &mut dyn Write, reports: &[Report]) -> io::Result<()> {
    let mut rows: Vec<[String; 5]> = Vec::new();
    for r in reports.iter().filter(|r| r.sweep.is_none()) {
        if r.replicas.is_empty() {
            continue;
        }
        let version = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        rows.push([
            r.secret.name.clone(),
            r.secret
                .primary_region
                .clone()
                .unwrap_or_else(|| "-".into()),
            "primary".into(),
            version(&r.current_version),
            "-".into(),
        ]);
        for p in &r.replicas {
            rows.push([
                r.secret.name.clone(),
                p.region.clone(),
                p.status
                    .as_ref()
                    .map_or("no status", |s| s.as_str())
                    .to_string(),
                version(&p.current_version),
                version_state(p.freshness),
            ]);
        }
    }
    if rows.is_empty() {
        return Ok(());
    }
    let title = ["SECRET", "REGION", "STATUS", "AWSCURRENT", "VERSION"];
    let widths: Vec<usize> = (0..4)
        .map(|i| {
            rows.iter()
                .map(|row| row[i].chars().count())
                .max()
                .unwrap_or(0)
                .max(title[i].len())
        })
        .collect();
    let line = |cells: [&str; 5]| {
        let mut text = String::new();
        for (cell, w) in cells.iter().zip(&widths) {
            text.push_str(&format!("{cell:w$}  "));
        }
        text.push_str(cells[4]);
        text
    };
    writeln!(out, "\n{}", line(title))?;
    for row in &rows {
        writeln!(
            out,
            "{}",
            line([&row[0], &row[1], &row[2], &row[3], &row[4]])
        )?;
    }
    Ok(())
}

/// A replica's VERSION cell: the same version as the primary, behind since
/// the primary's version was made (its age), or unknown.
fn version_state(f: Freshness) -> String {
    match f {
        Freshness::Current => "same version".into(),
        Freshness::Behind {
            primary_version_age_seconds: Some(age),
        } => format!("behind since {}", age_text(age)),
        Freshness::Behind {
            primary_version_age_seconds: None,
        } => "behind (since unknown)".into(),
        Freshness::Unknown => "unknown".into(),
    }
}

/// An age for people: seconds, minutes, hours and minutes, or days and hours.
fn age_text(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..120 => format!("{s} s"),
        120..7200 => format!("{} min", s / 60),
        7200..172_800 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// A secret with cross-account replication: its Region replicas and,
/// beside them, its cross-account replicas (or primary), with their
/// statuses. `None` without cross-account replication (the table is then
/// as it always was).
fn replicas_line(r: &Report) -> Option<String> {
    let x = r.cross_account.as_ref()?;
    let status = |s: &Option<replica_auditor::model::ReplicationState>| {
        s.as_ref().map_or("no status", |s| s.as_str()).to_string()
    };
    let account = |arn: &str| {
        replica_auditor::arn::parse_secret_arn(arn).map_or("?".to_string(), |a| a.account)
    };
    let mut parts: Vec<String> = r
        .replicas
        .iter()
        .map(|p| format!("{} {}", p.region, status(&p.status)))
        .collect();
    parts.extend(x.replicas.iter().map(|c| {
        format!(
            "account {} {} (cross-account replica {})",
            account(&c.replica_arn),
            status(&c.status),
            c.replica_arn
        )
    }));
    if let Some(p) = &x.primary {
        parts.push(format!(
            "account {} {} (cross-account primary {})",
            account(&p.primary_arn),
            status(&p.status),
            p.primary_arn
        ));
    }
    Some(format!(
        "Replicas of {}: {}.",
        r.secret.name,
        parts.join("; ")
    ))
}

/// `--fail-on`: whether any finding is at or above `fail_on`.
pub fn has_findings_at(reports: &[Report], fail_on: Severity) -> bool {
    reports
        .iter()
        .flat_map(|r| &r.findings)
        .any(|f| f.severity >= fail_on)
}

#[cfg(test)]
mod tests {
    use super::*;
    use replica_auditor::model::{Code, Snapshot};
    use replica_auditor::report::{TriggerInfo, build};

    fn report(name: &str, findings: &[(Code, &str, &str)]) -> Report {
        let findings = findings
            .iter()
            .map(|(code, region, message)| Finding {
                id: format!("{name}-{}", code.as_str()),
                code: *code,
                severity: code.severity(),
                region: Some(region.to_string()),
                message: message.to_string(),
                remediation: "fix it".into(),
                cause: None,
                gap_kind: None,
            })
            .collect();
        let mut r = build(
            TriggerInfo {
                source: "cli".into(),
                event_name: "audit".into(),
                event_id: None,
                event_time: None,
                region: Some("us-west-2".into()),
                account: Some("123456789012".into()),
                actor: None,
                error_code: None,
            },
            &Snapshot::empty(name),
            findings,
            Vec::new(),
            Severity::Info,
            "id".into(),
            "now".into(),
        );
        r.secret.arn = Some(format!(
            "arn:aws:secretsmanager:us-west-2:111122223333:secret:{name}-AbCdEf"
        ));
        r
    }

    fn render(reports: &[Report], format: Format, colour: bool) -> String {
        let mut out = Vec::new();
        let ctx = Context {
            own_account: Some("999999999999"),
            home_region: "us-west-2",
        };
        write(&mut out, reports, format, colour, &ctx).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_table_shows_cross_account_replicas_beside_region_replicas() {
        use replica_auditor::cross_account::{Links, ReplicaLink};
        use replica_auditor::report::ReplicaInfo;
        let mut r = report("production/DBWest", &[]);
        let plain = render(std::slice::from_ref(&r), Format::Table, false);
        assert!(
            !plain.contains("Replicas of"),
            "unchanged without a link: {plain}"
        );
        r.replicas = vec![ReplicaInfo {
            region: "us-east-1".into(),
            status: Some("InSync".into()),
            status_message: None,
            kms_key_id: None,
            current_version: None,
            freshness: Freshness::Unknown,
        }];
        let replica = "arn:aws:secretsmanager:us-west-2:222233334444:secret:member/Healthy-MeMbEr";
        r.cross_account = Some(Links {
            replicas: vec![ReplicaLink {
                replica_arn: replica.into(),
                role_arn: None,
                status: Some("Failed".into()),
                status_message: Some("Access denied".into()),
            }],
            ..Links::default()
        });
        let text = render(&[r], Format::Table, false);
        // The line docs/cross-account.md shows.
        let line = format!(
            "Replicas of production/DBWest: us-east-1 InSync; account 222233334444 Failed (cross-account replica {replica})."
        );
        assert!(text.lines().any(|l| l == line), "{text}");
    }

    #[test]
    fn the_table_shows_each_replicas_current_version_and_how_far_behind() {
        use replica_auditor::report::ReplicaInfo;
        let mut r = report("production/DBWest", &[]);
        let plain = render(std::slice::from_ref(&r), Format::Table, false);
        assert!(!plain.contains("AWSCURRENT"), "no replicas: {plain}");
        r.secret.primary_region = Some("us-west-2".into());
        r.current_version = Some("v-new".into());
        let replica = |region: &str, version: Option<&str>, freshness| ReplicaInfo {
            region: region.into(),
            status: Some("InSync".into()),
            status_message: None,
            kms_key_id: None,
            current_version: version.map(str::to_string),
            freshness,
        };
        r.replicas = vec![
            replica("us-east-1", Some("v-new"), Freshness::Current),
            replica(
                "eu-west-1",
                Some("v-old"),
                Freshness::Behind {
                    primary_version_age_seconds: Some(7500),
                },
            ),
            replica("ap-south-1", None, Freshness::Unknown),
        ];
        let text = render(&[r], Format::Table, false);
        let table: Vec<&str> = text.lines().skip(2).take(5).collect();
        assert_eq!(text.lines().nth(1), Some(""), "a blank line first: {text}");
        assert_eq!(
            table,
            [
                "SECRET             REGION      STATUS   AWSCURRENT  VERSION",
                "production/DBWest  us-west-2   primary  v-new       -",
                "production/DBWest  us-east-1   InSync   v-new       same version",
                "production/DBWest  eu-west-1   InSync   v-old       behind since 2 h 5 min",
                "production/DBWest  ap-south-1  InSync   -           unknown",
            ],
            "{text}"
        );
        assert_eq!(age_text(59), "59 s");
        assert_eq!(age_text(900), "15 min");
        assert_eq!(age_text(200_000), "2 d 7 h");
    }

    #[test]
    fn csv_quotes_commas_quotes_and_line_breaks() {
        let hostile = "a \"quoted\", comma\nand a line break";
        let r = report("prod/db", &[(Code::ReplicaFailed, "us-east-1", hostile)]);
        let text = render(&[r], Format::Csv, false);
        let mut rd = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(rd.headers().unwrap().iter().collect::<Vec<_>>(), CSV_HEADER);
        let rows: Vec<csv::StringRecord> = rd.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 1);
        assert_eq!(&rows[0][0], "111122223333", "the account is the secret's");
        assert_eq!(&rows[0][1], "us-east-1");
        assert_eq!(&rows[0][2], "prod/db");
        assert_eq!(&rows[0][3], "REPLICA_FAILED");
        assert_eq!(&rows[0][4], "HIGH");
        assert_eq!(&rows[0][5], hostile);
        assert!(
            text.contains("\"a \"\"quoted\"\", comma\nand a line break\""),
            "{text}"
        );
    }

    #[test]
    fn json_lines_are_one_report_each() {
        let reports = [
            report("a", &[(Code::KeyDisabled, "us-east-1", "m1")]),
            report("b", &[]),
        ];
        let text = render(&reports, Format::Json, false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        for (line, r) in lines.iter().zip(&reports) {
            let back: Report = serde_json::from_str(line).unwrap();
            assert_eq!(&back, r);
        }
    }

    #[test]
    fn the_table_puts_the_most_severe_first_and_colours_only_when_asked() {
        let reports = [
            report(
                "low",
                &[(Code::ReplicaInProgress, "eu-west-1", "still going")],
            ),
            report(
                "bad",
                &[
                    (Code::KeyAwsManaged, "us-east-1", "managed"),
                    (Code::KeyPendingDeletion, "us-east-1", "doomed"),
                ],
            ),
        ];
        let text = render(&reports, Format::Table, false);
        let order: Vec<&str> = text
            .lines()
            .skip(1)
            .take(3)
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(order, ["CRITICAL", "MEDIUM", "LOW"], "{text}");
        assert!(!text.contains('\x1b'), "no colour: {text}");
        assert!(
            text.contains("3 findings in 2 of 2 secrets reported."),
            "{text}"
        );
        let coloured = render(&reports, Format::Table, true);
        assert!(coloured.contains("\x1b[1;31mCRITICAL\x1b[0m"), "{coloured}");
    }

    #[test]
    fn asff_and_ocsf_are_json_arrays_of_every_finding() {
        let reports = [
            report(
                "a",
                &[
                    (Code::KeyDisabled, "us-east-1", "m1"),
                    (Code::ReplicaFailed, "eu-west-1", "m2"),
                ],
            ),
            report("b", &[]),
            report("c", &[(Code::KeyAwsManaged, "us-west-2", "m3")]),
        ];
        let text = render(&reports, Format::Asff, false);
        let all: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(text.lines().count(), 5, "one finding per line: {text}");
        // Each report's findings in its order (most severe, then by code).
        assert_eq!(all[0]["GeneratorId"], "REPLICA_FAILED");
        assert_eq!(all[0]["Region"], "eu-west-1");
        assert_eq!(all[1]["GeneratorId"], "KEY_DISABLED");
        assert_eq!(
            all[1]["AwsAccountId"], "111122223333",
            "the secret's account"
        );
        assert_eq!(all[2]["GeneratorId"], "KEY_AWS_MANAGED");
        let ocsf: Vec<serde_json::Value> =
            serde_json::from_str(&render(&reports, Format::Ocsf, false)).unwrap();
        assert_eq!(ocsf.len(), 3);
        assert!(ocsf.iter().all(|f| f["class_uid"] == 2004));
        assert_eq!(render(&[report("b", &[])], Format::Asff, false), "[\n]\n");
    }

    #[test]
    fn fail_on_is_at_or_above() {
        let reports = [report("a", &[(Code::KeyAwsManaged, "us-east-1", "m")])];
        assert!(has_findings_at(&reports, Severity::Low));
        assert!(has_findings_at(&reports, Severity::Medium));
        assert!(!has_findings_at(&reports, Severity::High));
        assert!(!has_findings_at(&[report("b", &[])], Severity::Info));
    }
}
