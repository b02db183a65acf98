//! One snapshot, three encodings: every metric of the table appears in the Prometheus
//! text, the OTLP protobuf export and the API JSON, under its mapped name, with the same
//! values (histogram buckets included).
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::BTreeMap;
use std::time::Duration;

use nv_core::error::StageError;
use nv_metrics::{
    collect, json, otlp_body, render, spawn_health_counter, BuildInfo, HealthRows, Kind, Point,
    ProcessStats, Sample, Scope, Snapshot, LATENCY_BUCKETS_SECONDS, METRICS,
};
use nv_perception::{BatchEntry, BatchProcessor};
use nv_runtime::{BatchConfig, CameraMode, FeedConfig, Runtime, SourceSpec, StageId};
use nv_test_util::{tiny_synthetic, CollectingSink, EventStage, ScriptedStage, Step};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use prost::Message as _;
use serde_json::Value;

struct Pass;

impl BatchProcessor for Pass {
    fn id(&self) -> StageId {
        StageId::new("pass")
    }
    fn process(&mut self, _entries: &mut [BatchEntry]) -> Result<(), StageError> {
        Ok(())
    }
}

type Labels = BTreeMap<String, String>;

fn labels(p: &Point) -> Labels {
    p.labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// A value as every encoding can carry it: a number, or (count, sum, per-bucket counts).
#[derive(Debug, PartialEq)]
enum V {
    N(f64),
    H(u64, f64, Vec<u64>),
}

fn expected(p: &Point) -> V {
    match &p.value {
        Sample::Number(v) => V::N(*v),
        Sample::Histogram(b) => V::H(b.count, b.sum_seconds, b.counts.to_vec()),
    }
}

fn prometheus_values(text: &str) -> BTreeMap<(String, Labels), V> {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let mut out = BTreeMap::new();
    for s in scrape.samples {
        // `_sum` and `_count` of a histogram are checked with its buckets.
        let histogram_part = ["_sum", "_count"].iter().any(|suffix| {
            s.metric.strip_suffix(suffix).is_some_and(|base| {
                METRICS
                    .iter()
                    .any(|d| d.name == base && d.kind == Kind::Histogram)
            })
        });
        if histogram_part {
            continue;
        }
        let l: Labels = s
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let v = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => V::N(v),
            prometheus_parse::Value::Histogram(buckets) => {
                // Cumulative `le` buckets back to per-bucket counts.
                let mut per = Vec::new();
                let mut below = 0.0;
                for b in &buckets {
                    per.push((b.count - below) as u64);
                    below = b.count;
                }
                let count = buckets.last().unwrap().count as u64;
                let sum = scrape_line(text, &s.metric, "_sum", &l);
                assert_eq!(scrape_line(text, &s.metric, "_count", &l), count as f64);
                assert_eq!(
                    buckets
                        .iter()
                        .take(LATENCY_BUCKETS_SECONDS.len())
                        .map(|b| b.less_than)
                        .collect::<Vec<_>>(),
                    LATENCY_BUCKETS_SECONDS.to_vec()
                );
                V::H(count, sum, per)
            }
            other => panic!("unexpected {other:?}"),
        };
        assert!(out.insert((s.metric, l), v).is_none(), "duplicate series");
    }
    out
}

