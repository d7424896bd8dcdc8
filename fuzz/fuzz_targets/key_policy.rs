//! Fuzz the policy analyser with hostile documents, as a KMS key policy and
//! as a Secrets Manager resource policy: any text must become a verdict or
//! a named error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use replica_auditor_core::policy::{Service, Trust, analyse_policy};

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = std::str::from_utf8(data) else { return };
    let trusted = vec!["444455556666".to_string()];
    let orgs = vec!["o-a1b2c3d4e5".to_string()];
    let trust = Trust { own_account: Some("111122223333"), trusted: &trusted, trusted_orgs: &orgs };
    for service in [Service::Kms, Service::SecretsManager] {
        if let Err(e) = analyse_policy(service, doc, &trust) {
            assert!(!e.to_string().is_empty());
        }
    }
});
