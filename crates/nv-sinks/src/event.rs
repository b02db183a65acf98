//! Events as records: the versioned JSON form of a [`PerceptionEvent`].
//!
//! An event record is self-contained (feed, frame, timestamps, the object), so it reads
//! the same inside a frame record's `events` array and on its own (an events-only sink,
//! the MQTT events topic, the API). JSON Schema: `schema/event-v1.schema.json`, also
//! `$defs/event` of `schema/output-v1.schema.json`.

use nv_io::OutputEnvelope;
use nv_perception::{EventKind, PerceptionEvent};
use serde::{Deserialize, Serialize};

use crate::error::SinkError;
use crate::schema::{bbox, finite32, idempotency_key, micros, BBoxRecord, SCHEMA_VERSION};

/// The JSON Schema (draft 2020-12) of an event record, version 1.
pub const EVENT_SCHEMA_V1: &str = include_str!("../schema/event-v1.schema.json");

/// One event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub schema_version: u32,
    /// Always `"event"`.
    pub record: String,
    /// `"{run}:{feed}:{epoch}:{session}:{seq}:{n}"`: the frame's idempotency key and the
    /// event's index within the frame. Stable: the same event always has the same id, so
    /// it is both the event's id (snapshots are kept under it) and its idempotency key.
    pub event_id: String,
    /// Same value as `event_id` (the name every record kind uses for deduplication).
    pub idempotency_key: String,
    /// `zone_enter`, `zone_exit`, `zone_dwell`, `line_crossed`, `object_appeared`,
    /// `object_lost`, `camera_motion` (or a kind a newer runtime added).
    pub kind: String,
    pub feed_id: u64,
    /// The feed's name; `null` for an output of an unnamed feed.
    pub feed: Option<String>,
    pub frame_seq: u64,
    pub view_epoch: u64,
    pub session: u32,
    /// Media timestamp of the frame the event happened at.
    pub pts_nanos: u64,
    /// Wall-clock capture time of that frame (Unix epoch); `null` when unknown.
    pub wall_micros: Option<u64>,
    /// The object's track; `null` for events about the whole picture.
    pub track_id: Option<u64>,
    pub class_id: Option<u32>,
    /// The class's name, when the feed's stages name it (1.3); `null` otherwise.
    #[serde(default)]
    pub class: Option<String>,
    pub confidence: Option<f32>,
    /// Where the object was (normalised, current view).
    pub bbox: Option<BBoxRecord>,
    /// Zone of `zone_*` events.
    pub zone: Option<String>,
    /// Line of `line_crossed`.
    pub line: Option<String>,
    /// `left_to_right` / `right_to_left` for `line_crossed`.
    pub direction: Option<String>,
    /// Time inside the zone for `zone_exit` and `zone_dwell`.
    pub dwell_millis: Option<u64>,
    /// New state for `camera_motion`: `none`, `moving`, `pan`, `shake`, `exposure_jump`.
    pub motion: Option<String>,
    /// The cluster lease's fencing token (added in 1.3); absent outside a cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence: Option<u64>,
}

impl EventRecord {
    /// The record of the `index`-th event of `output`.
    pub fn from_event(output: &OutputEnvelope, index: usize, e: &PerceptionEvent) -> Self {
        let p = &output.provenance;
        let feed = output.feed_id.as_u64();
        let epoch = p.view.epoch.as_u64();
        let id = format!("{}:{index}", idempotency_key(output));
        let (mut zone, mut line, mut direction, mut dwell, mut motion) =
            (None, None, None, None, None);
        match &e.kind {
            EventKind::ZoneEnter { zone: z } => zone = Some(z.to_string()),
            EventKind::ZoneExit { zone: z, dwell: d }
            | EventKind::ZoneDwell { zone: z, dwell: d } => {
                zone = Some(z.to_string());
                dwell = Some(micros(*d) / 1000);
            }
            EventKind::LineCrossed {
                line: l,
                direction: d,
            } => {
                line = Some(l.to_string());
                direction = Some(d.as_str().to_owned());
            }
            EventKind::CameraMotion { motion: m } => motion = Some(m.to_string()),
            _ => {}
        }
        Self {
            schema_version: SCHEMA_VERSION,
            record: "event".to_owned(),
            idempotency_key: id.clone(),
            event_id: id,
            kind: e.kind.as_str().to_owned(),
            feed_id: feed,
            feed: output.feed_name.as_deref().map(str::to_owned),
            frame_seq: output.frame_seq,
            view_epoch: epoch,
            session: p.session,
            pts_nanos: e.ts.as_nanos(),
            wall_micros: match output.wall_ts.as_micros() {
                0 => None,
                us => Some(us),
            },
            track_id: e.object.map(|o| o.track_id.as_u64()),
            class_id: e.object.map(|o| o.class_id),
            class: e
                .object
                .and_then(|o| crate::schema::class_name(output, o.class_id)),
            confidence: e.object.map(|o| finite32(o.confidence)),
            bbox: e.object.map(|o| bbox(&o.bbox)),
            zone,
            line,
            direction,
            dwell_millis: dwell,
            motion,
            fence: output.fence,
        }
    }

    /// Every event of `output`, in order.
    pub fn all(output: &OutputEnvelope) -> Vec<Self> {
        output
            .events
            .iter()
            .enumerate()
            .map(|(i, e)| Self::from_event(output, i, e))
            .collect()
    }

    /// One compact JSON object (no trailing newline).
    pub fn to_json(&self) -> Result<Vec<u8>, SinkError> {
        serde_json::to_vec(self).map_err(SinkError::Encode)
    }
}
