//! NATS sink on async-nats, driven by a private runtime thread.
//!
//! Records wait in the sink's own bounded buffer and are published only while the client
//! reports a live connection, in batches of up to `max_in_flight`. With JetStream, a
//! record counts as delivered when the server acknowledges it; a batch that is not fully
//! acknowledged goes back, unacknowledged part first, to the front of the buffer and is
//! published again after a backoff, with `Nats-Msg-Id` = idempotency key so the server
//! discards copies it already stored. Core NATS has no acknowledgements: a batch counts as
//! delivered when the client flushed it to the server, and as failed (never re-sent, to
//! avoid duplicates) when that flush does not complete within `ack_timeout_ms`.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::{Client, ConnectOptions, Event, HeaderMap};
use nv_core::id::FeedId;
use nv_core::security::{redact_url, sanitize_error_string};
use nv_io::{OutputSink, SharedOutput};
use parking_lot::{Condvar, Mutex};
use tokio::sync::Notify;

use crate::backoff::Backoff;
use crate::buffer::{Attributed, DropOldest};
use crate::config::NatsSinkConfig;
use crate::error::SinkError;
use crate::schema::OutputRecord;
use crate::stats::{Fate, SinkStats};
use crate::template::{expand, EVENT_OUTPUTS};

#[derive(Debug)]
struct Pending {
    feed: FeedId,
    subject: String,
    key: String,
    payload: Vec<u8>,
}

impl Attributed for Pending {
    fn feed(&self) -> FeedId {
        self.feed
    }
}

#[derive(Debug)]
struct State {
    buffer: DropOldest<Pending>,
    /// Feeds of the records being published right now.
    in_flight: Vec<FeedId>,
    connected: bool,
    ever_connected: bool,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    wake: Notify,
    shutdown: Notify,
}

/// Publishes records to NATS (core or JetStream). See the module docs.
#[derive(Debug)]
pub struct NatsSink {
    shared: Arc<Shared>,
    stats: SinkStats,
    subject: String,
    flush_timeout: Duration,
    thread: Option<JoinHandle<()>>,
}

impl NatsSink {
    pub fn start(config: NatsSinkConfig, stats: SinkStats) -> Result<Self, SinkError> {
        config.validate()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                buffer: DropOldest::new(usize::try_from(config.buffer_records).unwrap_or(1)),
                in_flight: Vec::new(),
                connected: false,
                ever_connected: false,
            }),
            changed: Condvar::new(),
            wake: Notify::new(),
            shutdown: Notify::new(),
        });
        let driver = Driver {
            shared: Arc::clone(&shared),
            stats: stats.clone(),
            redacted_url: redact_url(&config.url),
            config: config.clone(),
        };
        let thread = crate::rt::spawn("nv-sink-nats", move || driver.run())?;
        Ok(Self {
            shared,
            stats,
            subject: config.subject,
            flush_timeout: Duration::from_millis(config.flush_timeout_ms),
            thread: Some(thread),
        })
    }

    pub fn stats(&self) -> &SinkStats {
        &self.stats
    }

    fn drain(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.state.lock();
        crate::wait::wait_until(&self.shared.changed, &mut st, deadline, |s| {
            s.buffer.is_empty() && s.in_flight.is_empty()
        })
    }
}

impl OutputSink for NatsSink {
    fn emit(&mut self, output: SharedOutput) {
        let Some((record, payload)) =
            OutputRecord::encode_for_sink(&output, &self.stats, "nats", false)
        else {
            return;
        };
        let subject = expand(&self.subject, record.feed_id, EVENT_OUTPUTS);
        {
            let mut st = self.shared.state.lock();
            st.buffer.push_back(
                Pending {
                    feed: output.feed_id,
                    subject,
                    key: record.idempotency_key,
                    payload,
                },
                &self.stats,
            );
            self.stats
                .set_buffered(st.buffer.len() + st.in_flight.len());
        }
        self.shared.wake.notify_one();
    }

    fn flush(&mut self) {
        if !self.drain(self.flush_timeout) {
            tracing::warn!(
                buffered = self.stats.snapshot().buffered,
                "nats sink: flush timed out with records still buffered"
            );
        }
    }
}

impl Drop for NatsSink {
    fn drop(&mut self) {
        self.drain(self.flush_timeout);
        self.shared.shutdown.notify_one();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::warn!("nats sink thread panicked");
            }
        }
        let mut st = self.shared.state.lock();
        st.buffer.fail_all(&self.stats);
        let in_flight = std::mem::take(&mut st.in_flight);
        self.stats.count_each(Fate::Failed, in_flight);
        self.stats.set_buffered(0);
        self.stats.set_connected(false);
    }
}

struct Driver {
    shared: Arc<Shared>,
    stats: SinkStats,
    config: NatsSinkConfig,
    redacted_url: String,
}

impl Driver {
    fn options(&self) -> ConnectOptions {
        let base = match &self.config.token {
            Some(t) => ConnectOptions::with_token(t.expose().to_owned()),
            None => ConnectOptions::new(),
        };
        let initial = self.config.reconnect_initial_ms.max(1);
        let max = self.config.reconnect_max_ms.max(initial);
        let shared = Arc::clone(&self.shared);
        let stats = self.stats.clone();
        let url = self.redacted_url.clone();
        base.retry_on_initial_connect()
            .max_reconnects(None)
            .reconnect_delay_callback(move |attempts| {
                let shift = u32::try_from(attempts.saturating_sub(1).min(20)).unwrap_or(20);
                Duration::from_millis(initial.saturating_mul(1u64 << shift).min(max))
            })
            .event_callback(move |event| {
                let shared = Arc::clone(&shared);
                let stats = stats.clone();
                let url = url.clone();
                async move { on_event(&shared, &stats, &url, event) }
            })
    }

