//! NATS sink against a real nats-server on 127.0.0.1 (core and JetStream).
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::sync::Arc;
use std::time::Instant;

use async_nats::jetstream::{self, stream};
use common::{key_of, wait_stats, TIMEOUT};
use futures_util::StreamExt;
use nv_sinks::{NatsSink, NatsSinkConfig, SinkConfig, SinkStats};
use nv_test_util::broker::{Broker, Outage};
use parking_lot::{Condvar, Mutex};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[derive(Debug, Default)]
struct Inbox {
    ready: bool,
    payloads: Vec<Vec<u8>>,
    /// Why the subscriber thread gave up, shown by a wait that times out.
    error: Option<String>,
}

/// A real core-NATS subscriber on its own thread.
struct Subscriber {
    inbox: Arc<(Mutex<Inbox>, Condvar)>,
}

impl Subscriber {
    fn start(port: u16, subject: &str) -> Self {
        let inbox = Arc::new((Mutex::new(Inbox::default()), Condvar::new()));
        let ib = Arc::clone(&inbox);
        let subject = subject.to_owned();
        std::thread::Builder::new()
            .name("test-nats-sub".into())
            .spawn(move || {
                let ib2 = Arc::clone(&ib);
                let result: Result<(), String> = runtime().block_on(async move {
                    let client = async_nats::connect(format!("127.0.0.1:{port}"))
                        .await
                        .map_err(|e| format!("connect: {e}"))?;
                    let mut sub = client
                        .subscribe(subject)
                        .await
                        .map_err(|e| format!("subscribe: {e}"))?;
                    client.flush().await.map_err(|e| format!("flush: {e}"))?;
                    {
                        ib.0.lock().ready = true;
                        ib.1.notify_all();
                    }
                    while let Some(msg) = sub.next().await {
                        ib.0.lock().payloads.push(msg.payload.to_vec());
                        ib.1.notify_all();
                    }
                    Ok(())
                });
                if let Err(e) = result {
                    ib2.0.lock().error = Some(e);
                    ib2.1.notify_all();
                }
            })
            .unwrap();
        let s = Self { inbox };
        s.wait("subscribed", |i| i.ready);
        s
    }

    fn wait(&self, what: &str, mut pred: impl FnMut(&Inbox) -> bool) {
        let (lock, cv) = &*self.inbox;
        let deadline = Instant::now() + TIMEOUT;
        let mut g = lock.lock();
        while !pred(&g) {
            assert!(g.error.is_none(), "subscriber failed: {:?}", g.error);
            assert!(
                !cv.wait_until(&mut g, deadline).timed_out(),
                "timed out waiting for {what}: {} messages",
                g.payloads.len()
            );
        }
    }
}

#[test]
fn core_nats_every_output_arrives_exactly_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = Broker::nats(dir.path(), false);
    let sub = Subscriber::start(server.port, "nextvision.*.outputs");
    let config: SinkConfig = toml::from_str(&format!(
        "type = \"nats\"\nurl = \"nats://127.0.0.1:{}\"\n",
        server.port
    ))
    .unwrap();
    let stats = SinkStats::new();
    let keys = common::run_feed(40, config.build_with_stats(stats.clone()).unwrap(), &stats);
    sub.wait("all outputs", |i| i.payloads.len() >= 40);
    let got: Vec<String> = sub
        .inbox
        .0
        .lock()
        .payloads
        .iter()
        .map(|p| key_of(p))
        .collect();
    assert_eq!(got, keys);
    let s = stats.snapshot();
    assert_eq!((s.delivered, s.failed, s.dropped_by_buffer), (40, 0, 0));
}

