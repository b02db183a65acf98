//! Health records for `/api/v1/events`: one thread turns the runtime's health stream into
//! numbered JSON records (kept in a bounded history for `Last-Event-ID` replay) and
//! fans them out on an async broadcast channel. Each SSE client is an async stream over
//! that channel: no thread per client, and a configurable cap on clients.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use nv_core::time::WallTs;
use nv_io::broadcast::RecvError;
use nv_runtime::{HealthEvent, HealthSubscription};
use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::broadcast;

/// One published record.
#[derive(Debug)]
pub struct Record {
    pub id: u64,
    pub json: String,
}

struct History {
    /// Id of the next record; ids start at 1 so `Last-Event-ID: 0` means "everything".
    next_id: u64,
    ring: VecDeque<Arc<Record>>,
    capacity: usize,
}

/// The publisher side shared by every SSE client.
pub struct EventHub {
    history: Mutex<History>,
    live: broadcast::Sender<Arc<Record>>,
    clients: AtomicUsize,
    max_clients: usize,
}

impl std::fmt::Debug for EventHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHub")
            .field("clients", &self.clients.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Holds one client slot; released when the client's stream is dropped.
#[derive(Debug)]
pub struct ClientSlot(Arc<EventHub>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a new client gets: the records it missed, then the live channel.
pub struct Subscription {
    pub backlog: VecDeque<Arc<Record>>,
    pub live: broadcast::Receiver<Arc<Record>>,
    /// Records after the client's last id that the bounded history no longer holds.
    pub missed: u64,
}

impl EventHub {
    pub fn new(history: usize, max_clients: usize) -> Arc<Self> {
        let capacity = history.max(1);
        let (live, _) = broadcast::channel(capacity);
        Arc::new(Self {
            history: Mutex::new(History {
                next_id: 1,
                ring: VecDeque::with_capacity(capacity.min(4096)),
                capacity,
            }),
            live,
            clients: AtomicUsize::new(0),
            max_clients,
        })
    }

    /// Numbers, records, keeps and fans out one event.
    pub fn publish(&self, event: &HealthEvent) {
        let mut h = self.history.lock();
        let id = h.next_id;
        h.next_id += 1;
        let value = nv_sinks::health_record(event, Some(id), WallTs::now());
        tracing::debug!(target: "nv_events", record = %value, "health event");
        let record = Arc::new(Record {
            id,
            json: value.to_string(),
        });
        if h.ring.len() >= h.capacity {
            h.ring.pop_front();
        }
        h.ring.push_back(Arc::clone(&record));
        // Sent under the history lock, so a subscriber sees each record exactly once:
        // either in its backlog or on its receiver.
        let _no_clients = self.live.send(record);
    }

    /// Takes a client slot, or `None` when `max_clients` are connected.
    pub fn try_client(self: &Arc<Self>) -> Option<ClientSlot> {
        let mut n = self.clients.load(Ordering::Acquire);
        loop {
            if n >= self.max_clients {
                return None;
            }
            match self
                .clients
                .compare_exchange(n, n + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(ClientSlot(Arc::clone(self))),
                Err(now) => n = now,
            }
        }
    }

    #[cfg(test)]
    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::Acquire)
    }

    /// Subscribes, replaying every kept record with an id above `after` (all kept
    /// records when `None`).
    pub fn subscribe(&self, after: Option<u64>) -> Subscription {
        let h = self.history.lock();
        let live = self.live.subscribe();
        let after = after.unwrap_or(0);
        let backlog: VecDeque<Arc<Record>> =
            h.ring.iter().filter(|r| r.id > after).cloned().collect();
        let oldest = h.ring.front().map_or(h.next_id, |r| r.id);
        let missed = oldest.saturating_sub(after.saturating_add(1));
        Subscription {
            backlog,
            live,
            missed,
        }
    }

    /// Starts the thread that publishes the runtime's health events; it ends when the
    /// runtime closes the stream.
    pub fn spawn_publisher(
        self: &Arc<Self>,
        mut sub: HealthSubscription,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let hub = Arc::clone(self);
        std::thread::Builder::new()
            .name("nv-api-events".into())
            .stack_size(256 * 1024)
            .spawn(move || loop {
                match sub.recv() {
                    Ok(e) => hub.publish(&e),
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "event publisher fell behind the health stream");
                    }
                    Err(RecvError::Closed) => return,
                    Err(RecvError::Timeout) => {}
                }
            })
    }
}

/// The record that tells a client how many events it missed (not numbered: it is not
/// part of the history).
pub fn lagged_record(missed: u64) -> String {
    json!({
        "schema_version": nv_sinks::HEALTH_SCHEMA_VERSION,
        "record": "health",
        "id": null,
        "wall_micros": WallTs::now().as_micros(),
        "event": "subscriber_lagged",
        "severity": "warning",
        "feed_id": null,
        "message": format!("this client missed {missed} events"),
        "data": { "missed": missed },
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nv_core::FeedId;

    fn ev(n: u64) -> HealthEvent {
        HealthEvent::FeedPaused {
            feed_id: FeedId::new(n),
        }
    }

    #[test]
    fn replay_is_exact_and_bounded() {
        let hub = EventHub::new(3, 2);
        for n in 0..5 {
            hub.publish(&ev(n));
        }
        // ids 1..=5 published, 3..=5 kept.
        let s = hub.subscribe(Some(3));
        assert_eq!(s.backlog.iter().map(|r| r.id).collect::<Vec<_>>(), [4, 5]);
        assert_eq!(s.missed, 0);
        let s = hub.subscribe(Some(0));
        assert_eq!(
            s.backlog.iter().map(|r| r.id).collect::<Vec<_>>(),
            [3, 4, 5]
        );
        assert_eq!(s.missed, 2);
        let mut s = hub.subscribe(None);
        assert_eq!(s.backlog.len(), 3);
        hub.publish(&ev(9));
        assert_eq!(s.live.try_recv().map(|r| r.id).ok(), Some(6));
    }

    #[test]
    fn client_slots_are_capped_and_released() {
        let hub = EventHub::new(1, 2);
        let a = hub.try_client();
        let b = hub.try_client();
        assert!(a.is_some() && b.is_some());
        assert!(hub.try_client().is_none());
        drop(a);
        assert!(hub.try_client().is_some());
        drop(b);
        assert_eq!(hub.clients(), 0);
    }
}
