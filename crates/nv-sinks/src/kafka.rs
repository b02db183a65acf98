//! Kafka sink on rdkafka (bundled librdkafka), cargo feature `kafka`.
//!
//! Each record is produced to the expanded topic with the feed id as key (one feed's
//! records share a partition and stay in order), the record JSON as value and the
//! headers [`HEADER_SCHEMA_VERSION`] and [`HEADER_IDEMPOTENCY_KEY`]. With `acks = "all"`
//! the producer is idempotent, so librdkafka's own retries neither duplicate nor reorder.
//!
//! Records wait in the delivery core's buffer of `buffer_records` (dropping its oldest
//! beyond the bound, counted as `dropped_by_buffer`); `emit` never waits. A named pump
//! thread moves them into librdkafka's queue, whose bound (`buffer_records` messages) is
//! the core's in-flight window. librdkafka's delivery reports, handled on its polling
//! thread, settle each handed-over record exactly once as delivered or failed. At shutdown
//! the sink waits up to `flush_timeout_ms`, then purges what is left (counted as failed).
//! `connected` turns true with the first acknowledged record and false when librdkafka
//! reports all brokers down.

use std::fmt;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use nv_core::clock::SystemClock;
use nv_core::id::FeedId;
use nv_io::{HealthOutput, OutputSink, SharedOutput};
use parking_lot::Mutex;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};

use crate::buffer::Attributed;
use crate::config::KafkaSinkConfig;
use crate::delivery::{Delivery, Limits, Outcome, Ticket};
use crate::error::SinkError;
use crate::schema::SCHEMA_VERSION;
use crate::stats::SinkStats;
use crate::template::{expand, expand_health};

/// Header with the record's schema version (decimal).
pub const HEADER_SCHEMA_VERSION: &str = "nv-schema-version";
/// Header with the record's idempotency key.
pub const HEADER_IDEMPOTENCY_KEY: &str = "nv-idempotency-key";

/// How long the pump waits before trying a full librdkafka queue again (a delivery
/// report may arrive just before librdkafka releases the message's slot).
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

/// librdkafka callbacks: delivery reports, errors and logs.
struct Context {
    delivery: Delivery<Pending>,
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
            self.delivery.connection_lost();
            tracing::warn!(reason, "kafka sink lost all brokers; buffering");
        } else {
            tracing::warn!(error = %error, reason, "kafka sink: client error");
        }
    }
}

impl ProducerContext for Context {
    /// The record's ticket in the delivery core.
    type DeliveryOpaque = Box<Ticket>;

    fn delivery(&self, result: &DeliveryResult<'_>, ticket: Box<Ticket>) {
        match result {
            Ok(_) => {
                if !self.delivery.is_connected() {
                    self.delivery.connection_up();
                }
                self.delivery.settle(&[*ticket], Outcome::Delivered);
            }
            Err((e, _)) => {
                tracing::warn!(error = %e, "kafka sink: record not delivered");
                self.delivery.settle(&[*ticket], Outcome::Failed);
            }
        }
    }
}

type Producer = ThreadedProducer<Context>;

/// Produces records to Kafka. See the module docs.
pub struct KafkaSink {
    delivery: Delivery<Pending>,
    producer: Option<Arc<Producer>>,
    /// Held while taking and handing over, so records enter librdkafka in order.
    hand_over_lock: Arc<Mutex<()>>,
    topic: String,
    records: crate::records::Records,
    flush_timeout: Duration,
    pump: Option<JoinHandle<()>>,
}

impl fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSink")
            .field("topic", &self.topic)
            .field("delivery", &self.delivery)
            .finish_non_exhaustive()
    }
}

impl KafkaSink {
    pub fn start(config: KafkaSinkConfig, stats: SinkStats) -> Result<Self, SinkError> {
        config.validate()?;
        let buffer_records = usize::try_from(config.buffer_records).unwrap_or(usize::MAX);
        let delivery = Delivery::new(
            "kafka",
            Limits {
                buffer_records,
                // librdkafka queues what it was handed; its queue has the same bound.
                max_in_flight: buffer_records,
                needs_connection: false,
            },
            stats,
            SystemClock::shared(),
        );
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
                delivery: delivery.clone(),
            })
            .map_err(|e| SinkError::Connect {
                sink: "kafka",
                redacted_url: brokers.clone(),
                detail: e.to_string(),
            })?;
        let producer = Arc::new(producer);
        let hand_over_lock = Arc::new(Mutex::new(()));
        let pump = {
            let delivery = delivery.clone();
            let producer = Arc::clone(&producer);
            let lock = Arc::clone(&hand_over_lock);
            std::thread::Builder::new()
                .name("nv-sink-kafka".into())
                .spawn(move || pump(&delivery, &producer, &lock))
                .map_err(|source| SinkError::Spawn {
                    what: "nv-sink-kafka thread".into(),
                    source,
                })?
        };
        Ok(Self {
            delivery,
            producer: Some(producer),
            hand_over_lock,
            topic: config.topic,
            records: config.records,
            flush_timeout: Duration::from_millis(config.flush_timeout_ms),
            pump: Some(pump),
        })
    }

    pub fn stats(&self) -> &SinkStats {
        self.delivery.stats()
    }
}

