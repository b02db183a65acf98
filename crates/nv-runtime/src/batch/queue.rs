//! Batch formation order. Pure data structure, so fairness is tested without threads.

use std::collections::{BTreeMap, VecDeque};

use nv_core::id::FeedId;
use nv_core::time::MonotonicTs;

/// How a coordinator picks items for the next batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BatchFairness {
    /// One item per feed in rotation: a busy feed cannot crowd out a quiet one.
    #[default]
    RoundRobin,
    /// Earliest per-item deadline first (submit time + the feed's latency budget).
    Deadline,
    /// Strict arrival order (the reference behaviour).
    Fifo,
}

#[derive(Debug)]
pub(crate) struct Pending<T> {
    pub feed: FeedId,
    pub item: T,
    pub submitted_at: MonotonicTs,
    pub deadline: MonotonicTs,
    /// Arrival order, for FIFO and tie-breaking.
    pub order: u64,
}

#[derive(Debug)]
pub(crate) struct FairQueue<T> {
    per_feed: BTreeMap<FeedId, VecDeque<Pending<T>>>,
    /// Feed served last under round-robin.
    cursor: Option<FeedId>,
    len: usize,
    capacity: usize,
    fairness: BatchFairness,
    next_order: u64,
}

impl<T> FairQueue<T> {
    pub fn new(capacity: usize, fairness: BatchFairness) -> Self {
        Self {
            per_feed: BTreeMap::new(),
            cursor: None,
            len: 0,
            capacity: capacity.max(1),
            fairness,
            next_order: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues an item; hands it back when the queue is full.
    pub fn push(
        &mut self,
        feed: FeedId,
        item: T,
        submitted_at: MonotonicTs,
        deadline: MonotonicTs,
    ) -> Result<(), T> {
        if self.len >= self.capacity {
            return Err(item);
        }
        let order = self.next_order;
        self.next_order += 1;
        self.per_feed.entry(feed).or_default().push_back(Pending {
            feed,
            item,
            submitted_at,
            deadline,
            order,
        });
        self.len += 1;
        Ok(())
    }

    /// Submit time of the oldest queued item (drives the max-latency dispatch).
    pub fn oldest_submitted_at(&self) -> Option<MonotonicTs> {
        self.per_feed
            .values()
            .filter_map(|q| q.front())
            .map(|p| p.submitted_at)
            .min()
    }

    fn pop_feed(&mut self, feed: FeedId) -> Option<Pending<T>> {
        let q = self.per_feed.get_mut(&feed)?;
        let item = q.pop_front();
        if q.is_empty() {
            self.per_feed.remove(&feed);
        }
        if item.is_some() {
            self.len -= 1;
        }
        item
    }

    /// Removes up to `max` items in the configured order.
    pub fn take_batch(&mut self, max: usize) -> Vec<Pending<T>> {
        let mut out = Vec::with_capacity(max.min(self.len));
        while out.len() < max && !self.is_empty() {
            let feed = match self.fairness {
                BatchFairness::RoundRobin => {
                    let after = self.cursor;
                    let next = after
                        .and_then(|c| self.per_feed.range(c..).map(|(f, _)| *f).find(|f| *f != c))
                        .or_else(|| self.per_feed.keys().next().copied());
                    self.cursor = next;
                    next
                }
                BatchFairness::Fifo => self.min_feed_by(|p| (p.order, 0)),
                BatchFairness::Deadline => self.min_feed_by(|p| (p.deadline.as_nanos(), p.order)),
            };
            match feed.and_then(|f| self.pop_feed(f)) {
                Some(p) => out.push(p),
                None => break,
            }
        }
        out
    }

    fn min_feed_by(&self, key: impl Fn(&Pending<T>) -> (u64, u64)) -> Option<FeedId> {
        self.per_feed
            .values()
            .filter_map(|q| q.front())
            .min_by_key(|p| key(p))
            .map(|p| p.feed)
    }

    pub fn drain(&mut self) -> Vec<Pending<T>> {
        self.len = 0;
        std::mem::take(&mut self.per_feed)
            .into_values()
            .flatten()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(n: u64) -> MonotonicTs {
        MonotonicTs::from_nanos(n)
    }

    fn feeds_of(batch: &[Pending<u32>]) -> Vec<u64> {
        batch.iter().map(|p| p.feed.as_u64()).collect()
    }

    #[test]
    fn round_robin_serves_a_quiet_feed_next_to_a_busy_one() {
        let mut q = FairQueue::new(64, BatchFairness::RoundRobin);
        for i in 0..10 {
            q.push(FeedId::new(1), i, ts(i.into()), ts(0)).unwrap();
        }
        q.push(FeedId::new(2), 99, ts(50), ts(0)).unwrap();
        assert_eq!(feeds_of(&q.take_batch(2)), vec![1, 2]);
        let mut fifo = FairQueue::new(64, BatchFairness::Fifo);
        for i in 0..10 {
            fifo.push(FeedId::new(1), i, ts(i.into()), ts(0)).unwrap();
        }
        fifo.push(FeedId::new(2), 99, ts(50), ts(0)).unwrap();
        assert_eq!(
            feeds_of(&fifo.take_batch(2)),
            vec![1, 1],
            "FIFO lets the busy feed crowd out"
        );
    }

    #[test]
    fn deadline_order_and_capacity() {
        let mut q = FairQueue::new(2, BatchFairness::Deadline);
        q.push(FeedId::new(1), 1, ts(0), ts(500)).unwrap();
        q.push(FeedId::new(2), 2, ts(1), ts(100)).unwrap();
        assert_eq!(q.push(FeedId::new(3), 3, ts(2), ts(50)), Err(3));
        assert_eq!(q.oldest_submitted_at(), Some(ts(0)));
        assert_eq!(feeds_of(&q.take_batch(8)), vec![2, 1]);
        assert!(q.is_empty());
    }

    proptest! {
        /// Round-robin: in every batch, no feed gets a second item while another feed with
        /// queued items got none; items of one feed keep their order; nothing is lost.
        #[test]
        fn round_robin_never_starves(pushes in prop::collection::vec(1u64..6, 1..120), batch in 1usize..8) {
            let mut q = FairQueue::new(1_000, BatchFairness::RoundRobin);
            for (i, f) in pushes.iter().enumerate() {
                q.push(FeedId::new(*f), i as u32, ts(i as u64), ts(0)).unwrap();
            }
            let mut seen = Vec::new();
            while !q.is_empty() {
                let waiting: std::collections::BTreeSet<u64> = q.per_feed.keys().map(|f| f.as_u64()).collect();
                let b = q.take_batch(batch);
                let mut counts = BTreeMap::new();
                for p in &b { *counts.entry(p.feed.as_u64()).or_insert(0usize) += 1; }
                let max = counts.values().copied().max().unwrap_or(0);
                if max > 1 {
                    prop_assert!(waiting.iter().all(|f| counts.contains_key(f)), "a feed was skipped: {:?} {:?}", waiting, counts);
                }
                seen.extend(b.into_iter().map(|p| (p.feed.as_u64(), p.item)));
            }
            prop_assert_eq!(seen.len(), pushes.len());
            for f in 1..6u64 {
                let items: Vec<u32> = seen.iter().filter(|(g, _)| *g == f).map(|(_, i)| *i).collect();
                prop_assert!(items.windows(2).all(|w| w[0] < w[1]));
            }
        }
    }
}
