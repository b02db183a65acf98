//! One node's part in the cluster: heartbeat, take the feeds it should own, renew their
//! leases, hand over the ones another node should own, and stop anything whose lease it
//! can no longer prove.
//!
//! A [`Member`] is driven by [`Member::tick`] (the daemon calls it every
//! [`MemberConfig::tick_interval`]); it never starts or stops feeds itself, it returns
//! [`Action`]s. Every started feed comes with a [`Fence`]: the output path checks it
//! before publishing, so a node that was paused past its lease (SIGSTOP, a partition)
//! stops publishing at its local deadline even before its next tick runs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::assign::{self, Candidate};
use crate::kv::{Bucket, Kv, KvClock, KvError};

/// Cluster timing and identity of this node.
#[derive(Clone, Debug)]
pub struct MemberConfig {
    /// Unique among the nodes; a KV key (letters, digits, `-`, `_`).
    pub node: String,
    /// Relative capacity (> 0).
    pub weight: f64,
    /// A lease not renewed for this long expires in the store (the leases bucket's TTL).
    pub lease_ttl: Duration,
    /// A node not heard from for this long is gone (the nodes bucket's TTL).
    pub node_ttl: Duration,
    /// How long before the store would expire a lease this node treats it as lost: covers
    /// clock-rate differences and the time between a check and a publish.
    pub fence_margin: Duration,
    /// How often [`Member::tick`] is meant to run (a third of the lease TTL by default).
    pub tick_interval: Duration,
    /// A starting node takes no feed for this long (the node TTL by default): by then it
    /// has seen every live node's heartbeat, so a cluster starting together does not let
    /// its first node take everything and then hand most of it over.
    pub settle: Duration,
}

impl MemberConfig {
    /// Defaults for `node` with a lease TTL of `lease_ttl`: node TTL and settle time =
    /// lease TTL, fence margin = a fifth of it, ticks at a third of it.
    pub fn new(node: impl Into<String>, lease_ttl: Duration) -> Self {
        Self {
            node: node.into(),
            weight: 1.0,
            lease_ttl,
            node_ttl: lease_ttl,
            fence_margin: lease_ttl / 5,
            tick_interval: lease_ttl / 3,
            settle: lease_ttl,
        }
    }
}

/// What a node writes about itself every heartbeat.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NodeRecord {
    pub node: String,
    pub weight: f64,
    /// False while the node drains: others take its feeds, it takes none.
    pub accepting: bool,
    /// Feeds this node could not start, each with the spec revision it failed on: the
    /// assignment passes over this node for them until their spec changes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub refused: BTreeMap<String, u64>,
}

/// At most this many refusals per node (the node record stays small); beyond it a failed
/// feed is released without a mark, and taken again later.
pub const MAX_REFUSED: usize = 256;

/// What a lease key holds.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LeaseRecord {
    pub node: String,
    /// The lease's first revision: stamped on every output of this ownership. Revisions
    /// only grow in a bucket, so a later owner always stamps a larger fence.
    pub fence: u64,
}

impl LeaseRecord {
    /// The fencing token of this lease at store revision `revision` (until its first
    /// renewal a lease names no fence: it is the revision its create got).
    pub fn token(&self, revision: u64) -> u64 {
        if self.fence == 0 {
            revision
        } else {
            self.fence
        }
    }
}

/// The owner a feed had before this node took it, as this node last saw its lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreviousOwner {
    pub node: String,
    /// That owner's fencing token.
    pub fence: u64,
}

/// The local proof of a lease: valid until a deadline on this node's monotonic clock.
#[derive(Debug)]
pub struct Fence {
    token: u64,
    base: Instant,
    valid_until_nanos: AtomicU64,
    /// Given up on purpose while still held (handed over, removed, drained): what was
    /// produced before may still be delivered. A fence that expired or lost its lease
    /// never is.
    released: std::sync::atomic::AtomicBool,
}

