//! Health events as data: the versioned JSON record of a [`HealthEvent`].
//!
//! Layout (see `SCHEMA.md`, JSON Schema `schema/health-v1.schema.json`): a fixed envelope
//! (`schema_version`, `record` = `"health"`, `id`, `wall_micros`, `event`, `severity`,
//! `feed_id`, `message`) plus `data`, the event's own fields. Every value is plain data:
//! numbers carry their unit in the field name, enums are snake_case strings, errors are
//! `{kind, message}` with the whole cause chain, and no Rust `Debug` text appears.

use nv_core::error::{cause_chain, MediaError, StageError};
use nv_core::health::{HealthEvent, StopReason};
use nv_core::time::WallTs;
use serde_json::{json, Map, Value};

/// Version of the health record layout.
pub const HEALTH_SCHEMA_VERSION: u32 = 1;

/// The JSON Schema (draft 2020-12) of health records, version 1.
pub const HEALTH_SCHEMA_V1: &str = include_str!("../schema/health-v1.schema.json");

/// How much attention an event deserves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }
}

fn media(e: &MediaError) -> Value {
    json!({ "kind": e.failure_kind().as_str(), "message": cause_chain(e) })
}

fn stage_error(e: &StageError) -> Value {
    json!({ "kind": "stage_error", "message": cause_chain(e) })
}

fn stop(reason: &StopReason) -> Value {
    let mut v = json!({ "code": reason.code(), "message": reason.to_string() });
    match reason {
        StopReason::RestartLimitExceeded {
            restart_count,
            cause,
        } => {
            v["restart_count"] = json!(restart_count);
            v["cause"] = json!(cause);
        }
        StopReason::SourceFailed { kind, cause } => {
            v["kind"] = json!(kind.as_str());
            v["cause"] = json!(cause);
        }
        StopReason::Fatal { detail } => v["cause"] = json!(detail),
        _ => {}
    }
    v
}

