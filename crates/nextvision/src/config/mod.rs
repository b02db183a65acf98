//! The daemon's configuration file: one TOML document declaring the runtime, the API,
//! sinks and feeds. Loading validates the whole file and reports every problem with its
//! line, offline (no camera is contacted).

mod env;
mod schema;
mod source;

use std::fmt;
use std::path::{Path, PathBuf};

pub(crate) use schema::check_feed;
pub use schema::{BackpressureKind, Config, FeedSpec, RestartOn, SinkSection};
pub use source::parse_source;

use serde::de::DeserializeOwned;

/// One problem in a configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub line: Option<usize>,
    /// Where in the document (`feeds[door].backpressure`).
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}: {}", self.path, self.message),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

/// Every problem found in one file.
#[derive(Clone, Debug)]
pub struct Problems {
    pub file: PathBuf,
    pub problems: Vec<Problem>,
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.problems {
            writeln!(f, "{}: {p}", self.file.display())?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// Whether `${VAR}` references are resolved from the environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvMode {
    Resolve,
    /// Offline validation: references are checked for syntax only.
    Ignore,
}

/// 1-based line of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Line of the first `key = ...` (or `key_suffix = ...`) in the section that starts at
/// `start` and whose name is `base` (its sub-tables `[base.x]` included). Keys in messages
/// may name the runtime field (`base_delay`) rather than the file key (`base_delay_ms`).
pub(crate) fn key_line(text: &str, start: usize, base: &str, key: &str) -> Option<usize> {
    let start = text[..start.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let mut offset = start;
    for (i, line) in text[start..].split_inclusive('\n').enumerate() {
        let t = line.trim_start();
        if i > 0 && t.starts_with('[') {
            let name = t.trim_start_matches('[').trim_start();
            if !name.starts_with(&format!("{base}.")) {
                return None;
            }
        }
        if let Some(rest) = t.strip_prefix(key) {
            let rest = rest.trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '_');
            if rest.trim_start().starts_with('=') {
                return Some(line_of(text, offset));
            }
        }
        offset += line.len();
    }
    None
}

/// Collects problems while checking one document.
pub(crate) struct Checker<'a> {
    pub text: &'a str,
    pub problems: Vec<Problem>,
}

impl Checker<'_> {
    pub fn push(
        &mut self,
        line: Option<usize>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.problems.push(Problem {
            line,
            path: path.into(),
            message: message.into(),
        });
    }

    /// Deserialises one table, reporting (not returning) a failure.
    pub fn typed<T: DeserializeOwned>(
        &mut self,
        value: toml::Value,
        line: usize,
        path: &str,
    ) -> Option<T> {
        match value.try_into::<T>() {
            Ok(v) => Some(v),
            Err(e) => {
                let msg = e
                    .to_string()
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .collect::<Vec<_>>()
                    .join(" ");
                self.push(Some(line), path, msg);
                None
            }
        }
    }
}

/// Reads, interpolates and validates a configuration file.
pub fn load(path: &Path, env: EnvMode) -> Result<Config, Problems> {
    let text = std::fs::read_to_string(path).map_err(|e| Problems {
        file: path.to_path_buf(),
        problems: vec![Problem {
            line: None,
            path: "file".into(),
            message: format!("cannot read: {e}"),
        }],
    })?;
    parse(&text, env).map_err(|problems| Problems {
        file: path.to_path_buf(),
        problems,
    })
}

/// Parses and validates configuration text.
pub fn parse(text: &str, env: EnvMode) -> Result<Config, Vec<Problem>> {
    schema::parse(text, env)
}
