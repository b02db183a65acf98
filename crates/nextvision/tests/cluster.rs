//! Cluster mode end to end: two daemons share six feeds through a real nats-server with
//! JetStream; SIGKILL on one moves its feeds to the other within the lease TTL; SIGTERM
//! hands everything back to the bucket (no lease left behind).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use nv_cluster::{Bucket, Kv, NatsKv, NatsKvConfig};
use nv_test_util::broker::Broker;
use nv_test_util::daemon::Daemon;

mod cluster_audit;
use cluster_audit::{get_json, now_micros, running_feeds, temp_dir, Audit, FAILOVER_LIMIT};

const FEEDS: usize = 6;
const LEASE_TTL_SECS: u64 = 2;
const TIMEOUT: Duration = Duration::from_secs(60);
/// Feed placement lives in two other processes and has no event this test can wait on:
/// it polls their APIs at this interval, always bounded by a deadline.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A node's configuration: the six feeds, each writing to this node's own file sink.
fn config(dir: &Path, node: &str, nats_port: u16) -> String {
    let mut c = format!(
        "[api]\nlisten = \"127.0.0.1:0\"\n\n[cluster]\nnats_urls = [\"nats://127.0.0.1:{nats_port}\"]\nnode = \"{node}\"\nlease_ttl_secs = {LEASE_TTL_SECS}\nbucket_prefix = \"nvtest\"\n\n[[sinks]]\nname = \"out\"\nkind = \"file\"\npath = \"{}\"\n",
        dir.join(format!("{node}.jsonl")).display()
    );
    for i in 0..FEEDS {
        c.push_str(&format!(
            "\n[[feeds]]\nname = \"cam{i}\"\nsource = \"synthetic:64x48@10\"\nsinks = [\"out\"]\n[[feeds.stages]]\nkind = \"blob-detector\"\n[[feeds.stages]]\nkind = \"counter\"\n"
        ));
    }
    c
}

fn start(dir: &Path, node: &str, nats_port: u16) -> Daemon {
    let path = dir.join(format!("{node}.toml"));
    std::fs::write(&path, config(dir, node, nats_port)).unwrap();
    Daemon::run(Path::new(env!("CARGO_BIN_EXE_nextvision")), &path, &[])
}

fn store(port: u16) -> NatsKv {
    NatsKv::connect(&NatsKvConfig {
        urls: vec![format!("nats://127.0.0.1:{port}")],
        creds_file: None,
        bucket_prefix: "nvtest".into(),
        replicas: 1,
        node_ttl: Duration::from_secs(LEASE_TTL_SECS),
        lease_ttl: Duration::from_secs(LEASE_TTL_SECS),
        request_timeout: Duration::from_secs(5),
    })
    .unwrap()
}

fn wait_until(what: &str, limit: Duration, done: impl FnMut() -> bool) -> Duration {
    cluster_audit::wait_until(what, limit, POLL_INTERVAL, done)
}

/// Waits until `a` and `b` each run some of `all` and together every one, once.
fn wait_split(a: &Daemon, b: &Daemon, all: &BTreeSet<String>) {
    wait_until("the feeds to split across both nodes", TIMEOUT, || {
        let (fa, fb) = (running_feeds(a), running_feeds(b));
        fa.is_disjoint(&fb)
            && fa.union(&fb).cloned().collect::<BTreeSet<_>>() == *all
            && !fa.is_empty()
            && !fb.is_empty()
    });
}

