//! `nv-bench`: runtime workloads that print a table.
//!
//! W1: one feed, 3 no-op stages, 640x480 RGB synthetic frames, unpaced, lossless.
//! W2: 32 feeds at 30 fps: CPU %, p50/p99 receive->sink latency.
//! W3: many feeds at 5 fps: drops, p99 latency, peak RSS, threads.
//! W4: 32 feeds at 30 fps sharing one batch processor (cost = fixed + per item, a busy
//!     loop), versus the same cost paid per frame in a per-feed stage.
//! W5: 32 feeds unpaced, lossless: aggregate frames/s.
//! ref1 / ref32: the reference system's own shape (see `shapes`).
//! d2000 / d10000: density, 2,000 feeds at 5 fps and 10,000 feeds at 1 fps.
//! A trailing `i` (ref1i, d2000i, ...) uses a sink that declares it never blocks.

mod shapes;

use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use nv_core::error::StageError;
use nv_core::metrics::HistogramSnapshot;
use nv_perception::{BatchEntry, BatchProcessor, Stage, StageContext, StageOutput};
use nv_runtime::{
    BackpressurePolicy, BatchConfig, BatchMetrics, CameraMode, FeedConfig, FeedHandle, NullSink,
    PixelFormat, Runtime, Scheduler, SourceSpec, StageId, SyntheticSpec,
};

#[derive(Parser, Debug)]
#[command(about = "NextVision runtime workloads")]
struct Args {
    /// Workloads to run (w1..w5, ref1, ref32, d2000, d10000; a trailing `i` on ref/d
    /// makes the sink declare that it never blocks, so it runs on the feed worker).
    #[arg(default_values_t = ["w1".to_string(), "w2".to_string(), "w3".to_string(), "w4".to_string(), "w5".to_string()])]
    workloads: Vec<String>,
    /// Seconds per timed workload.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Feed count for W3.
    #[arg(long, default_value_t = 2000)]
    w3_feeds: u32,
    /// Run the ref and d workloads on the pool scheduler with this many threads (0 = one
    /// per core) instead of one thread per feed.
    #[arg(long)]
    pool: Option<usize>,
}

