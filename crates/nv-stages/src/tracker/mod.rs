//! Multi-object tracker stage: Kalman box filter, optimal (Hungarian) assignment,
//! ByteTrack-style two-stage association and OC-SORT-style observation-centric recovery.
//!
//! Per frame:
//! 1. every track's Kalman filter predicts one step;
//! 2. confirmed and coasting tracks are matched to *high*-confidence detections on
//!    `1 - IoU(predicted, detection)`;
//! 3. the tracks left over are matched to *low*-confidence detections (ByteTrack: a
//!    partly occluded object often still yields a weak detection, and using it keeps the
//!    track alive instead of coasting it);
//! 4. the tracks still left are matched on their *last observed* box (OC-SORT's
//!    observation-centric recovery: after a few frames of coasting the prediction may have
//!    drifted, while the object usually reappears close to where it was last seen);
//! 5. tentative tracks are matched to the remaining high-confidence detections;
//! 6. unmatched high-confidence detections start tentative tracks.
//!
//! When a track that has been coasting is matched again, its filter is rewound to the
//! state of its last observation and re-updated along a virtual linear trajectory to the
//! new one (OC-SORT's observation-centric re-update), so the velocity it accumulated
//! while coasting with no evidence does not linger.

mod associate;
mod config;

use nv_core::geometry::BBox;
use nv_core::id::{DetectionId, StageId, TrackId};
use nv_core::time::MonotonicTs;
use nv_perception::{
    Detection, DetectionSet, EventKind, EventObject, PerceptionEvent, Stage, StageCapabilities,
    StageCategory, StageContext, StageError, StageOutput, Track, TrackObservation, TrackState,
};
use nv_view::ViewEpoch;

pub use config::{EpochPolicy, TrackerConfig};

use crate::kalman::{BoxKalman, KalmanParams};
use associate::{Associator, Side};

/// Internal state of one track.
#[derive(Clone, Debug)]
struct ActiveTrack {
    id: TrackId,
    class_id: u32,
    state: TrackState,
    filter: BoxKalman,
    /// The filter right after the last real observation: the anchor of the
    /// observation-centric re-update.
    filter_at_obs: BoxKalman,
    last_obs: BBox,
    /// Estimated full (unclipped) width and height of the object: a box cut by a frame
    /// edge only shows part of it, so the size seen away from the edges is kept.
    full_size: [f32; 2],
    confidence: f32,
    hits: u32,
    /// Consecutive frames without a match.
    misses: u32,
    /// Detection matched this frame.
    detection: Option<DetectionId>,
    /// Removed at the end of this frame without being reported (a tentative track
    /// that missed).
    discard: bool,
    /// An `object_appeared` event was emitted (the track was established once).
    announced: bool,
}

impl ActiveTrack {
    fn is_established(&self) -> bool {
        matches!(self.state, TrackState::Confirmed | TrackState::Coasted)
    }

    fn observe(&mut self, det: &Detection, cfg: &TrackerConfig) {
        if self.misses > 0 {
            // Observation-centric re-update: replay the gap along a straight line between
            // the last and the new observation, starting from the last observed state.
            let steps = self.misses + 1;
            let mut f = self.filter_at_obs;
            for k in 1..steps {
                f.predict(1.0);
                f.update(&lerp_box(
                    &self.last_obs,
                    &det.bbox,
                    k as f32 / steps as f32,
                ));
            }
            f.predict(1.0);
            f.update(&det.bbox);
            self.filter = f;
        } else {
            self.filter.update(&det.bbox);
        }
        self.filter_at_obs = self.filter;
        self.last_obs = det.bbox;
        self.full_size = full_size(self.full_size, &det.bbox, cfg.frame_edge_margin);
        self.confidence = det.confidence;
        self.detection = Some(det.id);
        self.hits = self.hits.saturating_add(1);
        self.misses = 0;
        self.state = match self.state {
            TrackState::Tentative if self.hits < cfg.min_hits => TrackState::Tentative,
            _ => TrackState::Confirmed,
        };
    }

    /// No detection this frame.
    fn miss(&mut self, cfg: &TrackerConfig) {
        self.detection = None;
        match self.state {
            TrackState::Tentative => self.discard = true,
            TrackState::Lost => {}
            _ => {
                self.misses = self.misses.saturating_add(1);
                self.filter
                    .damp_size_velocity(f64::from(cfg.coast_size_damping));
                self.bound_coasting_size(cfg);
                let exited = cfg.end_tracks_at_frame_edge
                    && (visible_fraction(&self.extent(cfg.frame_edge_margin))
                        < cfg.exit_visible_fraction
                        || (self.misses >= cfg.edge_exit_misses
                            && self.leaving_frame(cfg.frame_edge_margin)));
                let max_age = cfg
                    .max_age_frames
                    .min(self.hits.saturating_mul(cfg.coast_frames_per_hit));
                self.state = if exited || self.misses > max_age {
                    TrackState::Lost
                } else {
                    TrackState::Coasted
                };
            }
        }
    }

