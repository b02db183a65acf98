//! MQTT sink on rumqttc, driven by a private runtime thread.
//!
//! Delivery accounting is exact: the sink keeps every record it handed to the client
//! until the client reports it written (QoS 0) or the broker acknowledges it (QoS 1:
//! PUBACK, QoS 2: PUBCOMP). The client runs with a clean session, so after a connection
//! loss it forgets unacknowledged publishes; the sink puts them back at the front of its
//! own buffer (in order) and sends them again after reconnecting. Nothing is handed to the
//! client while disconnected, so the bounded buffer is the only place records wait, and
//! every record it evicts is counted in `dropped_by_buffer`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nv_core::id::FeedId;
use nv_core::security::sanitize_error_string;
use nv_io::{OutputSink, SharedOutput};
use parking_lot::{Condvar, Mutex};
use rumqttc::{AsyncClient, Event, EventLoop, Incoming, LastWill, MqttOptions, Outgoing, QoS};
use tokio::sync::Notify;

use crate::backoff::Backoff;
use crate::buffer::{Attributed, DropOldest};
use crate::config::{MqttQos, MqttSinkConfig};
use crate::error::SinkError;
use crate::schema::OutputRecord;
use crate::stats::{Fate, SinkStats};
use crate::template::{expand, EVENT_OUTPUTS};

const ONLINE: &str = "online";
const OFFLINE: &str = "offline";

#[derive(Debug)]
struct Pending {
    feed: FeedId,
    topic: String,
    payload: Vec<u8>,
}

impl Attributed for Pending {
    fn feed(&self) -> FeedId {
        self.feed
    }
}

/// A publish handed to the client: a record, or the availability message (`None`).
#[derive(Debug)]
struct Handed {
    record: Option<Pending>,
    pkid: Option<u16>,
}

#[derive(Debug)]
struct State {
    buffer: DropOldest<Pending>,
    handed: VecDeque<Handed>,
    connected: bool,
    ever_connected: bool,
    /// The event loop finished (clean disconnect or shutdown).
    exited: bool,
}

impl State {
    fn handed_records(&self) -> usize {
        self.handed.iter().filter(|h| h.record.is_some()).count()
    }
    fn held(&self) -> usize {
        self.buffer.len() + self.handed_records()
    }
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    /// Wakes the pump task (records arrived).
    wake: Notify,
    /// Ends the event loop.
    shutdown: Notify,
}

impl Shared {
    fn notify_changed(&self) {
        self.changed.notify_all();
    }
}

static CLIENT_IDS: AtomicU64 = AtomicU64::new(0);

/// Publishes records to an MQTT broker. See the module docs for the delivery contract.
#[derive(Debug)]
pub struct MqttSink {
    shared: Arc<Shared>,
    stats: SinkStats,
    client: AsyncClient,
    availability_topic: String,
    flush_timeout: Duration,
    topic: String,
    thread: Option<JoinHandle<()>>,
}

fn qos(q: MqttQos) -> QoS {
    match q {
        MqttQos::AtMostOnce => QoS::AtMostOnce,
        MqttQos::AtLeastOnce => QoS::AtLeastOnce,
        MqttQos::ExactlyOnce => QoS::ExactlyOnce,
    }
}

impl MqttSink {
    pub fn start(config: MqttSinkConfig, stats: SinkStats) -> Result<Self, SinkError> {
        config.validate()?;
        let client_id = config.client_id.clone().unwrap_or_else(|| {
            format!(
                "nextvision-{}-{}",
                std::process::id(),
                CLIENT_IDS.fetch_add(1, Ordering::Relaxed)
            )
        });
        let availability_topic = config.availability_topic.replace("{client_id}", &client_id);
        let mut opts = MqttOptions::new(&client_id, &config.host, config.port);
        opts.set_clean_session(true)
            .set_keep_alive(config.keep_alive())
            .set_inflight(config.max_in_flight.saturating_add(2))
            .set_last_will(LastWill::new(
                &availability_topic,
                OFFLINE,
                QoS::AtLeastOnce,
                true,
            ));
        let max_packet = usize::try_from(config.max_packet_bytes).unwrap_or(usize::MAX);
        opts.set_max_packet_size(max_packet, max_packet);
        if let Some(user) = &config.username {
            let pw = config.password.as_ref().map_or("", |p| p.expose());
            opts.set_credentials(user, pw);
        }
        let cap = usize::from(config.max_in_flight) + 4;
        let (client, eventloop) = AsyncClient::new(opts, cap);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                buffer: DropOldest::new(usize::try_from(config.buffer_records).unwrap_or(1)),
                handed: VecDeque::new(),
                connected: false,
                ever_connected: false,
                exited: false,
            }),
            changed: Condvar::new(),
            wake: Notify::new(),
            shutdown: Notify::new(),
        });
        let driver = Driver {
            shared: Arc::clone(&shared),
            stats: stats.clone(),
            client: client.clone(),
            qos: qos(config.qos),
            retain: config.retain,
            max_in_flight: usize::from(config.max_in_flight),
            availability_topic: availability_topic.clone(),
            endpoint: format!("{}:{}", config.host, config.port),
            backoff: Backoff::new(
                Duration::from_millis(config.reconnect_initial_ms),
                Duration::from_millis(config.reconnect_max_ms),
            ),
        };
        let thread = crate::rt::spawn("nv-sink-mqtt", move || driver.run(eventloop))?;
        Ok(Self {
            shared,
            stats,
            client,
            availability_topic,
            flush_timeout: Duration::from_millis(config.flush_timeout_ms),
            topic: config.topic,
            thread: Some(thread),
        })
    }

    pub fn stats(&self) -> &SinkStats {
        &self.stats
    }

    /// The retained availability topic (`online` / `offline`).
    pub fn availability_topic(&self) -> &str {
        &self.availability_topic
    }

    fn drain(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.state.lock();
        crate::wait::wait_until(&self.shared.changed, &mut st, deadline, |s| s.held() == 0)
    }
}