    async fn run(self) {
        let client = tokio::select! {
            () = self.shared.shutdown.notified() => return,
            c = self.options().connect(self.config.url.as_str()) => match c {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(url = %self.redacted_url, error = %sanitize_error_string(&e.to_string()), "nats sink could not start its client");
                    return;
                }
            },
        };
        let mut js = jetstream::new(client.clone());
        js.set_timeout(self.config.ack_timeout());
        let mut backoff = Backoff::new(
            Duration::from_millis(self.config.reconnect_initial_ms),
            Duration::from_millis(self.config.reconnect_max_ms),
        );
        let max = usize::from(self.config.max_in_flight);
        loop {
            let batch = {
                let mut st = self.shared.state.lock();
                if st.connected && !st.buffer.is_empty() {
                    let batch = st.buffer.take_front(max);
                    st.in_flight = batch.iter().map(Attributed::feed).collect();
                    Some(batch)
                } else {
                    None
                }
            };
            let Some(batch) = batch else {
                tokio::select! {
                    () = self.shared.shutdown.notified() => break,
                    () = self.shared.wake.notified() => continue,
                }
            };
            let failed_part = if self.config.jetstream {
                self.publish_jetstream(&js, batch).await
            } else {
                self.publish_core(&client, batch).await;
                Vec::new()
            };
            let retry = !failed_part.is_empty();
            {
                let mut st = self.shared.state.lock();
                st.in_flight.clear();
                if retry {
                    self.stats
                        .add_retries(u64::try_from(failed_part.len()).unwrap_or(u64::MAX));
                    st.buffer
                        .requeue_front(failed_part.into_iter(), &self.stats);
                }
                self.stats.set_buffered(st.buffer.len());
                self.shared.changed.notify_all();
            }
            if retry {
                tokio::select! {
                    () = self.shared.shutdown.notified() => break,
                    () = tokio::time::sleep(backoff.next_delay()) => {}
                }
            } else {
                backoff.reset();
            }
        }
        if let Err(e) = tokio::time::timeout(self.config.ack_timeout(), client.flush()).await {
            tracing::debug!(error = %e, "nats sink: final flush timed out");
        }
    }

    async fn publish_core(&self, client: &Client, batch: Vec<Pending>) {
        let n = batch.len();
        let feeds: Vec<FeedId> = batch.iter().map(Attributed::feed).collect();
        for p in batch {
            if let Err(e) = client.publish(p.subject, p.payload.into()).await {
                tracing::warn!(url = %self.redacted_url, error = %sanitize_error_string(&e.to_string()), "nats sink: publish failed");
            }
        }
        match tokio::time::timeout(self.config.ack_timeout(), client.flush()).await {
            Ok(Ok(())) => self.stats.count_each(Fate::Delivered, feeds),
            Ok(Err(e)) => {
                self.stats.count_each(Fate::Failed, feeds);
                tracing::warn!(url = %self.redacted_url, records = n, error = %sanitize_error_string(&e.to_string()), "nats sink: flush failed; records unconfirmed");
            }
            Err(_) => {
                self.stats.count_each(Fate::Failed, feeds);
                tracing::warn!(url = %self.redacted_url, records = n, "nats sink: flush timed out; records unconfirmed");
            }
        }
    }

    /// Publishes and awaits acknowledgements in order; returns the records from the
    /// first unacknowledged one on, to be sent again.
    async fn publish_jetstream(
        &self,
        js: &jetstream::Context,
        batch: Vec<Pending>,
    ) -> Vec<Pending> {
        let mut acks = Vec::with_capacity(batch.len());
        for p in &batch {
            let mut headers = HeaderMap::new();
            headers.insert("Nats-Msg-Id", p.key.as_str());
            match js
                .publish_with_headers(p.subject.clone(), headers, p.payload.clone().into())
                .await
            {
                Ok(ack) => acks.push(ack),
                Err(e) => {
                    tracing::debug!(error = %sanitize_error_string(&e.to_string()), "nats sink: jetstream publish failed");
                    break;
                }
            }
        }
        let mut done = 0usize;
        for ack in acks {
            match ack.await {
                Ok(_) => done += 1,
                Err(e) => {
                    tracing::warn!(url = %self.redacted_url, error = %sanitize_error_string(&e.to_string()), "nats sink: jetstream publish not acknowledged; will retry");
                    break;
                }
            }
        }
        self.stats.count_each(
            Fate::Delivered,
            batch.iter().take(done).map(Attributed::feed),
        );
        batch.into_iter().skip(done).collect()
    }
}

fn on_event(shared: &Shared, stats: &SinkStats, url: &str, event: Event) {
    match event {
        Event::Connected => {
            {
                let mut st = shared.state.lock();
                st.connected = true;
                if st.ever_connected {
                    stats.add_reconnect();
                }
                st.ever_connected = true;
            }
            stats.set_connected(true);
            tracing::info!(url, "nats sink connected");
            shared.wake.notify_one();
        }
        Event::Disconnected => {
            shared.state.lock().connected = false;
            stats.set_connected(false);
            shared.changed.notify_all();
            tracing::warn!(url, "nats sink lost its server; buffering");
        }
        other => {
            tracing::debug!(url, event = %sanitize_error_string(&other.to_string()), "nats sink event");
        }
    }
}
