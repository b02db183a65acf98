//! Which records a sink writes: frame records (one per output), event records (one per
//! event), or both. TOML: `records = ["frames"]` (the default), `["events"]`,
//! `["frames", "events"]`.

use nv_io::OutputEnvelope;
use serde::Deserialize;

use crate::event::EventRecord;
use crate::schema::OutputRecord;
use crate::stats::{Fate, SinkStats};

/// The kind of one encoded record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    Frame,
    Event,
}

/// The record kinds a sink writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<String>")]
pub struct Records {
    pub frames: bool,
    pub events: bool,
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
    };
    pub const EVENTS: Self = Self {
        frames: false,
        events: true,
    };
}

impl TryFrom<Vec<String>> for Records {
    type Error = String;
    fn try_from(names: Vec<String>) -> Result<Self, String> {
        let mut r = Self {
            frames: false,
            events: false,
        };
        for n in &names {
            match n.as_str() {
                "frames" => r.frames = true,
                "events" => r.events = true,
                "health" => {
                    return Err("records: `health` records are not delivered to sinks yet (they are served by the API's /api/v1/events stream); use `frames` or `events`".into())
                }
                other => {
                    return Err(format!(
                        "records: unknown record kind `{}` (known: frames, events)",
                        other.escape_debug()
                    ))
                }
            }
        }
        if !r.frames && !r.events {
            return Err("records: name at least one of frames, events".into());
        }
        Ok(r)
    }
}

/// One encoded record of an output.
#[derive(Debug)]
pub(crate) struct Encoded {
    pub kind: RecordKind,
    /// The record's idempotency key (a frame's key, an event's id).
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
                    key: event.event_id,
                    json,
                });
            }
        }
    }
    out
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
        assert!(t.records.frames && t.records.events);
        for (bad, says) in [
            ("[\"health\"]", "not delivered to sinks yet"),
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