impl OutputSink for MqttSink {
    fn emit(&mut self, output: SharedOutput) {
        let Some((record, payload)) =
            OutputRecord::encode_for_sink(&output, &self.stats, "mqtt", false)
        else {
            return;
        };
        let topic = expand(&self.topic, record.feed_id, EVENT_OUTPUTS);
        {
            let mut st = self.shared.state.lock();
            let feed = output.feed_id;
            st.buffer.push_back(
                Pending {
                    feed,
                    topic,
                    payload,
                },
                &self.stats,
            );
            self.stats.set_buffered(st.held());
        }
        self.shared.wake.notify_one();
    }

    fn flush(&mut self) {
        if !self.drain(self.flush_timeout) {
            tracing::warn!(
                buffered = self.stats.snapshot().buffered,
                "mqtt sink: flush timed out with records still buffered"
            );
        }
    }
}

impl Drop for MqttSink {
    fn drop(&mut self) {
        self.drain(self.flush_timeout);
        let connected = self.shared.state.lock().connected;
        if connected {
            // Clean shutdown: retained `offline` (the will only fires on a lost
            // connection), then DISCONNECT; the event loop ends when it is written.
            let sent = self
                .client
                .try_publish(&self.availability_topic, QoS::AtLeastOnce, true, OFFLINE)
                .and_then(|()| self.client.try_disconnect());
            if sent.is_ok() {
                let deadline = Instant::now() + Duration::from_secs(2);
                let mut st = self.shared.state.lock();
                crate::wait::wait_until(&self.shared.changed, &mut st, deadline, |s| s.exited);
            }
        }
        self.shared.shutdown.notify_one();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::warn!("mqtt sink thread panicked");
            }
        }
        let mut st = self.shared.state.lock();
        st.buffer.fail_all(&self.stats);
        let handed = std::mem::take(&mut st.handed);
        self.stats.count_each(
            Fate::Failed,
            handed
                .iter()
                .filter_map(|h| h.record.as_ref().map(|r| r.feed)),
        );
        self.stats.set_buffered(0);
        self.stats.set_connected(false);
    }
}

/// Runs on the runtime thread: the event loop and the pump.
struct Driver {
    shared: Arc<Shared>,
    stats: SinkStats,
    client: AsyncClient,
    qos: QoS,
    retain: bool,
    max_in_flight: usize,
    availability_topic: String,
    endpoint: String,
    backoff: Backoff,
}

impl Driver {
    async fn run(mut self, mut eventloop: EventLoop) {
        let pump = {
            let shared = Arc::clone(&self.shared);
            let client = self.client.clone();
            let stats = self.stats.clone();
            let (qos, retain, max) = (self.qos, self.retain, self.max_in_flight);
            tokio::spawn(async move {
                loop {
                    shared.wake.notified().await;
                    pump(&shared, &client, &stats, qos, retain, max);
                }
            })
        };
        loop {
            tokio::select! {
                biased;
                () = self.shared.shutdown.notified() => break,
                ev = eventloop.poll() => match ev {
                    Ok(ev) => {
                        if self.on_event(ev) {
                            break;
                        }
                    }
                    Err(e) => {
                        self.on_connection_lost(&e.to_string());
                        let delay = self.backoff.next_delay();
                        tokio::select! {
                            () = self.shared.shutdown.notified() => break,
                            () = tokio::time::sleep(delay) => {}
                        }
                    }
                },
            }
        }
        pump.abort();
        let mut st = self.shared.state.lock();
        st.connected = false;
        st.exited = true;
        self.stats.set_connected(false);
        self.shared.notify_changed();
    }

