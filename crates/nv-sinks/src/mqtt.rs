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
use std::time::Duration;

use nv_core::clock::{SharedClock, SystemClock};
use nv_core::id::FeedId;
use nv_core::security::sanitize_error_string;
use nv_io::sync::OneShot;
use nv_io::{HealthOutput, OutputSink, SharedOutput};
use parking_lot::Mutex;
use rumqttc::{AsyncClient, Event, EventLoop, Incoming, LastWill, MqttOptions, Outgoing, QoS};
use tokio::sync::Notify;

use crate::backoff::Backoff;
use crate::buffer::Attributed;
use crate::config::{MqttQos, MqttSinkConfig};
use crate::delivery::{Delivery, Limits, Outcome, Ticket};
use crate::error::SinkError;
use crate::records::RecordKind;
use crate::stats::Fate;
use crate::stats::SinkStats;
use crate::template::{expand, expand_health, EVENT_HEALTH};

const ONLINE: &str = "online";
const OFFLINE: &str = "offline";

#[derive(Debug)]
struct Pending {
    feed: FeedId,
    topic: String,
    payload: Vec<u8>,
    /// Retained regardless of the sink's `retain` (Frigate-layout occupancy and state).
    retain: bool,
}

impl Attributed for Pending {
    fn feed(&self) -> FeedId {
        self.feed
    }
}

/// A publish handed to the client: a record's ticket, or the availability message
/// (`None`), with the packet id the client gave it.
#[derive(Debug)]
struct Handed {
    ticket: Option<Ticket>,
    pkid: Option<u16>,
}

/// What the runtime thread shares with the sink.
#[derive(Debug)]
struct Link {
    delivery: Delivery<Pending>,
    client: AsyncClient,
    /// Publishes handed to the client, in order (touched on the runtime thread only).
    handed: Mutex<VecDeque<Handed>>,
    qos: QoS,
    retain: bool,
    /// Wakes the pump task (records arrived or an in-flight slot freed).
    wake: Notify,
    /// Ends the event loop.
    shutdown: Notify,
    /// Filled when the event loop finished (clean disconnect or shutdown).
    exited: OneShot<()>,
}

static CLIENT_IDS: AtomicU64 = AtomicU64::new(0);

/// Publishes records to an MQTT broker. See the module docs for the delivery contract.
#[derive(Debug)]
pub struct MqttSink {
    link: Arc<Link>,
    clock: SharedClock,
    availability_topic: String,
    flush_timeout: Duration,
    topic: String,
    records: crate::records::Records,
    /// The Frigate-style layout's prefix and state, when configured.
    layout: Option<(String, crate::frigate::Layout)>,
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
        let availability_topic = match &config.prefix {
            Some(prefix) => format!("{prefix}/available"),
            None => config.availability_topic.replace("{client_id}", &client_id),
        };
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
        let clock = SystemClock::shared();
        let delivery = Delivery::new(
            "mqtt",
            Limits {
                buffer_records: usize::try_from(config.buffer_records).unwrap_or(1),
                max_in_flight: usize::from(config.max_in_flight),
                needs_connection: true,
            },
            stats,
            clock.clone(),
        );
        let link = Arc::new(Link {
            delivery,
            client,
            handed: Mutex::new(VecDeque::new()),
            qos: qos(config.qos),
            retain: config.retain,
            wake: Notify::new(),
            shutdown: Notify::new(),
            exited: OneShot::new(clock.clone()),
        });
        let driver = Driver {
            link: Arc::clone(&link),
            availability_topic: availability_topic.clone(),
            endpoint: format!("{}:{}", config.host, config.port),
            backoff: Backoff::new(
                Duration::from_millis(config.reconnect_initial_ms),
                Duration::from_millis(config.reconnect_max_ms),
            ),
        };
        let thread = crate::rt::spawn("nv-sink-mqtt", move || driver.run(eventloop))?;
        Ok(Self {
            link,
            clock,
            availability_topic,
            flush_timeout: Duration::from_millis(config.flush_timeout_ms),
            topic: config.topic,
            records: config.records,
            layout: config
                .prefix
                .map(|p| (p, crate::frigate::Layout::default())),
            thread: Some(thread),
        })
    }

    pub fn stats(&self) -> &SinkStats {
        self.link.delivery.stats()
    }

    /// The retained availability topic (`online` / `offline`).
    pub fn availability_topic(&self) -> &str {
        &self.availability_topic
    }
}

