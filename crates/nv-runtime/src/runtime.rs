//! The runtime: a registry of feeds plus the runtime-wide health and output streams.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use nv_core::clock::{SharedClock, SystemClock};
use nv_core::error::{ConfigError, ConfigProblem, MediaError, NvError, RuntimeError};
use nv_core::health::{HealthEvent, StopReason};
use nv_core::id::{FeedId, StageId};
use nv_core::security::{is_insecure_rtsp, redact_url};
use nv_core::source::{CustomPipelinePolicy, RtspSecurityPolicy, SourceSpec};
use nv_core::time::MonotonicTs;
use nv_perception::BatchProcessor;
use nv_temporal::TemporalStore;
use nv_view::{DefaultEpochPolicy, ViewTracker};
use parking_lot::Mutex;

use crate::batch::{spawn_coordinator, BatchConfig, BatchHandle, BatchMetrics, StopKind};
use crate::broadcast;
use crate::coalesce::Coalescers;
use crate::detached::DetachedThreads;
use crate::executor::{Executor, ExecutorParams};
use crate::feed::config::PipelineStep;
use crate::feed::shared::{Control, FeedSettings, FeedShared, StageBusy, StageCounters};
use crate::feed::{FeedConfig, FeedDiagnostics, FeedHandle};
use crate::output::SharedOutput;
use crate::sched::{Pool, PoolConfig, Scheduler, TaskCell};
use crate::source::synthetic::SyntheticFactory;
use crate::source::{FeedIo, SharedSourceFactory, SourceContext, SourceFactory, SourceObserver};
use crate::subscription::{HealthSubscription, LagState, OutputSubscription};
use crate::sync::Waiter;
use crate::watchdog::{Watchdog, Watched};
use crate::worker::{self, WorkerParams};
use nv_io::FeedCounters;

/// Builds a [`Runtime`].
pub struct RuntimeBuilder {
    max_feeds: usize,
    health_capacity: usize,
    output_capacity: usize,
    feed_join_timeout: Duration,
    clock: Option<SharedClock>,
    factories: Vec<SharedSourceFactory>,
    custom_pipeline_policy: CustomPipelinePolicy,
    worker_stack_size: usize,
    health_throttle: Duration,
    scheduler: Scheduler,
}

impl std::fmt::Debug for RuntimeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeBuilder")
            .field("max_feeds", &self.max_feeds)
            .finish_non_exhaustive()
    }
}

impl Default for RuntimeBuilder {
    fn default() -> Self {
        Self {
            max_feeds: 64,
            health_capacity: 1024,
            output_capacity: 256,
            feed_join_timeout: Duration::from_secs(10),
            clock: None,
            factories: Vec::new(),
            custom_pipeline_policy: CustomPipelinePolicy::Reject,
            worker_stack_size: 2 * 1024 * 1024,
            health_throttle: crate::throttle::DEFAULT_THROTTLE_WINDOW,
            scheduler: Scheduler::from_test_env(),
        }
    }
}