    /// Keeps a coasting box's size near its last observed size (no collapse, no
    /// unbounded growth from a size velocity that nothing corrects any more).
    fn bound_coasting_size(&mut self, cfg: &TrackerConfig) {
        let k = f64::from(cfg.coast_max_scale_change);
        let floor = f64::from(cfg.min_box_side);
        let (w, h) = (
            f64::from(self.last_obs.width()),
            f64::from(self.last_obs.height()),
        );
        self.filter
            .bound_size([(w / k).max(floor), (h / k).max(floor)], [w * k, h * k]);
    }

    /// The predicted box extended to the object's full size on the sides where the last
    /// observation was cut by a frame edge. The observed boxes of an object leaving the
    /// picture are clipped, so their prediction stays inside the frame; the interior
    /// edge of the prediction moves with the object, and the full extent beyond it says
    /// how much of the object is still inside.
    fn extent(&self, margin: f32) -> BBox {
        let p = self.filter.bbox();
        let o = &self.last_obs;
        let [fw, fh] = self.full_size;
        let (w, h) = (fw.max(p.width()), fh.max(p.height()));
        let (mut x_min, mut x_max) = (p.x_min, p.x_max);
        let (mut y_min, mut y_max) = (p.y_min, p.y_max);
        // A box cut on both sides of an axis is wider than the frame: nothing to infer.
        match (o.x_min <= margin, o.x_max >= 1.0 - margin) {
            (true, false) => x_min = x_max - w,
            (false, true) => x_max = x_min + w,
            _ => {}
        }
        match (o.y_min <= margin, o.y_max >= 1.0 - margin) {
            (true, false) => y_min = y_max - h,
            (false, true) => y_max = y_min + h,
            _ => {}
        }
        BBox::new(x_min, y_min, x_max, y_max)
    }

    /// Whether the last observation touches a frame edge (within `margin`) and the box
    /// was moving out through it: then a missing detection means the object has left,
    /// and coasting would only report a box outside the picture.
    fn leaving_frame(&self, margin: f32) -> bool {
        let b = &self.last_obs;
        let [vcx, vcy, vw, vh] = self.filter_at_obs.velocity();
        // Velocity of each edge of the box, per frame.
        let (v_left, v_right) = (vcx - vw / 2.0, vcx + vw / 2.0);
        let (v_top, v_bottom) = (vcy - vh / 2.0, vcy + vh / 2.0);
        (b.x_max >= 1.0 - margin && v_left > 0.0)
            || (b.x_min <= margin && v_right < 0.0)
            || (b.y_max >= 1.0 - margin && v_top > 0.0)
            || (b.y_min <= margin && v_bottom < 0.0)
    }
}

/// Updates the full-size estimate with an observed box: along an axis where the box
/// touches a frame edge it may be cut, so only a larger size is believed; elsewhere the
/// observed size is the object's size.
fn full_size(prev: [f32; 2], b: &BBox, margin: f32) -> [f32; 2] {
    let cut_x = b.x_min <= margin || b.x_max >= 1.0 - margin;
    let cut_y = b.y_min <= margin || b.y_max >= 1.0 - margin;
    [
        if cut_x {
            prev[0].max(b.width())
        } else {
            b.width()
        },
        if cut_y {
            prev[1].max(b.height())
        } else {
            b.height()
        },
    ]
}

/// Fraction of `b`'s area inside the frame.
fn visible_fraction(b: &BBox) -> f32 {
    let area = b.area();
    if area <= 0.0 {
        return 0.0;
    }
    b.clamped().area() / area
}

fn lerp_box(a: &BBox, b: &BBox, t: f32) -> BBox {
    let l = |x: f32, y: f32| x + (y - x) * t;
    BBox::new(
        l(a.x_min, b.x_min),
        l(a.y_min, b.y_min),
        l(a.x_max, b.x_max),
        l(a.y_max, b.y_max),
    )
}

/// A match this close to one prediction is not checked for a merge.
const UNAMBIGUOUS_IOU: f32 = 0.8;

/// Which association pass is running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    High,
    Low,
    Recovery,
    Tentative,
}