impl Fence {
    fn new(token: u64, base: Instant, valid_until: Instant) -> Self {
        let f = Self {
            token,
            base,
            valid_until_nanos: AtomicU64::new(0),
            released: std::sync::atomic::AtomicBool::new(false),
        };
        f.extend(valid_until);
        f
    }
    fn extend(&self, valid_until: Instant) {
        let nanos = valid_until.saturating_duration_since(self.base).as_nanos();
        self.valid_until_nanos
            .store(u64::try_from(nanos).unwrap_or(u64::MAX), Ordering::Release);
    }
    fn revoke(&self) {
        self.valid_until_nanos.store(0, Ordering::Release);
    }
    fn release(&self) {
        self.released.store(true, Ordering::Release);
        self.revoke();
    }
    /// Whether records produced under this fence may still be delivered at `now`: the
    /// lease is provably held, or was given up on purpose (not lost).
    pub fn may_deliver(&self, now: Instant) -> bool {
        self.released.load(Ordering::Acquire) || self.is_valid(now)
    }
    /// The fencing token to stamp on outputs (the lease's first revision).
    pub fn token(&self) -> u64 {
        self.token
    }
    /// Whether an output may still be published at `now`.
    pub fn is_valid(&self, now: Instant) -> bool {
        let at =
            u64::try_from(now.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX);
        at < self.valid_until_nanos.load(Ordering::Acquire)
    }
}

/// Why a feed stops on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopCause {
    /// Another live node should own it: released after this stop (graceful handover).
    HandedOver,
    /// The feed was removed from the desired set.
    Removed,
    /// The lease could not be renewed before its local deadline.
    Fenced,
    /// The store says someone else holds the lease (or it expired and was taken).
    LostLease,
    /// The feed's spec changed; it starts again with the new spec.
    SpecChanged,
    /// This node drains (shutdown).
    Draining,
}

impl StopCause {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::HandedOver => "handed_over",
            Self::Removed => "removed",
            Self::Fenced => "fenced",
            Self::LostLease => "lost_lease",
            Self::SpecChanged => "spec_changed",
            Self::Draining => "draining",
        }
    }
}

/// What the daemon must do after a tick.
#[derive(Debug)]
pub enum Action {
    Start {
        feed: String,
        spec: Vec<u8>,
        fence: Arc<Fence>,
        /// Who ran the feed before, when this node saw its lease (`None` for a feed new
        /// to the fleet, a restart with a changed spec, or a lease never seen).
        previous: Option<PreviousOwner>,
    },
    Stop {
        feed: String,
        cause: StopCause,
    },
}

#[derive(Debug)]
struct Held {
    revision: u64,
    spec_revision: u64,
    fence: Arc<Fence>,
}

/// This node's view and holdings.
pub struct Member {
    kv: Arc<dyn Kv>,
    clock: Arc<dyn KvClock>,
    cfg: MemberConfig,
    base: Instant,
    held: BTreeMap<String, Held>,
    accepting: bool,
    /// The last lease seen on each feed this node does not hold.
    seen: BTreeMap<String, PreviousOwner>,
    /// Feeds this node could not start, by the spec revision they failed on.
    refused: BTreeMap<String, u64>,
    /// The first store failure of the last tick.
    store_error: Option<KvError>,
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("cfg", &self.cfg)
            .field("held", &self.held)
            .field("accepting", &self.accepting)
            .finish_non_exhaustive()
    }
}

impl Member {
    pub fn new(kv: Arc<dyn Kv>, clock: Arc<dyn KvClock>, cfg: MemberConfig) -> Self {
        let base = clock.now();
        Self {
            kv,
            clock,
            cfg,
            base,
            held: BTreeMap::new(),
            accepting: true,
            seen: BTreeMap::new(),
            refused: BTreeMap::new(),
            store_error: None,
        }
    }

    pub fn config(&self) -> &MemberConfig {
        &self.cfg
    }

