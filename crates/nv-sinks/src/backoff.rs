//! Sinks retry their endpoint with the code base's one backoff type (exponential, no
//! jitter: one sink, one endpoint, no herd to spread).

pub(crate) use nv_core::policy::Backoff;
