//! The key-value contract the cluster runs on, and an in-memory implementation for the
//! simulation and unit tests. The production implementation is NATS JetStream KV
//! ([`crate::nats::NatsKv`]); both keep JetStream's semantics: revisions increase across
//! the whole bucket, `create` fails on a live key, `update` is compare-and-set on the
//! revision, and a bucket's TTL expires an entry that long after its last write.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The cluster's three buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bucket {
    /// Desired feeds: one key per feed, the versioned feed spec. No TTL.
    Feeds,
    /// Live nodes: one key per node, rewritten every heartbeat; TTL = node TTL.
    Nodes,
    /// Feed ownership: one key per running feed; TTL = lease TTL.
    Leases,
}

impl Bucket {
    pub const ALL: [Self; 3] = [Self::Feeds, Self::Nodes, Self::Leases];

    /// The bucket's name suffix (`<prefix>-feeds`, ...).
    pub const fn suffix(self) -> &'static str {
        match self {
            Self::Feeds => "feeds",
            Self::Nodes => "nodes",
            Self::Leases => "leases",
        }
    }
}

/// One live entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: Vec<u8>,
    pub revision: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// `create` on a key that is live.
    #[error("key {key} already exists")]
    Exists { key: String },
    /// `update`/`delete` with a revision that is not the key's current one (someone else
    /// wrote it, or it expired).
    #[error("key {key} is not at revision {expected}")]
    WrongRevision { key: String, expected: u64 },
    /// The store could not be reached or answered with an error.
    #[error("key-value store unavailable: {detail}")]
    Unavailable { detail: String },
}

/// Blocking key-value operations with compare-and-set. Implementations count their
/// operations so the simulation can report the steady-state rate.
pub trait Kv: Send + Sync {
    fn get(&self, bucket: Bucket, key: &str) -> Result<Option<Entry>, KvError>;
    /// Writes unconditionally; the new revision.
    fn put(&self, bucket: Bucket, key: &str, value: &[u8]) -> Result<u64, KvError>;
    /// Writes only if the key is absent (or deleted/expired); the new revision.
    fn create(&self, bucket: Bucket, key: &str, value: &[u8]) -> Result<u64, KvError>;
    /// Writes only if the key is at `revision`; the new revision.
    fn update(
        &self,
        bucket: Bucket,
        key: &str,
        value: &[u8],
        revision: u64,
    ) -> Result<u64, KvError>;
    /// Deletes only if the key is at `revision`.
    fn delete(&self, bucket: Bucket, key: &str, revision: u64) -> Result<(), KvError>;
    /// Every live entry, in key order.
    fn list(&self, bucket: Bucket) -> Result<Vec<Entry>, KvError>;
    /// Operations issued so far.
    fn ops(&self) -> u64;
}

/// A time source the in-memory store expires entries by (the simulation drives it).
pub trait KvClock: Send + Sync {
    fn now(&self) -> Instant;
}

/// The machine's clock.
#[derive(Debug, Default)]
pub struct RealClock;

impl KvClock for RealClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct SimClock {
    start: Instant,
    offset_nanos: AtomicU64,
}

impl SimClock {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            offset_nanos: AtomicU64::new(0),
        })
    }
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.offset_nanos.fetch_add(nanos, Ordering::SeqCst);
    }
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.offset_nanos.load(Ordering::SeqCst))
    }
}

impl KvClock for SimClock {
    fn now(&self) -> Instant {
        self.start + self.elapsed()
    }
}

#[derive(Debug)]
struct Stored {
    value: Vec<u8>,
    revision: u64,
    written: Instant,
}

/// JetStream-like KV in memory.
pub struct MemKv {
    clock: Arc<dyn KvClock>,
    ttl: BTreeMap<Bucket, Duration>,
    inner: Mutex<MemState>,
    ops: AtomicU64,
}

#[derive(Debug, Default)]
struct MemState {
    revision: u64,
    data: BTreeMap<(Bucket, String), Stored>,
}

impl MemKv {
    /// `node_ttl` and `lease_ttl` expire the Nodes and Leases buckets' entries.
    pub fn new(clock: Arc<dyn KvClock>, node_ttl: Duration, lease_ttl: Duration) -> Self {
        Self {
            clock,
            ttl: BTreeMap::from([(Bucket::Nodes, node_ttl), (Bucket::Leases, lease_ttl)]),
            inner: Mutex::new(MemState::default()),
            ops: AtomicU64::new(0),
        }
    }