    /// The first request the last tick could not get through to the store (heartbeat,
    /// listing or renewal), if any: its leases run out unless a later tick gets through.
    pub fn store_error(&self) -> Option<&KvError> {
        self.store_error.as_ref()
    }

    /// The feeds this node holds, with their fencing tokens.
    pub fn held(&self) -> impl Iterator<Item = (&str, u64)> {
        self.held.iter().map(|(f, h)| (f.as_str(), h.fence.token()))
    }

    /// The fences of the feeds this node holds (each output path keeps its own `Arc`).
    pub fn fences(&self) -> impl Iterator<Item = (&str, &Fence)> {
        self.held
            .iter()
            .map(|(f, h)| (f.as_str(), h.fence.as_ref()))
    }

    /// One round: fence, heartbeat, read the cluster, renew / hand over / take leases.
    /// Store failures never fail the tick: a lease that cannot be renewed in time is
    /// fenced by its local deadline.
    pub fn tick(&mut self) -> Vec<Action> {
        let mut actions = Vec::new();
        self.fence_expired(&mut actions);
        let me = NodeRecord {
            node: self.cfg.node.clone(),
            weight: self.cfg.weight,
            accepting: self.accepting,
            refused: self.refused.clone(),
        };
        self.store_error = None;
        if let Err(e) = self.kv.put(Bucket::Nodes, &self.cfg.node, &to_json(&me)) {
            self.store_error = Some(e);
            return actions;
        }
        let view = match ClusterView::read(self.kv.as_ref()) {
            Ok(view) => view,
            Err(e) => {
                self.store_error = Some(e);
                return actions;
            }
        };
        self.renew_or_release(&view, &mut actions);
        self.seen.retain(|feed, _| view.feeds.contains_key(feed));
        // A refusal lasts as long as the spec it failed on.
        self.refused
            .retain(|feed, rev| view.feeds.get(feed).is_some_and(|(_, r)| r == rev));
        for (feed, (lease, revision)) in &view.leases {
            if lease.node != self.cfg.node {
                self.seen.insert(
                    feed.clone(),
                    PreviousOwner {
                        node: lease.node.clone(),
                        fence: lease.token(*revision),
                    },
                );
            }
        }
        if self.accepting && self.clock.now() >= self.base + self.cfg.settle {
            self.take(&view, &mut actions);
        }
        actions
    }

    /// The daemon could not start `feed`: release its lease so another node takes it, and
    /// (room permitting) mark it refused in this node's record until its spec changes.
    pub fn refuse(&mut self, feed: &str) {
        let Some(h) = self.held.remove(feed) else {
            return;
        };
        h.fence.revoke();
        if self.refused.len() < MAX_REFUSED {
            self.refused.insert(feed.to_owned(), h.spec_revision);
        }
        let _released = self.kv.delete(Bucket::Leases, feed, h.revision);
    }

    /// The feeds this node refused, with the spec revision each failed on.
    pub fn refused(&self) -> &BTreeMap<String, u64> {
        &self.refused
    }

    /// Stops taking feeds, releases every lease (after the daemon flushed the feeds'
    /// last outputs: call this once they are stopped) and leaves the node list.
    pub fn drain(&mut self) -> Vec<Action> {
        self.accepting = false;
        let mut actions = Vec::new();
        for (feed, h) in std::mem::take(&mut self.held) {
            h.fence.release();
            let _released = self.kv.delete(Bucket::Leases, &feed, h.revision);
            actions.push(Action::Stop {
                feed,
                cause: StopCause::Draining,
            });
        }
        if let Ok(Some(e)) = self.kv.get(Bucket::Nodes, &self.cfg.node) {
            let _left = self.kv.delete(Bucket::Nodes, &self.cfg.node, e.revision);
        }
        actions
    }

    fn fence_expired(&mut self, actions: &mut Vec<Action>) {
        let now = self.clock.now();
        let expired: Vec<String> = self
            .held
            .iter()
            .filter(|(_, h)| !h.fence.is_valid(now))
            .map(|(f, _)| f.clone())
            .collect();
        for feed in expired {
            self.stop(feed, StopCause::Fenced, actions);
        }
    }

