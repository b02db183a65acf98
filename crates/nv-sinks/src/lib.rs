//! Output sinks for NextVision and the stable, versioned JSON output schema.
//!
//! Every sink implements [`nv_io::OutputSink`] and is called on a feed's dedicated sink
//! thread; a sink several feeds name is one [`SharedSink`] instance that every one of
//! them writes into, with each feed's share of its counters kept apart. Network sinks
//! never block that thread on a down broker: they keep a bounded in-memory buffer that
//! drops its *oldest* records beyond the bound, and count every drop in their
//! [`SinkStats`]. That buffer, the in-flight window, retries, the drain on flush and drop
//! and the accounting are one core (`delivery`) that every network sink runs on; a
//! transport only connects, sends and reports acknowledgements. Records are [`OutputRecord`]s (schema version
//! [`SCHEMA_VERSION`], documented in `SCHEMA.md` and `schema/output-v1.schema.json`),
//! each with an idempotency key `"{run}:{feed}:{epoch}:{session}:{seq}"` that consumers use to
//! drop the duplicates that at-least-once transports may deliver.
//!
//! Configuration ([`SinkConfig`] and the per-sink `*Config` structs) is plain serde data
//! (`deny_unknown_fields`); `validate` lists every problem at once and `build` makes the
//! runtime sink object; `factory` makes a `SinkFactory` that rebuilds the sink with the
//! same [`SinkStats`].
//!
//! ```toml
//! [[sinks]]
//! type = "file"                      # JSONL; rotated to outputs.000001.jsonl, ...
//! path = "/var/lib/nextvision/outputs.jsonl"
//! max_bytes = 104857600
//! max_age_secs = 3600
//! max_files = 24
//! fsync = { every_records = 100 }    # or "never" / "on_rotation" (default)
//!
//! [[sinks]]
//! type = "webhook"
//! url = "https://hooks.example.invalid/nv"
//! headers = { Authorization = "Bearer ${NV_HOOK_TOKEN}" }
//! batch_max_records = 50
//! batch_max_delay_ms = 100
//! buffer_records = 1000
//!
//! [[sinks]]
//! type = "mqtt"
//! host = "127.0.0.1"
//! port = 1883
//! client_id = "nextvision-site-a"    # availability: nextvision/nextvision-site-a/availability
//! topic = "nextvision/{feed}/{event}"
//! qos = 1
//!
//! [[sinks]]
//! type = "nats"
//! url = "nats://127.0.0.1:4222"
//! subject = "nextvision.{feed}.{event}"
//! jetstream = true                   # needs a stream bound to the subject
//!
//! [[sinks]]                          # only with the cargo feature `kafka`
//! type = "kafka"
//! brokers = ["127.0.0.1:9092"]
//! topic = "nextvision.{feed}"        # key = feed id; idempotent producer with acks = "all"
//! ```
//!
//! Not provided yet: TLS/SASL for Kafka and TLS for MQTT (`nats` accepts `tls://` URLs
//! through async-nats, untested here).

mod backoff;
mod buffer;
pub mod config;
mod delivery;
mod error;
pub mod event;
pub mod file;
mod frigate;
pub mod health;
pub mod http;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod mqtt;
pub mod nats;
pub mod records;
mod rt;
pub mod schema;
mod secret;
pub mod shared;
mod stats;
pub mod stdout;
mod template;

pub use config::{
    FileSinkConfig, FsyncPolicy, MqttQos, MqttSinkConfig, NatsSinkConfig, SinkConfig,
    StdoutSinkConfig, WebhookSinkConfig,
};
#[cfg(feature = "kafka")]
pub use config::{KafkaAcks, KafkaCompression, KafkaSinkConfig};
pub use error::SinkError;
pub use event::{EventRecord, EVENT_SCHEMA_V1};
pub use file::FileSink;
pub use health::{health_record, HealthEncoder, HEALTH_SCHEMA_V1, HEALTH_SCHEMA_VERSION};
pub use http::WebhookSink;
#[cfg(feature = "kafka")]
pub use kafka::KafkaSink;
pub use mqtt::MqttSink;
pub use nats::{NatsSink, PublishGate};
pub use records::Records;
pub use schema::{OutputRecord, SCHEMA_VERSION};
pub use secret::Secret;
pub use shared::{SharedSink, SharedSinkHandle};
pub use stats::{FeedSinkSnapshot, SinkStats, SinkStatsSnapshot};
pub use stdout::StdoutSink;

/// The JSON Schema (draft 2020-12) of [`OutputRecord`] version 1, as shipped in
/// `schema/output-v1.schema.json`.
pub const OUTPUT_SCHEMA_V1: &str = include_str!("../schema/output-v1.schema.json");