/// Burns CPU for `d` (a stand-in for inference cost that scales with batch size).
fn busy(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

const FIXED_COST: Duration = Duration::from_micros(2_000);
const PER_ITEM_COST: Duration = Duration::from_micros(250);

/// A model: fixed cost per call plus a per-item cost.
struct Model;

impl BatchProcessor for Model {
    fn id(&self) -> StageId {
        StageId::new("model")
    }
    fn process(&mut self, entries: &mut [BatchEntry]) -> Result<(), StageError> {
        busy(FIXED_COST + PER_ITEM_COST * entries.len() as u32);
        Ok(())
    }
}

/// The same model called once per frame on each feed's own thread.
struct PerFeedModel;

impl Stage for PerFeedModel {
    fn id(&self) -> StageId {
        StageId::new("model")
    }
    fn process(&mut self, _ctx: &StageContext<'_>) -> Result<StageOutput, StageError> {
        busy(FIXED_COST + PER_ITEM_COST);
        Ok(StageOutput::empty())
    }
}

fn w4(seconds: u64) -> anyhow::Result<()> {
    let spec = || spec(320, 240, PixelFormat::Gray8, Some(30.0));
    let config = BatchConfig::new(16, Duration::from_millis(20));
    let rt = Runtime::builder().build()?;
    let batch = rt.create_batch(Model, config)?;
    let feeds = (0..32)
        .map(|_| {
            let c = FeedConfig::builder()
                .source(SourceSpec::synthetic(spec()))
                .camera_mode(CameraMode::Fixed)
                .batch(batch.clone())
                .output_sink(NullSink)
                .build()?;
            Ok(rt.add_feed(c)?)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let m = measure(&rt, &feeds, seconds);
    let bm = batch.metrics();
    rt.shutdown();
    let per_feed = run_feeds(
        32,
        || {
            Ok(FeedConfig::builder()
                .source(SourceSpec::synthetic(spec()))
                .camera_mode(CameraMode::Fixed)
                .stage(PerFeedModel)
                .output_sink(NullSink)
                .build()?)
        },
        seconds,
    )?
    .0;
    println!();
    println!("| W4 (32 feeds @30fps, model cost 2 ms + 0.25 ms/item) | frames/s | drops | p50 recv->sink | p99 recv->sink | avg batch | fill ratio |");
    println!("|---|---|---|---|---|---|---|");
    let row = |label: &str, m: &Measured, batch: Option<&BatchMetrics>| {
        let fps = m.frames as f64 / m.wall.as_secs_f64();
        println!(
            "| {label} | {fps:.0} | {} | {} us | {} us | {} | {} |",
            m.drops,
            m.latency.quantile(0.5).as_micros(),
            m.latency.quantile(0.99).as_micros(),
            batch.map_or("-".into(), |b| format!("{:.2}", b.avg_batch_size())),
            batch.map_or("-".into(), |b| format!("{:.2}", b.avg_fill_ratio())),
        );
    };
    row("batched (max 16, 20 ms)", &m, Some(&bm));
    row("per-feed calls", &per_feed, None);
    Ok(())
}

pub(crate) struct NoOp(pub(crate) &'static str);

impl Stage for NoOp {
    fn id(&self) -> StageId {
        StageId::new(self.0)
    }
    fn process(&mut self, _ctx: &StageContext<'_>) -> Result<StageOutput, StageError> {
        Ok(StageOutput::empty())
    }
}

pub(crate) fn spec(
    width: u32,
    height: u32,
    format: PixelFormat,
    fps: Option<f64>,
) -> SyntheticSpec {
    SyntheticSpec {
        width,
        height,
        format,
        fps,
        frame_count: None,
        moving_objects: 0,
        seed: 1,
    }
}

fn feed(spec: SyntheticSpec, backpressure: BackpressurePolicy) -> anyhow::Result<FeedConfig> {
    let mut b = FeedConfig::builder()
        .source(SourceSpec::synthetic(spec))
        .camera_mode(CameraMode::Fixed)
        .backpressure(backpressure)
        .stage(NoOp("a"))
        .stage(NoOp("b"))
        .stage(NoOp("c"))
        .output_sink(NullSink);
    if backpressure.is_lossless() {
        b = b.lossless().sink_queue_capacity(64);
    }
    Ok(b.build()?)
}

/// Process CPU time (user + system) from /proc, in seconds.
pub(crate) fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 of stat (utime, stime) are at 11 and 12 after the comm field.
    (ticks(11) + ticks(12)) / 100.0
}

pub(crate) fn proc_status(key: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .map(|l| l[key.len()..].trim().to_string())
        .unwrap_or_default()
}

struct Measured {
    frames: u64,
    drops: u64,
    wall: Duration,
    cpu: f64,
    latency: HistogramSnapshot,
}

fn measure(rt: &Runtime, feeds: &[FeedHandle], seconds: u64) -> Measured {
    // Let sources reach steady state, then measure a window.
    std::thread::sleep(Duration::from_millis(500));
    let frames0: u64 = feeds.iter().map(|f| f.metrics().frames_processed).sum();
    let drops0: u64 = feeds.iter().map(|f| f.metrics().frames_dropped()).sum();
    let lat0 = merged(feeds);
    let (t0, c0) = (Instant::now(), cpu_seconds());
    std::thread::sleep(Duration::from_secs(seconds));
    let (wall, cpu) = (t0.elapsed(), cpu_seconds() - c0);
    let frames = feeds
        .iter()
        .map(|f| f.metrics().frames_processed)
        .sum::<u64>()
        - frames0;
    let drops = feeds
        .iter()
        .map(|f| f.metrics().frames_dropped())
        .sum::<u64>()
        - drops0;
    let mut latency = merged(feeds);
    for (a, b) in latency.buckets.iter_mut().zip(&lat0.buckets) {
        *a -= b;
    }
    latency.count -= lat0.count;
    let _ = rt;
    Measured {
        frames,
        drops,
        wall,
        cpu,
        latency,
    }
}

fn merged(feeds: &[FeedHandle]) -> HistogramSnapshot {
    let mut all = HistogramSnapshot::default();
    for f in feeds {
        all.merge(&f.diagnostics().receive_to_sink);
    }
    all
}

fn run_feeds(
    n: u32,
    make: impl Fn() -> anyhow::Result<FeedConfig>,
    seconds: u64,
) -> anyhow::Result<(Measured, String, String)> {
    let rt = Runtime::builder()
        .max_feeds(n as usize)
        .worker_stack_size(256 * 1024)
        .build()?;
    let feeds = (0..n)
        .map(|_| rt.add_feed(make()?).context("add_feed"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let m = measure(&rt, &feeds, seconds);
    let threads = proc_status("Threads:");
    let rss = proc_status("VmHWM:");
    rt.shutdown();
    Ok((m, threads, rss))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args
        .workloads
        .iter()
        .any(|w| matches!(w.as_str(), "w1" | "w2" | "w3" | "w5"))
    {
        println!("| workload | feeds | frames/s | CPU % | us/frame (wall) | us/frame (CPU) | p50 recv->sink | p99 recv->sink | drops | threads | peak RSS |");
        println!("|---|---|---|---|---|---|---|---|---|---|---|");
    }
    for w in &args.workloads {
        if w == "w4" || w.starts_with("ref") || w.starts_with('d') {
            continue;
        }
        let (label, n, result) = match w.as_str() {
            "w1" => (
                "W1 1 feed unpaced 640x480 RGB",
                1,
                run_feeds(
                    1,
                    || {
                        feed(
                            spec(640, 480, PixelFormat::Rgb8, None),
                            BackpressurePolicy::block(64),
                        )
                    },
                    args.seconds,
                )?,
            ),
            "w2" => (
                "W2 32 feeds @30fps 640x480 RGB",
                32,
                run_feeds(
                    32,
                    || {
                        feed(
                            spec(640, 480, PixelFormat::Rgb8, Some(30.0)),
                            BackpressurePolicy::drop_oldest(4),
                        )
                    },
                    args.seconds,
                )?,
            ),
            "w3" => (
                "W3 feeds @5fps 320x240 gray",
                args.w3_feeds,
                run_feeds(
                    args.w3_feeds,
                    || {
                        feed(
                            spec(320, 240, PixelFormat::Gray8, Some(5.0)),
                            BackpressurePolicy::drop_oldest(4),
                        )
                    },
                    args.seconds,
                )?,
            ),
            "w5" => (
                "W5 32 feeds unpaced 640x480 RGB",
                32,
                run_feeds(
                    32,
                    || {
                        feed(
                            spec(640, 480, PixelFormat::Rgb8, None),
                            BackpressurePolicy::block(64),
                        )
                    },
                    args.seconds,
                )?,
            ),
            other => anyhow::bail!("unknown workload {other}"),
        };
        let (m, threads, rss) = result;
        let secs = m.wall.as_secs_f64();
        let fps = m.frames as f64 / secs;
        println!(
            "| {label} | {n} | {fps:.0} | {:.0} | {:.2} | {:.2} | {} us | {} us | {} | {threads} | {rss} |",
            100.0 * m.cpu / secs,
            1e6 / fps.max(1e-9),
            1e6 * m.cpu / (m.frames.max(1) as f64),
            m.latency.quantile(0.5).as_micros(),
            m.latency.quantile(0.99).as_micros(),
            m.drops,
        );
    }
    if args.workloads.iter().any(|w| w == "w4") {
        w4(args.seconds)?;
    }
    let scheduler = args
        .pool
        .map_or(Scheduler::ThreadPerFeed, |threads| Scheduler::Pool {
            threads,
        });
    let refs: Vec<&String> = args
        .workloads
        .iter()
        .filter(|w| w.starts_with("ref"))
        .collect();
    if !refs.is_empty() {
        println!();
        shapes::reference_header();
    }
    for w in refs {
        let (digits, inline) = match w["ref".len()..].strip_suffix('i') {
            Some(d) => (d, true),
            None => (&w["ref".len()..], false),
        };
        let n = digits
            .parse::<u32>()
            .with_context(|| format!("workload {w}: expected ref<feeds>[i]"))?;
        shapes::reference(n, inline, args.seconds, scheduler)?;
    }
    let dens: Vec<&String> = args
        .workloads
        .iter()
        .filter(|w| w.starts_with('d'))
        .collect();
    if !dens.is_empty() {
        println!();
        shapes::density_header();
    }
    for w in dens {
        match w.as_str() {
            "d2000" => shapes::density(2000, 5.0, false, args.seconds, scheduler)?,
            "d2000i" => shapes::density(2000, 5.0, true, args.seconds, scheduler)?,
            "d10000" => shapes::density(10_000, 1.0, false, args.seconds, scheduler)?,
            "d10000i" => shapes::density(10_000, 1.0, true, args.seconds, scheduler)?,
            other => anyhow::bail!("unknown workload {other}"),
        }
    }
    Ok(())
}
