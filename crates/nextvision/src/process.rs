//! `nextvision process INPUT`: one video in, one JSON line per frame out, a progress line
//! while it runs and a summary table at the end. Lines are written by the same nv-sinks
//! file/stdout sinks as the daemon's, so they are schema-v1 output records.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nv_core::ErrorKind;
use nv_runtime::{CameraMode, FeedConfig, HealthEvent, OutputSink, StopReason};
use nv_sinks::{FileSink, FileSinkConfig, SinkStats, StdoutSink};

use crate::config::parse_source;

#[derive(clap::Args, Debug)]
pub struct ProcessArgs {
    /// A video file, an `rtsp://`/`http(s)://` URL, `test:PATTERN` or `synthetic:WxH@FPS`
    /// (default with `--config`: the feed's own source).
    #[arg(required_unless_present = "config")]
    input: Option<String>,
    /// Where to write JSON lines (default: stdout).
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Stages by kind, in order (default: blob-detector, counter).
    #[arg(long = "stage", value_name = "KIND", conflicts_with = "config")]
    stages: Vec<String>,
    /// Take the stages, with their parameters, from a feed of this configuration file
    /// (validated whole; the feed's source is replaced by INPUT).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The feed of `--config` whose stages run (needed when the file has several).
    #[arg(long, value_name = "NAME", requires = "config")]
    feed: Option<String>,
    /// Stop after this many seconds (live inputs run until interrupted otherwise).
    #[arg(long)]
    max_seconds: Option<f64>,
    /// Give up when no frame arrived within this many seconds.
    #[arg(long, default_value_t = 10.0)]
    startup_timeout_secs: f64,
    /// Write event records only (zone, line, object, camera events), no frame records.
    #[arg(long)]
    events_only: bool,
}

/// Counts what the summary reports that the runtime does not: detections, and distinct
/// tracks (capped, so an endless live input cannot grow it without bound).
struct Counting {
    inner: Box<dyn OutputSink>,
    counts: Arc<parking_lot::Mutex<Counts>>,
}

#[derive(Debug, Default)]
struct Counts {
    detections: u64,
    tracks: std::collections::HashSet<u64>,
}

/// Distinct track ids the summary remembers.
const MAX_TRACKS_COUNTED: usize = 1_000_000;

impl OutputSink for Counting {
    fn emit(&mut self, output: nv_runtime::SharedOutput) {
        {
            let mut c = self.counts.lock();
            c.detections += output.detections.len() as u64;
            for t in &output.tracks {
                if c.tracks.len() < MAX_TRACKS_COUNTED {
                    c.tracks.insert(t.id.as_u64());
                }
            }
        }
        self.inner.emit(output);
    }
    fn flush(&mut self) {
        self.inner.flush();
    }
}

/// Exit codes of `process` (documented in the README).
pub mod exit {
    /// Frames were processed, to the end of the input or the time limit.
    pub const OK: u8 = 0;
    /// Anything else went wrong (bad arguments or output, input failed after frames).
    pub const FAILED: u8 = 1;
    /// The input was opened but no frame was processed (nothing arrived in time,
    /// connection kept failing).
    pub const NO_FRAMES: u8 = 3;
    /// The input can never work as given: missing file, not a file, no playable stream,
    /// unsupported codec, credentials or path refused, malformed source.
    pub const PERMANENT_INPUT_ERROR: u8 = 4;
    /// Stopped by SIGINT/SIGTERM.
    pub const INTERRUPTED: u8 = 130;
}

/// How the run ended, before the verdict.
enum End {
    Stopped(StopReason),
    TimeLimit,
    Interrupted,
    /// A live input that delivered no frame within the startup timeout.
    NoFrameInTime,
    /// The server refused access: waiting for the long access back-off helps nobody here.
    AccessDenied(String),
}

/// Sets the flag on SIGINT/SIGTERM (a helper thread with a tiny async runtime).
fn watch_signals() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let thread_flag = Arc::clone(&flag);
    let spawned = std::thread::Builder::new()
        .name("nv-signals".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(crate::run::wait_for_signal());
            thread_flag.store(true, Ordering::SeqCst);
        });
    if spawned.is_err() {
        tracing::warn!("no signal handler: SIGINT ends the process at once");
    }
    flag
}

