//! Prometheus text exposition.

use std::fmt::Write as _;

use nv_core::health::DropReason;
use nv_core::metrics::{bucket_upper_bound_nanos, HistogramSnapshot};
use nv_runtime::RuntimeDiagnostics;

use crate::health::HealthCounters;

/// Histogram bucket bounds, in seconds, for every latency family.
pub const LATENCY_BUCKETS_SECONDS: [f64; 16] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Escapes a label value (backslash, double quote, newline).
pub(crate) fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

struct Writer {
    out: String,
}

impl Writer {
    /// Writing to a `String` cannot fail.
    fn put(&mut self, args: std::fmt::Arguments<'_>) {
        self.out.write_fmt(args).unwrap_or(());
    }

    fn family(&mut self, name: &str, kind: &str, help: &str) {
        self.put(format_args!("# HELP {name} {help}\n"));
        self.put(format_args!("# TYPE {name} {kind}\n"));
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.put(format_args!("{k}=\"{}\"", escape(v)));
            }
            self.out.push('}');
        }
        self.put(format_args!(" {value}\n"));
    }

    /// A histogram from a log-linear snapshot. A snapshot bucket is counted under the first
    /// `le` at or above its upper bound, so counts are conservative (never understated).
    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &HistogramSnapshot) {
        let mut cumulative = 0u64;
        let mut idx = 0usize;
        for le in LATENCY_BUCKETS_SECONDS {
            let le_nanos = (le * 1e9) as u64;
            while idx < h.buckets.len() && bucket_upper_bound_nanos(idx) <= le_nanos {
                cumulative += h.buckets[idx];
                idx += 1;
            }
            let le_text = format!("{le}");
            let mut l = labels.to_vec();
            l.push(("le", &le_text));
            self.sample(&format!("{name}_bucket"), &l, cumulative as f64);
        }
        let mut l = labels.to_vec();
        l.push(("le", "+Inf"));
        self.sample(&format!("{name}_bucket"), &l, h.count as f64);
        self.sample(&format!("{name}_sum"), labels, h.sum_nanos as f64 / 1e9);
        self.sample(&format!("{name}_count"), labels, h.count as f64);
    }
}

