//! Runtime-wide output subscription: shared allocations and lag accounting.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::sync::Arc;

use common::{feed, wait_until};
use nv_runtime::{HealthEvent, Runtime};
use nv_test_util::{collect_events_until, CollectingSink, NoOpStage};

#[test]
fn sink_and_subscribers_share_one_allocation() {
    let rt = Runtime::builder().build().unwrap();
    let mut sub = rt.output_subscribe();
    let sink = CollectingSink::new();
    rt.add_feed(
        feed(Some(3))
            .stage(NoOpStage("s"))
            .output_sink(sink.clone())
            .lossless()
            .build()
            .unwrap(),
    )
    .unwrap();
    let from_sink = sink.wait_for(3);
    for expected in &from_sink {
        let got = sub.recv_timeout(nv_test_util::TEST_TIMEOUT).unwrap();
        assert!(Arc::ptr_eq(&got, expected));
    }
}

#[test]
fn lagging_subscriber_loss_is_counted_and_reported_exactly() {
    let capacity = 4;
    let rt = Runtime::builder()
        .output_capacity(capacity)
        .health_capacity(4096)
        .build()
        .unwrap();
    let mut health = rt.health_subscribe();
    let mut sub = rt.output_subscribe();
    let n = 50u64;
    let h = rt
        .add_feed(
            feed(Some(n))
                .stage(NoOpStage("s"))
                .output_sink(CollectingSink::new())
                .lossless()
                .build()
                .unwrap(),
        )
        .unwrap();
    wait_until("feed finished", || !h.is_alive());
    let mut received = 0;
    while sub.try_recv().is_some() {
        received += 1;
    }
    assert_eq!(received, capacity as u64);
    assert_eq!(sub.lost(), n - capacity as u64);
    assert_eq!(rt.diagnostics().output_messages_lost, n - capacity as u64);
    rt.shutdown();
    let events = collect_events_until(&mut health, |e| {
        matches!(e, HealthEvent::OutputLagged { .. })
    });
    let lost: u64 = events
        .iter()
        .map(|e| {
            if let HealthEvent::OutputLagged { messages_lost } = e {
                *messages_lost
            } else {
                0
            }
        })
        .sum();
    assert_eq!(lost, n - capacity as u64);
}
