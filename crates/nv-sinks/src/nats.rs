//! NATS sink on async-nats and the buffered-delivery core.
//!
//! Records wait in the core's bounded buffer and are published only while the client
//! reports a live connection, in batches of up to `max_in_flight`. With JetStream, a
//! record counts as delivered when the server acknowledges it; the unacknowledged rest of
//! a batch stays in flight and is published again after a backoff (once connected), with
//! `Nats-Msg-Id` = idempotency key so the server discards copies it already stored. Core
//! NATS has no acknowledgements: a batch counts as delivered when the client flushed it
//! to the server, and as failed (never re-sent, to avoid duplicates) when that flush does
//! not complete within `ack_timeout_ms`.
//!
//! Threads: `nv-sink-nats-io` runs the client (connection, reconnects, events);
//! `nv-sink-nats` takes batches and waits for their outcome.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::{Client, ConnectOptions, Event, HeaderMap};
use nv_core::clock::SystemClock;
use nv_core::id::FeedId;
use nv_core::security::sanitize_error_string;
use nv_io::{HealthOutput, OutputSink, SharedOutput};

use crate::backoff::Backoff;
use crate::buffer::Attributed;
use crate::config::NatsSinkConfig;
use crate::delivery::batch::{self, Attempt, BatchPolicy, BatchTransport};
use crate::delivery::{Delivery, Limits};
use crate::error::SinkError;
use crate::records::RecordKind;
use crate::rt::IoRuntime;
use crate::stats::SinkStats;
use crate::template::{expand, expand_health};

#[derive(Debug)]
struct Pending {
    feed: FeedId,
    /// The feed's name and the record's fencing token, for the publish gate.
    name: Option<Arc<str>>,
    fence: Option<u64>,
    subject: String,
    key: String,
    payload: Vec<u8>,
}

/// Asked before each record is published, with the record's feed name and fencing token:
/// false withholds it (counted as failed). A cluster node passes one that checks the
/// feed's lease is still held, so records buffered while the lease ran out never go out.
pub type PublishGate = Arc<dyn Fn(Option<&str>, Option<u64>) -> bool + Send + Sync>;

impl Attributed for Pending {
    fn feed(&self) -> FeedId {
        self.feed
    }
}

/// Publishes records to NATS (core or JetStream). See the module docs.
pub struct NatsSink {
    delivery: Delivery<Pending>,
    subject: String,
    events_subject: Option<String>,
    records: crate::records::Records,
    flush_timeout: Duration,
    ack_timeout: Duration,
    client: Client,
    driver: Option<JoinHandle<()>>,
    /// Dropped last: the client's connection runs on it.
    io: Option<IoRuntime>,
}

impl std::fmt::Debug for NatsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSink")
            .field("subject", &self.subject)
            .field("delivery", &self.delivery)
            .finish_non_exhaustive()
    }
}

/// The client's reconnect delays and the re-send delays of unacknowledged records.
fn reconnect_backoff(config: &NatsSinkConfig) -> Backoff {
    Backoff::new(
        Duration::from_millis(config.reconnect_initial_ms),
        Duration::from_millis(config.reconnect_max_ms),
    )
}

fn options(config: &NatsSinkConfig, delivery: &Delivery<Pending>, url: &str) -> ConnectOptions {
    let base = match &config.token {
        Some(t) => ConnectOptions::with_token(t.expose().to_owned()),
        None => ConnectOptions::new(),
    };
    let backoff = reconnect_backoff(config);
    let delivery = delivery.clone();
    let url = url.to_owned();
    base.retry_on_initial_connect()
        .max_reconnects(None)
        .reconnect_delay_callback(move |attempts| {
            backoff.delay(u32::try_from(attempts.saturating_sub(1)).unwrap_or(u32::MAX))
        })
        .event_callback(move |event| {
            let delivery = delivery.clone();
            let url = url.clone();
            async move { on_event(&delivery, &url, event) }
        })
}

impl NatsSink {
    pub fn start(config: NatsSinkConfig, stats: SinkStats) -> Result<Self, SinkError> {
        Self::start_gated(config, stats, None)
    }

