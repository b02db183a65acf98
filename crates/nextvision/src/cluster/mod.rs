//! Cluster mode in the daemon: a named thread drives this node's [`Member`] every tick
//! and turns its actions into feeds added to or removed from the runtime.
//!
//! The feed specs live in the fleet's key-value bucket as the JSON form of a `[[feeds]]`
//! table (what `POST /api/v1/feeds` takes); this file's own `[[feeds]]` are added to the
//! bucket at start when absent. Every feed's sink is wrapped in a [`FencedSink`]: once
//! the lease's local deadline passes, outputs are dropped and counted instead of
//! published, even if the node was paused and its next tick has not run yet.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;
use nv_cluster::kv::{KvClock, RealClock};
use nv_cluster::{
    Action, Bucket, Fence, Kv, KvError, Member, MemberConfig, NatsKv, NatsKvConfig, StopCause,
};
use nv_runtime::{FeedId, OutputSink, RuntimeHandle};

use crate::config::{ClusterSection, Config};
use crate::sinks::SinkSet;

pub mod edit;
pub mod output;

use output::{FencedSink, Handover, Reporter};

/// The running agent; dropping it does not release leases (see [`Agent::drain`]).
pub struct Agent {
    stop: mpsc::SyncSender<()>,
    thread: Option<JoinHandle<Member>>,
    runtime: RuntimeHandle,
    running: Arc<parking_lot::Mutex<BTreeMap<String, FeedId>>>,
    /// Outputs dropped because their feed's lease could no longer be proven.
    fenced_outputs: Arc<AtomicU64>,
    kv: Arc<dyn Kv>,
    reporter: Arc<Reporter>,
    node: String,
}

pub fn store_config(cl: &ClusterSection) -> NatsKvConfig {
    let ttl = nv_core::limits::saturating_secs(cl.lease_ttl_secs);
    NatsKvConfig {
        urls: cl.nats_urls.clone(),
        creds_file: cl.creds_file.clone(),
        bucket_prefix: cl.bucket_prefix.clone(),
        replicas: cl.replicas,
        node_ttl: ttl,
        lease_ttl: ttl,
        request_timeout: Duration::from_secs(5),
    }
}

/// What this node counted, shared with the API.
#[derive(Clone, Debug)]
pub struct NodeCounters {
    pub node: String,
    /// Outputs dropped because their feed's lease could no longer be proven.
    pub fenced_outputs: Arc<AtomicU64>,
    /// `cluster_handover` records published (feeds this node took over).
    pub handovers_reported: Arc<AtomicU64>,
    /// Handover reports lost (queue full, or the store never took them).
    pub handover_reports_lost: Arc<AtomicU64>,
}

/// What the agent thread needs to start and stop feeds.
struct Ctx {
    config: Arc<Config>,
    node: String,
    prefix: String,
    runtime: RuntimeHandle,
    sinks: Arc<SinkSet>,
    publisher: nv_sinks::SharedSink,
    store: Arc<NatsKv>,
    running: Arc<parking_lot::Mutex<BTreeMap<String, FeedId>>>,
    fenced: Arc<AtomicU64>,
    reporter: Arc<Reporter>,
    /// The spec (without its pause marker) of each feed running here.
    specs: parking_lot::Mutex<BTreeMap<String, serde_json::Value>>,
    views: ApiViews,
    /// Every fence a feed started here got, for the publisher's gate.
    fences: output::FenceRegistry,
}

/// What the daemon's API keeps per feed, filled in for the feeds the cluster runs here.
pub struct ApiViews {
    /// The `zones` stages' editors (GET zones answers from them).
    pub zone_editors: Arc<crate::zone_edit::ZoneEditors>,
    /// The zones and lines drawn on snapshots and streams.
    pub snapshots: crate::api::SnapshotStore,
}

