//! Fuzz entry points: one function per byte parser the daemon exposes, each checking the
//! invariants that hold for every input (no panic; a password planted in the input never
//! appears in a message; URL normalising is a fixed point). The libFuzzer targets in
//! `fuzz/` and the stable-toolchain drivers (`fuzz_drivers`, `scripts/fuzz.sh`) both call
//! these, so both check the same things. A failed invariant panics: that is the finding.

/// Inputs longer than this are cut: every parser is a forward pass, so longer inputs only
/// slow the fuzzer down.
pub const MAX_INPUT_BYTES: usize = 64 * 1024;

/// A password the seeds plant in credential position.
pub const SECRET: &str = "Zq9SecretPw";
/// Planted by the URL driver; never in a seed or a token.
pub const PLANTED: &str = "Xk7PlantedPw";

/// True when a string value holds the password of a URL containing [`SECRET`] and the
/// secret occurs once in the input, so no message may show it. (Mutations also move it into
/// names, kinds or paths, where echoing the value is right.)
fn secret_is_a_password<'a>(input: &str, strings: impl IntoIterator<Item = &'a str>) -> bool {
    input.matches(SECRET).count() == 1
        && strings.into_iter().any(|s| {
            nv_core::url::SourceUrl::parse(s)
                .ok()
                .and_then(|u| u.password().map(|p| p.contains(SECRET)))
                .unwrap_or(false)
        })
}

fn toml_strings<'a>(v: &'a toml::de::DeValue<'_>, out: &mut Vec<&'a str>) {
    match v {
        toml::de::DeValue::String(s) => out.push(s),
        toml::de::DeValue::Array(a) => a.iter().for_each(|x| toml_strings(x.get_ref(), out)),
        toml::de::DeValue::Table(t) => t.values().for_each(|x| toml_strings(x.get_ref(), out)),
        _ => {}
    }
}

fn json_strings<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
    match v {
        serde_json::Value::String(s) => out.push(s),
        serde_json::Value::Array(a) => a.iter().for_each(|x| json_strings(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| json_strings(x, out)),
        _ => {}
    }
}

/// The config file parser, with `${VAR}` references both resolved and only checked.
pub fn check_config(text: &str) {
    let text = cut(text);
    let doc = toml::de::DeTable::parse(text).ok().map(|d| d.into_inner());
    let mut strings = Vec::new();
    if let Some(d) = &doc {
        d.values()
            .for_each(|v| toml_strings(v.get_ref(), &mut strings));
    }
    let secret = secret_is_a_password(text, strings);
    for env in [
        crate::config::EnvMode::Ignore,
        crate::config::EnvMode::Resolve,
    ] {
        if let Err(problems) = crate::config::parse(text, env) {
            for p in problems {
                let shown = p.to_string();
                assert!(!(secret && shown.contains(SECRET)), "leak: {shown}\n{text}");
            }
        }
    }
}

/// The source-URL parser and the redactors.
pub fn check_source_url(text: &str) {
    let text = cut(text);
    let redacted = nv_core::url::redact(text);
    assert_eq!(nv_core::url::redact(&redacted), redacted);
    if let Ok(u) = nv_core::url::SourceUrl::parse(text) {
        match nv_core::url::SourceUrl::parse(&u.normalized()) {
            Ok(again) => assert_eq!(again, u),
            Err(e) => panic!("normalised form of {text:?} does not parse: {e}"),
        }
        // The redacted form is the location with `***@` for the userinfo, so the
        // password shows only where the host or path spell it out themselves.
        if u.has_credentials() {
            let expect = u.location().replacen("://", "://***@", 1);
            assert_eq!(u.redacted(), expect, "{text}");
        }
    }
    let planted = format!("rtsp://user:{PLANTED}@{text}");
    let shown = nv_core::security::sanitize_error_string(&planted);
    assert!(!shown.contains(PLANTED), "{shown}");
}

/// What `POST /api/v1/feeds` runs on a body: JSON parsing, then the feed checks.
pub fn check_api_body(text: &str) {
    let text = cut(text);
    let Ok(json) = serde_json::from_str::<serde_json::Value>(text) else {
        return;
    };
    let mut strings = Vec::new();
    json_strings(&json, &mut strings);
    let secret = secret_is_a_password(text, strings.iter().copied());
    let config = crate::config::Config::default();
    match crate::assemble::feed_from_json(&config, json, &|n| n == "taken") {
        Ok(spec) => assert!(
            !(secret && spec.source.redacted().contains(SECRET)),
            "{text}"
        ),
        Err(problems) => {
            for p in problems {
                assert!(!(secret && p.contains(SECRET)), "leak: {p}\n{text}");
            }
        }
    }
}

/// What `PUT /api/v1/feeds/{id}/zones` runs on a body: JSON parsing, then the zone checks.
/// Any input gives a configuration the zone stage accepts, within the caps, or a list of
/// problems; never a panic.
pub fn check_zones_body(text: &str) {
    let text = cut(text);
    let Ok(json) = serde_json::from_str::<serde_json::Value>(text) else {
        return;
    };
    match crate::zone_edit::parse(json) {
        Ok(config) => {
            assert!(config.validate().is_ok(), "{text}");
            assert!(
                config.zones.len() + config.lines.len() <= crate::zone_edit::MAX_SHAPES,
                "{text}"
            );
            let editor = nv_stages::ZoneAnalytics::new(config.clone())
                .map(|z| z.editor())
                .unwrap_or_else(|e| panic!("accepted but not buildable: {e}\n{text}"));
            assert!(editor.submit(config).is_ok(), "{text}");
        }
        Err(problems) => assert!(!problems.is_empty(), "{text}"),
    }
}

fn cut(text: &str) -> &str {
    if text.len() <= MAX_INPUT_BYTES {
        return text;
    }
    let mut end = MAX_INPUT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
