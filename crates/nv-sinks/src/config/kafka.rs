//! Kafka sink configuration (cargo feature `kafka`).

use nv_core::error::{ConfigError, ConfigProblem};
use nv_io::OutputSink;
use serde::Deserialize;

use super::webhook::{default_buffer_records, default_flush_timeout_ms};
use super::Problems;
use crate::error::SinkError;
use crate::kafka::KafkaSink;
use crate::stats::SinkStats;

/// Broker acknowledgements a record waits for; TOML `acks = "all" | "1" | "0"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum KafkaAcks {
    /// Every in-sync replica (`"all"`); the only setting that allows idempotent
    /// production.
    #[default]
    #[serde(rename = "all")]
    All,
    /// The partition leader only (`"1"`).
    #[serde(rename = "1")]
    Leader,
    /// No acknowledgement (`"0"`): a record counts as delivered once written to the
    /// socket.
    #[serde(rename = "0")]
    None,
}

impl KafkaAcks {
    /// The librdkafka `acks` value.
    pub(crate) fn as_librdkafka(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Leader => "1",
            Self::None => "0",
        }
    }
}

/// Compression of produced batches; `zstd` is not built in (it would need the system
/// library).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KafkaCompression {
    #[default]
    None,
    Gzip,
    Snappy,
    Lz4,
}

impl KafkaCompression {
    /// The librdkafka `compression.codec` value.
    pub(crate) fn as_librdkafka(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Snappy => "snappy",
            Self::Lz4 => "lz4",
        }
    }
}

/// `type = "kafka"` (cargo feature `kafka`): produces each record to `topic`
/// (placeholders `{feed}`, `{event}`) with the feed id as key, so one feed's records stay
/// in order in one partition; the value is the record JSON, and the headers
/// `nv-schema-version` and `nv-idempotency-key` carry the schema version and the
/// idempotency key.
///
/// With `acks = "all"` (the default) the producer is idempotent: librdkafka's retries
/// never duplicate or reorder records within a partition. `acks = "1"` or `"0"` turn
/// idempotence off (Kafka requires `all` for it).
///
/// A record counts as delivered when librdkafka reports it acknowledged, and as failed
/// when librdkafka gives up on it (after `message_timeout_ms`, or a permanent error).
/// While the brokers are unreachable, up to `buffer_records` records wait inside
/// librdkafka (retried by it), and once that queue is full up to `buffer_records` more
/// wait in the sink's own buffer, which drops its oldest beyond the bound (counted).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    /// Bootstrap brokers, `host:port` each.
    pub brokers: Vec<String>,
    #[serde(default = "default_topic")]
    pub topic: String,
    #[serde(default = "default_client_id")]
    pub client_id: String,
    #[serde(default)]
    pub acks: KafkaAcks,
    /// Bound of librdkafka's queue and, separately, of the sink's own overflow buffer.
    #[serde(default = "default_buffer_records")]
    pub buffer_records: u32,
    /// How long librdkafka keeps retrying a record before it counts as failed.
    #[serde(default = "default_message_timeout_ms")]
    pub message_timeout_ms: u64,
    /// How long `flush` and shutdown wait for outstanding records.
    #[serde(default = "default_flush_timeout_ms")]
    pub flush_timeout_ms: u64,
    #[serde(default)]
    pub compression: KafkaCompression,
    /// Record kinds published: `["frames"]` (default), `["events"]`, `["health"]`, or
    /// several; `{event}` in the template is `outputs`, `events` or `health`.
    #[serde(default)]
    pub records: crate::records::Records,
}

fn default_topic() -> String {
    "nextvision.{feed}".into()
}
fn default_client_id() -> String {
    "nextvision".into()
}
fn default_message_timeout_ms() -> u64 {
    60_000
}

/// librdkafka keeps these as C ints.
const MAX_INT_SETTING: u64 = i32::MAX as u64;

