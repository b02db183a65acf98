//! Multi-object tracking metrics: CLEAR-MOT (MOTA, MOTP, FP, FN, ID switches) and the
//! identity metrics (IDF1, IDP, IDR), plus MOTChallenge text I/O.
//!
//! Semantics follow `py-motmetrics` so that scores can be cross-checked on the same
//! files: a ground-truth object and a hypothesis may match when `IoU >= threshold`; each
//! frame first keeps the previous frame's correspondences that are still valid, then
//! matches the rest optimally (most pairs, then least total `1 - IoU`); a switch is a
//! ground-truth object matched to a different hypothesis than at its last match. IDF1
//! uses the optimal one-to-one assignment of ground-truth to hypothesis identities over
//! the whole sequence.

mod motchallenge;
pub mod scenes;

use std::collections::HashMap;

use nv_core::geometry::BBox;

use crate::assign::AssignmentSolver;

pub use motchallenge::{
    format_mot_challenge, parse_mot_challenge, MotRecord, ParseMotError, SequenceLog,
};

/// Final scores of a sequence.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MotSummary {
    pub frames: u64,
    /// Ground-truth boxes over all frames.
    pub num_objects: u64,
    /// Hypothesis boxes over all frames.
    pub num_predictions: u64,
    pub num_unique_objects: u64,
    pub matches: u64,
    pub false_positives: u64,
    /// Ground-truth boxes left unmatched (false negatives).
    pub misses: u64,
    pub id_switches: u64,
    /// `1 - (FN + FP + IDSW) / num_objects`.
    pub mota: f64,
    /// Mean `1 - IoU` over matches (motmetrics' convention: lower is better).
    pub motp: f64,
    pub idtp: u64,
    pub idfp: u64,
    pub idfn: u64,
    pub idf1: f64,
    pub idp: f64,
    pub idr: f64,
}

/// Accumulates frames and computes a [`MotSummary`].
#[derive(Debug)]
pub struct MotEvaluator {
    iou_threshold: f64,
    frames: u64,
    num_objects: u64,
    num_predictions: u64,
    matches: u64,
    false_positives: u64,
    misses: u64,
    id_switches: u64,
    distance_sum: f64,
    /// Ground-truth id -> hypothesis id of its most recent match.
    last_match: HashMap<u64, u64>,
    /// Frames in which each (gt, hyp) pair could match, for IDF1.
    pair_frames: HashMap<(u64, u64), u64>,
    gt_frames: HashMap<u64, u64>,
    hyp_frames: HashMap<u64, u64>,
    solver: AssignmentSolver,
    cost: Vec<f64>,
}

/// `1 - IoU` in double precision, the distance motmetrics thresholds.
fn distance(a: &BBox, b: &BBox) -> f64 {
    let (ax0, ay0, ax1, ay1) = (
        f64::from(a.x_min),
        f64::from(a.y_min),
        f64::from(a.x_max),
        f64::from(a.y_max),
    );
    let (bx0, by0, bx1, by1) = (
        f64::from(b.x_min),
        f64::from(b.y_min),
        f64::from(b.x_max),
        f64::from(b.y_max),
    );
    let iw = (ax1.min(bx1) - ax0.max(bx0)).max(0.0);
    let ih = (ay1.min(by1) - ay0.max(by0)).max(0.0);
    let inter = iw * ih;
    let union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter;
    if union > 0.0 {
        1.0 - inter / union
    } else {
        1.0
    }
}

impl MotEvaluator {
    /// `iou_threshold` is the least IoU of a match (0.5 in the MOTChallenge benchmarks).
    pub fn new(iou_threshold: f32) -> Self {
        Self {
            iou_threshold: f64::from(iou_threshold),
            frames: 0,
            num_objects: 0,
            num_predictions: 0,
            matches: 0,
            false_positives: 0,
            misses: 0,
            id_switches: 0,
            distance_sum: 0.0,
            last_match: HashMap::new(),
            pair_frames: HashMap::new(),
            gt_frames: HashMap::new(),
            hyp_frames: HashMap::new(),
            solver: AssignmentSolver::new(),
            cost: Vec::new(),
        }
    }

    fn max_distance(&self) -> f64 {
        1.0 - self.iou_threshold
    }