/// Every message of the stream, in stream order.
fn stream_keys(port: u16) -> Vec<String> {
    runtime().block_on(async move {
        let client = async_nats::connect(format!("127.0.0.1:{port}"))
            .await
            .unwrap();
        let js = jetstream::new(client);
        let mut s = js.get_stream("NV").await.unwrap();
        let n = s.info().await.unwrap().state.messages;
        let mut keys = Vec::new();
        for seq in 1..=n {
            let m = s.get_raw_message(seq).await.unwrap();
            keys.push(key_of(&m.payload));
        }
        keys
    })
}

#[test]
fn jetstream_server_restart_loses_only_what_the_buffer_bound_says() {
    restart_case(Outage::Stop);
}

#[test]
fn jetstream_server_killed_and_restarted_loses_only_what_the_buffer_bound_says() {
    restart_case(Outage::Kill);
}

fn restart_case(outage: Outage) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Broker::nats(dir.path(), true);
    let port = server.port;
    // File storage (JetStream's default): the stream outlives the broker's restart.
    create_stream(port, "NV", "nextvision.>");
    let mut config = NatsSinkConfig::new(format!("nats://127.0.0.1:{port}"));
    config.jetstream = true;
    config.buffer_records = 5;
    config.reconnect_initial_ms = 20;
    config.reconnect_max_ms = 200;
    let stats = SinkStats::new();
    let mut sink = NatsSink::start(config, stats.clone()).unwrap();
    let outputs = common::outputs(30);
    wait_stats(&stats, "connected", |s| s.connected);

    let expected = common::ride_out_outage(&mut sink, &stats, &outputs, &mut server, outage, || {});
    drop(sink);

    assert_eq!(stream_keys(port), expected);
    let s = stats.snapshot();
    assert_eq!(
        (s.delivered, s.failed, s.dropped_by_buffer, s.buffered),
        (23, 0, 7, 0),
        "{s:?}"
    );
    assert!(s.reconnects >= 1, "{s:?}");
}

/// Every message of the stream's payloads, in stream order.
fn stream_payloads(port: u16) -> Vec<Vec<u8>> {
    runtime().block_on(async move {
        let client = async_nats::connect(format!("127.0.0.1:{port}"))
            .await
            .unwrap();
        let js = jetstream::new(client);
        let mut s = js.get_stream("NV").await.unwrap();
        let n = s.info().await.unwrap().state.messages;
        let mut out = Vec::new();
        for seq in 1..=n {
            out.push(s.get_raw_message(seq).await.unwrap().payload.to_vec());
        }
        out
    })
}

/// `records = ["events", "health"]` on core NATS: event records on `{event}` = `events`,
/// health records on `{event}` = `health` (`{feed}` = `runtime` for runtime-wide events),
/// exact payloads, no frame record.
#[test]
fn core_nats_events_and_health_subjects() {
    let dir = tempfile::tempdir().unwrap();
    let server = Broker::nats(dir.path(), false);
    let health = Subscriber::start(server.port, "nextvision.*.health");
    let runtime_wide = Subscriber::start(server.port, "nextvision.runtime.health");
    let events = Subscriber::start(server.port, "nextvision.1.events");
    let frames = Subscriber::start(server.port, "nextvision.*.outputs");
    let config: SinkConfig = toml::from_str(&format!(
        "type = \"nats\"\nurl = \"nats://127.0.0.1:{}\"\nrecords = [\"events\", \"health\"]\n",
        server.port
    ))
    .unwrap();
    let stats = SinkStats::new();
    let mut sink = config.build_with_stats(stats.clone()).unwrap();
    assert!(sink.selects_health());
    // One frame of 7 events (see `common::rich_output`), then the health records.
    sink.emit(common::rich_output(0));
    for h in common::health_records() {
        sink.emit_health(&h);
    }
    wait_stats(&stats, "all delivered", |s| s.delivered == 10);
    health.wait("health records", |i| i.payloads.len() >= 3);
    events.wait("event records", |i| i.payloads.len() >= 7);
    runtime_wide.wait("runtime-wide record", |i| !i.payloads.is_empty());
    drop(sink);
    common::assert_health_payloads(&health.inbox.0.lock().payloads);
    let rw = runtime_wide.inbox.0.lock().payloads.clone();
    let rw: serde_json::Value = serde_json::from_slice(&rw[0]).unwrap();
    assert_eq!(rw["event"], "output_lagged");
    let ev = events.inbox.0.lock().payloads.clone();
    assert!(ev.iter().all(|p| {
        let v: serde_json::Value = serde_json::from_slice(p).unwrap();
        v["record"] == "event"
    }));
    assert!(frames.inbox.0.lock().payloads.is_empty());
}

