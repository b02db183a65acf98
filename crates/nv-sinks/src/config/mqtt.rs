//! MQTT sink configuration.

use std::time::Duration;

use nv_core::error::{ConfigError, ConfigProblem};
use nv_io::OutputSink;
use serde::Deserialize;

use super::webhook::{
    default_buffer_records, default_flush_timeout_ms, default_retry_initial_ms,
    default_retry_max_ms,
};
use super::Problems;
use crate::error::SinkError;
use crate::mqtt::MqttSink;
use crate::secret::Secret;
use crate::stats::SinkStats;

/// MQTT quality of service; TOML `qos = 0 | 1 | 2`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u8")]
pub enum MqttQos {
    AtMostOnce,
    #[default]
    AtLeastOnce,
    ExactlyOnce,
}

impl TryFrom<u8> for MqttQos {
    type Error = String;
    fn try_from(v: u8) -> Result<Self, String> {
        match v {
            0 => Ok(Self::AtMostOnce),
            1 => Ok(Self::AtLeastOnce),
            2 => Ok(Self::ExactlyOnce),
            n => Err(format!("qos must be 0, 1 or 2, not {n}")),
        }
    }
}

/// `type = "mqtt"`: publishes each record to `topic` (placeholders `{feed}`, `{event}`).
/// A retained availability message (`online`, and `offline` as last will and on a clean
/// shutdown) is kept on `availability_topic`. While the broker is down, records wait in a
/// buffer of `buffer_records` that drops its oldest beyond the bound (counted).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSinkConfig {
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// Defaults to `nextvision-{pid}-{n}`; set it for a stable availability topic.
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default = "default_topic")]
    pub topic: String,
    #[serde(default)]
    pub qos: MqttQos,
    /// Retain output messages (the availability message is always retained).
    #[serde(default)]
    pub retain: bool,
    /// `{client_id}` is replaced by the client id.
    #[serde(default = "default_availability_topic")]
    pub availability_topic: String,
    #[serde(default = "default_keep_alive_secs")]
    pub keep_alive_secs: u64,
    #[serde(default = "default_buffer_records")]
    pub buffer_records: u32,
    /// Records handed to the client and not yet acknowledged (QoS 1/2) or written (QoS 0).
    ///
    /// Keep it at or below the broker's per-client inflight quota (mosquitto's
    /// `max_inflight_messages`, 20 by default): MQTT 3.1.1 has no way to tell a client
    /// that a QoS 2 publish over that quota was discarded, so the broker completes the
    /// handshake and drops the message.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: u16,
    #[serde(default = "default_retry_initial_ms")]
    pub reconnect_initial_ms: u64,
    #[serde(default = "default_retry_max_ms")]
    pub reconnect_max_ms: u64,
    #[serde(default = "default_flush_timeout_ms")]
    pub flush_timeout_ms: u64,
    /// Largest accepted record, in bytes.
    #[serde(default = "default_max_packet_bytes")]
    pub max_packet_bytes: u32,
    /// Record kinds published: `["frames"]` (default), `["events"]`, `["health"]`, or
    /// several. With `topic`, events go to `{event}` = `events` and health records to
    /// `{event}` = `health` (`{feed}` = `runtime` for runtime-wide events); with `prefix`,
    /// health records go to `<prefix>/health`.
    #[serde(default)]
    pub records: crate::records::Records,
    /// The Frigate-style layout by feed name under this prefix (`topic` and
    /// `availability_topic` are then unused): `<prefix>/events`, `<prefix>/<feed>/frames`,
    /// retained `<prefix>/<feed>/<zone>/<class>` occupancy and `<prefix>/<feed>/state`,
    /// retained `<prefix>/available` for the daemon. See `SCHEMA.md`.
    #[serde(default)]
    pub prefix: Option<String>,
}

fn default_port() -> u16 {
    1883
}
fn default_topic() -> String {
    "nextvision/{feed}/{event}".into()
}
fn default_availability_topic() -> String {
    "nextvision/{client_id}/availability".into()
}
fn default_keep_alive_secs() -> u64 {
    30
}
/// Half of mosquitto's default inflight quota (20), at or below the defaults of the common
/// brokers, so a default configuration never overruns the broker's receive window.
pub(crate) fn default_max_in_flight() -> u16 {
    10
}
fn default_max_packet_bytes() -> u32 {
    1024 * 1024
}

