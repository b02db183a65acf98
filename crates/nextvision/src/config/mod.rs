//! The daemon's configuration file: one TOML document declaring the runtime, the API,
//! sinks and feeds. Loading validates the whole file and reports every problem with its
//! line, offline (no camera is contacted).

mod cluster;
mod env;
mod locate;
mod schema;
mod source;

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

pub use cluster::ClusterSection;
pub(crate) use locate::Seg;
pub(crate) use schema::{check_feed, FeedContext};
pub use schema::{Config, FeedSpec, RestartOn, SchedulerName, SinkSection};
pub use source::parse_source;

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// One problem in a configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line of the offending key (or value, or section header).
    pub line: Option<usize>,
    /// 1-based column, in characters.
    pub column: Option<usize>,
    /// Where in the document (`feeds[door].backpressure`).
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{l}:{c}: {}: {}", self.path, self.message),
            (Some(l), None) => write!(f, "{l}: {}: {}", self.path, self.message),
            _ => write!(f, "{}: {}", self.path, self.message),
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
            // `file:line:column: path: message`, the form editors and CI logs link.
            let sep = if p.line.is_some() { ":" } else { ": " };
            writeln!(f, "{}{sep}{p}", self.file.display())?;
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

/// Collects problems while checking one document (or one API request: no positions).
pub(crate) struct Checker<'a> {
    text: &'a str,
    doc: Option<&'a DeTable<'a>>,
    lines: locate::Lines,
    pub env: EnvMode,
    pub problems: Vec<Problem>,
}

impl<'a> Checker<'a> {
    pub fn for_document(text: &'a str, doc: &'a DeTable<'a>, env: EnvMode) -> Self {
        Self {
            text,
            doc: Some(doc),
            lines: locate::Lines::new(text),
            env,
            problems: Vec::new(),
        }
    }

    /// For input that is not a file (an API request): problems carry paths, no positions.
    pub fn detached() -> Checker<'static> {
        Checker {
            text: "",
            doc: None,
            lines: locate::Lines::default(),
            env: EnvMode::Resolve,
            problems: Vec::new(),
        }
    }

    /// True for a value that still holds a `${VAR}` reference (offline validation):
    /// checks of its content are skipped.
    pub fn unresolved(&self, value: &str) -> bool {
        self.env == EnvMode::Ignore && value.contains("${")
    }

    /// Records a problem at a span. Messages pass the credential redactor: serde errors
    /// quote the offending value, which may be a URL with a password.
    pub fn push_span(
        &mut self,
        span: Option<Range<usize>>,
        path: impl Into<String>,
        message: impl AsRef<str>,
    ) {
        let (line, column) = match (self.doc, span) {
            (Some(_), Some(s)) => {
                let (l, c) = self.lines.position(self.text, s.start);
                (Some(l), Some(c))
            }
            _ => (None, None),
        };
        let message = nv_core::security::redact_urls_in_string(message.as_ref());
        let message = message
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        self.problems.push(Problem {
            line,
            column,
            path: nv_core::security::redact_urls_in_string(&path.into()),
            message,
        });
    }

    /// Records a problem at the key `loc` (or the deepest part of it that exists).
    pub fn push_at(&mut self, loc: &[Seg], path: impl Into<String>, message: impl AsRef<str>) {
        let span = self.doc.and_then(|d| locate::span_of(d, loc));
        self.push_span(span, path, message);
    }

    /// Deserialises one table, reporting every bad key (not just the first). Returns the
    /// value unless a required key was bad, and the keys that were dropped as bad.
    pub fn typed<T: DeserializeOwned>(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        loc: &[Seg],
        path: &str,
    ) -> (Option<T>, Vec<String>) {
        let (v, problems, removed) = locate::typed_all::<T>(value);
        for p in problems {
            let shown = locate::display_path(path, &p.path);
            match p.span {
                Some(span) => self.push_span(Some(span), shown, p.message),
                None => {
                    let mut at = loc.to_vec();
                    at.extend(p.path);
                    self.push_at(&at, shown, p.message);
                }
            }
        }
        (v, removed)
    }
}

/// Largest configuration file read (a 100,000-feed file is about 10 MiB).
pub const MAX_CONFIG_BYTES: u64 = 64 * 1024 * 1024;

/// Reads, interpolates and validates a configuration file.
pub fn load(path: &Path, env: EnvMode) -> Result<Config, Problems> {
    let fail = |message: String| Problems {
        file: path.to_path_buf(),
        problems: vec![Problem {
            line: None,
            column: None,
            path: "file".into(),
            message,
        }],
    };
    let size = std::fs::metadata(path)
        .map_err(|e| fail(format!("cannot read: {e}")))?
        .len();
    if size > MAX_CONFIG_BYTES {
        return Err(fail(format!(
            "is {size} bytes; a configuration file must be at most {MAX_CONFIG_BYTES} bytes"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    parse(&text, env).map_err(|problems| Problems {
        file: path.to_path_buf(),
        problems,
    })
}

/// Parses and validates configuration text.
pub fn parse(text: &str, env: EnvMode) -> Result<Config, Vec<Problem>> {
    schema::parse(text, env)
}
