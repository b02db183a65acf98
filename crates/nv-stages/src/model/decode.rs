//! Output decoders: dense YOLO-style, end-to-end, SSD-style and segmentation maps, plus
//! class-aware NMS. They work on plain `f32` slices with a shape so they can be tested on
//! hand-built tensors; boxes come out in model-input pixels (`x1, y1, x2, y2`).

use super::anchors::Anchor;
use super::config::{BoxFormat, BoxUnits, DecoderKind, ScoreActivation, YoloLayout};

/// A model output: row-major `f32` data and its shape (batch first).
#[derive(Clone, Copy, Debug)]
pub struct OutputTensor<'a> {
    pub shape: &'a [usize],
    pub data: &'a [f32],
}

impl<'a> OutputTensor<'a> {
    pub fn new(shape: &'a [usize], data: &'a [f32]) -> Self {
        Self { shape, data }
    }
    /// The slice of batch item `item` and the shape of one item.
    fn item(&self, item: usize) -> Result<(&'a [f32], &'a [usize]), String> {
        let (&n, rest) = self
            .shape
            .split_first()
            .ok_or_else(|| "output is a scalar".to_string())?;
        let per: usize = rest.iter().product();
        if per.checked_mul(n) != Some(self.data.len()) {
            return Err(format!(
                "output data length {} does not match shape {}",
                self.data.len(),
                fmt_dims(self.shape)
            ));
        }
        if item >= n {
            return Err(format!(
                "batch item {item} out of range for shape {}",
                fmt_dims(self.shape)
            ));
        }
        Ok((&self.data[item * per..(item + 1) * per], rest))
    }
}

/// One decoded box before mapping to the frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RawDetection {
    /// `x1, y1, x2, y2` in model-input pixels.
    pub bbox: [f32; 4],
    pub score: f32,
    pub class_id: u32,
}

/// Settings shared by every decoder.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DecodeParams {
    /// Model input `(width, height)` in pixels.
    pub input_size: (u32, u32),
    pub confidence_threshold: f32,
    pub nms_iou_threshold: f32,
    pub max_detections: usize,
}

/// Reusable decoder (keeps scratch buffers of the segmentation decoder).
#[derive(Debug)]
pub struct Decoder {
    kind: DecoderKind,
    params: DecodeParams,
    visited: Vec<bool>,
    stack: Vec<u32>,
    /// Anchors of [`DecoderKind::AnchorSsd`].
    anchors: Vec<Anchor>,
    /// Softmax scratch (one anchor's class scores).
    probs: Vec<f32>,
}

impl Decoder {
    pub fn new(kind: DecoderKind, params: DecodeParams) -> Self {
        Self {
            kind,
            params,
            visited: Vec::new(),
            stack: Vec::new(),
            anchors: Vec::new(),
            probs: Vec::new(),
        }
    }

    /// Sets the anchors [`DecoderKind::AnchorSsd`] decodes against (see
    /// [`SsdAnchorGenerator`](super::SsdAnchorGenerator)).
    #[must_use]
    pub fn with_anchors(mut self, anchors: Vec<Anchor>) -> Self {
        self.anchors = anchors;
        self
    }

    pub fn kind(&self) -> DecoderKind {
        self.kind
    }

    /// Number of model outputs this decoder reads.
    pub fn outputs_needed(&self) -> usize {
        match self.kind {
            DecoderKind::Ssd {
                boxes_output,
                scores_output,
                ..
            }
            | DecoderKind::AnchorSsd {
                boxes_output,
                scores_output,
                ..
            } => boxes_output.max(scores_output) + 1,
            _ => 1,
        }
    }

