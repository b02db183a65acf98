//! Prometheus text exposition (0.0.4) of the metric table.

use std::fmt::Write as _;

use nv_runtime::RuntimeDiagnostics;

use crate::health::HealthCounters;
use crate::table::{collect, Sample, Snapshot, LATENCY_BUCKETS_SECONDS};

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

    fn sample(
        &mut self,
        name: &str,
        suffix: &str,
        labels: &[(&str, String)],
        extra: Option<(&str, &str)>,
        value: f64,
    ) {
        self.out.push_str(name);
        self.out.push_str(suffix);
        let all = labels.iter().map(|(k, v)| (*k, v.as_str())).chain(extra);
        let mut first = true;
        for (k, v) in all {
            self.out.push(if first { '{' } else { ',' });
            first = false;
            self.put(format_args!("{k}=\"{}\"", escape(v)));
        }
        if !first {
            self.out.push('}');
        }
        self.put(format_args!(" {value}\n"));
    }
}

/// Renders every metric of the table with series in `snap`. A family without series (no
/// batch coordinator, no procfs) is left out.
pub fn render(snap: &Snapshot<'_>) -> String {
    let mut w = Writer {
        out: String::with_capacity(4096 + snap.runtime.feeds.len() * 4096),
    };
    for family in collect(snap) {
        if family.points.is_empty() {
            continue;
        }
        let def = family.def;
        let name = def.name;
        w.put(format_args!("# HELP {name} {}\n", def.help));
        w.put(format_args!("# TYPE {name} {}\n", def.kind.as_str()));
        for point in &family.points {
            match &point.value {
                Sample::Number(v) => w.sample(name, "", &point.labels, None, *v),
                Sample::Histogram(b) => {
                    let mut cumulative = 0u64;
                    for (n, le) in b.counts.iter().zip(LATENCY_BUCKETS_SECONDS) {
                        cumulative += n;
                        let le = format!("{le}");
                        w.sample(
                            name,
                            "_bucket",
                            &point.labels,
                            Some(("le", &le)),
                            cumulative as f64,
                        );
                    }
                    w.sample(
                        name,
                        "_bucket",
                        &point.labels,
                        Some(("le", "+Inf")),
                        b.count as f64,
                    );
                    w.sample(name, "_sum", &point.labels, None, b.sum_seconds);
                    w.sample(name, "_count", &point.labels, None, b.count as f64);
                }
            }
        }
    }
    w.out
}

/// Renders the runtime diagnostics and health counters (no process or build figures).
pub fn render_prometheus(diag: &RuntimeDiagnostics, health: &HealthCounters) -> String {
    render(&Snapshot::new(diag, health))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
