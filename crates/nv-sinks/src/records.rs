//! Which records a sink writes: frame records (one per output), event records (one per
//! event), health records (one per health event of the daemon), in any combination. TOML:
//! `records = ["frames"]` (the default), `["events"]`, `["frames", "events", "health"]`.

use nv_core::id::FeedId;
use nv_io::{HealthOutput, OutputEnvelope};
use serde::Deserialize;

use crate::event::EventRecord;
use crate::schema::OutputRecord;
use crate::stats::{Fate, SinkStats};

/// The kind of one encoded record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    Frame,
    Event,
    Health,
}

impl RecordKind {
    /// The `{event}` a topic or subject template expands to for this kind.
    pub(crate) const fn topic_event(self) -> &'static str {
        match self {
            Self::Frame => crate::template::EVENT_OUTPUTS,
            Self::Event => crate::template::EVENT_EVENTS,
            Self::Health => crate::template::EVENT_HEALTH,
        }
    }
}

/// The record kinds a sink writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<String>")]
pub struct Records {
    pub frames: bool,
    pub events: bool,
    /// Health records reach the sink through `OutputSink::emit_health` (the daemon's
    /// health thread), not through `emit`.
    pub health: bool,
}

impl Default for Records {
    fn default() -> Self {
        Self::FRAMES
    }
}

impl Records {
    pub const FRAMES: Self = Self {
        frames: true,
        events: false,
        health: false,
    };
    pub const EVENTS: Self = Self {
        frames: false,
        events: true,
        health: false,
    };
    pub const HEALTH: Self = Self {
        frames: false,
        events: false,
        health: true,
    };
}

impl TryFrom<Vec<String>> for Records {
    type Error = String;
    fn try_from(names: Vec<String>) -> Result<Self, String> {
        let mut r = Self {
            frames: false,
            events: false,
            health: false,
        };
        for n in &names {
            match n.as_str() {
                "frames" => r.frames = true,
                "events" => r.events = true,
                "health" => r.health = true,
                other => {
                    return Err(format!(
                        "records: unknown record kind `{}` (known: frames, events, health)",
                        other.escape_debug()
                    ))
                }
            }
        }
        if !r.frames && !r.events && !r.health {
            return Err("records: name at least one of frames, events, health".into());
        }
        Ok(r)
    }
}

/// One encoded record of an output.
#[derive(Debug)]
pub(crate) struct Encoded {
    pub kind: RecordKind,
    /// The record's idempotency key (event records: the event id).
    pub key: String,
    pub json: Vec<u8>,
}

/// Encodes the records of `output` that `records` selects: the frame record first, then
/// each event. Each is counted as received in `stats`; one that cannot be encoded is
/// logged and counted as failed. `line` adds a trailing newline to each.
pub(crate) fn encode(
    output: &OutputEnvelope,
    records: Records,
    stats: &SinkStats,
    sink: &str,
    line: bool,
) -> Vec<Encoded> {
    let mut out = Vec::new();
    let feed = output.feed_id;
    let finish = |json: Result<Vec<u8>, crate::SinkError>| -> Option<Vec<u8>> {
        stats.count(Fate::Received, feed);
        match json {
            Ok(mut bytes) => {
                if line {
                    bytes.push(b'\n');
                }
                Some(bytes)
            }
            Err(e) => {
                tracing::warn!(error = %e, sink, "record not encoded");
                stats.count(Fate::Failed, feed);
                None
            }
        }
    };
    if records.frames {
        let record = OutputRecord::from_output(output);
        if let Some(json) = finish(record.to_json()) {
            out.push(Encoded {
                kind: RecordKind::Frame,
                key: record.idempotency_key,
                json,
            });
        }
    }
    if records.events {
        for event in EventRecord::all(output) {
            if let Some(json) = finish(event.to_json()) {
                out.push(Encoded {
                    kind: RecordKind::Event,
                    key: event.idempotency_key,
                    json,
                });
            }
        }
    }
    out
}

/// The feed a health record is counted for in the sink's statistics: its feed, or feed 0
/// (no feed has that id) for runtime-wide events.
pub(crate) fn health_feed(health: &HealthOutput) -> FeedId {
    health.feed_id.unwrap_or(FeedId::new(0))
}

/// A health record as one encoded record (counted as received).
pub(crate) fn encode_health(health: &HealthOutput, stats: &SinkStats, line: bool) -> Encoded {
    stats.count(Fate::Received, health_feed(health));
    let mut json = Vec::with_capacity(health.json.len() + 1);
    json.extend_from_slice(&health.json);
    if line {
        json.push(b'\n');
    }
    Encoded {
        kind: RecordKind::Health,
        key: health.key.clone(),
        json,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_names_bad_kinds() {
        #[derive(Deserialize)]
        struct T {
            records: Records,
        }
        let t: T = toml::from_str("records = [\"events\"]").unwrap();
        assert_eq!(t.records, Records::EVENTS);
        let t: T = toml::from_str("records = [\"frames\", \"events\"]").unwrap();
        assert!(t.records.frames && t.records.events && !t.records.health);
        let t: T = toml::from_str("records = [\"health\"]").unwrap();
        assert_eq!(t.records, Records::HEALTH);
        for (bad, says) in [
            ("[\"faces\"]", "unknown record kind `faces`"),
            ("[]", "at least one"),
        ] {
            let err = toml::from_str::<T>(&format!("records = {bad}"))
                .err()
                .unwrap()
                .to_string();
            assert!(err.contains(says), "{err}");
        }
    }
}
