//! A bounded FIFO that evicts its oldest entries when full.

use std::collections::VecDeque;

/// Holds at most `capacity` entries; pushing beyond that evicts from the front (the
/// oldest) and reports how many were evicted so the caller can count them.
#[derive(Debug)]
pub(crate) struct DropOldest<T> {
    items: VecDeque<T>,
    capacity: usize,
}

impl<T> DropOldest<T> {
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
    /// Appends; returns the number of evicted entries (0 or 1).
    pub fn push_back(&mut self, item: T) -> u64 {
        self.items.push_back(item);
        self.trim()
    }
    /// Puts entries taken earlier back at the front, in their order (a failed send is
    /// retried before newer records); returns how many of the oldest were evicted.
    pub fn requeue_front(&mut self, items: impl DoubleEndedIterator<Item = T>) -> u64 {
        for item in items.rev() {
            self.items.push_front(item);
        }
        self.trim()
    }
    #[cfg_attr(
        not(feature = "kafka"),
        expect(dead_code, reason = "used by the kafka sink only")
    )]
    pub fn front(&self) -> Option<&T> {
        self.items.front()
    }
    pub fn pop_front(&mut self) -> Option<T> {
        self.items.pop_front()
    }
    /// Takes up to `n` entries from the front.
    pub fn take_front(&mut self, n: usize) -> Vec<T> {
        let n = n.min(self.items.len());
        self.items.drain(..n).collect()
    }
    pub fn clear(&mut self) -> usize {
        let n = self.items.len();
        self.items.clear();
        n
    }
    fn trim(&mut self) -> u64 {
        let mut evicted = 0;
        while self.items.len() > self.capacity {
            self.items.pop_front();
            evicted += 1;
        }
        evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_oldest_and_counts() {
        let mut b = DropOldest::new(3);
        let evicted: u64 = (0..5).map(|i| b.push_back(i)).sum();
        assert_eq!(evicted, 2);
        assert_eq!(b.take_front(10), vec![2, 3, 4]);
        b.push_back(9);
        assert_eq!(b.requeue_front(vec![6, 7, 8].into_iter()), 1);
        assert_eq!(b.take_front(10), vec![7, 8, 9]);
        assert!(b.is_empty());
    }
}
