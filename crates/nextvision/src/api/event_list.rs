//! Recent perception events (zone entries, line crossings, ...) for the console's event
//! list: `GET /api/v1/events/recent` reads a bounded ring of the newest event records,
//! `GET /api/v1/events/stream` sends new ones as Server-Sent Events.
//!
//! The ring is filled by the daemon's snapshot thread from the runtime's output stream,
//! never by a feed worker, so nothing here can slow perception down. Each stream client
//! has its own bounded buffer filled with `try_send`: a client that does not keep up is
//! dropped (told so in a last `dropped` message once its buffer drained) and counted,
//! instead of making the publisher wait or buffer without bound. Open streams are capped,
//! a dropped client's included until its connection closes.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use nv_runtime::OutputEnvelope;
use parking_lot::Mutex;
use tokio::sync::mpsc;

/// Events buffered per stream client before it counts as too slow.
pub const CLIENT_BUFFER: usize = 256;
/// Events a list answers when the request names no `limit`.
pub const DEFAULT_LIMIT: usize = 100;

/// One kept event: its record as JSON and the fields the filters look at.
#[derive(Debug)]
pub struct Entry {
    /// Position in the daemon's event sequence (from 1): the stream's `id:`.
    pub seq: u64,
    pub feed_id: u64,
    pub feed: Option<String>,
    pub kind: String,
    /// The zone of `zone_*` events, the line of `line_crossed`.
    pub place: Option<String>,
    /// The event record (`event-v1.schema.json`).
    pub json: String,
}

/// What the filters of a list or a stream ask for; `None` matches everything.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// A feed's name or numeric id.
    pub feed: Option<String>,
    pub kind: Option<String>,
    /// A zone's or a line's name.
    pub zone: Option<String>,
}

impl Filter {
    pub fn matches(&self, e: &Entry) -> bool {
        let feed_ok = self.feed.as_deref().is_none_or(|f| {
            e.feed.as_deref() == Some(f) || f.parse::<u64>().is_ok_and(|id| id == e.feed_id)
        });
        feed_ok
            && self.kind.as_deref().is_none_or(|k| e.kind == k)
            && self
                .zone
                .as_deref()
                .is_none_or(|z| e.place.as_deref() == Some(z))
    }
}

struct Client {
    id: u64,
    filter: Filter,
    tx: mpsc::Sender<Arc<Entry>>,
    dropped: Arc<AtomicBool>,
}

struct Inner {
    next_seq: u64,
    ring: VecDeque<Arc<Entry>>,
    clients: Vec<Client>,
    next_client: u64,
    /// Open streams, against `max_clients`: the registered clients plus the dropped ones
    /// whose connection has not closed yet (a client that stopped reading still holds
    /// its connection and up to its buffer of events).
    connected: usize,
}

/// The ring of recent events and the stream clients.
pub struct EventLog {
    inner: Mutex<Inner>,
    capacity: usize,
    client_buffer: usize,
    max_clients: usize,
    dropped_slow: AtomicU64,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = self.inner.lock();
        f.debug_struct("EventLog")
            .field("kept", &i.ring.len())
            .field("clients", &i.clients.len())
            .finish_non_exhaustive()
    }
}

/// A stream client's registration; dropping it (the stream ended) unregisters it.
#[derive(Debug)]
pub struct ClientGuard {
    log: Arc<EventLog>,
    id: u64,
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        let mut i = self.log.inner.lock();
        i.clients.retain(|c| c.id != self.id);
        i.connected -= 1;
    }
}

/// What a new stream client gets.
#[derive(Debug)]
pub struct Subscription {
    /// Kept events after the client's `after` (none without one), oldest first.
    pub backlog: VecDeque<Arc<Entry>>,
    pub live: mpsc::Receiver<Arc<Entry>>,
    /// Set when the client was dropped for not keeping up.
    pub dropped: Arc<AtomicBool>,
    /// Held for its `Drop`, which unregisters the client.
    _guard: ClientGuard,
}