pub fn run(args: &ProcessArgs) -> anyhow::Result<ExitCode> {
    let configured = match &args.config {
        Some(path) => match feed_of(path, args.feed.as_deref()) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("nextvision: {e:#}");
                return Ok(ExitCode::from(exit::FAILED));
            }
        },
        None => None,
    };
    let source = match (&args.input, &configured) {
        (Some(input), _) => match parse_source(input, false, false, false) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("nextvision: permanent input error (invalid_source): {e}");
                return Ok(ExitCode::from(exit::PERMANENT_INPUT_ERROR));
            }
        },
        (None, Some(spec)) => spec.source.clone(),
        (None, None) => anyhow::bail!("no input: give INPUT or --config"),
    };
    let records = if args.events_only {
        nv_sinks::Records::EVENTS
    } else {
        nv_sinks::Records::FRAMES
    };
    let stats = SinkStats::new();
    let sink: Box<dyn OutputSink> = match &args.out {
        Some(p) => {
            // A fresh file each run, as `--out` promises (the sink itself appends).
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?;
            let mut config = FileSinkConfig::new(p);
            config.records = records;
            Box::new(
                FileSink::open(config, stats.clone())
                    .with_context(|| format!("opening {}", p.display()))?,
            )
        }
        None => Box::new(StdoutSink::new(stats.clone()).with_records(records)),
    };
    let counts = Arc::new(parking_lot::Mutex::new(Counts::default()));
    let sink: Box<dyn OutputSink> = Box::new(Counting {
        inner: sink,
        counts: Arc::clone(&counts),
    });
    let (name, configs) = match configured {
        Some(spec) => (spec.section.name.clone(), spec.stages),
        None => ("process".to_owned(), stages_by_kind(&args.stages)?),
    };
    let runtime = crate::media::register(nv_runtime::Runtime::builder()).build()?;
    let mut health = runtime.health_subscribe();
    let mut b = FeedConfig::builder()
        .name(name)
        .source(source)
        .camera_mode(CameraMode::Fixed)
        .boxed_output_sink(sink)
        .lossless();
    let (class_names, _checked_by_validation) = nv_stages::feed_class_names(&configs);
    if !class_names.is_empty() {
        b = b.class_names(Arc::new(class_names));
    }
    let stages = match crate::registry::build_stages(&configs) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("nextvision: stages: {e}");
            return Ok(ExitCode::from(exit::FAILED));
        }
    };
    for stage in stages {
        b = b.boxed_stage(stage);
    }
    let startup =
        Duration::try_from_secs_f64(args.startup_timeout_secs).unwrap_or(Duration::from_secs(10));
    b = b.startup_timeout(startup);
    let interrupted = watch_signals();
    let feed = runtime.add_feed(b.build()?)?;
    let started = Instant::now();
    let deadline = args
        .max_seconds
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .map(|d| started + d);
    let mut end = None;
    let mut last_print = Instant::now();
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    while end.is_none() {
        match health.recv_timeout(Duration::from_millis(250)) {
            Ok(HealthEvent::FeedStopped { reason: r, .. }) => end = Some(End::Stopped(r)),
            Ok(HealthEvent::SourceDisconnected { reason: r, .. }) => eprintln!("\rsource: {r}"),
            Ok(HealthEvent::SourceAccessDenied { error, .. }) => {
                end = Some(End::AccessDenied(nv_core::error::cause_chain(&error)));
            }
            _ => {}
        }
        if end.is_some() {
            break;
        }
        if interrupted.load(Ordering::SeqCst) {
            end = Some(End::Interrupted);
        } else if deadline.is_some_and(|d| Instant::now() >= d) {
            end = Some(End::TimeLimit);
        } else if feed.metrics().frames_received == 0 && started.elapsed() >= startup {
            // The source's own startup watchdog fires at the same moment: give it a
            // second to report why, so the verdict can name the cause.
            if feed.last_error().is_some() || started.elapsed() >= startup + Duration::from_secs(1)
            {
                end = Some(End::NoFrameInTime);
            }
        }
        // The `\r` progress line is for a person watching; in a log it would be noise.
        if progress && last_print.elapsed() >= Duration::from_millis(250) {
            last_print = Instant::now();
            let m = feed.metrics();
            let secs = started.elapsed().as_secs_f64();
            eprint!(
                "\r{} frames  {:.1} frames/s  {:.1} s  {}",
                m.frames_processed,
                m.frames_processed as f64 / secs.max(1e-9),
                secs,
                feed.state().name()
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
    let end = end.unwrap_or(End::TimeLimit);
    let stop_text = match &end {
        End::Stopped(r) => r.to_string(),
        End::TimeLimit => "time limit".to_owned(),
        End::Interrupted => "interrupted".to_owned(),
        End::NoFrameInTime => format!("no frame within {} s", startup.as_secs_f64()),
        End::AccessDenied(_) => "access denied".to_owned(),
    };
    if progress {
        eprintln!();
    }
    eprintln!(
        "| frames in | outputs | dropped | seconds | frames/s | p50 latency | p99 latency | stop |"
    );
    eprintln!("|---|---|---|---|---|---|---|---|");
    eprintln!(
        "| {} | {} | {} | {secs:.2} | {:.1} | {} us | {} us | {stop_text} |",
        m.frames_received,
        m.frames_processed,
        m.frames_dropped(),
        m.frames_processed as f64 / secs.max(1e-9),
        diag.receive_to_output.quantile(0.5).as_micros(),
        diag.receive_to_output.quantile(0.99).as_micros(),
    );
    print_analytics(&diag, &counts.lock());
    eprintln!("state: {}", diag.state);
    if let Some(e) = &diag.last_error {
        eprintln!(
            "last error: {} ({}, {} time(s))",
            e.message, e.kind, e.count
        );
    }
    let (code, verdict) = verdict(&end, m.frames_processed, diag.last_error.as_ref());
    eprintln!("nextvision: {verdict}");
    Ok(ExitCode::from(code))
}

/// `--stage KIND...` (default: blob-detector, counter), each with its default parameters.
fn stages_by_kind(kinds: &[String]) -> anyhow::Result<Vec<nv_stages::StageConfig>> {
    let default = ["blob-detector".to_owned(), "counter".to_owned()];
    let kinds = if kinds.is_empty() {
        &default[..]
    } else {
        kinds
    };
    let configs = kinds
        .iter()
        .map(|k| crate::registry::parse_stage(k, &toml::Table::new()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    nv_stages::validate_pipeline(&configs)?;
    Ok(configs)
}

/// Detections, tracks, and events by kind, zone and line.
fn print_analytics(diag: &nv_runtime::FeedDiagnostics, counts: &Counts) {
    let a = &diag.analytics;
    let tracks = if counts.tracks.len() >= MAX_TRACKS_COUNTED {
        format!("{MAX_TRACKS_COUNTED} or more")
    } else {
        counts.tracks.len().to_string()
    };
    let events: u64 = a.events.values().sum();
    eprintln!(
        "detections: {}  tracks: {tracks}  events: {events}",
        counts.detections
    );
    if !a.events.is_empty() {
        let by_kind: Vec<String> = a.events.iter().map(|(k, n)| format!("{k} {n}")).collect();
        eprintln!("events by kind: {}", by_kind.join(", "));
    }
    let mut zones: std::collections::BTreeMap<&str, (u64, u64, u64, u64)> = Default::default();
    for ((zone, _), c) in &a.zones {
        let z = zones.entry(zone).or_default();
        z.0 += c.entries;
        z.1 += c.exits;
        z.2 += c.dwells;
        z.3 += c.occupancy;
    }
    for (zone, (entries, exits, dwells, inside)) in zones {
        eprintln!(
            "zone {zone}: {entries} entered, {exits} exited, {dwells} dwelled, {inside} inside at the end"
        );
    }
    let mut lines: std::collections::BTreeMap<&str, (u64, u64)> = Default::default();
    for ((line, direction, _), n) in &a.lines {
        let l = lines.entry(line).or_default();
        match direction {
            nv_perception::CrossingDirection::LeftToRight => l.0 += n,
            nv_perception::CrossingDirection::RightToLeft => l.1 += n,
        }
    }
    for (line, (ltr, rtl)) in lines {
        eprintln!("line {line}: {ltr} left_to_right, {rtl} right_to_left");
    }
}

/// Feed `feed` (or the only feed) of configuration file `path`, validated.
fn feed_of(path: &std::path::Path, feed: Option<&str>) -> anyhow::Result<crate::config::FeedSpec> {
    let config = crate::config::load(path, crate::config::EnvMode::Resolve)?;
    let names = || {
        config
            .feeds
            .iter()
            .map(|f| f.section.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let spec = match feed {
        Some(name) => config
            .feeds
            .iter()
            .find(|f| f.section.name == name)
            .with_context(|| {
                format!(
                    "{}: no feed named `{name}` (feeds: {})",
                    path.display(),
                    names()
                )
            })?,
        None => match config.feeds.as_slice() {
            [only] => only,
            [] => anyhow::bail!("{}: the file defines no feed", path.display()),
            _ => anyhow::bail!(
                "{}: several feeds ({}); choose one with --feed",
                path.display(),
                names()
            ),
        },
    };
    Ok(spec.clone())
}

/// Exit code and a one-line verdict that names the cause.
fn verdict(end: &End, frames: u64, last: Option<&nv_core::LastError>) -> (u8, String) {
    let cause = last.map_or_else(|| "no error was reported".to_owned(), |e| e.message.clone());
    let permanent_last = last.is_some_and(|e| e.kind.error_kind() == ErrorKind::Permanent);
    match end {
        End::Interrupted => (
            exit::INTERRUPTED,
            format!("interrupted after {frames} frames"),
        ),
        End::AccessDenied(cause) => (
            exit::PERMANENT_INPUT_ERROR,
            format!("permanent input error: {cause}"),
        ),
        End::Stopped(StopReason::SourceFailed { kind, cause })
            if kind.error_kind() == ErrorKind::Permanent =>
        {
            (
                exit::PERMANENT_INPUT_ERROR,
                format!("permanent input error ({kind}): {cause}"),
            )
        }
        _ if frames == 0 && permanent_last => (
            exit::PERMANENT_INPUT_ERROR,
            format!("permanent input error: {cause}"),
        ),
        End::NoFrameInTime => (exit::NO_FRAMES, format!("no frames: {cause}")),
        _ if frames == 0 => (exit::NO_FRAMES, format!("no frames processed: {cause}")),
        End::Stopped(r) if r.is_failure() => (exit::FAILED, format!("input failed: {r}")),
        _ => (exit::OK, format!("{frames} frames processed")),
    }
}
