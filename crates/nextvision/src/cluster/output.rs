//! A cluster node's output path. Besides the feed's own sinks, every record of a feed this
//! node owns goes to the fleet's JetStream streams: frame records to
//! `<prefix>.out.<feed>` (stream `<prefix>-out`), event records to
//! `<prefix>.events.<feed>` (stream `<prefix>-events`), through one NATS sink per node in
//! JetStream mode (`Nats-Msg-Id` = the record's idempotency key). Everything passes the
//! feed's [`Fence`] first: a record is stamped with the lease's fencing token, or dropped
//! and counted once the lease can no longer be proven.
//!
//! A feed that moved here from another node reports the handover once its first output
//! passes the fence: a `cluster_handover` health record on the feed's events subject with
//! the previous owner, the last frame the stream holds from before (its fence, sequence,
//! session and capture time, read when the lease was taken) and this node's first one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use nv_cluster::{Fence, KvError, NatsKv, PreviousOwner};
use nv_runtime::{OutputSink, SharedOutput};
use nv_sinks::{NatsSink, NatsSinkConfig, Records, SharedSink, SinkStats};
use serde_json::{json, Value};

use crate::config::ClusterSection;

/// Handover reports waiting to be published; beyond this they are dropped and counted
/// (each is one small record per feed move).
const REPORT_QUEUE: usize = 256;

/// Records the node's publisher holds while a stream has no leader (one of the NATS
/// servers lost: its streams elect new leaders within seconds, longer on a busy machine).
/// One node runs many feeds, each with frame and event records at its frame rate: the
/// sinks' default (1,000) lasted under 2 s for 32 feeds at 5 fps, and the oldest beyond it
/// are dropped (counted). Records are a few hundred bytes to a few kB.
const PUBLISH_BUFFER_RECORDS: u32 = 50_000;

/// Publish attempts per report, and the pause between two (each attempt is bounded by the
/// store's request timeout).
const PUBLISH_ATTEMPTS: u32 = 6;
const PUBLISH_RETRY_DELAY: Duration = Duration::from_secs(1);

pub fn out_stream(prefix: &str) -> String {
    format!("{prefix}-out")
}
pub fn events_stream(prefix: &str) -> String {
    format!("{prefix}-events")
}
pub fn out_subject(prefix: &str, feed: &str) -> String {
    format!("{prefix}.out.{feed}")
}
pub fn events_subject(prefix: &str, feed: &str) -> String {
    format!("{prefix}.events.{feed}")
}

/// A feed name is one or more subject tokens: no empty token.
pub fn subject_safe_feed(feed: &str) -> bool {
    !feed.is_empty() && feed.split('.').all(|t| !t.is_empty())
}

/// Creates the two streams unless they exist.
pub fn ensure_streams(kv: &NatsKv, cl: &ClusterSection) -> Result<(), KvError> {
    let p = &cl.bucket_prefix;
    let max_age = nv_core::limits::saturating_secs(cl.stream_max_age_secs);
    kv.ensure_stream(
        &out_stream(p),
        vec![format!("{p}.out.>")],
        cl.replicas,
        max_age,
    )?;
    kv.ensure_stream(
        &events_stream(p),
        vec![format!("{p}.events.>")],
        cl.replicas,
        max_age,
    )
}

/// Fences kept per feed for the publish gate: a record still buffered when its feed
/// changed owner several times over is withheld.
const FENCES_PER_FEED: usize = 4;

/// The fences of the feeds this node ran lately, by feed name; the publisher's gate looks
/// a record's fence up here right before publishing it.
#[derive(Clone, Default)]
pub struct FenceRegistry(
    Arc<parking_lot::Mutex<std::collections::BTreeMap<String, Vec<Arc<Fence>>>>>,
);

