//! Kafka sink on rdkafka (bundled librdkafka), cargo feature `kafka`.
//!
//! Each record is produced to the expanded topic with the feed id as key (one feed's
//! records share a partition and stay in order), the record JSON as value and the
//! headers [`HEADER_SCHEMA_VERSION`] and [`HEADER_IDEMPOTENCY_KEY`]. With `acks = "all"`
//! the producer is idempotent, so librdkafka's own retries neither duplicate nor reorder.
//!
//! Records go straight into librdkafka's queue (bounded at `buffer_records` messages);
//! `emit` never waits for it. When that queue is full (brokers unreachable or slow),
//! records wait in the sink's own buffer of `buffer_records`, which drops its oldest beyond
//! the bound (counted as `dropped_by_buffer`), and a named pump thread moves them into
//! librdkafka as its queue drains. librdkafka's delivery reports, handled on its polling thread,
//! count each handed-over record exactly once as delivered or failed. At shutdown the
//! sink waits up to `flush_timeout_ms`, then purges what is left (counted as failed).
//! `connected` turns true with the first acknowledged record and false when librdkafka
//! reports all brokers down.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nv_core::id::FeedId;
use nv_io::{OutputSink, SharedOutput};
use parking_lot::{Condvar, Mutex};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};

use crate::buffer::{Attributed, DropOldest};
use crate::config::KafkaSinkConfig;
use crate::error::SinkError;
use crate::schema::{OutputRecord, SCHEMA_VERSION};
use crate::stats::{Fate, SinkStats};
use crate::template::{expand, EVENT_OUTPUTS};

/// Header with the record's schema version (decimal).
pub const HEADER_SCHEMA_VERSION: &str = "nv-schema-version";
/// Header with the record's idempotency key.
pub const HEADER_IDEMPOTENCY_KEY: &str = "nv-idempotency-key";

/// How long the pump waits for a delivery report before trying a full librdkafka queue
/// again (a report may arrive just before librdkafka releases the message's slot).
const PUMP_RETRY: Duration = Duration::from_millis(20);

#[derive(Debug)]
struct Pending {
    feed: FeedId,
    topic: String,
    key: String,
    idempotency_key: String,
    payload: Vec<u8>,
}

impl Attributed for Pending {
    fn feed(&self) -> FeedId {
        self.feed
    }
}

#[derive(Debug)]
struct State {
    /// Records waiting for room in librdkafka's queue.
    buffer: DropOldest<Pending>,
    /// Records handed to librdkafka without a delivery report yet, by feed.
    queued: HashMap<FeedId, u64>,
    /// Set at shutdown: the pump exits.
    stop_pump: bool,
    /// Set once shutdown counted everything outstanding: later reports are ignored.
    closed: bool,
    ever_connected: bool,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    stats: SinkStats,
    schema_version: String,
}

impl Shared {
    fn publish_buffered(&self, st: &State) {
        let queued: u64 = st.queued.values().sum();
        let queued = usize::try_from(queued).unwrap_or(usize::MAX);
        self.stats
            .set_buffered(st.buffer.len().saturating_add(queued));
    }
}

/// librdkafka callbacks: delivery reports, errors and logs.
struct Context {
    shared: Arc<Shared>,
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(facility = fac, "librdkafka: {log_message}");
            }
            RDKafkaLogLevel::Warning => tracing::warn!(facility = fac, "librdkafka: {log_message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(facility = fac, "librdkafka: {log_message}");
            }
            RDKafkaLogLevel::Debug => tracing::debug!(facility = fac, "librdkafka: {log_message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.shared.stats.set_connected(false);
            tracing::warn!(reason, "kafka sink lost all brokers; buffering");
        } else {
            tracing::warn!(error = %error, reason, "kafka sink: client error");
        }
    }
}

impl ProducerContext for Context {
    /// The record's feed.
    type DeliveryOpaque = Box<FeedId>;

    fn delivery(&self, result: &DeliveryResult<'_>, feed: Box<FeedId>) {
        let feed = *feed;
        let mut st = self.shared.state.lock();
        if st.closed {
            // Shutdown already counted everything outstanding as failed.
            return;
        }
        if let Some(n) = st.queued.get_mut(&feed) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                st.queued.remove(&feed);
            }
        }
        match result {
            Ok(_) => {
                if !self.shared.stats.is_connected() {
                    if st.ever_connected {
                        self.shared.stats.add_reconnect();
                    }
                    st.ever_connected = true;
                    self.shared.stats.set_connected(true);
                }
                self.shared.stats.count(Fate::Delivered, feed);
            }
            Err((e, _)) => {
                self.shared.stats.count(Fate::Failed, feed);
                tracing::warn!(error = %e, "kafka sink: record not delivered");
            }
        }
        self.shared.publish_buffered(&st);
        drop(st);
        self.shared.changed.notify_all();
    }
}

type Producer = ThreadedProducer<Context>;

/// Produces records to Kafka. See the module docs.
pub struct KafkaSink {
    shared: Arc<Shared>,
    producer: Option<Arc<Producer>>,
    topic: String,
    flush_timeout: Duration,
    pump: Option<JoinHandle<()>>,
}

impl fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSink")
            .field("topic", &self.topic)
            .field("stats", &self.shared.stats.snapshot())
            .finish_non_exhaustive()
    }
}