    fn stop(&mut self, feed: String, cause: StopCause, actions: &mut Vec<Action>) {
        if let Some(h) = self.held.remove(&feed) {
            match cause {
                StopCause::Fenced | StopCause::LostLease => h.fence.revoke(),
                StopCause::HandedOver
                | StopCause::Removed
                | StopCause::SpecChanged
                | StopCause::Draining => h.fence.release(),
            }
            // This node is the previous owner if it takes the feed again (a lease lost
            // to a slow store and taken back).
            self.seen.insert(
                feed.clone(),
                PreviousOwner {
                    node: self.cfg.node.clone(),
                    fence: h.fence.token(),
                },
            );
        }
        actions.push(Action::Stop { feed, cause });
    }

    fn renew_or_release(&mut self, view: &ClusterView, actions: &mut Vec<Action>) {
        let feeds: Vec<String> = self.held.keys().cloned().collect();
        for feed in feeds {
            let Some(h) = self.held.get(&feed) else {
                continue;
            };
            let (revision, spec_revision) = (h.revision, h.spec_revision);
            let Some(spec) = view.feeds.get(&feed) else {
                let _released = self.kv.delete(Bucket::Leases, &feed, revision);
                self.stop(feed, StopCause::Removed, actions);
                continue;
            };
            let revision = match view.leases.get(&feed) {
                Some((_, rev)) if *rev == revision => revision,
                // A renewal whose reply never came (timed out while the store elected a
                // leader, a server lost) landed after all: only this node writes its name
                // with this fence, so the lease is still its own. The local deadline stays
                // as it was; the renewal below extends it.
                Some((lease, rev))
                    if lease.node == self.cfg.node && lease.fence == h.fence.token() =>
                {
                    let rev = *rev;
                    if let Some(h) = self.held.get_mut(&feed) {
                        h.revision = rev;
                    }
                    rev
                }
                _ => {
                    self.stop(feed, StopCause::LostLease, actions);
                    continue;
                }
            };
            let owner = view.owner(&feed);
            if owner.is_some_and(|o| o != self.cfg.node) {
                // Stop first, release second: the new owner can only start once this
                // node no longer publishes.
                self.stop(feed.clone(), StopCause::HandedOver, actions);
                let _released = self.kv.delete(Bucket::Leases, &feed, revision);
                continue;
            }
            let sent = self.clock.now();
            let record = LeaseRecord {
                node: self.cfg.node.clone(),
                fence: self.held[&feed].fence.token(),
            };
            match self
                .kv
                .update(Bucket::Leases, &feed, &to_json(&record), revision)
            {
                Ok(new) => {
                    let deadline = self.deadline(sent);
                    if let Some(h) = self.held.get_mut(&feed) {
                        h.revision = new;
                        h.fence.extend(deadline);
                    }
                }
                Err(KvError::WrongRevision { .. } | KvError::Exists { .. }) => {
                    self.stop(feed.clone(), StopCause::LostLease, actions);
                    continue;
                }
                // Unreachable store: keep running until the local deadline fences it.
                Err(e @ KvError::Unavailable { .. }) => {
                    self.store_error.get_or_insert(e);
                }
            }
            if spec.1 != spec_revision {
                let fence = self.held[&feed].fence.clone();
                if let Some(h) = self.held.get_mut(&feed) {
                    h.spec_revision = spec.1;
                }
                actions.push(Action::Stop {
                    feed: feed.clone(),
                    cause: StopCause::SpecChanged,
                });
                actions.push(Action::Start {
                    feed,
                    spec: spec.0.clone(),
                    fence,
                    previous: None,
                });
            }
        }
    }