    /// Checks output shapes known at load time (`None` for symbolic dimensions) and
    /// returns the class count when it can be told from them.
    pub fn check_shapes(&self, shapes: &[Vec<Option<usize>>]) -> Result<Option<usize>, String> {
        if shapes.len() < self.outputs_needed() {
            return Err(format!(
                "decoder {} needs {} output(s), the model has {}",
                self.kind.name(),
                self.outputs_needed(),
                shapes.len()
            ));
        }
        let rank = |i: usize, want: &[usize]| -> Result<&Vec<Option<usize>>, String> {
            let s = &shapes[i];
            if want.contains(&s.len()) {
                Ok(s)
            } else {
                Err(format!(
                    "output {i} has rank {} (shape {}), decoder {} needs rank {}",
                    s.len(),
                    fmt_shape(s),
                    self.kind.name(),
                    want.iter()
                        .map(usize::to_string)
                        .collect::<Vec<_>>()
                        .join(" or ")
                ))
            }
        };
        match self.kind {
            DecoderKind::Yolo {
                layout, objectness, ..
            } => {
                let s = rank(0, &[3])?;
                let fixed = 4 + usize::from(objectness);
                let attrs = match (layout, s[1], s[2]) {
                    (YoloLayout::AttributesFirst, a, _) | (YoloLayout::AnchorsFirst, _, a) => a,
                    (YoloLayout::Auto, Some(a), Some(b)) => Some(a.min(b)),
                    (YoloLayout::Auto, _, _) => None,
                };
                match attrs {
                    Some(a) if a <= fixed => Err(format!(
                        "output shape {} has {a} attributes per anchor, need more than {fixed}",
                        fmt_shape(s)
                    )),
                    Some(a) => Ok(Some(a - fixed)),
                    None => Ok(None),
                }
            }
            DecoderKind::EndToEnd { .. } => {
                let s = rank(0, &[3])?;
                match s[2] {
                    Some(k) if k < 6 => Err(format!(
                        "end-to-end output shape {} needs at least 6 values per row",
                        fmt_shape(s)
                    )),
                    _ => Ok(None),
                }
            }
            DecoderKind::Ssd {
                boxes_output,
                scores_output,
                ..
            } => {
                let b = rank(boxes_output, &[3])?;
                let s = rank(scores_output, &[3])?;
                if matches!(b[2], Some(k) if k != 4) {
                    return Err(format!(
                        "SSD boxes output shape {} is not [N, A, 4]",
                        fmt_shape(b)
                    ));
                }
                if let (Some(a), Some(c)) = (b[1], s[1]) {
                    if a != c {
                        return Err(format!(
                            "SSD boxes {} and scores {} disagree on the anchor count",
                            fmt_shape(b),
                            fmt_shape(s)
                        ));
                    }
                }
                Ok(s[2])
            }
            DecoderKind::AnchorSsd {
                boxes_output,
                scores_output,
                ..
            } => {
                let b = rank(boxes_output, &[3])?;
                let s = rank(scores_output, &[3])?;
                if matches!(b[2], Some(k) if k != 4) {
                    return Err(format!(
                        "SSD box encodings output shape {} is not [N, A, 4]",
                        fmt_shape(b)
                    ));
                }
                for shape in [b, s] {
                    if matches!(shape[1], Some(a) if a != self.anchors.len()) {
                        return Err(format!(
                            "SSD output shape {} does not hold the {} anchors the anchor \
                             generator makes (check ssd_anchors against the model)",
                            fmt_shape(shape),
                            self.anchors.len()
                        ));
                    }
                }
                Ok(s[2])
            }
            DecoderKind::SegmentationMap { .. } => {
                let s = rank(0, &[3, 4])?;
                if s.len() == 4 && matches!(s[1], Some(c) if c != 1) {
                    return Err(format!(
                        "segmentation map output shape {} is not [N, 1, H, W]",
                        fmt_shape(s)
                    ));
                }
                Ok(None)
            }
        }
    }

    /// Decodes batch item `item` of `outputs`: thresholded, NMS'd where the family needs
    /// it, best first, at most `max_detections`.
    pub fn decode(
        &mut self,
        outputs: &[OutputTensor<'_>],
        item: usize,
    ) -> Result<Vec<RawDetection>, String> {
        let p = self.params;
        let get = |i: usize| {
            outputs.get(i).copied().ok_or_else(|| {
                format!(
                    "model produced {} output(s), need output {i}",
                    outputs.len()
                )
            })
        };
        let mut dets = match self.kind {
            DecoderKind::Yolo {
                layout,
                objectness,
                units,
            } => decode_yolo(get(0)?, item, layout, objectness, units, &p)?,
            DecoderKind::EndToEnd { units } => decode_end_to_end(get(0)?, item, units, &p)?,
            DecoderKind::Ssd {
                boxes_output,
                scores_output,
                box_format,
                units,
                background_class,
            } => decode_ssd(
                get(boxes_output)?,
                get(scores_output)?,
                item,
                box_format,
                units,
                background_class,
                &p,
            )?,
            DecoderKind::AnchorSsd {
                boxes_output,
                scores_output,
                scale_factors,
                activation,
                background_class,
            } => decode_anchor_ssd(
                get(boxes_output)?,
                get(scores_output)?,
                item,
                AnchorSsdParams {
                    anchors: &self.anchors,
                    scale_factors,
                    activation,
                    background: background_class,
                },
                &p,
                &mut self.probs,
            )?,
            DecoderKind::SegmentationMap {
                threshold,
                min_area,
                unclip_ratio,
            } => {
                let map = get(0)?;
                decode_segmentation(
                    map,
                    item,
                    SegParams {
                        threshold,
                        min_area,
                        unclip_ratio,
                    },
                    &p,
                    &mut self.visited,
                    &mut self.stack,
                )?
            }
        };
        if self.kind.uses_nms() {
            nms(&mut dets, p.nms_iou_threshold, p.max_detections);
        } else {
            sort_by_score(&mut dets);
            dets.truncate(p.max_detections);
        }
        Ok(dets)
    }
}

/// One batch item of an SSD head.
struct SsdItem<'a> {
    /// `[A, 4]` box values.
    boxes: &'a [f32],
    /// `[A, C]` scores.
    scores: &'a [f32],
    anchors: usize,
    classes: usize,
}

