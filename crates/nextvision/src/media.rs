//! Media source factories available to this binary.

use nv_runtime::RuntimeBuilder;

/// Registers the media factories (GStreamer once nv-media is linked in).
pub fn register(builder: RuntimeBuilder) -> RuntimeBuilder {
    builder
}
