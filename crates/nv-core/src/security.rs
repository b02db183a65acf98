//! Credential redaction and sanitising of untrusted strings.
//!
//! Every function here makes one forward pass over its input: the scan index only moves
//! forward, so no input can make them loop (the reference system once hung here).

use crate::url::REDACTED;
/// Longest sanitised string, in bytes, before the truncation marker.
pub const SANITIZE_MAX_BYTES: usize = 512;
const TRUNCATED_MARKER: &str = "...[truncated]";

/// Replaces the userinfo of a URL (`user:pass@`) with `***@`, splitting by the rule of
/// [`crate::url`] (unencoded reserved characters in the password included). Strings that
/// are not URLs come back unchanged apart from an authority-like `user:pass@host` prefix.
pub fn redact_url(url: &str) -> String {
    crate::url::redact(url)
}

/// True for bytes that end a URL embedded in free text. Quotes and brackets do not: a
/// password may contain them (`Debug` output escapes a quote as `\"`), and redacting too
/// much is harmless where too little leaks.
fn ends_url(b: u8) -> bool {
    b.is_ascii_whitespace() || b.is_ascii_control()
}

fn is_scheme_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')
}

/// Redacts the userinfo of every `scheme://` URL found in free text.
pub fn redact_urls_in_string(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut search_from = 0;
    while let Some(rel) = text[search_from..].find("://") {
        let sep = search_from + rel;
        let mut start = sep;
        while start > copied && is_scheme_byte(bytes[start - 1]) {
            start -= 1;
        }
        let mut end = sep + 3;
        while end < bytes.len() && !ends_url(bytes[end]) {
            end += 1;
        }
        if start < sep {
            out.push_str(&text[copied..start]);
            out.push_str(&redact_url(&text[start..end]));
            copied = end;
        }
        search_from = end.max(sep + 3);
    }
    out.push_str(&text[copied..]);
    out
}

/// Keys whose values are masked, matched case-insensitively. Longer keys come first so
/// that `authorization: bearer ` wins over `bearer `.
const SECRET_KEYS: &[&str] = &[
    "authorization: bearer ",
    "authorization: basic ",
    "authorization=",
    "password=",
    "passwd=",
    "secret=",
    "token=",
    "bearer ",
    "auth=",
    "pwd=",
    "key=",
];

fn secret_delimiter(b: u8) -> bool {
    b.is_ascii_whitespace() || matches!(b, b'&' | b';' | b',' | b'\'' | b'"')
}

fn starts_with_ignore_case(hay: &[u8], needle: &str) -> bool {
    hay.len() >= needle.len() && hay[..needle.len()].eq_ignore_ascii_case(needle.as_bytes())
}

/// Makes an untrusted backend string (a GStreamer error, say) safe to log or publish:
/// control characters become spaces, URL credentials and `key=value` secrets are masked,
/// and the result is capped at [`SANITIZE_MAX_BYTES`] plus a truncation marker.
pub fn sanitize_error_string(raw: &str) -> String {
    let redacted = redact_urls_in_string(raw);
    let bytes = redacted.as_bytes();
    let mut out = String::with_capacity(redacted.len().min(SANITIZE_MAX_BYTES + 16));
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        let key = SECRET_KEYS
            .iter()
            .find(|k| starts_with_ignore_case(&bytes[i..], k));
        match key {
            Some(key) => {
                let value_start = i + key.len();
                let mut value_end = value_start;
                while value_end < bytes.len() && !secret_delimiter(bytes[value_end]) {
                    value_end += 1;
                }
                out.push_str(&redacted[copied..value_start]);
                if value_end > value_start {
                    out.push_str(REDACTED);
                }
                copied = value_end;
                i = value_end.max(i + 1);
            }
            None => i += 1,
        }
    }
    out.push_str(&redacted[copied..]);
    let cleaned: String = out
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    truncate_at_boundary(cleaned, SANITIZE_MAX_BYTES)
}

fn truncate_at_boundary(mut s: String, max_bytes: usize) -> String {
    if s.len() <= max_bytes {
        return s;
    }
    let mut cut = max_bytes;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    s.push_str(TRUNCATED_MARKER);
    s
}

/// True for `rtsp://` (plain) URLs, case-insensitively.
pub fn is_insecure_rtsp(url: &str) -> bool {
    url.len() >= 7 && url[..7].eq_ignore_ascii_case("rtsp://")
}