impl RuntimeBuilder {
    pub fn max_feeds(mut self, n: usize) -> Self {
        self.max_feeds = n;
        self
    }
    pub fn health_capacity(mut self, n: usize) -> Self {
        self.health_capacity = n;
        self
    }
    pub fn output_capacity(mut self, n: usize) -> Self {
        self.output_capacity = n;
        self
    }
    /// Bound on waiting for a feed worker to stop (remove, shutdown); shared by all feeds
    /// during shutdown rather than applied one after another.
    pub fn feed_join_timeout(mut self, d: Duration) -> Self {
        self.feed_join_timeout = d;
        self
    }
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }
    /// Adds a source factory (e.g. the GStreamer one). The built-in synthetic factory is
    /// always present; factories are tried in the order added.
    pub fn source_factory(mut self, factory: SharedSourceFactory) -> Self {
        self.factories.push(factory);
        self
    }
    pub fn custom_pipeline_policy(mut self, p: CustomPipelinePolicy) -> Self {
        self.custom_pipeline_policy = p;
        self
    }
    /// Stack size of the threads stages run on (pool threads, dedicated feed threads);
    /// default 2 MiB.
    pub fn worker_stack_size(mut self, bytes: usize) -> Self {
        self.worker_stack_size = bytes;
        self
    }
    /// How feeds get threads: tasks on a pool sized to the cores (default), or one each.
    pub fn scheduler(mut self, scheduler: Scheduler) -> Self {
        self.scheduler = scheduler;
        self
    }
    /// Window for coalescing runtime-level events (`OutputLagged`).
    pub fn health_throttle(mut self, d: Duration) -> Self {
        self.health_throttle = d;
        self
    }

    pub fn build(self) -> Result<Runtime, ConfigError> {
        let mut problems = Vec::new();
        if self.max_feeds == 0 {
            problems.push(ConfigProblem::invalid("max_feeds", 0, "must be at least 1"));
        }
        if self.health_capacity == 0 {
            problems.push(ConfigProblem::invalid(
                "health_capacity",
                0,
                "must be at least 1",
            ));
        }
        if self.output_capacity == 0 {
            problems.push(ConfigProblem::invalid(
                "output_capacity",
                0,
                "must be at least 1",
            ));
        }
        use nv_core::limits;
        problems.extend(
            [
                limits::at_most("max_feeds", self.max_feeds, limits::MAX_FEEDS),
                limits::at_most(
                    "health_capacity",
                    self.health_capacity,
                    limits::MAX_HEALTH_CAPACITY,
                ),
                limits::at_most(
                    "output_capacity",
                    self.output_capacity,
                    limits::MAX_OUTPUT_CAPACITY,
                ),
                limits::at_most(
                    "worker_stack_size",
                    self.worker_stack_size,
                    limits::MAX_WORKER_STACK_BYTES,
                ),
                limits::duration("feed_join_timeout", self.feed_join_timeout),
            ]
            .into_iter()
            .flatten(),
        );
        if self.worker_stack_size < 64 * 1024 {
            problems.push(ConfigProblem::invalid(
                "worker_stack_size",
                self.worker_stack_size,
                "must be at least 65536 bytes",
            ));
        }
        if let Scheduler::Pool { threads } = self.scheduler {
            problems.extend(limits::at_most(
                "scheduler.threads",
                threads,
                limits::MAX_POOL_THREADS,
            ));
        }
        ConfigError::check(problems)?;
        let clock = self.clock.unwrap_or_else(SystemClock::shared);
        let pool = match self.scheduler {
            Scheduler::ThreadPerFeed => None,
            Scheduler::Pool { threads } => Some(
                Pool::start(
                    PoolConfig::new(threads, self.worker_stack_size),
                    clock.clone(),
                )
                .map_err(|e| {
                    ConfigError::single(ConfigProblem::invalid(
                        "scheduler",
                        "pool",
                        format!("cannot start the pool threads: {e}"),
                    ))
                })?,
            ),
        };
        let watched = Watched::default();
        let coalescers = Coalescers::new();
        let watchdog = Watchdog::spawn(
            clock.clone(),
            Arc::clone(&watched),
            Arc::clone(&coalescers),
            pool.clone(),
        )
        .map_err(|e| {
            ConfigError::single(ConfigProblem::invalid(
                "runtime",
                "watchdog",
                format!("cannot start the watchdog thread: {e}"),
            ))
        })?;
        let health = broadcast::channel(self.health_capacity);
        let mut factories = self.factories;
        factories.push(Arc::new(SyntheticFactory::new()));
        Ok(Runtime {
            handle: RuntimeHandle {
                inner: Arc::new(Inner {
                    started_at: clock.now(),
                    lag: Arc::new(LagState::new(
                        &coalescers,
                        health.clone(),
                        clock.clone(),
                        self.health_throttle,
                    )),
                    clock,
                    health,
                    outputs: broadcast::channel(self.output_capacity),
                    feeds: Mutex::new(BTreeMap::new()),
                    batches: Mutex::new(BTreeMap::new()),
                    next_id: AtomicU64::new(1),
                    shutting_down: AtomicBool::new(false),
                    factories,
                    detached: DetachedThreads::default(),
                    max_feeds: self.max_feeds,
                    feed_join_timeout: self.feed_join_timeout,
                    custom_pipeline_policy: self.custom_pipeline_policy,
                    worker_stack_size: self.worker_stack_size,
                    watchdog: Mutex::new(Some(watchdog)),
                    coalescers,
                    watched,
                    run_id: new_run_id(),
                    pool,
                }),
            },
        })
    }
}

/// Where a feed's worker runs.
enum Runner {
    Thread(JoinHandle<()>),
    Task(Arc<TaskCell>),
}

struct FeedEntry {
    handle: FeedHandle,
    thread: Option<Runner>,
}