impl FenceRegistry {
    pub fn insert(&self, feed: &str, fence: &Arc<Fence>) {
        let mut map = self.0.lock();
        let list = map.entry(feed.to_owned()).or_default();
        list.retain(|f| f.token() != fence.token());
        list.push(Arc::clone(fence));
        if list.len() > FENCES_PER_FEED {
            list.remove(0);
        }
    }

    /// Whether a record of `feed` stamped `token` may be published now: its lease is
    /// still held, or was given up on purpose. Records without a feed name or token (not
    /// produced by this node's cluster feeds) pass.
    pub fn admits(&self, feed: Option<&str>, token: Option<u64>) -> bool {
        let (Some(feed), Some(token)) = (feed, token) else {
            return true;
        };
        self.0.lock().get(feed).is_some_and(|list| {
            list.iter()
                .any(|f| f.token() == token && f.may_deliver(Instant::now()))
        })
    }
}

/// The node's one JetStream publisher, shared by every feed it runs; it withholds records
/// whose lease `fences` no longer proves.
pub fn publisher(cl: &ClusterSection, fences: FenceRegistry) -> anyhow::Result<SharedSink> {
    let p = &cl.bucket_prefix;
    let mut config = NatsSinkConfig::new(cl.nats_urls.join(","));
    config.jetstream = true;
    config.creds_file.clone_from(&cl.creds_file);
    config.subject = format!("{p}.out.{{name}}");
    config.events_subject = Some(format!("{p}.events.{{name}}"));
    config.records = Records {
        frames: true,
        events: true,
        health: false,
    };
    config.buffer_records = PUBLISH_BUFFER_RECORDS;
    let stats = SinkStats::new();
    let gate: nv_sinks::PublishGate = Arc::new(move |feed, token| fences.admits(feed, token));
    let sink =
        NatsSink::start_gated(config, stats.clone(), Some(gate)).context("cluster publisher")?;
    Ok(SharedSink::new("cluster", Box::new(sink), stats))
}

/// The last frame record of a feed in the out stream, as far as a handover report needs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LastPublished {
    pub fence: Option<u64>,
    pub frame_seq: u64,
    pub session: u32,
    pub wall_micros: Option<u64>,
}

/// Reads the feed's last frame record (one direct request).
pub fn last_published(
    kv: &NatsKv,
    prefix: &str,
    feed: &str,
) -> Result<Option<LastPublished>, KvError> {
    let Some(payload) = kv.last_on_subject(&out_stream(prefix), &out_subject(prefix, feed))? else {
        return Ok(None);
    };
    let Ok(v) = serde_json::from_slice::<Value>(&payload) else {
        return Ok(None);
    };
    Ok(Some(LastPublished {
        fence: v["fence"].as_u64(),
        frame_seq: v["frame_seq"].as_u64().unwrap_or(0),
        session: v["session"]
            .as_u64()
            .and_then(|s| u32::try_from(s).ok())
            .unwrap_or(0),
        wall_micros: v["wall_micros"].as_u64(),
    }))
}

/// What a new owner knows when it takes a feed that ran elsewhere before.
#[derive(Clone, Debug)]
pub struct Handover {
    pub feed: String,
    pub node: String,
    pub fence: u64,
    pub previous: Option<PreviousOwner>,
    pub last: Option<LastPublished>,
    /// The stream could not be read when the lease was taken.
    pub last_unknown: bool,
}

/// One handover, ready to report.
pub struct Report {
    handover: Handover,
    feed_id: u64,
    first_seq: u64,
    first_session: u32,
    first_wall_micros: Option<u64>,
}

/// Publishes handover reports on their own thread (a feed's sink thread never waits on
/// the store).
pub struct Reporter {
    tx: Option<mpsc::SyncSender<Report>>,
    thread: Option<JoinHandle<()>>,
    /// Handovers reported (published and acknowledged).
    pub reported: Arc<AtomicU64>,
    /// Reports lost: queue full, or the store did not take them.
    pub lost: Arc<AtomicU64>,
}

