//! The one parser for URLs that may carry credentials (`rtsp://user:pass@host/path`).
//!
//! Camera passwords often contain reserved characters written unencoded
//! (`rtsp://viewer:Pl4nt@d/S3cr:t#9x7@10.0.0.5/stream`). A strict RFC 3986 parser would end
//! the authority at the first `/`, `?` or `#` and show the rest of the password as a path.
//! The rule here, used both to connect and to redact, is:
//!
//! * the userinfo ends at the **last** `@` of the URL, provided the user name (the text
//!   before the first `:`) holds no `/`, `?` or `#`, or there is no `/`, `?` or `#` before
//!   that `@` at all;
//! * otherwise the URL is read the RFC way: the authority ends at the first `/`, `?` or `#`.
//!
//! Consequence (documented in the README): in a URL with a password, an `@` in the path or
//! query must be written `%40`. The user name is the text before the first `:` of the
//! userinfo; the password is everything after it (`:` included). Both are percent-decoded
//! once; [`SourceUrl::normalized`] writes them back percent-encoded, so the stored URL is
//! unambiguous for every other tool.
//!
//! Every function makes forward passes only; none allocates more than a small multiple of
//! its input.

use std::fmt;

/// What replaces credentials in anything shown to a user.
pub const REDACTED: &str = "***";

/// Why a URL was refused. Every message shows the URL redacted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("`{redacted}` is not a URL (expected scheme://host[:port][/path])")]
    NotAUrl { redacted: String },
    #[error("`{redacted}` has no host")]
    NoHost { redacted: String },
    #[error("`{redacted}` has an invalid host `{host}`")]
    BadHost { redacted: String, host: String },
    #[error("`{redacted}` has an invalid port `{port}` (expected 1..=65535)")]
    BadPort { redacted: String, port: String },
    #[error(
        "`{redacted}` contains whitespace or control characters (percent-encode them, e.g. %20)"
    )]
    BadCharacter { redacted: String },
}

/// A parsed URL: credentials decoded and kept apart from everything that may be shown.
#[derive(Clone, PartialEq, Eq)]
pub struct SourceUrl {
    scheme: String,
    user: Option<String>,
    password: Option<String>,
    /// As written; IPv6 literals keep their brackets.
    host: String,
    port: Option<u16>,
    /// Path, query and fragment as written (empty, or starting with `/`, `?` or `#`).
    rest: String,
}

/// The byte index (within `after_scheme`, the text after `://`) of the `@` that ends the
/// userinfo, if there is one. This is the single place the splitting rule lives.
pub fn userinfo_end(after_scheme: &str) -> Option<usize> {
    let last_at = after_scheme.rfind('@')?;
    let candidate = &after_scheme[..last_at];
    let first_delim = candidate.find(['/', '?', '#']).unwrap_or(candidate.len());
    if first_delim == candidate.len() || candidate[..first_delim].contains(':') {
        return Some(last_at);
    }
    let authority_end = after_scheme
        .find(['/', '?', '#'])
        .unwrap_or(after_scheme.len());
    after_scheme[..authority_end].rfind('@')
}

fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// Redacts the userinfo of one URL-like string (no host validation): used for display of
/// anything, valid or not. Text without `://` is treated as `authority[/path]`.
pub fn redact(url: &str) -> String {
    let (prefix_end, rest) = match url.find("://") {
        Some(i) => (i + 3, &url[i + 3..]),
        None => (0, url),
    };
    match userinfo_end(rest) {
        Some(at) => {
            let mut out = String::with_capacity(url.len());
            out.push_str(&url[..prefix_end]);
            out.push_str(REDACTED);
            out.push_str(&rest[at..]);
            out
        }
        None => url.to_owned(),
    }
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits stays literal.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes everything but RFC 3986 unreserved characters and sub-delimiters, so
/// the result is safe inside a userinfo component.
pub fn percent_encode_userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 15)]));
        }
    }
    out
}

fn valid_reg_name(host: &str) -> bool {
    host.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b))
}

fn valid_ipv6_literal(inner: &str) -> bool {
    !inner.is_empty()
        && inner
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'))
}

