//! Hot-path micro-benchmarks: queue handoff, broadcast without subscribers, throttle.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use nv_core::clock::SystemClock;
use nv_core::time::MonotonicTs;
use nv_io::queue::{BoundedQueue, Overflow};
use nv_io::throttle::Throttle;

fn benches(c: &mut Criterion) {
    let q = BoundedQueue::new(64, SystemClock::shared());
    c.bench_function("queue_push_pop_uncontended", |b| {
        b.iter(|| {
            q.push(black_box(1u64), Overflow::DropOldest);
            q.try_pop()
        })
    });
    let tx = nv_io::broadcast::channel::<u64>(256);
    c.bench_function("broadcast_send_no_subscribers", |b| {
        b.iter(|| tx.send(black_box(1)))
    });
    let _rx = tx.subscribe();
    c.bench_function("broadcast_send_one_subscriber", |b| {
        b.iter(|| tx.send(black_box(1)))
    });
    let mut t = Throttle::new(std::time::Duration::from_secs(1));
    let mut n = 0u64;
    c.bench_function("throttle_record", |b| {
        b.iter(|| {
            n += 1;
            t.record(1, MonotonicTs::from_nanos(n))
        })
    });
}

criterion_group!(primitive_benches, benches);
criterion_main!(primitive_benches);
