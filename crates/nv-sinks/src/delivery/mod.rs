//! The buffered-delivery core every network sink runs on.
//!
//! A [`Delivery`] owns what the webhook, MQTT, NATS and Kafka sinks used to keep each on
//! their own: the bounded buffer that drops its oldest records, the in-flight window of
//! records handed to the transport and not yet settled, requeueing to the front, the
//! drain with a deadline on flush and drop, the accounting in [`SinkStats`] (every record
//! ends up in exactly one of delivered, failed or dropped, counted for its feed) and the
//! connection state. A transport only connects, sends what [`Delivery::take`] gives it
//! and reports each record's [`Outcome`]. Every wait goes through an injected clock, so
//! the core's behaviour is tested without real time.
//!
//! Losses are counted where they happen: a buffer eviction as `dropped_by_buffer`, a
//! rejection or a record given up at shutdown as `failed`, each for its feed. The daemon's
//! sink monitor turns new losses in those counters into `SinkDeliveryLoss` health events;
//! the core also logs a give-up at shutdown with its count.

pub(crate) mod batch;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use nv_core::clock::SharedClock;
use nv_core::id::FeedId;
use nv_io::sync::{WaitOutcome, Waiter};
use nv_io::OutputEnvelope;

use crate::buffer::{Attributed, DropOldest};
use crate::stats::{Fate, SinkStats};

/// Identifies one record handed to the transport, in hand-over order.
pub(crate) type Ticket = u64;

/// What became of records the transport was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Confirmed by the endpoint.
    Delivered,
    /// Given up on (rejected, or unconfirmed where re-sending could duplicate).
    Failed,
    /// Never left: back to the front of the buffer, not counted as a retry.
    Unsent,
    /// Sent and lost: back to the front of the buffer, counted as retries.
    Retry,
}

/// Sizes and rules of one sink's core.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Records waiting for the transport; beyond this the oldest are dropped.
    pub buffer_records: usize,
    /// Records handed to the transport and not yet settled.
    pub max_in_flight: usize,
    /// Hand records over only while connected (false: the transport queues them itself).
    pub needs_connection: bool,
}

struct State<R> {
    buffer: DropOldest<Arc<R>>,
    /// Handed to the transport, by ticket (= hand-over order).
    flights: BTreeMap<Ticket, Arc<R>>,
    next_ticket: Ticket,
    connected: bool,
    ever_connected: bool,
    /// Drains waiting: send without waiting for a batch to fill.
    draining: usize,
    /// Shutting down: drivers stop taking and pausing.
    closing: bool,
    /// Everything outstanding was counted; late reports are ignored.
    closed: bool,
    /// Pauses begun (lets tests advance a manual clock only once a driver waits on it).
    pauses: u64,
}

impl<R: Attributed> State<R> {
    fn held(&self) -> usize {
        self.buffer.len() + self.flights.len()
    }
    fn can_send(&self, limits: &Limits) -> bool {
        !self.closing && (self.connected || !limits.needs_connection)
    }
    /// Something could be taken now.
    fn ready(&self, limits: &Limits) -> bool {
        self.can_send(limits)
            && !self.buffer.is_empty()
            && self.flights.len() < limits.max_in_flight
    }
}

struct Inner<R> {
    kind: &'static str,
    limits: Limits,
    stats: SinkStats,
    state: Arc<Waiter<State<R>>>,
}

/// One sink's buffer, in-flight window and accounting. Cloning shares it between the
/// sink (on the feed's thread) and the transport's threads.
pub(crate) struct Delivery<R> {
    inner: Arc<Inner<R>>,
}

impl<R> Clone for Delivery<R> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<R> fmt::Debug for Delivery<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("kind", &self.inner.kind)
            .field("stats", &self.inner.stats.snapshot())
            .finish_non_exhaustive()
    }
}