impl OutputSink for MqttSink {
    fn emit(&mut self, output: SharedOutput) {
        let topic = &self.topic;
        let feed = output.feed_id;
        let mut buffered = match &self.layout {
            None => self
                .link
                .delivery
                .emit_records(&output, self.records, |r| Pending {
                    feed,
                    topic: expand(topic, feed.as_u64(), r.kind.topic_event()),
                    payload: r.json,
                    retain: false,
                }),
            Some((prefix, _)) => {
                let feed_level = crate::frigate::feed_level(&output);
                self.link
                    .delivery
                    .emit_records(&output, self.records, |r| Pending {
                        feed,
                        topic: match r.kind {
                            RecordKind::Frame => format!("{prefix}/{feed_level}/frames"),
                            RecordKind::Event => format!("{prefix}/events"),
                            RecordKind::Health => format!("{prefix}/health"),
                        },
                        payload: r.json,
                        retain: false,
                    })
            }
        };
        if let Some((prefix, layout)) = &mut self.layout {
            for d in layout.derive(prefix, &output) {
                self.link.delivery.stats().count(Fate::Received, feed);
                self.link.delivery.push(Pending {
                    feed,
                    topic: d.topic,
                    payload: d.payload,
                    retain: d.retain,
                });
                buffered = true;
            }
        }
        if buffered {
            self.link.wake.notify_one();
        }
    }

    fn flush(&mut self) {
        self.link.delivery.flush(self.flush_timeout);
    }

    fn selects_health(&self) -> bool {
        self.records.health
    }

    /// `<prefix>/health` in the Frigate-style layout (every feed's and the runtime's
    /// events on one topic; the record names its feed), else `topic` with `{event}` =
    /// `health` and `{feed}` = the feed id or `runtime`.
    fn emit_health(&mut self, health: &HealthOutput) {
        if !self.records.health {
            return;
        }
        let r = crate::records::encode_health(health, self.link.delivery.stats(), false);
        let topic = match &self.layout {
            Some((prefix, _)) => format!("{prefix}/{EVENT_HEALTH}"),
            None => expand_health(&self.topic, health.feed_id.map(FeedId::as_u64)),
        };
        self.link.delivery.push(Pending {
            feed: crate::records::health_feed(health),
            topic,
            payload: r.json,
            retain: false,
        });
        self.link.wake.notify_one();
    }
}

impl Drop for MqttSink {
    fn drop(&mut self) {
        let link = &self.link;
        let thread = self.thread.take();
        link.delivery.shut_down(self.flush_timeout, || {
            if link.delivery.is_connected() {
                // Clean shutdown: retained `offline` (the will only fires on a lost
                // connection), then DISCONNECT; the event loop ends when it is written.
                let sent = link
                    .client
                    .try_publish(&self.availability_topic, QoS::AtLeastOnce, true, OFFLINE)
                    .and_then(|()| link.client.try_disconnect());
                if sent.is_ok() {
                    link.exited
                        .take_until(self.clock.now() + Duration::from_secs(2));
                }
            }
            link.shutdown.notify_one();
            crate::rt::join(thread);
        });
    }
}

impl Link {
    /// Hands buffered records to the client while connected and the in-flight window has
    /// room. Runs only on the runtime thread, so it never interleaves with the client's
    /// connection-loss handling.
    fn pump(&self) {
        let mut taken = self.delivery.take(usize::MAX).into_iter();
        let mut handed = self.handed.lock();
        while let Some((ticket, p)) = taken.next() {
            if let Err(e) = self.client.try_publish(
                p.topic.as_str(),
                self.qos,
                self.retain || p.retain,
                p.payload.clone(),
            ) {
                tracing::debug!(error = %e, "mqtt sink: client queue full");
                let unsent: Vec<Ticket> = std::iter::once(ticket)
                    .chain(taken.map(|(t, _)| t))
                    .collect();
                self.delivery.settle(&unsent, Outcome::Unsent);
                break;
            }
            handed.push_back(Handed {
                ticket: Some(ticket),
                pkid: None,
            });
        }
    }

