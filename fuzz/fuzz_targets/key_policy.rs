//! Fuzz the KMS key policy analyser with hostile documents: any text must
//! become a verdict or a named error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use replica_auditor::policy::{Trust, analyse};

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = std::str::from_utf8(data) else { return };
    let trusted = vec!["444455556666".to_string()];
    let trust = Trust { own_account: Some("111122223333"), trusted: &trusted };
    if let Err(e) = analyse(doc, &trust) {
        assert!(!e.to_string().is_empty());
    }
});