impl MqttSinkConfig {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            client_id: None,
            username: None,
            password: None,
            topic: default_topic(),
            qos: MqttQos::default(),
            retain: false,
            availability_topic: default_availability_topic(),
            keep_alive_secs: default_keep_alive_secs(),
            buffer_records: default_buffer_records(),
            max_in_flight: default_max_in_flight(),
            reconnect_initial_ms: default_retry_initial_ms(),
            reconnect_max_ms: default_retry_max_ms(),
            flush_timeout_ms: default_flush_timeout_ms(),
            max_packet_bytes: default_max_packet_bytes(),
            records: crate::records::Records::default(),
            prefix: None,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Problems::default();
        p.non_empty("host", &self.host);
        if self.port == 0 {
            p.push(ConfigProblem::invalid("port", 0, "must be 1..=65535"));
        }
        if let Some(id) = &self.client_id {
            p.non_empty("client_id", id);
        }
        if self.password.is_some() && self.username.is_none() {
            p.push(ConfigProblem::invalid(
                "password",
                "***",
                "needs a username",
            ));
        }
        p.template("topic", &self.topic);
        for (field, topic) in [
            ("topic", &self.topic),
            ("availability_topic", &self.availability_topic),
        ] {
            if topic.contains(['+', '#']) {
                p.push(ConfigProblem::invalid(
                    field,
                    topic,
                    "must not contain the wildcards + or #",
                ));
            }
        }
        p.non_empty("availability_topic", &self.availability_topic);
        if let Some(prefix) = &self.prefix {
            p.non_empty("prefix", prefix);
            if prefix.contains(['+', '#']) || prefix.starts_with('/') || prefix.ends_with('/') {
                p.push(ConfigProblem::invalid(
                    "prefix",
                    prefix,
                    "must not contain + or # nor start or end with /",
                ));
            }
        }
        p.at_least("keep_alive_secs", self.keep_alive_secs, 5);
        p.at_least("buffer_records", u64::from(self.buffer_records), 1);
        p.at_least("max_in_flight", u64::from(self.max_in_flight), 1);
        p.at_least("reconnect_initial_ms", self.reconnect_initial_ms, 1);
        p.not_above(
            "reconnect_initial_ms",
            self.reconnect_initial_ms,
            "reconnect_max_ms",
            self.reconnect_max_ms,
        );
        p.at_least("max_packet_bytes", u64::from(self.max_packet_bytes), 1024);
        p.at_most(
            "buffer_records",
            u64::from(self.buffer_records),
            nv_core::limits::MAX_BUFFER_RECORDS,
        );
        p.millis("reconnect_initial_ms", self.reconnect_initial_ms);
        p.millis("reconnect_max_ms", self.reconnect_max_ms);
        p.millis("flush_timeout_ms", self.flush_timeout_ms);
        p.finish()
    }

    pub(crate) fn keep_alive(&self) -> Duration {
        Duration::from_secs(self.keep_alive_secs)
    }

    pub fn build(&self) -> Result<Box<dyn OutputSink>, SinkError> {
        self.build_with_stats(SinkStats::new())
    }

    pub fn build_with_stats(&self, stats: SinkStats) -> Result<Box<dyn OutputSink>, SinkError> {
        self.validate()?;
        Ok(Box::new(MqttSink::start(self.clone(), stats)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_validates() {
        let c: MqttSinkConfig = toml::from_str(
            "host = \"broker\"\nqos = 2\npassword = \"pw\"\ntopic = \"a/{cam}/#\"\n",
        )
        .unwrap();
        assert_eq!(c.qos, MqttQos::ExactlyOnce);
        let err = c.validate().unwrap_err();
        let fields: Vec<&str> = err.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, vec!["password", "topic", "topic"], "{err}");
        assert!(!format!("{c:?}").contains("pw\""));
        assert!(toml::from_str::<MqttSinkConfig>("host = \"b\"\nqos = 3\n").is_err());
    }
}
