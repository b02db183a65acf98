//! Redaction and sanitising must terminate, never panic, never grow without bound, and
//! never let a URL password through.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nv_core::security::{redact_url, redact_urls_in_string, sanitize_error_string, SANITIZE_MAX_BYTES};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = redact_url(text);
    let once = redact_urls_in_string(text);
    assert_eq!(redact_urls_in_string(&once), once);
    let clean = sanitize_error_string(text);
    assert!(clean.len() <= SANITIZE_MAX_BYTES + 16);
    let url = format!("rtsp://user:Zq9SecretPw@{text}");
    assert!(!redact_urls_in_string(&url).contains("Zq9SecretPw"));
});