impl<R: Attributed + Send + Sync + 'static> Delivery<R> {
    /// A core for a sink of `kind` (named in log lines), counting into `stats`.
    pub fn new(kind: &'static str, limits: Limits, stats: SinkStats, clock: SharedClock) -> Self {
        let limits = Limits {
            buffer_records: limits.buffer_records.max(1),
            max_in_flight: limits.max_in_flight.max(1),
            ..limits
        };
        let state = State {
            buffer: DropOldest::new(limits.buffer_records),
            flights: BTreeMap::new(),
            next_ticket: 0,
            connected: false,
            ever_connected: false,
            draining: 0,
            closing: false,
            closed: false,
            pauses: 0,
        };
        Self {
            inner: Arc::new(Inner {
                kind,
                limits,
                stats,
                state: Waiter::new(state, clock),
            }),
        }
    }

    pub fn stats(&self) -> &SinkStats {
        &self.inner.stats
    }

    pub fn is_connected(&self) -> bool {
        self.inner.state.lock().connected
    }

    fn publish_held(&self, st: &State<R>) {
        self.inner.stats.set_buffered(st.held());
    }

    /// Buffers a record (evicting and counting the oldest beyond the bound). After the
    /// close it is counted as failed at once.
    pub fn push(&self, record: R) {
        let stats = &self.inner.stats;
        let mut st = self.inner.state.lock();
        if st.closed {
            stats.count(Fate::Failed, record.feed());
            return;
        }
        st.buffer.push_back(Arc::new(record), stats);
        self.publish_held(&st);
        drop(st);
        self.inner.state.notify_all();
    }

    /// `OutputSink::emit`: encodes the record kinds `records` selects and buffers what
    /// `make` builds of each (each counted as received on its own; one that cannot be
    /// encoded is counted as failed). True when a record was buffered.
    pub fn emit_records(
        &self,
        output: &OutputEnvelope,
        records: crate::records::Records,
        mut make: impl FnMut(crate::records::Encoded) -> R,
    ) -> bool {
        let encoded =
            crate::records::encode(output, records, &self.inner.stats, self.inner.kind, false);
        let any = !encoded.is_empty();
        for e in encoded {
            self.push(make(e));
        }
        any
    }

    /// Hands up to `max` records over (oldest first) if the transport may send and the
    /// in-flight window has room; never blocks.
    pub fn take(&self, max: usize) -> Vec<(Ticket, Arc<R>)> {
        let mut st = self.inner.state.lock();
        self.take_locked(&mut st, max)
    }

    fn take_locked(&self, st: &mut State<R>, max: usize) -> Vec<(Ticket, Arc<R>)> {
        if !st.can_send(&self.inner.limits) {
            return Vec::new();
        }
        let room = self
            .inner
            .limits
            .max_in_flight
            .saturating_sub(st.flights.len());
        let mut taken = Vec::new();
        for _ in 0..max.min(room) {
            let Some(record) = st.buffer.pop_front() else {
                break;
            };
            let ticket = st.next_ticket;
            st.next_ticket += 1;
            st.flights.insert(ticket, Arc::clone(&record));
            taken.push((ticket, record));
        }
        taken
    }

    /// Blocks until records can be handed over, then waits up to `max_delay` for `max`
    /// of them (cut short by a drain) and takes them. `None` once the sink is closing.
    pub fn next_batch(&self, max: usize, max_delay: Duration) -> Option<Vec<(Ticket, Arc<R>)>> {
        let limits = self.inner.limits;
        let waiter = &self.inner.state;
        let mut st = waiter.lock();
        loop {
            waiter.wait_until(&mut st, None, |s| s.closing || s.ready(&limits));
            if st.closing {
                return None;
            }
            if st.buffer.len() < max && !max_delay.is_zero() {
                let window_end = waiter.clock().now() + max_delay;
                waiter.wait_until(&mut st, Some(window_end), |s| {
                    s.closing || s.draining > 0 || s.buffer.len() >= max
                });
            }
            let batch = self.take_locked(&mut st, max);
            if !batch.is_empty() {
                return Some(batch);
            }
        }
    }

    /// Blocks until [`Delivery::take`] would hand something over; false once the sink is
    /// closing. For transports that take on several threads under their own lock.
    #[cfg_attr(
        not(feature = "kafka"),
        expect(dead_code, reason = "used by the kafka sink only")
    )]
    pub fn wait_ready(&self) -> bool {
        let limits = self.inner.limits;
        let waiter = &self.inner.state;
        let mut st = waiter.lock();
        waiter.wait_until(&mut st, None, |s| s.closing || s.ready(&limits));
        !st.closing
    }

    /// Settles records handed over earlier. Tickets no longer in flight (settled at
    /// close) are ignored, so every record is counted once.
    pub fn settle(&self, tickets: &[Ticket], outcome: Outcome) {
        let stats = &self.inner.stats;
        let mut st = self.inner.state.lock();
        let records: Vec<Arc<R>> = tickets
            .iter()
            .filter_map(|t| st.flights.remove(t))
            .collect();
        if records.is_empty() {
            return;
        }
        match outcome {
            Outcome::Delivered => {
                stats.count_each(Fate::Delivered, records.iter().map(|r| r.feed()))
            }
            Outcome::Failed => stats.count_each(Fate::Failed, records.iter().map(|r| r.feed())),
            Outcome::Unsent | Outcome::Retry => {
                if outcome == Outcome::Retry {
                    stats.add_retries(u64::try_from(records.len()).unwrap_or(u64::MAX));
                }
                st.buffer.requeue_front(records.into_iter(), stats);
            }
        }
        self.publish_held(&st);
        drop(st);
        self.inner.state.notify_all();
    }

    /// Puts every record in flight back at the front of the buffer, in order, to be sent
    /// again (a transport that forgets unacknowledged sends when its connection drops).
    pub fn requeue_in_flight(&self) {
        let tickets: Vec<Ticket> = self.inner.state.lock().flights.keys().copied().collect();
        self.settle(&tickets, Outcome::Retry);
    }

    /// Counts one re-send of records that stayed in flight.
    pub fn count_retry(&self) {
        self.inner.stats.add_retries(1);
    }

    /// The transport (re)connected; counts a reconnect after the first connection.
    pub fn connection_up(&self) {
        let mut st = self.inner.state.lock();
        if st.ever_connected && !st.connected {
            self.inner.stats.add_reconnect();
        }
        st.ever_connected = true;
        st.connected = true;
        self.inner.stats.set_connected(true);
        drop(st);
        self.inner.state.notify_all();
    }

    /// The transport lost its endpoint; returns whether it was connected.
    pub fn connection_lost(&self) -> bool {
        let was = std::mem::replace(&mut self.inner.state.lock().connected, false);
        self.inner.stats.set_connected(false);
        self.inner.state.notify_all();
        was
    }

    /// Waits `delay` (a backoff) and then until the transport may send again; false when
    /// the sink started closing meanwhile.
    pub fn pause(&self, delay: Duration) -> bool {
        let limits = self.inner.limits;
        let waiter = &self.inner.state;
        let mut st = waiter.lock();
        let until = waiter.clock().now() + delay;
        st.pauses += 1;
        waiter.notify_all();
        if waiter.wait_until(&mut st, Some(until), |s| s.closing) == WaitOutcome::Ready {
            return false;
        }
        waiter.wait_until(&mut st, None, |s| s.closing || s.can_send(&limits));
        !st.closing
    }

    /// Waits until nothing is buffered or in flight, or `timeout` passes; true when empty.
    /// Batching transports send at once while a drain waits.
    pub fn drain(&self, timeout: Duration) -> bool {
        let waiter = &self.inner.state;
        let mut st = waiter.lock();
        st.draining += 1;
        waiter.notify_all();
        let deadline = waiter.clock().now() + timeout;
        let outcome = waiter.wait_until(&mut st, Some(deadline), |s| s.held() == 0);
        st.draining -= 1;
        outcome == WaitOutcome::Ready
    }

    /// `OutputSink::flush`: drains within `timeout`, warns if records remain.
    pub fn flush(&self, timeout: Duration) {
        if !self.drain(timeout) {
            tracing::warn!(
                sink = self.inner.kind,
                buffered = self.inner.stats.snapshot().buffered,
                "sink flush timed out with records still buffered"
            );
        }
    }

    /// The `Drop` of a sink: drains within `timeout`, stops the transport (`stop` ends and
    /// joins its threads), then counts what is left as failed.
    pub fn shut_down(&self, timeout: Duration, stop: impl FnOnce()) {
        self.drain(timeout);
        self.begin_close();
        stop();
        self.close();
    }

    /// Tells the transport's threads to stop: `next_batch` returns `None`, pauses end.
    pub fn begin_close(&self) {
        self.inner.state.lock().closing = true;
        self.inner.state.notify_all();
    }

    /// Gives up on everything still held (counted as failed, for its feed) and marks the
    /// sink disconnected. Call after the transport's threads stopped.
    pub fn close(&self) {
        let stats = &self.inner.stats;
        let mut st = self.inner.state.lock();
        st.closing = true;
        st.closed = true;
        let held = st.held();
        let flights = std::mem::take(&mut st.flights);
        stats.count_each(Fate::Failed, flights.values().map(|r| r.feed()));
        st.buffer.fail_all(stats);
        st.connected = false;
        drop(st);
        stats.set_buffered(0);
        stats.set_connected(false);
        self.inner.state.notify_all();
        if held > 0 {
            tracing::warn!(
                sink = self.inner.kind,
                records = held,
                "sink closed with records undelivered; counted as failed"
            );
        }
    }

    #[cfg(test)]
    fn pauses(&self) -> u64 {
        self.inner.state.lock().pauses
    }

    #[cfg(test)]
    fn wait_pauses(&self, n: u64) {
        let waiter = &self.inner.state;
        let mut st = waiter.lock();
        waiter.wait_until(&mut st, None, |s| s.pauses >= n);
    }

    /// Waits until a drain computed its deadline (so a test advances the clock after).
    #[cfg(test)]
    fn wait_draining(&self) {
        let waiter = &self.inner.state;
        let mut st = waiter.lock();
        waiter.wait_until(&mut st, None, |s| s.draining > 0);
    }
}

impl<T: Attributed> Attributed for Arc<T> {
    fn feed(&self) -> FeedId {
        T::feed(self)
    }
}
