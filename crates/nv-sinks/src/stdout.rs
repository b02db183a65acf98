//! JSONL on standard output.

use std::io::Write;

use nv_runtime::{OutputSink, SharedOutput};

use crate::schema::OutputRecord;
use crate::stats::SinkStats;

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
        let res = OutputRecord::from_output(&output)
            .to_json_line()
            .map_err(|e| e.to_string())
            .and_then(|line| {
                let mut out = std::io::stdout().lock();
                out.write_all(&line)
                    .and_then(|()| out.flush())
                    .map_err(|e| e.to_string())
            });
        match res {
            Ok(()) => self.stats.add_delivered(1),
            Err(e) => {
                self.stats.add_failed(1);
                tracing::warn!(error = %e, "stdout sink: write failed");
            }
        }
    }
}