    /// [`Self::start`] with a [`PublishGate`].
    pub fn start_gated(
        config: NatsSinkConfig,
        stats: SinkStats,
        gate: Option<PublishGate>,
    ) -> Result<Self, SinkError> {
        config.validate()?;
        let max_in_flight = usize::from(config.max_in_flight);
        let delivery = Delivery::new(
            "nats",
            Limits {
                buffer_records: usize::try_from(config.buffer_records).unwrap_or(1),
                max_in_flight,
                needs_connection: true,
            },
            stats,
            SystemClock::shared(),
        );
        let redacted_url = config.redacted_url();
        let io = IoRuntime::start("nv-sink-nats-io")?;
        // Returns at once: the client connects (and reconnects) in the background.
        let client = io
            .block_on(async {
                let addrs = config.server_addrs().map_err(|()| {
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, "bad server address")
                })?;
                let mut opts = options(&config, &delivery, &redacted_url);
                if let Some(path) = &config.creds_file {
                    opts = opts.credentials_file(path).await.map_err(|e| {
                        std::io::Error::other(format!("credentials file {}: {e}", path.display()))
                    })?;
                }
                opts.connect(addrs).await.map_err(std::io::Error::other)
            })
            .map_err(|e| SinkError::Connect {
                sink: "nats",
                redacted_url: redacted_url.clone(),
                detail: sanitize_error_string(&e.to_string()),
            })?;
        // The context spawns on the runtime it is made in.
        let js = io.block_on(async {
            let mut js = jetstream::new(client.clone());
            js.set_timeout(config.ack_timeout());
            js
        });
        let policy = BatchPolicy {
            max_records: max_in_flight,
            max_delay: Duration::ZERO,
            max_retries: None,
            backoff: reconnect_backoff(&config),
        };
        let transport = Nats {
            io: io.handle(),
            client: client.clone(),
            js: config.jetstream.then_some(js),
            ack_timeout: config.ack_timeout(),
            redacted_url,
            gate,
        };
        let driver = batch::spawn("nv-sink-nats", delivery.clone(), policy, transport)?;
        Ok(Self {
            delivery,
            subject: config.subject.clone(),
            events_subject: config.events_subject.clone(),
            records: config.records,
            flush_timeout: Duration::from_millis(config.flush_timeout_ms),
            ack_timeout: config.ack_timeout(),
            client,
            driver: Some(driver),
            io: Some(io),
        })
    }

    pub fn stats(&self) -> &SinkStats {
        self.delivery.stats()
    }
}

impl OutputSink for NatsSink {
    fn emit(&mut self, output: SharedOutput) {
        let feed = output.feed_id;
        // `{name}` first: a feed name never contains `{`.
        let named = |template: &str| match output.feed_name.as_deref() {
            Some(name) => template.replace("{name}", name),
            None => template.replace("{name}", &feed.as_u64().to_string()),
        };
        let frames = named(&self.subject);
        let events = named(self.events_subject.as_deref().unwrap_or(&self.subject));
        let (name, fence) = (output.feed_name.clone(), output.fence);
        self.delivery
            .emit_records(&output, self.records, |r| Pending {
                feed,
                name: name.clone(),
                fence,
                subject: match r.kind {
                    RecordKind::Event => expand(&events, feed.as_u64(), r.kind.topic_event()),
                    RecordKind::Frame | RecordKind::Health => {
                        expand(&frames, feed.as_u64(), r.kind.topic_event())
                    }
                },
                key: r.key,
                payload: r.json,
            });
    }

    fn flush(&mut self) {
        self.delivery.flush(self.flush_timeout);
    }

    fn selects_health(&self) -> bool {
        self.records.health
    }

    /// On `subject` with `{event}` = `health` and `{feed}` = the feed id or `runtime`;
    /// `Nats-Msg-Id` (JetStream) = the record's key.
    fn emit_health(&mut self, health: &HealthOutput) {
        if !self.records.health {
            return;
        }
        let r = crate::records::encode_health(health, self.delivery.stats(), false);
        self.delivery.push(Pending {
            feed: crate::records::health_feed(health),
            name: None,
            fence: None,
            // Health records carry no feed name: `{name}` is the feed id, or `runtime`.
            subject: expand_health(
                &self.subject.replace(
                    "{name}",
                    &health
                        .feed_id
                        .map_or_else(|| "runtime".to_owned(), |f| f.as_u64().to_string()),
                ),
                health.feed_id.map(FeedId::as_u64),
            ),
            key: r.key,
            payload: r.json,
        });
    }
}

