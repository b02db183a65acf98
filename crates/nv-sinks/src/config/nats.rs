//! NATS sink configuration.

use std::time::Duration;

use nv_core::error::{ConfigError, ConfigProblem};
use nv_core::security::redact_url;
use nv_io::OutputSink;
use serde::Deserialize;

use super::webhook::{
    default_buffer_records, default_flush_timeout_ms, default_retry_initial_ms,
    default_retry_max_ms,
};
use super::Problems;
use crate::error::SinkError;
use crate::nats::NatsSink;
use crate::secret::Secret;
use crate::stats::SinkStats;

/// `type = "nats"`: publishes each record to `subject` (placeholders `{feed}`,
/// `{event}`, and `{name}`: the feed's name, its id for an unnamed feed). `records`
/// selects frame and/or event records; event records go to `events_subject` when set.
/// `url` may list several servers of one cluster, comma-separated. With `jetstream = true` each record is published to the stream that binds
/// the subject and counted delivered only when the server acknowledges it; the
/// `Nats-Msg-Id` header carries the idempotency key so the server drops duplicates of a
/// retried record. Core NATS has no acknowledgements: a record counts as delivered once
/// written to the server's socket. While the server is unreachable, records wait in a
/// buffer of `buffer_records` that drops its oldest beyond the bound (counted).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSinkConfig {
    /// `nats://host:4222`; may carry `user:password@` (never logged).
    pub url: String,
    #[serde(default = "default_subject")]
    pub subject: String,
    #[serde(default)]
    pub token: Option<Secret>,
    /// A NATS `.creds` file (JWT + nkey seed) when the servers require one.
    #[serde(default)]
    pub creds_file: Option<std::path::PathBuf>,
    #[serde(default)]
    pub jetstream: bool,
    /// Wait for a JetStream acknowledgement, or for a core flush.
    #[serde(default = "default_ack_timeout_ms")]
    pub ack_timeout_ms: u64,
    #[serde(default = "default_buffer_records")]
    pub buffer_records: u32,
    /// Records published before their acknowledgements are awaited (JetStream) or the
    /// connection is flushed (core).
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: u16,
    #[serde(default = "default_retry_initial_ms")]
    pub reconnect_initial_ms: u64,
    #[serde(default = "default_retry_max_ms")]
    pub reconnect_max_ms: u64,
    #[serde(default = "default_flush_timeout_ms")]
    pub flush_timeout_ms: u64,
    /// Record kinds published: `["frames"]` (default), `["events"]`, `["health"]`, or
    /// several; `{event}` in the template is `outputs`, `events` or `health`.
    #[serde(default)]
    pub records: crate::records::Records,
    /// Subject of event records (same placeholders); default: `subject` with `{event}`
    /// = `events`.
    #[serde(default)]
    pub events_subject: Option<String>,
}

/// Placeholders only NATS subjects know.
pub(crate) const NATS_PLACEHOLDERS: &[&str] = &["{name}"];

fn default_subject() -> String {
    "nextvision.{feed}.{event}".into()
}
fn default_ack_timeout_ms() -> u64 {
    2000
}

/// Messages published and not yet acknowledged; NATS has no per-client quota to stay under.
fn default_max_in_flight() -> u16 {
    32
}

impl NatsSinkConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            subject: default_subject(),
            token: None,
            creds_file: None,
            jetstream: false,
            ack_timeout_ms: default_ack_timeout_ms(),
            buffer_records: default_buffer_records(),
            max_in_flight: default_max_in_flight(),
            reconnect_initial_ms: default_retry_initial_ms(),
            reconnect_max_ms: default_retry_max_ms(),
            flush_timeout_ms: default_flush_timeout_ms(),
            records: crate::records::Records::default(),
            events_subject: None,
        }
    }

    /// `url` with any credentials of each listed server replaced.
    pub(crate) fn redacted_url(&self) -> String {
        self.url
            .split(',')
            .map(redact_url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The server addresses `url` lists (comma-separated).
    pub(crate) fn server_addrs(&self) -> Result<Vec<async_nats::ServerAddr>, ()> {
        self.url
            .split(',')
            .map(|u| u.trim().parse::<async_nats::ServerAddr>().map_err(|_| ()))
            .collect()
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Problems::default();
        if self.url.trim().is_empty() {
            p.push(ConfigProblem::missing("url"));
        } else if self.server_addrs().is_err() {
            p.push(ConfigProblem::invalid(
                "url",
                self.redacted_url(),
                "is not a NATS server address (nats://host:port, several comma-separated)",
            ));
        }
        let subjects = [
            ("subject", Some(&self.subject)),
            ("events_subject", self.events_subject.as_ref()),
        ];
        for (field, subject) in subjects {
            let Some(subject) = subject else { continue };
            p.template_with(field, subject, NATS_PLACEHOLDERS);
            if subject.contains(['*', '>', ' ']) {
                p.push(ConfigProblem::invalid(
                    field,
                    subject,
                    "must not contain wildcards or spaces",
                ));
            }
        }
        p.at_least("ack_timeout_ms", self.ack_timeout_ms, 1);
        p.at_least("buffer_records", u64::from(self.buffer_records), 1);
        p.at_least("max_in_flight", u64::from(self.max_in_flight), 1);
        p.at_least("reconnect_initial_ms", self.reconnect_initial_ms, 1);
        p.not_above(
            "reconnect_initial_ms",
            self.reconnect_initial_ms,
            "reconnect_max_ms",
            self.reconnect_max_ms,
        );
        p.at_most(
            "buffer_records",
            u64::from(self.buffer_records),
            nv_core::limits::MAX_BUFFER_RECORDS,
        );
        p.millis("ack_timeout_ms", self.ack_timeout_ms);
        p.millis("reconnect_initial_ms", self.reconnect_initial_ms);
        p.millis("reconnect_max_ms", self.reconnect_max_ms);
        p.millis("flush_timeout_ms", self.flush_timeout_ms);
        p.finish()
    }

    pub(crate) fn ack_timeout(&self) -> Duration {
        Duration::from_millis(self.ack_timeout_ms)
    }

    pub fn build(&self) -> Result<Box<dyn OutputSink>, SinkError> {
        self.build_with_stats(SinkStats::new())
    }

    pub fn build_with_stats(&self, stats: SinkStats) -> Result<Box<dyn OutputSink>, SinkError> {
        self.validate()?;
        Ok(Box::new(NatsSink::start(self.clone(), stats)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_without_leaking_credentials() {
        let mut c = NatsSinkConfig::new("http://u:secretpw@host:4222 x");
        c.subject = "a.{feed}.>".into();
        c.max_in_flight = 0;
        let err = c.validate().unwrap_err();
        assert!(!err.to_string().contains("secretpw"), "{err}");
        let fields: Vec<&str> = err.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, vec!["url", "subject", "max_in_flight"], "{err}");
        NatsSinkConfig::new("nats://127.0.0.1:4222")
            .validate()
            .unwrap();
    }
}