impl Agent {
    /// Connects, creates the output streams, seeds the bucket with this file's feeds
    /// (those not there yet) and starts ticking.
    pub fn start(
        file: &std::path::Path,
        config: Arc<Config>,
        cl: &ClusterSection,
        runtime: RuntimeHandle,
        sinks: Arc<SinkSet>,
        views: ApiViews,
    ) -> anyhow::Result<Self> {
        let kv = Arc::new(open_store(cl)?);
        let fences = output::FenceRegistry::default();
        let publisher = output::publisher(cl, fences.clone())?;
        sinks.adopt(publisher.clone());
        seed_feeds(kv.as_ref(), file)?;
        let ttl = nv_core::limits::saturating_secs(cl.lease_ttl_secs);
        let mut member_cfg = MemberConfig::new(cl.node.clone(), ttl);
        member_cfg.weight = cl.weight;
        let tick = member_cfg.tick_interval;
        let reporter = Arc::new(Reporter::start(Arc::clone(&kv), cl.bucket_prefix.clone())?);
        let kv_dyn: Arc<dyn Kv> = kv.clone();
        let clock: Arc<dyn KvClock> = Arc::new(RealClock);
        let mut member = Member::new(Arc::clone(&kv_dyn), clock, member_cfg);
        let running: Arc<parking_lot::Mutex<BTreeMap<String, FeedId>>> = Arc::default();
        let fenced_outputs: Arc<AtomicU64> = Arc::default();
        let ctx = Ctx {
            config,
            node: cl.node.clone(),
            prefix: cl.bucket_prefix.clone(),
            runtime: runtime.clone(),
            sinks,
            publisher,
            store: kv,
            running: Arc::clone(&running),
            fenced: Arc::clone(&fenced_outputs),
            reporter: Arc::clone(&reporter),
            specs: parking_lot::Mutex::default(),
            views,
            fences,
        };
        let (stop, stopped) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("nv-cluster".into())
            .spawn(move || {
                let mut trouble = StoreTrouble::default();
                loop {
                    let actions = member.tick();
                    trouble.observe(member.store_error(), member.held().count());
                    for feed in apply(&actions, &ctx) {
                        member.refuse(&feed);
                    }
                    match stopped.recv_timeout(tick) {
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => return member,
                    }
                }
            })
            .context("cluster thread")?;
        tracing::info!(node = %cl.node, "cluster: joined");
        Ok(Self {
            stop,
            thread: Some(thread),
            runtime,
            running,
            fenced_outputs,
            kv: kv_dyn,
            reporter,
            node: cl.node.clone(),
        })
    }

    /// This node's counters (for the API's fleet view).
    pub fn counters(&self) -> NodeCounters {
        NodeCounters {
            node: self.node.clone(),
            fenced_outputs: Arc::clone(&self.fenced_outputs),
            handovers_reported: Arc::clone(&self.reporter.reported),
            handover_reports_lost: Arc::clone(&self.reporter.lost),
        }
    }

    /// The fleet's store (for the API's read-only fleet view).
    pub fn store(&self) -> Arc<dyn Kv> {
        Arc::clone(&self.kv)
    }

    /// Graceful leave: stop ticking, stop every feed this node runs (their last outputs
    /// flushed by the runtime), then release the leases so other nodes take over at once.
    pub fn drain(mut self) {
        let _stopping = self.stop.try_send(());
        let Some(member) = self.thread.take().and_then(|t| t.join().ok()) else {
            return;
        };
        let mut member = member;
        let names: Vec<(String, FeedId)> = std::mem::take(&mut *self.running.lock())
            .into_iter()
            .collect();
        for (name, id) in names {
            if let Err(e) = self.runtime.remove_feed(id) {
                tracing::warn!(feed = %name, "cluster drain: {}", nv_core::error::cause_chain(&e));
            }
        }
        let released = member.drain().len();
        let fenced = self.fenced_outputs.load(Ordering::Relaxed);
        let handovers = self.reporter.reported.load(Ordering::Relaxed);
        tracing::info!(
            released,
            fenced_outputs = fenced,
            handovers,
            "cluster: left"
        );
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _stopping = self.stop.try_send(());
        if let Some(t) = self.thread.take() {
            let _member = t.join();
        }
    }
}

/// Reports the store's failures to the log once per outage, not once per tick: when ticks
/// start failing (with the cause) and when they get through again (after how long).
#[derive(Default)]
struct StoreTrouble {
    since: Option<std::time::Instant>,
    failed_ticks: u64,
}

