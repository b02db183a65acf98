//! Health records to the sinks that select them (`records` with `health`).
//!
//! One named thread takes the runtime's health events, encodes each once
//! ([`nv_sinks::health::HealthEncoder`]: numbered, with the feed's name) and hands it to
//! every built sink that selects health records; each of those sinks receives every
//! health event of the daemon, its feeds' and runtime-wide ones. Feeds never wait for
//! this thread: the runtime's health stream is a bounded broadcast, and if this thread
//! falls behind, the events it missed are counted as dropped by every health sink (and
//! logged), never silently lost. Sinks take the records as they take frames: a short
//! write, or a push into their bounded buffer.

use std::sync::Arc;
use std::thread::JoinHandle;

use nv_core::time::WallTs;
use nv_io::broadcast::RecvError;
use nv_runtime::HealthSubscription;
use nv_sinks::health::HealthEncoder;

use crate::sinks::SinkSet;

/// Starts the thread; it ends when the runtime closes its health stream.
pub fn spawn(mut sub: HealthSubscription, sinks: Arc<SinkSet>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("nv-health-sinks".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            let mut encoder = HealthEncoder::new();
            loop {
                match sub.recv() {
                    Ok(event) => {
                        let targets = sinks.health_sinks();
                        if targets.is_empty() {
                            continue;
                        }
                        let record = encoder.encode(&event, WallTs::now());
                        for sink in &targets {
                            sink.emit_health(&record);
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(
                            missed = n,
                            "health records for sinks fell behind the health stream; counted as dropped"
                        );
                        for sink in sinks.health_sinks() {
                            sink.count_missed_health(n);
                        }
                    }
                    Err(RecvError::Closed) => return,
                    Err(RecvError::Timeout) => {}
                }
            }
        })
}