impl SourceUrl {
    /// Parses `scheme://[user[:password]@]host[:port][/path][?query][#fragment]`.
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let redacted = || redact(url);
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(UrlError::BadCharacter {
                redacted: redacted(),
            });
        }
        let Some((scheme, after)) = url.split_once("://") else {
            return Err(UrlError::NotAUrl {
                redacted: redacted(),
            });
        };
        if !is_scheme(scheme) {
            return Err(UrlError::NotAUrl {
                redacted: redacted(),
            });
        }
        let (userinfo, host_part) = match userinfo_end(after) {
            Some(at) => (Some(&after[..at]), &after[at + 1..]),
            None => (None, after),
        };
        let host_end = host_part.find(['/', '?', '#']).unwrap_or(host_part.len());
        let (host_port, rest) = host_part.split_at(host_end);
        let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
            let Some((inner, after_bracket)) = bracketed.split_once(']') else {
                return Err(UrlError::BadHost {
                    redacted: redacted(),
                    host: host_port.to_owned(),
                });
            };
            if !valid_ipv6_literal(inner) {
                return Err(UrlError::BadHost {
                    redacted: redacted(),
                    host: host_port.to_owned(),
                });
            }
            let port = match after_bracket {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| UrlError::BadHost {
                    redacted: redacted(),
                    host: host_port.to_owned(),
                })?),
            };
            (&host_port[..inner.len() + 2], port)
        } else {
            match host_port.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (host_port, None),
            }
        };
        if host.is_empty() {
            return Err(UrlError::NoHost {
                redacted: redacted(),
            });
        }
        if !host.starts_with('[') && !valid_reg_name(host) {
            return Err(UrlError::BadHost {
                redacted: redacted(),
                host: host.to_owned(),
            });
        }
        let port = match port {
            None | Some("") => None,
            Some(p) => {
                let n = if p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) {
                    p.parse::<u16>().ok().filter(|n| *n > 0)
                } else {
                    None
                };
                // A port that is not a number is most likely part of a password whose
                // URL lacks `@host`: echo nothing of it.
                let numeric = p.bytes().all(|b| b.is_ascii_digit()) && p.len() < 16;
                let (shown_url, shown_port) = if numeric && userinfo.is_none() {
                    (redacted(), p.to_owned())
                } else {
                    (format!("{scheme}://{REDACTED}"), REDACTED.to_owned())
                };
                Some(n.ok_or(UrlError::BadPort {
                    redacted: shown_url,
                    port: shown_port,
                })?)
            }
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(info) => {
                let (u, p) = match info.split_once(':') {
                    Some((u, p)) => (percent_decode(u), Some(percent_decode(p))),
                    None => (percent_decode(info), None),
                };
                ((!u.is_empty()).then_some(u), p.filter(|p| !p.is_empty()))
            }
        };
        Ok(Self {
            scheme: scheme.to_owned(),
            user,
            password,
            host: host.to_owned(),
            port,
            rest: rest.to_owned(),
        })
    }

    pub fn scheme(&self) -> &str {
        &self.scheme
    }
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }
    pub fn host(&self) -> &str {
        &self.host
    }
    pub fn port(&self) -> Option<u16> {
        self.port
    }
    /// Path, query and fragment as written.
    pub fn path_and_rest(&self) -> &str {
        &self.rest
    }
    pub fn has_credentials(&self) -> bool {
        self.user.is_some() || self.password.is_some()
    }

    fn write_location(&self, out: &mut String, userinfo: Option<&str>) {
        out.push_str(&self.scheme);
        out.push_str("://");
        if let Some(info) = userinfo {
            out.push_str(info);
            out.push('@');
        }
        out.push_str(&self.host);
        if let Some(p) = self.port {
            out.push(':');
            out.push_str(&p.to_string());
        }
        out.push_str(&self.rest);
    }

    /// The URL without credentials (they go to the source element separately).
    pub fn location(&self) -> String {
        let mut out = String::new();
        self.write_location(&mut out, None);
        out
    }

    /// The URL as shown anywhere: credentials replaced by `***`.
    pub fn redacted(&self) -> String {
        let mut out = String::new();
        self.write_location(&mut out, self.has_credentials().then_some(REDACTED));
        out
    }

    /// The URL with user and password percent-encoded: what gets stored and handed on.
    pub fn normalized(&self) -> String {
        let info = self.has_credentials().then(|| {
            let mut info = percent_encode_userinfo(self.user.as_deref().unwrap_or(""));
            if let Some(p) = &self.password {
                info.push(':');
                info.push_str(&percent_encode_userinfo(p));
            }
            info
        });
        let mut out = String::new();
        self.write_location(&mut out, info.as_deref());
        out
    }
}

impl fmt::Debug for SourceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SourceUrl({})", self.redacted())
    }
}