/// `rtsp://…` becomes `rtsps://…`; anything else is returned unchanged.
pub fn promote_rtsp_to_tls(url: &str) -> String {
    if is_insecure_rtsp(url) {
        format!("rtsps://{}", &url[7..])
    } else {
        url.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn redacts_userinfo() {
        assert_eq!(
            redact_url("rtsp://admin:hunter2@10.0.0.5:554/s1"),
            "rtsp://***@10.0.0.5:554/s1"
        );
        assert_eq!(redact_url("rtsp://cam/s1?x=a@b"), "rtsp://cam/s1?x=a@b");
        assert_eq!(redact_url("rtsp://u:p@ss@host/x"), "rtsp://***@host/x");
        assert_eq!(redact_url("http://host/path"), "http://host/path");
        assert_eq!(redact_url("user:pw@host"), "***@host");
    }

    #[test]
    fn redacts_urls_inside_text() {
        let msg = "Could not open rtsp://admin:pw@cam:554/x (and http://u:v@h/y), retry";
        let out = redact_urls_in_string(msg);
        assert_eq!(
            out,
            "Could not open rtsp://***@cam:554/x (and http://***@h/y), retry"
        );
        assert_eq!(redact_urls_in_string("://@@://"), "://@@://");
    }

    #[test]
    fn unencoded_reserved_characters_never_leak_from_text() {
        for pw in [
            "Pl4nted/S3cret-9x7",
            "Pl4nt@d/S3cr:t#9x7",
            "a?b#c@d:e/f",
            "q\\\"uo'te)]",
        ] {
            let url = format!("rtsp://viewer:{pw}@127.0.0.1:8554/test");
            assert_eq!(redact_url(&url), "rtsp://***@127.0.0.1:8554/test");
            // serde's "invalid type" message quotes the value with Debug escaping.
            let msg = format!("invalid type: string {url:?}, expected a sequence");
            let out = sanitize_error_string(&msg);
            assert!(!out.contains("S3cr") && !out.contains("uo'te"), "{out}");
            assert!(out.contains("***@127.0.0.1:8554/test"), "{out}");
        }
    }

    #[test]
    fn sanitizes_secrets_and_controls() {
        let out =
            sanitize_error_string("auth failed password=abc;Token=xyz\nAuthorization: Bearer t0k");
        assert!(
            !out.contains("abc") && !out.contains("xyz") && !out.contains("t0k"),
            "{out}"
        );
        assert!(!out.contains('\n'));
        assert_eq!(sanitize_error_string("key="), "key=");
        let long = "x".repeat(2000);
        let out = sanitize_error_string(&long);
        assert_eq!(out.len(), SANITIZE_MAX_BYTES + TRUNCATED_MARKER.len());
        let multibyte = "é".repeat(600);
        assert!(sanitize_error_string(&multibyte).ends_with(TRUNCATED_MARKER));
    }

    #[test]
    fn tls_promotion() {
        assert!(is_insecure_rtsp("RTSP://x"));
        assert_eq!(promote_rtsp_to_tls("rtsp://h/x"), "rtsps://h/x");
        assert_eq!(promote_rtsp_to_tls("rtsps://h/x"), "rtsps://h/x");
    }

    fn secret() -> impl Strategy<Value = String> {
        "[A-Za-z0-9]{6,12}".prop_map(|s| format!("S3cr{s}"))
    }

    proptest! {
        #[test]
        fn password_never_survives_redaction(user in "[a-z]{1,8}", pw in secret(), host in "[a-z]{1,10}", path in "[a-z/]{0,10}", noise in ".{0,40}") {
            let url = format!("rtsp://{user}:{pw}@{host}:554/{path}");
            prop_assert!(!redact_url(&url).contains(&pw));
            let text = format!("{noise} failed {url} {noise}");
            prop_assert!(!redact_urls_in_string(&text).contains(&pw));
            prop_assert!(!sanitize_error_string(&text).contains(&pw));
        }

        #[test]
        fn redaction_is_idempotent_and_total(s in ".{0,200}") {
            let once = redact_urls_in_string(&s);
            prop_assert_eq!(redact_urls_in_string(&once), once.clone());
            let sanitized = sanitize_error_string(&s);
            prop_assert!(sanitized.len() <= SANITIZE_MAX_BYTES + TRUNCATED_MARKER.len());
            prop_assert!(!sanitized.chars().any(char::is_control));
        }

        #[test]
        fn secret_values_are_masked(key in prop::sample::select(vec!["password=", "TOKEN=", "Secret=", "api_key="]), value in secret()) {
            let out = sanitize_error_string(&format!("error {key}{value} more"));
            prop_assert!(!out.contains(&value));
        }
    }
}