impl Reporter {
    pub fn start(kv: Arc<NatsKv>, prefix: String) -> anyhow::Result<Self> {
        let (tx, rx) = mpsc::sync_channel::<Report>(REPORT_QUEUE);
        let reported: Arc<AtomicU64> = Arc::default();
        let lost: Arc<AtomicU64> = Arc::default();
        let thread = {
            let (reported, lost) = (Arc::clone(&reported), Arc::clone(&lost));
            std::thread::Builder::new()
                .name("nv-cluster-gaps".into())
                .spawn(move || {
                    while let Ok(r) = rx.recv() {
                        let record = handover_record(&r);
                        let subject = events_subject(&prefix, &r.handover.feed);
                        let id = format!("handover:{}:{}", r.handover.feed, r.handover.fence);
                        tracing::info!(
                            feed = %r.handover.feed,
                            "cluster: {}",
                            record["message"].as_str().unwrap_or_default()
                        );
                        let bytes = serde_json::to_vec(&record).unwrap_or_default();
                        // The store may be electing a stream leader (a server lost): try
                        // again; the message id makes a repeat harmless.
                        let mut outcome = Err(KvError::Unavailable {
                            detail: "not tried".into(),
                        });
                        for attempt in 0..PUBLISH_ATTEMPTS {
                            if attempt > 0 {
                                std::thread::sleep(PUBLISH_RETRY_DELAY);
                            }
                            outcome = kv.publish(&subject, &id, bytes.clone());
                            if outcome.is_ok() {
                                break;
                            }
                        }
                        match outcome {
                            Ok(()) => reported.fetch_add(1, Ordering::Relaxed),
                            Err(e) => {
                                tracing::warn!(feed = %r.handover.feed, "cluster: handover report not published: {e}");
                                lost.fetch_add(1, Ordering::Relaxed)
                            }
                        };
                    }
                })
                .context("handover reporter thread")?
        };
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
            reported,
            lost,
        })
    }

    pub fn sender(&self) -> Option<mpsc::SyncSender<Report>> {
        self.tx.clone()
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _joined = t.join();
        }
    }
}

fn micros_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The `cluster_handover` health record (see SCHEMA.md).
fn handover_record(r: &Report) -> Value {
    let h = &r.handover;
    let last = h.last.as_ref();
    let prev_wall = last.and_then(|l| l.wall_micros);
    let gap_micros = match (prev_wall, r.first_wall_micros) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    let from = h.previous.as_ref().map_or_else(
        || "an unknown node".to_owned(),
        |p| format!("{} (fence {})", p.node, p.fence),
    );
    let message = match (last, gap_micros) {
        (Some(l), Some(gap)) => format!(
            "feed {} moved from {from} to {} (fence {}): previous last frame {} of session {}, first frame here {} of session {}, {:.3} s apart",
            h.feed,
            h.node,
            h.fence,
            l.frame_seq,
            l.session,
            r.first_seq,
            r.first_session,
            Duration::from_micros(gap).as_secs_f64()
        ),
        (Some(l), None) => format!(
            "feed {} moved from {from} to {} (fence {}): previous last frame {} of session {}, first frame here {} of session {}",
            h.feed, h.node, h.fence, l.frame_seq, l.session, r.first_seq, r.first_session
        ),
        (None, _) if h.last_unknown => format!(
            "feed {} moved from {from} to {} (fence {}): the stream could not be read for its earlier frames; first frame here {} of session {}",
            h.feed, h.node, h.fence, r.first_seq, r.first_session
        ),
        (None, _) => format!(
            "feed {} moved from {from} to {} (fence {}): the stream holds no earlier frame of it; first frame here {} of session {}",
            h.feed, h.node, h.fence, r.first_seq, r.first_session
        ),
    };
    json!({
        "schema_version": nv_sinks::HEALTH_SCHEMA_VERSION,
        "record": "health",
        "id": null,
        "wall_micros": micros_now(),
        "event": "cluster_handover",
        "severity": "info",
        "feed_id": r.feed_id,
        "message": message,
        "data": {
            "feed": h.feed,
            "node": h.node,
            "fence": h.fence,
            "previous_node": h.previous.as_ref().map(|p| p.node.clone()),
            "previous_fence": h.previous.as_ref().map(|p| p.fence),
            "previous_last_unknown": h.last_unknown,
            "previous_last_fence": last.and_then(|l| l.fence),
            "previous_last_frame_seq": last.map(|l| l.frame_seq),
            "previous_last_session": last.map(|l| l.session),
            "previous_last_wall_micros": prev_wall,
            "first_frame_seq": r.first_seq,
            "first_session": r.first_session,
            "first_wall_micros": r.first_wall_micros,
            "gap_micros": gap_micros,
        }
    })
}