impl KafkaSinkConfig {
    pub fn new(brokers: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            brokers: brokers.into_iter().map(Into::into).collect(),
            topic: default_topic(),
            client_id: default_client_id(),
            acks: KafkaAcks::default(),
            buffer_records: default_buffer_records(),
            message_timeout_ms: default_message_timeout_ms(),
            flush_timeout_ms: default_flush_timeout_ms(),
            compression: KafkaCompression::default(),
            records: crate::records::Records::default(),
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Problems::default();
        if self.brokers.is_empty() {
            p.push(ConfigProblem::missing("brokers"));
        }
        for b in &self.brokers {
            if !valid_broker(b) {
                p.push(ConfigProblem::invalid(
                    "brokers",
                    b,
                    "must be host:port (no spaces or commas)",
                ));
            }
        }
        p.template("topic", &self.topic);
        if let Some(bad) = topic_problem(&self.topic) {
            p.push(ConfigProblem::invalid("topic", &self.topic, bad));
        }
        if self.client_id.trim().is_empty() {
            p.push(ConfigProblem::missing("client_id"));
        }
        p.at_least("buffer_records", u64::from(self.buffer_records), 1);
        p.at_least("message_timeout_ms", self.message_timeout_ms, 1);
        p.not_above(
            "message_timeout_ms",
            self.message_timeout_ms,
            "the librdkafka limit",
            MAX_INT_SETTING,
        );
        p.not_above(
            "buffer_records",
            u64::from(self.buffer_records),
            "the librdkafka limit",
            MAX_INT_SETTING,
        );
        p.at_most(
            "buffer_records",
            u64::from(self.buffer_records),
            nv_core::limits::MAX_BUFFER_RECORDS,
        );
        p.millis("message_timeout_ms", self.message_timeout_ms);
        p.millis("flush_timeout_ms", self.flush_timeout_ms);
        p.finish()
    }

    /// Whether the producer is idempotent (only with `acks = "all"`).
    pub fn idempotent(&self) -> bool {
        self.acks == KafkaAcks::All
    }

    pub fn build(&self) -> Result<Box<dyn OutputSink>, SinkError> {
        self.build_with_stats(SinkStats::new())
    }

    pub fn build_with_stats(&self, stats: SinkStats) -> Result<Box<dyn OutputSink>, SinkError> {
        self.validate()?;
        Ok(Box::new(KafkaSink::start(self.clone(), stats)?))
    }
}

fn valid_broker(b: &str) -> bool {
    let Some((host, port)) = b.rsplit_once(':') else {
        return false;
    };
    !host.is_empty() && !b.contains([' ', ',', '\t']) && port.parse::<u16>().is_ok_and(|p| p > 0)
}

/// Kafka topic names are `[a-zA-Z0-9._-]`, at most 249 characters; checked with the
/// placeholders expanded to a plausible value.
fn topic_problem(template: &str) -> Option<&'static str> {
    let sample = crate::template::expand(template, 0, crate::template::EVENT_OUTPUTS);
    if sample.len() > 249 {
        return Some("is longer than 249 characters");
    }
    if sample == "." || sample == ".." {
        return Some("must not be . or ..");
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if !sample.is_empty() && !sample.chars().all(allowed) {
        return Some("may only contain letters, digits, '.', '_' and '-' besides placeholders");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SinkConfig;

    #[test]
    fn parses_with_defaults_and_lists_every_problem() {
        let c: SinkConfig =
            toml::from_str("type = \"kafka\"\nbrokers = [\"127.0.0.1:9092\"]\n").unwrap();
        assert_eq!(c.kind(), "kafka");
        c.validate().unwrap();
        let SinkConfig::Kafka(k) = c else {
            panic!("not kafka: {c:?}")
        };
        assert_eq!(k, KafkaSinkConfig::new(["127.0.0.1:9092"]));
        assert!(k.idempotent());

        let c: KafkaSinkConfig = toml::from_str(
            "brokers = [\"a:1\", \"b:2\"]\ntopic = \"nv.{feed}.{event}\"\nacks = \"1\"\ncompression = \"lz4\"\n",
        )
        .unwrap();
        assert_eq!(c.acks, KafkaAcks::Leader);
        assert_eq!(c.compression, KafkaCompression::Lz4);
        assert!(!c.idempotent());
        c.validate().unwrap();

        for bad in [
            "brokers = [\"a:1\"]\nacks = 1\n",
            "brokers = [\"a:1\"]\nacks = \"2\"\n",
            "brokers = [\"a:1\"]\ncompression = \"zstd\"\n",
            "brokers = [\"a:1\"]\nlinger_ms = 5\n",
        ] {
            assert!(toml::from_str::<KafkaSinkConfig>(bad).is_err(), "{bad}");
        }

        let mut c = KafkaSinkConfig::new(["nohost", "h:0", "a b:1"]);
        c.topic = "nv/{camera}".into();
        c.client_id = " ".into();
        c.buffer_records = 0;
        c.message_timeout_ms = 0;
        let err = c.validate().unwrap_err();
        let fields: Vec<&str> = err.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "brokers",
                "brokers",
                "brokers",
                "topic",
                "topic",
                "client_id",
                "buffer_records",
                "message_timeout_ms"
            ],
            "{err}"
        );
        assert!(KafkaSinkConfig::new(Vec::<String>::new())
            .validate()
            .is_err());
    }
}
