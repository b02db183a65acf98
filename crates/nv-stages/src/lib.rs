//! Reference perception stages (in progress).

#[cfg(feature = "model")]
pub mod model;
