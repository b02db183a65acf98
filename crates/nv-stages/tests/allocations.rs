//! Steady-state allocation check: after warm-up, one frame through the motion detector
//! or the tracker allocates only its output list.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use nv_core::geometry::BBox;
use nv_core::id::{DetectionId, FeedId};
use nv_core::source::PixelFormat;
use nv_core::time::MonotonicTs;
use nv_frame::FrameEnvelope;
use nv_perception::{Detection, DetectionSet};
use nv_stages::{MotionConfig, MotionDetector, Tracker, TrackerConfig};

/// Counts allocations made anywhere in this test binary (it holds a single test, so
/// nothing else runs concurrently).
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: defers to the system allocator; only adds a counter.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during<R>(f: impl FnOnce() -> R) -> (usize, R) {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let r = f();
    (ALLOCATIONS.load(Ordering::Relaxed) - before, r)
}

fn frame(format: PixelFormat, seq: u64) -> FrameEnvelope {
    let (w, h) = (320usize, 180usize);
    let bpp = if format == PixelFormat::Rgb8 { 3 } else { 1 };
    let mut data = vec![90u8; w * h * bpp];
    let x0 = 10 + (seq as usize * 4) % 200;
    // The object appears after the background warm-up.
    if seq >= 10 {
        for row in data.chunks_exact_mut(w * bpp).skip(50).take(40) {
            row[x0 * bpp..(x0 + 40) * bpp].fill(220);
        }
    }
    FrameEnvelope::new_owned(
        FeedId::new(1),
        seq,
        MonotonicTs::from_nanos(seq * 33_333_333),
        w as u32,
        h as u32,
        format,
        data,
    )
    .expect("sized buffer")
}

#[test]
fn steady_state_allocates_only_outputs() {
    for format in [PixelFormat::Gray8, PixelFormat::Rgb8] {
        let frames: Vec<FrameEnvelope> = (0..40).map(|s| frame(format, s)).collect();
        let mut motion = MotionDetector::new(MotionConfig::default()).expect("valid");
        for f in &frames[..20] {
            motion.detect(f).expect("host frame");
        }
        for f in &frames[20..] {
            let (n, dets) = allocations_during(|| motion.detect(f).expect("host frame"));
            assert_eq!(dets.len(), 1, "{format}");
            assert!(n <= 1, "{format}: {n} allocations for one frame");
        }
    }

    let sets: Vec<DetectionSet> = (0..40u64)
        .map(|f| {
            (0..50u64)
                .map(|i| {
                    let x = (i % 10) as f32 * 0.1 + 0.001 * f as f32;
                    let y = (i / 10) as f32 * 0.2;
                    Detection::builder(
                        DetectionId::new(i),
                        0,
                        0.9,
                        BBox::from_xywh(x, y, 0.05, 0.1),
                    )
                    .build()
                })
                .collect::<Vec<_>>()
                .into()
        })
        .collect();
    let mut tracker = Tracker::new(TrackerConfig::default()).expect("valid");
    for (f, d) in sets[..20].iter().enumerate() {
        tracker.update(MonotonicTs::from_nanos(f as u64), d);
    }
    for (f, d) in sets[20..].iter().enumerate() {
        let (n, tracks) =
            allocations_during(|| tracker.update(MonotonicTs::from_nanos(f as u64), d));
        assert_eq!(tracks.len(), 50);
        assert!(n <= 1, "{n} allocations for one tracker update");
    }
}
