//! Fuzz the EventBridge/CloudTrail event parser: any bytes must become an
//! event or a named error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = replica_auditor_core::event::parse_bytes(data) {
        assert!(!e.to_string().is_empty());
    }
});
