//! Cluster mode end to end: two daemons share six feeds through a real nats-server with
//! JetStream; SIGKILL on one moves its feeds to the other within the lease TTL; SIGTERM
//! hands everything back to the bucket (no lease left behind).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nv_cluster::{Bucket, Kv, NatsKv, NatsKvConfig};
use nv_test_util::broker::Broker;
use nv_test_util::daemon::Daemon;

const FEEDS: usize = 6;
const LEASE_TTL_SECS: u64 = 2;
/// The failover target: a dead node's feeds run elsewhere within 10 s.
const FAILOVER_LIMIT: Duration = Duration::from_secs(10);
const TIMEOUT: Duration = Duration::from_secs(60);
/// Feed placement lives in two other processes and has no event this test can wait on:
/// it polls their APIs at this interval, always bounded by a deadline.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nv-{name}-{}", std::process::id()));
    let _absent = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn config(node: &str, nats_port: u16) -> String {
    let mut c = format!(
        "[api]\nlisten = \"127.0.0.1:0\"\n\n[cluster]\nnats_urls = [\"nats://127.0.0.1:{nats_port}\"]\nnode = \"{node}\"\nlease_ttl_secs = {LEASE_TTL_SECS}\nbucket_prefix = \"nvtest\"\n"
    );
    for i in 0..FEEDS {
        c.push_str(&format!(
            "\n[[feeds]]\nname = \"cam{i}\"\nsource = \"synthetic:64x48@10\"\n[[feeds.stages]]\nkind = \"blob-detector\"\n[[feeds.stages]]\nkind = \"counter\"\n"
        ));
    }
    c
}

fn start(dir: &Path, node: &str, nats_port: u16) -> Daemon {
    let path = dir.join(format!("{node}.toml"));
    std::fs::write(&path, config(node, nats_port)).unwrap();
    Daemon::run(Path::new(env!("CARGO_BIN_EXE_nextvision")), &path, &[])
}

fn running_feeds(daemon: &Daemon) -> BTreeSet<String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let body = agent
        .get(format!("{}/api/v1/feeds", daemon.base()))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    let feeds: serde_json::Value = serde_json::from_str(&body).unwrap();
    feeds
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["alive"].as_bool().unwrap_or(true))
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect()
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(POLL_INTERVAL);
    }
    start.elapsed()
}

#[test]
fn two_daemons_split_feeds_fail_over_on_sigkill_and_release_on_sigterm() {
    let dir = temp_dir("cluster");
    let broker = Broker::nats(&dir, true);
    let a = start(&dir, "node-a", broker.port);
    let b = start(&dir, "node-b", broker.port);
    let all: BTreeSet<String> = (0..FEEDS).map(|i| format!("cam{i}")).collect();

    wait_until("the feeds to split across both nodes", TIMEOUT, || {
        let (fa, fb) = (running_feeds(&a), running_feeds(&b));
        fa.is_disjoint(&fb)
            && fa.union(&fb).cloned().collect::<BTreeSet<_>>() == all
            && !fa.is_empty()
            && !fb.is_empty()
    });

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

    let status = b.stop_with("TERM");
    assert!(status.success(), "graceful stop: {status}");
    let kv = NatsKv::connect(&NatsKvConfig {
        urls: vec![format!("nats://127.0.0.1:{}", broker.port)],
        creds_file: None,
        bucket_prefix: "nvtest".into(),
        replicas: 1,
        node_ttl: Duration::from_secs(LEASE_TTL_SECS),
        lease_ttl: Duration::from_secs(LEASE_TTL_SECS),
        request_timeout: Duration::from_secs(5),
    })
    .unwrap();
    assert!(
        kv.list(Bucket::Leases).unwrap().is_empty(),
        "a drained node releases its leases"
    );
    assert_eq!(kv.list(Bucket::Feeds).unwrap().len(), FEEDS, "specs stay");
    drop(broker);
    let _cleanup = std::fs::remove_dir_all(&dir);
}
