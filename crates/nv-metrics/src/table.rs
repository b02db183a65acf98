//! The metric table: every figure NextVision exports, declared once.
//!
//! Each row says a metric's name, kind, unit, help text, the labels it adds beyond its
//! scope's own, and how its value is read from a snapshot. The Prometheus exposition, the
//! OTLP export and the API's JSON all walk [`METRICS`]; none keeps a name list of its own.
//!
//! Names are Prometheus names. The other encodings derive theirs (see [`MetricDef::otlp_name`]
//! and [`MetricDef::json_key`]):
//! - OTLP: the scope prefix `nv_<scope>_` becomes `nv.<scope>.` (`process_` becomes
//!   `process.`), a counter's `_total` and a unit suffix (`_seconds`, `_bytes`) are dropped:
//!   OpenTelemetry carries those as the data type and the unit, and its Prometheus
//!   translation adds them back.
//! - API JSON: the scope prefix and `_total` are dropped; the key sits in its scope's
//!   object (a feed, a stage, a batch processor, `runtime`, `health`, `process`, `build`).
//!   Labels beyond the scope's own become nested object keys, in the table's label order.

use nv_core::health::DropReason;
use nv_core::metrics::{bucket_upper_bound_nanos, HistogramSnapshot};
use nv_runtime::{BatchMetrics, FeedDiagnostics, RuntimeDiagnostics, StageDiagnostics};

use crate::health::HealthCounters;
use crate::process::{BuildInfo, ProcessStats};

/// Histogram bucket bounds, in seconds, for every latency family.
pub const LATENCY_BUCKETS_SECONDS: [f64; 16] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic total since the series started.
    Counter,
    Gauge,
    /// Latency distribution over [`LATENCY_BUCKETS_SECONDS`].
    Histogram,
}

impl Kind {
    /// The Prometheus `# TYPE` word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Seconds,
    Bytes,
    /// A count or a ratio.
    One,
}

impl Unit {
    /// The UCUM code OpenTelemetry uses.
    pub fn ucum(self) -> &'static str {
        match self {
            Self::Seconds => "s",
            Self::Bytes => "By",
            Self::One => "1",
        }
    }

    fn name_suffix(self) -> &'static str {
        match self {
            Self::Seconds => "_seconds",
            Self::Bytes => "_bytes",
            Self::One => "",
        }
    }
}

/// What a metric is counted per: decides its identifying labels and its JSON object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Runtime,
    Feed,
    Stage,
    Batch,
    Health,
    Process,
    Build,
}

impl Scope {
    /// Labels every series of this scope carries, before the metric's own.
    pub fn labels(self) -> &'static [&'static str] {
        match self {
            Self::Feed => &["feed_id", "feed"],
            Self::Stage => &["feed_id", "feed", "stage"],
            Self::Batch => &["processor"],
            Self::Runtime | Self::Health | Self::Process | Self::Build => &[],
        }
    }

    /// The Prometheus name prefix.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Runtime => "nv_runtime_",
            Self::Feed => "nv_feed_",
            Self::Stage => "nv_stage_",
            Self::Batch => "nv_batch_",
            Self::Health => "nv_health_",
            Self::Process => "process_",
            Self::Build => "nv_build_",
        }
    }
}