#[test]
fn two_daemons_split_feeds_fail_over_on_sigkill_and_release_on_sigterm() {
    let dir = temp_dir("cluster");
    let broker = Broker::nats(&dir, true);
    let a = start(&dir, "node-a", broker.port);
    let b = start(&dir, "node-b", broker.port);
    let all: BTreeSet<String> = (0..FEEDS).map(|i| format!("cam{i}")).collect();

    wait_split(&a, &b, &all);

    // Either node shows the whole fleet: both nodes, and each feed owned where it runs.
    let fleet = get_json(&format!("{}/api/v1/cluster", b.base()));
    let nodes: BTreeSet<&str> = fleet["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, BTreeSet::from(["node-a", "node-b"]));
    let on_a = running_feeds(&a);
    let rows = fleet["feeds"].as_array().unwrap();
    assert_eq!(rows.len(), FEEDS);
    for row in rows {
        let name = row["name"].as_str().unwrap();
        let owner = if on_a.contains(name) {
            "node-a"
        } else {
            "node-b"
        };
        assert_eq!(row["owner"], owner, "{row}");
        assert!(row["fence"].as_u64().unwrap() > 0, "{row}");
    }
    // The CLI reads the same view from the store.
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_nextvision"))
        .args(["cluster", "status"])
        .arg(dir.join("node-b.toml"))
        .output()
        .unwrap();
    assert!(status.status.success());
    let text = String::from_utf8(status.stdout).unwrap();
    assert!(
        text.contains("nodes (2):") && text.contains(&format!("feeds ({FEEDS}):")),
        "{text}"
    );

    let a_feeds = running_feeds(&a);
    let killed_at = Instant::now();
    let status = a.stop_with("KILL");
    assert!(!status.success());
    let took = wait_until("node-b to run every feed", FAILOVER_LIMIT, || {
        running_feeds(&b) == all
    });
    eprintln!(
        "failover after SIGKILL: {:.2} s (lease TTL {LEASE_TTL_SECS} s)",
        killed_at.elapsed().as_secs_f64().max(took.as_secs_f64())
    );

    // node-b reports each feed it took over from node-a, once its first output is out.
    let kv = store(broker.port);
    wait_until("node-b's handover records", TIMEOUT, || {
        let audit = Audit::read(&kv, "nvtest");
        a_feeds.iter().all(|f| {
            audit
                .handovers_of(f)
                .values()
                .any(|h| h["data"]["node"] == "node-b" && h["data"]["previous_node"] == "node-a")
        })
    });

    let counted = get_json(&format!("{}/api/v1/cluster", b.base()))["this_node"].clone();
    assert_eq!(counted["node"], "node-b", "{counted}");
    assert!(
        counted["handovers_reported"].as_u64().unwrap() >= a_feeds.len() as u64,
        "{counted}"
    );
    let status = b.stop_with("TERM");
    assert!(status.success(), "graceful stop: {status}");
    // The streams: every record fenced, none twice, owners never overlapping, every move
    // reported with the last frame of the previous owner.
    let audit = Audit::read(&kv, "nvtest");
    eprintln!(
        "streams: {} frame records, {} event records, {} handover records",
        audit.frames.len(),
        audit.events,
        audit.handovers.len()
    );
    assert_eq!(audit.fences().len(), FEEDS, "every feed published");
    audit.assert_no_duplicates();
    audit.assert_owners_never_overlap();
    audit.assert_every_handover_reported();
    for f in &a_feeds {
        assert!(audit.fences()[f].len() >= 2, "{f} ran under two fences");
    }
    assert!(
        kv.list(Bucket::Leases).unwrap().is_empty(),
        "a drained node releases its leases"
    );
    assert_eq!(kv.list(Bucket::Feeds).unwrap().len(), FEEDS, "specs stay");
    drop(broker);
    let _cleanup = std::fs::remove_dir_all(&dir);
}

/// The wall time (microseconds since the epoch) of every record a node's file sink wrote.
fn record_times(dir: &Path, node: &str) -> Vec<u64> {
    let text = std::fs::read_to_string(dir.join(format!("{node}.jsonl"))).unwrap_or_default();
    text.lines()
        .map(|l| {
            let r: serde_json::Value = serde_json::from_str(l).unwrap();
            r["wall_micros"].as_u64().unwrap()
        })
        .collect()
}

fn signal(daemon: &Daemon, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([format!("-{sig}"), daemon.pid().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig}");
}

/// A node frozen (SIGSTOP) past its leases loses its feeds to the other node, and once
/// resumed it publishes nothing more: no record it wrote is newer than the freeze.
#[test]
fn a_frozen_node_loses_its_feeds_and_publishes_nothing_with_a_stale_lease() {
    let dir = temp_dir("cluster-stop");
    let broker = Broker::nats(&dir, true);
    let a = start(&dir, "node-a", broker.port);
    let b = start(&dir, "node-b", broker.port);
    let all: BTreeSet<String> = (0..FEEDS).map(|i| format!("cam{i}")).collect();
    let mut a_feeds = BTreeSet::new();
    wait_until("the feeds to split across both nodes", TIMEOUT, || {
        let (fa, fb) = (running_feeds(&a), running_feeds(&b));
        a_feeds.clone_from(&fa);
        fa.is_disjoint(&fb)
            && fa.union(&fb).cloned().collect::<BTreeSet<_>>() == all
            && !fa.is_empty()
            && !fb.is_empty()
    });
    // node-a has written records of its feeds before the freeze.
    wait_until("node-a's first records", TIMEOUT, || {
        !record_times(&dir, "node-a").is_empty()
    });

    signal(&a, "STOP");
    let frozen_at = now_micros();
    wait_until("node-b to run every feed", TIMEOUT, || {
        running_feeds(&b) == all
    });
    signal(&a, "CONT");
    let resumed_at = now_micros();
    // node-a's next tick fences and stops its old feeds; wait until its API says so.
    wait_until("node-a to stop its fenced feeds", TIMEOUT, || {
        running_feeds(&a).is_empty()
    });
    a.stop();
    b.stop();

    let times = record_times(&dir, "node-a");
    let newest = times.iter().copied().max().unwrap();
    // Frames captured before the freeze may carry a time a little after `frozen_at`
    // (the signal lands asynchronously); anything captured after the resume would be at
    // least the lease TTL later.
    let slack_micros = 500_000;
    assert!(
        newest < frozen_at + slack_micros,
        "node-a wrote a record captured {} ms after its freeze (resumed {} ms after it)",
        (newest - frozen_at) / 1000,
        (resumed_at - frozen_at) / 1000
    );
    assert!(!a_feeds.is_empty());
    drop(broker);
    let _cleanup = std::fs::remove_dir_all(&dir);
}

/// Sends `method` to `url` with an optional JSON body; the status code (the answer's body
/// is printed, for a failing assertion's context).
fn send(method: &str, url: &str, body: Option<&str>) -> u16 {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into();
    let response = match (method, body) {
        ("POST", Some(b)) => agent
            .post(url)
            .header("content-type", "application/json")
            .send(b),
        ("POST", None) => agent.post(url).send_empty(),
        ("DELETE", _) => agent.delete(url).call(),
        ("PUT", Some(b)) => agent
            .put(url)
            .header("content-type", "application/json")
            .send(b),
        other => panic!("unsupported {other:?}"),
    };
    let mut response = response.unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    eprintln!("{method} {url}: {status} {text}");
    status
}

/// A feed as a node's API shows it, if that node runs it.
fn feed_on(daemon: &Daemon, name: &str) -> Option<serde_json::Value> {
    let feeds = get_json(&format!("{}/api/v1/feeds", daemon.base()));
    feeds
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name && f["alive"].as_bool().unwrap_or(true))
        .cloned()
}

/// Edits sent to node-a change feeds node-b runs: pause and resume in place (same feed
/// id), remove; a feed added through node-a runs on exactly one node.
#[test]
fn fleet_edits_through_any_node_reach_the_owner() {
    let dir = temp_dir("cluster-edit");
    let broker = Broker::nats(&dir, true);
    let a = start(&dir, "node-a", broker.port);
    let b = start(&dir, "node-b", broker.port);
    let all: BTreeSet<String> = (0..FEEDS).map(|i| format!("cam{i}")).collect();
    wait_split(&a, &b, &all);
    let target = running_feeds(&b).into_iter().next().unwrap();
    let id_before = feed_on(&b, &target).unwrap()["id"].clone();

    let url = |path: &str| format!("{}/api/v1/feeds{path}", a.base());
    assert_eq!(send("POST", &url(&format!("/{target}/pause")), None), 202);
    wait_until("node-b to pause the feed", TIMEOUT, || {
        feed_on(&b, &target).is_some_and(|f| f["paused"] == true)
    });
    assert_eq!(send("POST", &url(&format!("/{target}/resume")), None), 202);
    wait_until("node-b to resume the feed", TIMEOUT, || {
        feed_on(&b, &target).is_some_and(|f| f["paused"] == false)
    });
    assert_eq!(
        feed_on(&b, &target).unwrap()["id"],
        id_before,
        "paused and resumed in place, not restarted"
    );

    assert_eq!(send("DELETE", &url(&format!("/{target}")), None), 202);
    wait_until("node-b to stop the removed feed", TIMEOUT, || {
        feed_on(&b, &target).is_none()
    });
    assert_eq!(send("DELETE", &url(&format!("/{target}")), None), 404);
    assert_eq!(send("POST", &url(&format!("/{target}/pause")), None), 404);

    let new_feed = r#"{"name": "cam-new", "source": "synthetic:64x48@10", "sinks": ["out"], "stages": [{"kind": "blob-detector"}, {"kind": "counter"}]}"#;
    let unrunnable = new_feed.replace(r#"{"kind": "blob-detector"}, "#, "");
    assert_eq!(
        send("POST", &url(""), Some(&unrunnable)),
        400,
        "checked before stored"
    );
    assert_eq!(send("POST", &url(""), Some(new_feed)), 202);
    assert_eq!(
        send("POST", &url(""), Some(new_feed)),
        409,
        "names are fleet-wide"
    );
    let bad = r#"{"name": "cam-bad", "source": "synthetic:64x48@10", "sinks": ["nope"], "stages": [{"kind": "counter"}]}"#;
    assert_eq!(send("POST", &url(""), Some(bad)), 400);
    let ran = Instant::now();
    while feed_on(&a, "cam-new").is_some() == feed_on(&b, "cam-new").is_some() {
        assert!(
            ran.elapsed() < TIMEOUT,
            "the added feed runs on no node or both; logs:\nnode-a: {}\nnode-b: {}",
            a.log(),
            b.log()
        );
        std::thread::sleep(POLL_INTERVAL);
    }
    // Zones: edited through node-a, applied in place by whichever node runs the feed.
    let zoned = r#"{"name": "cam-zone", "source": "synthetic:64x48@10", "sinks": ["out"], "stages": [{"kind": "blob-detector"}, {"kind": "tracker"}, {"kind": "zones", "zones": [{"name": "door", "points": [[0.0, 0.0], [0.5, 0.0], [0.5, 0.5]]}]}]}"#;
    assert_eq!(send("POST", &url(""), Some(zoned)), 202);
    let mut owner = None;
    wait_until("the zoned feed to run", TIMEOUT, || {
        owner = [&a, &b]
            .into_iter()
            .find(|d| feed_on(d, "cam-zone").is_some());
        owner.is_some()
    });
    let owner = owner.unwrap();
    let zone_id = feed_on(owner, "cam-zone").unwrap()["id"].clone();
    let zones_url = format!("{}/api/v1/feeds/cam-zone/zones", owner.base());
    assert_eq!(get_json(&zones_url)["zones"][0]["name"], "door");
    let bad = r#"{"zones": [{"name": "a", "points": [[0.0, 0.0], [1.5, 0.0], [0.5, 0.5]]}]}"#;
    assert_eq!(send("PUT", &url("/cam-zone/zones"), Some(bad)), 400);
    let edit = r#"{"zones": [{"name": "gate", "points": [[0.5, 0.5], [1.0, 0.5], [1.0, 1.0]]}], "lines": [{"name": "kerb", "from": [0.0, 0.9], "to": [1.0, 0.9]}]}"#;
    assert_eq!(send("PUT", &url("/cam-zone/zones"), Some(edit)), 202);
    let overlay_url = format!("{}/api/v1/feeds/cam-zone/overlay", owner.base());
    assert_eq!(get_json(&overlay_url)["zones"][0]["name"], "door");
    wait_until("the owner to apply the zone edit", TIMEOUT, || {
        let z = get_json(&zones_url);
        z["zones"][0]["name"] == "gate" && z["lines"][0]["name"] == "kerb"
    });
    // What snapshots and streams draw follows.
    let overlay = get_json(&overlay_url);
    assert_eq!(overlay["zones"][0]["name"], "gate", "{overlay}");
    assert_eq!(overlay["lines"][0]["name"], "kerb", "{overlay}");
    assert_eq!(
        feed_on(owner, "cam-zone").unwrap()["id"],
        zone_id,
        "edited in place, not restarted"
    );
    assert_eq!(
        send("PUT", &url("/cam-new/zones"), Some(edit)),
        404,
        "no zones stage"
    );

    let fleet = get_json(&format!("{}/api/v1/cluster", b.base()));
    let names: BTreeSet<&str> = fleet["feeds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains("cam-new") && !names.contains(target.as_str()),
        "{fleet}"
    );
    a.stop();
    b.stop();
    drop(broker);
    let _cleanup = std::fs::remove_dir_all(&dir);
}
