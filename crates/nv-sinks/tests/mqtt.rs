//! MQTT sink against a real mosquitto on 127.0.0.1.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{key_of, wait_stats, TIMEOUT};
use nv_io::OutputSink;
use nv_sinks::{MqttSink, MqttSinkConfig, SinkConfig, SinkStats};
use nv_test_util::broker::{Broker, Outage};
use parking_lot::{Condvar, Mutex};
use rumqttc::{Client, Event, Incoming, MqttOptions, QoS};

#[derive(Clone, Debug)]
struct Msg {
    topic: String,
    payload: Vec<u8>,
    dup: bool,
    retain: bool,
}

#[derive(Debug, Default)]
struct Inbox {
    msgs: Vec<Msg>,
    subacks: usize,
    /// Connection errors seen (shown when a wait times out).
    errors: Vec<String>,
}

/// A real MQTT subscriber on its own thread.
struct Subscriber {
    inbox: Arc<(Mutex<Inbox>, Condvar)>,
    stop: Arc<AtomicBool>,
    _client: Client,
}

impl Subscriber {
    fn start(port: u16, id: &str, topics: &[&str], persistent: bool) -> Self {
        let mut opts = MqttOptions::new(id, "127.0.0.1", port);
        opts.set_clean_session(!persistent)
            .set_keep_alive(Duration::from_secs(5));
        let (client, mut conn) = Client::new(opts, 64);
        let inbox = Arc::new((Mutex::new(Inbox::default()), Condvar::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (ib, st) = (Arc::clone(&inbox), Arc::clone(&stop));
        let topics_owned: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
        let resubscriber = client.clone();
        std::thread::Builder::new()
            .name("test-mqtt-sub".into())
            .spawn(move || {
                for ev in conn.iter() {
                    if st.load(Ordering::Acquire) {
                        break;
                    }
                    let (lock, cv) = &*ib;
                    match ev {
                        Ok(Event::Incoming(Incoming::Publish(p))) => {
                            lock.lock().msgs.push(Msg {
                                topic: p.topic.clone(),
                                payload: p.payload.to_vec(),
                                dup: p.dup,
                                retain: p.retain,
                            });
                            cv.notify_all();
                        }
                        Ok(Event::Incoming(Incoming::SubAck(_))) => {
                            lock.lock().subacks += 1;
                            cv.notify_all();
                        }
                        // Subscribe on every connection: a clean session that had to
                        // reconnect would otherwise silently receive nothing more.
                        Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                            for t in &topics_owned {
                                resubscriber.try_subscribe(t, QoS::AtLeastOnce).unwrap();
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            let mut g = lock.lock();
                            g.errors.push(e.to_string());
                            // Reconnect throttle while the broker is down.
                            let _woken = cv.wait_for(&mut g, Duration::from_millis(50));
                        }
                    }
                }
            })
            .unwrap();
        let s = Self {
            inbox,
            stop,
            _client: client,
        };
        s.wait("subscribed", |i| i.subacks >= topics.len());
        s
    }

    fn wait(&self, what: &str, mut pred: impl FnMut(&Inbox) -> bool) {
        let (lock, cv) = &*self.inbox;
        let deadline = Instant::now() + TIMEOUT;
        let mut g = lock.lock();
        while !pred(&g) {
            if cv.wait_until(&mut g, deadline).timed_out() {
                let mut per_topic = std::collections::BTreeMap::new();
                for m in &g.msgs {
                    *per_topic.entry(m.topic.clone()).or_insert(0usize) += 1;
                }
                panic!(
                    "timed out waiting for {what}: {per_topic:?}, connection errors: {:?}",
                    g.errors
                );
            }
        }
    }

    fn on(&self, prefix: &str) -> Vec<Msg> {
        self.inbox
            .0
            .lock()
            .msgs
            .iter()
            .filter(|m| m.topic.starts_with(prefix))
            .cloned()
            .collect()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// Keys in order of first arrival; panics on a repeat the broker did not mark as a
/// redelivery (a repeat with DUP set is MQTT's own at-least-once towards subscribers).
fn unique_keys(msgs: &[Msg]) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for m in msgs {
        let k = key_of(&m.payload);
        if seen.insert(k.clone()) {
            out.push(k);
        } else {
            assert!(m.dup, "duplicate {k} without DUP flag");
        }
    }
    out
}

#[test]
fn every_output_arrives_exactly_once_in_order_for_each_qos() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::mosquitto(dir.path());
    let sub = Subscriber::start(broker.port, "nv-test-sub-a", &["#"], false);
    for qos in [0u8, 1, 2] {
        let config: SinkConfig = toml::from_str(&format!(
            "type = \"mqtt\"\nhost = \"127.0.0.1\"\nport = {}\nclient_id = \"nv-sink-q{qos}\"\nqos = {qos}\ntopic = \"q{qos}/{{feed}}/{{event}}\"\n",
            broker.port
        ))
        .unwrap();
        config.validate().unwrap();
        let stats = SinkStats::new();
        let keys = common::run_feed(40, config.build_with_stats(stats.clone()).unwrap(), &stats);
        // The sink's own accounting is exact for every QoS.
        let s = stats.snapshot();
        assert_eq!(
            (s.delivered, s.failed, s.dropped_by_buffer),
            (40, 0, 0),
            "qos {qos}"
        );
        let avail = format!("nextvision/nv-sink-q{qos}/availability");
        if qos > 0 {
            let prefix = format!("q{qos}/");
            sub.wait("all outputs", |i| {
                i.msgs
                    .iter()
                    .filter(|m| m.topic.starts_with(&prefix))
                    .count()
                    >= 40
            });
        }
        sub.wait("offline", |i| {
            i.msgs
                .iter()
                .any(|m| m.topic == avail && m.payload == b"offline")
        });
        let msgs = sub.on(&format!("q{qos}/"));
        assert!(msgs.iter().all(|m| m.topic == format!("q{qos}/1/outputs")));
        let got: Vec<String> = msgs.iter().map(|m| key_of(&m.payload)).collect();
        if qos == 0 {
            // At most once: a broker may drop QoS 0 messages under load, but never
            // duplicates or reorders them.
            assert!(
                got.len() <= 40
                    && got.windows(2).all(|w| keys.iter().position(|k| *k == w[0])
                        < keys.iter().position(|k| *k == w[1])),
                "qos 0: {got:?}"
            );
        } else {
            assert_eq!(got, keys, "qos {qos}: exactly once, in order");
        }
        // Availability: `online` while connected, `offline` (retained) after a clean stop.
        let states: Vec<Vec<u8>> = sub.on(&avail).into_iter().map(|m| m.payload).collect();
        assert_eq!(states, vec![b"online".to_vec(), b"offline".to_vec()]);
    }
    // A late subscriber gets the retained availability.
    let late = Subscriber::start(
        broker.port,
        "nv-test-sub-late",
        &["nextvision/+/availability"],
        false,
    );
    late.wait("retained", |i| i.msgs.len() >= 3);
    assert!(late
        .on("nextvision/")
        .iter()
        .all(|m| m.retain && m.payload == b"offline"));
}

/// A burst far larger than the broker's inflight quota (mosquitto: 20), all handed to the
/// sink at once, at QoS 2 with the default configuration. MQTT 3.1.1 cannot report a
/// publish the broker dropped over its quota, so the sink must never exceed it: every
/// record the sink counts as delivered reaches the subscriber.
#[test]
fn qos2_burst_beyond_the_broker_quota_arrives_whole() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::mosquitto(dir.path());
    let sub = Subscriber::start(broker.port, "nv-test-sub-burst", &["burst/#"], false);
    let outputs = common::outputs(60);
    let keys = common::keys(&outputs);
    let mut config = MqttSinkConfig::new("127.0.0.1", broker.port);
    config.client_id = Some("nv-sink-burst".into());
    config.qos = nv_sinks::MqttQos::ExactlyOnce;
    config.topic = "burst/{feed}/{event}".into();
    config.buffer_records = 100;
    let stats = SinkStats::new();
    let mut sink = MqttSink::start(config, stats.clone()).unwrap();
    wait_stats(&stats, "connected", |s| s.connected);
    for o in &outputs {
        sink.emit(o.clone());
    }
    wait_stats(&stats, "all acknowledged", |s| s.delivered == 60);
    sub.wait("all received", |i| i.msgs.len() >= 60);
    assert_eq!(unique_keys(&sub.on("burst/")), keys);
    drop(sink);
    let s = stats.snapshot();
    assert_eq!(
        (s.delivered, s.failed, s.dropped_by_buffer),
        (60, 0, 0),
        "{s:?}"
    );
}

#[test]
fn broker_restart_loses_only_what_the_buffer_bound_says_and_counts_it() {
    restart_case(Outage::Stop);
}

#[test]
fn broker_killed_and_restarted_loses_only_what_the_buffer_bound_says() {
    restart_case(Outage::Kill);
}

fn restart_case(outage: Outage) {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = match outage {
        Outage::Stop => Broker::mosquitto(dir.path()),
        Outage::Kill => Broker::mosquitto_autosave(dir.path()),
    };
    // Persistent session: the broker keeps the subscription (and queues for it) across
    // its restart, so what the sink sends while this client reconnects is not missed.
    let sub = Subscriber::start(
        broker.port,
        "nv-test-sub-restart",
        &["nextvision/+/outputs"],
        true,
    );
    let mut config = MqttSinkConfig::new("127.0.0.1", broker.port);
    config.client_id = Some("nv-sink-restart".into());
    config.buffer_records = 5;
    config.reconnect_initial_ms = 20;
    config.reconnect_max_ms = 200;
    let stats = SinkStats::new();
    let mut sink = MqttSink::start(config, stats.clone()).unwrap();
    let outputs = common::outputs(30);
    // Before the first connection records are buffered too; start with the sink online
    // so that phase 1 is not cut by the (small) bound.
    wait_stats(&stats, "connected", |s| s.connected);

    // Paced while connected (the bound is small on purpose), so nothing is dropped there.
    let expected =
        common::ride_out_outage(&mut sink, &stats, &outputs, &mut broker, outage, || {
            sub.wait("phase 1 received", |i| i.msgs.len() >= 10);
        });
    sub.wait("everything received", |i| {
        i.msgs
            .iter()
            .map(|m| key_of(&m.payload))
            .collect::<HashSet<_>>()
            .len()
            >= expected.len()
    });
    assert_eq!(unique_keys(&sub.on("nextvision/")), expected);
    drop(sink);
    let s = stats.snapshot();
    assert_eq!(
        (s.delivered, s.failed, s.dropped_by_buffer, s.buffered),
        (23, 0, 7, 0),
        "{s:?}"
    );
    assert!(s.reconnects >= 1, "{s:?}");
}

/// The Frigate-style layout by feed name: events on `<prefix>/events`, retained occupancy
/// per zone and class and the feed's state, retained daemon availability.
#[test]
fn frigate_layout_publishes_events_occupancy_and_state() {
    use nv_core::geometry::BBox;
    use nv_perception::{CrossingDirection, EventKind, EventObject, PerceptionEvent, TrackId};
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::mosquitto(dir.path());
    let live = Subscriber::start(broker.port, "nv-test-frigate-live", &["site/#"], false);
    let config: SinkConfig = toml::from_str(&format!(
        "type = \"mqtt\"\nhost = \"127.0.0.1\"\nport = {}\nclient_id = \"nv-frigate\"\nprefix = \"site\"\nrecords = [\"events\"]\n",
        broker.port
    ))
    .unwrap();
    config.validate().unwrap();
    let stats = SinkStats::new();
    // As in the daemon: one shared instance that outlives the feeds writing into it.
    let shared = nv_sinks::SharedSink::new(
        "mqtt",
        config.build_with_stats(stats.clone()).unwrap(),
        stats.clone(),
    );
    // Each of 10 frames of feed `yard`: a new track of class 3 enters `door` and crosses
    // `gate` right to left.
    let mut handle = shared.handle();
    for seq in 0..10u64 {
        let mut o = (*common::rich_output(seq)).clone();
        o.feed_name = Some("yard".into());
        let object = Some(EventObject {
            track_id: TrackId::new(seq + 1),
            class_id: 3,
            confidence: 0.8,
            bbox: BBox::new(0.1, 0.1, 0.2, 0.2),
        });
        o.events = vec![
            PerceptionEvent::new(
                o.ts,
                EventKind::ZoneEnter {
                    zone: "door".into(),
                },
                object,
            ),
            PerceptionEvent::new(
                o.ts,
                EventKind::LineCrossed {
                    line: "gate".into(),
                    direction: CrossingDirection::RightToLeft,
                },
                object,
            ),
        ];
        handle.emit(Arc::new(o));
    }
    drop(handle);
    // Per frame: 2 event records, 1 occupancy and 1 state message.
    wait_stats(&stats, "all delivered", |s| s.delivered == 40);
    live.wait("every message", |i| i.msgs.len() >= 41);
    let schema: serde_json::Value = serde_json::from_str(nv_sinks::EVENT_SCHEMA_V1).unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    let events = live.on("site/events");
    assert_eq!(events.len(), 20);
    for m in &events {
        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        assert!(validator.is_valid(&v), "{v:#}");
        assert_eq!(v["feed"], "yard");
    }
    let kinds: Vec<String> = events
        .iter()
        .map(|m| {
            let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
            v["kind"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(kinds[..2], ["zone_enter", "line_crossed"]);
    let occupancy: Vec<String> = live
        .on("site/yard/door/3")
        .iter()
        .map(|m| String::from_utf8(m.payload.clone()).unwrap())
        .collect();
    assert_eq!(
        occupancy,
        (1..=10).map(|n| n.to_string()).collect::<Vec<_>>()
    );
    // No frame records were selected.
    assert!(live.on("site/yard/frames").is_empty());

    // A late subscriber gets the retained state: occupancy, counts, availability.
    let late = Subscriber::start(
        broker.port,
        "nv-test-frigate-late",
        &["site/yard/#", "site/available"],
        false,
    );
    late.wait("retained", |i| i.msgs.len() >= 3);
    let retained = late.on("site/");
    assert!(retained.iter().all(|m| m.retain));
    let last = |topic: &str| {
        retained
            .iter()
            .rev()
            .find(|m| m.topic == topic)
            .map(|m| m.payload.clone())
            .unwrap_or_else(|| panic!("no {topic}"))
    };
    assert_eq!(last("site/yard/door/3"), b"10");
    assert_eq!(last("site/available"), b"online");
    let state: serde_json::Value = serde_json::from_slice(&last("site/yard/state")).unwrap();
    assert_eq!(state["feed"], "yard");
    assert_eq!(state["zones"]["door"]["3"], 10);
    assert_eq!(state["lines"]["gate"]["right_to_left"]["3"], 10);
    // Nothing is emitted any more and the daemon-wide sink is still online; it goes
    // offline when the daemon drops it.
    drop(shared);
    live.wait("offline", |i| {
        i.msgs
            .iter()
            .any(|m| m.topic == "site/available" && m.payload == b"offline")
    });
}

/// Health records: `<prefix>/health` in the Frigate-style layout, `topic` with `{event}` =
/// `health` (and `{feed}` = `runtime` for runtime-wide events) otherwise; exact payloads.
#[test]
fn health_records_reach_their_topics_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::mosquitto(dir.path());
    let live = Subscriber::start(broker.port, "nv-test-health", &["site/#", "nv/#"], false);
    let build = |extra: &str| {
        let config: SinkConfig = toml::from_str(&format!(
            "type = \"mqtt\"\nhost = \"127.0.0.1\"\nport = {}\nrecords = [\"health\"]\n{extra}",
            broker.port
        ))
        .unwrap();
        config.validate().unwrap();
        let stats = SinkStats::new();
        let shared = nv_sinks::SharedSink::new(
            "mqtt",
            config.build_with_stats(stats.clone()).unwrap(),
            stats.clone(),
        );
        (shared, stats)
    };
    let (frigate, frigate_stats) = build("prefix = \"site\"\n");
    let (plain, plain_stats) = build("topic = \"nv/{feed}/{event}\"\n");
    assert!(frigate.selects_health() && plain.selects_health());
    for h in common::health_records() {
        frigate.emit_health(&h);
        plain.emit_health(&h);
    }
    wait_stats(&frigate_stats, "delivered", |s| s.delivered == 3);
    wait_stats(&plain_stats, "delivered", |s| s.delivered == 3);
    live.wait("six health records", |i| {
        i.msgs
            .iter()
            .filter(|m| m.topic.ends_with("/health"))
            .count()
            >= 6
    });
    let on_site = live.on("site/health");
    common::assert_health_payloads(
        &on_site
            .iter()
            .map(|m| m.payload.clone())
            .collect::<Vec<_>>(),
    );
    let on_nv = live.on("nv/");
    let topics: Vec<&str> = on_nv.iter().map(|m| m.topic.as_str()).collect();
    assert_eq!(topics, ["nv/1/health", "nv/1/health", "nv/runtime/health"]);
    common::assert_health_payloads(&on_nv.iter().map(|m| m.payload.clone()).collect::<Vec<_>>());
    assert!(on_site.iter().chain(&on_nv).all(|m| !m.retain));
}

/// With the feed's class names, the Frigate-style occupancy topic and the state use the
/// class's name (`site/yard/door/person`); the event records carry it beside the id.
#[test]
fn frigate_layout_names_classes_when_the_feed_knows_them() {
    use nv_core::geometry::BBox;
    use nv_perception::{EventKind, EventObject, PerceptionEvent, TrackId};
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::mosquitto(dir.path());
    let live = Subscriber::start(broker.port, "nv-test-frigate-names", &["site/#"], false);
    let config: SinkConfig = toml::from_str(&format!(
        "type = \"mqtt\"\nhost = \"127.0.0.1\"\nport = {}\nprefix = \"site\"\nrecords = [\"events\"]\n",
        broker.port
    ))
    .unwrap();
    let stats = SinkStats::new();
    let mut sink = config.build_with_stats(stats.clone()).unwrap();
    let mut names = nv_perception::ClassNames::new();
    names.insert(1, "person").unwrap();
    let names = Arc::new(names);
    for seq in 0..2u64 {
        let mut o = (*common::rich_output(seq)).clone();
        o.feed_name = Some("yard".into());
        o.class_names = Some(Arc::clone(&names));
        o.events = vec![PerceptionEvent::new(
            o.ts,
            EventKind::ZoneEnter {
                zone: "door".into(),
            },
            Some(EventObject {
                track_id: TrackId::new(seq + 1),
                class_id: 1,
                confidence: 0.8,
                bbox: BBox::new(0.1, 0.1, 0.2, 0.2),
            }),
        )];
        sink.emit(Arc::new(o));
    }
    // Per frame: 1 event record, 1 occupancy, 1 state.
    wait_stats(&stats, "all delivered", |s| s.delivered == 6);
    live.wait("every message", |i| i.msgs.len() >= 7);
    let occupancy: Vec<String> = live
        .on("site/yard/door/")
        .iter()
        .map(|m| format!("{} {}", m.topic, String::from_utf8_lossy(&m.payload)))
        .collect();
    assert_eq!(
        occupancy,
        ["site/yard/door/person 1", "site/yard/door/person 2"]
    );
    let state = live.on("site/yard/state");
    let state: serde_json::Value = serde_json::from_slice(&state[1].payload).unwrap();
    assert_eq!(state["zones"]["door"]["person"], 2);
    for m in live.on("site/events") {
        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        assert_eq!(
            (v["class"].as_str(), v["class_id"].as_u64()),
            (Some("person"), Some(1))
        );
    }
}