fn ssd_item<'a>(
    boxes: &OutputTensor<'a>,
    scores: &OutputTensor<'a>,
    item: usize,
) -> Result<SsdItem<'a>, String> {
    let (bdata, bdims) = boxes.item(item)?;
    let (sdata, sdims) = scores.item(item)?;
    match (bdims, sdims) {
        (&[anchors, 4], &[anchors_s, classes]) if anchors == anchors_s => Ok(SsdItem {
            boxes: bdata,
            scores: sdata,
            anchors,
            classes,
        }),
        _ => Err(format!(
            "SSD outputs {} and {} are not [N, A, 4] and [N, A, C] with the same A",
            fmt_dims(boxes.shape),
            fmt_dims(scores.shape)
        )),
    }
}

fn fmt_dims(s: &[usize]) -> String {
    let dims: Vec<String> = s.iter().map(usize::to_string).collect();
    format!("[{}]", dims.join(", "))
}

fn fmt_shape(s: &[Option<usize>]) -> String {
    let dims: Vec<String> = s
        .iter()
        .map(|d| d.map_or_else(|| "?".to_string(), |v| v.to_string()))
        .collect();
    format!("[{}]", dims.join(", "))
}

fn scale_for(units: BoxUnits, p: &DecodeParams) -> (f32, f32) {
    match units {
        BoxUnits::InputPixels => (1.0, 1.0),
        BoxUnits::Normalized => (p.input_size.0 as f32, p.input_size.1 as f32),
    }
}

fn usable(score: f32, p: &DecodeParams) -> bool {
    score.is_finite() && score >= p.confidence_threshold
}

fn decode_yolo(
    out: OutputTensor<'_>,
    item: usize,
    layout: YoloLayout,
    objectness: bool,
    units: BoxUnits,
    p: &DecodeParams,
) -> Result<Vec<RawDetection>, String> {
    let (data, dims) = out.item(item)?;
    let &[d1, d2] = dims else {
        return Err(format!("YOLO output shape {:?} is not rank 3", out.shape));
    };
    let attributes_first = match layout {
        YoloLayout::AttributesFirst => true,
        YoloLayout::AnchorsFirst => false,
        YoloLayout::Auto => d1 <= d2,
    };
    let (attrs, anchors) = if attributes_first { (d1, d2) } else { (d2, d1) };
    let first_class = 4 + usize::from(objectness);
    if attrs <= first_class {
        return Err(format!(
            "YOLO output shape {:?}: {attrs} attributes per anchor, need more than {first_class}",
            out.shape
        ));
    }
    let at = |a: usize, k: usize| {
        if attributes_first {
            data[k * anchors + a]
        } else {
            data[a * attrs + k]
        }
    };
    let (sx, sy) = scale_for(units, p);
    let mut dets = Vec::new();
    for a in 0..anchors {
        let obj = if objectness { at(a, 4) } else { 1.0 };
        if objectness && !usable(obj, p) {
            continue;
        }
        let mut best = (f32::NEG_INFINITY, 0usize);
        for k in first_class..attrs {
            let s = at(a, k);
            if s > best.0 {
                best = (s, k - first_class);
            }
        }
        let score = if objectness { obj * best.0 } else { best.0 };
        if !usable(score, p) {
            continue;
        }
        let (cx, cy, w, h) = (at(a, 0) * sx, at(a, 1) * sy, at(a, 2) * sx, at(a, 3) * sy);
        if !(cx.is_finite() && cy.is_finite() && w.is_finite() && h.is_finite()) {
            continue;
        }
        dets.push(RawDetection {
            bbox: [cx - w * 0.5, cy - h * 0.5, cx + w * 0.5, cy + h * 0.5],
            score,
            class_id: best.1 as u32,
        });
    }
    Ok(dets)
}