/// Severity, one-line message and the event's own fields.
pub fn describe(event: &HealthEvent) -> (Severity, String, Value) {
    use HealthEvent as E;
    use Severity::{Error, Info, Warning};
    match event {
        E::SourceConnected { .. } => (Info, "source connected".into(), json!({})),
        E::SourceDisconnected { reason, .. } => (
            Warning,
            format!("source disconnected: {}", cause_chain(reason)),
            json!({ "error": media(reason) }),
        ),
        E::SourceReconnecting {
            attempt, delay_ms, ..
        } => (
            Info,
            format!("reconnecting: attempt {attempt} in {delay_ms} ms"),
            json!({ "attempt": attempt, "delay_ms": delay_ms }),
        ),
        E::SourceStalled { silent_for_ms, .. } => (
            Warning,
            format!("source stalled: no frame for {silent_for_ms} ms"),
            json!({ "silent_for_ms": silent_for_ms }),
        ),
        E::SourceEos { .. } => (Info, "end of stream".into(), json!({})),
        E::InsecureRtspSource { redacted_url, .. } => (
            Warning,
            format!("RTSP source without TLS: {redacted_url}"),
            json!({ "url": redacted_url }),
        ),
        E::DecodeDecision {
            outcome,
            preference,
            fallback_active,
            fallback_reason,
            detail,
            ..
        } => (
            Info,
            format!("decoding with {detail} ({outcome}, preference {preference})"),
            json!({
                "outcome": outcome.to_string(),
                "preference": preference.to_string(),
                "fallback_active": fallback_active,
                "fallback_reason": fallback_reason,
                "decoder": detail,
            }),
        ),
        E::PtsDiscontinuity {
            previous_pts_nanos,
            new_pts_nanos,
            ..
        } => (
            Warning,
            format!("timestamp discontinuity: {previous_pts_nanos} ns to {new_pts_nanos} ns"),
            json!({ "previous_pts_nanos": previous_pts_nanos, "new_pts_nanos": new_pts_nanos }),
        ),
        E::StageError {
            stage_id,
            error,
            count,
            ..
        } => (
            Warning,
            format!("{count} stage errors; latest: {}", cause_chain(error)),
            json!({ "stage": stage_id.as_str(), "error": stage_error(error), "count": count }),
        ),
        E::StagePanic { stage_id, .. } => (
            Error,
            format!("stage {stage_id} panicked"),
            json!({ "stage": stage_id.as_str() }),
        ),
        E::StageStalled {
            stage_id,
            running_for_ms,
            ..
        } => (
            Warning,
            format!("stage {stage_id} stuck in one call for {running_for_ms} ms"),
            json!({ "stage": stage_id.as_str(), "running_for_ms": running_for_ms }),
        ),
        E::FeedRestarting {
            restart_count,
            delay_ms,
            ..
        } => (
            Warning,
            format!("restarting (restart {restart_count}) in {delay_ms} ms"),
            json!({ "restart_count": restart_count, "delay_ms": delay_ms }),
        ),
        E::FeedStopped { reason, .. } => (
            if reason.is_failure() { Error } else { Info },
            format!("feed stopped: {reason}"),
            json!({ "reason": stop(reason) }),
        ),
        E::BackpressureDrop {
            reason,
            frames_dropped,
            ..
        } => (
            Warning,
            format!("{frames_dropped} frames dropped ({reason})"),
            json!({ "reason": reason.as_str(), "frames_dropped": frames_dropped }),
        ),
        E::FrameLag {
            frame_age_ms,
            frames_lagged,
            ..
        } => (
            Warning,
            format!("{frames_lagged} frames late, up to {frame_age_ms} ms"),
            json!({ "frame_age_ms": frame_age_ms, "frames_lagged": frames_lagged }),
        ),
        E::ViewEpochChanged { epoch, reason, .. } => (
            Info,
            format!("view epoch {epoch}: {reason}"),
            json!({ "epoch": epoch, "reason": reason }),
        ),
        E::ViewDegraded {
            stability_score,
            reason,
            frames,
            ..
        } => (
            Warning,
            format!("view degraded for {frames} frames: {reason}"),
            json!({ "stability_score": stability_score, "reason": reason, "frames": frames }),
        ),
        E::ViewCompensationApplied { epoch, count, .. } => (
            Info,
            format!("{count} view compensations in epoch {epoch}"),
            json!({ "epoch": epoch, "count": count }),
        ),
        E::OutputLagged { messages_lost } => (
            Warning,
            format!("output subscribers missed {messages_lost} outputs"),
            json!({ "messages_lost": messages_lost }),
        ),
        E::SinkPanic { .. } => (Error, "output sink panicked".into(), json!({})),
        E::SinkTimeout { .. } => (
            Error,
            "output sink did not finish in time and was detached".into(),
            json!({}),
        ),
        E::SinkDeliveryLoss {
            sink,
            failed,
            dropped,
            ..
        } => (
            Warning,
            format!("sink {sink} lost records: {failed} failed, {dropped} dropped"),
            json!({ "sink": sink, "failed": failed, "dropped": dropped }),
        ),
        E::SinkStalled { blocked_for_ms, .. } => (
            Warning,
            format!("sink has blocked the feed for {blocked_for_ms} ms"),
            json!({ "blocked_for_ms": blocked_for_ms }),
        ),
        E::SinkBackpressure {
            outputs_dropped, ..
        } => (
            Warning,
            format!("{outputs_dropped} outputs dropped at the sink queue"),
            json!({ "outputs_dropped": outputs_dropped }),
        ),
        E::TrackAdmissionRejected { rejected_count, .. } => (
            Warning,
            format!("{rejected_count} new tracks rejected by retention limits"),
            json!({ "rejected_count": rejected_count }),
        ),
        E::BatchError {
            processor_id,
            batch_size,
            error,
            count,
        } => (
            Error,
            format!("batch processor {processor_id} failed {count} times; latest: {}", cause_chain(error)),
            json!({ "processor": processor_id.as_str(), "batch_size": batch_size, "error": stage_error(error), "count": count }),
        ),
        E::BatchSubmissionRejected {
            processor_id,
            dropped_count,
            ..
        } => (
            Warning,
            format!("{dropped_count} frames rejected by batch processor {processor_id}"),
            json!({ "processor": processor_id.as_str(), "dropped_count": dropped_count }),
        ),
        E::BatchTimeout {
            processor_id,
            timed_out_count,
            ..
        } => (
            Warning,
            format!("{timed_out_count} frames timed out in batch processor {processor_id}"),
            json!({ "processor": processor_id.as_str(), "timed_out_count": timed_out_count }),
        ),
        E::BatchInFlightExceeded {
            processor_id,
            rejected_count,
            ..
        } => (
            Warning,
            format!("{rejected_count} frames over the in-flight limit of batch processor {processor_id}"),
            json!({ "processor": processor_id.as_str(), "rejected_count": rejected_count }),
        ),
        E::ResidencyDowngrade {
            requested,
            effective,
            ..
        } => (
            Warning,
            format!("frame residency {requested} downgraded to {effective}"),
            json!({ "requested": requested, "effective": effective }),
        ),
        E::SourceAccessDenied {
            error, retry_in_ms, ..
        } => (
            Error,
            format!(
                "source refused access: {}; next try in {retry_in_ms} ms",
                cause_chain(error)
            ),
            json!({ "error": media(error), "retry_in_ms": retry_in_ms }),
        ),
        E::FeedAdded { name, .. } => (
            Info,
            format!("feed added: {name}"),
            json!({ "name": name }),
        ),
        E::FeedRemoved { .. } => (Info, "feed removed".into(), json!({})),
        E::FeedPaused { .. } => (Info, "feed paused".into(), json!({})),
        E::FeedResumed { .. } => (Info, "feed resumed".into(), json!({})),
        E::FeedConfigChanged { detail, .. } => (
            Info,
            format!("feed configuration changed: {detail}"),
            json!({ "detail": detail }),
        ),
        other => (Info, other.name().replace('_', " "), json!({})),
    }
}