    /// Handles one event; true when the loop should end (clean disconnect written).
    fn on_event(&mut self, ev: Event) -> bool {
        match ev {
            Event::Incoming(Incoming::ConnAck(_)) => self.on_connected(),
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                let mut st = self.shared.state.lock();
                if let Some(i) = st.handed.iter().position(|h| h.pkid.is_none()) {
                    if self.qos == QoS::AtMostOnce && pkid == 0 {
                        self.complete(&mut st, i);
                    } else if let Some(h) = st.handed.get_mut(i) {
                        h.pkid = Some(pkid);
                    }
                }
            }
            Event::Incoming(Incoming::PubAck(ack)) => self.acked(ack.pkid, QoS::AtLeastOnce),
            Event::Incoming(Incoming::PubComp(comp)) => self.acked(comp.pkid, QoS::ExactlyOnce),
            Event::Outgoing(Outgoing::Disconnect) => return true,
            _ => {}
        }
        false
    }

    /// A publish finished; frees its in-flight slot.
    fn complete(&self, st: &mut State, index: usize) {
        if let Some(h) = st.handed.remove(index) {
            if let Some(r) = h.record {
                self.stats.count(Fate::Delivered, r.feed);
            }
        }
        self.stats.set_buffered(st.held());
        self.shared.notify_changed();
        self.shared.wake.notify_one();
    }

    fn acked(&self, pkid: u16, level: QoS) {
        let mut st = self.shared.state.lock();
        // The availability message is always QoS 1; records use the configured QoS.
        let pos = st.handed.iter().position(|h| {
            h.pkid == Some(pkid)
                && if h.record.is_some() {
                    self.qos == level
                } else {
                    level == QoS::AtLeastOnce
                }
        });
        if let Some(i) = pos {
            self.complete(&mut st, i);
        }
    }

    fn on_connected(&mut self) {
        self.backoff.reset();
        {
            let mut st = self.shared.state.lock();
            // Clean session: the client dropped whatever was in flight. Send it again,
            // in order, before newer records.
            let handed = std::mem::take(&mut st.handed);
            let again: Vec<Pending> = handed.into_iter().filter_map(|h| h.record).collect();
            if !again.is_empty() {
                self.stats
                    .add_retries(u64::try_from(again.len()).unwrap_or(u64::MAX));
                st.buffer.requeue_front(again.into_iter(), &self.stats);
            }
            if st.ever_connected {
                self.stats.add_reconnect();
            }
            st.ever_connected = true;
            st.connected = true;
            match self
                .client
                .try_publish(&self.availability_topic, QoS::AtLeastOnce, true, ONLINE)
            {
                Ok(()) => st.handed.push_back(Handed {
                    record: None,
                    pkid: None,
                }),
                Err(e) => tracing::warn!(error = %e, "mqtt sink: availability not published"),
            }
            self.stats.set_buffered(st.held());
        }
        self.stats.set_connected(true);
        tracing::info!(endpoint = %self.endpoint, "mqtt sink connected");
        pump(
            &self.shared,
            &self.client,
            &self.stats,
            self.qos,
            self.retain,
            self.max_in_flight,
        );
    }

    fn on_connection_lost(&self, error: &str) {
        let was_connected = {
            let mut st = self.shared.state.lock();
            std::mem::replace(&mut st.connected, false)
        };
        self.stats.set_connected(false);
        self.shared.notify_changed();
        let error = sanitize_error_string(error);
        if was_connected {
            tracing::warn!(endpoint = %self.endpoint, %error, "mqtt sink lost its broker; buffering");
        } else {
            tracing::debug!(endpoint = %self.endpoint, %error, "mqtt sink: connect failed");
        }
    }
}

/// Hands buffered records to the client while connected and the in-flight window has
/// room. Runs only on the runtime thread, so it never interleaves with the client's
/// connection-loss handling.
fn pump(
    shared: &Shared,
    client: &AsyncClient,
    stats: &SinkStats,
    qos: QoS,
    retain: bool,
    max_in_flight: usize,
) {
    let mut st = shared.state.lock();
    if !st.connected {
        return;
    }
    while st.handed_records() < max_in_flight {
        let Some(p) = st.buffer.pop_front() else {
            break;
        };
        match client.try_publish(p.topic.as_str(), qos, retain, p.payload.clone()) {
            Ok(()) => st.handed.push_back(Handed {
                record: Some(p),
                pkid: None,
            }),
            Err(e) => {
                tracing::debug!(error = %e, "mqtt sink: client queue full");
                st.buffer.requeue_front(std::iter::once(p), stats);
                break;
            }
        }
    }
    stats.set_buffered(st.held());
}
