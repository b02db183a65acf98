//! Splitting credentials out of RTSP URLs, and the TLS choice per attempt.

use nv_core::security::{is_insecure_rtsp, promote_rtsp_to_tls};
use nv_core::source::RtspSecurityPolicy;
use nv_core::url::SourceUrl;

use crate::pipeline::RtspTarget;

/// Splits `scheme://user:pass@host/path` into a credential-free location and the
/// (percent-decoded) user and password, by nv-core's one URL rule (unencoded reserved
/// characters in the password included). A URL that does not parse (the runtime refuses
/// those before a feed starts) is used as written, with no credentials taken from it.
pub(crate) fn split_credentials(url: &str) -> RtspTarget {
    match SourceUrl::parse(url) {
        Ok(u) => RtspTarget {
            location: u.location(),
            user: u.user().map(str::to_owned),
            password: u.password().map(str::to_owned),
        },
        Err(_) => RtspTarget {
            location: url.to_owned(),
            user: None,
            password: None,
        },
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
            pass in "[A-Za-z0-9!$&*+,;=/?#@:]{6,16}",
            host in "[a-z0-9.]{1,12}",
            path in "(/[a-z0-9:]{0,8}){0,3}",
        ) {
            let url = format!("rtsp://{user}:{pass}@{host}:554{path}");
            let t = split_credentials(&url);
            prop_assert_eq!(t.password.as_deref(), Some(pass.as_str()));
            prop_assert_eq!(t.user.as_deref(), Some(user.as_str()));
            prop_assert!(!t.location.contains(&pass));
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
        // With credentials, an `@` after the host must be encoded (the README's rule).
        let t = split_credentials("rtsp://admin:p%40ss@10.0.0.5:554/s1?x=a%40b");
        assert_eq!(t.location, "rtsp://10.0.0.5:554/s1?x=a%40b");
        assert_eq!(t.user.as_deref(), Some("admin"));
        assert_eq!(t.password.as_deref(), Some("p@ss"));
        assert!(!format!("{t:?}").contains("p@ss"));
        let t = split_credentials("rtsp://cam/s");
        assert_eq!(
            (t.location.as_str(), t.user, t.password),
            ("rtsp://cam/s", None, None)
        );
        let t = split_credentials("rtsp://viewer:Pl4nt@d/S3cr:t#9x7@127.0.0.1:8554/test");
        assert_eq!(t.location, "rtsp://127.0.0.1:8554/test");
        assert_eq!(t.password.as_deref(), Some("Pl4nt@d/S3cr:t#9x7"));
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
