//! Source strings in the config (`rtsp://…`, a file path, `synthetic:640x480@30`, …).

use std::path::PathBuf;

use nv_core::security::redact_url;
use nv_core::source::{
    FilePacing, PixelFormat, RtspSecurityPolicy, RtspTransport, SourceSpec, SyntheticSpec,
};
use nv_core::url::SourceUrl;

/// Parses a feed's `source` value. Errors name the (redacted) value.
pub fn parse_source(
    raw: &str,
    looping: bool,
    real_time: bool,
    transport_udp: bool,
) -> Result<SourceSpec, String> {
    let lower = raw.to_ascii_lowercase();
    let is_network = ["rtsp://", "rtsps://", "http://", "https://"]
        .iter()
        .any(|p| lower.starts_with(p));
    // One parser for every network URL: it refuses URLs without a host and stores
    // credentials percent-encoded, so unencoded reserved characters in a password
    // (`/ ? # @ :`) reach the camera intact and never show in any output.
    let raw = &if is_network {
        SourceUrl::parse(raw)
            .map_err(|e| e.to_string())?
            .normalized()
    } else {
        raw.to_owned()
    };
    if lower.starts_with("rtsp://") || lower.starts_with("rtsps://") {
        let security = if lower.starts_with("rtsp://") {
            RtspSecurityPolicy::AllowInsecure
        } else {
            RtspSecurityPolicy::PreferTls
        };
        let transport = if transport_udp {
            RtspTransport::UdpUnicast
        } else {
            RtspTransport::Tcp
        };
        return Ok(SourceSpec::Rtsp {
            url: raw.to_owned(),
            transport,
            security,
        });
    }
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Ok(SourceSpec::Uri {
            uri: raw.to_owned(),
        });
    }
    if let Some(dev) = raw.strip_prefix("v4l2:") {
        return Ok(SourceSpec::V4l2 {
            device: PathBuf::from(dev),
            width: None,
            height: None,
            fps: None,
        });
    }
    if let Some(spec) = raw.strip_prefix("synthetic:") {
        return parse_synthetic(spec).map(SourceSpec::Synthetic);
    }
    if let Some(pattern) = raw.strip_prefix("test:") {
        let pattern = if pattern.is_empty() { "smpte" } else { pattern };
        return Ok(SourceSpec::TestPattern {
            pattern: pattern.to_owned(),
            width: 640,
            height: 480,
            fps: 30,
            frame_count: None,
        });
    }
    if let Some((scheme, _)) = raw.split_once("://") {
        return Err(format!("unsupported scheme `{scheme}` in `{}` (use rtsp, rtsps, http, https, a file path, v4l2:, test: or synthetic:)", redact_url(raw)));
    }
    if raw.trim().is_empty() {
        return Err("is empty".into());
    }
    let pacing = if real_time {
        FilePacing::RealTime
    } else {
        FilePacing::AsFastAsPossible
    };
    Ok(SourceSpec::File {
        path: PathBuf::from(raw),
        looping,
        pacing,
    })
}

/// `WIDTHxHEIGHT[@FPS][:FORMAT]`, e.g. `640x480@30:i420`; no `@` means unpaced.
fn parse_synthetic(spec: &str) -> Result<SyntheticSpec, String> {
    let (size_rate, format) = match spec.split_once(':') {
        Some((a, f)) => (
            a,
            PixelFormat::from_name(f).ok_or_else(|| format!("unknown pixel format `{f}`"))?,
        ),
        None => (spec, PixelFormat::I420),
    };
    let (size, fps) = match size_rate.split_once('@') {
        Some((s, r)) => (
            s,
            Some(
                r.parse::<f64>()
                    .map_err(|_| format!("bad frame rate `{r}`"))?,
            ),
        ),
        None => (size_rate, None),
    };
    let (w, h) = size
        .split_once('x')
        .ok_or_else(|| format!("expected WIDTHxHEIGHT, got `{size}`"))?;
    let width: u32 = w.parse().map_err(|_| format!("bad width `{w}`"))?;
    let height: u32 = h.parse().map_err(|_| format!("bad height `{h}`"))?;
    if width == 0 || height == 0 || width > 8192 || height > 8192 {
        return Err(format!("size {width}x{height} out of range (1..=8192)"));
    }
    if fps.is_some_and(|f| !(f.is_finite() && f > 0.0 && f <= 1000.0)) {
        return Err("frame rate must be in (0, 1000]".into());
    }
    Ok(SyntheticSpec {
        width,
        height,
        format,
        fps,
        frame_count: None,
        moving_objects: 3,
        seed: 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert!(matches!(
            parse_source("rtsp://cam/x", false, false, false),
            Ok(SourceSpec::Rtsp { .. })
        ));
        assert!(matches!(
            parse_source("/data/a.mp4", true, false, false),
            Ok(SourceSpec::File { looping: true, .. })
        ));
        assert!(
            matches!(parse_source("synthetic:320x240@15", false, false, false), Ok(SourceSpec::Synthetic(s)) if s.fps == Some(15.0))
        );
        assert!(matches!(
            parse_source("v4l2:/dev/video0", false, false, false),
            Ok(SourceSpec::V4l2 { .. })
        ));
        let err = parse_source("ftp://u:hunter2@h/x", false, false, false).unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(parse_source("synthetic:0x10", false, false, false).is_err());
        for no_host in [
            "rtsp://",
            "rtsp://:@",
            "rtsp://@/x",
            "rtsp://viewer:pw@/test",
        ] {
            assert!(
                parse_source(no_host, false, false, false).is_err(),
                "{no_host}"
            );
        }
        let Ok(SourceSpec::Rtsp { url, .. }) = parse_source(
            "rtsp://viewer:Pl4nt@d/S3cr:t#9x7@127.0.0.1:8554/test",
            false,
            false,
            false,
        ) else {
            panic!("reserved characters in a password are accepted");
        };
        assert_eq!(
            url,
            "rtsp://viewer:Pl4nt%40d%2FS3cr%3At%239x7@127.0.0.1:8554/test"
        );
    }
}
