//! JSONL on standard output.

use std::io::Write;

use nv_io::{HealthOutput, OutputSink, SharedOutput};

use crate::records::Records;
use crate::stats::{Fate, SinkStats};

/// Writes one record per line to standard output (locked per record, so lines from
/// several feeds never interleave).
#[derive(Debug, Default)]
pub struct StdoutSink {
    stats: SinkStats,
    records: Records,
}

impl StdoutSink {
    pub fn new(stats: SinkStats) -> Self {
        stats.set_connected(true);
        Self {
            stats,
            records: Records::default(),
        }
    }
    /// Writes the record kinds `records` selects (default: frames).
    #[must_use]
    pub fn with_records(mut self, records: Records) -> Self {
        self.records = records;
        self
    }
    pub fn stats(&self) -> &SinkStats {
        &self.stats
    }
}

impl OutputSink for StdoutSink {
    fn emit(&mut self, output: SharedOutput) {
        let records = crate::records::encode(&output, self.records, &self.stats, "stdout", true);
        if records.is_empty() {
            return;
        }
        let res = {
            let mut out = std::io::stdout().lock();
            records
                .iter()
                .try_for_each(|r| out.write_all(&r.json))
                .and_then(|()| out.flush())
        };
        let fate = match res {
            Ok(()) => Fate::Delivered,
            Err(e) => {
                tracing::warn!(error = %e, "stdout sink: write failed");
                Fate::Failed
            }
        };
        for _ in &records {
            self.stats.count(fate, output.feed_id);
        }
    }

    fn selects_health(&self) -> bool {
        self.records.health
    }

    fn emit_health(&mut self, health: &HealthOutput) {
        if !self.records.health {
            return;
        }
        let feed = crate::records::health_feed(health);
        let record = crate::records::encode_health(health, &self.stats, true);
        let res = {
            let mut out = std::io::stdout().lock();
            out.write_all(&record.json).and_then(|()| out.flush())
        };
        match res {
            Ok(()) => self.stats.count(Fate::Delivered, feed),
            Err(e) => {
                tracing::warn!(error = %e, "stdout sink: write failed");
                self.stats.count(Fate::Failed, feed);
            }
        }
    }
}
