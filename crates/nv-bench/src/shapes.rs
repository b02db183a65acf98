//! Workloads in the reference system's own shape, and density workloads.
//!
//! `ref1` / `ref32`: 1 or 32 feeds; one producer thread per feed pushes zero-copy 640x480
//! RGB frames (the synthetic source's dedicated producer shares one pre-rendered cycle)
//! as fast as it can; 3 no-op stages; `Block` with queue depth 4; the default sink queue
//! and its default overflow. Outputs lost at the sink are counted by a counting sink
//! (delivered) against the frames processed.
//!
//! `d2000` / `d10000`: 2,000 feeds at 5 fps and 10,000 feeds at 1 fps (320x240 gray,
//! default backpressure, default sink queue): threads, RSS per added feed, drops, p99.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use nv_core::metrics::HistogramSnapshot;
use nv_runtime::{
    BackpressurePolicy, CameraMode, DropReason, FeedConfig, FeedHandle, OutputSink, PixelFormat,
    Runtime, Scheduler, SharedOutput, SourceSpec,
};

use crate::{cpu_seconds, proc_status, spec, NoOp};

/// Counts what reached the sink; `inline` declares that it never blocks.
struct CountingSink {
    delivered: Arc<AtomicU64>,
    inline: bool,
}

impl OutputSink for CountingSink {
    fn emit(&mut self, _output: SharedOutput) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
    }
    fn may_block(&self) -> bool {
        !self.inline
    }
}

fn feed_config(
    source: nv_runtime::SyntheticSpec,
    backpressure: Option<BackpressurePolicy>,
    delivered: &Arc<AtomicU64>,
    inline: bool,
) -> anyhow::Result<FeedConfig> {
    let mut b = FeedConfig::builder()
        .source(SourceSpec::synthetic(source))
        .camera_mode(CameraMode::Fixed)
        .stage(NoOp("a"))
        .stage(NoOp("b"))
        .stage(NoOp("c"))
        .output_sink(CountingSink {
            delivered: Arc::clone(delivered),
            inline,
        });
    if let Some(bp) = backpressure {
        b = b.backpressure(bp);
    }
    Ok(b.build()?)
}

