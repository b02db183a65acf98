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

use crate::api::{AppState, SnapshotStore};

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Configuration file.
    file: PathBuf,
    /// How long a graceful stop may take before the process exits anyway.
    #[arg(long, default_value_t = 15.0)]
    drain_timeout_secs: f64,
}

pub fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let config = Arc::new(crate::config::load(
        &args.file,
        crate::config::EnvMode::Resolve,
    )?);
    let runtime = crate::assemble::runtime(&config)?;
    let (health, health_thread) =
        nv_metrics::spawn_health_counter(runtime.health_subscribe()).context("metrics thread")?;
    let snapshots = SnapshotStore::default();
    let snapshot_thread = {
        let mut outputs = runtime.output_subscribe();
        let store = snapshots.clone();
        std::thread::Builder::new()
            .name("nv-api-snapshots".into())
            .spawn(move || {
                while let Some(o) = outputs.recv() {
                    store.record(&o);
                }
            })
            .context("snapshot thread")?
    };
    let monitor = Arc::new(
        crate::sink_monitor::SinkMonitor::start(runtime.handle()).context("sink monitor")?,
    );
    let feeds = crate::assemble::add_feeds(&runtime, &config, &monitor)?;
    let otlp = match &config.metrics.otlp_endpoint {
        Some(endpoint) => Some(
            nv_metrics::OtlpExporter::start(
                runtime.handle(),
                health.clone(),
                endpoint,
                Duration::try_from_secs_f64(config.metrics.otlp_interval_secs)
                    .unwrap_or(Duration::from_secs(10)),
                config.metrics.service_name.clone(),
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
        sink_monitor: Arc::clone(&monitor),
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
        let server = if api_enabled {
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .with_context(|| format!("binding {listen}"))?;
            eprintln!(
                "nextvision: {} feeds running; API on http://{}",
                feeds.len(),
                listener.local_addr()?
            );
            let app = crate::api::router(state);
            Some(tokio::spawn(
                async move { axum::serve(listener, app).await },
            ))
        } else {
            eprintln!("nextvision: {} feeds running; API disabled", feeds.len());
            None
        };
        crate::service::ready(&format!("{} feeds running", feeds.len()));
        let keepalive = crate::service::spawn_keepalive(runtime_handle.clone());
        wait_for_signal().await;
        ready.store(false, Ordering::SeqCst);
        if let Some(k) = keepalive {
            k.abort();
        }
        crate::service::stopping("draining feeds");
        eprintln!("nextvision: stopping (send the signal again to exit at once)");
        let stopper = tokio::task::spawn_blocking(move || runtime_handle.shutdown());
        tokio::select! {
            _ = stopper => {}
            () = tokio::time::sleep(drain) => {
                eprintln!("nextvision: drain deadline passed; exiting");
                return Ok::<_, anyhow::Error>(ExitCode::from(3));
            }
            () = wait_for_signal() => {
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
        if health_thread.join().is_err() || snapshot_thread.join().is_err() {
            tracing::warn!("a helper thread panicked");
        }
        eprintln!("nextvision: stopped cleanly");
    }
    Ok(code)
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        // Without signal handlers the daemon can only be stopped by killing it.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}
