//! The command line binary, run as a person or a script runs it, against
//! moto: exit statuses, each output format parsed, stdout kept for the
//! output alone, `replay` against the Lambda binary's own answers, and no
//! secret value read.

mod support;

use std::collections::BTreeMap;
use std::process::Stdio;

use serde_json::Value;
use support::fault_proxy::FaultProxy;
use support::{World, lambda, root};

const CLI: &str = env!("CARGO_BIN_EXE_replica-auditor");

/// What one run of the command line came to.
struct Run {
    status: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// stdout as JSON Lines: every line one report document.
    fn reports(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}"));
                assert_eq!(v["schema"], "replica-auditor.report/v1", "{l}");
                v
            })
            .collect()
    }
}

/// Run the CLI against `endpoint` (us-west-2, moto's test credentials,
/// no AWS files of this machine) with `args` and extra `env`.
async fn cli(endpoint: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = tokio::process::Command::new(CLI)
        .env_clear()
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().copied())
        .args(["--region", "us-west-2", "--endpoint-url", endpoint])
        .args(args)
        .current_dir(root())
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run the CLI");
    Run {
        status: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(out.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("UTF-8 stderr"),
    }
}

/// Exactly one line on stderr, naming `what`; nothing on stdout; no panic.
fn one_line_error(run: &Run, what: &str) {
    assert_eq!(run.status, 2, "stderr: {}", run.stderr);
    assert!(run.stdout.is_empty(), "stdout: {}", run.stdout);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    assert!(lines[0].starts_with("replica-auditor: "), "{}", run.stderr);
    assert!(lines[0].contains(what), "{what} not in {}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

/// Exit 2, nothing on stdout, and stderr exactly `line`: a message only
/// one path of the command line prints.
fn only_line(run: &Run, line: &str) {
    assert_eq!(run.status, 2, "stderr: {}", run.stderr);
    assert!(run.stdout.is_empty(), "stdout: {}", run.stdout);
    assert_eq!(run.stderr, format!("{line}\n"));
}

#[tokio::test]
async fn exit_statuses_and_formats() {
    let world = World::start();
    let moto = world.moto.endpoint.as_str();

    // A healthy secret: nothing at LOW or above, exit 0.
    let clean = cli(
        moto,
        &["audit", "production/DBWest", "--format", "json"],
        &[],
    )
    .await;
    assert_eq!(clean.status, 0, "{}", clean.stderr);
    let reports = clean.reports();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0]["secret"]["name"], "production/DBWest");
    assert_eq!(reports[0]["findings"], Value::Array(vec![]));
    assert_eq!(reports[0]["trigger"]["source"], "cli");
    assert_eq!(reports[0]["trigger"]["actor"], support::MOTO_CALLER_ARN);

    // A failed replica (HIGH), named by ARN and by name: exit 1; --fail-on
    // above the worst finding: exit 0 with the same output.
    let clash_arn = &world.secrets["production/Clash"];
    let args = [
        "audit",
        clash_arn.as_str(),
        "production/DoomedKey",
        "--format",
        "json",
    ];
    let failing = cli(moto, &args, &[]).await;
    assert_eq!(failing.status, 1, "{}", failing.stderr);
    let reports = failing.reports();
    assert_eq!(reports.len(), 2, "one report per secret, in order");
    assert_eq!(reports[0]["secret"]["arn"], clash_arn.as_str());
    assert!(
        support::codes(&reports[0]).contains(&("REPLICA_FAILED".into(), Some("us-east-1".into())))
    );
    assert!(
        support::codes(&reports[1])
            .iter()
            .any(|(c, _)| c == "KEY_PENDING_DELETION")
    );
    let mut args_critical = args.to_vec();
    args_critical.extend(["--fail-on", "CRITICAL"]);
    assert_eq!(
        cli(moto, &args_critical, &[]).await.status,
        1,
        "KEY_PENDING_DELETION is CRITICAL"
    );
    let clash_only = [
        "audit",
        clash_arn.as_str(),
        "--fail-on",
        "critical",
        "--format",
        "json",
    ];
    assert_eq!(
        cli(moto, &clash_only, &[]).await.status,
        0,
        "HIGH is below CRITICAL"
    );

    // CSV: a header, then one row per finding of the JSON reports.
    let csv_run = cli(
        moto,
        &[
            "audit",
            clash_arn.as_str(),
            "production/DoomedKey",
            "--format",
            "csv",
        ],
        &[],
    )
    .await;
    assert_eq!(csv_run.status, 1, "{}", csv_run.stderr);
    let mut rd = csv::Reader::from_reader(csv_run.stdout.as_bytes());
    let header: Vec<String> = rd.headers().unwrap().iter().map(str::to_string).collect();
    assert_eq!(
        header[..6],
        ["account", "region", "secret", "code", "severity", "message"]
    );
    let rows: Vec<csv::StringRecord> = rd.records().map(Result::unwrap).collect();
    let mut from_csv: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r[2].to_string(), r[3].to_string(), r[1].to_string()))
        .collect();
    let mut from_json: Vec<(String, String, String)> = reports
        .iter()
        .flat_map(|r| {
            r["findings"].as_array().unwrap().iter().map(move |f| {
                (
                    r["secret"]["name"].as_str().unwrap().to_string(),
                    f["code"].as_str().unwrap().to_string(),
                    f["region"].as_str().unwrap_or("").to_string(),
                )
            })
        })
        .collect();
    from_csv.sort();
    from_json.sort();
    assert_eq!(from_csv, from_json);
    assert!(rows.iter().all(|r| &r[0] == "123456789012"));

    // The table, written to a file with --output: most severe first, no
    // colour (not a terminal).
    let file = std::env::temp_dir().join(format!("replica-auditor-cli-{}.txt", std::process::id()));
    let table = cli(
        moto,
        &[
            "audit",
            clash_arn.as_str(),
            "production/DoomedKey",
            "--format",
            "table",
            "--output",
            file.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert_eq!(table.status, 1, "{}", table.stderr);
    assert!(table.stdout.is_empty());
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::remove_file(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("SEVERITY"), "{text}");
    assert!(lines[1].starts_with("CRITICAL"), "{text}");
    assert!(!text.contains('\x1b'), "{text}");

    // --role-arn: the audit runs as the assumed role (moto's STS).
    let role = cli(
        moto,
        &[
            "--role-arn",
            "arn:aws:iam::123456789012:role/auditor",
            "audit",
            "production/DBWest",
        ],
        &[],
    )
    .await;
    assert_eq!(role.status, 0, "{}", role.stderr);
    let actor = role.reports()[0]["trigger"]["actor"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(actor.contains(":assumed-role/auditor/"), "{actor}");

    // Exit 2: configuration (flag or variable), usage, credentials.
    let bad_flag = cli(
        moto,
        &["audit", "x", "--allowed-regions", "us-east-1,Mars"],
        &[],
    )
    .await;
    one_line_error(&bad_flag, "--allowed-regions (ALLOWED_REGIONS)");
    let bad_var = cli(moto, &["audit", "x"], &[("TRUSTED_ACCOUNT_IDS", "12345")]).await;
    one_line_error(&bad_var, "TRUSTED_ACCOUNT_IDS");
    // --remediate without a table: the command line's own sentence, which
    // speaks of the flag, not the Lambda's (a generic configuration error
    // would say `configuration error in --state-table (STATE_TABLE): is
    // required when REMEDIATION...`).
    let no_table = cli(moto, &["audit", "x", "--remediate"], &[]).await;
    only_line(
        &no_table,
        "replica-auditor: --remediate needs --state-table or STATE_TABLE: the DynamoDB table that \
         holds the remediation leases, so that one retry per secret and Region runs at a time; or \
         use --dry-run",
    );
    let unreachable = cli("http://127.0.0.1:9", &["audit", "x"], &[]).await;
    one_line_error(&unreachable, "credential error: sts:GetCallerIdentity");
    let usage = cli(moto, &["audit", "x", "--format", "yaml"], &[]).await;
    assert_eq!(usage.status, 2, "clap's usage errors: {}", usage.stderr);
    assert!(usage.stdout.is_empty());
    let no_secret = cli(moto, &["audit"], &[]).await;
    assert_eq!(no_secret.status, 2);
    let publish = cli(
        moto,
        &["replay", "events/create-secret.json", "--publish"],
        &[],
    )
    .await;
    assert_eq!(
        publish.status, 2,
        "--publish needs a topic: {}",
        publish.stderr
    );
    assert!(publish.stderr.contains("--findings-topic-arn"));
}

#[tokio::test]
async fn sweep_stdout_is_json_lines_and_logs_go_to_stderr() {
    let world = World::start();
    // Logs at info, so there is something to keep off stdout.
    let run = cli(
        &world.moto.endpoint,
        &["sweep", "--regions", "us-west-2"],
        &[("RUST_LOG", "info")],
    )
    .await;
    assert_eq!(run.status, 1, "the demo world has findings: {}", run.stderr);
    let reports = run.reports();
    let (summary, per_secret) = reports.split_last().unwrap();
    let sweep = &summary["sweep"];
    assert_eq!(sweep["regions"], serde_json::json!(["us-west-2"]));
    assert_eq!(
        sweep["secrets_with_findings"].as_u64().unwrap() as usize,
        per_secret.len(),
        "every secret with findings, then the summary"
    );
    assert!(per_secret.iter().all(|r| r["sweep"].is_null()));
    assert!(per_secret.len() >= 5, "{}", run.stdout);
    // stderr has the logs (JSON, one object a line) and no progress bar:
    // it is not a terminal.
    assert!(run.stderr.contains("\"sweep summary\""), "{}", run.stderr);
    for line in run.stderr.lines() {
        let log: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        assert!(log["level"].is_string(), "{line}");
    }
    assert!(!run.stderr.contains('\r') && !run.stderr.contains("secrets audited"));
    // Quiet by default: no logs at all without RUST_LOG.
    let quiet = cli(&world.moto.endpoint, &["sweep"], &[]).await;
    assert_eq!(quiet.status, 1);
    assert_eq!(quiet.reports().len(), reports.len());
    assert!(!quiet.stderr.contains("\"INFO\""), "{}", quiet.stderr);
}

/// A command line sweep reads every resource policy, ledger or not, unless
/// told `--policy-refresh`; with `--state-table` it records its pass.
#[tokio::test]
async fn a_command_line_sweep_reads_every_policy_unless_told_otherwise() {
    let world = World::start();
    let table = world.state_table.clone();
    let sweep = |extra: &'static [&'static str]| {
        let mut args = vec!["sweep", "--state-table", table.as_str()];
        args.extend(extra);
        let endpoint = world.moto.endpoint.clone();
        async move {
            let run = cli(&endpoint, &args, &[]).await;
            run.reports().last().unwrap()["sweep"].clone()
        }
    };
    let first = sweep(&[]).await;
    let audited = first["secrets_audited"].clone();
    assert_eq!(first["resource_policies_read"], audited, "{first}");
    world.an_hour_after_the_last_sweep().await;
    let again = sweep(&[]).await;
    assert_eq!(again["resource_policies_read"], audited, "{again}");
    assert_eq!(again["resource_policies_not_due"], 0, "{again}");
    world.an_hour_after_the_last_sweep().await;
    let as_lambda = sweep(&["--policy-refresh", "1000"]).await;
    let not_due = as_lambda["resource_policies_not_due"].as_u64().unwrap();
    assert!(
        not_due > 0 && not_due <= audited.as_u64().unwrap(),
        "{as_lambda}"
    );
}

/// A report with what differs between two runs of the same audit taken out.
fn comparable(mut report: Value) -> Value {
    let o = report.as_object_mut().unwrap();
    o.remove("report_id");
    o.remove("generated_at");
    if let Some(sweep) = o.get_mut("sweep").and_then(Value::as_object_mut) {
        // Timing, and cache counts that depend on which audit ran first.
        for k in [
            "duration_ms",
            "kms_cache_hits",
            "kms_calls",
            "replicas_from_listing",
            "replica_listing_calls",
        ] {
            sweep.remove(k);
        }
    }
    // The age of the primary's current version, which grows between runs.
    for replica in o
        .get_mut("replicas")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(f) = replica.get_mut("freshness").and_then(Value::as_object_mut) {
            f.remove("primary_version_age_seconds");
        }
    }
    report
}