/// The tracker stage. Reads `ctx.artifacts.detections`, outputs the authoritative track
/// set (lost tracks are reported once with state `Lost`, then dropped).
#[derive(Debug)]
pub struct Tracker {
    stage_id: StageId,
    config: TrackerConfig,
    tracks: Vec<ActiveTrack>,
    /// Last issued track ID; IDs start at 1 and only grow.
    last_id: u64,
    assoc: Associator,
    // Per-frame scratch, kept to avoid allocating on the hot path.
    match_of_track: Vec<Option<usize>>,
    /// Tracks hidden in a merged detection this frame (they coast).
    grouped: Vec<bool>,
    pred_sorted: Vec<(BBox, usize)>,
    pred_max_w: f32,
    members: Vec<usize>,
    det_used: Vec<bool>,
    track_idx: Vec<usize>,
    track_boxes: Vec<BBox>,
    track_classes: Vec<u32>,
    det_idx: Vec<usize>,
    det_boxes: Vec<BBox>,
    det_classes: Vec<u32>,
    pairs: Vec<(usize, usize)>,
    /// This frame's `object_appeared` / `object_lost` events (see [`Tracker::events`]).
    events: Vec<PerceptionEvent>,
    /// Announced tracks dropped by a reset: reported lost on the next frame.
    dropped: Vec<EventObject>,
}

impl Tracker {
    pub const DEFAULT_ID: StageId = StageId::new("tracker");

    /// A tracker with a validated configuration.
    pub fn new(config: TrackerConfig) -> Result<Self, nv_core::error::ConfigError> {
        config.validate()?;
        Ok(Self {
            stage_id: Self::DEFAULT_ID,
            config,
            tracks: Vec::new(),
            last_id: 0,
            assoc: Associator::default(),
            match_of_track: Vec::new(),
            grouped: Vec::new(),
            pred_sorted: Vec::new(),
            pred_max_w: 0.0,
            members: Vec::new(),
            det_used: Vec::new(),
            track_idx: Vec::new(),
            track_boxes: Vec::new(),
            track_classes: Vec::new(),
            det_idx: Vec::new(),
            det_boxes: Vec::new(),
            det_classes: Vec::new(),
            pairs: Vec::new(),
            events: Vec::new(),
            dropped: Vec::new(),
        })
    }

    /// Renames the stage (several trackers in one pipeline need distinct IDs).
    #[must_use]
    pub fn with_id(mut self, id: StageId) -> Self {
        self.stage_id = id;
        self
    }

    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    /// Tracks currently held, tentative ones included.
    pub fn live_track_count(&self) -> usize {
        self.tracks.len()
    }

    /// Drops every track. IDs are not reused afterwards. Tracks that were announced
    /// (`object_appeared`) are reported lost on the next frame.
    pub fn reset(&mut self) {
        self.dropped.extend(
            self.tracks
                .iter()
                .filter(|t| t.announced && t.state != TrackState::Lost)
                .map(|t| EventObject {
                    track_id: t.id,
                    class_id: t.class_id,
                    confidence: t.confidence,
                    bbox: t.last_obs.clamped(),
                }),
        );
        self.tracks.clear();
    }

    /// The `object_appeared` (first time a track is confirmed) and `object_lost` (an
    /// appeared track ended) events of the last [`update`](Self::update).
    pub fn events(&self) -> &[PerceptionEvent] {
        &self.events
    }

