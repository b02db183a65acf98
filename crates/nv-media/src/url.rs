//! Splitting credentials out of RTSP URLs, and the TLS choice per attempt.

use nv_core::security::{is_insecure_rtsp, promote_rtsp_to_tls};
use nv_core::source::RtspSecurityPolicy;

use crate::pipeline::RtspTarget;

fn percent_decode(s: &str) -> String {
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

/// Splits `scheme://user:pass@host/path` into a credential-free location and the
/// (percent-decoded) user and password.
pub(crate) fn split_credentials(url: &str) -> RtspTarget {
    let Some(sep) = url.find("://") else {
        return RtspTarget {
            location: url.to_owned(),
            user: None,
            password: None,
        };
    };
    let rest = &url[sep + 3..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    match authority.rfind('@') {
        None => RtspTarget {
            location: url.to_owned(),
            user: None,
            password: None,
        },
        Some(at) => {
            let userinfo = &authority[..at];
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (percent_decode(u), Some(percent_decode(p))),
                None => (percent_decode(userinfo), None),
            };
            RtspTarget {
                location: format!("{}{}", &url[..sep + 3], &rest[at + 1..]),
                user: (!user.is_empty()).then_some(user),
                password,
            }
        }
    }
}

/// The URL to try for an attempt: `use_tls` is the current TLS choice under PreferTls.
pub(crate) fn attempt_url(url: &str, policy: RtspSecurityPolicy, use_tls: bool) -> String {
    match policy {
        RtspSecurityPolicy::PreferTls if use_tls => promote_rtsp_to_tls(url),
        RtspSecurityPolicy::PreferTls => demote_to_plain(url),
        _ => url.to_owned(),
    }
}

/// `rtsps://…` becomes `rtsp://…` (the PreferTls fallback).
fn demote_to_plain(url: &str) -> String {
    if url.len() >= 8 && url[..8].eq_ignore_ascii_case("rtsps://") {
        format!("rtsp://{}", &url[8..])
    } else {
        url.to_owned()
    }
}

pub(crate) fn is_plain(url: &str) -> bool {
    is_insecure_rtsp(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn password_never_left_in_location_or_debug(
            user in "[a-z]{1,8}",
            pass in "[A-Za-z0-9!$&*+,;=]{6,16}",
            host in "[a-z0-9.]{1,12}",
            path in "(/[a-z0-9@:]{0,8}){0,3}",
        ) {
            let url = format!("rtsp://{user}:{pass}@{host}:554{path}");
            let t = split_credentials(&url);
            prop_assert_eq!(t.password.as_deref(), Some(pass.as_str()));
            prop_assert_eq!(t.user.as_deref(), Some(user.as_str()));
            let leaked_in_location = t.location.contains(&format!(":{}@", pass));
            prop_assert!(!leaked_in_location);
            let debug = format!("{:?}", t);
            prop_assert!(!debug.contains(&pass));
            prop_assert_eq!(t.location, format!("rtsp://{host}:554{path}"));
        }

        #[test]
        fn split_never_panics(url in ".{0,64}") {
            let t = split_credentials(&url);
            prop_assert!(t.location.len() <= url.len());
        }
    }

    #[test]
    fn splits_and_decodes_credentials() {
        let t = split_credentials("rtsp://admin:p%40ss@10.0.0.5:554/s1?x=a@b");
        assert_eq!(t.location, "rtsp://10.0.0.5:554/s1?x=a@b");
        assert_eq!(t.user.as_deref(), Some("admin"));
        assert_eq!(t.password.as_deref(), Some("p@ss"));
        assert!(!format!("{t:?}").contains("p@ss"));
        let t = split_credentials("rtsp://cam/s");
        assert_eq!(
            (t.location.as_str(), t.user, t.password),
            ("rtsp://cam/s", None, None)
        );
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }

    #[test]
    fn tls_choice() {
        let p = RtspSecurityPolicy::PreferTls;
        assert_eq!(attempt_url("rtsp://h/x", p, true), "rtsps://h/x");
        assert_eq!(attempt_url("rtsps://h/x", p, false), "rtsp://h/x");
        assert_eq!(
            attempt_url("rtsp://h/x", RtspSecurityPolicy::AllowInsecure, true),
            "rtsp://h/x"
        );
    }
}
