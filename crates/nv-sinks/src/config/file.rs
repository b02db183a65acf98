//! JSONL file and stdout sink configuration.

use std::path::PathBuf;

use nv_core::error::{ConfigError, ConfigProblem};
use nv_io::OutputSink;
use serde::Deserialize;

use crate::records::Records;

use super::Problems;
use crate::error::SinkError;
use crate::file::FileSink;
use crate::stats::SinkStats;
use crate::stdout::StdoutSink;

/// When the file sink forces written records to disk (`fsync`).
///
/// TOML: `fsync = "never"`, `fsync = "on_rotation"` or `fsync = { every_records = 100 }`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// Leave it to the OS (records are still written out after every record).
    Never,
    /// When a file is closed (rotation, flush at session end, drop).
    #[default]
    OnRotation,
    /// After every N records, and on rotation.
    EveryRecords(u32),
}

/// `type = "file"`: one JSON record per line, rotated by size and/or age.
///
/// The active file is `path`; a rotated file is renamed to `{stem}.{index:06}.{ext}` in
/// the same directory (indices continue after the highest one present). Parent
/// directories are created.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    pub path: PathBuf,
    /// Rotate before a record would make the file larger than this.
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// Rotate when the file was opened at least this long ago (checked per record).
    #[serde(default)]
    pub max_age_secs: Option<u64>,
    /// Keep at most this many rotated files (oldest deleted); unlimited if unset.
    #[serde(default)]
    pub max_files: Option<u32>,
    #[serde(default)]
    pub fsync: FsyncPolicy,
    /// Write buffer; memory use is bounded by this plus one record.
    #[serde(default = "default_buffer_bytes")]
    pub buffer_bytes: u64,
    /// Record kinds written: `["frames"]` (default), `["events"]`, `["health"]`, or several.
    #[serde(default)]
    pub records: Records,
}

fn default_buffer_bytes() -> u64 {
    64 * 1024
}

impl FileSinkConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            max_bytes: None,
            max_age_secs: None,
            max_files: None,
            fsync: FsyncPolicy::default(),
            buffer_bytes: default_buffer_bytes(),
            records: Records::default(),
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Problems::default();
        if self.path.as_os_str().is_empty() {
            p.push(ConfigProblem::missing("path"));
        } else if self.path.file_name().is_none() {
            p.push(ConfigProblem::invalid(
                "path",
                self.path.display(),
                "must name a file",
            ));
        }
        if let Some(b) = self.max_bytes {
            p.at_least("max_bytes", b, 1);
        }
        if let Some(s) = self.max_age_secs {
            p.at_least("max_age_secs", s, 1);
        }
        if let Some(n) = self.max_files {
            p.at_least("max_files", u64::from(n), 1);
        }
        if let FsyncPolicy::EveryRecords(n) = self.fsync {
            p.at_least("fsync.every_records", u64::from(n), 1);
        }
        p.at_least("buffer_bytes", self.buffer_bytes, 1);
        p.not_above(
            "buffer_bytes",
            self.buffer_bytes,
            "the limit",
            64 * 1024 * 1024,
        );
        if let Some(b) = self.max_bytes {
            p.at_most("max_bytes", b, nv_core::limits::MAX_FILE_BYTES);
        }
        if let Some(s) = self.max_age_secs {
            p.at_most("max_age_secs", s, nv_core::limits::MAX_DURATION_SECS as u64);
        }
        if let Some(n) = self.max_files {
            p.at_most("max_files", u64::from(n), nv_core::limits::MAX_FILES);
        }
        p.finish()
    }

    pub fn build(&self) -> Result<Box<dyn OutputSink>, SinkError> {
        self.build_with_stats(SinkStats::new())
    }

    pub fn build_with_stats(&self, stats: SinkStats) -> Result<Box<dyn OutputSink>, SinkError> {
        self.validate()?;
        Ok(Box::new(FileSink::open(self.clone(), stats)?))
    }
}

/// `type = "stdout"`: one JSON record per line on standard output.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutSinkConfig {
    /// Record kinds written: `["frames"]` (default), `["events"]`, `["health"]`, or several.
    #[serde(default)]
    pub records: Records,
}

impl StdoutSinkConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
    pub fn build(&self) -> Result<Box<dyn OutputSink>, SinkError> {
        self.build_with_stats(SinkStats::new())
    }
    pub fn build_with_stats(&self, stats: SinkStats) -> Result<Box<dyn OutputSink>, SinkError> {
        self.validate()?;
        Ok(Box::new(StdoutSink::new(stats).with_records(self.records)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_every_problem() {
        let c: FileSinkConfig = toml::from_str(
            "path = \"/tmp/a.jsonl\"\nmax_bytes = 0\nmax_age_secs = 0\nfsync = { every_records = 0 }\nbuffer_bytes = 0\n",
        )
        .unwrap();
        let err = c.validate().unwrap_err();
        let fields: Vec<&str> = err.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "max_bytes",
                "max_age_secs",
                "fsync.every_records",
                "buffer_bytes"
            ]
        );
        let c: FileSinkConfig = toml::from_str("path = \"o.jsonl\"\nfsync = \"never\"\n").unwrap();
        assert_eq!(c.fsync, FsyncPolicy::Never);
        c.validate().unwrap();
    }
}
