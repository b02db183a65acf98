//! Sink configuration: serde data (`deny_unknown_fields`), separate from the runtime sink
//! objects. `validate` reports every problem at once; `build` validates and makes the sink.
//!
//! Durations are integers with the unit in the name (`timeout_ms`, `max_age_secs`), sizes
//! are `*_bytes` or `*_records`.

mod file;
#[cfg(feature = "kafka")]
mod kafka;
mod mqtt;
mod nats;
mod webhook;

use nv_core::error::{ConfigError, ConfigProblem};
use nv_io::{OutputSink, SharedOutput, SinkFactory};
use serde::Deserialize;

pub use file::{FileSinkConfig, FsyncPolicy, StdoutSinkConfig};
#[cfg(feature = "kafka")]
pub use kafka::{KafkaAcks, KafkaCompression, KafkaSinkConfig};
pub use mqtt::{MqttQos, MqttSinkConfig};
pub use nats::NatsSinkConfig;
pub use webhook::WebhookSinkConfig;

use crate::error::SinkError;
use crate::stats::{Fate, SinkStats};

/// One sink, selected by `type` (`file`, `stdout`, `webhook`, `mqtt`, `nats`, and `kafka`
/// when built with the cargo feature `kafka`).
///
/// ```toml
/// type = "mqtt"
/// host = "127.0.0.1"
/// topic = "nextvision/{feed}/{event}"
/// ```
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum SinkConfig {
    File(FileSinkConfig),
    Stdout(StdoutSinkConfig),
    Webhook(WebhookSinkConfig),
    Mqtt(MqttSinkConfig),
    Nats(NatsSinkConfig),
    #[cfg(feature = "kafka")]
    Kafka(KafkaSinkConfig),
}

impl SinkConfig {
    /// The `type` name.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::File(_) => "file",
            Self::Stdout(_) => "stdout",
            Self::Webhook(_) => "webhook",
            Self::Mqtt(_) => "mqtt",
            Self::Nats(_) => "nats",
            #[cfg(feature = "kafka")]
            Self::Kafka(_) => "kafka",
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        match self {
            Self::File(c) => c.validate(),
            Self::Stdout(c) => c.validate(),
            Self::Webhook(c) => c.validate(),
            Self::Mqtt(c) => c.validate(),
            Self::Nats(c) => c.validate(),
            #[cfg(feature = "kafka")]
            Self::Kafka(c) => c.validate(),
        }
    }

    /// Builds the sink with fresh counters.
    pub fn build(&self) -> Result<Box<dyn OutputSink>, SinkError> {
        self.build_with_stats(SinkStats::new())
    }

    /// Builds the sink updating `stats` (share one handle across rebuilds of a feed's
    /// sink so its figures survive).
    pub fn build_with_stats(&self, stats: SinkStats) -> Result<Box<dyn OutputSink>, SinkError> {
        match self {
            Self::File(c) => c.build_with_stats(stats),
            Self::Stdout(c) => c.build_with_stats(stats),
            Self::Webhook(c) => c.build_with_stats(stats),
            Self::Mqtt(c) => c.build_with_stats(stats),
            Self::Nats(c) => c.build_with_stats(stats),
            #[cfg(feature = "kafka")]
            Self::Kafka(c) => c.build_with_stats(stats),
        }
    }
}

impl SinkConfig {
    /// A factory for `FeedConfigBuilder::sink_factory`: rebuilds the sink with the same
    /// counters after the runtime lost it. If rebuilding fails (it validated before, so
    /// only resources can fail), the replacement counts every record as failed.
    pub fn factory(&self, stats: SinkStats) -> SinkFactory {
        let config = self.clone();
        Box::new(move || match config.build_with_stats(stats.clone()) {
            Ok(sink) => sink,
            Err(e) => {
                tracing::error!(sink = config.kind(), error = %e, "could not rebuild sink; its records are counted as failed");
                Box::new(FailingSink {
                    stats: stats.clone(),
                })
            }
        })
    }
}

/// Stands in for a sink that could not be rebuilt.
#[derive(Debug)]
struct FailingSink {
    stats: SinkStats,
}