struct Inner {
    clock: SharedClock,
    started_at: MonotonicTs,
    health: broadcast::Sender<HealthEvent>,
    outputs: broadcast::Sender<SharedOutput>,
    lag: Arc<LagState>,
    feeds: Mutex<BTreeMap<FeedId, FeedEntry>>,
    batches: Mutex<BTreeMap<StageId, BatchEntryReg>>,
    next_id: AtomicU64,
    shutting_down: AtomicBool,
    factories: Vec<SharedSourceFactory>,
    detached: DetachedThreads,
    max_feeds: usize,
    feed_join_timeout: Duration,
    custom_pipeline_policy: CustomPipelinePolicy,
    worker_stack_size: usize,
    watched: Watched,
    watchdog: Mutex<Option<Watchdog>>,
    /// Coalesced health events of every feed; the watchdog thread flushes them on time.
    coalescers: Arc<Coalescers>,
    /// This runtime instance, stamped on every output (`Provenance::run_id`).
    run_id: u64,
    /// Present under `Scheduler::Pool`.
    pool: Option<Pool>,
}

/// Runtime-wide diagnostics.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RuntimeDiagnostics {
    pub uptime: Duration,
    pub feed_count: usize,
    pub max_feeds: usize,
    /// Sorted by feed id.
    pub feeds: Vec<FeedDiagnostics>,
    /// Outputs lost by lagging runtime-wide subscribers since start.
    pub output_messages_lost: u64,
    /// Threads that missed their stop deadline and are still running.
    pub detached_threads: Vec<String>,
    /// One entry per batch coordinator.
    pub batches: Vec<BatchMetrics>,
    /// Threads of the feed pool now, spares included (0 under `Scheduler::ThreadPerFeed`).
    pub pool_threads: usize,
}

/// Owns feeds. Dropping it shuts everything down.
pub struct Runtime {
    handle: RuntimeHandle,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("feeds", &self.feed_count())
            .finish_non_exhaustive()
    }
}

/// A cloneable handle to a runtime (for API servers, signal handlers).
#[derive(Clone)]
pub struct RuntimeHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RuntimeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeHandle").finish_non_exhaustive()
    }
}

impl Runtime {
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }
    pub fn handle(&self) -> RuntimeHandle {
        self.handle.clone()
    }
    /// Stops every feed (signalled together, joined against one deadline) and closes the
    /// health and output streams.
    pub fn shutdown(self) {
        self.handle.inner.shutdown();
    }
}

/// Every control and observation method of [`RuntimeHandle`] is available on the runtime.
impl std::ops::Deref for Runtime {
    type Target = RuntimeHandle;
    fn deref(&self) -> &RuntimeHandle {
        &self.handle
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.handle.inner.shutdown();
    }
}

impl RuntimeHandle {
    pub fn add_feed(&self, config: FeedConfig) -> Result<FeedHandle, NvError> {
        self.inner.add_feed(config)
    }
    pub fn remove_feed(&self, id: FeedId) -> Result<(), RuntimeError> {
        self.inner.remove_feed(id)
    }
    pub fn feed(&self, id: FeedId) -> Option<FeedHandle> {
        self.inner.feeds.lock().get(&id).map(|e| e.handle.clone())
    }
    pub fn feeds(&self) -> Vec<FeedHandle> {
        self.inner
            .feeds
            .lock()
            .values()
            .map(|e| e.handle.clone())
            .collect()
    }
    pub fn feed_count(&self) -> usize {
        self.inner.feeds.lock().len()
    }
    pub fn max_feeds(&self) -> usize {
        self.inner.max_feeds
    }
    pub fn uptime(&self) -> Duration {
        self.inner
            .clock
            .now()
            .saturating_duration_since(self.inner.started_at)
    }
    pub fn clock(&self) -> &SharedClock {
        &self.inner.clock
    }
    pub fn health_subscribe(&self) -> HealthSubscription {
        self.inner.health.subscribe()
    }
    /// Publishes an event on the runtime's health stream, for components outside the
    /// runtime that watch feeds (sink monitors, say).
    pub fn publish_health(&self, event: HealthEvent) {
        self.inner.health.send(event);
    }
    pub fn output_subscribe(&self) -> OutputSubscription {
        OutputSubscription::new(self.inner.outputs.subscribe(), Arc::clone(&self.inner.lag))
    }
    pub fn diagnostics(&self) -> RuntimeDiagnostics {
        self.inner.diagnostics()
    }
    /// Starts a batch coordinator for `processor` (its `on_start` runs on the coordinator
    /// thread, bounded by `startup_timeout`). Give the handle to feeds with
    /// [`FeedConfigBuilder::batch`](crate::FeedConfigBuilder::batch).
    pub fn create_batch(
        &self,
        processor: impl BatchProcessor,
        config: BatchConfig,
    ) -> Result<BatchHandle, NvError> {
        self.inner.create_batch(Box::new(processor), config)
    }
    /// Stops a coordinator: queued items are answered, then `on_stop` runs. Feeds still
    /// using it drop frames at the batch point and report it once.
    pub fn remove_batch(&self, processor_id: StageId) -> Result<(), RuntimeError> {
        self.inner.remove_batch(processor_id)
    }
    /// Stops every feed; see [`Runtime::shutdown`]. Idempotent.
    pub fn shutdown(&self) {
        self.inner.shutdown();
    }
}

