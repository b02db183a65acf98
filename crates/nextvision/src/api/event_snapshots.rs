//! Event snapshots: the annotated frame at the moment an event fired, kept by event id in
//! a store bounded by count and by bytes (the oldest go first) and served at
//! `GET /api/v1/events/{id}/snapshot.jpg`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;

/// Longest event id kept (ids are idempotency keys: short).
pub const MAX_ID_CHARS: usize = 200;

#[derive(Default)]
struct Kept {
    /// Ids, oldest first.
    order: VecDeque<Arc<str>>,
    jpegs: HashMap<Arc<str>, Arc<[u8]>>,
    bytes: usize,
}

/// The bounded store.
pub struct EventSnapshots {
    kept: Mutex<Kept>,
    max_count: usize,
    max_bytes: usize,
}

impl std::fmt::Debug for EventSnapshots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let k = self.kept.lock();
        f.debug_struct("EventSnapshots")
            .field("count", &k.order.len())
            .field("bytes", &k.bytes)
            .finish_non_exhaustive()
    }
}

/// Why a snapshot was not kept.
#[derive(Debug, PartialEq, Eq)]
pub enum NotKept {
    /// The id is empty, too long or has control characters.
    BadId,
    /// Larger than the whole store (or the store holds nothing).
    TooLarge { bytes: usize, max_bytes: usize },
}

impl std::fmt::Display for NotKept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadId => write!(
                f,
                "event ids are 1 to {MAX_ID_CHARS} characters without control characters"
            ),
            Self::TooLarge { bytes, max_bytes } => write!(
                f,
                "a snapshot of {bytes} bytes does not fit in api.event_snapshot_bytes = {max_bytes}"
            ),
        }
    }
}

impl EventSnapshots {
    pub fn new(max_count: usize, max_bytes: usize) -> Arc<Self> {
        Arc::new(Self {
            kept: Mutex::new(Kept::default()),
            max_count,
            max_bytes,
        })
    }

    fn valid_id(id: &str) -> bool {
        let n = id.chars().count();
        (1..=MAX_ID_CHARS).contains(&n) && !id.chars().any(char::is_control)
    }

    /// Keeps `jpeg` under `id` (replacing a snapshot with the same id), dropping the
    /// oldest snapshots until both bounds hold.
    pub fn insert(&self, id: &str, jpeg: Arc<[u8]>) -> Result<(), NotKept> {
        if !Self::valid_id(id) {
            return Err(NotKept::BadId);
        }
        if self.max_count == 0 || jpeg.len() > self.max_bytes {
            return Err(NotKept::TooLarge {
                bytes: jpeg.len(),
                max_bytes: self.max_bytes,
            });
        }
        let mut k = self.kept.lock();
        if let Some(old) = k.jpegs.remove(id) {
            k.bytes -= old.len();
            k.order.retain(|i| &**i != id);
        }
        while k.order.len() >= self.max_count || k.bytes + jpeg.len() > self.max_bytes {
            let Some(oldest) = k.order.pop_front() else {
                break;
            };
            if let Some(gone) = k.jpegs.remove(&oldest) {
                k.bytes -= gone.len();
            }
        }
        let id: Arc<str> = Arc::from(id);
        k.bytes += jpeg.len();
        k.order.push_back(Arc::clone(&id));
        k.jpegs.insert(id, jpeg);
        Ok(())
    }

    pub fn get(&self, id: &str) -> Option<Arc<[u8]>> {
        self.kept.lock().jpegs.get(id).cloned()
    }

    /// `(count, bytes)` kept.
    #[cfg(test)]
    pub fn usage(&self) -> (usize, usize) {
        let k = self.kept.lock();
        (k.order.len(), k.bytes)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    fn jpeg(n: usize) -> Arc<[u8]> {
        vec![0xAB; n].into()
    }

    #[test]
    fn the_oldest_go_first_by_count_and_by_bytes() {
        let s = EventSnapshots::new(3, 100);
        for id in ["a", "b", "c", "d"] {
            s.insert(id, jpeg(10)).unwrap();
        }
        assert!(s.get("a").is_none());
        assert_eq!(s.usage(), (3, 30));
        // 85 bytes more: "b" and "c" must go for 10 + 85 <= 100.
        s.insert("e", jpeg(85)).unwrap();
        assert!(s.get("b").is_none() && s.get("c").is_none());
        assert_eq!(s.get("d").unwrap().len(), 10);
        assert_eq!(s.usage(), (2, 95));
        // Replacing an id does not count it twice.
        s.insert("d", jpeg(5)).unwrap();
        assert_eq!(s.usage(), (2, 90));
    }

    #[test]
    fn refusals_say_why_and_keep_the_store_intact() {
        let s = EventSnapshots::new(2, 50);
        s.insert("x", jpeg(10)).unwrap();
        assert_eq!(
            s.insert("big", jpeg(51)),
            Err(NotKept::TooLarge {
                bytes: 51,
                max_bytes: 50
            })
        );
        assert_eq!(s.insert("", jpeg(1)), Err(NotKept::BadId));
        assert_eq!(s.insert("a\nb", jpeg(1)), Err(NotKept::BadId));
        assert_eq!(s.insert(&"i".repeat(201), jpeg(1)), Err(NotKept::BadId));
        assert_eq!(s.usage(), (1, 10));
        let none = EventSnapshots::new(0, 50);
        assert!(none.insert("x", jpeg(1)).is_err());
    }

    #[test]
    fn bounds_hold_for_any_sequence() {
        // A deterministic pseudo-random walk over sizes and (repeating) ids.
        let s = EventSnapshots::new(7, 1000);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..5000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let size = (x % 400) as usize + 1;
            let id = format!("e{}", (x >> 20) % 20);
            s.insert(&id, jpeg(size)).unwrap();
            let (count, bytes) = s.usage();
            assert!(count <= 7 && bytes <= 1000);
            assert_eq!(s.get(&id).unwrap().len(), size);
            let k = s.kept.lock();
            assert_eq!(k.order.len(), k.jpegs.len());
            assert_eq!(k.jpegs.values().map(|j| j.len()).sum::<usize>(), k.bytes);
        }
    }
}
