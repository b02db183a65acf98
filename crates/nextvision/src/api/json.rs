//! JSON views of diagnostics and health events for the API.

use nv_core::feed_state::{FeedState, LastError};
use nv_core::time::WallTs;
use nv_metrics::Snapshot;
use nv_runtime::FeedDiagnostics;
use serde_json::{json, Value};

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
        "metrics": nv_metrics::json::feed_metrics(d),
        "stages": d.stages.iter().map(|s| json!({
            "id": s.stage_id.as_str(),
            "metrics": nv_metrics::json::stage_metrics(s),
        })).collect::<Vec<_>>(),
        "decode": d.decode.as_ref().map(|s| json!({ "outcome": s.outcome.to_string(), "detail": s.detail })),
    })
}

/// Runtime-wide diagnostics: every metric of the table, by scope.
pub fn runtime(snap: &Snapshot<'_>) -> Value {
    let d = snap.runtime;
    json!({
        "uptime_secs": d.uptime.as_secs_f64(),
        "feed_count": d.feed_count,
        "max_feeds": d.max_feeds,
        "output_messages_lost": d.output_messages_lost,
        "detached_threads": d.detached_threads,
        "metrics": nv_metrics::json::runtime_metrics(d),
        "health": nv_metrics::json::health_metrics(&snap.health),
        "process": snap.process.as_ref().map(nv_metrics::json::process_metrics),
        "build": snap.build.as_ref().map(nv_metrics::json::build_metrics),
        "feeds": d.feeds.iter().map(feed).collect::<Vec<_>>(),
        "batches": d.batches.iter().map(|b| json!({
            "processor": b.processor_id.as_str(),
            "metrics": nv_metrics::json::batch_metrics(b),
        })).collect::<Vec<_>>(),
    })
}

/// `GET /api/v1/feeds/{name}/analytics`: counts from the feed's events.
pub fn analytics(d: &FeedDiagnostics) -> Value {
    let a = &d.analytics;
    let names = d.class_names.as_deref();
    json!({
        "feed_id": d.feed_id.as_u64(),
        "feed": d.name,
        "events": a.events,
        "zones": a.zones.iter().map(|((zone, class), c)| json!({
            "zone": &**zone,
            "class_id": class,
            "class": names.and_then(|n| n.get(*class)),
            "occupancy": c.occupancy,
            "entries": c.entries,
            "exits": c.exits,
            "dwells": c.dwells,
        })).collect::<Vec<_>>(),
        "lines": a.lines.iter().map(|((line, direction, class), n)| json!({
            "line": &**line,
            "direction": direction.as_str(),
            "class_id": class,
            "class": names.and_then(|n| n.get(*class)),
            "crossings": n,
        })).collect::<Vec<_>>(),
        "series_dropped": a.series_dropped,
    })
}
