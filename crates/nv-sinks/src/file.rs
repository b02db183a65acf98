//! JSONL file sink: size/age rotation, fsync policy, bounded memory.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nv_core::clock::{SharedClock, SystemClock};
use nv_core::time::MonotonicTs;

use nv_io::{HealthOutput, OutputSink, SharedOutput};

use crate::config::{FileSinkConfig, FsyncPolicy};
use crate::error::SinkError;
use crate::stats::{Fate, SinkStats};

/// Writes one record per line to a file, rotating it by size and/or age. Writes happen on
/// the sink thread; every record is written out (not held in memory) before `emit`
/// returns, so memory use is the write buffer plus one record.
#[derive(Debug)]
pub struct FileSink {
    config: FileSinkConfig,
    stats: SinkStats,
    dir: PathBuf,
    stem: String,
    ext: String,
    writer: Option<BufWriter<File>>,
    bytes: u64,
    opened_at: MonotonicTs,
    clock: SharedClock,
    unsynced_records: u32,
    /// Indices of rotated files present, ascending.
    rotated: Vec<u64>,
}

impl FileSink {
    /// Validates, creates parent directories and opens (appends to) `config.path`.
    pub fn open(config: FileSinkConfig, stats: SinkStats) -> Result<Self, SinkError> {
        Self::open_with_clock(config, stats, SystemClock::shared())
    }

    /// As [`FileSink::open`], measuring file age on `clock` (tests use a manual clock).
    pub fn open_with_clock(
        config: FileSinkConfig,
        stats: SinkStats,
        clock: SharedClock,
    ) -> Result<Self, SinkError> {
        config.validate()?;
        let dir = match config.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&dir)
            .map_err(|e| SinkError::io(format!("could not create {}", dir.display()), e))?;
        let stem = config
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ext = config
            .path
            .extension()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut sink = Self {
            rotated: Vec::new(),
            config,
            stats,
            dir,
            stem,
            ext,
            writer: None,
            bytes: 0,
            opened_at: clock.now(),
            clock,
            unsynced_records: 0,
        };
        sink.rotated = sink
            .scan_rotated()
            .map_err(|e| SinkError::io(format!("could not list {}", sink.dir.display()), e))?;
        sink.open_active().map_err(|e| {
            SinkError::io(format!("could not open {}", sink.config.path.display()), e)
        })?;
        sink.stats.set_connected(true);
        Ok(sink)
    }

    pub fn stats(&self) -> &SinkStats {
        &self.stats
    }

    /// Path a rotated file with this index gets.
    pub fn rotated_path(&self, index: u64) -> PathBuf {
        let name = if self.ext.is_empty() {
            format!("{}.{index:06}", self.stem)
        } else {
            format!("{}.{index:06}.{}", self.stem, self.ext)
        };
        self.dir.join(name)
    }

    fn parse_index(&self, name: &str) -> Option<u64> {
        let rest = name.strip_prefix(&self.stem)?.strip_prefix('.')?;
        let digits = if self.ext.is_empty() {
            rest
        } else {
            rest.strip_suffix(&self.ext)?.strip_suffix('.')?
        };
        if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }

    fn scan_rotated(&self) -> io::Result<Vec<u64>> {
        let mut found = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            if let Some(i) = entry.file_name().to_str().and_then(|n| self.parse_index(n)) {
                found.push(i);
            }
        }
        found.sort_unstable();
        Ok(found)
    }

    fn open_active(&mut self) -> io::Result<()> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.config.path)?;
        self.bytes = file.metadata()?.len();
        let cap = usize::try_from(self.config.buffer_bytes).unwrap_or(64 * 1024);
        self.writer = Some(BufWriter::with_capacity(cap, file));
        self.opened_at = self.clock.now();
        self.unsynced_records = 0;
        Ok(())
    }

    /// Flushes and, unless the policy is `never`, fsyncs the active file.
    fn close_active(&mut self, sync: bool) -> io::Result<()> {
        if let Some(mut w) = self.writer.take() {
            w.flush()?;
            if sync && self.config.fsync != FsyncPolicy::Never {
                w.get_ref().sync_data()?;
            }
        }
        Ok(())
    }

    fn needs_rotation(&self, next_len: u64) -> bool {
        if self.bytes == 0 {
            return false;
        }
        let too_big = self
            .config
            .max_bytes
            .is_some_and(|max| self.bytes.saturating_add(next_len) > max);
        let too_old = self.config.max_age_secs.is_some_and(|secs| {
            self.clock.now().saturating_duration_since(self.opened_at) >= Duration::from_secs(secs)
        });
        too_big || too_old
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.close_active(true)?;
        let index = self.rotated.last().map_or(1, |i| i + 1);
        let target = self.rotated_path(index);
        fs::rename(&self.config.path, &target)?;
        self.rotated.push(index);
        if let Some(max) = self.config.max_files {
            let max = usize::try_from(max).unwrap_or(usize::MAX);
            while self.rotated.len() > max {
                let oldest = self.rotated.remove(0);
                let path = self.rotated_path(oldest);
                if let Err(e) = fs::remove_file(&path) {
                    tracing::warn!(path = %path.display(), error = %e, "could not delete rotated output file");
                }
            }
        }
        sync_dir(&self.dir);
        self.open_active()
    }

    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        let len = u64::try_from(line.len()).unwrap_or(u64::MAX);
        if self.writer.is_some() && self.needs_rotation(len) {
            self.rotate()?;
        }
        if self.writer.is_none() {
            self.open_active()?;
        }
        let Some(w) = self.writer.as_mut() else {
            return Err(io::Error::other("output file not open"));
        };
        w.write_all(line)?;
        w.flush()?;
        self.bytes = self.bytes.saturating_add(len);
        if let FsyncPolicy::EveryRecords(n) = self.config.fsync {
            self.unsynced_records += 1;
            if self.unsynced_records >= n {
                w.get_ref().sync_data()?;
                self.unsynced_records = 0;
            }
        }
        Ok(())
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        if let Err(e) = d.sync_all() {
            tracing::debug!(error = %e, "directory fsync failed");
        }
    }
}

