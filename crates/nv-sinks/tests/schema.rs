//! Records of real runtime outputs validate against the shipped JSON Schema and survive
//! a serde round trip.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use nv_sinks::schema::ValueRecord;
use nv_sinks::{EventRecord, OutputRecord, EVENT_SCHEMA_V1, OUTPUT_SCHEMA_V1, SCHEMA_VERSION};
use serde_json::Value;

#[test]
fn records_validate_against_the_json_schema() {
    let schema: Value = serde_json::from_str(OUTPUT_SCHEMA_V1).unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    let outputs = common::outputs(6);
    for (i, out) in outputs.iter().enumerate() {
        // Every other one as a cluster node stamps it (the fencing token, 1.3).
        let mut out = (**out).clone();
        if i % 2 == 1 {
            out.fence = Some(1 << 40);
        }
        let record = OutputRecord::from_output(&out);
        assert_eq!(record.fence, out.fence);
        let json: Value = serde_json::from_slice(&record.to_json().unwrap()).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&json)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "record {i} invalid: {errors:#?}\n{json:#}"
        );
    }
    // The schema is strict: an unknown field or a wrong type is caught.
    let mut bad: Value =
        serde_json::from_slice(&OutputRecord::from_output(&outputs[0]).to_json().unwrap()).unwrap();
    bad["surprise"] = Value::Bool(true);
    bad["pts_nanos"] = Value::String("12".into());
    assert_eq!(validator.iter_errors(&bad).count(), 2);
}

#[test]
fn record_contents_follow_the_output() {
    let outputs = common::outputs(4);
    for out in &outputs {
        let r = OutputRecord::from_output(out);
        assert_eq!(r.schema_version, SCHEMA_VERSION);
        assert_eq!(r.frame_seq, out.frame_seq);
        assert_eq!(r.pts_nanos, out.ts.as_nanos());
        assert_eq!(
            r.idempotency_key,
            format!(
                "{:016x}:{}:{}:{}:{}",
                out.provenance.run_id,
                out.feed_id.as_u64(),
                out.provenance.view.epoch.as_u64(),
                out.provenance.session,
                out.frame_seq
            )
        );
        assert_eq!(r.detections.len(), 2);
        assert_eq!(
            r.detections[0].embedding.as_deref(),
            Some(&[0.5, -0.25][..])
        );
        assert_eq!(r.tracks[0].id, 7);
        assert_eq!(r.tracks[0].observation.detection_id, Some(1));
        assert_eq!(r.provenance.stages[0].stage_id, "rich");
        assert_eq!(r.provenance.view.decision, None);
        let nan = r.signals.iter().find(|s| s.name == "nan").unwrap();
        assert_eq!(nan.value, ValueRecord::Scalar { value: None });
        match &out.frame {
            Some(f) => {
                let fr = r.frame.as_ref().unwrap();
                assert_eq!((fr.width, fr.height), (f.width(), f.height()));
                assert_eq!(fr.format, "GRAY8");
            }
            None => assert!(r.frame.is_none()),
        }
        // Pixels are never inlined.
        let text = String::from_utf8(r.to_json().unwrap()).unwrap();
        assert!(!text.contains("data"), "{text}");
        let back: OutputRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
    }
    assert!(outputs.iter().any(|o| o.frame.is_some()));
    let keys = common::keys(&outputs);
    let mut unique = keys.clone();
    unique.dedup();
    assert_eq!(unique, keys);
}

#[test]
fn schema_md_example_is_a_valid_record() {
    let doc = include_str!("../SCHEMA.md");
    let start = doc.find("```json\n").unwrap() + "```json\n".len();
    let end = start + doc[start..].find("```").unwrap();
    let example: Value = serde_json::from_str(&doc[start..end]).unwrap();
    let schema: Value = serde_json::from_str(OUTPUT_SCHEMA_V1).unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&example)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let record: OutputRecord = serde_json::from_value(example).unwrap();
    assert_eq!(record.idempotency_key, "3f2a9c0d5e6b7a81:1:0:0:42");
}