fn decode_end_to_end(
    out: OutputTensor<'_>,
    item: usize,
    units: BoxUnits,
    p: &DecodeParams,
) -> Result<Vec<RawDetection>, String> {
    let (data, dims) = out.item(item)?;
    let &[_, row] = dims else {
        return Err(format!(
            "end-to-end output shape {:?} is not rank 3",
            out.shape
        ));
    };
    if row < 6 {
        return Err(format!(
            "end-to-end output shape {:?} needs at least 6 values per row",
            out.shape
        ));
    }
    let (sx, sy) = scale_for(units, p);
    let mut dets = Vec::new();
    for r in data.chunks_exact(row) {
        let (score, class) = (r[4], r[5]);
        if !usable(score, p) || !class.is_finite() || class < 0.0 || class > u32::MAX as f32 {
            continue;
        }
        let b = [r[0] * sx, r[1] * sy, r[2] * sx, r[3] * sy];
        if b.iter().any(|v| !v.is_finite()) {
            continue;
        }
        dets.push(RawDetection {
            bbox: [
                b[0].min(b[2]),
                b[1].min(b[3]),
                b[0].max(b[2]),
                b[1].max(b[3]),
            ],
            score,
            class_id: class.round() as u32,
        });
    }
    Ok(dets)
}

fn decode_ssd(
    boxes: OutputTensor<'_>,
    scores: OutputTensor<'_>,
    item: usize,
    format: BoxFormat,
    units: BoxUnits,
    background: Option<u32>,
    p: &DecodeParams,
) -> Result<Vec<RawDetection>, String> {
    let SsdItem {
        boxes: bdata,
        scores: sdata,
        classes,
        ..
    } = ssd_item(&boxes, &scores, item)?;
    let (sx, sy) = scale_for(units, p);
    let mut dets = Vec::new();
    for (b, s) in bdata
        .chunks_exact(4)
        .zip(sdata.chunks_exact(classes.max(1)))
    {
        let mut best = (f32::NEG_INFINITY, 0usize);
        for (k, &v) in s.iter().enumerate() {
            if Some(k as u32) != background && v > best.0 {
                best = (v, k);
            }
        }
        if !usable(best.0, p) {
            continue;
        }
        let [x1, y1, x2, y2] = match format {
            BoxFormat::Xyxy => [b[0], b[1], b[2], b[3]],
            BoxFormat::Yxyx => [b[1], b[0], b[3], b[2]],
            BoxFormat::Cxcywh => [
                b[0] - b[2] * 0.5,
                b[1] - b[3] * 0.5,
                b[0] + b[2] * 0.5,
                b[1] + b[3] * 0.5,
            ],
        };
        let bb = [x1 * sx, y1 * sy, x2 * sx, y2 * sy];
        if bb.iter().any(|v| !v.is_finite()) {
            continue;
        }
        dets.push(RawDetection {
            bbox: [
                bb[0].min(bb[2]),
                bb[1].min(bb[3]),
                bb[0].max(bb[2]),
                bb[1].max(bb[3]),
            ],
            score: best.0,
            class_id: best.1 as u32,
        });
    }
    Ok(dets)
}

struct AnchorSsdParams<'a> {
    anchors: &'a [Anchor],
    scale_factors: [f32; 4],
    activation: ScoreActivation,
    background: Option<u32>,
}

