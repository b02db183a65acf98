//! Reads a fleet's output streams back and checks the cluster's promises on them.
#![allow(dead_code, reason = "each test binary uses part of the audit")]

use std::collections::{BTreeMap, BTreeSet};

use nv_cluster::NatsKv;
use serde_json::Value;

/// The failover target: a dead node's feeds run elsewhere within 10 s.
pub const FAILOVER_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A fresh directory for one test's node files, named after the test and this process.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("nv-{name}-{}", std::process::id()));
    let _absent = std::fs::remove_dir_all(&dir);
    #[allow(
        clippy::unwrap_used,
        reason = "test code: a failed unwrap is a failed test"
    )]
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Wall-clock time in microseconds since the Unix epoch (the records' `wall_micros`).
pub fn now_micros() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
}

/// Records read back per stream at most (far above what a test publishes).
const READ_LIMIT: usize = 2_000_000;

/// One frame record of the out stream.
#[derive(Clone, Debug)]
pub struct Frame {
    pub feed: String,
    pub fence: u64,
    pub session: u64,
    pub seq: u64,
    /// Capture time (null from a source that gives none).
    pub wall_micros: Option<u64>,
    pub key: String,
}

/// Everything the streams hold.
#[derive(Debug, Default)]
pub struct Audit {
    pub frames: Vec<Frame>,
    /// `cluster_handover` health records.
    pub handovers: Vec<Value>,
    pub events: usize,
}

impl Audit {
    /// Reads both streams; a read the store did not answer in time (a busy machine, a
    /// stream electing a leader) is tried again, up to ten times in all, a second apart.
    pub fn read(kv: &NatsKv, prefix: &str) -> Self {
        let mut last = None;
        for attempt in 0..10 {
            if attempt > 0 {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
            match Self::try_read(kv, prefix) {
                Ok(a) => return a,
                Err(e) => last = Some(e),
            }
        }
        panic!("reading the streams: {last:?}")
    }

    pub fn try_read(kv: &NatsKv, prefix: &str) -> Result<Self, nv_cluster::KvError> {
        let mut a = Self::default();
        for (subject, payload) in kv.read_stream(&format!("{prefix}-out"), READ_LIMIT)? {
            let r: Value = serde_json::from_slice(&payload).unwrap();
            let feed = r["feed"].as_str().unwrap().to_owned();
            assert_eq!(subject, format!("{prefix}.out.{feed}"));
            a.frames.push(Frame {
                feed,
                fence: r["fence"]
                    .as_u64()
                    .expect("every cluster record carries its fence"),
                session: r["session"].as_u64().unwrap(),
                seq: r["frame_seq"].as_u64().unwrap(),
                wall_micros: r["wall_micros"].as_u64(),
                key: r["idempotency_key"].as_str().unwrap().to_owned(),
            });
        }
        for (_, payload) in kv.read_stream(&format!("{prefix}-events"), READ_LIMIT)? {
            let r: Value = serde_json::from_slice(&payload).unwrap();
            if r["event"] == "cluster_handover" {
                a.handovers.push(r);
            } else {
                a.events += 1;
            }
        }
        Ok(a)
    }

    /// Per feed, the fences its frames carry, in order.
    pub fn fences(&self) -> BTreeMap<String, BTreeSet<u64>> {
        let mut m: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
        for f in &self.frames {
            m.entry(f.feed.clone()).or_default().insert(f.fence);
        }
        m
    }

    /// The handover records of `feed`, by the new owner's fence.
    pub fn handovers_of(&self, feed: &str) -> BTreeMap<u64, &Value> {
        self.handovers
            .iter()
            .filter(|h| h["data"]["feed"] == feed)
            .map(|h| (h["data"]["fence"].as_u64().unwrap(), h))
            .collect()
    }

    /// No idempotency key and no (feed, fence, session, seq) published twice.
    pub fn assert_no_duplicates(&self) {
        let mut keys = BTreeSet::new();
        let mut frames = BTreeSet::new();
        for f in &self.frames {
            assert!(keys.insert(f.key.clone()), "key {} published twice", f.key);
            assert!(
                frames.insert((f.feed.clone(), f.fence, f.session, f.seq)),
                "frame {} fence {} session {} seq {} published twice",
                f.feed,
                f.fence,
                f.session,
                f.seq
            );
        }
    }

    /// No two owners of a feed produced at once: every frame an owner published was
    /// captured before any frame of a later owner (larger fence).
    pub fn assert_owners_never_overlap(&self) {
        let mut spans: BTreeMap<(String, u64), (u64, u64)> = BTreeMap::new();
        for f in &self.frames {
            let Some(wall) = f.wall_micros else { continue };
            let s = spans
                .entry((f.feed.clone(), f.fence))
                .or_insert((u64::MAX, 0));
            s.0 = s.0.min(wall);
            s.1 = s.1.max(wall);
        }
        for (feed, fences) in self.fences() {
            let fences: Vec<u64> = fences.into_iter().collect();
            for pair in fences.windows(2) {
                let (Some(earlier), Some(later)) = (
                    spans.get(&(feed.clone(), pair[0])),
                    spans.get(&(feed.clone(), pair[1])),
                ) else {
                    continue;
                };
                assert!(
                    earlier.1 < later.0,
                    "feed {feed}: fence {} published a frame captured at {} us, after fence {}'s first at {} us",
                    pair[0],
                    earlier.1,
                    pair[1],
                    later.0
                );
            }
        }
    }

    /// The idempotency keys of every frame record.
    pub fn keys(&self) -> BTreeSet<String> {
        self.frames.iter().map(|f| f.key.clone()).collect()
    }

    /// Per feed, the newest capture time published.
    pub fn newest(&self) -> BTreeMap<String, u64> {
        let mut m: BTreeMap<String, u64> = BTreeMap::new();
        for f in &self.frames {
            if let Some(w) = f.wall_micros {
                let e = m.entry(f.feed.clone()).or_insert(0);
                *e = (*e).max(w);
            }
        }
        m
    }

    /// (feed, fence) of every change of owner no handover record reports yet.
    pub fn unreported(&self) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        for (feed, fences) in self.fences() {
            let reports = self.handovers_of(&feed);
            for fence in fences.iter().skip(1) {
                if !reports.contains_key(fence) {
                    out.push((feed.clone(), *fence));
                }
            }
        }
        out
    }

