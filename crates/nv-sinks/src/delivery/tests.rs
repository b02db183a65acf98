//! The core with a scripted transport and a manual clock: exact counts, no real time.

use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use nv_core::clock::{ManualClock, SharedClock};
use nv_core::id::FeedId;

use super::batch::{self, Attempt, BatchPolicy, BatchTransport};
use super::{Delivery, Limits, Outcome};
use crate::backoff::Backoff;
use crate::buffer::Attributed;
use crate::stats::SinkStats;

/// Record `n` belongs to feed `n / 100`.
#[derive(Debug, PartialEq, Eq)]
struct Rec(u64);

impl Attributed for Rec {
    fn feed(&self) -> FeedId {
        FeedId::new(self.0 / 100)
    }
}

fn core(buffer: usize, window: usize, needs_connection: bool) -> (Delivery<Rec>, Arc<ManualClock>) {
    let clock = ManualClock::new();
    let shared: SharedClock = clock.clone();
    let limits = Limits {
        buffer_records: buffer,
        max_in_flight: window,
        needs_connection,
    };
    (
        Delivery::new("test", limits, SinkStats::new(), shared),
        clock,
    )
}

fn ids(taken: &[(u64, Arc<Rec>)]) -> Vec<u64> {
    taken.iter().map(|(_, r)| r.0).collect()
}

fn tickets(taken: &[(u64, Arc<Rec>)]) -> Vec<u64> {
    taken.iter().map(|(t, _)| *t).collect()
}

#[test]
fn buffer_bound_drops_the_oldest_and_counts_them_per_feed() {
    let (d, _clock) = core(5, 10, true);
    for n in [100, 101, 102, 200, 201, 202, 203, 300] {
        d.push(Rec(n));
    }
    // Disconnected: nothing is handed over, 8 records into 5 places drop the 3 oldest.
    assert!(d.take(10).is_empty());
    let s = d.stats().snapshot();
    assert_eq!((s.dropped_by_buffer, s.buffered), (3, 5));
    assert_eq!(d.stats().feed(FeedId::new(1)).dropped_by_buffer, 3);
    assert_eq!(d.stats().feed(FeedId::new(2)).dropped_by_buffer, 0);
    d.connection_up();
    assert_eq!(ids(&d.take(10)), vec![200, 201, 202, 203, 300]);
}

#[test]
fn in_flight_never_exceeds_the_window_and_settling_frees_it() {
    let (d, _clock) = core(100, 3, false);
    for n in 0..10 {
        d.push(Rec(n));
    }
    let first = d.take(10);
    assert_eq!(ids(&first), vec![0, 1, 2]);
    assert!(d.take(10).is_empty(), "window full");
    d.settle(&tickets(&first[..1]), Outcome::Delivered);
    assert_eq!(ids(&d.take(10)), vec![3]);
    assert!(d.take(1).is_empty());
    let s = d.stats().snapshot();
    assert_eq!((s.delivered, s.buffered), (1, 9));
}

#[test]
fn retried_and_unsent_records_go_back_to_the_front_in_order() {
    let (d, _clock) = core(4, 10, true);
    d.connection_up();
    for n in 0..3 {
        d.push(Rec(n));
    }
    let taken = d.take(10);
    for n in 3..6 {
        d.push(Rec(n));
    }
    // 0..3 in flight do not count against the bound; 3..6 fit.
    d.settle(&tickets(&taken[1..]), Outcome::Unsent);
    // Back in front: 1 2 3 4 5 (5 > 4): the oldest, 1, is evicted.
    assert_eq!(d.stats().snapshot().dropped_by_buffer, 1);
    assert_eq!(d.stats().snapshot().retries, 0);
    d.connection_lost();
    assert!(d.take(10).is_empty());
    // A lost connection keeps what is in flight there until the reconnect requeues it.
    d.requeue_in_flight();
    assert_eq!(d.stats().snapshot().retries, 1);
    assert_eq!(d.stats().snapshot().dropped_by_buffer, 2);
    d.connection_up();
    assert_eq!(ids(&d.take(10)), vec![2, 3, 4, 5]);
    // Settling a ticket twice counts it once.
    d.settle(&tickets(&taken[..1]), Outcome::Delivered);
    let s = d.stats().snapshot();
    assert_eq!((s.delivered, s.dropped_by_buffer, s.reconnects), (0, 2, 1));
}

