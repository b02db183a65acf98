//! A bounded FIFO that evicts its oldest entries when full.

use std::collections::VecDeque;

use nv_core::id::FeedId;

use crate::stats::{Fate, SinkStats};

/// A buffered record knows whose it is, so its fate is counted for its feed.
pub(crate) trait Attributed {
    fn feed(&self) -> FeedId;
}

/// Holds at most `capacity` entries; pushing beyond that evicts from the front (the
/// oldest) and counts each evicted record as dropped by the buffer.
#[derive(Debug)]
pub(crate) struct DropOldest<T> {
    items: VecDeque<T>,
    capacity: usize,
}

impl<T: Attributed> DropOldest<T> {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            items: VecDeque::with_capacity(capacity.min(1024)),
            capacity,
        }
    }
    pub fn len(&self) -> usize {
        self.items.len()
    }
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    /// Appends; evicts (and counts) the oldest entry if the buffer overflows.
    pub fn push_back(&mut self, item: T, stats: &SinkStats) {
        self.items.push_back(item);
        self.trim(stats);
    }
    /// Puts entries taken earlier back at the front, in their order (a failed send is
    /// retried before newer records); evicts (and counts) the oldest beyond the bound.
    pub fn requeue_front(&mut self, items: impl DoubleEndedIterator<Item = T>, stats: &SinkStats) {
        for item in items.rev() {
            self.items.push_front(item);
        }
        self.trim(stats);
    }
    pub fn pop_front(&mut self) -> Option<T> {
        self.items.pop_front()
    }
    /// Empties the buffer, counting every entry as failed (given up at shutdown).
    pub fn fail_all(&mut self, stats: &SinkStats) {
        stats.count_each(Fate::Failed, self.items.drain(..).map(|r| r.feed()));
    }
    fn trim(&mut self, stats: &SinkStats) {
        let excess = self.items.len().saturating_sub(self.capacity);
        if excess > 0 {
            stats.count_each(Fate::Dropped, self.items.drain(..excess).map(|r| r.feed()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record of feed `self / 10`.
    impl Attributed for u64 {
        fn feed(&self) -> FeedId {
            FeedId::new(self / 10)
        }
    }

    #[test]
    fn evicts_oldest_and_counts_per_feed() {
        let stats = SinkStats::new();
        let mut b = DropOldest::new(3);
        for i in [10, 11, 20, 21, 22] {
            b.push_back(i, &stats);
        }
        assert_eq!(stats.snapshot().dropped_by_buffer, 2);
        assert_eq!(stats.feed(FeedId::new(1)).dropped_by_buffer, 2);
        assert_eq!(
            [b.pop_front(), b.pop_front(), b.pop_front()],
            [Some(20), Some(21), Some(22)]
        );
        b.push_back(39, &stats);
        b.requeue_front(vec![36, 37, 38].into_iter(), &stats);
        assert_eq!(stats.feed(FeedId::new(3)).dropped_by_buffer, 1);
        assert_eq!(b.pop_front(), Some(37));
        b.fail_all(&stats);
        assert_eq!(stats.feed(FeedId::new(3)).failed, 2);
        assert!(b.is_empty());
    }
}
