//! JSON form of an output for `process` (the stable schema lives in nv-sinks).

use nv_runtime::SharedOutput;
use serde_json::{json, Value};

pub fn output_json(o: &SharedOutput) -> Value {
    let bbox = |b: &nv_core::geometry::BBox| json!([b.x_min, b.y_min, b.x_max, b.y_max]);
    json!({
        "feed_id": o.feed_id.as_u64(),
        "seq": o.frame_seq,
        "pts_nanos": o.ts.as_nanos(),
        "wall_micros": o.wall_ts.as_micros(),
        "detections": o.detections.iter().map(|d| json!({
            "id": d.id.as_u64(), "class_id": d.class_id, "confidence": d.confidence, "bbox": bbox(&d.bbox),
        })).collect::<Vec<_>>(),
        "tracks": o.tracks.iter().map(|t| json!({
            "id": t.id.as_u64(), "class_id": t.class_id, "state": format!("{:?}", t.state), "bbox": bbox(&t.current.bbox),
        })).collect::<Vec<_>>(),
        "signals": o.signals.iter().map(|s| json!({ "name": s.name, "value": format!("{:?}", s.value) })).collect::<Vec<_>>(),
        "latency_micros": u64::try_from(o.provenance.receive_to_complete().as_micros()).unwrap_or(u64::MAX),
        "epoch": o.provenance.view.epoch.as_u64(),
        "session": o.provenance.session,
    })
}