fn errors(validator: &jsonschema::Validator, json: &Value) -> Vec<String> {
    validator
        .iter_errors(json)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn event_records_validate_and_carry_the_event() {
    let schema: Value = serde_json::from_str(EVENT_SCHEMA_V1).unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    // One contract: the standalone schema's event is the output schema's event.
    let output: Value = serde_json::from_str(OUTPUT_SCHEMA_V1).unwrap();
    for def in ["event", "u64", "u32", "nullable_u64", "bbox"] {
        assert_eq!(schema["$defs"][def], output["$defs"][def], "{def}");
    }
    let outputs = common::outputs(2);
    let out = &outputs[1];
    let events = EventRecord::all(out);
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "object_appeared",
            "zone_enter",
            "zone_dwell",
            "zone_exit",
            "line_crossed",
            "object_lost",
            "camera_motion"
        ]
    );
    for (i, e) in events.iter().enumerate() {
        let json: Value = serde_json::from_slice(&e.to_json().unwrap()).unwrap();
        let errs = errors(&validator, &json);
        assert!(errs.is_empty(), "event {i} invalid: {errs:#?}\n{json:#}");
        let key = OutputRecord::from_output(out).idempotency_key;
        assert_eq!(e.event_id, format!("{key}:{i}"));
        assert_eq!(e.idempotency_key, e.event_id);
        assert_eq!(e.frame_seq, out.frame_seq);
        assert_eq!(e.feed.as_deref(), out.feed_name.as_deref());
        let back: EventRecord = serde_json::from_value(json).unwrap();
        assert_eq!(&back, e);
    }
    let crossed = &events[4];
    assert_eq!(
        (
            crossed.track_id,
            crossed.line.as_deref(),
            crossed.direction.as_deref()
        ),
        (Some(7), Some("gate"), Some("left_to_right"))
    );
    assert_eq!(events[2].dwell_millis, Some(1500));
    assert_eq!(events[2].zone.as_deref(), Some("door"));
    assert_eq!(
        (events[6].track_id, events[6].motion.as_deref()),
        (None, Some("pan"))
    );
    // Inside the frame record, the same records.
    assert_eq!(OutputRecord::from_output(out).events, events);
    // A cluster node's events carry the fencing token (1.3) and still validate.
    let mut fenced = (**out).clone();
    fenced.fence = Some(9);
    for e in EventRecord::all(&fenced) {
        assert_eq!(e.fence, Some(9));
        let json: Value = serde_json::from_slice(&e.to_json().unwrap()).unwrap();
        assert!(errors(&validator, &json).is_empty(), "{json:#}");
    }
    // Strict: a float track id or an unknown direction is caught.
    let mut bad: Value = serde_json::from_slice(&events[4].to_json().unwrap()).unwrap();
    bad["track_id"] = serde_json::json!(7.5);
    bad["direction"] = serde_json::json!("up");
    assert_eq!(validator.iter_errors(&bad).count(), 2);
}

/// With the feed's class names, detections, tracks and events carry the name (`class`)
/// beside the id; an id without a name has no `class` (frames) or `null` (events). Both
/// record kinds still validate.
#[test]
fn class_names_label_detections_tracks_and_events() {
    let mut o = (*common::rich_output(0)).clone();
    let mut names = nv_perception::ClassNames::new();
    names.insert(2, "car").unwrap();
    o.class_names = Some(std::sync::Arc::new(names));
    let frame: Value =
        serde_json::from_slice(&OutputRecord::from_output(&o).to_json().unwrap()).unwrap();
    let out_schema: Value = serde_json::from_str(OUTPUT_SCHEMA_V1).unwrap();
    let v = jsonschema::draft202012::new(&out_schema).unwrap();
    assert!(errors(&v, &frame).is_empty(), "{:?}", errors(&v, &frame));
    assert_eq!(frame["detections"][0]["class_id"], 2);
    assert_eq!(frame["detections"][0]["class"], "car");
    assert_eq!(frame["detections"][1]["class_id"], 0);
    assert!(frame["detections"][1].get("class").is_none());
    assert_eq!(frame["tracks"][0]["class"], "car");
    let ev_schema: Value = serde_json::from_str(EVENT_SCHEMA_V1).unwrap();
    let ev = jsonschema::draft202012::new(&ev_schema).unwrap();
    let events = EventRecord::all(&o);
    for e in &events {
        let json: Value = serde_json::from_slice(&e.to_json().unwrap()).unwrap();
        assert!(errors(&ev, &json).is_empty(), "{json:#}");
        match e.class_id {
            Some(2) => assert_eq!(json["class"], "car"),
            _ => assert!(json["class"].is_null()),
        }
    }
    assert!(events.iter().any(|e| e.class.as_deref() == Some("car")));
}