#[tokio::test]
async fn replay_of_every_sample_event_matches_the_lambda() {
    let world = World::start();
    let mut files: Vec<_> = std::fs::read_dir(root().join("events"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 10, "{files:?}");
    let env = world.function_env(&world.moto.endpoint, &[("REMEDIATION", "off")]);
    let mut compared = 0;
    for file in &files {
        let name = file.file_name().unwrap().to_str().unwrap();
        let event: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
        let mut function =
            lambda::Environment::start(&env, &event, &format!("replay-{name}")).await;
        let (outcome, returned) = function.result().await;
        drop(function);
        assert_eq!(outcome, "response", "{name}: {returned}");
        let run = cli(
            &world.moto.endpoint,
            &[
                "replay",
                file.to_str().unwrap(),
                "--format",
                "json",
                "--fail-on",
                "CRITICAL",
            ],
            &[],
        )
        .await;
        assert!(run.status == 0 || run.status == 1, "{name}: {}", run.stderr);
        let reports = run.reports();
        if returned["status"] == "ignored" {
            assert!(reports.is_empty(), "{name}: {}", run.stdout);
            assert!(
                run.stderr.contains("not an event the auditor acts on"),
                "{}",
                run.stderr
            );
            continue;
        }
        // A task (the account list's refresh) answers with its status; the
        // command line's may differ (without STATE_TABLE it shares nothing).
        if returned.get("schema").is_none() && returned["status"].is_string() {
            assert!(reports.is_empty(), "{name}: {}", run.stdout);
            assert!(
                run.stderr.contains("no report: {") && run.stderr.contains("\"status\""),
                "{name}: {}",
                run.stderr
            );
            continue;
        }
        // The Lambda returns the event's report, or the sweep's summary
        // (its per-secret reports went to SNS); the CLI prints that last.
        let last = reports
            .last()
            .unwrap_or_else(|| panic!("{name}: no report"));
        assert_eq!(
            comparable(last.clone()),
            comparable(returned.clone()),
            "{name}"
        );
        if returned["sweep"].is_object() {
            let with_findings = returned["sweep"]["secrets_with_findings"].as_u64().unwrap();
            assert_eq!(reports.len() as u64, with_findings + 1, "{name}");
        } else {
            assert_eq!(reports.len(), 1, "{name}");
        }
        compared += 1;
    }
    assert!(compared >= 10, "{compared}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_value_is_ever_read() {
    let world = World::start();
    let proxy = FaultProxy::start(&world.moto.endpoint, vec![]).await;
    let first = root().join("events/create-secret.json");
    let runs = [
        vec!["audit", "production/DBWest", "production/Clash"],
        vec!["sweep"],
        vec![
            "replay",
            first.to_str().unwrap(),
            "events/scheduled-sweep.json",
        ],
        vec!["audit", "production/Clash", "--dry-run"],
    ];
    for args in runs {
        let run = cli(&proxy.endpoint, &args, &[]).await;
        assert!(run.status < 2, "{args:?}: {}", run.stderr);
    }
    let described = proxy.calls("DescribeSecret").len();
    assert!(
        described > 10,
        "the runs went through the proxy: {described}"
    );
    let mut read: BTreeMap<&str, usize> = BTreeMap::new();
    for action in ["GetSecretValue", "BatchGetSecretValue"] {
        read.insert(action, proxy.calls(action).len());
    }
    assert_eq!(read.values().sum::<usize>(), 0, "{read:?}");
}

/// `audit`'s table shows each replica's AWSCURRENT version id and how far
/// behind the primary's it is (issue 25). moto's replicas share the
/// primary's versions, so the proxy gives the primary a version two hours
/// old that its replica lacks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_shows_each_replicas_current_version() {
    let world = World::start();
    let proxy = FaultProxy::start(&world.moto.endpoint, vec![]).await;
    let version_rows = |run: &Run| -> Vec<String> {
        let lines: Vec<&str> = run.stdout.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.starts_with("SECRET "))
            .unwrap_or_else(|| panic!("no version table: {}", run.stdout));
        lines[at..at + 3]
            .iter()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    };
    let audit = || {
        cli(
            &proxy.endpoint,
            &["audit", "production/DBWest", "--format", "table"],
            &[],
        )
    };
    // moto: the replica holds the primary's one version.
    let run = audit().await;
    assert_eq!(run.status, 0, "{}", run.stderr);
    let current = run
        .stdout
        .lines()
        .find(|l| l.contains(" primary "))
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap()
        .to_string();
    assert_eq!(
        version_rows(&run),
        [
            "SECRET REGION STATUS AWSCURRENT VERSION".to_string(),
            format!("production/DBWest us-west-2 primary {current} -"),
            format!("production/DBWest us-east-1 InSync {current} same version"),
        ]
    );
    // The primary's AWSCURRENT made two hours ago; the replica, InSync,
    // still holding the one before.
    use support::freshness::{V_NEW as NEW, V_OLD as OLD, seconds_ago};
    let primary = world.secrets["production/DBWest"].clone();
    let two_hours_ago = seconds_ago(7200);
    proxy.add_describe_members(
        &primary,
        serde_json::json!({
            "VersionIdsToStages": {NEW: ["AWSCURRENT"], OLD: ["AWSPREVIOUS"]},
            "LastChangedDate": two_hours_ago,
        }),
    );
    proxy.add_describe_members(
        &primary.replace("us-west-2", "us-east-1"),
        serde_json::json!({"VersionIdsToStages": {OLD: ["AWSCURRENT"]}}),
    );
    let run = audit().await;
    assert_eq!(run.status, 1, "REPLICA_STALE: {}", run.stderr);
    assert_eq!(
        version_rows(&run),
        [
            "SECRET REGION STATUS AWSCURRENT VERSION".to_string(),
            format!("production/DBWest us-west-2 primary {NEW} -"),
            format!("production/DBWest us-east-1 InSync {OLD} behind since 2 h 0 min"),
        ]
    );
}

