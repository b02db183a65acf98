//! A lossy, bounded, multi-subscriber ring for health events and outputs.
//!
//! Senders never block: the ring keeps the newest `capacity` messages and a subscriber that
//! falls further behind learns how many it missed on its next receive.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

struct Ring<T> {
    buf: VecDeque<T>,
    /// Sequence number of `buf[0]`.
    head_seq: u64,
    subscribers: usize,
    waiting: usize,
    closed: bool,
}

struct Shared<T> {
    ring: Mutex<Ring<T>>,
    /// Mirror of `ring.subscribers` so the hot path can skip the lock when nobody listens.
    subscribers: AtomicUsize,
    cond: Condvar,
    capacity: usize,
}

/// Sending side (cheap to clone).
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("broadcast::Sender")
            .field("capacity", &self.shared.capacity)
            .finish()
    }
}

/// Why a receive returned no message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvError {
    /// This many messages were overwritten before this subscriber read them; the next
    /// receive continues with the oldest message still held.
    Lagged(u64),
    /// The sender side was closed and everything was read.
    Closed,
    /// Nothing arrived within the timeout.
    Timeout,
}

/// Receiving side; each receiver sees every message sent after it subscribed (unless it
/// lags).
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
    next_seq: u64,
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("broadcast::Receiver")
            .field("next_seq", &self.next_seq)
            .finish()
    }
}

pub fn channel<T: Clone>(capacity: usize) -> Sender<T> {
    Sender {
        shared: Arc::new(Shared {
            ring: Mutex::new(Ring {
                // Grows on demand: the ring fills only while a subscriber lags.
                buf: VecDeque::with_capacity(capacity.clamp(1, 64)),
                head_seq: 0,
                subscribers: 0,
                waiting: 0,
                closed: false,
            }),
            subscribers: AtomicUsize::new(0),
            cond: Condvar::new(),
            capacity: capacity.max(1),
        }),
    }
}

impl<T: Clone> Sender<T> {
    /// Sends to every current subscriber. Returns false (and stores nothing) when there
    /// are none, so an unobserved stream costs one lock.
    pub fn send(&self, msg: T) -> bool {
        if self.shared.subscribers.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let mut ring = self.shared.ring.lock();
        if ring.subscribers == 0 || ring.closed {
            return false;
        }
        if ring.buf.len() >= self.shared.capacity {
            ring.buf.pop_front();
            ring.head_seq += 1;
        }
        ring.buf.push_back(msg);
        let wake = ring.waiting > 0;
        drop(ring);
        if wake {
            self.shared.cond.notify_all();
        }
        true
    }

    pub fn has_subscribers(&self) -> bool {
        self.shared.subscribers.load(Ordering::Relaxed) > 0
    }

    pub fn subscriber_count(&self) -> usize {
        self.shared.ring.lock().subscribers
    }

    pub fn subscribe(&self) -> Receiver<T> {
        let mut ring = self.shared.ring.lock();
        ring.subscribers += 1;
        self.shared.subscribers.fetch_add(1, Ordering::Relaxed);
        let next_seq = ring.head_seq + ring.buf.len() as u64;
        Receiver {
            shared: Arc::clone(&self.shared),
            next_seq,
        }
    }

    /// Wakes receivers and makes them return `Closed` once drained.
    pub fn close(&self) {
        self.shared.ring.lock().closed = true;
        self.shared.cond.notify_all();
    }
}

impl<T: Clone> Receiver<T> {
    fn take(&mut self, ring: &Ring<T>) -> Option<Result<T, RecvError>> {
        if self.next_seq < ring.head_seq {
            let missed = ring.head_seq - self.next_seq;
            self.next_seq = ring.head_seq;
            return Some(Err(RecvError::Lagged(missed)));
        }
        let idx = usize::try_from(self.next_seq - ring.head_seq).ok()?;
        let msg = ring.buf.get(idx)?.clone();
        self.next_seq += 1;
        Some(Ok(msg))
    }

    /// Next message if one is available now.
    pub fn try_recv(&mut self) -> Result<T, RecvError> {
        let shared = Arc::clone(&self.shared);
        let ring = shared.ring.lock();
        match self.take(&ring) {
            Some(r) => r,
            None if ring.closed => Err(RecvError::Closed),
            None => Err(RecvError::Timeout),
        }
    }

    /// Waits up to `timeout` (real time) for the next message.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T, RecvError> {
        let deadline = std::time::Instant::now() + timeout;
        let shared = Arc::clone(&self.shared);
        let mut ring = shared.ring.lock();
        loop {
            if let Some(r) = self.take(&ring) {
                return r;
            }
            if ring.closed {
                return Err(RecvError::Closed);
            }
            ring.waiting += 1;
            let timed_out = shared.cond.wait_until(&mut ring, deadline).timed_out();
            ring.waiting -= 1;
            if timed_out {
                return self.take(&ring).unwrap_or(Err(RecvError::Timeout));
            }
        }
    }

    /// Waits without a deadline.
    pub fn recv(&mut self) -> Result<T, RecvError> {
        let shared = Arc::clone(&self.shared);
        let mut ring = shared.ring.lock();
        loop {
            if let Some(r) = self.take(&ring) {
                return r;
            }
            if ring.closed {
                return Err(RecvError::Closed);
            }
            ring.waiting += 1;
            shared.cond.wait(&mut ring);
            ring.waiting -= 1;
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.shared.ring.lock().subscribers -= 1;
        self.shared.subscribers.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_subscribers_no_storage() {
        let tx = channel::<u32>(4);
        assert!(!tx.send(1));
        let mut rx = tx.subscribe();
        assert!(tx.send(2));
        assert_eq!(rx.try_recv(), Ok(2));
        assert_eq!(rx.try_recv(), Err(RecvError::Timeout));
    }

    #[test]
    fn lag_is_reported_exactly() {
        let tx = channel::<u32>(3);
        let mut rx = tx.subscribe();
        for i in 0..10 {
            tx.send(i);
        }
        assert_eq!(rx.try_recv(), Err(RecvError::Lagged(7)));
        assert_eq!(rx.try_recv(), Ok(7));
        assert_eq!(rx.recv_timeout(Duration::from_secs(1)), Ok(8));
        assert_eq!(rx.recv(), Ok(9));
        tx.close();
        assert_eq!(rx.recv(), Err(RecvError::Closed));
    }

    #[test]
    fn drop_unsubscribes() {
        let tx = channel::<u32>(3);
        let rx = tx.subscribe();
        assert_eq!(tx.subscriber_count(), 1);
        drop(rx);
        assert!(!tx.has_subscribers());
    }
}
