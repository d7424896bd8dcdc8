//! The layout's promises, checked against the lock files and the sources:
//! the pure core (`crates/replica-auditor-core`) and the fuzz crate built on
//! it pull in no AWS SDK, no Lambda runtime and no async runtime (tokio),
//! whatever depends on what, and the core's sources name none of them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Crates that make AWS calls, run a Lambda or run futures: none may be
/// under the core (its decisions are plain functions; the engine awaits).
fn forbidden(name: &str) -> bool {
    name.starts_with("aws-sdk-")
        || name.starts_with("aws-smithy-")
        || name == "aws-config"
        || name == "aws-runtime"
        || name.starts_with("lambda_runtime")
        || name == "tokio"
        || name.starts_with("tokio-")
}

/// The same crates as Rust paths name them (`aws_sdk_kms::`, `tokio::`).
const FORBIDDEN_PATHS: [&str; 6] = [
    "aws_sdk_",
    "aws_smithy_",
    "aws_config",
    "aws_runtime",
    "lambda_runtime",
    "tokio",
];

/// Package name -> the names it depends on, from a Cargo.lock (one
/// version of a name is enough here: the forbidden ones are
/// forbidden in every version).
fn graph(lock: &str) -> BTreeMap<String, BTreeSet<String>> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(lock)).unwrap();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for package in text.split("[[package]]").skip(1) {
        let name = package
            .lines()
            .find_map(|l| l.strip_prefix("name = \""))
            .and_then(|n| n.strip_suffix('"'))
            .expect("a package has a name")
            .to_string();
        let deps = package
            .split_once("dependencies = [")
            .map(|(_, rest)| rest.split(']').next().unwrap_or_default())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().trim_end_matches(',').strip_prefix('"'))
            .map(|d| d.split([' ', '"']).next().unwrap_or_default().to_string())
            .filter(|d| !d.is_empty());
        out.entry(name).or_default().extend(deps);
    }
    out
}

/// Everything `root` depends on, directly or not.
fn closure(g: &BTreeMap<String, BTreeSet<String>>, root: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![root.to_string()];
    while let Some(p) = todo.pop() {
        for d in g.get(&p).into_iter().flatten() {
            if seen.insert(d.clone()) {
                todo.push(d.clone());
            }
        }
    }
    seen
}

#[test]
fn the_core_needs_no_aws_sdk_and_no_lambda_runtime() {
    let g = graph("Cargo.lock");
    // The check can fail: the Lambda package itself has both.
    let lambda = closure(&g, "replica-auditor");
    assert!(lambda.contains("aws-sdk-secretsmanager") && lambda.contains("lambda_runtime"));
    assert!(lambda.contains("replica-auditor-core"));
    let core = closure(&g, "replica-auditor-core");
    assert!(
        core.contains("serde_json"),
        "the core's dependencies were read: {core:?}"
    );
    let bad: Vec<&String> = core.iter().filter(|d| forbidden(d)).collect();
    assert!(bad.is_empty(), "the core depends on {bad:?}");
}

#[test]
fn the_forbidden_list_names_what_the_lambda_package_uses() {
    let g = graph("Cargo.lock");
    let lambda = closure(&g, "replica-auditor");
    for name in [
        "tokio",
        "aws-config",
        "aws-smithy-runtime",
        "lambda_runtime",
    ] {
        assert!(lambda.contains(name), "{name} not under the Lambda package");
        assert!(forbidden(name), "{name} is not forbidden in the core");
    }
    assert!(!forbidden("aws_lambda_events"), "event types are data");
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// Not only the lock file: no source of the core and no line of its
/// manifest names tokio, an SDK crate or the Lambda runtime (a `use` behind
/// a feature, or a dependency not built yet, would not show in the lock).
#[test]
fn the_cores_sources_and_manifest_name_no_sdk_runtime_or_tokio() {
    let core = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/replica-auditor-core");
    let mut read = 0;
    let mut bad = Vec::new();
    for path in files(&core.join("src"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .chain([core.join("Cargo.toml")])
    {
        read += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        let manifest = path.ends_with("Cargo.toml");
        for (n, line) in text.lines().enumerate() {
            // Crate names in the manifest use dashes, paths underscores.
            let line = if manifest {
                line.replace('-', "_")
            } else {
                line.to_string()
            };
            let comment = if manifest { "#" } else { "//" };
            let code = line.split(comment).next().unwrap_or_default();
            for name in FORBIDDEN_PATHS {
                if code.contains(name) {
                    bad.push(format!("{}:{}: {name}", path.display(), n + 1));
                }
            }
        }
    }
    assert!(read > 10, "the core's sources were read ({read} files)");
    assert!(bad.is_empty(), "the core names {bad:#?}");
}

#[test]
fn the_fuzz_crate_builds_on_the_core_only() {
    let g = graph("fuzz/Cargo.lock");
    let fuzz = closure(&g, "replica-auditor-fuzz");
    assert!(fuzz.contains("replica-auditor-core"));
    assert!(
        !fuzz.contains("replica-auditor"),
        "the fuzz crate depends on the Lambda package"
    );
    let bad: Vec<&String> = fuzz.iter().filter(|d| forbidden(d)).collect();
    assert!(bad.is_empty(), "the fuzz crate depends on {bad:?}");
}

/// TLS is rustls on ring (`aws::http_client`): aws-lc, the SDK's default
/// provider, seeds its random generator from CPU jitter entropy on the
/// first handshake, about 35 ms of CPU in every cold start (half a second
/// at 128 MB). An SDK crate added with its `default-https-client` feature
/// would bring it back for every client through feature unification.
#[test]
fn the_tls_stack_is_rustls_on_ring_without_aws_lc() {
    let g = graph("Cargo.lock");
    let all = closure(&g, "replica-auditor");
    for name in ["aws-lc-rs", "aws-lc-sys", "aws-lc-fips-sys"] {
        assert!(!all.contains(name), "{name} is back in the dependency tree");
    }
    assert!(all.contains("ring") && all.contains("rustls"));
}