/// Publishes only while the feed's lease is provably held, stamping its fencing token.
pub struct FencedSink {
    pub inner: Box<dyn OutputSink>,
    pub fence: Arc<Fence>,
    pub dropped: Arc<AtomicU64>,
    /// Reported with the first output that passes the fence.
    pub handover: Option<(Handover, mpsc::SyncSender<Report>)>,
    pub lost_reports: Arc<AtomicU64>,
}

impl OutputSink for FencedSink {
    fn emit(&mut self, output: SharedOutput) {
        if !self.fence.is_valid(Instant::now()) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if let Some((handover, tx)) = self.handover.take() {
            let report = Report {
                handover,
                feed_id: output.feed_id.as_u64(),
                first_seq: output.frame_seq,
                first_session: output.provenance.session,
                first_wall_micros: match output.wall_ts.as_micros() {
                    0 => None,
                    us => Some(us),
                },
            };
            if tx.try_send(report).is_err() {
                self.lost_reports.fetch_add(1, Ordering::Relaxed);
            }
        }
        let mut stamped = (*output).clone();
        stamped.fence = Some(self.fence.token());
        self.inner.emit(Arc::new(stamped));
    }
    fn flush(&mut self) {
        self.inner.flush();
    }
    fn may_block(&self) -> bool {
        self.inner.may_block()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn handover_records_follow_the_health_schema() {
        let schema: Value = serde_json::from_str(nv_sinks::HEALTH_SCHEMA_V1).unwrap();
        let validator = jsonschema::draft202012::new(&schema).unwrap();
        let report = |previous: Option<PreviousOwner>, last: Option<LastPublished>| Report {
            handover: Handover {
                feed: "cam.1".into(),
                node: "node-b".into(),
                fence: 40,
                previous,
                last,
                last_unknown: false,
            },
            feed_id: 3,
            first_seq: 0,
            first_session: 0,
            first_wall_micros: Some(1_700_000_002_500_000),
        };
        let known = handover_record(&report(
            Some(PreviousOwner {
                node: "node-a".into(),
                fence: 12,
            }),
            Some(LastPublished {
                fence: Some(12),
                frame_seq: 120,
                session: 0,
                wall_micros: Some(1_700_000_000_000_000),
            }),
        ));
        let unknown = handover_record(&report(None, None));
        for r in [&known, &unknown] {
            let errors: Vec<String> = validator.iter_errors(r).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{errors:?}\n{r:#}");
        }
        assert_eq!(known["data"]["gap_micros"], 2_500_000);
        assert_eq!(known["data"]["previous_node"], "node-a");
        assert!(
            known["message"].as_str().unwrap().contains("2.500 s apart"),
            "{known}"
        );
        assert_eq!(unknown["data"]["gap_micros"], Value::Null);
    }

    #[test]
    fn feed_names_with_empty_subject_tokens_are_refused() {
        assert!(subject_safe_feed("cam.1") && subject_safe_feed("door-cam"));
        for bad in ["", ".cam", "cam.", "a..b"] {
            assert!(!subject_safe_feed(bad), "{bad}");
        }
    }
}