/// JetStream deduplicates a health record sent twice on its `Nats-Msg-Id` (the record's
/// idempotency key).
#[test]
fn jetstream_health_records_are_deduplicated_on_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = Broker::nats(dir.path(), true);
    let port = server.port;
    create_stream(port, "NV", "nextvision.>");
    let mut config = NatsSinkConfig::new(format!("nats://127.0.0.1:{port}"));
    config.jetstream = true;
    config.records = nv_sinks::Records::HEALTH;
    let stats = SinkStats::new();
    let mut sink = NatsSink::start(config, stats.clone()).unwrap();
    let records = common::health_records();
    for h in records.iter().chain(&records) {
        nv_io::OutputSink::emit_health(&mut sink, h);
    }
    wait_stats(&stats, "all acknowledged", |s| s.delivered == 6);
    drop(sink);
    common::assert_health_payloads(&stream_payloads(port));
}

/// Creates JetStream stream `name` over `subjects` on the single server at `port`.
fn create_stream(port: u16, name: &str, subjects: &str) {
    let (name, subjects) = (name.to_owned(), subjects.to_owned());
    runtime().block_on(async move {
        let client = async_nats::connect(format!("127.0.0.1:{port}"))
            .await
            .unwrap();
        jetstream::new(client)
            .create_stream(stream::Config {
                name,
                subjects: vec![subjects],
                ..Default::default()
            })
            .await
            .unwrap();
    });
}

/// Every message of stream `name`: (subject, Nats-Msg-Id header, payload), in order.
fn stream_messages(port: u16, name: &str) -> Vec<(String, String, serde_json::Value)> {
    let name = name.to_owned();
    runtime().block_on(async move {
        let client = async_nats::connect(format!("127.0.0.1:{port}"))
            .await
            .unwrap();
        let js = jetstream::new(client);
        let mut s = js.get_stream(&name).await.unwrap();
        let n = s.info().await.unwrap().state.messages;
        let mut out = Vec::new();
        for seq in 1..=n {
            let m = s.get_raw_message(seq).await.unwrap();
            let id = m
                .headers
                .get(async_nats::header::NATS_MESSAGE_ID)
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default();
            out.push((
                m.subject.to_string(),
                id,
                serde_json::from_slice(&m.payload).unwrap(),
            ));
        }
        out
    })
}

