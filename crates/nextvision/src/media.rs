//! Media source factories available to this binary.

use std::sync::Arc;

use nv_runtime::RuntimeBuilder;

/// Registers GStreamer ingest (files, RTSP, HTTP/HLS, V4L2, test patterns, trusted custom
/// pipelines); the synthetic source is built into the runtime.
pub fn register(builder: RuntimeBuilder) -> RuntimeBuilder {
    builder.source_factory(Arc::new(nv_media::GstSourceFactory::new()))
}
