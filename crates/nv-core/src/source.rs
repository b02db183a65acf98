//! Backend-neutral description of where a feed's video comes from.

use std::fmt;
use std::path::PathBuf;

use crate::security::redact_url;

/// Pixel layout of decoded frames. Lives here (not in nv-frame) so that source
/// descriptions can name the format a feed wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PixelFormat {
    Rgb8,
    Bgr8,
    Rgba8,
    Gray8,
    /// Luma plane followed by an interleaved half-resolution UV plane.
    Nv12,
    /// Luma plane followed by half-resolution U and V planes.
    I420,
}

impl PixelFormat {
    /// Bytes per pixel for packed formats; `None` for planar ones.
    pub const fn bytes_per_pixel(self) -> Option<usize> {
        match self {
            Self::Rgb8 | Self::Bgr8 => Some(3),
            Self::Rgba8 => Some(4),
            Self::Gray8 => Some(1),
            Self::Nv12 | Self::I420 => None,
        }
    }
    pub const fn name(self) -> &'static str {
        match self {
            Self::Rgb8 => "RGB",
            Self::Bgr8 => "BGR",
            Self::Rgba8 => "RGBA",
            Self::Gray8 => "GRAY8",
            Self::Nv12 => "NV12",
            Self::I420 => "I420",
        }
    }
    /// Parses GStreamer-style names (`RGB`, `NV12`, ...), case-insensitively.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Rgb8,
            Self::Bgr8,
            Self::Rgba8,
            Self::Gray8,
            Self::Nv12,
            Self::I420,
        ]
        .into_iter()
        .find(|f| f.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// RTSP lower transport.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RtspTransport {
    #[default]
    Tcp,
    UdpUnicast,
}

/// TLS preference for RTSP sources.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RtspSecurityPolicy {
    /// Try `rtsps://` first, fall back to plain RTSP (reported) if TLS never connects.
    #[default]
    PreferTls,
    /// Use the URL as given; plain RTSP is reported once per session.
    AllowInsecure,
    /// Refuse `rtsp://` URLs at `add_feed`.
    RequireTls,
}

/// Whether custom GStreamer pipeline fragments are accepted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CustomPipelinePolicy {
    #[default]
    Reject,
    /// The operator vouches for every fragment given to this runtime.
    AllowTrusted,
}

/// How fast a file is read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FilePacing {
    /// As fast as decode and backpressure allow (offline processing).
    #[default]
    AsFastAsPossible,
    /// At the file's own frame rate, like a live camera.
    RealTime,
}

/// Decoder choice requested by the user.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DecodePreference {
    #[default]
    Auto,
    CpuOnly,
    PreferHardware,
    RequireHardware,
}

impl fmt::Display for DecodePreference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::CpuOnly => "cpu-only",
            Self::PreferHardware => "prefer-hardware",
            Self::RequireHardware => "require-hardware",
        })
    }
}

/// Decoder actually used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DecodeOutcome {
    Hardware,
    Software,
    Unknown,
}

impl fmt::Display for DecodeOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Hardware => "hardware",
            Self::Software => "software",
            Self::Unknown => "unknown",
        })
    }
}

/// A built-in frame generator: no media stack needed. Used by tests, benches and the demo.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticSpec {
    pub width: u32,
    pub height: u32,
    pub format: PixelFormat,
    /// Frames per second; `None` produces frames as fast as the feed accepts them.
    pub fps: Option<f64>,
    /// Stop with end-of-stream after this many frames; `None` runs forever.
    pub frame_count: Option<u64>,
    /// Number of moving rectangles drawn on a dark background.
    pub moving_objects: u32,
    /// Seed for object placement, so runs are reproducible.
    pub seed: u64,
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        Self {
            width: 640,
            height: 480,
            format: PixelFormat::Rgb8,
            fps: Some(30.0),
            frame_count: None,
            moving_objects: 3,
            seed: 1,
        }
    }
}

/// Where a feed's frames come from.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub enum SourceSpec {
    Rtsp {
        url: String,
        transport: RtspTransport,
        security: RtspSecurityPolicy,
    },
    File {
        path: PathBuf,
        looping: bool,
        pacing: FilePacing,
    },
    /// HTTP(S) progressive download or HLS playlist.
    Uri {
        uri: String,
    },
    V4l2 {
        device: PathBuf,
        width: Option<u32>,
        height: Option<u32>,
        fps: Option<u32>,
    },
    /// GStreamer `videotestsrc` with a pattern name, paced at `fps`.
    TestPattern {
        pattern: String,
        width: u32,
        height: u32,
        fps: u32,
        frame_count: Option<u64>,
    },
    /// A trusted `gst-launch` fragment ending in raw or encoded video; refused unless the
    /// runtime's [`CustomPipelinePolicy`] is `AllowTrusted`.
    Custom {
        pipeline_fragment: String,
    },
    Synthetic(SyntheticSpec),
}

