//! `nextvision process INPUT`: one video in, one JSON line per frame out, a progress line
//! while it runs and a summary table at the end. Lines are written by the same nv-sinks
//! file/stdout sinks as the daemon's, so they are schema-v1 output records.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use nv_runtime::{CameraMode, FeedConfig, HealthEvent, OutputSink, StopReason};
use nv_sinks::{FileSink, FileSinkConfig, SinkStats, StdoutSink};

use crate::config::parse_source;

#[derive(clap::Args, Debug)]
pub struct ProcessArgs {
    /// A video file, an `rtsp://`/`http(s)://` URL, `test:PATTERN` or `synthetic:WxH@FPS`.
    input: String,
    /// Where to write JSON lines (default: stdout).
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Stages by kind, in order (default: blob-detector, counter).
    #[arg(long = "stage", value_name = "KIND")]
    stages: Vec<String>,
    /// Stop after this many seconds (live inputs run until interrupted otherwise).
    #[arg(long)]
    max_seconds: Option<f64>,
}

pub fn run(args: &ProcessArgs) -> anyhow::Result<ExitCode> {
    let source = parse_source(&args.input, false, false, false)
        .map_err(anyhow::Error::msg)
        .context("input")?;
    let stats = SinkStats::new();
    let sink: Box<dyn OutputSink> = match &args.out {
        Some(p) => {
            // A fresh file each run, as `--out` promises (the sink itself appends).
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?;
            Box::new(
                FileSink::open(FileSinkConfig::new(p), stats.clone())
                    .with_context(|| format!("opening {}", p.display()))?,
            )
        }
        None => Box::new(StdoutSink::new(stats.clone())),
    };
    let kinds: Vec<String> = if args.stages.is_empty() {
        vec!["blob-detector".into(), "counter".into()]
    } else {
        args.stages.clone()
    };
    let runtime = crate::media::register(nv_runtime::Runtime::builder()).build()?;
    let mut health = runtime.health_subscribe();
    let mut b = FeedConfig::builder()
        .name("process".into())
        .source(source)
        .camera_mode(CameraMode::Fixed)
        .boxed_output_sink(sink)
        .lossless();
    let configs = kinds
        .iter()
        .map(|k| crate::registry::parse_stage(k, &toml::Table::new()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    nv_stages::validate_pipeline(&configs)?;
    for stage in crate::registry::build_stages(&configs).map_err(anyhow::Error::msg)? {
        b = b.boxed_stage(stage);
    }
    let feed = runtime.add_feed(b.build()?)?;
    let started = Instant::now();
    let deadline = args
        .max_seconds
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .map(|d| started + d);
    let mut reason = None;
    let mut last_print = Instant::now();
    while reason.is_none() {
        match health.recv_timeout(Duration::from_millis(250)) {
            Ok(HealthEvent::FeedStopped { reason: r, .. }) => reason = Some(r),
            Ok(HealthEvent::SourceDisconnected { reason: r, .. }) => eprintln!("\rsource: {r}"),
            _ => {}
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        if last_print.elapsed() >= Duration::from_millis(250) {
            last_print = Instant::now();
            let m = feed.metrics();
            let secs = started.elapsed().as_secs_f64();
            eprint!(
                "\r{} frames  {:.1} frames/s  {:.1} s",
                m.frames_processed,
                m.frames_processed as f64 / secs.max(1e-9),
                secs
            );
        }
    }
    let diag = feed.diagnostics();
    runtime.shutdown();
    let written = stats.snapshot();
    if written.failed + written.dropped_by_buffer > 0 {
        // A closed pipe (`| head`) stops the lines, not the processing.
        eprintln!(
            "\nnextvision: {} of {} records not written",
            written.failed + written.dropped_by_buffer,
            written.received
        );
    }
    let secs = started.elapsed().as_secs_f64();
    let m = &diag.metrics;
    eprintln!();
    eprintln!(
        "| frames in | outputs | dropped | seconds | frames/s | p50 latency | p99 latency | stop |"
    );
    eprintln!("|---|---|---|---|---|---|---|---|");
    eprintln!(
        "| {} | {} | {} | {secs:.2} | {:.1} | {} us | {} us | {} |",
        m.frames_received,
        m.frames_processed,
        m.frames_dropped(),
        m.frames_processed as f64 / secs.max(1e-9),
        diag.receive_to_output.quantile(0.5).as_micros(),
        diag.receive_to_output.quantile(0.99).as_micros(),
        reason
            .as_ref()
            .map_or_else(|| "time limit".to_owned(), ToString::to_string),
    );
    Ok(match reason {
        None | Some(StopReason::EndOfStream | StopReason::UserRequested) => ExitCode::SUCCESS,
        Some(_) => ExitCode::FAILURE,
    })
}
