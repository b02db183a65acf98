//! The stable, versioned JSON form of an [`OutputEnvelope`]: [`OutputRecord`].
//!
//! Rules (see `SCHEMA.md`): every timestamp and duration is an integer whose field name
//! carries its unit (`pts_nanos`, `wall_micros`, `latency_micros`); enums are
//! `snake_case` strings; version 1 only ever gains optional fields, and a breaking change
//! bumps [`SCHEMA_VERSION`]. Pixels are never inlined: a carried frame is described by
//! its width, height and format only. Typed stage metadata is not serialisable and is left
//! out.

use std::time::Duration;

use nv_core::geometry::BBox;
use nv_io::{OutputEnvelope, StageProvenance, StageResult, ViewProvenance};
use nv_perception::{
    DerivedSignal, Detection, SceneFeature, SceneFeatureValue, SignalValue, Track, TrackState,
};
use nv_view::{ContextValidity, EpochDecision, MotionSource};
use serde::{Deserialize, Serialize};

use crate::error::SinkError;
use crate::event::EventRecord;

/// Version of the record layout; written into every record as `schema_version`.
pub const SCHEMA_VERSION: u32 = 1;

/// One frame's output, as written by every sink.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputRecord {
    pub schema_version: u32,
    /// The feed's name (`null` for an unnamed feed). Added in 1.1.
    #[serde(default)]
    pub feed: Option<String>,
    /// `"{feed}:{epoch}:{session}:{seq}"`: unique per output of a runtime; a consumer
    /// that sees a key twice can drop the second copy.
    pub idempotency_key: String,
    pub feed_id: u64,
    /// Per-feed frame sequence number, monotonic across reconnects and restarts.
    pub frame_seq: u64,
    /// View epoch the output was computed in.
    pub view_epoch: u64,
    /// Restart session of the feed (0 = first).
    pub session: u32,
    /// Media timestamp of the frame.
    pub pts_nanos: u64,
    /// Wall-clock capture time (Unix epoch); `null` when the source gave none.
    pub wall_micros: Option<u64>,
    pub detections: Vec<DetectionRecord>,
    pub tracks: Vec<TrackRecord>,
    pub signals: Vec<SignalRecord>,
    pub scene_features: Vec<SceneFeatureRecord>,
    /// The frame's events, each produced once (added in 1.1; empty from older runtimes).
    #[serde(default)]
    pub events: Vec<EventRecord>,
    /// The cluster lease's fencing token the output was produced under (added in 1.3):
    /// per feed, a later owner always has a larger one. Absent outside a cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence: Option<u64>,
    pub admission: AdmissionRecord,
    /// Description of the frame carried with the output, if any (never the pixels).
    pub frame: Option<FrameRecord>,
    pub provenance: ProvenanceRecord,
}