    /// Advances the tracker by one frame. This is what [`Stage::process`] calls; it is
    /// public so that tracking can be driven (and benchmarked) without a pipeline.
    pub fn update(&mut self, ts: MonotonicTs, detections: &DetectionSet) -> Vec<Track> {
        let dets = &detections.detections;
        // Tracks reported as lost last frame are gone now.
        self.tracks.retain(|t| t.state != TrackState::Lost);
        for t in &mut self.tracks {
            t.filter.predict(1.0);
            if t.misses > 0 {
                t.bound_coasting_size(&self.config);
            }
            t.detection = None;
        }
        self.match_of_track.clear();
        self.match_of_track.resize(self.tracks.len(), None);
        self.grouped.clear();
        self.grouped.resize(self.tracks.len(), false);
        self.det_used.clear();
        self.det_used.extend(dets.iter().map(|d| {
            // Unusable detections are marked used so no pass considers them.
            d.confidence < self.config.low_confidence || !finite_box(&d.bbox)
        }));

        self.run_pass(dets, Pass::High);
        self.run_pass(dets, Pass::Low);
        self.run_pass(dets, Pass::Recovery);
        self.run_pass(dets, Pass::Tentative);

        for (t, m) in self.tracks.iter_mut().zip(&self.match_of_track) {
            match m.and_then(|d| dets.get(d)) {
                Some(det) => t.observe(det, &self.config),
                None => t.miss(&self.config),
            }
        }
        self.tracks.retain(|t| !t.discard);

        for (d, det) in dets.iter().enumerate() {
            // Only high-confidence detections start tracks (ByteTrack), whatever
            // new_track_confidence says.
            let strong = det.confidence >= self.config.high_confidence
                && det.confidence >= self.config.new_track_confidence;
            if !self.det_used[d] && strong {
                self.spawn(det);
            }
        }

        self.events.clear();
        for object in self.dropped.drain(..) {
            self.events.push(PerceptionEvent::new(
                ts,
                EventKind::ObjectLost,
                Some(object),
            ));
        }
        for t in &mut self.tracks {
            let kind = match t.state {
                TrackState::Lost if t.announced => EventKind::ObjectLost,
                TrackState::Confirmed | TrackState::Coasted if !t.announced => {
                    t.announced = true;
                    EventKind::ObjectAppeared
                }
                _ => continue,
            };
            let bbox = if t.state == TrackState::Lost {
                t.last_obs
            } else {
                t.filter.bbox()
            };
            let object = EventObject {
                track_id: t.id,
                class_id: t.class_id,
                confidence: t.confidence,
                bbox: bbox.clamped(),
            };
            self.events
                .push(PerceptionEvent::new(ts, kind, Some(object)));
        }

        // Sized up front: the output list is the only allocation of a steady-state frame.
        let mut out = Vec::with_capacity(self.tracks.len());
        out.extend(
            self.tracks
                .iter()
                .filter(|t| self.config.emit_tentative || t.state != TrackState::Tentative)
                .map(|t| {
                    // A lost track is reported where it was last seen, not where its
                    // coasting prediction ended up.
                    let b = if t.state == TrackState::Lost {
                        t.last_obs
                    } else {
                        t.filter.bbox()
                    };
                    let obs =
                        TrackObservation::new(ts, b.clamped(), t.confidence, t.state, t.detection);
                    Track::new(t.id, t.class_id, t.state, obs)
                }),
        );
        out
    }

    fn spawn(&mut self, det: &Detection) {
        self.last_id += 1;
        let filter = BoxKalman::new(&det.bbox, self.config.kalman);
        let state = if self.config.min_hits <= 1 {
            TrackState::Confirmed
        } else {
            TrackState::Tentative
        };
        self.tracks.push(ActiveTrack {
            id: TrackId::new(self.last_id),
            class_id: det.class_id,
            state,
            filter,
            filter_at_obs: filter,
            last_obs: det.bbox,
            full_size: [det.bbox.width(), det.bbox.height()],
            confidence: det.confidence,
            hits: 1,
            misses: 0,
            detection: Some(det.id),
            discard: false,
            announced: false,
        });
    }

    /// One association pass over the tracks and detections not matched so far.
    fn run_pass(&mut self, dets: &[Detection], pass: Pass) {
        let cfg = &self.config;
        let (min_iou, want_high) = match pass {
            Pass::High => (cfg.min_iou_high, true),
            Pass::Low => (cfg.min_iou_low, false),
            Pass::Recovery => (cfg.min_iou_recovery, true),
            Pass::Tentative => (cfg.min_iou_tentative, true),
        };
        self.track_idx.clear();
        self.track_boxes.clear();
        self.track_classes.clear();
        for (i, t) in self.tracks.iter().enumerate() {
            let eligible = match pass {
                Pass::High | Pass::Low => t.is_established(),
                // Only tracks that are actually coasting have a last observation that
                // differs from their prediction.
                Pass::Recovery => t.is_established() && t.misses > 0,
                Pass::Tentative => t.state == TrackState::Tentative,
            };
            if eligible && self.match_of_track[i].is_none() && !self.grouped[i] {
                self.track_idx.push(i);
                self.track_boxes.push(if pass == Pass::Recovery {
                    t.last_obs
                } else {
                    t.filter.bbox()
                });
                self.track_classes.push(t.class_id);
            }
        }
        self.det_idx.clear();
        self.det_boxes.clear();
        self.det_classes.clear();
        for (i, d) in dets.iter().enumerate() {
            let is_high = d.confidence >= cfg.high_confidence;
            if !self.det_used[i] && is_high == want_high {
                self.det_idx.push(i);
                self.det_boxes.push(d.bbox);
                self.det_classes.push(d.class_id);
            }
        }
        self.pairs.clear();
        self.assoc.associate(
            Side {
                boxes: &self.track_boxes,
                classes: &self.track_classes,
            },
            Side {
                boxes: &self.det_boxes,
                classes: &self.det_classes,
            },
            min_iou,
            cfg.class_aware,
            &mut self.pairs,
        );
        for &(lt, ld) in &self.pairs {
            let (t, d) = (self.track_idx[lt], self.det_idx[ld]);
            self.match_of_track[t] = Some(d);
            self.det_used[d] = true;
        }
        if pass == Pass::High && self.config.merge_handling {
            self.resolve_groups(dets);
        }
    }

