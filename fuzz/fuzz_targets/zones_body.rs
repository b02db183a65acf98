//! `PUT /api/v1/feeds/{id}/zones` bodies: any bytes give zones the stage accepts or a
//! list of problems, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        nextvision::fuzz::check_zones_body(text);
    }
});