/// Normalised box: coordinates in [0, 1], origin top-left.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BBoxRecord {
    pub x_min: f32,
    pub y_min: f32,
    pub x_max: f32,
    pub y_max: f32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetectionRecord {
    pub id: u64,
    pub class_id: u32,
    /// The class's name, when the feed's stages name it (1.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    pub confidence: f32,
    pub bbox: BBoxRecord,
    /// Present only when the detector produced one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f32>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrackRecord {
    pub id: u64,
    pub class_id: u32,
    /// The class's name, when the feed's stages name it (1.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// `tentative`, `confirmed`, `coasted`, `lost` (or `unknown` from a newer runtime).
    pub state: String,
    pub observation: TrackObservationRecord,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrackObservationRecord {
    pub pts_nanos: u64,
    pub bbox: BBoxRecord,
    pub confidence: f32,
    pub state: String,
    pub detection_id: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignalRecord {
    pub name: String,
    pub pts_nanos: u64,
    pub value: ValueRecord,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SceneFeatureRecord {
    pub name: String,
    pub pts_nanos: u64,
    pub confidence: Option<f32>,
    pub value: ValueRecord,
}

/// A signal or scene-feature value, tagged by `type`. Non-finite numbers become `null`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ValueRecord {
    Scalar {
        value: Option<f64>,
    },
    Vector {
        values: Vec<Option<f64>>,
    },
    Boolean {
        value: bool,
    },
    Categorical {
        value: String,
    },
    Distribution {
        entries: Vec<DistributionEntry>,
    },
    /// A value kind this schema version does not know (a newer runtime).
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DistributionEntry {
    pub label: String,
    pub probability: Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmissionRecord {
    pub admitted: u32,
    pub rejected: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameRecord {
    pub width: u32,
    pub height: u32,
    /// `RGB`, `BGR`, `RGBA`, `GRAY8`, `NV12`, `I420`.
    pub format: String,
}

/// Where the output came from and how long each step took. `*_nanos` instants are on the
/// runtime clock (nanoseconds since the runtime's clock origin), not media time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProvenanceRecord {
    pub received_nanos: u64,
    pub dequeued_nanos: u64,
    pub completed_nanos: u64,
    pub queue_hold_micros: u64,
    pub pipeline_latency_micros: u64,
    /// Receive to completion: the latency the runtime added.
    pub latency_micros: u64,
    /// Wall-clock age of the frame when processing completed; `null` when unknown.
    pub frame_age_micros: Option<u64>,
    pub frame_included: bool,
    pub stages: Vec<StageRecord>,
    pub view: ViewRecord,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageRecord {
    pub stage_id: String,
    pub started_nanos: u64,
    pub finished_nanos: u64,
    pub latency_micros: u64,
    /// `ok`, `skipped` (or `unknown`).
    pub result: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ViewRecord {
    pub epoch: u64,
    pub version: u64,
    /// `valid`, `degraded`, `invalid`.
    pub validity: String,
    /// Set when `validity` is `degraded`.
    pub degradation_reason: Option<String>,
    pub stability_score: f32,
    /// `telemetry`, `inferred`, `external`, `none`.
    pub motion_source: String,
    /// Confidence of inferred motion; `null` for other sources.
    pub motion_confidence: Option<f32>,
    /// `settled`, `move_start`, `moving`, `move_end`.
    pub transition: String,
    /// The epoch policy's decision; `null` for fixed cameras.
    pub decision: Option<DecisionRecord>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// `continue`, `degrade`, `compensate`, `segment`.
    pub kind: String,
    pub reason: Option<String>,
    /// Row-major 2x3 affine transform `[a, b, tx, c, d, ty]` for `compensate`.
    pub transform: Option<[f64; 6]>,
}

impl OutputRecord {
    /// Converts an output; cheap enough to run once per frame per sink.
    pub fn from_output(output: &OutputEnvelope) -> Self {
        let p = &output.provenance;
        let epoch = p.view.epoch.as_u64();
        let feed = output.feed_id.as_u64();
        Self {
            schema_version: SCHEMA_VERSION,
            feed: output.feed_name.as_deref().map(str::to_owned),
            idempotency_key: idempotency_key(output),
            feed_id: feed,
            frame_seq: output.frame_seq,
            view_epoch: epoch,
            session: p.session,
            pts_nanos: output.ts.as_nanos(),
            wall_micros: match output.wall_ts.as_micros() {
                0 => None,
                us => Some(us),
            },
            detections: output
                .detections
                .iter()
                .map(|d| detection(d, class_name(output, d.class_id)))
                .collect(),
            tracks: output
                .tracks
                .iter()
                .map(|t| track(t, class_name(output, t.class_id)))
                .collect(),
            signals: output.signals.iter().map(signal).collect(),
            scene_features: output.scene_features.iter().map(scene_feature).collect(),
            events: EventRecord::all(output),
            fence: output.fence,
            admission: AdmissionRecord {
                admitted: output.admission.admitted,
                rejected: output.admission.rejected,
            },
            frame: output.frame.as_ref().map(|f| FrameRecord {
                width: f.width(),
                height: f.height(),
                format: f.format().name().to_owned(),
            }),
            provenance: ProvenanceRecord {
                received_nanos: p.received_at.as_nanos(),
                dequeued_nanos: p.dequeued_at.as_nanos(),
                completed_nanos: p.completed_at.as_nanos(),
                queue_hold_micros: micros(p.queue_hold()),
                pipeline_latency_micros: micros(p.pipeline_latency()),
                latency_micros: micros(p.receive_to_complete()),
                frame_age_micros: p.frame_age.map(micros),
                frame_included: p.frame_included,
                stages: p.stages.iter().map(stage).collect(),
                view: view(&p.view),
            },
        }
    }

    /// One compact JSON object (no trailing newline).
    pub fn to_json(&self) -> Result<Vec<u8>, SinkError> {
        serde_json::to_vec(self).map_err(SinkError::Encode)
    }

    /// One JSONL line: compact JSON and a trailing `\n`.
    pub fn to_json_line(&self) -> Result<Vec<u8>, SinkError> {
        let mut v = self.to_json()?;
        v.push(b'\n');
        Ok(v)
    }
}

/// `"{run}:{feed}:{epoch}:{session}:{seq}"`, `run` as 16 hex digits: feed ids and
/// sessions start over in every run, so without the run a restarted daemon (or another
/// cluster node) would repeat keys, and a deduplicating consumer (JetStream's `Nats-Msg-Id`
/// window) would drop its new outputs as copies.
pub fn idempotency_key(output: &OutputEnvelope) -> String {
    let p = &output.provenance;
    format!(
        "{:016x}:{}:{}:{}:{}",
        p.run_id,
        output.feed_id.as_u64(),
        p.view.epoch.as_u64(),
        p.session,
        output.frame_seq
    )
}

pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Finite or 0: geometry and confidences come from validated types, this only keeps a
/// stray NaN from turning into `null` where the schema promises a number.
pub(crate) fn finite32(x: f32) -> f32 {
    if x.is_finite() {
        x
    } else {
        0.0
    }
}

fn opt64(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

pub(crate) fn bbox(b: &BBox) -> BBoxRecord {
    BBoxRecord {
        x_min: finite32(b.x_min),
        y_min: finite32(b.y_min),
        x_max: finite32(b.x_max),
        y_max: finite32(b.y_max),
    }
}

/// The name of class `id` in `output`'s feed, when its stages name it.
pub(crate) fn class_name(output: &OutputEnvelope, id: u32) -> Option<String> {
    output
        .class_names
        .as_deref()
        .and_then(|n| n.get(id))
        .map(str::to_owned)
}

fn detection(d: &Detection, class: Option<String>) -> DetectionRecord {
    DetectionRecord {
        id: d.id.as_u64(),
        class_id: d.class_id,
        class,
        confidence: finite32(d.confidence),
        bbox: bbox(&d.bbox),
        embedding: d
            .embedding
            .as_ref()
            .map(|e| e.iter().copied().map(finite32).collect()),
    }
}

fn track_state(s: TrackState) -> &'static str {
    match s {
        TrackState::Tentative => "tentative",
        TrackState::Confirmed => "confirmed",
        TrackState::Coasted => "coasted",
        TrackState::Lost => "lost",
        _ => "unknown",
    }
}

fn track(t: &Track, class: Option<String>) -> TrackRecord {
    let o = &t.current;
    TrackRecord {
        id: t.id.as_u64(),
        class_id: t.class_id,
        class,
        state: track_state(t.state).to_owned(),
        observation: TrackObservationRecord {
            pts_nanos: o.ts.as_nanos(),
            bbox: bbox(&o.bbox),
            confidence: finite32(o.confidence),
            state: track_state(o.state).to_owned(),
            detection_id: o.detection_id.map(|d| d.as_u64()),
        },
    }
}

fn signal_value(v: &SignalValue) -> ValueRecord {
    match v {
        SignalValue::Scalar(x) => ValueRecord::Scalar { value: opt64(*x) },
        SignalValue::Vector(xs) => ValueRecord::Vector {
            values: xs.iter().copied().map(opt64).collect(),
        },
        SignalValue::Boolean(b) => ValueRecord::Boolean { value: *b },
        SignalValue::Categorical(c) => ValueRecord::Categorical {
            value: c.to_string(),
        },
        _ => ValueRecord::Unknown,
    }
}

fn signal(s: &DerivedSignal) -> SignalRecord {
    SignalRecord {
        name: s.name.to_string(),
        pts_nanos: s.ts.as_nanos(),
        value: signal_value(&s.value),
    }
}

fn scene_feature(f: &SceneFeature) -> SceneFeatureRecord {
    let value = match &f.value {
        SceneFeatureValue::Scalar(x) => ValueRecord::Scalar { value: opt64(*x) },
        SceneFeatureValue::Vector(xs) => ValueRecord::Vector {
            values: xs.iter().copied().map(opt64).collect(),
        },
        SceneFeatureValue::Boolean(b) => ValueRecord::Boolean { value: *b },
        SceneFeatureValue::Categorical(c) => ValueRecord::Categorical {
            value: c.to_string(),
        },
        SceneFeatureValue::Distribution(entries) => ValueRecord::Distribution {
            entries: entries
                .iter()
                .map(|(label, p)| DistributionEntry {
                    label: label.to_string(),
                    probability: opt64(*p),
                })
                .collect(),
        },
        _ => ValueRecord::Unknown,
    };
    SceneFeatureRecord {
        name: f.name.to_string(),
        pts_nanos: f.ts.as_nanos(),
        confidence: f.confidence.map(finite32),
        value,
    }
}

fn stage(s: &StageProvenance) -> StageRecord {
    StageRecord {
        stage_id: s.stage_id.as_str().to_owned(),
        started_nanos: s.started_at.as_nanos(),
        finished_nanos: s.finished_at.as_nanos(),
        latency_micros: micros(s.latency()),
        result: match s.result {
            StageResult::Ok => "ok",
            StageResult::Skipped => "skipped",
            _ => "unknown",
        }
        .to_owned(),
    }
}

fn view(v: &ViewProvenance) -> ViewRecord {
    let (validity, degradation_reason) = match v.validity {
        ContextValidity::Valid => ("valid", None),
        ContextValidity::Degraded { reason } => ("degraded", Some(reason.as_str().to_owned())),
        ContextValidity::Invalid => ("invalid", None),
        _ => ("unknown", None),
    };
    ViewRecord {
        epoch: v.epoch.as_u64(),
        version: v.version.as_u64(),
        validity: validity.to_owned(),
        degradation_reason,
        stability_score: finite32(v.stability_score),
        motion_source: v.motion_source.as_str().to_owned(),
        motion_confidence: match v.motion_source {
            MotionSource::Inferred { confidence } => Some(finite32(confidence)),
            _ => None,
        },
        transition: v.transition.as_str().to_owned(),
        decision: v.decision.as_ref().map(decision),
    }
}

fn decision(d: &EpochDecision) -> DecisionRecord {
    let (reason, transform) = match d {
        EpochDecision::Degrade { reason } => (Some(reason.as_str().to_owned()), None),
        EpochDecision::Compensate { reason, transform } => {
            (Some(reason.as_str().to_owned()), Some(transform.m))
        }
        EpochDecision::Segment { reason } => (Some(reason.as_str().to_owned()), None),
        _ => (None, None),
    };
    DecisionRecord {
        kind: d.as_str().to_owned(),
        reason,
        transform,
    }
}
