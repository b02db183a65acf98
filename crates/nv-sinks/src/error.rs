//! Sink errors. Messages never carry credentials: URLs are redacted before they get here.

use nv_core::error::ConfigError;

/// Why a sink could not be built or could not deliver.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("could not encode an output record")]
    Encode(#[source] serde_json::Error),
    #[error("could not start {what}")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("http request to {redacted_url} failed")]
    Http {
        redacted_url: String,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error("http request to {redacted_url} answered status {status}")]
    HttpStatus { redacted_url: String, status: u16 },
    #[error("{sink} connection to {redacted_url} failed: {detail}")]
    Connect {
        sink: &'static str,
        redacted_url: String,
        detail: String,
    },
}

impl SinkError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
