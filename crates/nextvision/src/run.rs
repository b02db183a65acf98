//! `nextvision run FILE`: the daemon.
//!
//! Lifecycle: load and validate the config, start the runtime and feeds, serve the API,
//! tell systemd we are ready. The first SIGINT/SIGTERM drains gracefully within
//! `--drain-timeout-secs`; a second one exits at once.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::api::{AppState, SnapshotStore};

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Configuration file.
    file: PathBuf,
    /// How long a graceful stop may take before the process exits anyway.
    #[arg(long, default_value_t = 15.0)]
    drain_timeout_secs: f64,
    /// Keep running after every feed ended. By default a configuration whose feeds are
    /// all finite (files without `loop`) exits once they have all ended.
    #[arg(long)]
    keep_running: bool,
}

/// Blocks until every feed has ended (woken by health events, not polling).
fn wait_all_ended(feeds: &[nv_runtime::FeedHandle], mut sub: nv_runtime::HealthSubscription) {
    loop {
        if feeds.iter().all(|f| !f.is_alive()) {
            return;
        }
        if let Err(nv_io::broadcast::RecvError::Closed) = sub.recv_timeout(Duration::from_secs(1)) {
            return;
        }
    }
}

pub fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let config = Arc::new(crate::config::load(
        &args.file,
        crate::config::EnvMode::Resolve,
    )?);
    let runtime = crate::assemble::runtime(&config)?;
    // Subscribed before any feed exists, so the history holds every feed's first events.
    let events =
        crate::api::events::EventHub::new(config.api.event_history, config.api.max_event_clients);
    let events_thread = events
        .spawn_publisher(runtime.health_subscribe())
        .context("event thread")?;
    let (health, health_thread) =
        nv_metrics::spawn_health_counter(runtime.health_subscribe()).context("metrics thread")?;
    let snapshots = SnapshotStore::default();
    let event_snapshots = crate::api::event_snapshots::EventSnapshots::new(
        config.api.event_snapshots,
        config.api.event_snapshot_bytes,
    );
    // Event pictures are rendered on their own thread, fed through a short bounded queue:
    // a burst of events never delays the live snapshots, and at most a few frames wait
    // (frames may belong to a decoder's small buffer pool). A full queue skips the
    // picture; the event record itself is unaffected.
    let (event_frames, event_frames_rx) =
        std::sync::mpsc::sync_channel::<nv_runtime::SharedOutput>(4);
    let event_thread = {
        let store = snapshots.clone();
        let events = Arc::clone(&event_snapshots);
        std::thread::Builder::new()
            .name("nv-api-event-snaps".into())
            .spawn(move || {
                while let Ok(o) = event_frames_rx.recv() {
                    let ids: Vec<String> = o
                        .events
                        .iter()
                        .enumerate()
                        .map(|(n, e)| nv_sinks::EventRecord::from_event(&o, n, e).event_id)
                        .collect();
                    if let Err(why) = store.capture_event(&events, &ids, &o) {
                        tracing::debug!("event snapshot: {why}");
                    }
                }
            })
            .context("event snapshot thread")?
    };
    let event_log = crate::api::event_list::EventLog::new(
        config.api.recent_events,
        crate::api::event_list::CLIENT_BUFFER,
        config.api.max_event_stream_clients,
    );
    let snapshot_thread = {
        let mut outputs = runtime.output_subscribe();
        let store = snapshots.clone();
        let event_log = Arc::clone(&event_log);
        std::thread::Builder::new()
            .name("nv-api-snapshots".into())
            .spawn(move || {
                while let Some(o) = outputs.recv() {
                    store.record(&o);
                    event_log.publish_output(&o);
                    // The engine carries the frame of every output with events.
                    if o.frame.is_some() && !o.events.is_empty() {
                        let _skipped_when_full = event_frames.try_send(o);
                    }
                }
            })
            .context("snapshot thread")?
    };
    let sinks = Arc::new(crate::sinks::SinkSet::new(&config));
    // Before any feed exists, so health sinks see every feed's first events.
    sinks.build_health_sinks()?;
    let health_sinks_thread =
        crate::health_sinks::spawn(runtime.health_subscribe(), Arc::clone(&sinks))
            .context("health sink thread")?;
    let monitor = crate::sink_monitor::SinkMonitor::start(runtime.handle(), Arc::clone(&sinks))
        .context("sink monitor")?;
    // Subscribed before the feeds start, so no feed can end unseen.
    let ended_sub = runtime.health_subscribe();
    let zone_editors = Arc::new(crate::zone_edit::ZoneEditors::default());
    // In cluster mode the fleet's bucket says which feeds run here; otherwise the file.
    let (feeds, cluster) = match &config.cluster {
        Some(cl) => {
            let agent = crate::cluster::Agent::start(
                &args.file,
                Arc::clone(&config),
                cl,
                runtime.handle(),
                Arc::clone(&sinks),
                crate::cluster::ApiViews {
                    zone_editors: Arc::clone(&zone_editors),
                    snapshots: snapshots.clone(),
                },
            )?;
            (Vec::new(), Some(agent))
        }
        None => (
            crate::assemble::add_feeds(&runtime, &config, &sinks, &zone_editors)?,
            None,
        ),
    };
    // The zones and lines drawn on each feed's snapshots (the cluster agent sets them for
    // the feeds it starts).
    for feed in &feeds {
        if let Some(spec) = config.feeds.iter().find(|f| f.section.name == feed.name()) {
            snapshots.set_overlay(
                feed.id(),
                &spec.section.name,
                crate::api::overlay_of(&spec.stages),
            );
        }
    }
    let exit_when_done = !args.keep_running
        && cluster.is_none()
        && !config.feeds.is_empty()
        && config.feeds.iter().all(|f| f.source.ends_at_eos());
    let finite_feeds: Vec<nv_runtime::FeedHandle> = feeds.clone();
    let otlp = match &config.metrics.otlp_endpoint {
        Some(endpoint) => Some(
            nv_metrics::OtlpExporter::start(
                runtime.handle(),
                health.clone(),
                endpoint,
                Duration::try_from_secs_f64(config.metrics.otlp_interval_secs)
                    .unwrap_or(Duration::from_secs(10)),
                config.metrics.service_name.clone(),
                Some(crate::build_info()),
                runtime.clock().clone(),
            )
            .context("OTLP exporter")?,
        ),
        None => None,
    };
    let ready = Arc::new(AtomicBool::new(true));
    let state = AppState {
        runtime: runtime.handle(),
        config: Arc::clone(&config),
        health,
        snapshots,
        ready: Arc::clone(&ready),
        sinks: Arc::clone(&sinks),
        add_lock: Arc::default(),
        events,
        streams: crate::api::StreamClients::new(config.api.max_stream_clients),
        event_snapshots,
        event_log,
        zone_editors,
        cluster: cluster.as_ref().map(crate::cluster::Agent::store),
        cluster_node: cluster.as_ref().map(crate::cluster::Agent::counters),
    };
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("nv-api")
        .enable_all()
        .build()
        .context("async runtime")?;
    let listen = config.api.listen.clone();
    let api_enabled = config.api.enabled;
    let drain =
        Duration::try_from_secs_f64(args.drain_timeout_secs).unwrap_or(Duration::from_secs(15));
    let runtime_handle = runtime.handle();
    let code = tokio_rt.block_on(async move {
        let mut signals = Signals::install();
        let (server, api_line) = if api_enabled {
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .with_context(|| format!("binding {listen}"))?;
            let line = format!(
                "{} feeds running; API on http://{}",
                feeds.len(),
                listener.local_addr()?
            );
            let app = crate::api::router(state);
            let server = tokio::spawn(async move { axum::serve(listener, app).await });
            (Some(server), line)
        } else {
            (None, format!("{} feeds running; API disabled", feeds.len()))
        };
        // Also the service manager's first STATUS= line (the bound port included).
        eprintln!("nextvision: {api_line}");
        crate::service::ready(&api_line);
        let keepalive = crate::service::spawn_keepalive(runtime_handle.clone());
        if exit_when_done {
            let waiter = tokio::task::spawn_blocking(move || wait_all_ended(&finite_feeds, ended_sub));
            tokio::select! {
                () = signals.recv() => {}
                _ = waiter => {
                    eprintln!("nextvision: every feed has ended (finite sources only; --keep-running keeps the daemon up)");
                }
            }
        } else {
            drop(ended_sub);
            signals.recv().await;
        }
        ready.store(false, Ordering::SeqCst);
        if let Some(k) = keepalive {
            k.abort();
        }
        crate::service::stopping("draining feeds");
        eprintln!("nextvision: stopping (send the signal again to exit at once)");
        let stopper = tokio::task::spawn_blocking(move || {
            // Hand the feeds over first: stop them here, then release their leases.
            if let Some(agent) = cluster {
                agent.drain();
            }
            runtime_handle.shutdown();
        });
        tokio::select! {
            _ = stopper => {}
            () = tokio::time::sleep(drain) => {
                eprintln!("nextvision: drain deadline passed; exiting");
                return Ok::<_, anyhow::Error>(ExitCode::from(3));
            }
            () = signals.recv() => {
                eprintln!("nextvision: second signal; exiting now");
                return Ok(ExitCode::from(130));
            }
        }
        if let Some(s) = server {
            s.abort();
        }
        Ok(ExitCode::SUCCESS)
    })?;
    if let Some(o) = otlp {
        o.stop();
    }
    if code == ExitCode::SUCCESS {
        drop(runtime);
        // The API's state holds the sinks too: end its tasks, then let the sinks drain
        // and close (the last feed is gone, so nothing writes to them any more).
        drop(tokio_rt);
        drop(monitor);
        // The runtime closed its health stream: the thread delivers what it holds and ends.
        let health_sinks_ok = health_sinks_thread.join().is_ok();
        drop(sinks);
        if !health_sinks_ok
            || health_thread.join().is_err()
            || snapshot_thread.join().is_err()
            || event_thread.join().is_err()
            || events_thread.join().is_err()
        {
            tracing::warn!("a helper thread panicked");
        }
        eprintln!("nextvision: stopped cleanly");
    }
    Ok(code)
}

/// The SIGINT/SIGTERM handlers, installed when made. Made before the daemon says it is
/// ready: a handler registered only when the first wait is polled leaves a window in which
/// a supervisor's (or a test's) SIGTERM still has its default action and kills the process.
pub(crate) struct Signals(Option<(Signal, Signal)>);

impl Signals {
    /// Must run inside a Tokio runtime with its I/O driver (the signal streams use it).
    pub(crate) fn install() -> Self {
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(int), Ok(term)) => Self(Some((int, term))),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "no signal handler: only killing the process stops it");
                Self(None)
            }
        }
    }

    /// The next SIGINT or SIGTERM (never, without handlers).
    pub(crate) async fn recv(&mut self) {
        let Some((int, term)) = &mut self.0 else {
            std::future::pending::<()>().await;
            return;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    }
}