impl StoreTrouble {
    fn observe(&mut self, error: Option<&KvError>, held: usize) {
        match (error, self.since) {
            (Some(e), None) => {
                tracing::warn!(
                    held,
                    "cluster: the store did not answer ({e}); leases not renewed in time stop their feeds here"
                );
                self.since = Some(std::time::Instant::now());
                self.failed_ticks = 1;
            }
            (Some(_), Some(_)) => self.failed_ticks += 1,
            (None, Some(since)) => {
                tracing::info!(
                    failed_ticks = self.failed_ticks,
                    held,
                    "cluster: the store answers again after {:.1} s",
                    since.elapsed().as_secs_f64()
                );
                self.since = None;
            }
            (None, None) => {}
        }
    }
}

/// How long a starting daemon keeps trying to open the store, a second between attempts:
/// a NATS cluster starting with it may not have elected its JetStream leaders yet.
const OPEN_WITHIN: Duration = Duration::from_secs(30);

/// Connects, opens the buckets and the output streams (creating what is missing).
fn open_store(cl: &ClusterSection) -> anyhow::Result<NatsKv> {
    let deadline = std::time::Instant::now() + OPEN_WITHIN;
    let mut attempt = 1;
    loop {
        let opened = NatsKv::connect(&store_config(cl))
            .context("cluster store")
            .and_then(|kv| {
                output::ensure_streams(&kv, cl).context("cluster output streams")?;
                Ok(kv)
            });
        match opened {
            Ok(kv) => return Ok(kv),
            Err(e) if std::time::Instant::now() < deadline => {
                tracing::warn!(attempt, "cluster: opening the store: {e:#}; trying again");
                std::thread::sleep(Duration::from_secs(1));
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Puts every `[[feeds]]` table of the file into the bucket (as JSON, the API's form)
/// unless a spec is already there: the bucket is the fleet's source of truth, and a node
/// restarting with an old file does not overwrite edits made since. `${VAR}` references
/// travel unresolved and are resolved by the node that runs the feed.
fn seed_feeds(kv: &dyn Kv, file: &std::path::Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let doc: toml::Table = toml::from_str(&text).context("configuration")?;
    let Some(toml::Value::Array(feeds)) = doc.get("feeds") else {
        return Ok(());
    };
    for feed in feeds {
        let Some(name) = feed.get("name").and_then(toml::Value::as_str) else {
            continue;
        };
        let json = serde_json::to_vec(feed).context("feed spec")?;
        match kv.create(Bucket::Feeds, name, &json) {
            Ok(_) | Err(KvError::Exists { .. }) => {}
            Err(e) => return Err(e).with_context(|| format!("cluster: seeding feed {name}")),
        }
    }
    Ok(())
}

/// Applies in place each spec change of a running feed that only flips its pause marker
/// or edits its `zones` stage's zones and lines (no restart: tracks and open visits stay);
/// those feeds.
fn apply_in_place(actions: &[Action], ctx: &Ctx) -> std::collections::BTreeSet<String> {
    let mut done = std::collections::BTreeSet::new();
    for action in actions {
        let Action::Start { feed, spec, .. } = action else {
            continue;
        };
        let respecced = actions.iter().any(
            |a| matches!(a, Action::Stop { feed: f, cause: StopCause::SpecChanged } if f == feed),
        );
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(spec) else {
            continue;
        };
        let (plain, paused) = edit::split_paused(value);
        let Some(old) = ctx.specs.lock().get(feed).cloned() else {
            continue;
        };
        let (old_rest, old_zones) = edit::split_zones(old);
        let (new_rest, new_zones) = edit::split_zones(plain.clone());
        let handle = ctx
            .running
            .lock()
            .get(feed)
            .and_then(|id| ctx.runtime.feed(*id));
        let (true, true, Some(h)) = (respecced, old_rest == new_rest, handle) else {
            continue;
        };
        if old_zones != new_zones {
            let editor = ctx.views.zone_editors.get(feed);
            let parsed = new_zones.map(crate::zone_edit::parse);
            match (editor, parsed) {
                (Some(editor), Some(Ok(config))) => {
                    let detail = crate::zone_edit::describe(&config);
                    let overlay = crate::api::overlay_of_zones(&config);
                    if let Err(e) = editor.submit(config) {
                        tracing::warn!(feed = %feed, "cluster: zone edit refused: {}", nv_core::error::cause_chain(&e));
                        continue;
                    }
                    h.report_config_changed(detail);
                    ctx.views.snapshots.set_overlay(h.id(), feed, overlay);
                }
                // Not an edit the stage can take: restart with the new spec.
                _ => continue,
            }
        }
        let res = if paused { h.pause() } else { h.resume() };
        // Already in that state is fine.
        if let Err(e) = res {
            tracing::debug!(feed = %feed, "cluster: pause state: {}", nv_core::error::cause_chain(&e));
        }
        tracing::info!(feed = %feed, paused, "cluster: spec change applied in place");
        ctx.specs.lock().insert(feed.clone(), plain);
        done.insert(feed.clone());
    }
    done
}

fn apply(actions: &[Action], ctx: &Ctx) -> Vec<String> {
    let mut failed = Vec::new();
    let in_place = apply_in_place(actions, ctx);
    // A feed restarted for a new spec stays with its owner: no handover to report.
    let mut respecced = std::collections::BTreeSet::new();
    for action in actions {
        match action {
            Action::Stop { feed, .. } | Action::Start { feed, .. } if in_place.contains(feed) => {}
            Action::Stop { feed, cause } => {
                if *cause == StopCause::SpecChanged {
                    respecced.insert(feed.clone());
                }
                ctx.specs.lock().remove(feed);
                ctx.views.zone_editors.forget(feed);
                if let Some(id) = ctx.running.lock().remove(feed) {
                    tracing::info!(feed = %feed, cause = cause.as_str(), "cluster: stopping feed");
                    if let Err(e) = ctx.runtime.remove_feed(id) {
                        tracing::warn!(feed = %feed, "cluster: stopping feed: {}", nv_core::error::cause_chain(&e));
                    }
                    ctx.views.snapshots.forget(id);
                }
            }
            Action::Start {
                feed,
                spec,
                fence,
                previous,
            } => {
                let handover = if respecced.contains(feed) {
                    None
                } else {
                    handover(ctx, feed, fence.token(), previous.clone())
                };
                match start_feed(feed, spec, fence, handover, ctx) {
                    Ok(id) => {
                        tracing::info!(feed = %feed, fence = fence.token(), "cluster: started feed");
                        ctx.running.lock().insert(feed.clone(), id);
                    }
                    Err(e) => {
                        tracing::warn!(feed = %feed, "cluster: cannot start feed here, releasing it to another node: {e:#}");
                        failed.push(feed.clone());
                    }
                }
            }
        }
    }
    failed
}

/// What this node knows of the feed's previous owner and its last published frame; `None`
/// for a feed that never ran (no owner seen, nothing in the stream).
fn handover(
    ctx: &Ctx,
    feed: &str,
    fence: u64,
    previous: Option<nv_cluster::PreviousOwner>,
) -> Option<Handover> {
    let (last, last_unknown) = match output::last_published(&ctx.store, &ctx.prefix, feed) {
        Ok(last) => (last, false),
        Err(e) => {
            tracing::warn!(feed = %feed, "cluster: reading the feed's last published frame: {e}");
            (None, true)
        }
    };
    // A feed new to the fleet: nobody ran it, the stream holds nothing of it.
    if previous.is_none() && last.is_none() && !last_unknown {
        return None;
    }
    Some(Handover {
        feed: feed.to_owned(),
        node: ctx.node.clone(),
        fence,
        previous,
        last,
        last_unknown,
    })
}

fn start_feed(
    name: &str,
    spec: &[u8],
    fence: &Arc<Fence>,
    handover: Option<Handover>,
    ctx: &Ctx,
) -> anyhow::Result<FeedId> {
    anyhow::ensure!(
        output::subject_safe_feed(name),
        "feed name `{name}` has an empty subject token (a leading, trailing or doubled `.`)"
    );
    let value: serde_json::Value = serde_json::from_slice(spec).context("feed spec is not JSON")?;
    let (plain, paused) = edit::split_paused(value);
    let runtime = &ctx.runtime;
    let taken = |n: &str| runtime.feeds().iter().any(|f| f.name() == n);
    let spec = crate::assemble::feed_from_json(&ctx.config, plain.clone(), &taken)
        .map_err(|problems| anyhow::anyhow!("{}", problems.join("; ")))?;
    anyhow::ensure!(
        spec.section.name == name,
        "the spec under key {name} names feed {}",
        spec.section.name
    );
    let (sink, factory) = ctx.sinks.feed_sink(&spec)?;
    ctx.fences.insert(name, fence);
    let wrap = {
        let fence = Arc::clone(fence);
        let dropped = Arc::clone(&ctx.fenced);
        let publisher = ctx.publisher.clone();
        let lost = Arc::clone(&ctx.reporter.lost);
        move |inner: Box<dyn OutputSink>, handover: Option<Handover>, tx| -> Box<dyn OutputSink> {
            let both: Vec<Box<dyn OutputSink>> = vec![inner, Box::new(publisher.handle())];
            Box::new(FencedSink {
                inner: Box::new(crate::sinks::FanOut(both)),
                fence: Arc::clone(&fence),
                dropped: Arc::clone(&dropped),
                handover: handover.zip(tx),
                lost_reports: Arc::clone(&lost),
            })
        }
    };
    let sink = wrap(sink, handover, ctx.reporter.sender());
    let factory: nv_runtime::SinkFactory = Box::new(move || wrap(factory(), None, None));
    // Zone edits of a cluster-run feed come through the bucket's spec (see
    // `apply_in_place`); its editor is registered for the API's reads.
    let stages = crate::assemble::stages(&spec, &ctx.views.zone_editors)?;
    let fc = crate::assemble::feed_config(&spec, stages, sink, Some(factory))?;
    let handle = runtime.add_feed(fc)?;
    if paused {
        handle.pause()?;
    }
    ctx.views
        .snapshots
        .set_overlay(handle.id(), name, crate::api::overlay_of(&spec.stages));
    ctx.specs.lock().insert(name.to_owned(), plain);
    Ok(handle.id())
}

/// `nextvision cluster ...`
#[derive(clap::Subcommand, Debug)]
pub enum ClusterCommand {
    /// Print the fleet's nodes, feeds with their owners, and leases (read-only).
    Status {
        /// A configuration file with a `[cluster]` section.
        file: std::path::PathBuf,
    },
}

pub fn run_command(command: &ClusterCommand) -> anyhow::Result<std::process::ExitCode> {
    let ClusterCommand::Status { file } = command;
    let config = crate::config::load(file, crate::config::EnvMode::Resolve)?;
    let cl = config
        .cluster
        .as_ref()
        .with_context(|| format!("{} has no [cluster] section", file.display()))?;
    let kv = NatsKv::connect(&store_config(cl)).context("cluster store")?;
    let view = nv_cluster::ClusterView::read(&kv).context("reading the cluster")?;
    let mut out = String::new();
    out.push_str(&format!("nodes ({}):\n", view.all_nodes.len()));
    for n in &view.all_nodes {
        let held = view
            .leases
            .values()
            .filter(|(l, _)| l.node == n.node)
            .count();
        let refused = if n.refused.is_empty() {
            String::new()
        } else {
            let names: Vec<&str> = n.refused.keys().map(String::as_str).collect();
            format!(" (could not start: {})", names.join(", "))
        };
        out.push_str(&format!(
            "  {:<24} weight {:<6} feeds {:<5} {}{refused}\n",
            n.node,
            n.weight,
            held,
            if n.accepting { "accepting" } else { "draining" }
        ));
    }
    out.push_str(&format!("feeds ({}):\n", view.feeds.len()));
    for r in feed_rows(&view) {
        let owner = r.owner.as_deref().unwrap_or("-");
        let assigned = r.assigned.as_deref().unwrap_or("-");
        out.push_str(&format!(
            "  {:<24} owner {owner:<20} fence {:<8} assigned {assigned}{}\n",
            r.name,
            r.fence.unwrap_or(0),
            if r.owner.is_some() && owner != assigned {
                " (moving)"
            } else {
                ""
            }
        ));
    }
    print!("{out}");
    Ok(std::process::ExitCode::SUCCESS)
}

/// One feed of the fleet as the status command and the API show it.
pub struct FeedRow {
    pub name: String,
    /// The node holding its lease, if any.
    pub owner: Option<String>,
    /// The lease's fencing token (its first revision).
    pub fence: Option<u64>,
    /// The node that should own it now.
    pub assigned: Option<String>,
}

pub fn feed_rows(view: &nv_cluster::ClusterView) -> Vec<FeedRow> {
    view.feeds
        .keys()
        .map(|feed| {
            let lease = view.leases.get(feed);
            FeedRow {
                name: feed.clone(),
                owner: lease.map(|(l, _)| l.node.clone()),
                fence: lease.map(|(l, rev)| l.token(*rev)),
                assigned: view.owner(feed).map(str::to_owned),
            }
        })
        .collect()
}
