//! The fleet end to end: a three-server nats-server cluster with JetStream (R3 buckets and
//! streams), three daemons sharing synthetic feeds and two RTSP feeds from a real
//! gst-rtsp-server. One daemon is killed (SIGKILL: its feeds run elsewhere within 10 s),
//! one frozen past its leases (SIGSTOP: resumed, it publishes nothing under them) and then
//! drained (SIGTERM: every output it produced is in the stream), one NATS server killed
//! (every feed keeps publishing). Then the streams are audited: no key and no (feed,
//! fence, session, seq) twice, owners of a feed never overlapping in capture time, every
//! change of owner reported by a handover record.
//!
//! Sized for a busy 2-core machine: [`SYNTHETIC_FEEDS`] small synthetic feeds at 5 fps.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use nv_cluster::{NatsKv, NatsKvConfig};
use nv_test_util::broker::NatsCluster;
use nv_test_util::daemon::Daemon;

#[path = "../../nv-integration/tests/support/rtsp_server.rs"]
mod rtsp_server;

mod cluster_audit;
use cluster_audit::{now_micros, running_feeds, temp_dir, Audit, FAILOVER_LIMIT};

const SYNTHETIC_FEEDS: usize = 30;
const LEASE_TTL_SECS: u64 = 3;
const PREFIX: &str = "nve2e";
const TIMEOUT: Duration = Duration::from_secs(90);
/// Feed placement lives in other processes and has no event this test can wait on: it
/// polls their APIs and the streams at this interval, always bounded by a deadline.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

fn feed_names() -> BTreeSet<String> {
    (0..SYNTHETIC_FEEDS)
        .map(|i| format!("syn{i}"))
        .chain(["rtsp0".to_owned(), "rtsp1".to_owned()])
        .collect()
}

fn config(dir: &Path, node: &str, urls: &[String], rtsp: &str) -> String {
    let urls = urls
        .iter()
        .map(|u| format!("\"{u}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut c = format!(
        "[api]\nlisten = \"127.0.0.1:0\"\n\n[cluster]\nnats_urls = [{urls}]\nnode = \"{node}\"\nlease_ttl_secs = {LEASE_TTL_SECS}\nbucket_prefix = \"{PREFIX}\"\nreplicas = 3\n\n[[sinks]]\nname = \"out\"\nkind = \"file\"\npath = \"{}\"\n",
        dir.join(format!("{node}.jsonl")).display()
    );
    for i in 0..SYNTHETIC_FEEDS {
        c.push_str(&format!(
            "\n[[feeds]]\nname = \"syn{i}\"\nsource = \"synthetic:64x48@5\"\nsinks = [\"out\"]\n[[feeds.stages]]\nkind = \"blob-detector\"\n[[feeds.stages]]\nkind = \"counter\"\n"
        ));
    }
    for i in 0..2 {
        c.push_str(&format!(
            "\n[[feeds]]\nname = \"rtsp{i}\"\nsource = \"{rtsp}\"\nsinks = [\"out\"]\n[[feeds.stages]]\nkind = \"blob-detector\"\n[[feeds.stages]]\nkind = \"counter\"\n"
        ));
    }
    c
}

fn start(dir: &Path, node: &str, urls: &[String], rtsp: &str) -> Daemon {
    let path = dir.join(format!("{node}.toml"));
    std::fs::write(&path, config(dir, node, urls, rtsp)).unwrap();
    Daemon::run(Path::new(env!("CARGO_BIN_EXE_nextvision")), &path, &[])
}

fn wait_until(what: &str, limit: Duration, done: impl FnMut() -> bool) -> Duration {
    cluster_audit::wait_until(what, limit, POLL_INTERVAL, done)
}

/// Whether every feed's lease is held by the node the fleet assigns it to (placement is
/// settled: no move pending).
fn settled(any: &Daemon) -> bool {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let Ok(mut r) = agent.get(format!("{}/api/v1/cluster", any.base())).call() else {
        return false;
    };
    let fleet: serde_json::Value =
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    let rows = fleet["feeds"].as_array().unwrap();
    rows.len() == feed_names().len()
        && rows
            .iter()
            .all(|f| f["owner"].is_string() && f["owner"] == f["assigned"])
}

/// The feeds `node` holds, with their fencing tokens, as `any` node's API shows them.
fn fences_of(any: &Daemon, node: &str) -> BTreeMap<String, u64> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut r = agent
        .get(format!("{}/api/v1/cluster", any.base()))
        .call()
        .unwrap();
    let fleet: serde_json::Value =
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    fleet["feeds"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["owner"] == node)
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_owned(),
                f["fence"].as_u64().unwrap(),
            )
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