impl fmt::Display for SourceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn splits_at_the_last_at_with_reserved_characters_in_the_password() {
        let u = SourceUrl::parse("rtsp://viewer:Pl4nt@d/S3cr:t#9x7@127.0.0.1:8554/test").unwrap();
        assert_eq!(u.user(), Some("viewer"));
        assert_eq!(u.password(), Some("Pl4nt@d/S3cr:t#9x7"));
        assert_eq!(u.host(), "127.0.0.1");
        assert_eq!(u.port(), Some(8554));
        assert_eq!(u.path_and_rest(), "/test");
        assert_eq!(u.redacted(), "rtsp://***@127.0.0.1:8554/test");
        assert_eq!(u.location(), "rtsp://127.0.0.1:8554/test");
        assert_eq!(
            u.normalized(),
            "rtsp://viewer:Pl4nt%40d%2FS3cr%3At%239x7@127.0.0.1:8554/test"
        );
        // Normalising is a fixed point.
        let again = SourceUrl::parse(&u.normalized()).unwrap();
        assert_eq!(again, u);
        assert!(!format!("{u:?}").contains("S3cr"));
    }

    #[test]
    fn rfc_urls_keep_their_meaning() {
        let u = SourceUrl::parse("rtsp://cam/s1?x=a@b").unwrap();
        assert_eq!(
            (u.host(), u.user(), u.path_and_rest()),
            ("cam", None, "/s1?x=a@b")
        );
        let u = SourceUrl::parse("rtsp://user@host/path?token=a@b").unwrap();
        assert_eq!(
            (u.host(), u.user(), u.password()),
            ("host", Some("user"), None)
        );
        let u = SourceUrl::parse("rtsp://admin:p%40ss@[::1]:554/s").unwrap();
        assert_eq!((u.host(), u.password()), ("[::1]", Some("p@ss")));
        let u = SourceUrl::parse("http://host/x:y@z").unwrap();
        assert_eq!((u.host(), u.user()), ("host", None));
    }

    #[test]
    fn urls_without_host_or_with_bad_ports_are_refused_without_echoing_secrets() {
        for bad in [
            "rtsp://:@",
            "rtsp://@/x",
            "rtsp://viewer:pw@/test",
            "rtsp://",
            "rtsp:///x",
            "rtsp://u:hunter2@:554/x",
        ] {
            let e = SourceUrl::parse(bad).unwrap_err();
            assert!(matches!(e, UrlError::NoHost { .. }), "{bad}: {e}");
            assert!(!e.to_string().contains("hunter2"));
        }
        let e = SourceUrl::parse("rtsp://viewer:Pl4nted/S3cret").unwrap_err();
        assert!(
            !e.to_string().contains("Pl4nted") && !e.to_string().contains("S3cret"),
            "{e}"
        );
        assert!(matches!(
            SourceUrl::parse("rtsp://cam:99999/x"),
            Err(UrlError::BadPort { .. })
        ));
        assert!(matches!(
            SourceUrl::parse("rtsp://u:p w@cam/x"),
            Err(UrlError::BadCharacter { .. })
        ));
        assert!(matches!(
            SourceUrl::parse("cam/x"),
            Err(UrlError::NotAUrl { .. })
        ));
        assert!(matches!(
            SourceUrl::parse("rtsp://c<a>m/x"),
            Err(UrlError::BadHost { .. })
        ));
    }

    #[test]
    fn decoding_keeps_stray_percent_signs() {
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_encode_userinfo("a%b c"), "a%25b%20c");
    }

    fn password() -> impl Strategy<Value = String> {
        // Every reserved character, plus ones that need no encoding.
        "[A-Za-z0-9/?#@:%\\[\\]!$&'()*+,;=~._-]{1,20}".prop_map(|s| format!("S3cr{s}"))
    }

    proptest! {
        #[test]
        fn every_password_round_trips_and_never_shows(
            user in "[a-z][a-z0-9._-]{0,8}",
            pw in password(),
            host in "[a-z0-9][a-z0-9.-]{0,12}",
            port in proptest::option::of(1u16..),
            path in "(/[a-z0-9:]{0,8}){0,3}",
        ) {
            let port_text = port.map(|p| format!(":{p}")).unwrap_or_default();
            let url = format!("rtsp://{user}:{pw}@{host}{port_text}{path}");
            let u = SourceUrl::parse(&url).unwrap();
            prop_assert_eq!(u.user(), Some(user.as_str()));
            prop_assert_eq!(u.password().map(percent_encode_userinfo), Some(percent_encode_userinfo(&percent_decode(&pw))));
            prop_assert_eq!(u.host(), host.as_str());
            prop_assert_eq!(u.port(), port);
            prop_assert!(!u.redacted().contains(&pw));
            prop_assert!(!redact(&url).contains(&pw));
            prop_assert!(!u.location().contains(&pw));
            let normal = SourceUrl::parse(&u.normalized()).unwrap();
            prop_assert_eq!(normal, u);
        }

        #[test]
        fn parse_and_redact_never_panic(s in ".{0,80}") {
            if let Ok(u) = SourceUrl::parse(&s) {
                let again = SourceUrl::parse(&u.normalized()).unwrap();
                prop_assert_eq!(again.normalized(), u.normalized());
            }
            let r = redact(&s);
            prop_assert_eq!(redact(&r), r.clone());
        }
    }
}
