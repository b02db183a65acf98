//! HTTP webhook sink: batched POSTs, retries with backoff, bounded buffer.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nv_core::id::FeedId;
use nv_core::security::{redact_url, sanitize_error_string};
use nv_io::{OutputSink, SharedOutput};
use parking_lot::{Condvar, Mutex};

use crate::backoff::Backoff;
use crate::buffer::{Attributed, DropOldest};
use crate::config::WebhookSinkConfig;
use crate::error::SinkError;
use crate::schema::OutputRecord;
use crate::stats::{Fate, SinkStats};

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

#[derive(Debug)]
struct State {
    /// Encoded records waiting for a batch.
    buffer: DropOldest<Encoded>,
    in_flight: usize,
    /// Sends without waiting for the batch delay (a flush is waiting).
    urgent: bool,
    /// Set by drop: deliver what is possible until the deadline, then stop.
    closing_deadline: Option<Instant>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

/// Posts records to a webhook from a background thread (`nv-sink-http`). `emit` only
/// encodes and buffers, so a slow or down endpoint never blocks the feed's sink thread.
#[derive(Debug)]
pub struct WebhookSink {
    shared: Arc<Shared>,
    stats: SinkStats,
    flush_timeout: Duration,
    worker: Option<JoinHandle<()>>,
}

impl WebhookSink {
    pub fn start(config: WebhookSinkConfig, stats: SinkStats) -> Result<Self, SinkError> {
        config.validate()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                buffer: DropOldest::new(usize::try_from(config.buffer_records).unwrap_or(1)),
                in_flight: 0,
                urgent: false,
                closing_deadline: None,
            }),
            changed: Condvar::new(),
        });
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout()))
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        let flush_timeout = Duration::from_millis(config.flush_timeout_ms);
        let worker = Worker {
            shared: Arc::clone(&shared),
            stats: stats.clone(),
            redacted_url: redact_url(&config.url),
            config,
            agent,
        };
        let handle = std::thread::Builder::new()
            .name("nv-sink-http".into())
            .spawn(move || worker.run())
            .map_err(|source| SinkError::Spawn {
                what: "webhook sink thread".into(),
                source,
            })?;
        stats.set_connected(true);
        Ok(Self {
            shared,
            stats,
            flush_timeout,
            worker: Some(handle),
        })
    }

    pub fn stats(&self) -> &SinkStats {
        &self.stats
    }

    /// Waits until everything buffered was handled or `timeout` passed.
    fn drain(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.state.lock();
        st.urgent = true;
        self.shared.changed.notify_all();
        crate::wait::wait_until(&self.shared.changed, &mut st, deadline, |s| {
            s.buffer.is_empty() && s.in_flight == 0
        });
        st.urgent = false;
        st.buffer.is_empty() && st.in_flight == 0
    }
}

impl OutputSink for WebhookSink {
    fn emit(&mut self, output: SharedOutput) {
        let Some((_, json)) = OutputRecord::encode_for_sink(&output, &self.stats, "webhook", false)
        else {
            return;
        };
        let mut st = self.shared.state.lock();
        let feed = output.feed_id;
        st.buffer.push_back(Encoded { feed, json }, &self.stats);
        self.stats.set_buffered(st.buffer.len() + st.in_flight);
        self.shared.changed.notify_all();
    }

    fn flush(&mut self) {
        if !self.drain(self.flush_timeout) {
            tracing::warn!(
                buffered = self.stats.snapshot().buffered,
                "webhook sink: flush timed out with records still buffered"
            );
        }
    }
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        {
            let mut st = self.shared.state.lock();
            st.closing_deadline = Some(Instant::now() + self.flush_timeout);
            st.urgent = true;
            self.shared.changed.notify_all();
        }
        if let Some(h) = self.worker.take() {
            if h.join().is_err() {
                tracing::warn!("webhook sink thread panicked");
            }
        }
    }
}

/// What one POST attempt came to.
enum Attempt {
    Delivered,
    Retry(String),
    Reject(String),
}

struct Worker {
    shared: Arc<Shared>,
    stats: SinkStats,
    config: WebhookSinkConfig,
    redacted_url: String,
    agent: ureq::Agent,
}