    fn live<'a>(&self, bucket: Bucket, s: &'a Stored, now: Instant) -> Option<&'a Stored> {
        match self.ttl.get(&bucket) {
            Some(ttl) if now.saturating_duration_since(s.written) >= *ttl => None,
            _ => Some(s),
        }
    }

    fn write(&self, bucket: Bucket, key: &str, value: &[u8], guard: Guard) -> Result<u64, KvError> {
        self.ops.fetch_add(1, Ordering::Relaxed);
        let now = self.clock.now();
        let mut st = self.inner.lock();
        let current = st
            .data
            .get(&(bucket, key.to_owned()))
            .and_then(|s| self.live(bucket, s, now))
            .map(|s| s.revision);
        match (guard, current) {
            (Guard::Absent, Some(_)) => {
                return Err(KvError::Exists {
                    key: key.to_owned(),
                })
            }
            (Guard::Revision(expected), cur) if cur != Some(expected) => {
                return Err(KvError::WrongRevision {
                    key: key.to_owned(),
                    expected,
                })
            }
            _ => {}
        }
        st.revision += 1;
        let revision = st.revision;
        st.data.insert(
            (bucket, key.to_owned()),
            Stored {
                value: value.to_vec(),
                revision,
                written: now,
            },
        );
        Ok(revision)
    }
}

impl std::fmt::Debug for MemKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemKv")
            .field("ttl", &self.ttl)
            .field("ops", &self.ops)
            .finish_non_exhaustive()
    }
}

enum Guard {
    None,
    Absent,
    Revision(u64),
}

impl Kv for MemKv {
    fn get(&self, bucket: Bucket, key: &str) -> Result<Option<Entry>, KvError> {
        self.ops.fetch_add(1, Ordering::Relaxed);
        let now = self.clock.now();
        let st = self.inner.lock();
        Ok(st
            .data
            .get(&(bucket, key.to_owned()))
            .and_then(|s| self.live(bucket, s, now))
            .map(|s| Entry {
                key: key.to_owned(),
                value: s.value.clone(),
                revision: s.revision,
            }))
    }
    fn put(&self, bucket: Bucket, key: &str, value: &[u8]) -> Result<u64, KvError> {
        self.write(bucket, key, value, Guard::None)
    }
    fn create(&self, bucket: Bucket, key: &str, value: &[u8]) -> Result<u64, KvError> {
        self.write(bucket, key, value, Guard::Absent)
    }
    fn update(
        &self,
        bucket: Bucket,
        key: &str,
        value: &[u8],
        revision: u64,
    ) -> Result<u64, KvError> {
        self.write(bucket, key, value, Guard::Revision(revision))
    }
    fn delete(&self, bucket: Bucket, key: &str, revision: u64) -> Result<(), KvError> {
        self.ops.fetch_add(1, Ordering::Relaxed);
        let now = self.clock.now();
        let mut st = self.inner.lock();
        let k = (bucket, key.to_owned());
        let current = st
            .data
            .get(&k)
            .and_then(|s| self.live(bucket, s, now))
            .map(|s| s.revision);
        if current != Some(revision) {
            return Err(KvError::WrongRevision {
                key: key.to_owned(),
                expected: revision,
            });
        }
        st.data.remove(&k);
        Ok(())
    }
    fn list(&self, bucket: Bucket) -> Result<Vec<Entry>, KvError> {
        self.ops.fetch_add(1, Ordering::Relaxed);
        let now = self.clock.now();
        let st = self.inner.lock();
        Ok(st
            .data
            .iter()
            .filter(|((b, _), _)| *b == bucket)
            .filter_map(|((_, k), s)| {
                self.live(bucket, s, now).map(|s| Entry {
                    key: k.clone(),
                    value: s.value.clone(),
                    revision: s.revision,
                })
            })
            .collect())
    }
    fn ops(&self) -> u64 {
        self.ops.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_and_set_and_expiry_follow_jetstream() {
        let clock = SimClock::new();
        let kv = MemKv::new(
            clock.clone(),
            Duration::from_secs(3),
            Duration::from_secs(5),
        );
        let r1 = kv.create(Bucket::Leases, "cam", b"a").unwrap();
        assert!(matches!(
            kv.create(Bucket::Leases, "cam", b"b"),
            Err(KvError::Exists { .. })
        ));
        let r2 = kv.update(Bucket::Leases, "cam", b"a2", r1).unwrap();
        assert!(r2 > r1);
        assert!(matches!(
            kv.update(Bucket::Leases, "cam", b"x", r1),
            Err(KvError::WrongRevision { .. })
        ));
        clock.advance(Duration::from_millis(4999));
        assert_eq!(kv.get(Bucket::Leases, "cam").unwrap().unwrap().revision, r2);
        clock.advance(Duration::from_millis(1));
        assert!(kv.get(Bucket::Leases, "cam").unwrap().is_none(), "expired");
        assert!(matches!(
            kv.update(Bucket::Leases, "cam", b"late", r2),
            Err(KvError::WrongRevision { .. })
        ));
        let r3 = kv.create(Bucket::Leases, "cam", b"b").unwrap();
        assert!(r3 > r2, "revisions never go back: they fence");
        // Feeds have no TTL.
        kv.put(Bucket::Feeds, "cam", b"spec").unwrap();
        clock.advance(Duration::from_secs(3600));
        assert_eq!(kv.list(Bucket::Feeds).unwrap().len(), 1);
        assert_eq!(kv.ops(), 10);
    }
}
