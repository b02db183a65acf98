//! The config file parser: any text gives a config or a list of problems, never a panic,
//! and a planted password never shows in a problem message.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        nextvision::fuzz::check_config(text);
    }
});