/// The Lambda binary stays lean: none of the command line's crates is
/// linked into it (the dev build keeps symbol names, so they would show).
#[test]
fn the_lambda_binary_links_none_of_the_command_lines_crates() {
    let lambda = std::fs::read(env!("CARGO_BIN_EXE_replica-auditor-lambda")).unwrap();
    let cli = std::fs::read(CLI).unwrap();
    let holds = |bin: &[u8], name: &str| bin.windows(name.len()).any(|w| w == name.as_bytes());
    for krate in ["clap_builder", "indicatif", "csv_core"] {
        assert!(
            holds(&cli, krate),
            "the CLI links {krate}: the check can see it"
        );
        assert!(!holds(&lambda, krate), "the Lambda binary links {krate}");
    }
}

/// No EMF anywhere by default (METRICS=on in the environment
/// notwithstanding); with `--metrics`, one line per audited secret on
/// stderr, Trigger `cli`, valid by the specification; stdout stays reports.
#[tokio::test]
async fn metrics_only_on_stderr_and_only_when_asked() {
    use support::emf::{emf_lines, validate};
    let world = World::start();
    let args = [
        "audit",
        "production/DBWest",
        "production/WeakReplica",
        "--format",
        "json",
    ];
    let env = [("METRICS", "on")];
    let quiet = cli(&world.moto.endpoint, &args, &env).await;
    assert_eq!(quiet.reports().len(), 2);
    assert!(emf_lines(&quiet.stderr).is_empty(), "{}", quiet.stderr);
    let with = [&args[..], &["--metrics"]].concat();
    let run = cli(&world.moto.endpoint, &with, &env).await;
    assert_eq!(run.reports().len(), 2, "stdout holds only the reports");
    let lines = emf_lines(&run.stderr);
    assert_eq!(lines.len(), 2, "{}", run.stderr);
    for line in &lines {
        validate(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(line["Trigger"], "cli");
        assert_eq!(line["Audits"], 1);
    }
    let weak = lines
        .iter()
        .find(|l| l["secret"] == "production/WeakReplica")
        .expect("the weak replica's line");
    assert_eq!(weak["FindingsMedium"], 1, "{weak}");
}

/// `--format asff` and `--format ocsf`: every finding of the JSON run, as
/// Security Hub and OCSF take them; `--security-hub` imports them.
#[tokio::test]
async fn asff_and_ocsf_formats_and_the_security_hub_import() {
    let world = World::start();
    let moto = world.moto.endpoint.as_str();
    let secrets = [
        "production/DisabledKey",
        "production/PublicKey",
        "production/DBWest",
    ];
    let run = |format: &'static str| {
        let mut args = vec!["audit"];
        args.extend(secrets);
        args.extend(["--format", format]);
        async move { cli(moto, &args, &[]).await }
    };
    let json = run("json").await;
    let findings: Vec<Value> = json
        .reports()
        .iter()
        .flat_map(|r| r["findings"].as_array().unwrap().clone())
        .collect();
    assert!(findings.len() >= 2, "{}", json.stdout);

    let asff = run("asff").await;
    assert_eq!(asff.status, 1, "{}", asff.stderr);
    let imported: Vec<Value> = serde_json::from_str(&asff.stdout).expect("a JSON array");
    assert_eq!(
        imported.len(),
        findings.len(),
        "one per finding: {}",
        asff.stdout
    );
    assert_eq!(
        asff.stdout.lines().count(),
        findings.len() + 2,
        "one per line"
    );
    for (a, f) in imported.iter().zip(&findings) {
        for key in replica_auditor::asff::REQUIRED_FIELDS {
            assert!(a.get(key).is_some(), "{key}: {a}");
        }
        assert_eq!(a["GeneratorId"], f["code"]);
        assert_eq!(a["Description"], f["message"]);
        assert!(
            a["Id"]
                .as_str()
                .unwrap()
                .ends_with(f["id"].as_str().unwrap()),
            "{a}"
        );
        assert_eq!(a["AwsAccountId"], "123456789012");
        assert_eq!(a["Compliance"]["Status"], "FAILED");
        assert_eq!(a["RecordState"], "ACTIVE");
    }
    let ocsf = run("ocsf").await;
    let detections: Vec<Value> = serde_json::from_str(&ocsf.stdout).expect("a JSON array");
    assert_eq!(detections.len(), findings.len());
    for (d, a) in detections.iter().zip(&imported) {
        assert_eq!(d["class_uid"], 2004);
        assert_eq!(d["type_uid"], 200401);
        assert_eq!(d["finding_info"]["uid"], a["Id"], "the same stable id");
    }

    // --security-hub needs the state table.
    let mut args = vec!["audit", secrets[0], "--security-hub"];
    only_line(
        &cli(moto, &args, &[]).await,
        "replica-auditor: --security-hub needs --state-table or STATE_TABLE: the DynamoDB table \
         that keeps each secret's active Security Hub findings, so that fixed problems are \
         resolved there",
    );
    // With it: the findings are in Security Hub, in their own Regions.
    args.extend([
        "--state-table",
        world.state_table.as_str(),
        "--format",
        "asff",
    ]);
    let hub = cli(moto, &args, &[]).await;
    assert_eq!(hub.status, 1, "{}", hub.stderr);
    let printed: Vec<Value> = serde_json::from_str(&hub.stdout).unwrap();
    let sdk = world.sdk().await;
    let mut held = Vec::new();
    for region in ["us-west-2", "us-east-1"] {
        held.extend(support::security_hub::findings(&sdk, region).await);
    }
    let mut held_ids: Vec<&str> = held.iter().filter_map(|f| f.id()).collect();
    let mut printed_ids: Vec<&str> = printed.iter().map(|f| f["Id"].as_str().unwrap()).collect();
    held_ids.sort_unstable();
    printed_ids.sort_unstable();
    assert_eq!(
        held_ids, printed_ids,
        "what was printed is what was imported"
    );
}
