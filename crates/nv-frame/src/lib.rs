//! Frames: immutable, `Arc`-shared, self-describing.
//!
//! A [`FrameEnvelope`] owns (or borrows through a guard) its pixels and never changes after
//! construction; cloning bumps a reference count. Pixel format conversion is opt-in and is
//! the only place that allocates pixel memory.

mod bytes;
pub mod convert;
mod frame;
mod layout;
mod yuv_simd;

pub use bytes::HostBytes;
pub use convert::{convert, ConvertError};
pub use frame::{
    DataAccess, FrameAccessError, FrameBuilder, FrameEnvelope, FrameError, HostMaterializeFn,
    Residency,
};
pub use layout::{FrameLayout, Plane, PlaneView};
pub use nv_core::source::PixelFormat;
