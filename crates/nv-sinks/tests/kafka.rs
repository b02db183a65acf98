//! Kafka sink against librdkafka's in-process mock cluster (no real broker needed), read
//! back with a real rdkafka consumer. Needs `--features kafka`.
#![cfg(feature = "kafka")]
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{wait_stats, TIMEOUT};
use nv_core::id::FeedId;
use nv_io::OutputSink;
use nv_sinks::kafka::{HEADER_IDEMPOTENCY_KEY, HEADER_SCHEMA_VERSION};
use nv_sinks::{KafkaSink, KafkaSinkConfig, OutputRecord, SinkConfig, SinkStats};
use nv_test_util::port::RefusedPort;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// One consumed message.
#[derive(Debug)]
struct Consumed {
    partition: i32,
    key: String,
    /// Idempotency key from the JSON value.
    value_key: String,
    payload: Vec<u8>,
    headers: BTreeMap<String, String>,
}

type Cluster = MockCluster<'static, DefaultProducerContext>;

/// The cluster's bootstrap brokers, one `host:port` each.
fn brokers(cluster: &Cluster) -> Vec<String> {
    cluster
        .bootstrap_servers()
        .split(',')
        .map(str::to_owned)
        .collect()
}

fn cluster(brokers: i32, topic: &str, partitions: i32) -> Cluster {
    let c = MockCluster::new(brokers).unwrap();
    c.create_topic(topic, partitions, 1).unwrap();
    c
}

/// Reads every partition of `topic` from the beginning until `n` messages arrived, then
/// for a short while longer so duplicates would show. Messages are in partition order
/// within each partition.
fn consume(cluster: &Cluster, topic: &str, partitions: i32, n: usize) -> Vec<Consumed> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .set("group.id", "nv-kafka-test")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    let mut settle: Option<Instant> = None;
    loop {
        let now = Instant::now();
        assert!(now < deadline, "timed out: {} of {n} messages", out.len());
        if settle.is_some_and(|s| now >= s) {
            break;
        }
        if out.len() >= n && settle.is_none() {
            settle = Some(now + Duration::from_millis(300));
        }
        let Some(m) = consumer.poll(Duration::from_millis(50)) else {
            continue;
        };
        let m = m.unwrap();
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            String::from_utf8(h.value.unwrap().to_vec()).unwrap(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(Consumed {
            partition: m.partition(),
            key: String::from_utf8(m.key().unwrap().to_vec()).unwrap(),
            // Frame, event and health records all carry `idempotency_key`.
            value_key: serde_json::from_slice::<serde_json::Value>(m.payload().unwrap()).unwrap()
                ["idempotency_key"]
                .as_str()
                .unwrap()
                .to_owned(),
            payload: m.payload().unwrap().to_vec(),
            headers,
        });
    }
    out
}

/// Checks headers and key of each message and returns the idempotency keys per feed
/// (message key), in the order the messages were read.
fn keys_per_feed(msgs: &[Consumed]) -> BTreeMap<String, Vec<String>> {
    let mut per_feed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut partitions: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    for m in msgs {
        assert_eq!(
            m.headers.get(HEADER_SCHEMA_VERSION).map(String::as_str),
            Some("1"),
            "{m:?}"
        );
        assert_eq!(
            m.headers.get(HEADER_IDEMPOTENCY_KEY),
            Some(&m.value_key),
            "{m:?}"
        );
        // "{run}:{feed}:...": the message key is the record's feed.
        assert_eq!(m.value_key.split(':').nth(1), Some(m.key.as_str()), "{m:?}");
        per_feed
            .entry(m.key.clone())
            .or_default()
            .push(m.value_key.clone());
        partitions
            .entry(m.key.clone())
            .or_default()
            .insert(m.partition);
    }
    for (feed, parts) in &partitions {
        assert_eq!(
            parts.len(),
            1,
            "feed {feed} spread over partitions {parts:?}"
        );
    }
    per_feed
}

#[test]
fn every_output_arrives_exactly_once_in_order_with_headers() {
    // The first feed of a fresh runtime has id 1; the default topic is "nextvision.{feed}".
    let mock = cluster(3, "nextvision.1", 3);
    let config: SinkConfig = toml::from_str(&format!(
        "type = \"kafka\"\nbrokers = {:?}\nflush_timeout_ms = 10000\n",
        brokers(&mock)
    ))
    .unwrap();
    let stats = SinkStats::new();
    let keys = common::run_feed(40, config.build_with_stats(stats.clone()).unwrap(), &stats);
    let msgs = consume(&mock, "nextvision.1", 3, 40);
    let per_feed = keys_per_feed(&msgs);
    assert_eq!(per_feed.len(), 1, "{per_feed:?}");
    assert_eq!(per_feed.get("1"), Some(&keys));
    let s = stats.snapshot();
    assert_eq!(
        (s.delivered, s.failed, s.dropped_by_buffer, s.buffered),
        (40, 0, 0, 0),
        "{s:?}"
    );
}