/// Whether `nodes` run every feed, each on exactly one of them.
fn placed_once(nodes: &[&Daemon]) -> bool {
    let mut seen = BTreeSet::new();
    for n in nodes {
        for f in running_feeds(n) {
            if !seen.insert(f) {
                return false;
            }
        }
    }
    seen == feed_names()
}

fn store(urls: &[String]) -> NatsKv {
    NatsKv::connect(&NatsKvConfig {
        urls: urls.to_vec(),
        creds_file: None,
        bucket_prefix: PREFIX.into(),
        replicas: 3,
        node_ttl: Duration::from_secs(LEASE_TTL_SECS),
        lease_ttl: Duration::from_secs(LEASE_TTL_SECS),
        request_timeout: Duration::from_secs(10),
    })
    .unwrap()
}

/// The idempotency keys a node's file sink wrote.
/// The keys of the records a node's file sink wrote, without those of the leases in
/// `lost` (feed, fence): a node that lost a lease (frozen past it, renewals stalled)
/// withholds what it had not published of it yet.
fn file_keys_except(dir: &Path, node: &str, lost: &BTreeSet<(String, u64)>) -> BTreeSet<String> {
    let text = std::fs::read_to_string(dir.join(format!("{node}.jsonl"))).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let r: serde_json::Value = serde_json::from_str(l).unwrap();
            let feed = r["feed"].as_str().unwrap().to_owned();
            let fence = r["fence"].as_u64().unwrap();
            (!lost.contains(&(feed, fence)))
                .then(|| r["idempotency_key"].as_str().unwrap().to_owned())
        })
        .collect()
}

/// The (feed, fence) of every lease in `node`'s file sink output but the last of each feed.
fn superseded_leases(dir: &Path, node: &str) -> BTreeSet<(String, u64)> {
    let text = std::fs::read_to_string(dir.join(format!("{node}.jsonl"))).unwrap_or_default();
    let mut fences: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for l in text.lines() {
        let r: serde_json::Value = serde_json::from_str(l).unwrap();
        fences
            .entry(r["feed"].as_str().unwrap().to_owned())
            .or_default()
            .insert(r["fence"].as_u64().unwrap());
    }
    fences
        .into_iter()
        .flat_map(|(feed, f)| {
            let last = f.last().copied();
            f.into_iter()
                .filter(move |x| Some(*x) != last)
                .map(move |x| (feed.clone(), x))
        })
        .collect()
}

/// The leases of `node` that moved on before its final drain (handover records name it
/// as the previous owner): lost ones withhold what was still buffered, so a drain check
/// leaves them out.
fn moved_on(audit: &Audit, node: &str) -> BTreeSet<(String, u64)> {
    audit
        .handovers
        .iter()
        .filter(|h| h["data"]["previous_node"] == node)
        .filter_map(|h| {
            Some((
                h["data"]["feed"].as_str()?.to_owned(),
                h["data"]["previous_fence"].as_u64()?,
            ))
        })
        .collect()
}