impl Worker {
    fn run(self) {
        let batch_max = usize::try_from(self.config.batch_max_records).unwrap_or(1);
        let batch_delay = Duration::from_millis(self.config.batch_max_delay_ms);
        let mut backoff = Backoff::new(
            Duration::from_millis(self.config.retry_initial_ms),
            Duration::from_millis(self.config.retry_max_ms),
        );
        loop {
            let batch = {
                let mut st = self.shared.state.lock();
                while st.buffer.is_empty() {
                    if st.closing_deadline.is_some() {
                        return;
                    }
                    self.shared.changed.wait(&mut st);
                }
                let window_end = Instant::now() + batch_delay;
                while st.buffer.len() < batch_max && !st.urgent {
                    if self
                        .shared
                        .changed
                        .wait_until(&mut st, window_end)
                        .timed_out()
                    {
                        break;
                    }
                }
                let batch = st.buffer.take_front(batch_max);
                st.in_flight = batch.len();
                batch
            };
            let fate = if self.send_with_retries(&batch, &mut backoff) {
                Fate::Delivered
            } else {
                Fate::Failed
            };
            self.stats
                .count_each(fate, batch.iter().map(Attributed::feed));
            let mut st = self.shared.state.lock();
            st.in_flight = 0;
            if st.closing_deadline.is_some_and(|d| Instant::now() >= d) {
                st.buffer.fail_all(&self.stats);
            }
            self.stats.set_buffered(st.buffer.len());
            self.shared.changed.notify_all();
        }
    }

    fn body(batch: &[Encoded]) -> Vec<u8> {
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

    fn post(&self, body: &[u8]) -> Attempt {
        let mut req = self
            .agent
            .post(&self.config.url)
            .header("Content-Type", "application/json");
        for (name, value) in &self.config.headers {
            req = req.header(name.as_str(), value.expose());
        }
        match req.send(body) {
            Ok(resp) => {
                let status = resp.status().as_u16();
                match status {
                    200..=299 => Attempt::Delivered,
                    408 | 425 | 429 | 500..=599 => Attempt::Retry(format!("status {status}")),
                    _ => Attempt::Reject(format!("status {status}")),
                }
            }
            Err(e) => Attempt::Retry(sanitize_error_string(&e.to_string())),
        }
    }

    /// True when delivered; false when rejected or given up on.
    fn send_with_retries(&self, batch: &[Encoded], backoff: &mut Backoff) -> bool {
        let body = Self::body(batch);
        let mut retries = 0u32;
        loop {
            match self.post(&body) {
                Attempt::Delivered => {
                    backoff.reset();
                    return true;
                }
                Attempt::Reject(why) => {
                    tracing::warn!(url = %self.redacted_url, records = batch.len(), %why, "webhook rejected a batch; not retried");
                    return false;
                }
                Attempt::Retry(why) => {
                    if self.config.max_retries.is_some_and(|max| retries >= max) {
                        tracing::warn!(url = %self.redacted_url, records = batch.len(), %why, retries, "webhook batch failed after retries");
                        return false;
                    }
                    let delay = backoff.next_delay();
                    tracing::debug!(url = %self.redacted_url, %why, delay_ms = delay.as_millis(), "webhook post failed; retrying");
                    if !self.wait_before_retry(delay) {
                        tracing::warn!(url = %self.redacted_url, records = batch.len(), %why, "webhook batch undelivered at shutdown");
                        return false;
                    }
                    retries += 1;
                    self.stats.add_retries(1);
                }
            }
        }
    }

    /// Sleeps `delay` (cut short at the closing deadline); false if the deadline passed.
    fn wait_before_retry(&self, delay: Duration) -> bool {
        let mut st = self.shared.state.lock();
        let until = Instant::now() + delay;
        loop {
            if let Some(d) = st.closing_deadline {
                if Instant::now() >= d {
                    return false;
                }
            }
            let wake = st.closing_deadline.map_or(until, |d| d.min(until));
            if Instant::now() >= until {
                return true;
            }
            let _ = self.shared.changed.wait_until(&mut st, wake);
        }
    }
}