#[test]
fn two_feeds_share_a_topic_each_in_order_in_one_partition_despite_produce_errors() {
    let topic = "nextvision.outputs";
    let mock = cluster(3, topic, 4);
    // The brokers refuse the first produce requests with retriable errors; the idempotent
    // producer retries without duplicating or reordering.
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        ],
    );
    let mut config = KafkaSinkConfig::new(brokers(&mock));
    config.topic = "nextvision.{event}".into();
    config.compression = nv_sinks::KafkaCompression::Lz4;
    let stats = SinkStats::new();
    let n = 25u64;

    // Two feeds, each with its own sink instance sharing one stats, emitted interleaved.
    let mut sinks: Vec<_> = (0..2)
        .map(|_| config.build_with_stats(stats.clone()).unwrap())
        .collect();
    let mut emitted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for seq in 0..n {
        for (i, sink) in sinks.iter_mut().enumerate() {
            let out = common::rich_output_of(FeedId::new(i as u64 + 1), seq);
            let r = OutputRecord::from_output(&out);
            emitted
                .entry(r.feed_id.to_string())
                .or_default()
                .push(r.idempotency_key);
            sink.emit(out);
        }
    }
    wait_stats(&stats, "all delivered", |s| s.delivered == 2 * n);
    for mut sink in sinks {
        sink.flush();
    }

    let msgs = consume(&mock, topic, 4, 50);
    assert_eq!(keys_per_feed(&msgs), emitted);
    let s = stats.snapshot();
    assert_eq!(
        (s.delivered, s.failed, s.dropped_by_buffer, s.buffered),
        (50, 0, 0, 0),
        "{s:?}"
    );
}

/// Emits each output and asserts the call returned promptly.
fn emit_quickly(sink: &mut dyn OutputSink, outputs: &[nv_io::SharedOutput]) {
    for o in outputs {
        let t = Instant::now();
        sink.emit(o.clone());
        assert!(
            t.elapsed() < Duration::from_millis(200),
            "emit blocked for {:?}",
            t.elapsed()
        );
    }
}

#[test]
fn broker_outage_never_blocks_emit_and_loses_only_beyond_the_buffers() {
    let outputs = common::outputs(30);
    let keys = common::keys(&outputs);
    let topic = "nextvision.1";
    let mock = cluster(1, topic, 2);
    let mut config = KafkaSinkConfig::new(brokers(&mock));
    config.buffer_records = 5;
    config.message_timeout_ms = 20_000;
    let stats = SinkStats::new();
    let mut sink = KafkaSink::start(config, stats.clone()).unwrap();

    common::emit_paced(&mut sink, &stats, &outputs[..10]);
    assert!(stats.is_connected());
    mock.broker_down(1).unwrap();
    // 5 wait in librdkafka's queue, 5 in the sink's buffer; the 2 oldest of the sink's
    // buffer are dropped.
    emit_quickly(&mut sink, &outputs[10..22]);
    let s = stats.snapshot();
    assert_eq!(
        (s.delivered, s.dropped_by_buffer, s.buffered),
        (10, 2, 10),
        "{s:?}"
    );
    mock.broker_up(1).unwrap();
    wait_stats(&stats, "buffers delivered after the outage", |s| {
        s.delivered == 20
    });
    common::emit_paced(&mut sink, &stats, &outputs[22..]);
    drop(sink);

    let expected: Vec<String> = keys[..15].iter().chain(&keys[17..]).cloned().collect();
    let msgs = consume(&mock, topic, 2, expected.len());
    let per_feed = keys_per_feed(&msgs);
    assert_eq!(per_feed.get("1"), Some(&expected));
    let s = stats.snapshot();
    assert_eq!(
        (s.delivered, s.failed, s.dropped_by_buffer, s.buffered),
        (28, 0, 2, 0),
        "{s:?}"
    );
}

#[test]
fn unreachable_brokers_never_block_emit_and_shutdown_counts_every_record() {
    let outputs = common::outputs(30);
    let refused = RefusedPort::new();
    let mut config = KafkaSinkConfig::new([format!("127.0.0.1:{}", refused.port())]);
    config.buffer_records = 5;
    config.flush_timeout_ms = 200;
    let stats = SinkStats::new();
    let mut sink = KafkaSink::start(config, stats.clone()).unwrap();
    emit_quickly(&mut sink, &outputs);
    let s = stats.snapshot();
    assert_eq!(
        (s.delivered, s.dropped_by_buffer, s.buffered),
        (0, 20, 10),
        "{s:?}"
    );
    let t = Instant::now();
    drop(sink);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let s = stats.snapshot();
    assert_eq!(
        (
            s.delivered,
            s.failed,
            s.dropped_by_buffer,
            s.buffered,
            s.connected
        ),
        (0, 10, 20, 0, false),
        "{s:?}"
    );
}

/// `records = ["health"]` with `topic = "nv.{event}"`: the health records on `nv.health`,
/// exact, keyed by feed id (`runtime` for runtime-wide events), with their idempotency key
/// in the header.
#[test]
fn health_records_are_produced_exactly_with_keys_and_headers() {
    let mock = cluster(1, "nv.health", 1);
    let mut config = KafkaSinkConfig::new(brokers(&mock));
    config.topic = "nv.{event}".into();
    config.records = nv_sinks::Records::HEALTH;
    let stats = SinkStats::new();
    let mut sink = KafkaSink::start(config, stats.clone()).unwrap();
    assert!(sink.selects_health());
    for o in common::outputs(2) {
        sink.emit(o);
    }
    let records = common::health_records();
    for h in &records {
        sink.emit_health(h);
    }
    wait_stats(&stats, "all delivered", |s| s.delivered == 3);
    drop(sink);
    let msgs = consume(&mock, "nv.health", 1, 3);
    common::assert_health_payloads(&msgs.iter().map(|m| m.payload.clone()).collect::<Vec<_>>());
    let keys: Vec<&str> = msgs.iter().map(|m| m.key.as_str()).collect();
    assert_eq!(keys, ["1", "1", "runtime"]);
    for (m, h) in msgs.iter().zip(&records) {
        assert_eq!(m.headers.get(HEADER_IDEMPOTENCY_KEY), Some(&h.key));
    }
}