#[test]
fn drain_waits_for_its_deadline_on_the_clock_and_close_counts_failed_per_feed() {
    let (d, clock) = core(10, 10, true);
    for n in [100, 101, 200] {
        d.push(Rec(n));
    }
    let draining = d.clone();
    let t = std::thread::Builder::new()
        .name("drain".into())
        .spawn(move || draining.drain(Duration::from_secs(5)))
        .unwrap();
    d.wait_draining();
    clock.advance(Duration::from_secs(4));
    assert!(!t.is_finished(), "deadline not reached");
    clock.advance(Duration::from_secs(1));
    assert!(!t.join().unwrap(), "nothing could be sent");
    d.close();
    let s = d.stats().snapshot();
    assert_eq!((s.failed, s.buffered, s.connected), (3, 0, false));
    assert_eq!(d.stats().feed(FeedId::new(1)).failed, 2);
    assert_eq!(d.stats().feed(FeedId::new(2)).failed, 1);
    // After the close a record is counted at once.
    d.push(Rec(300));
    assert_eq!(d.stats().feed(FeedId::new(3)).failed, 1);
}

#[test]
fn drain_returns_once_everything_settled() {
    let (d, _clock) = core(10, 10, false);
    d.push(Rec(1));
    let taken = d.take(10);
    let draining = d.clone();
    let t = std::thread::Builder::new()
        .name("drain".into())
        .spawn(move || draining.drain(Duration::from_secs(5)))
        .unwrap();
    d.settle(&tickets(&taken), Outcome::Delivered);
    assert!(t.join().unwrap());
}

/// Plays a script of attempts and reports every batch it was given.
struct Scripted {
    script: VecDeque<Attempt>,
    sent: mpsc::SyncSender<Vec<u64>>,
    /// Records the publish gate refuses.
    refuse: Vec<u64>,
}

impl BatchTransport for Scripted {
    type Record = Rec;
    fn send(&mut self, batch: &[Arc<Rec>]) -> Attempt {
        self.sent.send(batch.iter().map(|r| r.0).collect()).unwrap();
        self.script.pop_front().unwrap_or(Attempt::Delivered)
    }
    fn admit(&self, record: &Rec) -> bool {
        !self.refuse.contains(&record.0)
    }
}

fn retry(delivered: usize) -> Attempt {
    Attempt::Retry {
        delivered,
        why: "scripted".into(),
    }
}

fn driver(
    d: &Delivery<Rec>,
    script: Vec<Attempt>,
    max_records: usize,
    max_retries: Option<u32>,
) -> (std::thread::JoinHandle<()>, mpsc::Receiver<Vec<u64>>) {
    driver_with_delay(d, script, max_records, max_retries, Duration::ZERO)
}

fn driver_with_delay(
    d: &Delivery<Rec>,
    script: Vec<Attempt>,
    max_records: usize,
    max_retries: Option<u32>,
    max_delay: Duration,
) -> (std::thread::JoinHandle<()>, mpsc::Receiver<Vec<u64>>) {
    let (tx, rx) = mpsc::sync_channel(16);
    let policy = BatchPolicy {
        max_records,
        max_delay,
        max_retries,
        backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(8)),
    };
    let t = batch::spawn(
        "test-driver",
        d.clone(),
        policy,
        Scripted {
            script: script.into(),
            sent: tx,
            refuse: Vec::new(),
        },
    )
    .unwrap();
    (t, rx)
}

#[test]
fn batch_driver_resends_the_unacknowledged_rest_after_the_clock_backoff() {
    let (d, clock) = core(100, 4, true);
    d.connection_up();
    for n in 0..6 {
        d.push(Rec(n));
    }
    let (t, rx) = driver(&d, vec![retry(2), retry(0)], 4, None);
    assert_eq!(rx.recv().unwrap(), vec![0, 1, 2, 3]);
    d.wait_pauses(1);
    assert_eq!(d.stats().snapshot().delivered, 2);
    // The backoff is 1 s on the clock: nothing is sent again before it passed.
    clock.advance(Duration::from_millis(999));
    assert!(rx.try_recv().is_err());
    clock.advance(Duration::from_millis(1));
    assert_eq!(rx.recv().unwrap(), vec![2, 3]);
    d.wait_pauses(2);
    clock.advance(Duration::from_secs(2));
    assert_eq!(rx.recv().unwrap(), vec![2, 3]);
    assert_eq!(rx.recv().unwrap(), vec![4, 5]);
    assert!(d.drain(Duration::from_secs(60)));
    d.begin_close();
    t.join().unwrap();
    d.close();
    let s = d.stats().snapshot();
    assert_eq!((s.delivered, s.failed, s.retries, s.buffered), (6, 0, 2, 0));
}

