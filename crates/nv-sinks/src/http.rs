//! HTTP webhook sink: batched POSTs on the buffered-delivery core.
//!
//! Records are sent as a JSON array, up to `batch_max_records` per POST, waiting at most
//! `batch_max_delay_ms` for a batch to fill (no wait while a flush drains). 2xx delivers
//! the batch; 408, 425, 429, 5xx and transport errors send it again after a backoff (up to
//! `max_retries` times when set); any other status fails it without retrying.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use nv_core::clock::SystemClock;
use nv_core::id::FeedId;
use nv_core::security::{redact_url, sanitize_error_string};
use nv_io::{HealthOutput, OutputSink, SharedOutput};

use crate::backoff::Backoff;
use crate::buffer::Attributed;
use crate::config::WebhookSinkConfig;
use crate::delivery::batch::{self, Attempt, BatchPolicy, BatchTransport};
use crate::delivery::{Delivery, Limits};
use crate::error::SinkError;
use crate::stats::SinkStats;

/// One encoded record and its feed.
#[derive(Debug)]
struct Encoded {
    feed: FeedId,
    json: Vec<u8>,
}

impl Attributed for Encoded {
    fn feed(&self) -> FeedId {
        self.feed
    }
}

/// Posts records to a webhook from a background thread (`nv-sink-http`). `emit` only
/// encodes and buffers, so a slow or down endpoint never blocks the feed's sink thread.
#[derive(Debug)]
pub struct WebhookSink {
    delivery: Delivery<Encoded>,
    records: crate::records::Records,
    flush_timeout: Duration,
    worker: Option<JoinHandle<()>>,
}

impl WebhookSink {
    pub fn start(config: WebhookSinkConfig, stats: SinkStats) -> Result<Self, SinkError> {
        config.validate()?;
        let batch_max = usize::try_from(config.batch_max_records).unwrap_or(1);
        let delivery = Delivery::new(
            "webhook",
            Limits {
                buffer_records: usize::try_from(config.buffer_records).unwrap_or(1),
                max_in_flight: batch_max,
                needs_connection: false,
            },
            stats,
            SystemClock::shared(),
        );
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout()))
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        let policy = BatchPolicy {
            max_records: batch_max,
            max_delay: Duration::from_millis(config.batch_max_delay_ms),
            max_retries: config.max_retries,
            backoff: Backoff::new(
                Duration::from_millis(config.retry_initial_ms),
                Duration::from_millis(config.retry_max_ms),
            ),
        };
        let flush_timeout = Duration::from_millis(config.flush_timeout_ms);
        let records = config.records;
        let transport = Http {
            redacted_url: redact_url(&config.url),
            config,
            agent,
        };
        let worker = batch::spawn("nv-sink-http", delivery.clone(), policy, transport)?;
        delivery.connection_up();
        Ok(Self {
            delivery,
            records,
            flush_timeout,
            worker: Some(worker),
        })
    }

    pub fn stats(&self) -> &SinkStats {
        self.delivery.stats()
    }
}

impl OutputSink for WebhookSink {
    fn emit(&mut self, output: SharedOutput) {
        let feed = output.feed_id;
        self.delivery
            .emit_records(&output, self.records, |r| Encoded { feed, json: r.json });
    }

    fn flush(&mut self) {
        self.delivery.flush(self.flush_timeout);
    }

    fn selects_health(&self) -> bool {
        self.records.health
    }

    fn emit_health(&mut self, health: &HealthOutput) {
        if !self.records.health {
            return;
        }
        let r = crate::records::encode_health(health, self.delivery.stats(), false);
        self.delivery.push(Encoded {
            feed: crate::records::health_feed(health),
            json: r.json,
        });
    }
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        let worker = self.worker.take();
        self.delivery
            .shut_down(self.flush_timeout, || crate::rt::join(worker));
    }
}

struct Http {
    config: WebhookSinkConfig,
    redacted_url: String,
    agent: ureq::Agent,
}

impl Http {
    fn body(batch: &[Arc<Encoded>]) -> Vec<u8> {
        let len: usize = batch.iter().map(|r| r.json.len() + 1).sum();
        let mut body = Vec::with_capacity(len + 2);
        body.push(b'[');
        for (i, r) in batch.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&r.json);
        }
        body.push(b']');
        body
    }
}

impl BatchTransport for Http {
    type Record = Encoded;

    fn send(&mut self, batch: &[Arc<Encoded>]) -> Attempt {
        let mut req = self
            .agent
            .post(&self.config.url)
            .header("Content-Type", "application/json");
        for (name, value) in &self.config.headers {
            req = req.header(name.as_str(), value.expose());
        }
        let (retry, why) = match req.send(Self::body(batch)) {
            Ok(resp) => match resp.status().as_u16() {
                200..=299 => return Attempt::Delivered,
                status @ (408 | 425 | 429 | 500..=599) => (true, format!("status {status}")),
                status => (false, format!("status {status}")),
            },
            Err(e) => (true, sanitize_error_string(&e.to_string())),
        };
        let why = format!("{}: {why}", self.redacted_url);
        if retry {
            Attempt::Retry { delivered: 0, why }
        } else {
            Attempt::Reject { delivered: 0, why }
        }
    }
}