/// Frames and events of a named feed on their own subjects (`{name}`), each message's
/// `Nats-Msg-Id` = its record's key (a frame's idempotency key, an event's id), the
/// fencing token in both; `url` lists a dead server before the live one.
#[test]
fn jetstream_frames_and_events_by_feed_name_carry_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    let server = Broker::nats(dir.path(), true);
    let port = server.port;
    create_stream(port, "NVC", "nvc.>");
    let dead = nv_test_util::port::RefusedPort::new();
    let mut config = NatsSinkConfig::new(format!(
        "nats://127.0.0.1:{}, nats://127.0.0.1:{port}",
        dead.port()
    ));
    config.jetstream = true;
    config.subject = "nvc.out.{name}".into();
    config.events_subject = Some("nvc.events.{name}".into());
    config.records = nv_sinks::Records {
        frames: true,
        events: true,
        health: false,
    };
    config.validate().unwrap();
    let stats = SinkStats::new();
    let mut sink = NatsSink::start(config, stats.clone()).unwrap();
    let n = 3u64;
    let mut events_per_output = 0;
    for seq in 0..n {
        let mut o = (*common::rich_output(seq)).clone();
        o.feed_name = Some("door-cam".into());
        o.fence = Some(41);
        events_per_output = o.events.len() as u64;
        nv_io::OutputSink::emit(&mut sink, Arc::new(o));
    }
    let total = n * (1 + events_per_output);
    wait_stats(&stats, "all delivered", |s| s.delivered == total);
    drop(sink);
    let msgs = stream_messages(port, "NVC");
    assert_eq!(msgs.len() as u64, total);
    let frames: Vec<_> = msgs.iter().filter(|m| m.0 == "nvc.out.door-cam").collect();
    let events: Vec<_> = msgs
        .iter()
        .filter(|m| m.0 == "nvc.events.door-cam")
        .collect();
    assert_eq!(frames.len() as u64, n);
    assert_eq!(events.len() as u64, n * events_per_output);
    for (_, id, record) in &frames {
        assert_eq!(record["idempotency_key"], id.as_str());
        assert_eq!(record["fence"], 41);
    }
    for (_, id, record) in &events {
        assert_eq!(record["event_id"], id.as_str());
        assert_eq!(record["fence"], 41);
    }
}

/// A JetStream publisher given one server of a three-server cluster loses that server,
/// which also led the R3 stream: it reconnects to a server the cluster told it of, the
/// stream elects a new leader, and every record arrives, once, in order.
#[test]
fn jetstream_cluster_losing_the_connected_server_and_stream_leader_loses_nothing() {
    /// Leader elections take seconds, more on a busy machine.
    const RECOVERY: std::time::Duration = std::time::Duration::from_secs(90);
    let dir = tempfile::tempdir().unwrap();
    let mut nats = nv_test_util::broker::NatsCluster::start(dir.path(), 3);
    let urls = nats.urls();
    let leader = runtime().block_on(async {
        let client = async_nats::connect(urls[0].as_str()).await.unwrap();
        let js = jetstream::new(client);
        // The servers learn of each other's JetStream after the metadata leader is
        // elected: until then an R3 stream finds "no suitable peers".
        let deadline = Instant::now() + TIMEOUT;
        let mut s = loop {
            let created = js
                .create_stream(stream::Config {
                    name: "NV".into(),
                    subjects: vec!["nextvision.>".into()],
                    storage: stream::StorageType::File,
                    num_replicas: 3,
                    ..Default::default()
                })
                .await;
            match created {
                Ok(s) => break s,
                Err(e) => assert!(Instant::now() < deadline, "creating the stream: {e}"),
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        let info = s.info().await.unwrap();
        info.cluster
            .clone()
            .and_then(|c| c.leader)
            .expect("a leader")
    });
    let index = leader.trim_start_matches('n').parse::<usize>().unwrap() - 1;
    let mut config = NatsSinkConfig::new(urls[index].clone());
    config.jetstream = true;
    config.reconnect_initial_ms = 20;
    config.reconnect_max_ms = 500;
    let stats = SinkStats::new();
    let mut sink = NatsSink::start(config, stats.clone()).unwrap();
    let outputs = common::outputs(40);
    wait_stats(&stats, "connected", |s| s.connected);
    common::emit_paced(&mut sink, &stats, &outputs[..20]);

    nats.servers[index].kill();
    for o in &outputs[20..] {
        nv_io::OutputSink::emit(&mut sink, o.clone());
    }
    let (s, ok) = stats.wait_until(RECOVERY, |s| s.delivered == 40);
    assert!(ok, "not every record delivered after {leader} died: {s:?}");
    drop(sink);

    let survivor = (index + 1) % 3;
    let port: u16 = urls[survivor].rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(stream_keys(port), common::keys(&outputs));
    assert!(s.reconnects >= 1, "{s:?}");
    assert_eq!((s.failed, s.dropped_by_buffer), (0, 0), "{s:?}");
}