#[test]
fn batch_driver_gives_up_after_max_retries_and_on_rejection() {
    let (d, clock) = core(100, 10, false);
    d.push(Rec(100));
    d.push(Rec(200));
    let reject = Attempt::Reject {
        delivered: 0,
        why: "scripted".into(),
    };
    let (t, rx) = driver(&d, vec![retry(0), retry(0), reject], 1, Some(1));
    assert_eq!(rx.recv().unwrap(), vec![100]);
    d.wait_pauses(1);
    clock.advance(Duration::from_secs(1));
    assert_eq!(rx.recv().unwrap(), vec![100]);
    // Second failure of the same batch: max_retries = 1 was used up.
    assert_eq!(rx.recv().unwrap(), vec![200]);
    assert!(d.drain(Duration::from_secs(60)));
    d.begin_close();
    t.join().unwrap();
    d.close();
    let s = d.stats().snapshot();
    assert_eq!((s.delivered, s.failed, s.retries), (0, 2, 1));
    assert_eq!(d.stats().feed(FeedId::new(1)).failed, 1);
    assert_eq!(d.stats().feed(FeedId::new(2)).failed, 1);
    assert_eq!(d.pauses(), 1);
}

#[test]
fn close_ends_a_backoff_and_counts_the_batch_in_flight_as_failed() {
    let (d, _clock) = core(100, 10, true);
    d.connection_up();
    for n in 0..3 {
        d.push(Rec(n));
    }
    let (t, rx) = driver(&d, vec![retry(0)], 2, None);
    assert_eq!(rx.recv().unwrap(), vec![0, 1]);
    d.wait_pauses(1);
    d.begin_close();
    t.join().unwrap();
    d.close();
    let s = d.stats().snapshot();
    assert_eq!((s.delivered, s.failed, s.retries, s.buffered), (0, 3, 0, 0));
}

#[test]
fn a_full_batch_goes_at_once_and_a_drain_cuts_the_batch_delay_short() {
    let (d, _clock) = core(100, 10, false);
    // The clock never moves: only a full batch or a drain can end the hour-long window.
    let (t, rx) = driver_with_delay(&d, Vec::new(), 3, None, Duration::from_secs(3600));
    for n in 0..5 {
        d.push(Rec(n));
    }
    let patience = Duration::from_secs(60);
    assert_eq!(rx.recv_timeout(patience).unwrap(), vec![0, 1, 2]);
    assert!(d.drain(Duration::from_secs(3600)));
    assert_eq!(rx.recv_timeout(patience).unwrap(), vec![3, 4]);
    d.begin_close();
    t.join().unwrap();
    d.close();
    assert_eq!(d.stats().snapshot().delivered, 5);
}

/// A record the publish gate refuses is never sent and counts as failed; the rest of its
/// batch goes out as usual.
#[test]
fn batch_driver_withholds_what_the_publish_gate_refuses() {
    let (d, _clock) = core(100, 10, false);
    for n in 0..5 {
        d.push(Rec(n));
    }
    let (tx, rx) = mpsc::sync_channel(16);
    let policy = BatchPolicy {
        max_records: 10,
        max_delay: Duration::ZERO,
        max_retries: None,
        backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(8)),
    };
    let transport = Scripted {
        script: VecDeque::new(),
        sent: tx,
        refuse: vec![1, 3],
    };
    let t = batch::spawn("test-driver", d.clone(), policy, transport).unwrap();
    assert_eq!(rx.recv().unwrap(), vec![0, 2, 4]);
    assert!(d.drain(Duration::from_secs(60)));
    d.begin_close();
    t.join().unwrap();
    d.close();
    let s = d.stats().snapshot();
    assert_eq!((s.delivered, s.failed, s.buffered), (3, 2, 0));
}