    fn take(&mut self, view: &ClusterView, actions: &mut Vec<Action>) {
        for (feed, (spec, spec_revision)) in &view.feeds {
            if self.held.contains_key(feed)
                || view.leases.contains_key(feed)
                || view.owner(feed) != Some(self.cfg.node.as_str())
            {
                continue;
            }
            let sent = self.clock.now();
            // The fence is the revision this create gets; the record names it after the
            // fact, on the first renewal.
            let record = LeaseRecord {
                node: self.cfg.node.clone(),
                fence: 0,
            };
            let Ok(revision) = self.kv.create(Bucket::Leases, feed, &to_json(&record)) else {
                continue;
            };
            let fence = Arc::new(Fence::new(revision, self.base, self.deadline(sent)));
            self.held.insert(
                feed.clone(),
                Held {
                    revision,
                    spec_revision: *spec_revision,
                    fence: fence.clone(),
                },
            );
            actions.push(Action::Start {
                feed: feed.clone(),
                spec: spec.clone(),
                fence,
                previous: self.seen.remove(feed),
            });
        }
    }

    /// A lease written by a request sent at `sent` expires in the store no earlier than
    /// `sent + ttl` (the store stamps it on arrival); this node gives it up earlier.
    fn deadline(&self, sent: Instant) -> Instant {
        sent + self.cfg.lease_ttl.saturating_sub(self.cfg.fence_margin)
    }
}

/// One consistent-enough read of the three buckets (each key is checked again by
/// compare-and-set when it matters).
#[derive(Debug, Default)]
pub struct ClusterView {
    /// feed -> (spec, revision)
    pub feeds: BTreeMap<String, (Vec<u8>, u64)>,
    /// live, accepting nodes
    pub nodes: Vec<Candidate>,
    /// every node that heartbeats, accepting or not
    pub all_nodes: Vec<NodeRecord>,
    /// feed -> (lease, revision)
    pub leases: BTreeMap<String, (LeaseRecord, u64)>,
    /// node -> the feeds it refused, with the spec revision each failed on
    pub refusals: BTreeMap<String, BTreeMap<String, u64>>,
}

impl ClusterView {
    pub fn read(kv: &dyn Kv) -> Result<Self, KvError> {
        let mut view = Self::default();
        for e in kv.list(Bucket::Feeds)? {
            view.feeds.insert(e.key, (e.value, e.revision));
        }
        for e in kv.list(Bucket::Nodes)? {
            if let Ok(n) = serde_json::from_slice::<NodeRecord>(&e.value) {
                if !n.refused.is_empty() {
                    view.refusals.insert(n.node.clone(), n.refused.clone());
                }
                if n.accepting {
                    view.nodes.push(Candidate {
                        name: n.node.clone(),
                        weight: n.weight,
                    });
                }
                view.all_nodes.push(n);
            }
        }
        for e in kv.list(Bucket::Leases)? {
            if let Ok(l) = serde_json::from_slice::<LeaseRecord>(&e.value) {
                view.leases.insert(e.key, (l, e.revision));
            }
        }
        Ok(view)
    }

    /// The node that should own `feed` now: among the live, accepting nodes that did not
    /// refuse its current spec.
    pub fn owner(&self, feed: &str) -> Option<&str> {
        let spec = self.feeds.get(feed).map(|(_, rev)| *rev);
        let refused = |node: &str| {
            self.refusals
                .get(node)
                .and_then(|r| r.get(feed))
                .is_some_and(|rev| Some(*rev) == spec)
        };
        if self.refusals.values().all(|r| !r.contains_key(feed)) {
            return assign::owner(feed, &self.nodes).map(|c| c.name.as_str());
        }
        let willing: Vec<Candidate> = self
            .nodes
            .iter()
            .filter(|c| !refused(&c.name))
            .cloned()
            .collect();
        let name = assign::owner(feed, &willing).map(|c| c.name.clone())?;
        self.nodes
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.name.as_str())
    }
}

fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    // Serialising these plain records cannot fail; an empty value would read as invalid
    // and be ignored by every node.
    serde_json::to_vec(v).unwrap_or_default()
}