/// Counted health events, as [`HealthCounters::snapshot`] returns them.
#[derive(Clone, Debug, Default)]
pub struct HealthRows {
    /// `(event, feed id or 0, events, occurrences)`.
    pub rows: Vec<(&'static str, u64, u64, u64)>,
    /// Events the counter missed (lag).
    pub missed: u64,
}

/// How a row reads its points from the snapshot; the variant is the scope.
#[derive(Clone, Copy)]
pub enum Read {
    Runtime(fn(&RuntimeDiagnostics, &mut Points)),
    Feed(fn(&FeedDiagnostics, &mut Points)),
    Stage(fn(&StageDiagnostics, &mut Points)),
    Batch(fn(&BatchMetrics, &mut Points)),
    Health(fn(&HealthRows, &mut Points)),
    Process(fn(&ProcessStats, &mut Points)),
    Build(fn(&BuildInfo<'_>, &mut Points)),
}

impl std::fmt::Debug for Read {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Read")
    }
}

impl Read {
    pub fn scope(self) -> Scope {
        match self {
            Self::Runtime(_) => Scope::Runtime,
            Self::Feed(_) => Scope::Feed,
            Self::Stage(_) => Scope::Stage,
            Self::Batch(_) => Scope::Batch,
            Self::Health(_) => Scope::Health,
            Self::Process(_) => Scope::Process,
            Self::Build(_) => Scope::Build,
        }
    }
}

/// One row of the table.
#[derive(Debug)]
pub struct MetricDef {
    /// The Prometheus name.
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Unit,
    pub help: &'static str,
    /// Labels beyond the scope's ([`Scope::labels`]), in order.
    pub labels: &'static [&'static str],
    pub read: Read,
}

impl MetricDef {
    pub fn scope(&self) -> Scope {
        self.read.scope()
    }

    /// The name without its scope prefix and without a counter's `_total`.
    fn stem(&self) -> &'static str {
        let s = self
            .name
            .strip_prefix(self.scope().prefix())
            .unwrap_or(self.name);
        if self.kind == Kind::Counter {
            s.strip_suffix("_total").unwrap_or(s)
        } else {
            s
        }
    }

    /// The OTLP metric name (mapping in the module docs).
    pub fn otlp_name(&self) -> String {
        let stem = self.stem();
        let stem = stem.strip_suffix(self.unit.name_suffix()).unwrap_or(stem);
        let scope = self
            .scope()
            .prefix()
            .trim_end_matches('_')
            .replace('_', ".");
        format!("{scope}.{stem}")
    }

    /// The key in the API JSON object of the metric's scope.
    pub fn json_key(&self) -> &'static str {
        self.stem()
    }
}

/// A histogram over [`LATENCY_BUCKETS_SECONDS`].
#[derive(Clone, Debug, PartialEq)]
pub struct Buckets {
    /// Per bucket, not cumulative; the last one counts values above the largest bound.
    pub counts: [u64; LATENCY_BUCKETS_SECONDS.len() + 1],
    /// Sum of `counts`.
    pub count: u64,
    pub sum_seconds: f64,
    pub max_seconds: f64,
    pub p50_seconds: f64,
    pub p99_seconds: f64,
}

