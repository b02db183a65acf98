//! JSONL on standard output.

use std::io::Write;

use nv_io::{OutputSink, SharedOutput};

use crate::schema::OutputRecord;
use crate::stats::{Fate, SinkStats};

/// Writes one record per line to standard output (locked per record, so lines from
/// several feeds never interleave).
#[derive(Debug, Default)]
pub struct StdoutSink {
    stats: SinkStats,
}

impl StdoutSink {
    pub fn new(stats: SinkStats) -> Self {
        stats.set_connected(true);
        Self { stats }
    }
    pub fn stats(&self) -> &SinkStats {
        &self.stats
    }
}

impl OutputSink for StdoutSink {
    fn emit(&mut self, output: SharedOutput) {
        let Some((_, line)) = OutputRecord::encode_for_sink(&output, &self.stats, "stdout", true)
        else {
            return;
        };
        let res = {
            let mut out = std::io::stdout().lock();
            out.write_all(&line).and_then(|()| out.flush())
        };
        match res {
            Ok(()) => self.stats.count(Fate::Delivered, output.feed_id),
            Err(e) => {
                self.stats.count(Fate::Failed, output.feed_id);
                tracing::warn!(error = %e, "stdout sink: write failed");
            }
        }
    }
}