/// Ticks `m` every third of `ttl` until it starts a feed; that feed's fence.
#[cfg(test)]
fn first_start(m: &mut Member, clock: &crate::kv::SimClock, ttl: Duration) -> Arc<Fence> {
    for _ in 0..6 {
        clock.advance(ttl / 3);
        for a in m.tick() {
            if let Action::Start { fence, .. } = a {
                return fence;
            }
        }
    }
    panic!("no feed started within six ticks");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;
    use crate::kv::{MemKv, SimClock};

    /// A feed its owner cannot start moves to the other node; it comes back into play for
    /// the refusing node once its spec changes.
    #[test]
    fn a_refused_feed_moves_and_a_new_spec_lifts_the_refusal() {
        let clock = SimClock::new();
        let ttl = Duration::from_secs(3);
        let kv: Arc<dyn Kv> = Arc::new(MemKv::new(clock.clone(), ttl, ttl));
        kv.put(Bucket::Feeds, "cam", b"{}").unwrap();
        let mut nodes: Vec<Member> = ["n1", "n2"]
            .into_iter()
            .map(|n| {
                let c: Arc<dyn KvClock> = clock.clone();
                Member::new(Arc::clone(&kv), c, MemberConfig::new(n, ttl))
            })
            .collect();
        let tick_all = |nodes: &mut Vec<Member>| -> Vec<(String, Vec<Action>)> {
            clock.advance(ttl / 3);
            nodes
                .iter_mut()
                .map(|m| (m.config().node.clone(), m.tick()))
                .collect()
        };
        let started_on = |round: &[(String, Vec<Action>)]| -> Vec<String> {
            round
                .iter()
                .filter(|(_, a)| a.iter().any(|x| matches!(x, Action::Start { .. })))
                .map(|(n, _)| n.clone())
                .collect()
        };
        let mut first = Vec::new();
        for _ in 0..6 {
            first = started_on(&tick_all(&mut nodes));
            if !first.is_empty() {
                break;
            }
        }
        assert_eq!(first.len(), 1, "one owner");
        let owner = first[0].clone();
        let i = nodes.iter().position(|m| m.config().node == owner).unwrap();
        nodes[i].refuse("cam");
        assert_eq!(nodes[i].held().count(), 0);
        let mut moved_to = Vec::new();
        for _ in 0..6 {
            moved_to = started_on(&tick_all(&mut nodes));
            if !moved_to.is_empty() {
                break;
            }
        }
        assert_eq!(moved_to.len(), 1);
        assert_ne!(moved_to[0], owner, "the refusing node is passed over");
        // A new spec: the refusal is gone from the refusing node's record.
        kv.put(Bucket::Feeds, "cam", b"{\"v\": 2}").unwrap();
        tick_all(&mut nodes);
        assert!(nodes[i].refused().is_empty());
    }
    /// A store that applies an update but loses its reply once (a request that timed out
    /// here while the store elected a leader).
    struct LosesOneReply {
        inner: Arc<dyn Kv>,
        lose_next_update: std::sync::atomic::AtomicBool,
    }

    impl Kv for LosesOneReply {
        fn get(&self, bucket: Bucket, key: &str) -> Result<Option<crate::kv::Entry>, KvError> {
            self.inner.get(bucket, key)
        }
        fn put(&self, bucket: Bucket, key: &str, value: &[u8]) -> Result<u64, KvError> {
            self.inner.put(bucket, key, value)
        }
        fn create(&self, bucket: Bucket, key: &str, value: &[u8]) -> Result<u64, KvError> {
            self.inner.create(bucket, key, value)
        }
        fn update(&self, b: Bucket, key: &str, value: &[u8], rev: u64) -> Result<u64, KvError> {
            let r = self.inner.update(b, key, value, rev);
            if r.is_ok() && self.lose_next_update.swap(false, Ordering::SeqCst) {
                return Err(KvError::Unavailable {
                    detail: "request timed out".into(),
                });
            }
            r
        }
        fn delete(&self, bucket: Bucket, key: &str, revision: u64) -> Result<(), KvError> {
            self.inner.delete(bucket, key, revision)
        }
        fn list(&self, bucket: Bucket) -> Result<Vec<crate::kv::Entry>, KvError> {
            self.inner.list(bucket)
        }
        fn ops(&self) -> u64 {
            self.inner.ops()
        }
    }

    /// A renewal that landed although its reply was lost leaves the lease with this node:
    /// the next tick renews it from the revision the store holds, the feed keeps running.
    #[test]
    fn a_renewal_whose_reply_was_lost_keeps_the_lease() {
        let clock = SimClock::new();
        let ttl = Duration::from_secs(3);
        let mem: Arc<dyn Kv> = Arc::new(MemKv::new(clock.clone(), ttl, ttl));
        mem.put(Bucket::Feeds, "cam", b"{}").unwrap();
        let lossy = Arc::new(LosesOneReply {
            inner: Arc::clone(&mem),
            lose_next_update: std::sync::atomic::AtomicBool::new(false),
        });
        let kv: Arc<dyn Kv> = lossy.clone();
        let c: Arc<dyn KvClock> = clock.clone();
        let mut m = Member::new(kv, c, MemberConfig::new("n1", ttl));
        let fence = first_start(&mut m, &clock, ttl);
        for round in 0..6 {
            lossy.lose_next_update.store(round == 1, Ordering::SeqCst);
            clock.advance(ttl / 3);
            let actions = m.tick();
            assert!(actions.is_empty(), "round {round}: {actions:?}");
            assert!(fence.is_valid(clock.now()), "round {round}");
            assert_eq!(m.store_error().is_some(), round == 1, "round {round}");
        }
        assert_eq!(m.held().collect::<Vec<_>>(), vec![("cam", fence.token())]);
    }
}