/// Waits until every feed has a frame in the stream captured after `after` (micros); on
/// timeout, the failure names the missing feeds, their newest frames, and what `describe`
/// says about them (the live daemons' placement, leases, counters and log tails).
fn wait_all_publish_after(
    kv: &NatsKv,
    after: u64,
    what: &str,
    describe: &dyn Fn(&BTreeSet<String>) -> String,
) {
    let start = Instant::now();
    let mut missing: BTreeSet<String> = feed_names();
    let mut read_error = None;
    let mut newest = BTreeMap::new();
    let mut reads = (0u32, 0u32);
    while !missing.is_empty() {
        if start.elapsed() >= TIMEOUT {
            let since: BTreeMap<&String, String> = missing
                .iter()
                .map(|f| {
                    let at = newest.get(f).map_or_else(
                        || "none".to_owned(),
                        |&w: &u64| format!("{:.2} s before", (after - w.min(after)) as f64 / 1e6),
                    );
                    (f, at)
                })
                .collect();
            panic!(
                "timed out waiting for {what}: {} feeds without a newer frame (newest frame relative to the mark: {since:?}); stream reads ok/failed: {}/{}, last read error: {read_error:?}\n{}",
                missing.len(),
                reads.0,
                reads.1,
                describe(&missing)
            );
        }
        match Audit::try_read(kv, PREFIX) {
            Ok(audit) => {
                reads.0 += 1;
                newest = audit.newest();
                missing.retain(|f| newest.get(f).is_none_or(|&w| w <= after));
            }
            Err(e) => {
                reads.1 += 1;
                read_error = Some(e.to_string());
            }
        }
        if !missing.is_empty() {
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

/// For a failure message: per node, which of `feeds` it runs, its fleet view of them, and
/// its log's last lines.
fn describe_nodes(nodes: &[(&str, &Daemon)], feeds: &BTreeSet<String>) -> String {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut out = String::new();
    for (name, d) in nodes {
        let get = |path: &str| -> String {
            match agent.get(format!("{}{path}", d.base())).call() {
                Ok(mut r) => r.body_mut().read_to_string().unwrap_or_default(),
                Err(e) => format!("GET {path} failed: {e}"),
            }
        };
        let running: Vec<String> = serde_json::from_str::<serde_json::Value>(&get("/api/v1/feeds"))
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
            .into_iter()
            .filter(|f| f["name"].as_str().is_some_and(|n| feeds.contains(n)))
            .map(|f| f.to_string())
            .collect();
        let fleet: serde_json::Value =
            serde_json::from_str(&get("/api/v1/cluster")).unwrap_or_default();
        let rows: Vec<String> = fleet["feeds"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|f| f["name"].as_str().is_some_and(|n| feeds.contains(n)))
            .map(|f| f.to_string())
            .collect();
        let fleet_rest = {
            let mut v = fleet.clone();
            if let Some(o) = v.as_object_mut() {
                o.remove("feeds");
            }
            v
        };
        let log = d.log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(120)..].join("\n");
        out.push_str(&format!(
            "--- {name}: runs {running:?}\nfleet rows: {rows:?}\nfleet: {fleet_rest}\nlog tail:\n{tail}\n"
        ));
    }
    out
}

#[test]
fn three_nodes_three_servers_survive_kill_drain_and_a_lost_server() {
    let dir = temp_dir("cluster-e2e");
    let mut nats = NatsCluster::start(&dir, 3);
    let urls = nats.urls();
    let camera = rtsp_server::TestServer::start(0, false);
    let rtsp = camera.url(false);
    let mut nodes: Vec<(&str, Daemon)> = ["node-a", "node-b", "node-c"]
        .into_iter()
        .map(|n| (n, start(&dir, n, &urls, &rtsp)))
        .collect();
    wait_until("every feed placed once on the three nodes", TIMEOUT, || {
        let all: Vec<&Daemon> = nodes.iter().map(|(_, d)| d).collect();
        settled(all[0]) && placed_once(&all)
    });
    let kv = store(&urls);
    wait_all_publish_after(
        &kv,
        0,
        "every feed's first records in the stream",
        &|missing| {
            let all: Vec<(&str, &Daemon)> = nodes.iter().map(|(n, d)| (*n, d)).collect();
            describe_nodes(&all, missing)
        },
    );

    // The node running the most feeds is killed, the next drained, the last one stays.
    nodes.sort_by_key(|(_, d)| std::cmp::Reverse(running_feeds(d).len()));
    let (c_name, c) = nodes.pop().unwrap();
    let (b_name, b) = nodes.pop().unwrap();
    let (a_name, a) = nodes.pop().unwrap();

    // SIGKILL: the killed node's feeds run on the other two within the limit.
    let a_feeds = running_feeds(&a);
    let killed_at = Instant::now();
    assert!(!a.stop_with("KILL").success());
    wait_until(
        "the killed node's feeds to run elsewhere",
        FAILOVER_LIMIT,
        || placed_once(&[&b, &c]),
    );
    eprintln!(
        "failover after SIGKILL of {a_name}: {:.2} s for {} feeds (lease TTL {LEASE_TTL_SECS} s)",
        killed_at.elapsed().as_secs_f64(),
        a_feeds.len()
    );
    // Each is reported by its new owner once its first output is out.
    wait_until(
        "handover records for the killed node's feeds",
        TIMEOUT,
        || {
            let Ok(audit) = Audit::try_read(&kv, PREFIX) else {
                return false;
            };
            a_feeds.iter().all(|f| {
                audit
                    .handovers_of(f)
                    .values()
                    .any(|h| h["data"]["previous_node"] == a_name)
            })
        },
    );

    // SIGSTOP past the lease TTL: the frozen node's feeds move to the last one; resumed,
    // it stops them (its fences expired) and publishes nothing under its old leases.
    wait_until("placement to settle after the failover", TIMEOUT, || {
        settled(&c) && placed_once(&[&b, &c])
    });
    let b_fences = fences_of(&c, b_name);
    assert!(
        !b_fences.is_empty(),
        "{b_name} owns feeds before its freeze"
    );
    signal(&b, "STOP");
    let frozen_at = now_micros();
    wait_until(
        "the last node to run every feed while one is frozen",
        TIMEOUT,
        || running_feeds(&c) == feed_names(),
    );
    signal(&b, "CONT");
    wait_until("placement to settle after the thaw", TIMEOUT, || {
        settled(&c) && placed_once(&[&b, &c])
    });
    // Its drain below must have something to drain: wait for its first records under the
    // leases it took back (a drain right after they started may have none yet).
    let b_new = fences_of(&c, b_name);
    assert!(
        !b_new.is_empty(),
        "{b_name} owns feeds again after its thaw"
    );
    wait_until(
        "the thawed node to publish under its new leases",
        TIMEOUT,
        || {
            Audit::try_read(&kv, PREFIX).is_ok_and(|a| {
                a.frames
                    .iter()
                    .any(|f| b_new.get(&f.feed) == Some(&f.fence))
            })
        },
    );

    // SIGTERM: the drained node hands everything to the last one, and everything it
    // produced is published.
    assert!(b.stop_with("TERM").success(), "{b_name} drains and exits 0");
    wait_until("the last node to run every feed", TIMEOUT, || {
        placed_once(&[&c])
    });
    // (Records of the leases it lost while frozen that were still buffered then are
    // withheld by its publisher's fence check, not published late.)
    let lost: BTreeSet<(String, u64)> = b_fences.clone().into_iter().collect();
    let drained = file_keys_except(&dir, b_name, &lost);
    let published = Audit::read(&kv, PREFIX).keys();
    let missing: Vec<&String> = drained.difference(&published).collect();
    assert!(
        !drained.is_empty() && missing.is_empty(),
        "{b_name} drained: {} of its {} outputs are not in the stream (first: {:?})",
        missing.len(),
        drained.len(),
        missing.first()
    );

    // One NATS server gone: every feed keeps publishing (R3: the other two hold a quorum).
    nats.servers[2].kill();
    let lost_server_at = now_micros();
    let lost_server = Instant::now();
    let survivors = store(&urls[..2]);
    wait_all_publish_after(
        &survivors,
        lost_server_at,
        "every feed to publish after the server loss",
        &|missing| {
            let servers: String = (1..=2)
                .map(|i| {
                    let log = std::fs::read_to_string(dir.join(format!("n{i}/nats.log")))
                        .unwrap_or_default();
                    let lines: Vec<&str> = log.lines().collect();
                    format!(
                        "--- nats server n{i} log tail:\n{}\n",
                        lines[lines.len().saturating_sub(40)..].join("\n")
                    )
                })
                .collect();
            format!("{}{servers}", describe_nodes(&[(c_name, &c)], missing))
        },
    );
    eprintln!(
        "every feed published again {:.2} s after a NATS server was lost ({c_name}'s last {} log lines: {} feed stops for lapsed leases)",
        lost_server.elapsed().as_secs_f64(),
        c.log().lines().count(),
        c.log()
            .lines()
            .filter(|l| l.contains("stopping feed") && l.contains("fenced"))
            .count()
    );

    // Every handover reported before the last node stops (reports follow first outputs).
    let since = Instant::now();
    loop {
        let unreported = Audit::try_read(&survivors, PREFIX).map(|a| a.unreported());
        if unreported.as_ref().is_ok_and(Vec::is_empty) {
            break;
        }
        assert!(
            since.elapsed() < TIMEOUT,
            "changes of owner never reported (feed, fence): {unreported:?}\nlast node's log:\n{}",
            c.log()
        );
        std::thread::sleep(POLL_INTERVAL);
    }
    // What its fleet publisher counted as lost (withheld by the fence gate, or dropped
    // beyond its buffer): the drain check below allows no more than that.
    let c_publisher = cluster_audit::get_json(&format!("{}/api/v1/sinks", c.base()))
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "cluster")
        .cloned()
        .expect("the node's fleet publisher");
    assert!(c.stop_with("TERM").success(), "{c_name} drains and exits 0");

    let audit = Audit::read(&survivors, PREFIX);
    eprintln!(
        "streams: {} frame records of {} feeds, {} handover records",
        audit.frames.len(),
        audit.fences().len(),
        audit.handovers.len()
    );
    assert_eq!(audit.fences().len(), feed_names().len());
    audit.assert_no_duplicates();
    audit.assert_owners_never_overlap();
    audit.assert_every_handover_reported();
    // Nothing the frozen node published under its old leases was captured after the
    // freeze (frames captured just before may carry a time a little after it: the signal
    // lands asynchronously).
    let slack_micros = 500_000;
    for f in &audit.frames {
        if b_fences.get(&f.feed) == Some(&f.fence) {
            let wall = f.wall_micros.unwrap_or(0);
            assert!(
                wall < frozen_at + slack_micros,
                "{b_name} published {} under its stale fence {}, captured {} ms after the freeze",
                f.feed,
                f.fence,
                (wall - frozen_at) / 1000
            );
        }
    }
    // The last node's drain too: nothing it wrote under the leases it held at the end is
    // missing from the stream (earlier leases of its own that lapsed while the store was
    // unreachable withheld what was still buffered; some of them no handover names, when
    // one retaken lapsed again before its first output).
    let published = audit.keys();
    let mut lost = moved_on(&audit, c_name);
    lost.extend(superseded_leases(&dir, c_name));
    let missing: Vec<String> = file_keys_except(&dir, c_name, &lost)
        .difference(&published)
        .cloned()
        .collect();
    let counted = c_publisher["failed"].as_u64().unwrap()
        + c_publisher["dropped_by_buffer"].as_u64().unwrap();
    assert!(
        missing.len() as u64 <= counted,
        "{c_name} drained: {} records not in the stream, its publisher counted {counted} lost ({c_publisher}): {missing:?}",
        missing.len()
    );
    camera.kill();
    drop(nats);
    let _cleanup = std::fs::remove_dir_all(&dir);
}