impl KafkaSink {
    pub fn start(config: KafkaSinkConfig, stats: SinkStats) -> Result<Self, SinkError> {
        config.validate()?;
        let buffer_records = usize::try_from(config.buffer_records).unwrap_or(usize::MAX);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                buffer: DropOldest::new(buffer_records),
                queued: HashMap::new(),
                stop_pump: false,
                closed: false,
                ever_connected: false,
            }),
            changed: Condvar::new(),
            stats,
            schema_version: SCHEMA_VERSION.to_string(),
        });
        let brokers = config.brokers.join(",");
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", &brokers)
            .set("client.id", &config.client_id)
            .set("acks", config.acks.as_librdkafka())
            .set(
                "enable.idempotence",
                if config.idempotent() { "true" } else { "false" },
            )
            .set("message.timeout.ms", config.message_timeout_ms.to_string())
            .set("queue.buffering.max.messages", buffer_records.to_string())
            .set("compression.codec", config.compression.as_librdkafka());
        let producer: Producer = client
            .create_with_context(Context {
                shared: Arc::clone(&shared),
            })
            .map_err(|e| SinkError::Connect {
                sink: "kafka",
                redacted_url: brokers.clone(),
                detail: e.to_string(),
            })?;
        let producer = Arc::new(producer);
        let pump = {
            let shared = Arc::clone(&shared);
            let producer = Arc::clone(&producer);
            std::thread::Builder::new()
                .name("nv-sink-kafka".into())
                .spawn(move || pump(&shared, &producer))
                .map_err(|source| SinkError::Spawn {
                    what: "nv-sink-kafka thread".into(),
                    source,
                })?
        };
        Ok(Self {
            shared,
            producer: Some(producer),
            topic: config.topic,
            flush_timeout: Duration::from_millis(config.flush_timeout_ms),
            pump: Some(pump),
        })
    }

    pub fn stats(&self) -> &SinkStats {
        &self.shared.stats
    }

    /// Waits until nothing is buffered or outstanding in librdkafka.
    fn drain(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.state.lock();
        crate::wait::wait_until(&self.shared.changed, &mut st, deadline, |s| {
            s.buffer.is_empty() && s.queued.is_empty()
        })
    }
}

/// Hands buffered records to librdkafka, oldest first, until the buffer is empty or
/// librdkafka's queue is full. Never blocks.
fn hand_over(shared: &Shared, producer: &Producer, st: &mut State) {
    while let Some(p) = st.buffer.front() {
        let headers = OwnedHeaders::new_with_capacity(2)
            .insert(Header {
                key: HEADER_SCHEMA_VERSION,
                value: Some(shared.schema_version.as_str()),
            })
            .insert(Header {
                key: HEADER_IDEMPOTENCY_KEY,
                value: Some(p.idempotency_key.as_str()),
            });
        let feed = p.feed;
        let record = BaseRecord::with_opaque_to(&p.topic, Box::new(feed))
            .key(p.key.as_str())
            .payload(p.payload.as_slice())
            .headers(headers);
        match producer.send(record) {
            Ok(()) => {
                *st.queued.entry(feed).or_default() += 1;
                st.buffer.pop_front();
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => break,
            Err((e, _)) => {
                // Not retryable by waiting (unknown topic in strict mode, message too
                // large, fatal producer error): give this record up.
                tracing::warn!(error = %e, "kafka sink: record refused by the producer");
                shared.stats.count(Fate::Failed, feed);
                st.buffer.pop_front();
            }
        }
    }
    shared.publish_buffered(st);
}

fn pump(shared: &Shared, producer: &Producer) {
    let mut st = shared.state.lock();
    while !st.stop_pump {
        if st.buffer.is_empty() {
            shared.changed.wait(&mut st);
        } else {
            hand_over(shared, producer, &mut st);
            if !st.buffer.is_empty() {
                shared.changed.wait_for(&mut st, PUMP_RETRY);
            }
        }
    }
}

impl OutputSink for KafkaSink {
    fn emit(&mut self, output: SharedOutput) {
        let Some((record, payload)) =
            OutputRecord::encode_for_sink(&output, &self.shared.stats, "kafka", false)
        else {
            return;
        };
        let pending = Pending {
            feed: output.feed_id,
            topic: expand(&self.topic, record.feed_id, EVENT_OUTPUTS),
            key: record.feed_id.to_string(),
            idempotency_key: record.idempotency_key,
            payload,
        };
        let Some(producer) = self.producer.as_deref() else {
            self.shared.stats.count(Fate::Failed, output.feed_id);
            return;
        };
        let mut st = self.shared.state.lock();
        // Older records first; then this one, straight through if there is room.
        hand_over(&self.shared, producer, &mut st);
        st.buffer.push_back(pending, &self.shared.stats);
        hand_over(&self.shared, producer, &mut st);
        let wake_pump = !st.buffer.is_empty();
        drop(st);
        if wake_pump {
            self.shared.changed.notify_all();
        }
    }

    fn flush(&mut self) {
        if !self.drain(self.flush_timeout) {
            tracing::warn!(
                buffered = self.shared.stats.snapshot().buffered,
                "kafka sink: flush timed out with records still outstanding"
            );
        }
    }
}

impl Drop for KafkaSink {
    fn drop(&mut self) {
        self.drain(self.flush_timeout);
        self.shared.state.lock().stop_pump = true;
        self.shared.changed.notify_all();
        if let Some(t) = self.pump.take() {
            if t.join().is_err() {
                tracing::warn!("kafka sink pump thread panicked");
            }
        }
        {
            // Records that never reached librdkafka.
            let mut st = self.shared.state.lock();
            st.buffer.fail_all(&self.shared.stats);
            self.shared.publish_buffered(&st);
        }
        // Dropping the producer purges its queue and in-flight requests and serves the
        // resulting delivery reports (failed), then stops its polling thread.
        drop(self.producer.take());
        let mut st = self.shared.state.lock();
        st.closed = true;
        for (feed, n) in std::mem::take(&mut st.queued) {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            self.shared
                .stats
                .count_each(Fate::Failed, std::iter::repeat_n(feed, n));
        }
        self.shared.stats.set_buffered(0);
        self.shared.stats.set_connected(false);
    }
}
