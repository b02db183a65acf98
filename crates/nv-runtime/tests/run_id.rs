//! Two runtime instances number their feeds, sessions and frames alike; their outputs
//! differ by run id, so idempotency keys built from it never collide across runs.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use nv_runtime::{CameraMode, FeedConfig, Runtime, SourceSpec};
use nv_test_util::{tiny_synthetic, CollectingSink, ScriptedStage};

fn first_output(rt: &Runtime) -> nv_runtime::SharedOutput {
    let sink = CollectingSink::new();
    rt.add_feed(
        FeedConfig::builder()
            .source(SourceSpec::synthetic(tiny_synthetic(Some(1))))
            .camera_mode(CameraMode::Fixed)
            .stage(ScriptedStage::new("pass"))
            .output_sink(sink.clone())
            .lossless()
            .build()
            .unwrap(),
    )
    .unwrap();
    sink.wait_for(1).remove(0)
}

#[test]
fn every_runtime_instance_stamps_its_own_run_id() {
    let (a, b) = (
        Runtime::builder().build().unwrap(),
        Runtime::builder().build().unwrap(),
    );
    let (oa, ob) = (first_output(&a), first_output(&b));
    assert_eq!(
        (oa.feed_id, oa.frame_seq, oa.provenance.session),
        (ob.feed_id, ob.frame_seq, ob.provenance.session)
    );
    assert_ne!(oa.provenance.run_id, ob.provenance.run_id);
    // Every output of one instance carries the same run id.
    assert_eq!(first_output(&a).provenance.run_id, oa.provenance.run_id);
    a.shutdown();
    b.shutdown();
}
