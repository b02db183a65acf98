//! The one source-URL parser: never panics, normalising is a fixed point, and neither the
//! redacted form nor the location ever shows the password.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nv_core::url::{redact, SourceUrl};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let shown = redact(text);
    assert_eq!(redact(&shown), shown);
    if let Ok(u) = SourceUrl::parse(text) {
        assert_eq!(SourceUrl::parse(&u.normalized()).ok(), Some(u.clone()));
        if u.has_credentials() {
            assert_eq!(u.redacted(), u.location().replacen("://", "://***@", 1));
        }
    }
});