#[cfg(test)]
mod fence_tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;
    use crate::kv::{MemKv, SimClock};

    /// Records of a lease that ran out may not be delivered any more; records of a lease
    /// given up on purpose (drain, handover) may, after the fence stopped new ones.
    #[test]
    fn an_expired_fence_withholds_delivery_a_released_one_does_not() {
        let clock = SimClock::new();
        let ttl = Duration::from_secs(3);
        let kv: Arc<dyn Kv> = Arc::new(MemKv::new(clock.clone(), ttl, ttl));
        kv.put(Bucket::Feeds, "a", b"{}").unwrap();
        let c: Arc<dyn KvClock> = clock.clone();
        let mut m = Member::new(Arc::clone(&kv), c, MemberConfig::new("n1", ttl));
        let fence = first_start(&mut m, &clock, ttl);
        assert!(fence.may_deliver(clock.now()));
        // No renewal past the local deadline: expired, nothing more goes out.
        clock.advance(ttl);
        assert!(!fence.is_valid(clock.now()) && !fence.may_deliver(clock.now()));
        let actions = m.tick();
        assert!(actions.iter().any(|a| matches!(
            a,
            Action::Stop {
                cause: StopCause::Fenced,
                ..
            }
        )));
        assert!(
            !fence.may_deliver(clock.now()),
            "a fenced lease stays withheld"
        );

        // Taken again (the store expired the old lease too, maybe in that same tick) and
        // drained: released, so its last records may still go out.
        let mut again = actions.into_iter().find_map(|a| match a {
            Action::Start { fence: f, .. } => Some(f),
            Action::Stop { .. } => None,
        });
        for _ in 0..6 {
            if again.is_some() {
                break;
            }
            clock.advance(ttl / 3);
            for a in m.tick() {
                if let Action::Start { fence: f, .. } = a {
                    again = Some(f);
                }
            }
        }
        let again = again.unwrap();
        assert!(again.token() > fence.token());
        m.drain();
        assert!(!again.is_valid(clock.now()));
        assert!(again.may_deliver(clock.now()));
    }
}