impl OutputSink for FileSink {
    fn emit(&mut self, output: SharedOutput) {
        let records = self.config.records;
        for record in crate::records::encode(&output, records, &self.stats, "file", true) {
            match self.write_line(&record.json) {
                Ok(()) => self.stats.count(Fate::Delivered, output.feed_id),
                Err(e) => {
                    // Drop the writer so the next record reopens the file (disk full, file
                    // removed under us).
                    self.writer = None;
                    self.stats.count(Fate::Failed, output.feed_id);
                    tracing::warn!(path = %self.config.path.display(), error = %e, "file sink: write failed");
                }
            }
        }
    }

    fn selects_health(&self) -> bool {
        self.config.records.health
    }

    fn emit_health(&mut self, health: &HealthOutput) {
        if !self.config.records.health {
            return;
        }
        let feed = crate::records::health_feed(health);
        let record = crate::records::encode_health(health, &self.stats, true);
        match self.write_line(&record.json) {
            Ok(()) => self.stats.count(Fate::Delivered, feed),
            Err(e) => {
                self.writer = None;
                self.stats.count(Fate::Failed, feed);
                tracing::warn!(path = %self.config.path.display(), error = %e, "file sink: write failed");
            }
        }
    }

    fn flush(&mut self) {
        if let Some(w) = self.writer.as_mut() {
            let res = w.flush().and_then(|()| {
                if self.config.fsync == FsyncPolicy::Never {
                    Ok(())
                } else {
                    w.get_ref().sync_data()
                }
            });
            if let Err(e) = res {
                tracing::warn!(path = %self.config.path.display(), error = %e, "file sink: flush failed");
            }
        }
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        if let Err(e) = self.close_active(true) {
            tracing::warn!(path = %self.config.path.display(), error = %e, "file sink: close failed");
        }
    }
}