/// Hands records to librdkafka, oldest first, as far as the core's window allows; never
/// blocks. True when librdkafka's queue was full and records went back to the buffer.
/// Runs under the sink's hand-over lock, so records enter librdkafka in order.
fn hand_over(delivery: &Delivery<Pending>, producer: &Producer) -> bool {
    let mut taken = delivery.take(usize::MAX).into_iter();
    let schema_version = SCHEMA_VERSION.to_string();
    while let Some((ticket, p)) = taken.next() {
        let headers = OwnedHeaders::new_with_capacity(2)
            .insert(Header {
                key: HEADER_SCHEMA_VERSION,
                value: Some(schema_version.as_str()),
            })
            .insert(Header {
                key: HEADER_IDEMPOTENCY_KEY,
                value: Some(p.idempotency_key.as_str()),
            });
        let record = BaseRecord::with_opaque_to(&p.topic, Box::new(ticket))
            .key(p.key.as_str())
            .payload(p.payload.as_slice())
            .headers(headers);
        match producer.send(record) {
            Ok(()) => {}
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                let unsent: Vec<Ticket> = std::iter::once(ticket)
                    .chain(taken.map(|(t, _)| t))
                    .collect();
                delivery.settle(&unsent, Outcome::Unsent);
                return true;
            }
            Err((e, _)) => {
                // Not retryable by waiting (unknown topic in strict mode, message too
                // large, fatal producer error): give this record up.
                tracing::warn!(error = %e, "kafka sink: record refused by the producer");
                delivery.settle(&[ticket], Outcome::Failed);
            }
        }
    }
    false
}

/// The pump thread: hands over what `emit` could not (the window was full).
fn pump(delivery: &Delivery<Pending>, producer: &Producer, lock: &Mutex<()>) {
    while delivery.wait_ready() {
        let queue_full = {
            let _order = lock.lock();
            hand_over(delivery, producer)
        };
        if queue_full {
            delivery.pause(PUMP_RETRY);
        }
    }
}

impl KafkaSink {
    /// Straight through if librdkafka has room; otherwise the pump retries.
    fn hand_over_now(&self) {
        if let Some(producer) = self.producer.as_deref() {
            let _order = self.hand_over_lock.lock();
            hand_over(&self.delivery, producer);
        }
    }
}

impl OutputSink for KafkaSink {
    fn emit(&mut self, output: SharedOutput) {
        let topic = &self.topic;
        let feed = output.feed_id;
        let buffered = self
            .delivery
            .emit_records(&output, self.records, |r| Pending {
                feed,
                topic: expand(topic, feed.as_u64(), r.kind.topic_event()),
                key: feed.as_u64().to_string(),
                idempotency_key: r.key,
                payload: r.json,
            });
        if buffered {
            self.hand_over_now();
        }
    }

    fn flush(&mut self) {
        self.delivery.flush(self.flush_timeout);
    }

    fn selects_health(&self) -> bool {
        self.records.health
    }

    /// On `topic` with `{event}` = `health` and `{feed}` = the feed id or `runtime`; the
    /// message key is the same (so a feed's health records share its partition).
    fn emit_health(&mut self, health: &HealthOutput) {
        if !self.records.health {
            return;
        }
        let r = crate::records::encode_health(health, self.delivery.stats(), false);
        let feed = health.feed_id.map(FeedId::as_u64);
        self.delivery.push(Pending {
            feed: crate::records::health_feed(health),
            topic: expand_health(&self.topic, feed),
            key: feed.map_or_else(|| crate::template::NO_FEED.to_owned(), |f| f.to_string()),
            idempotency_key: r.key,
            payload: r.json,
        });
        self.hand_over_now();
    }
}

impl Drop for KafkaSink {
    fn drop(&mut self) {
        let pump = self.pump.take();
        let producer = self.producer.take();
        self.delivery.shut_down(self.flush_timeout, || {
            crate::rt::join(pump);
            // Dropping the producer purges its queue and in-flight requests and serves
            // the resulting delivery reports (failed), then stops its polling thread.
            drop(producer);
        });
    }
}