/// Figures for the record: streams open (dropped clients count until their connection
/// closes), clients dropped as too slow, events kept, the newest event's `seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    pub clients: usize,
    pub dropped_slow: u64,
    pub kept: usize,
    pub last_seq: u64,
}

impl EventLog {
    pub fn new(capacity: usize, client_buffer: usize, max_clients: usize) -> Arc<Self> {
        let capacity = capacity.max(1);
        Arc::new(Self {
            inner: Mutex::new(Inner {
                next_seq: 1,
                ring: VecDeque::with_capacity(capacity.min(4096)),
                clients: Vec::new(),
                next_client: 0,
                connected: 0,
            }),
            capacity,
            client_buffer: client_buffer.max(1),
            max_clients,
            dropped_slow: AtomicU64::new(0),
        })
    }

    /// Most events kept (and the largest `limit` a list accepts).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn max_clients(&self) -> usize {
        self.max_clients
    }

    /// Keeps the events of one output and hands them to the stream clients.
    pub fn publish_output(&self, output: &OutputEnvelope) {
        if output.events.is_empty() {
            return;
        }
        let records = output
            .events
            .iter()
            .enumerate()
            .map(|(n, e)| nv_sinks::EventRecord::from_event(output, n, e));
        self.publish(records.filter_map(|r| {
            let json = serde_json::to_string(&r).ok()?;
            Some(Entry {
                seq: 0,
                feed_id: r.feed_id,
                feed: r.feed,
                kind: r.kind,
                place: r.zone.or(r.line),
                json,
            })
        }));
    }

    /// Numbers and keeps `entries` (their `seq` is assigned here) and offers each to the
    /// clients whose filter matches, without waiting for any.
    pub fn publish(&self, entries: impl IntoIterator<Item = Entry>) {
        let mut i = self.inner.lock();
        for mut e in entries {
            e.seq = i.next_seq;
            i.next_seq += 1;
            let e = Arc::new(e);
            if i.ring.len() >= self.capacity {
                i.ring.pop_front();
            }
            i.ring.push_back(Arc::clone(&e));
            i.clients.retain(|c| {
                if !c.filter.matches(&e) {
                    return true;
                }
                match c.tx.try_send(Arc::clone(&e)) {
                    Ok(()) => true,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        c.dropped.store(true, Ordering::Release);
                        self.dropped_slow.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            buffered = self.client_buffer,
                            "event stream client dropped: it did not keep up"
                        );
                        false
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => false,
                }
            });
        }
    }

    /// The newest kept events matching `filter`, newest first, at most `limit`, and the
    /// `seq` of the newest event published when they were taken (a stream resumed after
    /// it misses none and repeats none).
    pub fn list(&self, filter: &Filter, limit: usize) -> (Vec<Arc<Entry>>, u64) {
        let i = self.inner.lock();
        let list = i
            .ring
            .iter()
            .rev()
            .filter(|e| filter.matches(e))
            .take(limit)
            .cloned()
            .collect();
        (list, i.next_seq - 1)
    }

    /// Registers a stream client, or `None` when `max_clients` streams are open. With
    /// `after`, the kept matching events with a larger `seq` come first (exactly once:
    /// registration and backlog happen under one lock with publishing).
    pub fn subscribe(self: &Arc<Self>, filter: Filter, after: Option<u64>) -> Option<Subscription> {
        let mut i = self.inner.lock();
        if i.connected >= self.max_clients {
            return None;
        }
        i.connected += 1;
        let backlog = match after {
            Some(after) => i
                .ring
                .iter()
                .filter(|e| e.seq > after && filter.matches(e))
                .cloned()
                .collect(),
            None => VecDeque::new(),
        };
        let (tx, live) = mpsc::channel(self.client_buffer);
        let dropped = Arc::new(AtomicBool::new(false));
        let id = i.next_client;
        i.next_client += 1;
        i.clients.push(Client {
            id,
            filter,
            tx,
            dropped: Arc::clone(&dropped),
        });
        Some(Subscription {
            backlog,
            live,
            dropped,
            _guard: ClientGuard {
                log: Arc::clone(self),
                id,
            },
        })
    }

    pub fn stats(&self) -> Stats {
        let i = self.inner.lock();
        Stats {
            clients: i.connected,
            dropped_slow: self.dropped_slow.load(Ordering::Relaxed),
            kept: i.ring.len(),
            last_seq: i.next_seq - 1,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    fn entry(feed: &str, kind: &str, place: Option<&str>) -> Entry {
        Entry {
            seq: 0,
            feed_id: if feed == "north" { 1 } else { 2 },
            feed: Some(feed.to_owned()),
            kind: kind.to_owned(),
            place: place.map(str::to_owned),
            json: format!("{{\"kind\":\"{kind}\"}}"),
        }
    }

    fn seqs((v, _): (Vec<Arc<Entry>>, u64)) -> Vec<u64> {
        v.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn the_ring_keeps_the_newest_and_filters_them() {
        let log = EventLog::new(5, 4, 2);
        log.publish((0..7).map(|n| {
            if n % 2 == 0 {
                entry("north", "line_crossed", Some("gate"))
            } else {
                entry("south", "zone_enter", Some("dock"))
            }
        }));
        // seqs 1..=7 published, 3..=7 kept; newest first.
        assert_eq!(seqs(log.list(&Filter::default(), 100)), [7, 6, 5, 4, 3]);
        assert_eq!(seqs(log.list(&Filter::default(), 2)), [7, 6]);
        let by = |feed: Option<&str>, kind: Option<&str>, zone: Option<&str>| Filter {
            feed: feed.map(str::to_owned),
            kind: kind.map(str::to_owned),
            zone: zone.map(str::to_owned),
        };
        assert_eq!(
            seqs(log.list(&by(Some("north"), None, None), 100)),
            [7, 5, 3]
        );
        assert_eq!(seqs(log.list(&by(Some("2"), None, None), 100)), [6, 4]);
        assert_eq!(
            seqs(log.list(&by(None, Some("zone_enter"), None), 100)),
            [6, 4]
        );
        assert_eq!(seqs(log.list(&by(None, None, Some("gate")), 1)), [7]);
        let (none, last) = log.list(&by(Some("north"), Some("zone_enter"), None), 100);
        assert!(none.is_empty());
        assert_eq!(last, 7);
        assert_eq!(
            log.stats(),
            Stats {
                clients: 0,
                dropped_slow: 0,
                kept: 5,
                last_seq: 7
            }
        );
    }

    #[test]
    fn a_stream_gets_what_it_missed_then_new_matching_events() {
        let log = EventLog::new(10, 4, 2);
        log.publish((0..3).map(|_| entry("north", "line_crossed", Some("gate"))));
        let mut sub = log
            .subscribe(
                Filter {
                    feed: Some("north".into()),
                    ..Filter::default()
                },
                Some(1),
            )
            .unwrap();
        assert_eq!(
            sub.backlog.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [2, 3]
        );
        log.publish([
            entry("south", "zone_enter", None),
            entry("north", "zone_exit", None),
        ]);
        assert_eq!(sub.live.try_recv().unwrap().seq, 5);
        assert!(
            sub.live.try_recv().is_err(),
            "south's event is filtered out"
        );
        // Without `after`, no backlog.
        let other = log.subscribe(Filter::default(), None).unwrap();
        assert!(other.backlog.is_empty());
    }

    #[test]
    fn a_slow_client_is_dropped_and_counted_a_closed_one_just_goes() {
        let log = EventLog::new(100, 4, 3);
        let mut slow = log.subscribe(Filter::default(), None).unwrap();
        let mut quick = log.subscribe(Filter::default(), None).unwrap();
        let closed = log.subscribe(Filter::default(), None).unwrap();
        // The cap: a fourth is refused.
        assert!(log.subscribe(Filter::default(), None).is_none());
        drop(closed);
        assert_eq!(log.stats().clients, 2);
        // Four fit the slow client's buffer, the fifth finds it full.
        for n in 0..4 {
            log.publish([entry("north", "line_crossed", None)]);
            assert_eq!(quick.live.try_recv().unwrap().seq, n + 1);
        }
        assert!(!slow.dropped.load(Ordering::Acquire));
        log.publish([entry("north", "line_crossed", None)]);
        assert_eq!(quick.live.try_recv().unwrap().seq, 5);
        assert!(slow.dropped.load(Ordering::Acquire));
        // Dropped, but its stream is still open: it keeps its place until it ends.
        let s = log.stats();
        assert_eq!((s.clients, s.dropped_slow), (2, 1));
        let third = log.subscribe(Filter::default(), None).unwrap();
        assert!(log.subscribe(Filter::default(), None).is_none());
        drop(third);
        // The slow client still reads what was buffered, then its stream ends.
        let got: Vec<u64> = std::iter::from_fn(|| slow.live.try_recv().ok())
            .map(|e| e.seq)
            .collect();
        assert_eq!(got, [1, 2, 3, 4]);
        assert!(matches!(
            slow.live.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        ));
        // Its place is free again once its stream is dropped.
        drop(slow);
        assert_eq!(log.stats().clients, 1);
        assert!(log.subscribe(Filter::default(), None).is_some());
        // A closed client is not counted as slow.
        drop(quick);
        log.publish([entry("north", "line_crossed", None)]);
        assert_eq!(log.stats().dropped_slow, 1);
    }
    #[test]
    fn bounds_and_delivery_hold_for_any_sequence() {
        // A deterministic pseudo-random walk over publishes, reads, subscribes and drops.
        // Invariants: the ring and the client list stay bounded; a list is newest first
        // and at most `limit`; a client never dropped receives exactly the matching events
        // published after it subscribed, in order; one dropped was full when dropped.
        let (cap, buffer, max_clients) = (7, 3, 4);
        let log = EventLog::new(cap, buffer, max_clients);
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        // (subscription, filter, seqs expected and not yet read)
        let mut clients: Vec<(Subscription, Filter, VecDeque<u64>)> = Vec::new();
        let feeds = ["north", "south"];
        for _ in 0..4000 {
            match next() % 6 {
                0..=2 => {
                    let feed = feeds[(next() % 2) as usize];
                    log.publish([entry(feed, "line_crossed", Some("gate"))]);
                    let seq = log.stats().last_seq;
                    let e = entry(feed, "line_crossed", Some("gate"));
                    for (sub, filter, expected) in &mut clients {
                        if filter.matches(&e) && !sub.dropped.load(Ordering::Acquire) {
                            expected.push_back(seq);
                        }
                    }
                }
                3 => {
                    for (sub, _, expected) in &mut clients {
                        while let Ok(e) = sub.live.try_recv() {
                            assert_eq!(Some(e.seq), expected.pop_front());
                        }
                        if sub.dropped.load(Ordering::Acquire) {
                            // What it had buffered was read; the rest never comes.
                            expected.clear();
                        } else {
                            assert!(expected.is_empty());
                        }
                    }
                }
                4 => {
                    let filter = Filter {
                        feed: (next() % 2 == 0).then(|| feeds[(next() % 2) as usize].to_owned()),
                        ..Filter::default()
                    };
                    match log.subscribe(filter.clone(), None) {
                        Some(sub) => clients.push((sub, filter, VecDeque::new())),
                        None => assert_eq!(log.stats().clients, max_clients),
                    }
                }
                _ => {
                    if !clients.is_empty() {
                        let i = (next() % clients.len() as u64) as usize;
                        clients.swap_remove(i);
                    }
                }
            }
            let s = log.stats();
            assert!(s.kept <= cap && s.clients <= max_clients);
            let limit = (next() % 10) as usize;
            let (list, last) = log.list(&Filter::default(), limit);
            assert!(list.len() <= limit.min(cap));
            assert!(list.windows(2).all(|w| w[0].seq > w[1].seq));
            assert!(list.first().is_none_or(|e| e.seq == last));
            for (sub, _, expected) in &clients {
                if !sub.dropped.load(Ordering::Acquire) {
                    assert!(expected.len() <= buffer);
                }
            }
        }
        // The walk did reach the interesting cases.
        let s = log.stats();
        assert!(s.dropped_slow > 10 && s.last_seq > 1000, "{s:?}");
    }
}