    /// Every change of owner (each fence of a feed after its first) is reported by a
    /// handover record of the new owner, naming the earlier owner's last frame.
    pub fn assert_every_handover_reported(&self) {
        for (feed, fences) in self.fences() {
            let reports = self.handovers_of(&feed);
            for fence in fences.iter().skip(1) {
                let r = reports
                    .get(fence)
                    .unwrap_or_else(|| panic!("feed {feed}: no handover record for fence {fence}"));
                assert!(
                    r["data"]["previous_last_frame_seq"].is_u64()
                        || r["data"]["previous_last_unknown"] == true,
                    "feed {feed}: the handover to fence {fence} names no earlier frame: {r}"
                );
                assert!(r["data"]["first_frame_seq"].is_u64(), "{r}");
            }
        }
    }
}

/// `GET url` as JSON, bounded by 10 s (a daemon that stops answering fails the test).
pub fn get_json(url: &str) -> Value {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(10)))
        .build()
        .into();
    let body = agent
        .get(url)
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    serde_json::from_str(&body).unwrap()
}

/// The names of the feeds a daemon runs now (its API's feed list, live ones only).
pub fn running_feeds(daemon: &nv_test_util::daemon::Daemon) -> BTreeSet<String> {
    let feeds = get_json(&format!("{}/api/v1/feeds", daemon.base()));
    feeds
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["alive"].as_bool().unwrap_or(true))
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Polls `done` every `poll` until it holds (another process's state has no event to
/// wait on); panics after `limit`. Returns how long it took.
pub fn wait_until(
    what: &str,
    limit: std::time::Duration,
    poll: std::time::Duration,
    mut done: impl FnMut() -> bool,
) -> std::time::Duration {
    let start = std::time::Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(poll);
    }
    start.elapsed()
}
