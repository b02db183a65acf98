//! Process figures parse as Prometheus text and describe this
//! process: its thread count, open descriptors and CPU time move with what the test does.
//! The only test in this binary, so no other test's threads come and go meanwhile.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::time::{SystemTime, UNIX_EPOCH};

use nv_metrics::{render, BuildInfo, HealthCounters, ProcessStats, Snapshot};

fn scrape(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
}

fn value(scrape: &prometheus_parse::Scrape, name: &str) -> f64 {
    let s = scrape
        .samples
        .iter()
        .find(|s| s.metric == name)
        .unwrap_or_else(|| panic!("missing {name}"));
    match s.value {
        prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
        _ => panic!("not a scalar: {name}"),
    }
}

#[test]
fn process_figures_describe_this_process() {
    // The runtime's own threads start before the first reading.
    let rt = nv_runtime::Runtime::builder().build().unwrap();
    let before = ProcessStats::read().unwrap();
    // Four more threads and four more open files, held while we read again.
    let gate = std::sync::Arc::new(std::sync::Barrier::new(5));
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let gate = gate.clone();
            std::thread::Builder::new()
                .name(format!("probe-{i}"))
                .spawn(move || {
                    gate.wait();
                    gate.wait();
                })
                .unwrap()
        })
        .collect();
    let files: Vec<_> = (0..4)
        .map(|_| std::fs::File::open("/proc/self/stat").unwrap())
        .collect();
    gate.wait();
    // Burn CPU until the kernel's tick-granular counter moves.
    let mut x = 0u64;
    while ProcessStats::read().unwrap().cpu_seconds <= before.cpu_seconds {
        for i in 0..100_000u64 {
            x = x.wrapping_mul(31).wrapping_add(std::hint::black_box(i));
        }
    }
    std::hint::black_box(x);

    let diag = rt.diagnostics();
    let build = BuildInfo {
        version: "1",
        commit: "c",
        features: "",
    };
    let text = render(&Snapshot::new(&diag, &HealthCounters::new()).with_process(build));
    gate.wait();
    for t in threads {
        t.join().unwrap();
    }
    drop(files);
    let s = scrape(&text);
    // Other test threads may come and go: assert at least what this test added.
    assert!(value(&s, "process_threads") >= before.threads as f64 + 4.0);
    assert!(value(&s, "process_open_fds") >= before.open_fds as f64 + 4.0);
    assert!(value(&s, "process_cpu_seconds_total") > before.cpu_seconds);
    assert!(value(&s, "process_resident_memory_bytes") > 0.0);
    assert!(
        value(&s, "process_virtual_memory_bytes") >= value(&s, "process_resident_memory_bytes")
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let start = value(&s, "process_start_time_seconds");
    assert!(
        start <= now + 1.0 && start > now - 24.0 * 3600.0,
        "start {start}, now {now}"
    );
    assert!(text.contains("# TYPE process_cpu_seconds_total counter"));
}