    /// Adds one frame: ground truth and hypotheses as `(id, box)`.
    pub fn update(&mut self, gt: &[(u64, BBox)], hyp: &[(u64, BBox)]) {
        self.frames += 1;
        self.num_objects += gt.len() as u64;
        self.num_predictions += hyp.len() as u64;
        let max_d = self.max_distance();
        for (o, ob) in gt {
            *self.gt_frames.entry(*o).or_default() += 1;
            for (h, hb) in hyp {
                if distance(ob, hb) <= max_d {
                    *self.pair_frames.entry((*o, *h)).or_default() += 1;
                }
            }
        }
        for (h, _) in hyp {
            *self.hyp_frames.entry(*h).or_default() += 1;
        }

        let mut gt_matched = vec![false; gt.len()];
        let mut hyp_matched = vec![false; hyp.len()];
        // 1. Keep last frame's correspondences that are still valid.
        for (i, (o, ob)) in gt.iter().enumerate() {
            let Some(&h_prev) = self.last_match.get(o) else {
                continue;
            };
            let found = hyp
                .iter()
                .enumerate()
                .find(|(j, (h, _))| !hyp_matched[*j] && *h == h_prev);
            if let Some((j, (_, hb))) = found {
                let d = distance(ob, hb);
                if d <= max_d {
                    gt_matched[i] = true;
                    hyp_matched[j] = true;
                    self.matches += 1;
                    self.distance_sum += d;
                }
            }
        }
        // 2. Optimal matching of the rest.
        let free_gt: Vec<usize> = (0..gt.len()).filter(|&i| !gt_matched[i]).collect();
        let free_hyp: Vec<usize> = (0..hyp.len()).filter(|&j| !hyp_matched[j]).collect();
        self.cost.clear();
        for &i in &free_gt {
            for &j in &free_hyp {
                let d = distance(&gt[i].1, &hyp[j].1);
                self.cost.push(if d <= max_d { d } else { f64::INFINITY });
            }
        }
        let result = self
            .solver
            .solve(&self.cost, free_gt.len(), free_hyp.len(), max_d)
            .to_vec();
        for (r, c) in result.iter().enumerate() {
            let Some(c) = *c else { continue };
            let (i, j) = (free_gt[r], free_hyp[c]);
            let (o, h) = (gt[i].0, hyp[j].0);
            if self.last_match.get(&o).is_some_and(|&prev| prev != h) {
                self.id_switches += 1;
            }
            self.last_match.insert(o, h);
            gt_matched[i] = true;
            hyp_matched[j] = true;
            self.matches += 1;
            self.distance_sum += self.cost[r * free_hyp.len() + c];
        }
        self.misses += gt_matched.iter().filter(|m| !**m).count() as u64;
        self.false_positives += hyp_matched.iter().filter(|m| !**m).count() as u64;
    }

    /// Scores so far.
    pub fn summary(&self) -> MotSummary {
        let n = self.num_objects as f64;
        let mota = if n > 0.0 {
            1.0 - (self.misses + self.false_positives + self.id_switches) as f64 / n
        } else {
            0.0
        };
        let motp = if self.matches > 0 {
            self.distance_sum / self.matches as f64
        } else {
            0.0
        };
        let idtp = self.identity_true_positives();
        let idfn = self.num_objects - idtp;
        let idfp = self.num_predictions - idtp;
        let ratio = |a: u64, b: u64| if b > 0 { a as f64 / b as f64 } else { 0.0 };
        MotSummary {
            frames: self.frames,
            num_objects: self.num_objects,
            num_predictions: self.num_predictions,
            num_unique_objects: self.gt_frames.len() as u64,
            matches: self.matches,
            false_positives: self.false_positives,
            misses: self.misses,
            id_switches: self.id_switches,
            mota,
            motp,
            idtp,
            idfp,
            idfn,
            idf1: ratio(2 * idtp, self.num_objects + self.num_predictions),
            idp: ratio(idtp, idtp + idfp),
            idr: ratio(idtp, idtp + idfn),
        }
    }

    /// Maximum over one-to-one identity maps of the frames where mapped pairs match.
    fn identity_true_positives(&self) -> u64 {
        let mut gt_ids: Vec<u64> = self.gt_frames.keys().copied().collect();
        let mut hyp_ids: Vec<u64> = self.hyp_frames.keys().copied().collect();
        gt_ids.sort_unstable();
        hyp_ids.sort_unstable();
        if gt_ids.is_empty() || hyp_ids.is_empty() {
            return 0;
        }
        // Every pair is allowed (a zero-overlap pair costs 0), so the solver's
        // "most pairs first" rule never trades total overlap for pair count.
        let mut cost = Vec::with_capacity(gt_ids.len() * hyp_ids.len());
        for o in &gt_ids {
            for h in &hyp_ids {
                let tp = self.pair_frames.get(&(*o, *h)).copied().unwrap_or(0);
                cost.push(-(tp as f64));
            }
        }
        let assignment = AssignmentSolver::new()
            .solve(&cost, gt_ids.len(), hyp_ids.len(), f64::INFINITY)
            .to_vec();
        assignment
            .iter()
            .enumerate()
            .filter_map(|(r, c)| c.map(|c| (-cost[r * hyp_ids.len() + c]) as u64))
            .sum()
    }
}

#[cfg(test)]
mod tests;