impl Buckets {
    /// Folds a log-linear snapshot into the export buckets. A snapshot bucket is counted
    /// under the first bound at or above its upper bound, so counts are conservative
    /// (never understated).
    pub fn from_snapshot(h: &HistogramSnapshot) -> Self {
        let mut counts = [0u64; LATENCY_BUCKETS_SECONDS.len() + 1];
        let mut idx = 0usize;
        let mut below = 0u64;
        for (slot, le) in counts.iter_mut().zip(LATENCY_BUCKETS_SECONDS) {
            let le_nanos = (le * 1e9) as u64;
            while idx < h.buckets.len() && bucket_upper_bound_nanos(idx) <= le_nanos {
                *slot += h.buckets[idx];
                idx += 1;
            }
            below += *slot;
        }
        // The snapshot's fields are read independently: the total wins where it is larger.
        let overflow = h.count.max(below) - below;
        counts[LATENCY_BUCKETS_SECONDS.len()] = overflow;
        Self {
            counts,
            count: below + overflow,
            sum_seconds: h.sum_nanos as f64 / 1e9,
            max_seconds: h.max_nanos as f64 / 1e9,
            p50_seconds: h.quantile(0.5).as_secs_f64(),
            p99_seconds: h.quantile(0.99).as_secs_f64(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Sample {
    Number(f64),
    Histogram(Box<Buckets>),
}

/// One series: its labels (the scope's, then the metric's) and value.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub labels: Vec<(&'static str, String)>,
    pub value: Sample,
}

/// Collects the points a [`Read`] function emits.
#[derive(Debug)]
pub struct Points {
    base: Vec<(&'static str, String)>,
    names: &'static [&'static str],
    pub(crate) out: Vec<Point>,
}

impl Points {
    pub(crate) fn new(base: Vec<(&'static str, String)>, def: &MetricDef) -> Self {
        Self {
            base,
            names: def.labels,
            out: Vec::new(),
        }
    }

    fn push(&mut self, values: &[&str], value: Sample) {
        let mut labels = self.base.clone();
        labels.extend(
            self.names
                .iter()
                .zip(values)
                .map(|(k, v)| (*k, (*v).to_owned())),
        );
        self.out.push(Point { labels, value });
    }

    /// A value with no labels of the metric's own.
    pub fn value(&mut self, v: f64) {
        self.push(&[], Sample::Number(v));
    }

    /// A value with the metric's labels set to `values` (in the row's label order).
    pub fn labelled(&mut self, values: &[&str], v: f64) {
        self.push(values, Sample::Number(v));
    }

    pub fn histogram(&mut self, h: &HistogramSnapshot) {
        self.push(&[], Sample::Histogram(Box::new(Buckets::from_snapshot(h))));
    }
}

/// Everything one export reads, taken at one moment.
#[derive(Clone, Debug)]
pub struct Snapshot<'a> {
    pub runtime: &'a RuntimeDiagnostics,
    pub health: HealthRows,
    /// Process figures; `None` where procfs is missing or the caller leaves them out.
    pub process: Option<ProcessStats>,
    pub build: Option<BuildInfo<'a>>,
}

impl<'a> Snapshot<'a> {
    /// Runtime diagnostics and health counters only.
    pub fn new(runtime: &'a RuntimeDiagnostics, health: &HealthCounters) -> Self {
        let (rows, missed) = health.snapshot();
        Self {
            runtime,
            health: HealthRows { rows, missed },
            process: None,
            build: None,
        }
    }

    /// Adds this process's figures (read from procfs now) and the build information.
    pub fn with_process(mut self, build: BuildInfo<'a>) -> Self {
        self.process = ProcessStats::read();
        self.build = Some(build);
        self
    }
}

/// A metric's series for one snapshot.
#[derive(Debug)]
pub struct Family {
    pub def: &'static MetricDef,
    pub points: Vec<Point>,
}

fn feed_labels(f: &FeedDiagnostics) -> Vec<(&'static str, String)> {
    vec![
        ("feed_id", f.feed_id.as_u64().to_string()),
        ("feed", f.name.clone()),
    ]
}

/// Reads every row of the table from `snap`.
pub fn collect(snap: &Snapshot<'_>) -> Vec<Family> {
    METRICS
        .iter()
        .map(|def| {
            let mut points = Vec::new();
            let mut run = |base: Vec<(&'static str, String)>, f: &dyn Fn(&mut Points)| {
                let mut p = Points::new(base, def);
                f(&mut p);
                points.append(&mut p.out);
            };
            let d = snap.runtime;
            match def.read {
                Read::Runtime(read) => run(Vec::new(), &|p| read(d, p)),
                Read::Feed(read) => {
                    for feed in &d.feeds {
                        run(feed_labels(feed), &|p| read(feed, p));
                    }
                }
                Read::Stage(read) => {
                    for feed in &d.feeds {
                        for s in &feed.stages {
                            let mut base = feed_labels(feed);
                            base.push(("stage", s.stage_id.as_str().to_owned()));
                            run(base, &|p| read(s, p));
                        }
                    }
                }
                Read::Batch(read) => {
                    for b in &d.batches {
                        let base = vec![("processor", b.processor_id.as_str().to_owned())];
                        run(base, &|p| read(b, p));
                    }
                }
                Read::Health(read) => run(Vec::new(), &|p| read(&snap.health, p)),
                Read::Process(read) => {
                    if let Some(s) = &snap.process {
                        run(Vec::new(), &|p| read(s, p));
                    }
                }
                Read::Build(read) => {
                    if let Some(b) = &snap.build {
                        run(Vec::new(), &|p| read(b, p));
                    }
                }
            }
            Family { def, points }
        })
        .collect()
}

fn flag(b: bool) -> f64 {
    f64::from(u8::from(b))
}

const fn row(
    name: &'static str,
    kind: Kind,
    unit: Unit,
    help: &'static str,
    labels: &'static [&'static str],
    read: Read,
) -> MetricDef {
    MetricDef {
        name,
        kind,
        unit,
        help,
        labels,
        read,
    }
}

pub use rows::METRICS;

mod rows {
    use super::Kind::{Counter, Gauge, Histogram};
    use super::Unit::{Bytes, One, Seconds};
    use super::{flag, row, DropReason, Read};

    /// Every metric NextVision exports.
#[rustfmt::skip]
pub static METRICS: &[super::MetricDef] = &[
    // Runtime.
    row("nv_runtime_uptime_seconds", Gauge, Seconds, "Seconds since the runtime started.", &[],
        Read::Runtime(|d, p| p.value(d.uptime.as_secs_f64()))),
    row("nv_runtime_feeds", Gauge, One, "Feeds in the registry (running or stopped).", &[],
        Read::Runtime(|d, p| p.value(d.feed_count as f64))),
    row("nv_runtime_max_feeds", Gauge, One, "Configured feed limit.", &[],
        Read::Runtime(|d, p| p.value(d.max_feeds as f64))),
    row("nv_runtime_output_messages_lost_total", Counter, One,
        "Outputs lost by lagging runtime-wide subscribers.", &[],
        Read::Runtime(|d, p| p.value(d.output_messages_lost as f64))),
    row("nv_runtime_detached_threads", Gauge, One,
        "Threads that missed their stop deadline and still run.", &[],
        Read::Runtime(|d, p| p.value(d.detached_threads.len() as f64))),
    row("nv_runtime_pool_threads", Gauge, One,
        "Threads of the feed pool, spares for stuck calls included (0 with a thread per feed).", &[],
        Read::Runtime(|d, p| p.value(d.pool_threads as f64))),
    // Feeds.
    row("nv_feed_alive", Gauge, One, "1 while the feed's worker runs.", &[],
        Read::Feed(|f, p| p.value(flag(f.alive)))),
    row("nv_feed_paused", Gauge, One, "1 while paused.", &[],
        Read::Feed(|f, p| p.value(flag(f.paused)))),
    row("nv_feed_uptime_seconds", Gauge, Seconds, "Seconds since the feed was added.", &[],
        Read::Feed(|f, p| p.value(f.uptime.as_secs_f64()))),
    row("nv_feed_frames_received_total", Counter, One, "Frames delivered by the source.", &[],
        Read::Feed(|f, p| p.value(f.metrics.frames_received as f64))),
    row("nv_feed_frames_sampled_out_total", Counter, One,
        "Frames skipped by the frame-rate cap.", &[],
        Read::Feed(|f, p| p.value(f.metrics.frames_sampled_out as f64))),
    row("nv_feed_frames_dequeued_total", Counter, One, "Frames taken off the source queue.", &[],
        Read::Feed(|f, p| p.value(f.metrics.frames_dequeued as f64))),
    row("nv_feed_frames_processed_total", Counter, One, "Frames that produced an output.", &[],
        Read::Feed(|f, p| p.value(f.metrics.frames_processed as f64))),
    row("nv_feed_outputs_to_sink_total", Counter, One, "Outputs accepted by the sink queue.", &[],
        Read::Feed(|f, p| p.value(f.metrics.outputs_to_sink as f64))),
    row("nv_feed_restarts_total", Counter, One, "Feed restarts.", &[],
        Read::Feed(|f, p| p.value(f64::from(f.metrics.restarts)))),
    row("nv_feed_tracks_active", Gauge, One, "Tracks in the temporal store.", &[],
        Read::Feed(|f, p| p.value(f.metrics.tracks_active as f64))),
    row("nv_feed_state", Gauge, One,
        "1 for the state the feed is in, 0 for the others (starting, connecting, streaming, reconnecting, stalled, paused, failed, stopped).",
        &["state"],
        Read::Feed(|f, p| {
            let current = f.state.name();
            for state in nv_core::FeedState::NAMES {
                p.labelled(&[state], flag(state == current));
            }
        })),
    row("nv_feed_view_epoch", Gauge, One, "Current view epoch.", &[],
        Read::Feed(|f, p| p.value(f.metrics.view_epoch as f64))),
    row("nv_feed_frames_dropped_total", Counter, One, "Frames or outputs dropped, by reason.",
        &["reason"],
        Read::Feed(|f, p| {
            for r in DropReason::ALL {
                p.labelled(&[r.as_str()], f.metrics.dropped(r) as f64);
            }
        })),
    row("nv_feed_queue_depth", Gauge, One, "Items waiting in a feed queue.", &["queue"],
        Read::Feed(|f, p| {
            p.labelled(&["source"], f.queues.source_depth as f64);
            p.labelled(&["sink"], f.queues.sink_depth as f64);
        })),
    row("nv_feed_queue_capacity", Gauge, One, "Capacity of a feed queue.", &["queue"],
        Read::Feed(|f, p| {
            p.labelled(&["source"], f.queues.source_capacity as f64);
            p.labelled(&["sink"], f.queues.sink_capacity as f64);
        })),
    row("nv_feed_receive_to_output_seconds", Histogram, Seconds, "Source push to output ready.",
        &[], Read::Feed(|f, p| p.histogram(&f.receive_to_output))),
    row("nv_feed_receive_to_sink_seconds", Histogram, Seconds, "Source push to OutputSink::emit.",
        &[], Read::Feed(|f, p| p.histogram(&f.receive_to_sink))),
    row("nv_feed_queue_hold_seconds", Histogram, Seconds,
        "Time frames waited in the source queue.", &[],
        Read::Feed(|f, p| p.histogram(&f.queue_hold))),
    // Analytics, counted from events (see `nv_runtime::FeedAnalytics`).
    row("nv_feed_events_total", Counter, One,
        "Events produced, by kind (zone_enter, line_crossed, object_appeared, ...).", &["kind"],
        Read::Feed(|f, p| {
            for (kind, n) in &f.analytics.events {
                p.labelled(&[kind], *n as f64);
            }
        })),
    row("nv_feed_zone_occupancy", Gauge, One,
        "Tracks inside a zone now, by class (its name when known, else its id) and class id.",
        &["zone", "class", "class_id"],
        Read::Feed(|f, p| {
            let names = f.class_names.as_deref();
            let class_label = |id: u32| names.map_or_else(|| id.to_string(), |n| n.label(id).into_owned());
            for ((zone, class), c) in &f.analytics.zones {
                p.labelled(&[zone, &class_label(*class), &class.to_string()], c.occupancy as f64);
            }
        })),
    row("nv_feed_zone_entries_total", Counter, One,
        "Zone entries, by class (its name when known, else its id) and class id.",
        &["zone", "class", "class_id"],
        Read::Feed(|f, p| {
            let names = f.class_names.as_deref();
            let class_label = |id: u32| names.map_or_else(|| id.to_string(), |n| n.label(id).into_owned());
            for ((zone, class), c) in &f.analytics.zones {
                p.labelled(&[zone, &class_label(*class), &class.to_string()], c.entries as f64);
            }
        })),
    row("nv_feed_line_crossings_total", Counter, One,
        "Line crossings, by direction (left_to_right, right_to_left), class (its name when known, else its id) and class id.",
        &["line", "direction", "class", "class_id"],
        Read::Feed(|f, p| {
            let names = f.class_names.as_deref();
            let class_label = |id: u32| names.map_or_else(|| id.to_string(), |n| n.label(id).into_owned());
            for ((line, direction, class), n) in &f.analytics.lines {
                p.labelled(
                    &[line, direction.as_str(), &class_label(*class), &class.to_string()],
                    *n as f64,
                );
            }
        })),
    // Stages.
    row("nv_stage_latency_seconds", Histogram, Seconds,
        "Time spent in each stage (batch point included).", &[],
        Read::Stage(|s, p| p.histogram(&s.latency))),
    row("nv_stage_frames_processed_total", Counter, One, "Frames a stage processed.", &[],
        Read::Stage(|s, p| p.value(s.metrics.frames_processed as f64))),
    row("nv_stage_errors_total", Counter, One, "Stage errors (frame dropped).", &[],
        Read::Stage(|s, p| p.value(s.metrics.errors as f64))),
    row("nv_stage_panics_total", Counter, One, "Stage panics (session ended).", &[],
        Read::Stage(|s, p| p.value(s.metrics.panics as f64))),
    // Batch coordinators.
    row("nv_batch_dispatched_total", Counter, One, "Batches dispatched.", &[],
        Read::Batch(|b, p| p.value(b.batches_dispatched as f64))),
    row("nv_batch_items_submitted_total", Counter, One, "Items submitted.", &[],
        Read::Batch(|b, p| p.value(b.items_submitted as f64))),
    row("nv_batch_items_processed_total", Counter, One, "Items processed.", &[],
        Read::Batch(|b, p| p.value(b.items_processed as f64))),
    row("nv_batch_items_failed_total", Counter, One, "Items in failed batches.", &[],
        Read::Batch(|b, p| p.value(b.items_failed as f64))),
    row("nv_batch_items_rejected_total", Counter, One, "Items refused: queue full.", &[],
        Read::Batch(|b, p| p.value(b.items_rejected as f64))),
    row("nv_batch_items_in_flight_rejected_total", Counter, One,
        "Items refused: per-feed in-flight cap.", &[],
        Read::Batch(|b, p| p.value(b.items_in_flight_rejected as f64))),
    row("nv_batch_items_timed_out_total", Counter, One, "Items whose feed stopped waiting.", &[],
        Read::Batch(|b, p| p.value(b.items_timed_out as f64))),
    row("nv_batch_pending_items", Gauge, One, "Items queued now.", &[],
        Read::Batch(|b, p| p.value(b.pending_items as f64))),
    row("nv_batch_fill_ratio", Gauge, One, "Average batch size over configured maximum.", &[],
        Read::Batch(|b, p| p.value(b.avg_fill_ratio()))),
    row("nv_batch_processing_seconds", Histogram, Seconds,
        "Time in BatchProcessor::process per batch.", &[],
        Read::Batch(|b, p| p.histogram(&b.processing))),
    row("nv_batch_formation_seconds", Histogram, Seconds,
        "Oldest item's wait before its batch was dispatched.", &[],
        Read::Batch(|b, p| p.histogram(&b.formation))),
    // Health events.
    row("nv_health_events_total", Counter, One,
        "Health events emitted, by type and feed (0 = runtime-wide).", &["event", "feed_id"],
        Read::Health(|h, p| {
            for (event, feed, n, _) in &h.rows {
                p.labelled(&[*event, &feed.to_string()], *n as f64);
            }
        })),
    row("nv_health_occurrences_total", Counter, One,
        "Occurrences behind health events (coalesced events carry counts).",
        &["event", "feed_id"],
        Read::Health(|h, p| {
            for (event, feed, _, n) in &h.rows {
                p.labelled(&[*event, &feed.to_string()], *n as f64);
            }
        })),
    row("nv_health_events_missed_total", Counter, One,
        "Health events the metrics subscriber missed (lag).", &[],
        Read::Health(|h, p| p.value(h.missed as f64))),
    // Build and process (conventional `process_*` names, from procfs).
    row("nv_build_info", Gauge, One, "Version, commit and cargo features of the running binary.",
        &["version", "commit", "features"],
        Read::Build(|b, p| p.labelled(&[b.version, b.commit, b.features], 1.0))),
    row("process_cpu_seconds_total", Counter, Seconds,
        "User and system CPU time spent, in seconds.", &[],
        Read::Process(|s, p| p.value(s.cpu_seconds))),
    row("process_resident_memory_bytes", Gauge, Bytes, "Resident memory size in bytes.", &[],
        Read::Process(|s, p| p.value(s.resident_memory_bytes as f64))),
    row("process_virtual_memory_bytes", Gauge, Bytes, "Virtual memory size in bytes.", &[],
        Read::Process(|s, p| p.value(s.virtual_memory_bytes as f64))),
    row("process_open_fds", Gauge, One, "Open file descriptors.", &[],
        Read::Process(|s, p| p.value(s.open_fds as f64))),
    row("process_max_fds", Gauge, One, "Soft limit on open file descriptors.", &[],
        Read::Process(|s, p| {
            if let Some(max) = s.max_fds {
                p.value(max as f64);
            }
        })),
    row("process_threads", Gauge, One, "Operating system threads of the process.", &[],
        Read::Process(|s, p| p.value(s.threads as f64))),
    row("process_start_time_seconds", Gauge, Seconds,
        "Start time of the process since the Unix epoch, in seconds.", &[],
        Read::Process(|s, p| p.value(s.start_time_seconds))),
];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_follow_the_conventions() {
        let mut seen = std::collections::BTreeSet::new();
        for def in METRICS {
            assert!(seen.insert(def.name), "duplicate {}", def.name);
            assert!(def.name.starts_with(def.scope().prefix()), "{}", def.name);
            assert_eq!(
                def.kind == Kind::Counter,
                def.name.ends_with("_total"),
                "{}",
                def.name
            );
            if def.kind == Kind::Histogram {
                assert_eq!(def.unit, Unit::Seconds, "{}", def.name);
            }
            let stem = def.name.trim_end_matches("_total");
            assert!(stem.ends_with(def.unit.name_suffix()), "{}", def.name);
        }
    }

    #[test]
    fn name_mappings() {
        let find = |n: &str| {
            METRICS
                .iter()
                .find(|d| d.name == n)
                .unwrap_or_else(|| panic!("{n}"))
        };
        let m = find("nv_feed_frames_received_total");
        assert_eq!(
            (m.otlp_name().as_str(), m.json_key()),
            ("nv.feed.frames_received", "frames_received")
        );
        let m = find("nv_runtime_uptime_seconds");
        assert_eq!(
            (m.otlp_name().as_str(), m.json_key()),
            ("nv.runtime.uptime", "uptime_seconds")
        );
        let m = find("process_cpu_seconds_total");
        assert_eq!(
            (m.otlp_name().as_str(), m.json_key()),
            ("process.cpu", "cpu_seconds")
        );
        let m = find("nv_stage_latency_seconds");
        assert_eq!(m.otlp_name(), "nv.stage.latency");
    }

    #[test]
    fn buckets_sum_to_the_count() {
        let h = nv_core::metrics::LatencyHistogram::default();
        for micros in [50u64, 700, 3_000, 80_000, 20_000_000] {
            h.record(std::time::Duration::from_micros(micros));
        }
        let b = Buckets::from_snapshot(&h.snapshot());
        assert_eq!(b.count, 5);
        assert_eq!(b.counts.iter().sum::<u64>(), 5);
        // 20 s lies above the largest bound (10 s).
        assert_eq!(b.counts[LATENCY_BUCKETS_SECONDS.len()], 1);
    }
}
