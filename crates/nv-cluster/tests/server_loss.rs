//! One of three JetStream servers dies (SIGKILL): the leader of the leases bucket and the
//! one server the client was given. The store serves again on the other two (R3: they
//! keep a quorum; the client learnt of them from the cluster), and keeps serving every
//! request after that, not only some of them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::time::{Duration, Instant};

use nv_cluster::{Bucket, Kv, KvError, NatsKv, NatsKvConfig};
use nv_test_util::broker::NatsCluster;

const PREFIX: &str = "nvloss";
const TTL: Duration = Duration::from_secs(3);
/// Leader elections of the lost server's streams take seconds (more on a busy machine).
const RECOVERY_LIMIT: Duration = Duration::from_secs(60);
/// Requests made once the store serves again; every one must succeed.
const REQUESTS_AFTER: usize = 20;

/// Connects, creating the buckets; a cluster just started may not place R3 streams yet
/// ("no suitable peers"): tried again, bounded.
fn store(urls: &[String]) -> NatsKv {
    let deadline = Instant::now() + RECOVERY_LIMIT;
    loop {
        let kv = NatsKv::connect(&NatsKvConfig {
            urls: urls.to_vec(),
            creds_file: None,
            bucket_prefix: PREFIX.into(),
            replicas: 3,
            node_ttl: TTL,
            lease_ttl: TTL,
            request_timeout: Duration::from_secs(5),
        });
        match kv {
            Ok(kv) => return kv,
            Err(e) => assert!(Instant::now() < deadline, "connecting: {e}"),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The server name (`nK`) leading JetStream stream `stream`, asked through `url`.
fn leader_of(url: &str, stream: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = async_nats::connect(url).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let mut s = js.get_stream(stream).await.unwrap();
        let info = s.info().await.unwrap();
        info.cluster
            .as_ref()
            .and_then(|c| c.leader.clone())
            .expect("an R3 stream has a leader")
    })
}

/// One round of what a cluster node does each tick (heartbeat, list every bucket, renew
/// a lease, publish) and what an audit does (read a stream back).
fn round(kv: &NatsKv, lease_rev: &mut u64, n: u64) -> Result<(), String> {
    kv.put(Bucket::Nodes, "node-a", b"{}")
        .map_err(|e| format!("put: {e}"))?;
    for b in Bucket::ALL {
        kv.list(b).map_err(|e| format!("list {b:?}: {e}"))?;
    }
    // A lease that lapsed in a slow round (or whose renewal timed out here but landed)
    // is taken again.
    *lease_rev = match kv.update(Bucket::Leases, "feed-1", b"{}", *lease_rev) {
        Err(KvError::WrongRevision { .. }) => match kv.get(Bucket::Leases, "feed-1") {
            Ok(Some(e)) => kv.update(Bucket::Leases, "feed-1", b"{}", e.revision),
            Ok(None) => kv.create(Bucket::Leases, "feed-1", b"{}"),
            Err(e) => Err(e),
        },
        other => other,
    }
    .map_err(|e| format!("renewing a lease: {e}"))?;
    kv.publish(
        &format!("{PREFIX}.out.feed-1"),
        &format!("msg-{n}"),
        b"{}".to_vec(),
    )
    .map_err(|e| format!("publish: {e}"))?;
    kv.read_stream(&format!("{PREFIX}-out"), 100_000)
        .map_err(|e| format!("read_stream: {e}"))?;
    Ok(())
}

#[test]
fn the_store_serves_every_request_again_after_one_of_three_servers_dies() {
    let dir = tempfile::tempdir().unwrap();
    let mut nats = NatsCluster::start(dir.path(), 3);
    let urls = nats.urls();
    let kv = store(&urls);
    kv.ensure_stream(
        &format!("{PREFIX}-out"),
        vec![format!("{PREFIX}.out.>")],
        3,
        Duration::ZERO,
    )
    .unwrap();
    let mut rev = kv.create(Bucket::Leases, "feed-1", b"{}").unwrap();
    let mut n = 0;
    round(&kv, &mut rev, n).unwrap();

    let leader = leader_of(&urls[0], &format!("KV_{PREFIX}-leases"));
    let index: usize = leader.trim_start_matches('n').parse::<usize>().unwrap() - 1;
    // A second client given only the doomed server: it must find the others itself.
    drop(kv);
    let kv = store(&urls[index..=index]);
    round(&kv, &mut rev, n).unwrap();
    nats.servers[index].kill();
    let killed = Instant::now();

    let mut last_error = String::new();
    loop {
        n += 1;
        match round(&kv, &mut rev, n) {
            Ok(()) => break,
            Err(e) => last_error = e,
        }
        assert!(
            killed.elapsed() < RECOVERY_LIMIT,
            "the store does not serve {RECOVERY_LIMIT:?} after {leader} died: {last_error}"
        );
    }
    eprintln!(
        "store serving again {:.1} s after {leader} died (last error before: {last_error})",
        killed.elapsed().as_secs_f64()
    );
    let mut failures = Vec::new();
    for _ in 0..REQUESTS_AFTER {
        n += 1;
        let started = Instant::now();
        if let Err(e) = round(&kv, &mut rev, n) {
            failures.push(format!("{e} ({:.1} s)", started.elapsed().as_secs_f64()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {REQUESTS_AFTER} rounds failed after the store served again: {failures:?}",
        failures.len()
    );
}