impl Inner {
    fn check_source(&self, spec: &SourceSpec) -> Result<Arc<dyn SourceFactory>, NvError> {
        match spec {
            SourceSpec::Custom { .. }
                if self.custom_pipeline_policy != CustomPipelinePolicy::AllowTrusted =>
            {
                return Err(MediaError::CustomPipelineRejected.into());
            }
            SourceSpec::Rtsp {
                url,
                security: RtspSecurityPolicy::RequireTls,
                ..
            } if is_insecure_rtsp(url) => {
                return Err(MediaError::InsecureRtspRejected {
                    redacted_url: redact_url(url),
                }
                .into());
            }
            _ => {}
        }
        self.factories
            .iter()
            .find(|f| f.handles(spec))
            .cloned()
            .ok_or_else(|| MediaError::NoFactory { kind: spec.kind() }.into())
    }

    fn add_feed(&self, config: FeedConfig) -> Result<FeedHandle, NvError> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(RuntimeError::ShutdownInProgress.into());
        }
        let factory = self.check_source(&config.source)?;
        let mut feeds = self.feeds.lock();
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(RuntimeError::ShutdownInProgress.into());
        }
        if feeds.len() >= self.max_feeds {
            return Err(RuntimeError::FeedLimitExceeded {
                max: self.max_feeds,
            }
            .into());
        }
        let id = FeedId::new(self.next_id.fetch_add(1, Ordering::SeqCst));
        let counters = Arc::new(FeedCounters::default());
        let mut config = config;
        let steps: Vec<_> = std::mem::take(&mut config.stages)
            .into_iter()
            .map(|s| (s, Arc::new(StageCounters::default())))
            .collect();
        // A stage that may wait, or a batch point (the feed waits for the coordinator's
        // reply), keeps a thread of its own: waits never hold a pool thread.
        let dedicated = steps.iter().any(|(s, _)| match s {
            PipelineStep::Stage(stage) => stage.may_block(),
            PipelineStep::Batch(_) => true,
        });
        let now = self.clock.now();
        let busy = Arc::new(StageBusy::default());
        let name = config.name.clone().unwrap_or_else(|| id.to_string());
        let status = Arc::new(crate::feed::status::FeedStatus::new(
            id,
            name.clone(),
            config.source.redacted(),
            self.clock.clone(),
        ));
        let io = Arc::new(FeedIo {
            feed_id: id,
            overflow: config.backpressure.overflow,
            counters: Arc::clone(&counters),
            health: self.health.clone(),
            clock: self.clock.clone(),
            next_seq: AtomicU64::new(0),
            last_ts: AtomicU64::new(0),
            throttle_window: config.health_throttle,
            coalescers: Arc::clone(&self.coalescers),
            max_fps: config.max_fps,
            observer: Arc::clone(&status) as Arc<dyn SourceObserver>,
        });
        let shared = Arc::new(FeedShared {
            id,
            name,
            class_names: config.class_names.clone(),
            source_redacted: config.source.redacted(),
            clock: self.clock.clone(),
            health: self.health.clone(),
            counters,
            control: Waiter::new(Control::default(), self.clock.clone()),
            stages: steps.iter().map(|(s, c)| (s.id(), Arc::clone(c))).collect(),
            source_queue: Mutex::new(None),
            sink_queue: Mutex::new(None),
            settings: FeedSettings {
                queue_depth: config.backpressure.queue_depth(),
                sink_capacity: config.sink_queue_capacity,
                sink_overflow: config.sink_overflow,
                sink_shutdown_timeout: config.sink_shutdown_timeout,
                stage_stall_timeout: config.stage_stall_timeout,
                restart_delay: config.restart.restart_delay,
                run_id: self.run_id,
            },
            io,
            created_at: now,
            session_started_at: AtomicU64::new(now.as_nanos()),
            decode_status: Mutex::new(None),
            stop_reason: Mutex::new(None),
            stopped_emitted: AtomicBool::new(false),
            busy: Arc::clone(&busy),
            status,
            health_throttle: config.health_throttle,
            coalescers: Arc::clone(&self.coalescers),
            analytics: Arc::default(),
            task_signal: std::sync::OnceLock::new(),
            task_helper: std::sync::OnceLock::new(),
        });
        let executor = Executor::new(ExecutorParams {
            feed: Arc::clone(&shared),
            steps,
            batch_latency_budget: config.batch_latency_budget,
            view: ViewTracker::new(
                config.camera_mode,
                config
                    .epoch_policy
                    .take()
                    .unwrap_or_else(|| Box::new(DefaultEpochPolicy::default())),
                config.view_settings.clone(),
            ),
            provider: config.view_provider.take(),
            temporal: TemporalStore::new(config.retention.clone()).map_err(NvError::from)?,
            inclusion: config.frame_inclusion,
            frame_lag_threshold: config.frame_lag_threshold,
        });
        let mut source_ctx = SourceContext::new(id, config.source.clone(), self.clock.clone());
        source_ctx.reconnect = config.reconnect;
        source_ctx.decode = config.decode;
        source_ctx.output_format = config.output_format;
        source_ctx.max_fps = config.max_fps;
        source_ctx.startup_timeout = config.startup_timeout;
        source_ctx.stall_timeout = config.stall_timeout;
        source_ctx.custom_pipeline_policy = self.custom_pipeline_policy;
        let params = WorkerParams {
            shared: Arc::clone(&shared),
            config,
            executor,
            factory,
            outputs: self.outputs.clone(),
            detached: self.detached.clone(),
            source_ctx,
            stack_size: self.worker_stack_size,
        };
        let thread = match self.pool.as_ref() {
            Some(pool) if !dedicated => Runner::Task(worker::spawn_on_pool(params, pool)),
            _ => Runner::Thread(worker::spawn(params)?),
        };
        self.watched.lock().push(Arc::downgrade(&shared));
        self.health.send(HealthEvent::FeedAdded {
            feed_id: id,
            name: shared.name.clone(),
        });
        let handle = FeedHandle { shared };
        feeds.insert(
            id,
            FeedEntry {
                handle: handle.clone(),
                thread: Some(thread),
            },
        );
        Ok(handle)
    }

    /// Waits for a signalled feed until `deadline`; detaches and reports it if late.
    fn join_feed(&self, mut entry: FeedEntry, deadline: MonotonicTs) {
        let shared = &entry.handle.shared;
        let finished = {
            let mut c = shared.control.lock();
            shared
                .control
                .wait_until(&mut c, Some(deadline), |c| c.finished);
            c.finished
        };
        let Some(thread) = entry.thread.take() else {
            return;
        };
        if finished {
            if let Runner::Thread(thread) = thread {
                if thread.join().is_err() {
                    tracing::error!(feed_id = %shared.id, "feed worker panicked");
                }
            }
        } else {
            shared.emit_stopped(StopReason::Fatal {
                detail: format!(
                    "worker did not stop within {} ms; detached",
                    self.feed_join_timeout.as_millis()
                ),
            });
            let name = format!("nv-feed-{}", shared.id.as_u64());
            match thread {
                Runner::Thread(t) => self.detached.add(name, t),
                Runner::Task(t) => self.detached.add_task(name, t),
            }
        }
    }

    fn remove_feed(&self, id: FeedId) -> Result<(), RuntimeError> {
        let entry = self
            .feeds
            .lock()
            .remove(&id)
            .ok_or(RuntimeError::FeedNotFound { feed_id: id })?;
        entry.handle.shared.request_stop();
        let deadline = self.clock.now() + self.feed_join_timeout;
        self.join_feed(entry, deadline);
        self.health.send(HealthEvent::FeedRemoved { feed_id: id });
        Ok(())
    }

    fn shutdown(&self) {
        if self.shutting_down.swap(true, Ordering::SeqCst) {
            return;
        }
        let entries: Vec<FeedEntry> = std::mem::take(&mut *self.feeds.lock())
            .into_values()
            .collect();
        // Coordinators first: a feed blocked at a batch point is answered (drained) rather
        // than left waiting for its response timeout.
        let batches: Vec<BatchEntryReg> = std::mem::take(&mut *self.batches.lock())
            .into_values()
            .collect();
        for b in &batches {
            b.handle.coordinator.stop(StopKind::RuntimeShutdown);
        }
        for e in &entries {
            e.handle.shared.request_stop();
        }
        let deadline = self.clock.now() + self.feed_join_timeout;
        for e in entries {
            self.join_feed(e, deadline);
        }
        for b in batches {
            self.join_batch(b, deadline);
        }
        if let Some(mut w) = self.watchdog.lock().take() {
            w.stop();
        }
        if let Some(pool) = self.pool.as_ref() {
            pool.shutdown_into(deadline, &self.detached);
        }
        self.lag.flush();
        self.outputs.close();
        self.health.close();
    }

    fn diagnostics(&self) -> RuntimeDiagnostics {
        let feeds: Vec<FeedDiagnostics> = self
            .feeds
            .lock()
            .values()
            .map(|e| e.handle.diagnostics())
            .collect();
        RuntimeDiagnostics {
            uptime: self.clock.now().saturating_duration_since(self.started_at),
            feed_count: feeds.len(),
            max_feeds: self.max_feeds,
            feeds,
            output_messages_lost: self.lag.total(),
            batches: self
                .batches
                .lock()
                .values()
                .map(|b| b.handle.metrics())
                .collect(),
            detached_threads: self.detached.reap(),
            pool_threads: self.pool.as_ref().map_or(0, Pool::thread_count),
        }
    }

    fn create_batch(
        &self,
        processor: Box<dyn BatchProcessor>,
        config: BatchConfig,
    ) -> Result<BatchHandle, NvError> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(RuntimeError::ShutdownInProgress.into());
        }
        config.validate()?;
        let processor_id = processor.id();
        // Holding the registry lock through startup makes duplicate ids race-free; startup
        // is bounded by `startup_timeout`.
        let mut batches = self.batches.lock();
        if batches.contains_key(&processor_id) {
            return Err(RuntimeError::DuplicateBatchProcessor { processor_id }.into());
        }
        match spawn_coordinator(
            processor,
            config,
            self.health.clone(),
            self.clock.clone(),
            Arc::clone(&self.coalescers),
        ) {
            Ok((coordinator, thread)) => {
                let handle = BatchHandle { coordinator };
                batches.insert(
                    processor_id,
                    BatchEntryReg {
                        handle: handle.clone(),
                        thread: Some(thread),
                    },
                );
                Ok(handle)
            }
            Err((err, stuck)) => {
                if let Some(t) = stuck {
                    self.detached.add(format!("nv-batch-{processor_id}"), t);
                }
                Err(err.into())
            }
        }
    }

    fn remove_batch(&self, processor_id: StageId) -> Result<(), RuntimeError> {
        let entry = self
            .batches
            .lock()
            .remove(&processor_id)
            .ok_or(RuntimeError::BatchNotFound { processor_id })?;
        entry.handle.coordinator.stop(StopKind::Removed);
        self.join_batch(entry, self.clock.now() + self.feed_join_timeout);
        Ok(())
    }

    fn join_batch(&self, mut entry: BatchEntryReg, deadline: MonotonicTs) {
        let Some(thread) = entry.thread.take() else {
            return;
        };
        if entry.handle.coordinator.wait_finished(deadline) {
            if thread.join().is_err() {
                tracing::error!(processor_id = %entry.handle.processor_id(), "batch coordinator panicked");
            }
        } else {
            self.detached
                .add(format!("nv-batch-{}", entry.handle.processor_id()), thread);
        }
    }
}

struct BatchEntryReg {
    handle: BatchHandle,
    thread: Option<JoinHandle<()>>,
}

/// A random identifier for this runtime instance: the std hasher's per-process random keys
/// over the process id and the start time, so two runs (a restarted daemon, two nodes, two
/// runtimes in one process) practically never share one.
fn new_run_id() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    static INSTANCES: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u64(INSTANCES.fetch_add(1, Ordering::Relaxed));
    if let Ok(since) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(since.as_nanos());
    }
    h.finish()
}
