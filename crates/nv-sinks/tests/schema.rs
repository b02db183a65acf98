//! Records of real runtime outputs validate against the shipped JSON Schema and survive
//! a serde round trip.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use nv_sinks::schema::ValueRecord;
use nv_sinks::{OutputRecord, OUTPUT_SCHEMA_V1, SCHEMA_VERSION};
use serde_json::Value;

#[test]
fn records_validate_against_the_json_schema() {
    let schema: Value = serde_json::from_str(OUTPUT_SCHEMA_V1).unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    let outputs = common::outputs(6);
    for (i, out) in outputs.iter().enumerate() {
        let record = OutputRecord::from_output(out);
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
                "{}:{}:{}:{}",
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
    assert_eq!(record.idempotency_key, "1:0:0:42");
}
