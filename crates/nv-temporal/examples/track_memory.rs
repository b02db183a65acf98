//! Heap bytes per track, measured with a counting global allocator.
//!
//! `cargo run --release -p nv-temporal --example track_memory`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use nv_core::geometry::BBox;
use nv_core::id::TrackId;
use nv_core::time::MonotonicTs;
use nv_perception::{Track, TrackObservation, TrackState};
use nv_temporal::{RetentionPolicy, TemporalStore};
use nv_view::ViewEpoch;

struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn main() {
    println!(
        "| tracks | observations/track | trajectory points/track | heap bytes | bytes/track |"
    );
    println!("|---|---|---|---|---|");
    for (tracks, frames) in [(100usize, 50usize), (500, 50), (100, 100), (100, 1000)] {
        let before = LIVE_BYTES.load(Ordering::Relaxed);
        let policy = RetentionPolicy {
            max_concurrent_tracks: tracks,
            ..RetentionPolicy::default()
        };
        let mut store = TemporalStore::new(policy).expect("valid policy");
        let mut now = MonotonicTs::from_nanos(1);
        for f in 0..frames {
            let set: Vec<Track> = (0..tracks)
                .map(|i| {
                    let x = ((i % 50) as f32 + f as f32 * 0.001) / 50.0;
                    let obs = TrackObservation::new(
                        now,
                        BBox::from_xywh(x, 0.1, 0.02, 0.05),
                        0.9,
                        TrackState::Confirmed,
                        None,
                    );
                    Track::new(TrackId::new(i as u64), 0, TrackState::Confirmed, obs)
                })
                .collect();
            store.commit_frame(&set, true, now, ViewEpoch::INITIAL);
            store.enforce_retention(now);
            now = now + Duration::from_millis(33);
        }
        let snapshot = store.snapshot();
        let bytes = LIVE_BYTES.load(Ordering::Relaxed) - before;
        let points = store
            .tracks()
            .next()
            .map_or(0, |(_, h)| h.trajectory().total_points());
        println!(
            "| {tracks} | {} | {points} | {bytes} | {} |",
            frames.min(RetentionPolicy::default().max_observations_per_track),
            bytes / tracks as isize
        );
        drop(snapshot);
        drop(store);
    }
}
