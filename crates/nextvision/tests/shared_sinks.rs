//! Feeds that name one declared sink share its one instance: a rotating file sink keeps
//! every record of every feed exactly once, and an MQTT sink uses one connection.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nv_test_util::broker::Broker;
use nv_test_util::daemon::Daemon;
use parking_lot::{Condvar, Mutex};
use rumqttc::{Client, Event, Incoming, MqttOptions, QoS};

const TIMEOUT: Duration = Duration::from_secs(60);

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nv-{name}-{}", std::process::id()));
    let _absent = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `feeds` lossless synthetic feeds, all naming the sink `shared`.
fn config(sink: &str, feeds: usize) -> String {
    let mut c = format!("[api]\nenabled = false\n\n[[sinks]]\nname = \"shared\"\n{sink}\n");
    for i in 0..feeds {
        c.push_str(&format!(
            "\n[[feeds]]\nname = \"cam{i}\"\nsource = \"synthetic:64x48@60\"\nlossless = true\nsinks = [\"shared\"]\n[[feeds.stages]]\nkind = \"blob-detector\"\n[[feeds.stages]]\nkind = \"counter\"\n"
        ));
    }
    c
}

/// The daemon, started on `config` and running once it said so.
fn start(dir: &Path, config: &str) -> Daemon {
    let path = dir.join("nextvision.toml");
    std::fs::write(&path, config).unwrap();
    Daemon::run(Path::new(env!("CARGO_BIN_EXE_nextvision")), &path, &[])
}

/// Every record's (feed, seq): each must be there exactly once, and each feed's seqs
/// must be 0..n with no gap (lossless feeds drop nothing before shutdown, and frames
/// still queued at shutdown are the newest ones).
fn assert_exactly_once(records: &[serde_json::Value], feeds: usize) {
    let mut by_feed: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    for r in records {
        let feed = r["feed_id"].as_u64().unwrap();
        let seq = r["frame_seq"].as_u64().unwrap();
        assert!(
            by_feed.entry(feed).or_default().insert(seq),
            "feed {feed} seq {seq} twice"
        );
    }
    assert_eq!(
        by_feed.len(),
        feeds,
        "records of every feed: {:?}",
        by_feed.keys()
    );
    for (feed, seqs) in &by_feed {
        let n = seqs.len() as u64;
        assert_eq!(
            seqs.last().copied(),
            Some(n - 1),
            "feed {feed}: {n} records, seqs not 0..{n}"
        );
    }
}

#[test]
fn eight_feeds_share_one_rotating_file_sink_without_losing_a_record() {
    let dir = temp_dir("shared-file");
    let out = dir.join("out");
    let sink = format!(
        "kind = \"file\"\npath = \"{}\"\nmax_bytes = 8000\n",
        out.join("events.jsonl").display()
    );
    let daemon = start(&dir, &config(&sink, 8));
    let rotated = |out: &Path| {
        std::fs::read_dir(out)
            .map(|d| d.filter(|e| e.is_ok()).count().saturating_sub(1))
            .unwrap_or(0)
    };
    let deadline = Instant::now() + TIMEOUT;
    while rotated(&out) < 25 {
        assert!(
            Instant::now() < deadline,
            "the file sink did not rotate 25 times"
        );
        // No event crosses the process boundary for "file rotated": poll the directory.
        std::thread::sleep(Duration::from_millis(20));
    }
    daemon.stop();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() > 20, "{} files", files.len());
    let mut records = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{} ends mid-line",
            f.display()
        );
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}: {e}: {line}", f.display()));
            records.push(v);
        }
    }
    assert_exactly_once(&records, 8);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[derive(Default)]
struct Inbox {
    subscribed: bool,
    records: Vec<Vec<u8>>,
    offline: bool,
}

#[test]
fn four_feeds_share_one_mqtt_connection_and_every_record_arrives_once() {
    let dir = temp_dir("shared-mqtt");
    let broker = Broker::mosquitto(&dir);
    let mut opts = MqttOptions::new("nv-test-subscriber", "127.0.0.1", broker.port);
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut conn) = Client::new(opts, 1024);
    client.subscribe("nvtest/#", QoS::AtLeastOnce).unwrap();
    let inbox = Arc::new((Mutex::new(Inbox::default()), Condvar::new()));
    let ib = Arc::clone(&inbox);
    std::thread::Builder::new()
        .name("test-mqtt-sub".into())
        .spawn(move || {
            for ev in conn.iter() {
                let Ok(ev) = ev else { break };
                let (lock, cv) = &*ib;
                let mut inbox = lock.lock();
                match ev {
                    Event::Incoming(Incoming::SubAck(_)) => inbox.subscribed = true,
                    Event::Incoming(Incoming::Publish(p)) if p.topic == "nvtest/availability" => {
                        inbox.offline = &p.payload[..] == b"offline";
                    }
                    Event::Incoming(Incoming::Publish(p)) => inbox.records.push(p.payload.to_vec()),
                    _ => continue,
                }
                cv.notify_all();
            }
        })
        .unwrap();
    let wait = |what: &str, pred: &dyn Fn(&Inbox) -> bool| {
        let (lock, cv) = &*inbox;
        let deadline = Instant::now() + TIMEOUT;
        let mut ib = lock.lock();
        while !pred(&ib) {
            assert!(
                !cv.wait_until(&mut ib, deadline).timed_out(),
                "timed out: {what}"
            );
        }
    };
    wait("subscribed", &|ib| ib.subscribed);

    let sink = format!(
        "kind = \"mqtt\"\nhost = \"127.0.0.1\"\nport = {}\nclient_id = \"nv-shared-sink\"\ntopic = \"nvtest/out/{{feed}}\"\navailability_topic = \"nvtest/availability\"\nqos = 1\n",
        broker.port
    );
    let daemon = start(&dir, &config(&sink, 4));
    wait("records of the running feeds", &|ib| {
        ib.records.len() >= 400
    });
    daemon.stop();
    // `offline` is published after the sink drained, on the same connection, so every
    // record the sink delivered arrived before it.
    wait("offline after the drain", &|ib| ib.offline);

    let records: Vec<serde_json::Value> = inbox
        .0
        .lock()
        .records
        .iter()
        .map(|p| serde_json::from_slice(p).expect("every record parses"))
        .collect();
    assert_exactly_once(&records, 4);

    let log = std::fs::read_to_string(broker.log_path()).unwrap();
    let connections = log
        .lines()
        .filter(|l| l.contains("New client connected") && l.contains(" as nv-shared-sink"))
        .count();
    assert_eq!(connections, 1, "one connection for the shared sink:\n{log}");
    drop(broker);
    std::fs::remove_dir_all(&dir).unwrap();
}
