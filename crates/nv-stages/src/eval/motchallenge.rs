//! MOTChallenge text files and whole-sequence logs.

use std::path::Path;

use nv_core::geometry::BBox;

use super::{MotEvaluator, MotSummary};

/// One line of a MOTChallenge file, with the box in normalised coordinates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MotRecord {
    /// 1-based frame number.
    pub frame: u64,
    pub id: u64,
    pub bbox: BBox,
    pub confidence: f32,
}

/// A whole sequence of ground truth and hypotheses, recordable frame by frame, scored
/// with [`MotEvaluator`] and writable as a pair of MOTChallenge files.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SequenceLog {
    pub gt: Vec<MotRecord>,
    pub hyp: Vec<MotRecord>,
    frames: u64,
}

impl SequenceLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// A log of records read back from files (see [`parse_mot_challenge`]).
    pub fn from_records(gt: Vec<MotRecord>, hyp: Vec<MotRecord>) -> Self {
        let frames = gt.iter().chain(&hyp).map(|r| r.frame).max().unwrap_or(0);
        Self { gt, hyp, frames }
    }

    /// Reads a pair of MOTChallenge files. Scoring what was read back, rather than the
    /// in-memory log, makes this evaluator see exactly the numbers an external tool
    /// (such as `motmetrics`) reads from the same files.
    pub fn read_mot_challenge(
        gt_path: &Path,
        hyp_path: &Path,
        width: u32,
        height: u32,
    ) -> std::io::Result<Self> {
        let read = |p: &Path| -> std::io::Result<Vec<MotRecord>> {
            parse_mot_challenge(&std::fs::read_to_string(p)?, width, height)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        };
        Ok(Self::from_records(read(gt_path)?, read(hyp_path)?))
    }

    /// Appends the next frame (numbered from 1).
    pub fn push_frame(&mut self, gt: &[(u64, BBox)], hyp: &[(u64, BBox, f32)]) {
        self.frames += 1;
        let frame = self.frames;
        self.gt.extend(gt.iter().map(|&(id, bbox)| MotRecord {
            frame,
            id,
            bbox,
            confidence: 1.0,
        }));
        self.hyp
            .extend(hyp.iter().map(|&(id, bbox, confidence)| MotRecord {
                frame,
                id,
                bbox,
                confidence,
            }));
    }

    /// Number of frames, including trailing frames without any boxes.
    pub fn frame_count(&self) -> u64 {
        self.frames
    }

    /// Scores the sequence.
    pub fn evaluate(&self, iou_threshold: f32) -> MotSummary {
        let last = self
            .gt
            .iter()
            .chain(&self.hyp)
            .map(|r| r.frame)
            .max()
            .unwrap_or(0)
            .max(self.frames);
        let by_frame = |records: &[MotRecord]| {
            let mut frames: Vec<Vec<(u64, BBox)>> = vec![Vec::new(); last as usize];
            for r in records {
                if let Some(f) = frames.get_mut((r.frame as usize).wrapping_sub(1)) {
                    f.push((r.id, r.bbox));
                }
            }
            frames
        };
        let (gt, hyp) = (by_frame(&self.gt), by_frame(&self.hyp));
        let mut eval = MotEvaluator::new(iou_threshold);
        for (g, h) in gt.iter().zip(&hyp) {
            eval.update(g, h);
        }
        eval.summary()
    }

    /// Writes `gt` and `hyp` as MOTChallenge files for a `width` x `height` video.
    pub fn write_mot_challenge(
        &self,
        gt_path: &Path,
        hyp_path: &Path,
        width: u32,
        height: u32,
    ) -> std::io::Result<()> {
        std::fs::write(gt_path, format_mot_challenge(&self.gt, width, height))?;
        std::fs::write(hyp_path, format_mot_challenge(&self.hyp, width, height))
    }
}

/// MOTChallenge lines `frame,id,x,y,w,h,conf,-1,-1,-1`, in pixels with 1-based `x`, `y`
/// (the benchmark's convention; IoU does not depend on it).
pub fn format_mot_challenge(records: &[MotRecord], width: u32, height: u32) -> String {
    let (w, h) = (f64::from(width), f64::from(height));
    let mut out = String::with_capacity(records.len() * 48);
    for r in records {
        let b = &r.bbox;
        out.push_str(&format!(
            "{},{},{:.4},{:.4},{:.4},{:.4},{:.4},-1,-1,-1\n",
            r.frame,
            r.id,
            f64::from(b.x_min) * w + 1.0,
            f64::from(b.y_min) * h + 1.0,
            f64::from(b.width()) * w,
            f64::from(b.height()) * h,
            r.confidence,
        ));
    }
    out
}

/// A MOTChallenge line could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseMotError {
    /// 1-based line number.
    pub line: usize,
}

impl std::error::Error for ParseMotError {}

impl std::fmt::Display for ParseMotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed MOTChallenge line {}", self.line)
    }
}

/// Reads MOTChallenge text back into normalised records.
pub fn parse_mot_challenge(
    text: &str,
    width: u32,
    height: u32,
) -> Result<Vec<MotRecord>, ParseMotError> {
    let (w, h) = (f64::from(width), f64::from(height));
    let mut records = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let err = ParseMotError { line: i + 1 };
        let fields: Vec<f64> = line
            .split(',')
            .take(7)
            .map(|f| f.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|_| err.clone())?;
        let [frame, id, x, y, bw, bh, conf] = fields[..] else {
            return Err(err);
        };
        let (x0, y0) = ((x - 1.0) / w, (y - 1.0) / h);
        records.push(MotRecord {
            frame: frame as u64,
            id: id as u64,
            bbox: BBox::new(
                x0 as f32,
                y0 as f32,
                (x0 + bw / w) as f32,
                (y0 + bh / h) as f32,
            ),
            confidence: conf as f32,
        });
    }
    Ok(records)
}