/// The versioned JSON record of `event`; `id` is the publisher's sequence number (SSE
/// `id:`), `wall` when it was published.
pub fn health_record(event: &HealthEvent, id: Option<u64>, wall: WallTs) -> Value {
    let (severity, message, data) = describe(event);
    let mut record = Map::new();
    record.insert("schema_version".into(), json!(HEALTH_SCHEMA_VERSION));
    record.insert("record".into(), json!("health"));
    record.insert("id".into(), json!(id));
    record.insert(
        "wall_micros".into(),
        json!(wall.is_known().then(|| wall.as_micros())),
    );
    record.insert("event".into(), json!(event.name()));
    record.insert("severity".into(), json!(severity.as_str()));
    record.insert(
        "feed_id".into(),
        json!(event.feed_id().map(nv_core::FeedId::as_u64)),
    );
    record.insert("message".into(), json!(message));
    record.insert("data".into(), data);
    Value::Object(record)
}

/// Most feed names a [`HealthEncoder`] remembers (a feed beyond it is written without name).
const MAX_FEED_NAMES: usize = 65_536;

/// Turns the runtime's health events into the records the sinks that select `health`
/// receive: numbered from 1 in publication order (`id`), with the feed's name (`feed`,
/// 1.3) learnt from its `feed_added` event, and an `idempotency_key` (1.3) unique also
/// across runs (`"{run}:health:{id}"`, `run` 16 hex digits random per encoder) that
/// JetStream's `Nats-Msg-Id` and Kafka's `nv-idempotency-key` carry too.
#[derive(Debug)]
pub struct HealthEncoder {
    run: u64,
    next_id: u64,
    names: std::collections::HashMap<nv_core::FeedId, std::sync::Arc<str>>,
}

impl Default for HealthEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl HealthEncoder {
    pub fn new() -> Self {
        use std::hash::{BuildHasher as _, Hasher as _};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        if let Ok(since) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            h.write_u128(since.as_nanos());
        }
        Self::with_run(h.finish())
    }

    /// An encoder whose keys start with `run` (tests pin it).
    pub fn with_run(run: u64) -> Self {
        Self {
            run,
            next_id: 1,
            names: std::collections::HashMap::new(),
        }
    }

    /// The next record, published at `wall`.
    pub fn encode(&mut self, event: &HealthEvent, wall: WallTs) -> nv_io::HealthOutput {
        let feed_id = event.feed_id();
        if let (HealthEvent::FeedAdded { name, .. }, Some(id)) = (event, feed_id) {
            if self.names.len() < MAX_FEED_NAMES || self.names.contains_key(&id) {
                self.names.insert(id, std::sync::Arc::from(name.as_str()));
            }
        }
        let feed_name = feed_id.and_then(|id| self.names.get(&id).cloned());
        if let (HealthEvent::FeedRemoved { .. }, Some(id)) = (event, feed_id) {
            self.names.remove(&id);
        }
        let id = self.next_id;
        self.next_id += 1;
        let key = format!("{:016x}:health:{id}", self.run);
        let mut record = health_record(event, Some(id), wall);
        if let Value::Object(map) = &mut record {
            map.insert("feed".into(), json!(feed_name.as_deref()));
            map.insert("idempotency_key".into(), json!(key));
        }
        nv_io::HealthOutput {
            feed_id,
            feed_name,
            event: event.name(),
            key,
            // Events carry redacted URLs already; this guards the transports against a
            // detail that slipped through (a backend's message quoting a URL).
            json: nv_core::security::redact_urls_in_string(&record.to_string())
                .into_bytes()
                .into(),
        }
    }
}
