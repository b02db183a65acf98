//! JSON views of diagnostics and health events for the API.

use nv_core::feed_state::{FeedState, LastError};
use nv_core::metrics::HistogramSnapshot;
use nv_core::time::WallTs;
use nv_runtime::{FeedDiagnostics, RuntimeDiagnostics};
use serde_json::{json, Value};

fn latency(h: &HistogramSnapshot) -> Value {
    let us = |q: f64| u64::try_from(h.quantile(q).as_micros()).unwrap_or(u64::MAX);
    json!({ "count": h.count, "p50_micros": us(0.5), "p99_micros": us(0.99), "max_micros": h.max_nanos / 1_000 })
}

fn micros(t: WallTs) -> Value {
    json!(t.is_known().then(|| t.as_micros()))
}

/// `{name, ...}`: the state's name plus what belongs to it.
pub fn state(s: &FeedState) -> Value {
    let mut v = json!({ "name": s.name() });
    match s {
        FeedState::Reconnecting {
            attempt,
            next_try_at,
        } => {
            v["attempt"] = json!(attempt);
            v["next_try_at_micros"] = micros(*next_try_at);
        }
        FeedState::Failed { kind, cause } => {
            v["kind"] = json!(kind.as_str());
            v["cause"] = json!(cause);
        }
        FeedState::Stopped { reason } => {
            v["reason"] = json!(reason.code());
        }
        _ => {}
    }
    v
}

pub fn last_error(e: &LastError) -> Value {
    json!({
        "kind": e.kind.as_str(),
        "message": e.message,
        "first_at_micros": micros(e.first_at),
        "last_at_micros": micros(e.last_at),
        "count": e.count,
    })
}

pub fn feed(d: &FeedDiagnostics) -> Value {
    let m = &d.metrics;
    let drops: serde_json::Map<String, Value> = nv_core::DropReason::ALL
        .iter()
        .map(|r| (r.as_str().to_owned(), json!(m.dropped(*r))))
        .collect();
    json!({
        "id": d.feed_id.as_u64(),
        "name": d.name,
        "source": d.source,
        "alive": d.alive,
        "paused": d.paused,
        "uptime_secs": d.uptime.as_secs_f64(),
        "stop_reason": d.stop_reason.as_ref().map(ToString::to_string),
        "state": state(&d.state),
        "last_error": d.last_error.as_ref().map(last_error),
        "metrics": {
            "frames_received": m.frames_received,
            "frames_sampled_out": m.frames_sampled_out,
            "frames_processed": m.frames_processed,
            "frames_dropped": m.frames_dropped(),
            "drops": drops,
            "outputs_to_sink": m.outputs_to_sink,
            "restarts": m.restarts,
            "tracks_active": m.tracks_active,
            "view_epoch": m.view_epoch,
        },
        "queues": {
            "source_depth": d.queues.source_depth,
            "source_capacity": d.queues.source_capacity,
            "sink_depth": d.queues.sink_depth,
            "sink_capacity": d.queues.sink_capacity,
        },
        "latency": {
            "receive_to_output": latency(&d.receive_to_output),
            "receive_to_sink": latency(&d.receive_to_sink),
            "queue_hold": latency(&d.queue_hold),
        },
        "stages": d.stages.iter().map(|s| json!({
            "id": s.stage_id.as_str(),
            "processed": s.metrics.frames_processed,
            "errors": s.metrics.errors,
            "panics": s.metrics.panics,
            "latency": latency(&s.latency),
        })).collect::<Vec<_>>(),
        "decode": d.decode.as_ref().map(|s| json!({ "outcome": s.outcome.to_string(), "detail": s.detail })),
    })
}

pub fn runtime(d: &RuntimeDiagnostics) -> Value {
    json!({
        "uptime_secs": d.uptime.as_secs_f64(),
        "feed_count": d.feed_count,
        "max_feeds": d.max_feeds,
        "output_messages_lost": d.output_messages_lost,
        "detached_threads": d.detached_threads,
        "feeds": d.feeds.iter().map(feed).collect::<Vec<_>>(),
        "batches": d.batches.iter().map(|b| json!({
            "processor": b.processor_id.as_str(),
            "dispatched": b.batches_dispatched,
            "items_processed": b.items_processed,
            "items_rejected": b.items_rejected,
            "items_timed_out": b.items_timed_out,
            "avg_fill_ratio": b.avg_fill_ratio(),
        })).collect::<Vec<_>>(),
    })
}