/// `prometheus-parse` folds a histogram's `_sum` and `_count` away; read them from the text.
fn scrape_line(text: &str, name: &str, suffix: &str, l: &Labels) -> f64 {
    let prefix = format!("{name}{suffix}{{");
    text.lines()
        .filter(|line| line.starts_with(&prefix))
        .find(|line| {
            l.iter()
                .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|line| line.rsplit(' ').next())
        .unwrap()
        .parse()
        .unwrap()
}

fn otlp_values(body: &[u8]) -> BTreeMap<(String, Labels), (V, String)> {
    let req = ExportMetricsServiceRequest::decode(body).unwrap();
    let mut out = BTreeMap::new();
    for m in &req.resource_metrics[0].scope_metrics[0].metrics {
        let attrs = |a: &[opentelemetry_proto::tonic::common::v1::KeyValue]| -> Labels {
            a.iter()
                .map(|kv| {
                    let v = match kv.value.as_ref().unwrap().value.as_ref().unwrap() {
                        any_value::Value::StringValue(s) => s.clone(),
                        other => panic!("{other:?}"),
                    };
                    (kv.key.clone(), v)
                })
                .collect()
        };
        let number = |p: &opentelemetry_proto::tonic::metrics::v1::NumberDataPoint| match p.value {
            Some(number_data_point::Value::AsDouble(v)) => V::N(v),
            other => panic!("{other:?}"),
        };
        let mut put = |l: Labels, v: V, kind: &str| {
            assert!(out
                .insert((m.name.clone(), l), (v, kind.to_owned()))
                .is_none());
        };
        match m.data.as_ref().unwrap() {
            metric::Data::Sum(s) => {
                assert!(s.is_monotonic);
                assert_eq!(s.aggregation_temporality, 2, "cumulative");
                for p in &s.data_points {
                    put(attrs(&p.attributes), number(p), "counter");
                }
            }
            metric::Data::Gauge(g) => {
                for p in &g.data_points {
                    put(attrs(&p.attributes), number(p), "gauge");
                }
            }
            metric::Data::Histogram(h) => {
                assert_eq!(h.aggregation_temporality, 2, "cumulative");
                for p in &h.data_points {
                    assert_eq!(p.explicit_bounds, LATENCY_BUCKETS_SECONDS.to_vec());
                    assert_eq!(p.bucket_counts.iter().sum::<u64>(), p.count);
                    put(
                        attrs(&p.attributes),
                        V::H(p.count, p.sum.unwrap(), p.bucket_counts.clone()),
                        "histogram",
                    );
                }
            }
            other => panic!("unexpected data {other:?}"),
        }
    }
    out
}

fn json_value(v: &Value) -> V {
    if let Some(n) = v.as_f64() {
        return V::N(n);
    }
    V::H(
        v["count"].as_u64().unwrap(),
        v["sum_seconds"].as_f64().unwrap(),
        v["bucket_counts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap())
            .collect(),
    )
}

#[test]
fn prometheus_otlp_and_json_carry_every_metric_with_the_same_values() {
    let rt = Runtime::builder().build().unwrap();
    let (health, thread) = spawn_health_counter(rt.health_subscribe()).unwrap();
    let batch = rt
        .create_batch(Pass, BatchConfig::new(1, Duration::from_secs(3600)))
        .unwrap();
    let sink = CollectingSink::new();
    let feed = rt
        .add_feed(
            FeedConfig::builder()
                .name("door".into())
                .source(SourceSpec::synthetic(tiny_synthetic(Some(20))))
                .camera_mode(CameraMode::Fixed)
                .stage(ScriptedStage::new("flaky").then(Step::Ok).then(Step::Err))
                .stage(EventStage("events"))
                .batch(batch)
                .output_sink(sink.clone())
                .lossless()
                .build()
                .unwrap(),
        )
        .unwrap();
    sink.wait_for(19);
    nv_test_util::wait_until("feed finished", || !feed.is_alive());
    let diag = rt.diagnostics();
    rt.shutdown();
    thread.join().unwrap();
    let (rows, missed) = health.snapshot();
    let snap = Snapshot {
        runtime: &diag,
        health: HealthRows { rows, missed },
        process: Some(ProcessStats {
            cpu_seconds: 1.5,
            resident_memory_bytes: 4096,
            virtual_memory_bytes: 8192,
            open_fds: 9,
            max_fds: Some(1024),
            threads: 7,
            start_time_seconds: 1_700_000_000.0,
        }),
        build: Some(BuildInfo {
            version: "1.2.3",
            commit: "abc",
            // prometheus-parse splits labels at every comma, quoted or not.
            features: "kafka model",
        }),
    };

    let families = collect(&snap);
    let prom = prometheus_values(&render(&snap));
    let otlp = otlp_values(&otlp_body(&snap, "svc"));
    let feed_json = json::feed_metrics(&diag.feeds[0]);
    let batch_json = json::batch_metrics(&diag.batches[0]);
    let scope_json = |scope: Scope, p: &Point| -> Value {
        match scope {
            Scope::Runtime => json::runtime_metrics(&diag),
            Scope::Feed => feed_json.clone(),
            Scope::Stage => {
                let id = &p.labels.iter().find(|(k, _)| *k == "stage").unwrap().1;
                let stage = diag.feeds[0]
                    .stages
                    .iter()
                    .find(|s| s.stage_id.as_str() == id);
                json::stage_metrics(stage.unwrap())
            }
            Scope::Batch => batch_json.clone(),
            Scope::Health => json::health_metrics(&snap.health),
            Scope::Process => json::process_metrics(snap.process.as_ref().unwrap()),
            Scope::Build => json::build_metrics(snap.build.as_ref().unwrap()),
        }
    };

    let mut series = 0;
    for f in &families {
        let def = f.def;
        assert!(
            !f.points.is_empty(),
            "{}: no series in the snapshot",
            def.name
        );
        for p in &f.points {
            let want = expected(p);
            let key = (def.name.to_owned(), labels(p));
            assert_eq!(prom.get(&key), Some(&want), "Prometheus {key:?}");
            let key = (def.otlp_name(), labels(p));
            let (got, kind) = otlp.get(&key).unwrap_or_else(|| panic!("OTLP {key:?}"));
            assert_eq!(
                (got, kind.as_str()),
                (&want, def.kind.as_str()),
                "OTLP {key:?}"
            );
            // JSON: the scope's object, the key, then one level per label of the metric's own.
            let obj = scope_json(def.scope(), p);
            let mut v = &obj[def.json_key()];
            let own = &p.labels[p.labels.len() - def.labels.len()..];
            for (_, value) in own {
                v = &v[value.as_str()];
            }
            assert_eq!(json_value(v), want, "JSON {}{own:?}", def.json_key());
            series += 1;
        }
    }
    // Every series of the Prometheus text and of OTLP is one of the table's.
    let table_series: usize = families.iter().map(|f| f.points.len()).sum();
    assert_eq!(prom.len(), table_series);
    assert_eq!(otlp.len(), table_series);
    assert!(series > 60, "{series}");
    // Independent of the table: the figures the run fixes.
    let key = |n: &str| {
        (
            n.to_owned(),
            Labels::from([
                ("feed_id".into(), "1".into()),
                ("feed".into(), "door".into()),
            ]),
        )
    };
    assert_eq!(prom[&key("nv_feed_frames_processed_total")], V::N(19.0));
    assert_eq!(feed_json["frames_processed"].as_u64(), Some(19));
    assert_eq!(feed_json["frames_dropped"]["stage_error"].as_u64(), Some(1));
    assert_eq!(batch_json["items_processed"].as_u64(), Some(19));
    match &otlp[&("nv.feed.receive_to_sink".to_owned(), key("").1)].0 {
        V::H(count, _, _) => assert_eq!(*count, 19),
        other => panic!("{other:?}"),
    }
    assert!(METRICS.iter().any(|d| d.kind == Kind::Histogram));
}
