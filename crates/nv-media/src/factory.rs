//! [`GstSourceFactory`]: the runtime's entry point into GStreamer.

use std::sync::{Arc, OnceLock};

use gstreamer as gst;

use nv_core::error::MediaError;
use nv_core::security::is_insecure_rtsp;
use nv_core::source::{CustomPipelinePolicy, DecodePreference, RtspSecurityPolicy, SourceSpec};
use nv_io::source::{Source, SourceContext, SourceFactory};

use crate::decode::HwDecoders;
use crate::source::GstSource;
use crate::MediaSettings;

/// Builds GStreamer sources for RTSP, file, URI, V4L2, test-pattern and (trusted) custom
/// specs. Register it with `Runtime::builder().source_factory(Arc::new(GstSourceFactory::new()))`.
#[derive(Default)]
pub struct GstSourceFactory {
    settings: MediaSettings,
    hw: OnceLock<Arc<HwDecoders>>,
}

impl std::fmt::Debug for GstSourceFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GstSourceFactory")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl GstSourceFactory {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_settings(settings: MediaSettings) -> Self {
        Self {
            settings,
            hw: OnceLock::new(),
        }
    }

    pub fn settings(&self) -> &MediaSettings {
        &self.settings
    }

    /// Hardware video decoders in the registry, probed once.
    fn hw(&self) -> Arc<HwDecoders> {
        Arc::clone(self.hw.get_or_init(|| Arc::new(HwDecoders::probe())))
    }
}

/// Initialises GStreamer once per process.
pub fn init() -> Result<(), MediaError> {
    static INIT: OnceLock<Result<(), String>> = OnceLock::new();
    INIT.get_or_init(|| gst::init().map_err(|e| e.to_string()))
        .clone()
        .map_err(|detail| MediaError::Unsupported {
            detail: format!("GStreamer could not be initialised: {detail}"),
        })
}

/// Names of the hardware video decoders GStreamer offers on this host (heuristic
/// classification by klass and name).
pub fn hardware_decoder_names() -> Result<Vec<String>, MediaError> {
    init()?;
    Ok(HwDecoders::probe().names())
}

fn check_spec(ctx: &SourceContext) -> Result<(), MediaError> {
    match &ctx.spec {
        SourceSpec::Custom { .. }
            if ctx.custom_pipeline_policy != CustomPipelinePolicy::AllowTrusted =>
        {
            Err(MediaError::CustomPipelineRejected)
        }
        SourceSpec::Rtsp {
            url,
            security: RtspSecurityPolicy::RequireTls,
            ..
        } if is_insecure_rtsp(url) => Err(MediaError::InsecureRtspRejected {
            redacted_url: ctx.spec.redacted(),
        }),
        // Checked here, typed, so a missing file or a directory fails at once with a
        // clear kind instead of whatever the demuxer makes of it.
        SourceSpec::File { path, .. } => match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => Err(MediaError::NotAFile {
                path: ctx.spec.redacted(),
                what: "a directory",
            }),
            Ok(m) if m.is_file() => Ok(()),
            Ok(_) => Err(MediaError::NotAFile {
                path: ctx.spec.redacted(),
                what: "not a regular file",
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(MediaError::FileNotFound {
                path: ctx.spec.redacted(),
            }),
            Err(e) => Err(MediaError::Io {
                context: format!("opening {}", ctx.spec.redacted()),
                source: Arc::new(e),
            }),
        },
        SourceSpec::TestPattern {
            width, height, fps, ..
        } if *width == 0 || *height == 0 || *fps == 0 => Err(MediaError::Unsupported {
            detail: format!("test pattern {width}x{height}@{fps}"),
        }),
        _ => Ok(()),
    }
}

impl SourceFactory for GstSourceFactory {
    fn handles(&self, spec: &SourceSpec) -> bool {
        matches!(
            spec,
            SourceSpec::Rtsp { .. }
                | SourceSpec::File { .. }
                | SourceSpec::Uri { .. }
                | SourceSpec::V4l2 { .. }
                | SourceSpec::TestPattern { .. }
                | SourceSpec::Custom { .. }
        )
    }

    fn create(&self, ctx: &SourceContext) -> Result<Box<dyn Source>, MediaError> {
        if !self.handles(&ctx.spec) {
            return Err(MediaError::NoFactory {
                kind: ctx.spec.kind(),
            });
        }
        check_spec(ctx)?;
        init()?;
        let hw = self.hw();
        if ctx.decode == DecodePreference::RequireHardware && hw.is_empty() {
            return Err(MediaError::Unsupported {
                detail: "hardware decoding required but no hardware video decoder is installed"
                    .into(),
            });
        }
        Ok(Box::new(GstSource::new(
            ctx.clone(),
            self.settings.clone(),
            hw,
        )))
    }
}