/// Renders everything in `diag` and `health` as Prometheus text.
pub fn render_prometheus(diag: &RuntimeDiagnostics, health: &HealthCounters) -> String {
    let mut w = Writer {
        out: String::with_capacity(4096 + diag.feeds.len() * 4096),
    };
    w.family(
        "nv_runtime_uptime_seconds",
        "gauge",
        "Seconds since the runtime started.",
    );
    w.sample("nv_runtime_uptime_seconds", &[], diag.uptime.as_secs_f64());
    w.family(
        "nv_runtime_feeds",
        "gauge",
        "Feeds in the registry (running or stopped).",
    );
    w.sample("nv_runtime_feeds", &[], diag.feed_count as f64);
    w.family("nv_runtime_max_feeds", "gauge", "Configured feed limit.");
    w.sample("nv_runtime_max_feeds", &[], diag.max_feeds as f64);
    w.family(
        "nv_runtime_output_messages_lost_total",
        "counter",
        "Outputs lost by lagging runtime-wide subscribers.",
    );
    w.sample(
        "nv_runtime_output_messages_lost_total",
        &[],
        diag.output_messages_lost as f64,
    );
    w.family(
        "nv_runtime_detached_threads",
        "gauge",
        "Threads that missed their stop deadline and still run.",
    );
    w.sample(
        "nv_runtime_detached_threads",
        &[],
        diag.detached_threads.len() as f64,
    );

    let ids: Vec<String> = diag
        .feeds
        .iter()
        .map(|f| f.feed_id.as_u64().to_string())
        .collect();
    let labels = |i: usize| -> [(&str, &str); 2] {
        [
            ("feed_id", ids[i].as_str()),
            ("feed", diag.feeds[i].name.as_str()),
        ]
    };

    type Gauge = fn(&nv_runtime::FeedDiagnostics) -> f64;
    let per_feed: [(&str, &str, &str, Gauge); 10] = [
        (
            "nv_feed_alive",
            "gauge",
            "1 while the feed's worker runs.",
            |f| f64::from(u8::from(f.alive)),
        ),
        ("nv_feed_paused", "gauge", "1 while paused.", |f| {
            f64::from(u8::from(f.paused))
        }),
        (
            "nv_feed_uptime_seconds",
            "gauge",
            "Seconds since the feed was added.",
            |f| f.uptime.as_secs_f64(),
        ),
        (
            "nv_feed_frames_received_total",
            "counter",
            "Frames delivered by the source.",
            |f| f.metrics.frames_received as f64,
        ),
        (
            "nv_feed_frames_sampled_out_total",
            "counter",
            "Frames skipped by the frame-rate cap.",
            |f| f.metrics.frames_sampled_out as f64,
        ),
        (
            "nv_feed_frames_dequeued_total",
            "counter",
            "Frames taken off the source queue.",
            |f| f.metrics.frames_dequeued as f64,
        ),
        (
            "nv_feed_frames_processed_total",
            "counter",
            "Frames that produced an output.",
            |f| f.metrics.frames_processed as f64,
        ),
        (
            "nv_feed_outputs_to_sink_total",
            "counter",
            "Outputs accepted by the sink queue.",
            |f| f.metrics.outputs_to_sink as f64,
        ),
        ("nv_feed_restarts_total", "counter", "Feed restarts.", |f| {
            f64::from(f.metrics.restarts)
        }),
        (
            "nv_feed_tracks_active",
            "gauge",
            "Tracks in the temporal store.",
            |f| f.metrics.tracks_active as f64,
        ),
    ];
    for (name, kind, help, get) in per_feed {
        w.family(name, kind, help);
        for (i, f) in diag.feeds.iter().enumerate() {
            w.sample(name, &labels(i), get(f));
        }
    }
    w.family(
        "nv_feed_state",
        "gauge",
        "1 for the state the feed is in, 0 for the others (starting, connecting, streaming, reconnecting, stalled, paused, failed, stopped).",
    );
    for (i, f) in diag.feeds.iter().enumerate() {
        let current = f.state.name();
        for state in nv_core::FeedState::NAMES {
            let [a, b] = labels(i);
            w.sample(
                "nv_feed_state",
                &[a, b, ("state", state)],
                f64::from(u8::from(state == current)),
            );
        }
    }
    w.family("nv_feed_view_epoch", "gauge", "Current view epoch.");
    for (i, f) in diag.feeds.iter().enumerate() {
        w.sample(
            "nv_feed_view_epoch",
            &labels(i),
            f.metrics.view_epoch as f64,
        );
    }
    w.family(
        "nv_feed_frames_dropped_total",
        "counter",
        "Frames or outputs dropped, by reason.",
    );
    for (i, f) in diag.feeds.iter().enumerate() {
        for r in DropReason::ALL {
            let [a, b] = labels(i);
            w.sample(
                "nv_feed_frames_dropped_total",
                &[a, b, ("reason", r.as_str())],
                f.metrics.dropped(r) as f64,
            );
        }
    }
    w.family(
        "nv_feed_queue_depth",
        "gauge",
        "Items waiting in a feed queue.",
    );
    for (i, f) in diag.feeds.iter().enumerate() {
        let [a, b] = labels(i);
        w.sample(
            "nv_feed_queue_depth",
            &[a, b, ("queue", "source")],
            f.queues.source_depth as f64,
        );
        w.sample(
            "nv_feed_queue_depth",
            &[a, b, ("queue", "sink")],
            f.queues.sink_depth as f64,
        );
    }
    w.family(
        "nv_feed_queue_capacity",
        "gauge",
        "Capacity of a feed queue.",
    );
    for (i, f) in diag.feeds.iter().enumerate() {
        let [a, b] = labels(i);
        w.sample(
            "nv_feed_queue_capacity",
            &[a, b, ("queue", "source")],
            f.queues.source_capacity as f64,
        );
        w.sample(
            "nv_feed_queue_capacity",
            &[a, b, ("queue", "sink")],
            f.queues.sink_capacity as f64,
        );
    }
    type Hist = fn(&nv_runtime::FeedDiagnostics) -> &HistogramSnapshot;
    let hists: [(&str, &str, Hist); 3] = [
        (
            "nv_feed_receive_to_output_seconds",
            "Source push to output ready.",
            |f| &f.receive_to_output,
        ),
        (
            "nv_feed_receive_to_sink_seconds",
            "Source push to OutputSink::emit.",
            |f| &f.receive_to_sink,
        ),
        (
            "nv_feed_queue_hold_seconds",
            "Time frames waited in the source queue.",
            |f| &f.queue_hold,
        ),
    ];
    for (name, help, get) in hists {
        w.family(name, "histogram", help);
        for (i, f) in diag.feeds.iter().enumerate() {
            w.histogram(name, &labels(i), get(f));
        }
    }
    w.family(
        "nv_stage_latency_seconds",
        "histogram",
        "Time spent in each stage (batch point included).",
    );
    for (i, f) in diag.feeds.iter().enumerate() {
        for s in &f.stages {
            let [a, b] = labels(i);
            w.histogram(
                "nv_stage_latency_seconds",
                &[a, b, ("stage", s.stage_id.as_str())],
                &s.latency,
            );
        }
    }
    type StageCount = fn(&nv_core::metrics::StageMetrics) -> u64;
    let stage_counts: [(&str, &str, StageCount); 3] = [
        (
            "nv_stage_frames_processed_total",
            "Frames a stage processed.",
            |m| m.frames_processed,
        ),
        (
            "nv_stage_errors_total",
            "Stage errors (frame dropped).",
            |m| m.errors,
        ),
        (
            "nv_stage_panics_total",
            "Stage panics (session ended).",
            |m| m.panics,
        ),
    ];
    for (name, help, get) in stage_counts {
        w.family(name, "counter", help);
        for (i, f) in diag.feeds.iter().enumerate() {
            for s in &f.stages {
                let [a, b] = labels(i);
                w.sample(
                    name,
                    &[a, b, ("stage", s.stage_id.as_str())],
                    get(&s.metrics) as f64,
                );
            }
        }
    }

    type BatchCount = fn(&nv_runtime::BatchMetrics) -> f64;
    let batch: [(&str, &str, &str, BatchCount); 9] = [
        (
            "nv_batch_dispatched_total",
            "counter",
            "Batches dispatched.",
            |b| b.batches_dispatched as f64,
        ),
        (
            "nv_batch_items_submitted_total",
            "counter",
            "Items submitted.",
            |b| b.items_submitted as f64,
        ),
        (
            "nv_batch_items_processed_total",
            "counter",
            "Items processed.",
            |b| b.items_processed as f64,
        ),
        (
            "nv_batch_items_failed_total",
            "counter",
            "Items in failed batches.",
            |b| b.items_failed as f64,
        ),
        (
            "nv_batch_items_rejected_total",
            "counter",
            "Items refused: queue full.",
            |b| b.items_rejected as f64,
        ),
        (
            "nv_batch_items_in_flight_rejected_total",
            "counter",
            "Items refused: per-feed in-flight cap.",
            |b| b.items_in_flight_rejected as f64,
        ),
        (
            "nv_batch_items_timed_out_total",
            "counter",
            "Items whose feed stopped waiting.",
            |b| b.items_timed_out as f64,
        ),
        (
            "nv_batch_pending_items",
            "gauge",
            "Items queued now.",
            |b| b.pending_items as f64,
        ),
        (
            "nv_batch_fill_ratio",
            "gauge",
            "Average batch size over configured maximum.",
            nv_runtime::BatchMetrics::avg_fill_ratio,
        ),
    ];
    for (name, kind, help, get) in batch {
        w.family(name, kind, help);
        for b in &diag.batches {
            w.sample(name, &[("processor", b.processor_id.as_str())], get(b));
        }
    }
    w.family(
        "nv_batch_processing_seconds",
        "histogram",
        "Time in BatchProcessor::process per batch.",
    );
    for b in &diag.batches {
        w.histogram(
            "nv_batch_processing_seconds",
            &[("processor", b.processor_id.as_str())],
            &b.processing,
        );
    }
    w.family(
        "nv_batch_formation_seconds",
        "histogram",
        "Oldest item's wait before its batch was dispatched.",
    );
    for b in &diag.batches {
        w.histogram(
            "nv_batch_formation_seconds",
            &[("processor", b.processor_id.as_str())],
            &b.formation,
        );
    }

    let (rows, lagged) = health.snapshot();
    w.family(
        "nv_health_events_total",
        "counter",
        "Health events emitted, by type and feed (0 = runtime-wide).",
    );
    for (event, feed, n, _) in &rows {
        w.sample(
            "nv_health_events_total",
            &[("event", event), ("feed_id", &feed.to_string())],
            *n as f64,
        );
    }
    w.family(
        "nv_health_occurrences_total",
        "counter",
        "Occurrences behind health events (coalesced events carry counts).",
    );
    for (event, feed, _, n) in &rows {
        w.sample(
            "nv_health_occurrences_total",
            &[("event", event), ("feed_id", &feed.to_string())],
            *n as f64,
        );
    }
    w.family(
        "nv_health_events_missed_total",
        "counter",
        "Health events the metrics subscriber missed (lag).",
    );
    w.sample("nv_health_events_missed_total", &[], lagged as f64);
    w.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