impl Drop for NatsSink {
    fn drop(&mut self) {
        let driver = self.driver.take();
        let io = self.io.take();
        let (client, ack_timeout) = (&self.client, self.ack_timeout);
        self.delivery.shut_down(self.flush_timeout, || {
            crate::rt::join(driver);
            if let Some(io) = io {
                let flushed =
                    io.block_on(async { tokio::time::timeout(ack_timeout, client.flush()).await });
                if flushed.is_err() {
                    tracing::debug!("nats sink: final flush timed out");
                }
            }
        });
    }
}

/// Publishes batches; runs on the `nv-sink-nats` thread.
struct Nats {
    io: tokio::runtime::Handle,
    client: Client,
    /// Set for JetStream.
    js: Option<jetstream::Context>,
    ack_timeout: Duration,
    redacted_url: String,
    gate: Option<PublishGate>,
}

impl BatchTransport for Nats {
    type Record = Pending;

    fn admit(&self, record: &Pending) -> bool {
        self.gate
            .as_ref()
            .is_none_or(|gate| gate(record.name.as_deref(), record.fence))
    }

    fn send(&mut self, batch: &[Arc<Pending>]) -> Attempt {
        let io = self.io.clone();
        match &self.js {
            Some(js) => io.block_on(self.publish_jetstream(js, batch)),
            None => io.block_on(self.publish_core(batch)),
        }
    }
}

impl Nats {
    async fn publish_core(&self, batch: &[Arc<Pending>]) -> Attempt {
        for p in batch {
            if let Err(e) = self
                .client
                .publish(p.subject.clone(), p.payload.clone().into())
                .await
            {
                tracing::warn!(url = %self.redacted_url, error = %sanitize_error_string(&e.to_string()), "nats sink: publish failed");
            }
        }
        let why = match tokio::time::timeout(self.ack_timeout, self.client.flush()).await {
            Ok(Ok(())) => return Attempt::Delivered,
            Ok(Err(e)) => format!("flush failed: {}", sanitize_error_string(&e.to_string())),
            Err(_) => "flush timed out".to_owned(),
        };
        Attempt::Reject {
            delivered: 0,
            why: format!("{}: {why}; records unconfirmed", self.redacted_url),
        }
    }

    /// Publishes and awaits acknowledgements in order; the records from the first
    /// unacknowledged one on are sent again.
    async fn publish_jetstream(&self, js: &jetstream::Context, batch: &[Arc<Pending>]) -> Attempt {
        let mut acks = Vec::with_capacity(batch.len());
        let mut why = String::new();
        for p in batch {
            let mut headers = HeaderMap::new();
            headers.insert("Nats-Msg-Id", p.key.as_str());
            match js
                .publish_with_headers(p.subject.clone(), headers, p.payload.clone().into())
                .await
            {
                Ok(ack) => acks.push(ack),
                Err(e) => {
                    why = format!("publish failed: {}", sanitize_error_string(&e.to_string()));
                    break;
                }
            }
        }
        let mut done = 0usize;
        for ack in acks {
            match ack.await {
                Ok(_) => done += 1,
                Err(e) => {
                    why = format!(
                        "not acknowledged: {}",
                        sanitize_error_string(&e.to_string())
                    );
                    break;
                }
            }
        }
        if done == batch.len() {
            Attempt::Delivered
        } else {
            Attempt::Retry {
                delivered: done,
                why: format!("{}: jetstream {why}", self.redacted_url),
            }
        }
    }
}

fn on_event(delivery: &Delivery<Pending>, url: &str, event: Event) {
    match event {
        Event::Connected => {
            delivery.connection_up();
            tracing::info!(url, "nats sink connected");
        }
        Event::Disconnected => {
            delivery.connection_lost();
            tracing::warn!(url, "nats sink lost its server; buffering");
        }
        other => {
            tracing::debug!(url, event = %sanitize_error_string(&other.to_string()), "nats sink event");
        }
    }
}
