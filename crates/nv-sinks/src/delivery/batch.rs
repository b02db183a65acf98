//! The send loop of transports that send a batch and learn its fate before the next one
//! (webhook POSTs, NATS publishes awaited together).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Delivery, Outcome, Ticket};
use crate::backoff::Backoff;
use crate::buffer::Attributed;
use crate::error::SinkError;

/// What one send of a batch came to.
#[derive(Debug)]
pub(crate) enum Attempt {
    Delivered,
    /// The first `delivered` records arrived; the rest may be sent again.
    Retry {
        delivered: usize,
        why: String,
    },
    /// The first `delivered` records arrived; the rest are given up (sending them again
    /// would not help, or could duplicate them).
    Reject {
        delivered: usize,
        why: String,
    },
}

/// A transport that sends whole batches.
pub(crate) trait BatchTransport: Send + 'static {
    type Record: Attributed + Send + Sync + 'static;
    /// Sends `batch` (oldest first) and waits for its outcome.
    fn send(&mut self, batch: &[Arc<Self::Record>]) -> Attempt;
    /// Whether `record` may still be sent, asked before every attempt (a publish gate,
    /// such as a cluster lease that must still be held); a refused record is counted as
    /// failed and never sent.
    fn admit(&self, _record: &Self::Record) -> bool {
        true
    }
}

/// How a batch driver forms batches and retries them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BatchPolicy {
    pub max_records: usize,
    /// How long a batch waits to fill up (zero: send what is there).
    pub max_delay: Duration,
    /// Re-sends of one batch before it is given up; `None`: until shutdown.
    pub max_retries: Option<u32>,
    pub backoff: Backoff,
}

/// Runs `transport` on a thread named `name` until the core closes.
pub(crate) fn spawn<T: BatchTransport>(
    name: &str,
    delivery: Delivery<T::Record>,
    policy: BatchPolicy,
    transport: T,
) -> Result<JoinHandle<()>, SinkError> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || run(&delivery, policy, transport))
        .map_err(|source| SinkError::Spawn {
            what: format!("{name} thread"),
            source,
        })
}

/// Takes batches and sends each until it is settled: a retryable failure keeps the rest
/// of the batch in flight (where the buffer bound cannot evict it) and sends it again
/// after a backoff. Records left in flight at shutdown are counted by `Delivery::close`.
pub(crate) fn run<T: BatchTransport>(
    delivery: &Delivery<T::Record>,
    mut policy: BatchPolicy,
    mut transport: T,
) {
    let kind = delivery.inner.kind;
    while let Some(batch) = delivery.next_batch(policy.max_records, policy.max_delay) {
        let (mut tickets, mut records): (Vec<Ticket>, Vec<_>) = batch.into_iter().unzip();
        let mut retries = 0u32;
        loop {
            let (kept, refused): (Vec<_>, Vec<_>) = tickets
                .iter()
                .copied()
                .zip(records.iter().cloned())
                .partition(|(_, r)| transport.admit(r));
            if !refused.is_empty() {
                let refused: Vec<Ticket> = refused.into_iter().map(|(t, _)| t).collect();
                tracing::warn!(
                    sink = kind,
                    records = refused.len(),
                    "records withheld by the sink's publish gate"
                );
                delivery.settle(&refused, Outcome::Failed);
                (tickets, records) = kept.into_iter().unzip();
                if tickets.is_empty() {
                    break;
                }
            }
            let (delivered, why, retry) = match transport.send(&records) {
                Attempt::Delivered => {
                    delivery.settle(&tickets, Outcome::Delivered);
                    policy.backoff.reset();
                    break;
                }
                Attempt::Retry { delivered, why } => (delivered, why, true),
                Attempt::Reject { delivered, why } => (delivered, why, false),
            };
            let delivered = delivered.min(tickets.len());
            delivery.settle(&tickets[..delivered], Outcome::Delivered);
            tickets.drain(..delivered);
            records.drain(..delivered);
            let records_left = tickets.len();
            if !retry {
                tracing::warn!(sink = kind, records = records_left, %why, "sink endpoint rejected records; not retried");
                delivery.settle(&tickets, Outcome::Failed);
                break;
            }
            if policy.max_retries.is_some_and(|max| retries >= max) {
                tracing::warn!(sink = kind, records = records_left, %why, retries, "sink gave records up after retries");
                delivery.settle(&tickets, Outcome::Failed);
                break;
            }
            let delay = policy.backoff.next_delay();
            tracing::debug!(sink = kind, %why, delay_ms = delay.as_millis(), "sink send failed; retrying");
            if !delivery.pause(delay) {
                return;
            }
            retries += 1;
            delivery.count_retry();
        }
    }
}
