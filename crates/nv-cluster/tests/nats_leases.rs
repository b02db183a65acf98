//! Leases on a real nats-server with JetStream: two nodes split the feeds, a silent node's
//! feeds move once the server expires its leases, and the silent node, resumed, fences
//! itself before anyone could have published twice.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nv_cluster::kv::{KvClock, RealClock};
use nv_cluster::{Action, Bucket, Kv, Member, MemberConfig, NatsKv, NatsKvConfig, StopCause};
use nv_test_util::broker::Broker;

const LEASE_TTL: Duration = Duration::from_secs(2);
const DEADLINE: Duration = Duration::from_secs(60);

fn store(port: u16) -> Arc<NatsKv> {
    Arc::new(
        NatsKv::connect(&NatsKvConfig {
            urls: vec![format!("nats://127.0.0.1:{port}")],
            creds_file: None,
            bucket_prefix: "nvtest".into(),
            replicas: 1,
            node_ttl: LEASE_TTL,
            lease_ttl: LEASE_TTL,
            request_timeout: Duration::from_secs(5),
        })
        .expect("connect"),
    )
}

fn member(kv: &Arc<NatsKv>, name: &str) -> Member {
    let kv: Arc<dyn Kv> = kv.clone();
    let clock: Arc<dyn KvClock> = Arc::new(RealClock);
    Member::new(kv, clock, MemberConfig::new(name, LEASE_TTL))
}

fn held(m: &Member) -> BTreeSet<String> {
    m.held().map(|(f, _)| f.to_owned()).collect()
}

/// No feed may have a valid fence on both nodes at the same instant.
fn assert_fenced(a: &Member, b: &Member) {
    let now = Instant::now();
    for (feed, fa) in a.fences() {
        if let Some((_, fb)) = b.fences().find(|(f, _)| *f == feed) {
            assert!(
                !(fa.is_valid(now) && fb.is_valid(now)),
                "{feed} publishable on both nodes"
            );
        }
    }
}

#[test]
fn feeds_split_move_on_silence_and_the_silent_node_fences_itself() {
    let dir = std::env::temp_dir().join(format!("nv-cluster-{}", std::process::id()));
    let _absent = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let broker = Broker::nats(&dir, true);
    let kv_a = store(broker.port);
    let kv_b = store(broker.port);
    let feeds: BTreeSet<String> = (0..12).map(|i| format!("cam-{i:02}")).collect();
    for f in &feeds {
        kv_a.put(Bucket::Feeds, f, b"{\"url\":\"synthetic\"}")
            .unwrap();
    }
    let mut a = member(&kv_a, "node-a");
    let mut b = member(&kv_b, "node-b");

    // Both tick until every feed is held once; each node ends up with some.
    let start = Instant::now();
    loop {
        a.tick();
        b.tick();
        assert_fenced(&a, &b);
        let (ha, hb) = (held(&a), held(&b));
        if ha.len() + hb.len() == feeds.len()
            && ha.union(&hb).count() == feeds.len()
            && !ha.is_empty()
            && !hb.is_empty()
        {
            break;
        }
        assert!(start.elapsed() < DEADLINE, "no split: a {ha:?} b {hb:?}");
    }
    let tokens: BTreeSet<u64> = a.held().chain(b.held()).map(|(_, t)| t).collect();
    assert_eq!(tokens.len(), feeds.len(), "one fencing token per lease");
    let a_feeds = held(&a);

    // node-a goes silent (SIGSTOP, partition): node-b takes everything once the server
    // expired node-a's record and leases, and never while node-a could still publish.
    let silent_at = Instant::now();
    loop {
        b.tick();
        assert_fenced(&a, &b);
        if held(&b) == feeds {
            break;
        }
        assert!(
            silent_at.elapsed() < DEADLINE,
            "no failover: b {:?}",
            held(&b)
        );
    }
    assert!(
        silent_at.elapsed() >= LEASE_TTL - LEASE_TTL / 5,
        "took over before the lease could have expired"
    );
    let now = Instant::now();
    assert!(a.fences().all(|(_, f)| !f.is_valid(now)), "node-a fenced");

    // node-a resumes: its first tick stops every feed it held, as fenced, and it holds none.
    let actions = a.tick();
    let fenced: BTreeSet<String> = actions
        .iter()
        .filter_map(|x| match x {
            Action::Stop {
                feed,
                cause: StopCause::Fenced,
            } => Some(feed.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(fenced, a_feeds);
    assert!(held(&a).is_empty());
    assert!(
        !actions.iter().any(|x| matches!(x, Action::Start { .. })),
        "node-a started nothing while node-b holds every lease"
    );
    let _cleanup = std::fs::remove_dir_all(&dir);
}

/// A listing is every live key with its value and revision, in key order, in one store
/// operation however many keys; deleted keys are left out.
#[test]
fn list_reads_the_whole_bucket_in_one_operation() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::nats(dir.path(), true);
    let kv = store(broker.port);
    assert!(kv.list(Bucket::Feeds).unwrap().is_empty());
    let mut revisions = Vec::new();
    for i in 0..50 {
        let key = format!("cam-{i:02}");
        revisions.push(kv.create(Bucket::Feeds, &key, key.as_bytes()).unwrap());
    }
    // A rewritten key lists with its newest value; a deleted one not at all.
    revisions[7] = kv.put(Bucket::Feeds, "cam-07", b"seven").unwrap();
    kv.delete(Bucket::Feeds, "cam-13", revisions[13]).unwrap();
    let before = kv.ops();
    let listed = kv.list(Bucket::Feeds).unwrap();
    assert_eq!(kv.ops() - before, 1, "one operation for 49 keys");
    assert_eq!(listed.len(), 49);
    for e in &listed {
        let i: usize = e.key["cam-".len()..].parse().unwrap();
        assert_ne!(i, 13);
        assert_eq!(e.revision, revisions[i], "{}", e.key);
        let want = if i == 7 {
            b"seven".to_vec()
        } else {
            e.key.clone().into_bytes()
        };
        assert_eq!(e.value, want);
        assert_eq!(kv.get(Bucket::Feeds, &e.key).unwrap().unwrap(), *e);
    }
    let keys: Vec<&str> = listed.iter().map(|e| e.key.as_str()).collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(keys, sorted);
}
