//! The NextVision command line and daemon, as a library so that fuzz targets and benches
//! reach the parsers the daemon exposes (config files, API bodies); `main.rs` only calls
//! [`cli::main`]. Nothing here is a stable API: the product's API is the HTTP one.

mod api;
mod assemble;
pub mod cli;
mod cluster;
mod config;
mod console;
mod demo;
#[cfg(feature = "model")]
mod demo_video;
mod docs;
#[doc(hidden)]
pub mod fuzz;
#[cfg(test)]
mod fuzz_drivers;
mod health_sinks;
mod media;
#[cfg(all(test, feature = "model"))]
mod model_once;
mod models;
mod process;
mod registry;
mod run;
mod service;
mod sink_monitor;
mod sinks;
mod zone_edit;

/// Version, commit and cargo features of this build (`nv_build_info` on /metrics).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const COMMIT: &str = env!("NV_BUILD_COMMIT");
pub const FEATURES: &str = env!("NV_BUILD_FEATURES");

pub fn build_info() -> nv_metrics::BuildInfo<'static> {
    nv_metrics::BuildInfo {
        version: VERSION,
        commit: COMMIT,
        features: FEATURES,
    }
}