/// Voluntary + involuntary context switches of every thread of this process so far.
fn context_switches() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .map(|s| {
            s.lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

fn kib(key: &str) -> u64 {
    proc_status(key)
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

struct Totals {
    processed: u64,
    delivered: u64,
    sink_lost: u64,
    frame_drops: u64,
}

fn totals(feeds: &[FeedHandle], delivered: &AtomicU64) -> Totals {
    let mut t = Totals {
        processed: 0,
        delivered: delivered.load(Ordering::Relaxed),
        sink_lost: 0,
        frame_drops: 0,
    };
    for f in feeds {
        let m = f.metrics();
        t.processed += m.frames_processed;
        t.sink_lost += m.dropped(DropReason::SinkQueueFull);
        t.frame_drops += m.frames_dropped();
    }
    t
}

fn latency(feeds: &[FeedHandle]) -> HistogramSnapshot {
    let mut all = HistogramSnapshot::default();
    for f in feeds {
        all.merge(&f.diagnostics().receive_to_sink);
    }
    all
}

/// The reference shape with `n` feeds; prints one table row. `inline`: the sink declares
/// it never blocks (no sink thread).
pub fn reference(n: u32, inline: bool, seconds: u64, scheduler: Scheduler) -> anyhow::Result<()> {
    let delivered = Arc::new(AtomicU64::new(0));
    let rt = Runtime::builder()
        .max_feeds(n as usize)
        .worker_stack_size(256 * 1024)
        .scheduler(scheduler)
        .build()?;
    let feeds = (0..n)
        .map(|_| {
            let c = feed_config(
                spec(640, 480, PixelFormat::Rgb8, None),
                Some(BackpressurePolicy::block(4)),
                &delivered,
                inline,
            )?;
            rt.add_feed(c).context("add_feed")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    std::thread::sleep(Duration::from_millis(500));
    let a = totals(&feeds, &delivered);
    let (t0, c0, cs0) = (Instant::now(), cpu_seconds(), context_switches());
    std::thread::sleep(Duration::from_secs(seconds));
    let (wall, cpu, cs) = (
        t0.elapsed().as_secs_f64(),
        cpu_seconds() - c0,
        context_switches() - cs0,
    );
    let b = totals(&feeds, &delivered);
    let threads = proc_status("Threads:");
    // Shutdown delivers every accepted output; then count what was lost.
    rt.shutdown();
    let end = totals(&feeds, &delivered);
    let frames = b.processed - a.processed;
    let fps = frames as f64 / wall;
    println!(
        "| {}ref{n}{} Block(4), {} | {n} | {fps:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {} of {} ({:.2}%) | {} | {threads} |",
        label(scheduler),
        if inline { "i" } else { "" },
        if inline { "inline sink" } else { "default sink queue" },
        100.0 * cpu / wall,
        1e6 / fps.max(1e-9),
        1e6 * cpu / (frames.max(1) as f64),
        cs as f64 / (frames.max(1) as f64),
        end.processed - end.delivered,
        end.processed,
        100.0 * (end.processed - end.delivered) as f64 / (end.processed.max(1) as f64),
        end.sink_lost,
    );
    Ok(())
}

pub fn reference_header() {
    println!("| workload | feeds | frames/s | CPU % | us/frame (wall) | us/frame (CPU) | switches/frame | outputs lost (whole run) | sink-queue drops | threads |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
}

pub fn density_header() {
    println!("| workload | feeds | frames/s | CPU % | threads | RSS/feed | frame drops | sink drops | p50 recv->sink | p99 recv->sink |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
}

/// `n` feeds at `fps`; prints one table row.
pub fn density(
    n: u32,
    fps: f64,
    inline: bool,
    seconds: u64,
    scheduler: Scheduler,
) -> anyhow::Result<()> {
    let delivered = Arc::new(AtomicU64::new(0));
    let rt = Runtime::builder()
        .max_feeds(n as usize)
        .worker_stack_size(256 * 1024)
        .scheduler(scheduler)
        .build()?;
    let make = || {
        feed_config(
            spec(320, 240, PixelFormat::Gray8, Some(fps)),
            None,
            &delivered,
            inline,
        )
    };
    // The first feed renders the shared synthetic cycle; RSS per feed is measured over the rest.
    let mut feeds = vec![rt.add_feed(make()?).context("add_feed")?];
    std::thread::sleep(Duration::from_millis(500));
    let rss0 = kib("VmRSS:");
    for _ in 1..n {
        feeds.push(rt.add_feed(make()?).context("add_feed")?);
    }
    // Start-up of thousands of feeds is not steady state: let it settle.
    std::thread::sleep(Duration::from_secs(2));
    let rss1 = kib("VmRSS:");
    let a = totals(&feeds, &delivered);
    let lat0 = latency(&feeds);
    let (t0, c0) = (Instant::now(), cpu_seconds());
    std::thread::sleep(Duration::from_secs(seconds));
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - c0);
    let b = totals(&feeds, &delivered);
    let mut lat = latency(&feeds);
    for (x, y) in lat.buckets.iter_mut().zip(&lat0.buckets) {
        *x -= y;
    }
    lat.count -= lat0.count;
    let threads = proc_status("Threads:");
    rt.shutdown();
    let per_feed_kib = (rss1.saturating_sub(rss0)) as f64 / f64::from((n - 1).max(1));
    println!(
        "| {}d{n}{} @{fps} fps 320x240 gray | {n} | {:.0} | {:.0} | {threads} | {:.1} KB | {} | {} | {} us | {} us |",
        label(scheduler),
        if inline { "i" } else { "" },
        (b.processed - a.processed) as f64 / wall,
        100.0 * cpu / wall,
        per_feed_kib * 1.024,
        b.frame_drops - a.frame_drops,
        b.sink_lost - a.sink_lost,
        lat.quantile(0.5).as_micros(),
        lat.quantile(0.99).as_micros(),
    );
    Ok(())
}

fn label(scheduler: Scheduler) -> String {
    match scheduler {
        Scheduler::Pool { threads } => format!("pool({threads}) "),
        _ => String::new(),
    }
}