fn decode_anchor_ssd(
    boxes: OutputTensor<'_>,
    scores: OutputTensor<'_>,
    item: usize,
    a: AnchorSsdParams<'_>,
    p: &DecodeParams,
    probs: &mut Vec<f32>,
) -> Result<Vec<RawDetection>, String> {
    let SsdItem {
        boxes: bdata,
        scores: sdata,
        anchors,
        classes,
    } = ssd_item(&boxes, &scores, item)?;
    if anchors != a.anchors.len() {
        return Err(format!(
            "SSD outputs {} and {} have {anchors} anchors, the model's anchor generator makes {}",
            fmt_dims(boxes.shape),
            fmt_dims(scores.shape),
            a.anchors.len()
        ));
    }
    if classes == 0 {
        return Ok(Vec::new());
    }
    // The sigmoid is monotonic: compare logits against the threshold's logit and take
    // the exponential only for the few anchors that pass.
    let t = p.confidence_threshold;
    let logit_threshold = if t <= 0.0 {
        f32::NEG_INFINITY
    } else if t >= 1.0 {
        f32::INFINITY
    } else {
        (t / (1.0 - t)).ln()
    };
    let (sx, sy) = scale_for(BoxUnits::Normalized, p);
    let mut dets = Vec::new();
    for ((code, s), anchor) in bdata
        .chunks_exact(4)
        .zip(sdata.chunks_exact(classes))
        .zip(a.anchors)
    {
        probs.clear();
        match a.activation {
            ScoreActivation::Sigmoid => {
                if !s
                    .iter()
                    .enumerate()
                    .any(|(k, &v)| Some(k as u32) != a.background && v >= logit_threshold)
                {
                    continue;
                }
                probs.extend(s.iter().map(|&v| 1.0 / (1.0 + (-v).exp())));
            }
            ScoreActivation::Softmax => {
                let max = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                probs.extend(s.iter().map(|&v| (v - max).exp()));
                let sum: f32 = probs.iter().sum();
                probs.iter_mut().for_each(|v| *v /= sum);
            }
            ScoreActivation::Identity => probs.extend_from_slice(s),
        }
        let mut decoded: Option<[f32; 4]> = None;
        for (k, &score) in probs.iter().enumerate() {
            if Some(k as u32) == a.background || !usable(score, p) {
                continue;
            }
            let b = *decoded.get_or_insert_with(|| {
                let [x0, y0, x1, y1] =
                    anchor.decode([code[0], code[1], code[2], code[3]], a.scale_factors);
                // TF-OD clips to the image window before NMS.
                [
                    x0.clamp(0.0, 1.0) * sx,
                    y0.clamp(0.0, 1.0) * sy,
                    x1.clamp(0.0, 1.0) * sx,
                    y1.clamp(0.0, 1.0) * sy,
                ]
            });
            if !b.iter().all(|v| v.is_finite()) || b[2] <= b[0] || b[3] <= b[1] {
                break;
            }
            dets.push(RawDetection {
                bbox: b,
                score,
                class_id: k as u32,
            });
        }
    }
    Ok(dets)
}

#[derive(Clone, Copy, Debug)]
struct SegParams {
    threshold: f32,
    min_area: u32,
    unclip_ratio: f32,
}

fn decode_segmentation(
    out: OutputTensor<'_>,
    item: usize,
    seg: SegParams,
    p: &DecodeParams,
    visited: &mut Vec<bool>,
    stack: &mut Vec<u32>,
) -> Result<Vec<RawDetection>, String> {
    let (data, dims) = out.item(item)?;
    let (h, w) = match *dims {
        [1, h, w] | [h, w] => (h, w),
        _ => {
            return Err(format!(
                "segmentation map output shape {:?} is not [N, 1, H, W] or [N, H, W]",
                out.shape
            ))
        }
    };
    if h == 0 || w == 0 {
        return Ok(Vec::new());
    }
    if u32::try_from(h * w).is_err() {
        return Err(format!("segmentation map {w}x{h} is too large"));
    }
    visited.clear();
    visited.resize(h * w, false);
    let (sx, sy) = (
        p.input_size.0 as f32 / w as f32,
        p.input_size.1 as f32 / h as f32,
    );
    let mut dets = Vec::new();
    for start in 0..h * w {
        // NaN never passes the threshold.
        if visited[start]
            || data[start].partial_cmp(&seg.threshold) != Some(std::cmp::Ordering::Greater)
        {
            continue;
        }
        visited[start] = true;
        stack.clear();
        stack.push(start as u32);
        let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0usize, 0usize);
        let (mut count, mut sum) = (0u32, 0.0f64);
        while let Some(i) = stack.pop() {
            let i = i as usize;
            let (x, y) = (i % w, i / w);
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
            count += 1;
            sum += f64::from(data[i]);
            for ny in y.saturating_sub(1)..=(y + 1).min(h - 1) {
                for nx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                    let j = ny * w + nx;
                    if !visited[j] && data[j] > seg.threshold {
                        visited[j] = true;
                        stack.push(j as u32);
                    }
                }
            }
        }
        if count < seg.min_area {
            continue;
        }
        let score = (sum / f64::from(count)) as f32;
        if !usable(score, p) {
            continue;
        }
        // Extent in map pixels (a pixel covers [x, x + 1)), grown by the DB unclip offset.
        let (bw, bh) = ((x1 + 1 - x0) as f32, (y1 + 1 - y0) as f32);
        let grow = seg.unclip_ratio * bw * bh / (2.0 * (bw + bh));
        dets.push(RawDetection {
            bbox: [
                (x0 as f32 - grow) * sx,
                (y0 as f32 - grow) * sy,
                ((x1 + 1) as f32 + grow) * sx,
                ((y1 + 1) as f32 + grow) * sy,
            ],
            score,
            class_id: 0,
        });
    }
    Ok(dets)
}

