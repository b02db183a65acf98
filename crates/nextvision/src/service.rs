//! Service-manager integration (systemd `Type=notify`): readiness, a one-line status,
//! watchdog keep-alives and the stop notice, all over `NOTIFY_SOCKET` via the `sd-notify`
//! crate. Outside systemd (`NOTIFY_SOCKET` unset) every call is a no-op.
//!
//! The keep-alive proves more than "the process exists": each ping follows a diagnostics
//! snapshot of the runtime taken on a blocking thread, so a runtime whose registry or feed
//! locks are wedged stops pinging and systemd restarts the service after `WatchdogSec`.

use std::time::Duration;

use nv_runtime::{RuntimeDiagnostics, RuntimeHandle};
use sd_notify::NotifyState;

/// How often the status line is refreshed when systemd runs no watchdog.
const STATUS_INTERVAL: Duration = Duration::from_secs(10);

/// Sends `states` to the service manager; a failure is logged, never fatal (a daemon must
/// not die because its supervisor's socket went away).
fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "notifying the service manager failed");
    }
}

/// Start-up finished: feeds are running and the API (if any) is bound.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A graceful stop has begun.
pub fn stopping(status: &str) {
    send(&[NotifyState::Stopping, NotifyState::Status(status)]);
}

/// The keep-alive period: half the watchdog interval systemd asked for (`WATCHDOG_USEC`,
/// honouring `WATCHDOG_PID`), so one late ping never trips it; `None` without a watchdog.
pub fn watchdog_ping_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
        .filter(|d| !d.is_zero())
        .map(|d| d / 2)
}

/// Runs the keep-alive / status loop on the API's tokio runtime until aborted. Returns
/// `None` when not running under a service manager.
pub fn spawn_keepalive(runtime: RuntimeHandle) -> Option<tokio::task::JoinHandle<()>> {
    std::env::var_os("NOTIFY_SOCKET")?;
    let watchdog = watchdog_ping_interval();
    let period = watchdog.unwrap_or(STATUS_INTERVAL);
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let rt = runtime.clone();
            // A wedged runtime never answers: the ping is withheld and systemd acts.
            let Ok(diag) = tokio::task::spawn_blocking(move || rt.diagnostics()).await else {
                continue;
            };
            let line = status_line(&diag);
            if watchdog.is_some() {
                send(&[NotifyState::Watchdog, NotifyState::Status(&line)]);
            } else {
                send(&[NotifyState::Status(&line)]);
            }
        }
    }))
}

/// `"3/4 feeds running, 12840 frames processed, 2 dropped"`.
pub fn status_line(diag: &RuntimeDiagnostics) -> String {
    let alive = diag.feeds.iter().filter(|f| f.alive).count();
    let processed: u64 = diag.feeds.iter().map(|f| f.metrics.frames_processed).sum();
    let dropped: u64 = diag
        .feeds
        .iter()
        .map(|f| {
            nv_core::health::DropReason::ALL
                .iter()
                .map(|r| f.metrics.dropped(*r))
                .sum::<u64>()
        })
        .sum();
    format!(
        "{alive}/{} feeds running, {processed} frames processed, {dropped} dropped",
        diag.feeds.len()
    )
}