impl OutputSink for FailingSink {
    fn emit(&mut self, output: SharedOutput) {
        self.stats.count(Fate::Received, output.feed_id);
        self.stats.count(Fate::Failed, output.feed_id);
    }
}

/// Collects problems with the field names a config file uses.
#[derive(Debug, Default)]
pub(crate) struct Problems(pub Vec<ConfigProblem>);

impl Problems {
    pub fn at_least(&mut self, field: &str, value: u64, min: u64) {
        if value < min {
            self.0.push(ConfigProblem::invalid(
                field,
                value,
                format!("must be at least {min}"),
            ));
        }
    }
    /// The documented maximum (nv_core::limits): the message names key, value and limit.
    pub fn at_most(&mut self, field: &str, value: u64, max: u64) {
        self.0.extend(nv_core::limits::at_most(field, value, max));
    }
    /// Every `*_ms` duration is at most one day.
    pub fn millis(&mut self, field: &str, value: u64) {
        self.at_most(field, value, nv_core::limits::MAX_DURATION_MS);
    }
    pub fn not_above(&mut self, field: &str, value: u64, other_field: &str, other: u64) {
        if value > other {
            self.0.push(ConfigProblem::invalid(
                field,
                value,
                format!("must not exceed {other_field} ({other})"),
            ));
        }
    }
    pub fn non_empty(&mut self, field: &str, value: &str) {
        if value.trim().is_empty() {
            self.0.push(ConfigProblem::missing(field));
        }
    }
    pub fn template(&mut self, field: &str, value: &str) {
        self.template_with(field, value, &[]);
    }
    /// [`Self::template`] for a sink that also knows the placeholders in `extra`.
    pub fn template_with(&mut self, field: &str, value: &str, extra: &[&str]) {
        self.non_empty(field, value);
        for ph in crate::template::unknown_placeholders(value) {
            if extra.contains(&ph.as_str()) {
                continue;
            }
            let mut known = crate::template::PLACEHOLDERS.to_vec();
            known.extend_from_slice(extra);
            self.0.push(ConfigProblem::invalid(
                field,
                value,
                format!("unknown placeholder {ph} (known: {})", known.join(", ")),
            ));
        }
    }
    pub fn push(&mut self, p: ConfigProblem) {
        self.0.push(p);
    }
    pub fn finish(self) -> Result<(), ConfigError> {
        ConfigError::check(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagged_configs_parse_and_reject_unknown_fields() {
        let c: SinkConfig = toml::from_str("type = \"file\"\npath = \"/tmp/x.jsonl\"\n").unwrap();
        assert_eq!(c.kind(), "file");
        c.validate().unwrap();
        let err = toml::from_str::<SinkConfig>("type = \"file\"\npath = \"x\"\nbogus = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("bogus"), "{err}");
        let err = toml::from_str::<SinkConfig>("type = \"kinesis\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("kinesis"), "{err}");
        // Without the cargo feature, `kafka` is an unknown sink type.
        #[cfg(not(feature = "kafka"))]
        {
            let err = toml::from_str::<SinkConfig>("type = \"kafka\"\n")
                .unwrap_err()
                .to_string();
            assert!(err.contains("kafka"), "{err}");
        }
    }
}

#[cfg(test)]
mod limit_tests {
    use super::*;

    #[test]
    fn buffers_and_delays_above_the_maxima_are_refused_before_building() {
        let c: SinkConfig = toml::from_str(
            "type = \"webhook\"\nurl = \"http://127.0.0.1:9/x\"\nbuffer_records = 4000000000\n\
             batch_max_records = 4000000000\ntimeout_ms = 18446744073709551615\n",
        )
        .unwrap();
        let err = c.validate().unwrap_err().to_string();
        for want in [
            "buffer_records = 4000000000: must be at most 1000000",
            "batch_max_records = 4000000000: must be at most 100000",
            "timeout_ms = 18446744073709551615: must be at most 86400000",
        ] {
            assert!(err.contains(want), "{want} in {err}");
        }
        // The library path: building validates first, so no thread or buffer is made.
        assert!(matches!(c.build(), Err(SinkError::Config(_))));
    }
}
