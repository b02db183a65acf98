//! The declared sinks: one instance per `[[sinks]]` entry, shared by every feed that
//! names it (config file and API alike).
//!
//! A sink is built the first time a feed names it, so a declared but unused broker sink
//! opens no connection. The set keeps every instance it built until it is dropped, which
//! the daemon does after the runtime stopped: only then do network sinks drain and
//! disconnect and file sinks close.

use anyhow::Context as _;
use nv_io::{NullSink, OutputSink, SharedOutput, SinkFactory};
use nv_sinks::SharedSink;
use parking_lot::Mutex;

use crate::config::{Config, FeedSpec, SinkSection};
use crate::registry;

/// Every declared sink, built on first use.
#[derive(Debug)]
pub struct SinkSet {
    declared: Vec<SinkSection>,
    built: Mutex<Vec<SharedSink>>,
}

/// Delivers each output to several sinks in turn (on the feed's sink thread).
pub(crate) struct FanOut(pub(crate) Vec<Box<dyn OutputSink>>);

impl OutputSink for FanOut {
    fn emit(&mut self, output: SharedOutput) {
        for s in &mut self.0 {
            s.emit(output.clone());
        }
    }
    fn flush(&mut self) {
        for s in &mut self.0 {
            s.flush();
        }
    }
}

/// One feed's way into its sinks (several sinks: a fan-out over their handles).
fn feed_output(shared: &[SharedSink]) -> Box<dyn OutputSink> {
    match shared {
        [] => Box::new(NullSink),
        [one] => Box::new(one.handle()),
        many => Box::new(FanOut(
            many.iter()
                .map(|s| Box::new(s.handle()) as Box<dyn OutputSink>)
                .collect(),
        )),
    }
}

impl SinkSet {
    pub fn new(config: &Config) -> Self {
        Self {
            declared: config.sinks.clone(),
            built: Mutex::new(Vec::new()),
        }
    }

    /// The instance declared as `name`, built now if no feed used it yet.
    fn get(&self, name: &str) -> anyhow::Result<SharedSink> {
        let mut built = self.built.lock();
        if let Some(s) = built.iter().find(|s| s.name() == name) {
            return Ok(s.clone());
        }
        let decl = self
            .declared
            .iter()
            .find(|s| s.name == name)
            .with_context(|| format!("unknown sink {name}"))?;
        let stats = nv_sinks::SinkStats::new();
        let sink = registry::build_sink(&decl.kind, &decl.params, stats.clone())
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("sink {name}"))?;
        let shared = SharedSink::new(name, sink, stats);
        built.push(shared.clone());
        Ok(shared)
    }

    /// The output sink for a feed and a factory that replaces it if the runtime loses it
    /// (both write into the shared instances the feed names).
    pub fn feed_sink(&self, spec: &FeedSpec) -> anyhow::Result<(Box<dyn OutputSink>, SinkFactory)> {
        let shared = spec
            .section
            .sinks
            .iter()
            .map(|name| self.get(name))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let sink = feed_output(&shared);
        let factory: SinkFactory = Box::new(move || feed_output(&shared));
        Ok((sink, factory))
    }

    /// Keeps `sink` with the declared ones (the sink monitor and the API's statistics
    /// see it), e.g. the cluster's publisher.
    pub fn adopt(&self, sink: SharedSink) {
        self.built.lock().push(sink);
    }

    /// The instances built so far.
    pub fn built(&self) -> Vec<SharedSink> {
        self.built.lock().clone()
    }

    /// Builds now every declared sink whose `records` names `health`, so that a
    /// health-only sink no feed names receives health records too (from the first event).
    pub fn build_health_sinks(&self) -> anyhow::Result<()> {
        let health: Vec<String> = self
            .declared
            .iter()
            .filter(|d| selects_health(&d.params))
            .map(|d| d.name.clone())
            .collect();
        for name in health {
            self.get(&name)?;
        }
        Ok(())
    }

    /// The built instances that take health records.
    pub fn health_sinks(&self) -> Vec<SharedSink> {
        self.built
            .lock()
            .iter()
            .filter(|s| s.selects_health())
            .cloned()
            .collect()
    }
}

/// Whether a declared sink's `records` names `health`.
fn selects_health(params: &toml::Table) -> bool {
    params
        .get("records")
        .and_then(toml::Value::as_array)
        .is_some_and(|kinds| kinds.iter().any(|k| k.as_str() == Some("health")))
}
