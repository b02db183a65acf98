//! `POST /api/v1/feeds` bodies: any bytes give a feed or a list of problems, never a
//! panic, and a planted password never shows in a problem or in the feed's shown source.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        nextvision::fuzz::check_api_body(text);
    }
});