impl SourceSpec {
    /// RTSP over TCP; security inferred from the scheme (`rtsp://` allows plain, anything
    /// else prefers TLS).
    pub fn rtsp(url: impl Into<String>) -> Self {
        let url = url.into();
        let security = if crate::security::is_insecure_rtsp(&url) {
            RtspSecurityPolicy::AllowInsecure
        } else {
            RtspSecurityPolicy::PreferTls
        };
        Self::Rtsp {
            url,
            transport: RtspTransport::Tcp,
            security,
        }
    }
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self::File {
            path: path.into(),
            looping: false,
            pacing: FilePacing::AsFastAsPossible,
        }
    }
    pub fn file_looping(path: impl Into<PathBuf>) -> Self {
        Self::File {
            path: path.into(),
            looping: true,
            pacing: FilePacing::AsFastAsPossible,
        }
    }
    pub fn synthetic(spec: SyntheticSpec) -> Self {
        Self::Synthetic(spec)
    }

    /// Short kind name for messages and metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Rtsp { .. } => "rtsp",
            Self::File { .. } => "file",
            Self::Uri { .. } => "uri",
            Self::V4l2 { .. } => "v4l2",
            Self::TestPattern { .. } => "test-pattern",
            Self::Custom { .. } => "custom",
            Self::Synthetic(_) => "synthetic",
        }
    }

    /// Live sources reconnect on end-of-stream; finite ones stop.
    pub fn is_live(&self) -> bool {
        match self {
            Self::Rtsp { .. } | Self::V4l2 { .. } | Self::Custom { .. } => true,
            Self::File { .. } | Self::Uri { .. } => false,
            Self::TestPattern { frame_count, .. } => frame_count.is_none(),
            Self::Synthetic(s) => s.frame_count.is_none(),
        }
    }

    /// True for sources whose end-of-stream ends the feed (no restart).
    pub fn ends_at_eos(&self) -> bool {
        match self {
            Self::File { looping, .. } => !looping,
            Self::Uri { .. } => true,
            Self::TestPattern { frame_count, .. } => frame_count.is_some(),
            Self::Synthetic(s) => s.frame_count.is_some(),
            _ => false,
        }
    }

    /// A description safe for logs, events and APIs (credentials redacted, custom
    /// fragments hidden).
    pub fn redacted(&self) -> String {
        match self {
            Self::Rtsp { url, .. } => redact_url(url),
            Self::File { path, looping, .. } => {
                format!(
                    "file:{}{}",
                    path.display(),
                    if *looping { " (loop)" } else { "" }
                )
            }
            Self::Uri { uri } => redact_url(uri),
            Self::V4l2 { device, .. } => format!("v4l2:{}", device.display()),
            Self::TestPattern {
                pattern,
                width,
                height,
                fps,
                ..
            } => {
                format!("test-pattern:{pattern} {width}x{height}@{fps}")
            }
            Self::Custom { .. } => "custom:<hidden>".to_owned(),
            Self::Synthetic(s) => format!("synthetic:{}x{} {}", s.width, s.height, s.format),
        }
    }
}

impl fmt::Debug for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SourceSpec({})", self.redacted())
    }
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact_credentials() {
        let spec = SourceSpec::rtsp("rtsp://admin:hunter2@cam/stream");
        assert!(!format!("{spec:?}").contains("hunter2"));
        assert!(!spec.to_string().contains("hunter2"));
        let custom = SourceSpec::Custom {
            pipeline_fragment: "videotestsrc pw=secret".into(),
        };
        assert!(!format!("{custom:?}").contains("secret"));
    }

    #[test]
    fn rtsp_security_inferred_from_scheme() {
        assert!(matches!(
            SourceSpec::rtsp("rtsp://h/x"),
            SourceSpec::Rtsp {
                security: RtspSecurityPolicy::AllowInsecure,
                ..
            }
        ));
        assert!(matches!(
            SourceSpec::rtsp("rtsps://h/x"),
            SourceSpec::Rtsp {
                security: RtspSecurityPolicy::PreferTls,
                ..
            }
        ));
    }

    #[test]
    fn liveness_classification() {
        assert!(SourceSpec::file("a.mp4").ends_at_eos());
        assert!(!SourceSpec::file_looping("a.mp4").ends_at_eos());
        assert!(SourceSpec::rtsp("rtsp://h").is_live());
        let finite = SyntheticSpec {
            frame_count: Some(3),
            ..SyntheticSpec::default()
        };
        assert!(SourceSpec::synthetic(finite).ends_at_eos());
        assert_eq!(PixelFormat::from_name("nv12"), Some(PixelFormat::Nv12));
    }
}
