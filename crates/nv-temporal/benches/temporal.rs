//! Per-frame cost of the temporal store as the executor drives it: commit the frame's
//! tracks, enforce retention, take the snapshot stages read, drop it.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use nv_core::geometry::BBox;
use nv_core::id::TrackId;
use nv_core::time::MonotonicTs;
use nv_perception::{Track, TrackObservation, TrackState};
use nv_temporal::{RetentionPolicy, TemporalStore};
use nv_view::ViewEpoch;

const FRAME_INTERVAL: Duration = Duration::from_millis(33);
const OBSERVATIONS_PER_TRACK: usize = 50;
const TRACK_COUNTS: [usize; 3] = [10, 100, 500];

struct Scene {
    store: TemporalStore,
    tracks: Vec<Track>,
    now: MonotonicTs,
}

impl Scene {
    /// `track_count` confirmed tracks, each already committed `OBSERVATIONS_PER_TRACK` times.
    fn new(track_count: usize) -> Self {
        let policy = RetentionPolicy {
            max_concurrent_tracks: 500,
            ..Default::default()
        };
        let store = TemporalStore::new(policy).expect("default policy is valid");
        let tracks = (0..track_count)
            .map(|i| {
                let x = (i % 50) as f32 / 50.0;
                let y = (i / 50) as f32 / 10.0;
                let bbox = BBox::from_xywh(x, y, 0.02, 0.05);
                let obs = TrackObservation::new(
                    MonotonicTs::ZERO,
                    bbox,
                    0.9,
                    TrackState::Confirmed,
                    None,
                );
                Track::new(TrackId::new(i as u64), 0, TrackState::Confirmed, obs)
            })
            .collect();
        let mut scene = Self {
            store,
            tracks,
            now: MonotonicTs::from_nanos(1_000_000_000),
        };
        for _ in 0..OBSERVATIONS_PER_TRACK {
            scene.step();
        }
        scene
    }

    fn advance_tracks(&mut self) {
        self.now = self.now + FRAME_INTERVAL;
        for track in &mut self.tracks {
            let b = track.current.bbox;
            track.current.bbox = BBox::new(b.x_min + 0.0005, b.y_min, b.x_max + 0.0005, b.y_max);
            track.current.ts = self.now;
        }
    }

    /// One frame as the executor runs it.
    fn step(&mut self) -> usize {
        self.advance_tracks();
        let summary = self
            .store
            .commit_frame(&self.tracks, true, self.now, ViewEpoch::INITIAL);
        self.store.enforce_retention(self.now);
        let snapshot = self.store.snapshot();
        black_box(&snapshot);
        summary.updated
    }
}

fn commit_and_snapshot(c: &mut Criterion) {
    let mut group = c.benchmark_group("temporal_frame_commit_snapshot");
    for track_count in TRACK_COUNTS {
        let mut scene = Scene::new(track_count);
        group.bench_with_input(
            BenchmarkId::from_parameter(track_count),
            &track_count,
            |b, _| {
                b.iter(|| scene.step());
            },
        );
    }
    group.finish();
}

fn snapshot_only(c: &mut Criterion) {
    let mut group = c.benchmark_group("temporal_snapshot_unchanged_tracks");
    for track_count in TRACK_COUNTS {
        let mut scene = Scene::new(track_count);
        let mut epoch = ViewEpoch::INITIAL;
        group.bench_with_input(
            BenchmarkId::from_parameter(track_count),
            &track_count,
            |b, _| {
                b.iter(|| {
                    // An epoch flip invalidates the whole-store snapshot but no track, so this
                    // measures reuse of per-track entries.
                    epoch = ViewEpoch::new(epoch.as_u64() ^ 1);
                    scene.store.set_view_epoch(epoch);
                    black_box(scene.store.snapshot())
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, commit_and_snapshot, snapshot_only);
criterion_main!(benches);
