//! HTTP webhook sink configuration.

use std::collections::BTreeMap;
use std::time::Duration;

use nv_core::error::{ConfigError, ConfigProblem};
use nv_core::security::redact_url;
use nv_io::OutputSink;
use serde::Deserialize;

use super::Problems;
use crate::error::SinkError;
use crate::http::WebhookSink;
use crate::secret::Secret;
use crate::stats::SinkStats;

/// `type = "webhook"`: POSTs a JSON array of records (`Content-Type: application/json`)
/// per batch of up to `batch_max_records` records or `batch_max_delay_ms` after the first
/// record of the batch. Connection errors, timeouts, 408, 425, 429 and 5xx answers are
/// retried with exponential backoff; other 4xx answers fail the batch (counted). While
/// retrying, new records wait in a buffer of `buffer_records` that drops its oldest beyond
/// the bound (counted).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSinkConfig {
    /// `http://` or `https://` endpoint. Userinfo in the URL is never logged.
    pub url: String,
    /// Extra request headers (`Authorization`, ...); values are secrets.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    #[serde(default = "default_batch_max_records")]
    pub batch_max_records: u32,
    #[serde(default = "default_batch_max_delay_ms")]
    pub batch_max_delay_ms: u64,
    #[serde(default = "default_buffer_records")]
    pub buffer_records: u32,
    /// Whole-request timeout.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_retry_initial_ms")]
    pub retry_initial_ms: u64,
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
    /// Retries of one batch before it is failed; unset retries until delivered (the
    /// buffer bound still applies to newer records).
    #[serde(default)]
    pub max_retries: Option<u32>,
    /// How long a flush (session end) or drop waits for the buffer to drain.
    #[serde(default = "default_flush_timeout_ms")]
    pub flush_timeout_ms: u64,
    /// Record kinds posted: `["frames"]` (default), `["events"]` (an events-only hook),
    /// `["health"]`, or several.
    #[serde(default)]
    pub records: crate::records::Records,
}

fn default_batch_max_records() -> u32 {
    50
}
fn default_batch_max_delay_ms() -> u64 {
    100
}
pub(crate) fn default_buffer_records() -> u32 {
    1000
}
fn default_timeout_ms() -> u64 {
    5000
}
pub(crate) fn default_retry_initial_ms() -> u64 {
    100
}
pub(crate) fn default_retry_max_ms() -> u64 {
    5000
}
/// Below the runtime's default sink shutdown timeout (5 s), so a flush gives up and
/// counts what is left before the runtime detaches the sink.
pub(crate) fn default_flush_timeout_ms() -> u64 {
    3000
}

impl WebhookSinkConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            headers: BTreeMap::new(),
            batch_max_records: default_batch_max_records(),
            batch_max_delay_ms: default_batch_max_delay_ms(),
            buffer_records: default_buffer_records(),
            timeout_ms: default_timeout_ms(),
            retry_initial_ms: default_retry_initial_ms(),
            retry_max_ms: default_retry_max_ms(),
            max_retries: None,
            flush_timeout_ms: default_flush_timeout_ms(),
            records: crate::records::Records::default(),
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Problems::default();
        let lower = self.url.to_ascii_lowercase();
        if self.url.trim().is_empty() {
            p.push(ConfigProblem::missing("url"));
        } else if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            p.push(ConfigProblem::invalid(
                "url",
                redact_url(&self.url),
                "must start with http:// or https://",
            ));
        }
        for name in self.headers.keys() {
            let valid = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_!#$%&'*+.^`|~".contains(&b));
            if !valid {
                p.push(ConfigProblem::invalid(
                    format!("headers.{name}"),
                    name,
                    "is not a valid header name",
                ));
            }
        }
        p.at_least("batch_max_records", u64::from(self.batch_max_records), 1);
        p.at_least("buffer_records", u64::from(self.buffer_records), 1);
        p.at_least("timeout_ms", self.timeout_ms, 1);
        p.at_least("retry_initial_ms", self.retry_initial_ms, 1);
        p.not_above(
            "retry_initial_ms",
            self.retry_initial_ms,
            "retry_max_ms",
            self.retry_max_ms,
        );
        p.at_most(
            "buffer_records",
            u64::from(self.buffer_records),
            nv_core::limits::MAX_BUFFER_RECORDS,
        );
        p.at_most(
            "batch_max_records",
            u64::from(self.batch_max_records),
            nv_core::limits::MAX_BATCH_RECORDS,
        );
        p.millis("batch_max_delay_ms", self.batch_max_delay_ms);
        p.millis("timeout_ms", self.timeout_ms);
        p.millis("retry_initial_ms", self.retry_initial_ms);
        p.millis("retry_max_ms", self.retry_max_ms);
        p.millis("flush_timeout_ms", self.flush_timeout_ms);
        p.finish()
    }

    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub fn build(&self) -> Result<Box<dyn OutputSink>, SinkError> {
        self.build_with_stats(SinkStats::new())
    }

    pub fn build_with_stats(&self, stats: SinkStats) -> Result<Box<dyn OutputSink>, SinkError> {
        self.validate()?;
        Ok(Box::new(WebhookSink::start(self.clone(), stats)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_url_and_bounds_without_leaking_credentials() {
        let mut c = WebhookSinkConfig::new("ftp://user:pw@host/x");
        c.batch_max_records = 0;
        c.retry_initial_ms = 10_000;
        c.headers.insert("Bad Header".into(), Secret::new("v"));
        let err = c.validate().unwrap_err();
        let text = err.to_string();
        assert!(!text.contains("pw"), "{text}");
        assert_eq!(err.problems.len(), 4, "{text}");
        WebhookSinkConfig::new("https://example.invalid/hook")
            .validate()
            .unwrap();
    }
}