    /// Turns matches to merged detections into coasting (see
    /// [`TrackerConfig::merge_handling`]).
    fn resolve_groups(&mut self, dets: &[Detection]) {
        let (containment, margin) = (self.config.merge_containment, self.config.merge_margin);
        let mut indexed = false;
        for k in 0..self.pairs.len() {
            let (t, d) = (
                self.track_idx[self.pairs[k].0],
                self.det_idx[self.pairs[k].1],
            );
            let det = dets[d].bbox;
            let pred = self.tracks[t].filter.bbox();
            let single = pred.iou(&det);
            if single >= UNAMBIGUOUS_IOU {
                // A close fit to one prediction: no room for a second object.
                continue;
            }
            if !indexed {
                self.index_predictions();
                indexed = true;
            }
            // Other established tracks mostly inside the detection and not matched to
            // another one.
            self.members.clear();
            let (mut union, mut best_single) = (pred, single);
            let lo = det.x_min - self.pred_max_w;
            let first = self.pred_sorted.partition_point(|(b, _)| b.x_min < lo);
            for &(p, j) in &self.pred_sorted[first..] {
                if p.x_min > det.x_max {
                    break;
                }
                if j == t
                    || self.match_of_track[j].is_some_and(|m| m != d)
                    || p.intersection(&det) < containment * p.area()
                {
                    continue;
                }
                self.members.push(j);
                union = BBox::new(
                    union.x_min.min(p.x_min),
                    union.y_min.min(p.y_min),
                    union.x_max.max(p.x_max),
                    union.y_max.max(p.y_max),
                );
                best_single = best_single.max(p.iou(&det));
            }
            if !self.members.is_empty() && union.iou(&det) > best_single + margin {
                self.members.push(t);
                for &j in &self.members {
                    self.grouped[j] = true;
                    self.match_of_track[j] = None;
                }
            }
        }
    }

    /// Established tracks' predicted boxes sorted by `x_min`, for sweeps.
    fn index_predictions(&mut self) {
        self.pred_sorted.clear();
        self.pred_max_w = 0.0;
        for (i, t) in self.tracks.iter().enumerate() {
            if t.is_established() {
                let b = t.filter.bbox();
                self.pred_max_w = self.pred_max_w.max(b.width());
                self.pred_sorted.push((b, i));
            }
        }
        self.pred_sorted
            .sort_unstable_by(|a, b| a.0.x_min.total_cmp(&b.0.x_min));
    }

    fn re_anchor(&mut self, params: KalmanParams) {
        for t in &mut self.tracks {
            let b = t.filter.bbox();
            t.filter = BoxKalman::new(&b, params);
            t.filter_at_obs = t.filter;
            t.last_obs = b;
            t.misses = 0;
        }
    }
}

fn finite_box(b: &BBox) -> bool {
    b.x_min.is_finite() && b.y_min.is_finite() && b.x_max.is_finite() && b.y_max.is_finite()
}

impl Stage for Tracker {
    fn id(&self) -> StageId {
        self.stage_id
    }

    fn process(&mut self, ctx: &StageContext<'_>) -> Result<StageOutput, StageError> {
        let tracks = self.update(ctx.frame.ts(), &ctx.artifacts.detections);
        let mut out = StageOutput::with_tracks(tracks);
        out.events = std::mem::take(&mut self.events);
        Ok(out)
    }

    fn on_start(&mut self) -> Result<(), StageError> {
        // A new session starts from an empty scene.
        self.reset();
        Ok(())
    }

    fn on_view_epoch_change(&mut self, _new_epoch: ViewEpoch) -> Result<(), StageError> {
        match self.config.epoch_policy {
            EpochPolicy::Reset => self.reset(),
            EpochPolicy::ReAnchor => self.re_anchor(self.config.kalman),
        }
        Ok(())
    }

    fn category(&self) -> StageCategory {
        StageCategory::Association
    }

    fn capabilities(&self) -> Option<StageCapabilities> {
        Some(
            StageCapabilities::new()
                .consumes_detections()
                .produces_tracks(),
        )
    }
}

#[cfg(test)]
mod tests;