fn sort_by_score(dets: &mut [RawDetection]) {
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
}

/// IoU of two `x1, y1, x2, y2` boxes; 0 when the union is empty.
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// Class-aware greedy NMS: best first, a box is dropped when it overlaps a kept box of the
/// same class by more than `iou_threshold`; stops at `max_keep`. Stable for equal scores.
pub fn nms(dets: &mut Vec<RawDetection>, iou_threshold: f32, max_keep: usize) {
    sort_by_score(dets);
    let mut kept: Vec<RawDetection> = Vec::with_capacity(dets.len().min(max_keep));
    for d in dets.iter() {
        if kept.len() >= max_keep {
            break;
        }
        let suppressed = kept
            .iter()
            .any(|k| k.class_id == d.class_id && iou(&k.bbox, &d.bbox) > iou_threshold);
        if !suppressed {
            kept.push(*d);
        }
    }
    *dets = kept;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> DecodeParams {
        DecodeParams {
            input_size: (64, 64),
            confidence_threshold: 0.25,
            nms_iou_threshold: 0.45,
            max_detections: 100,
        }
    }

    fn raw(bbox: [f32; 4], score: f32, class_id: u32) -> RawDetection {
        RawDetection {
            bbox,
            score,
            class_id,
        }
    }

    /// Anchors as rows of `cx, cy, w, h, scores...`.
    fn yolo_rows() -> Vec<Vec<f32>> {
        vec![
            vec![16.0, 24.0, 8.0, 8.0, 0.9, 0.1, 0.0],
            vec![17.0, 24.0, 8.0, 8.0, 0.8, 0.0, 0.0],
            vec![17.0, 24.0, 8.0, 8.0, 0.0, 0.7, 0.0],
            vec![48.0, 40.0, 16.0, 8.0, 0.0, 0.0, 0.6],
            vec![32.0, 32.0, 8.0, 8.0, 0.2, 0.2, 0.2],
            vec![40.0, 20.0, 4.0, 4.0, 0.3, 0.0, 0.0],
            // Empty anchors: more anchors than attributes, as in real models (Auto layout).
            vec![0.0; 7],
            vec![0.0; 7],
        ]
    }

    fn expected_yolo() -> Vec<RawDetection> {
        vec![
            raw([12.0, 20.0, 20.0, 28.0], 0.9, 0),
            raw([13.0, 20.0, 21.0, 28.0], 0.7, 1),
            raw([40.0, 36.0, 56.0, 44.0], 0.6, 2),
            raw([38.0, 18.0, 42.0, 22.0], 0.3, 0),
        ]
    }

    #[test]
    fn yolo_attributes_first_and_anchors_first_agree() {
        let rows = yolo_rows();
        let (a, k) = (rows.len(), rows[0].len());
        let anchors_first: Vec<f32> = rows.iter().flatten().copied().collect();
        let mut attributes_first = vec![0.0; a * k];
        for (ai, r) in rows.iter().enumerate() {
            for (ki, v) in r.iter().enumerate() {
                attributes_first[ki * a + ai] = *v;
            }
        }
        let kinds = [
            (
                YoloLayout::AttributesFirst,
                vec![1, k, a],
                &attributes_first,
            ),
            (YoloLayout::Auto, vec![1, k, a], &attributes_first),
            (YoloLayout::AnchorsFirst, vec![1, a, k], &anchors_first),
        ];
        for (layout, shape, data) in kinds {
            let kind = DecoderKind::Yolo {
                layout,
                objectness: false,
                units: BoxUnits::InputPixels,
            };
            let mut d = Decoder::new(kind, params());
            let out = d.decode(&[OutputTensor::new(&shape, data)], 0).unwrap();
            assert_eq!(out, expected_yolo(), "{layout:?}");
        }
    }

    #[test]
    fn nms_suppresses_same_class_keeps_other_classes() {
        let mut dets = vec![
            raw([0.0, 0.0, 10.0, 10.0], 0.8, 0),
            raw([1.0, 0.0, 11.0, 10.0], 0.9, 0),
            raw([1.0, 0.0, 11.0, 10.0], 0.7, 1),
            // IoU with the best is 50/150 = 0.33 < 0.45: kept.
            raw([6.0, 0.0, 16.0, 10.0], 0.6, 0),
            raw([50.0, 50.0, 60.0, 60.0], 0.5, 0),
        ];
        nms(&mut dets, 0.45, 10);
        assert_eq!(
            dets,
            vec![
                raw([1.0, 0.0, 11.0, 10.0], 0.9, 0),
                raw([1.0, 0.0, 11.0, 10.0], 0.7, 1),
                raw([6.0, 0.0, 16.0, 10.0], 0.6, 0),
                raw([50.0, 50.0, 60.0, 60.0], 0.5, 0),
            ]
        );
        nms(&mut dets, 0.45, 2);
        assert_eq!(dets.len(), 2);
        assert_eq!(iou(&[0.0, 0.0, 2.0, 2.0], &[1.0, 0.0, 3.0, 2.0]), 1.0 / 3.0);
        assert_eq!(iou(&[0.0, 0.0, 0.0, 0.0], &[0.0, 0.0, 0.0, 0.0]), 0.0);
    }

    #[test]
    fn yolov5_objectness_multiplies_class_score() {
        // cx, cy, w, h, obj, c0, c1
        let data = [
            10.0, 10.0, 4.0, 4.0, 0.5, 0.2, 0.8, // 0.4 class 1
            30.0, 30.0, 4.0, 4.0, 0.2, 1.0, 0.0, // obj below threshold
            50.0, 50.0, 4.0, 4.0, 0.9, 0.25, 0.0, // 0.225 below threshold
        ];
        let mut d = Decoder::new(DecoderKind::yolov5(), params());
        let out = d
            .decode(&[OutputTensor::new(&[1, 3, 7], &data)], 0)
            .unwrap();
        assert_eq!(out, vec![raw([8.0, 8.0, 12.0, 12.0], 0.5 * 0.8, 1)]);
    }

    #[test]
    fn yolo_normalized_units_and_batch_items() {
        let kind = DecoderKind::Yolo {
            layout: YoloLayout::AnchorsFirst,
            objectness: false,
            units: BoxUnits::Normalized,
        };
        // Two items, one anchor each, one class.
        let data = [0.5, 0.5, 0.25, 0.125, 0.9, 0.25, 0.25, 0.5, 0.5, 0.1];
        let mut d = Decoder::new(kind, params());
        let t = OutputTensor::new(&[2, 1, 5], &data);
        assert_eq!(
            d.decode(&[t], 0).unwrap(),
            vec![raw([24.0, 28.0, 40.0, 36.0], 0.9, 0)]
        );
        assert!(d.decode(&[t], 1).unwrap().is_empty());
        assert!(d.decode(&[t], 2).is_err());
        let bad = OutputTensor::new(&[2, 1, 5], &data[..9]);
        assert!(d.decode(&[bad], 0).is_err());
    }

    #[test]
    fn end_to_end_rows_threshold_and_order() {
        let data = [
            4.0, 8.0, 12.0, 16.0, 0.5, 2.0, //
            20.0, 20.0, 10.0, 30.0, 0.95, 0.0, // corners swapped
            0.0, 0.0, 0.0, 0.0, 0.0, 0.0, // padding row
            1.0, 1.0, 2.0, 2.0, 0.9, -1.0, // invalid class
        ];
        let mut d = Decoder::new(
            DecoderKind::EndToEnd {
                units: BoxUnits::InputPixels,
            },
            params(),
        );
        let out = d
            .decode(&[OutputTensor::new(&[1, 4, 6], &data)], 0)
            .unwrap();
        assert_eq!(
            out,
            vec![
                raw([10.0, 20.0, 20.0, 30.0], 0.95, 0),
                raw([4.0, 8.0, 12.0, 16.0], 0.5, 2),
            ]
        );
    }

    #[test]
    fn ssd_boxes_and_scores_with_background() {
        let boxes = [
            0.25, 0.125, 0.5, 0.375, // yxyx normalised
            0.25, 0.125, 0.5, 0.375, //
            0.75, 0.75, 1.0, 1.0,
        ];
        let scores = [
            0.1, 0.8, 0.1, // class 1
            0.1, 0.1, 0.6, // class 2, same box: kept (other class)
            0.9, 0.05, 0.05, // background only
        ];
        let kind = DecoderKind::Ssd {
            boxes_output: 1,
            scores_output: 0,
            box_format: BoxFormat::Yxyx,
            units: BoxUnits::Normalized,
            background_class: Some(0),
        };
        let mut d = Decoder::new(kind, params());
        let outs = [
            OutputTensor::new(&[1, 3, 3], &scores),
            OutputTensor::new(&[1, 3, 4], &boxes),
        ];
        assert_eq!(
            d.decode(&outs, 0).unwrap(),
            vec![
                raw([8.0, 16.0, 24.0, 32.0], 0.8, 1),
                raw([8.0, 16.0, 24.0, 32.0], 0.6, 2),
            ]
        );
        assert!(d.check_shapes(&[vec![Some(1), Some(3), Some(3)]]).is_err());
        assert_eq!(
            d.check_shapes(&[
                vec![Some(1), Some(3), Some(3)],
                vec![Some(1), Some(3), Some(4)]
            ]),
            Ok(Some(3))
        );
    }

    #[test]
    fn segmentation_components_boxes_and_scores() {
        // 8x8 map, input 16x16 (scale 2): a 3x2 blob, a diagonal 8-connected pair, a speck.
        let mut map = vec![0.0f32; 64];
        for y in 1..3 {
            for x in 1..4 {
                map[y * 8 + x] = 0.75;
            }
        }
        map[5 * 8 + 5] = 0.6;
        map[6 * 8 + 6] = 1.0;
        map[7 * 8] = 0.9;
        let p = DecodeParams {
            input_size: (16, 16),
            ..params()
        };
        let kind = DecoderKind::SegmentationMap {
            threshold: 0.3,
            min_area: 2,
            unclip_ratio: 0.0,
        };
        let mut d = Decoder::new(kind, p);
        let out = d
            .decode(&[OutputTensor::new(&[1, 1, 8, 8], &map)], 0)
            .unwrap();
        assert_eq!(
            out,
            vec![
                raw([10.0, 10.0, 14.0, 14.0], 0.8, 0),
                raw([2.0, 2.0, 8.0, 6.0], 0.75, 0),
            ]
        );
        // Unclip: 3x2 blob, area 6, perimeter 10, ratio 2.5 -> each side moves 1.5 map px.
        let kind = DecoderKind::SegmentationMap {
            threshold: 0.3,
            min_area: 3,
            unclip_ratio: 2.5,
        };
        let mut d = Decoder::new(kind, p);
        let out = d.decode(&[OutputTensor::new(&[1, 8, 8], &map)], 0).unwrap();
        assert_eq!(out, vec![raw([-1.0, -1.0, 11.0, 9.0], 0.75, 0)]);
    }

    #[test]
    fn shape_checks() {
        let d = Decoder::new(DecoderKind::yolov8(), params());
        assert_eq!(
            d.check_shapes(&[vec![Some(1), Some(84), Some(8400)]]),
            Ok(Some(80))
        );
        assert_eq!(d.check_shapes(&[vec![None, Some(7), None]]), Ok(Some(3)));
        assert!(d.check_shapes(&[vec![Some(1), Some(4), Some(10)]]).is_err());
        assert!(d.check_shapes(&[vec![Some(1), Some(84)]]).is_err());
        assert!(d.check_shapes(&[]).is_err());
        let e2e = Decoder::new(
            DecoderKind::EndToEnd {
                units: BoxUnits::InputPixels,
            },
            params(),
        );
        assert!(e2e
            .check_shapes(&[vec![Some(1), Some(100), Some(5)]])
            .is_err());
        let seg = Decoder::new(DecoderKind::text_detection(), params());
        assert!(seg
            .check_shapes(&[vec![Some(1), Some(2), None, None]])
            .is_err());
        assert_eq!(
            seg.check_shapes(&[vec![None, Some(1), None, None]]),
            Ok(None)
        );
    }
}