    /// A publish finished: a record is delivered, its in-flight slot freed.
    fn complete(&self, handed: &mut VecDeque<Handed>, index: usize) {
        if let Some(Handed {
            ticket: Some(ticket),
            ..
        }) = handed.remove(index)
        {
            self.delivery.settle(&[ticket], Outcome::Delivered);
            self.wake.notify_one();
        }
    }

    fn acked(&self, pkid: u16, level: QoS) {
        let mut handed = self.handed.lock();
        // The availability message is always QoS 1; records use the configured QoS.
        let pos = handed.iter().position(|h| {
            h.pkid == Some(pkid)
                && if h.ticket.is_some() {
                    self.qos == level
                } else {
                    level == QoS::AtLeastOnce
                }
        });
        if let Some(i) = pos {
            self.complete(&mut handed, i);
        }
    }
}

/// Runs on the runtime thread: the event loop and the pump.
struct Driver {
    link: Arc<Link>,
    availability_topic: String,
    endpoint: String,
    backoff: Backoff,
}

impl Driver {
    async fn run(mut self, mut eventloop: EventLoop) {
        let pump = {
            let link = Arc::clone(&self.link);
            tokio::spawn(async move {
                loop {
                    link.wake.notified().await;
                    link.pump();
                }
            })
        };
        loop {
            tokio::select! {
                biased;
                () = self.link.shutdown.notified() => break,
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
                            () = self.link.shutdown.notified() => break,
                            () = tokio::time::sleep(delay) => {}
                        }
                    }
                },
            }
        }
        pump.abort();
        self.link.delivery.connection_lost();
        self.link.exited.put(());
    }

    /// Handles one event; true when the loop should end (clean disconnect written).
    fn on_event(&mut self, ev: Event) -> bool {
        let link = &self.link;
        match ev {
            Event::Incoming(Incoming::ConnAck(_)) => self.on_connected(),
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                let mut handed = link.handed.lock();
                if let Some(i) = handed.iter().position(|h| h.pkid.is_none()) {
                    if link.qos == QoS::AtMostOnce && pkid == 0 {
                        link.complete(&mut handed, i);
                    } else if let Some(h) = handed.get_mut(i) {
                        h.pkid = Some(pkid);
                    }
                }
            }
            Event::Incoming(Incoming::PubAck(ack)) => link.acked(ack.pkid, QoS::AtLeastOnce),
            Event::Incoming(Incoming::PubComp(comp)) => link.acked(comp.pkid, QoS::ExactlyOnce),
            Event::Outgoing(Outgoing::Disconnect) => return true,
            _ => {}
        }
        false
    }

    fn on_connected(&mut self) {
        self.backoff.reset();
        let link = &self.link;
        {
            let mut handed = link.handed.lock();
            // Clean session: the client dropped whatever was in flight. Send it again,
            // in order, before newer records.
            handed.clear();
            link.delivery.requeue_in_flight();
            link.delivery.connection_up();
            match link
                .client
                .try_publish(&self.availability_topic, QoS::AtLeastOnce, true, ONLINE)
            {
                Ok(()) => handed.push_back(Handed {
                    ticket: None,
                    pkid: None,
                }),
                Err(e) => tracing::warn!(error = %e, "mqtt sink: availability not published"),
            }
        }
        tracing::info!(endpoint = %self.endpoint, "mqtt sink connected");
        link.pump();
    }

    fn on_connection_lost(&self, error: &str) {
        let was_connected = self.link.delivery.connection_lost();
        let error = sanitize_error_string(error);
        if was_connected {
            tracing::warn!(endpoint = %self.endpoint, %error, "mqtt sink lost its broker; buffering");
        } else {
            tracing::debug!(endpoint = %self.endpoint, %error, "mqtt sink: connect failed");
        }
    }
}
