//! SSD anchor boxes as the TensorFlow Object Detection API generates them
//! (`multiple_grid_anchor_generator`), and the decoding of box encodings against them
//! (`faster_rcnn_box_coder`).
//!
//! Frozen TF-OD graphs compute anchors inside the graph with ops tract cannot run (the
//! post-processing while loops), so the graph is cut before that point and the anchors
//! are regenerated here from the same parameters. The arithmetic mirrors TensorFlow's
//! (f32, same operation order) so decoded boxes match its own to float rounding.

use nv_core::error::ConfigProblem;

/// Largest anchor grid side accepted (a 300x300 SSD has 19).
const MAX_GRID_SIDE: u32 = 1024;
/// Most anchors a generator may produce.
pub const MAX_ANCHORS: usize = 1 << 20;

/// Parameters of TF-OD's `ssd_anchor_generator` (what `create_ssd_anchors` takes), plus the
/// feature-map grid sizes the graph's heads see. Defaults are SSD MobileNet V1/V2 at
/// 300x300 (pipeline.config defaults).
#[derive(Clone, Debug, PartialEq)]
pub struct SsdAnchorGenerator {
    /// `(height, width)` of each head's feature map, from the finest to the coarsest.
    pub feature_maps: Vec<(u32, u32)>,
    pub min_scale: f32,
    pub max_scale: f32,
    pub aspect_ratios: Vec<f32>,
    /// Aspect ratio of the extra box at scale `sqrt(s_i * s_{i+1})`; 0 or less: no extra
    /// box.
    pub interpolated_scale_aspect_ratio: f32,
    /// The first layer uses only `(0.1, 1.0), (s0, 2.0), (s0, 0.5)`.
    pub reduce_boxes_in_lowest_layer: bool,
    /// `(height, width)` of the base anchor.
    pub base_anchor_size: (f32, f32),
}

impl SsdAnchorGenerator {
    /// SSD MobileNet V2 (and V1, SSDLite) defaults for a square input of `input_side`
    /// pixels: six heads on grids of `ceil(side / 16)` halved (rounding up) five times
    /// (19, 10, 5, 3, 2, 1 at 300), scales 0.2..0.95, ratios 1, 2, 1/2, 3, 1/3.
    pub fn mobilenet_ssd(input_side: u32) -> Self {
        let mut side = input_side.div_ceil(16).max(1);
        let mut feature_maps = Vec::with_capacity(6);
        for _ in 0..6 {
            feature_maps.push((side, side));
            side = side.div_ceil(2).max(1);
        }
        Self {
            feature_maps,
            min_scale: 0.2,
            max_scale: 0.95,
            aspect_ratios: vec![1.0, 2.0, 0.5, 3.0, 0.3333],
            interpolated_scale_aspect_ratio: 1.0,
            reduce_boxes_in_lowest_layer: true,
            base_anchor_size: (1.0, 1.0),
        }
    }

    /// `(scale, aspect ratio)` of every box of each layer (TF's `create_ssd_anchors`).
    fn box_specs(&self) -> Vec<Vec<(f32, f32)>> {
        let n = self.feature_maps.len();
        // Python computes the scales in f64; the graph then holds them as f32.
        let (lo, hi) = (f64::from(self.min_scale), f64::from(self.max_scale));
        let mut scales: Vec<f64> = (0..n)
            .map(|i| {
                if n == 1 {
                    lo
                } else {
                    lo + (hi - lo) * i as f64 / (n - 1) as f64
                }
            })
            .collect();
        scales.push(1.0);
        (0..n)
            .map(|layer| {
                let (scale, next) = (scales[layer], scales[layer + 1]);
                if layer == 0 && self.reduce_boxes_in_lowest_layer {
                    return vec![(0.1, 1.0), (scale as f32, 2.0), (scale as f32, 0.5)];
                }
                let mut specs: Vec<(f32, f32)> = self
                    .aspect_ratios
                    .iter()
                    .map(|&r| (scale as f32, r))
                    .collect();
                if self.interpolated_scale_aspect_ratio > 0.0 {
                    specs.push((
                        (scale * next).sqrt() as f32,
                        self.interpolated_scale_aspect_ratio,
                    ));
                }
                specs
            })
            .collect()
    }

    /// Number of anchors [`generate`](Self::generate) produces.
    pub fn anchor_count(&self) -> usize {
        self.box_specs()
            .iter()
            .zip(&self.feature_maps)
            .map(|(specs, &(h, w))| specs.len() * h as usize * w as usize)
            .sum()
    }

    /// Problems with the parameters, keys prefixed by `prefix`.
    pub fn problems(&self, prefix: &str) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        if self.feature_maps.is_empty() {
            problems.push(ConfigProblem::missing(format!("{prefix}.feature_maps")));
        }
        for (i, &(h, w)) in self.feature_maps.iter().enumerate() {
            if !(1..=MAX_GRID_SIDE).contains(&h) || !(1..=MAX_GRID_SIDE).contains(&w) {
                problems.push(ConfigProblem::invalid(
                    format!("{prefix}.feature_maps[{i}]"),
                    format!("{h}x{w}"),
                    format!("each side must be in 1..={MAX_GRID_SIDE}"),
                ));
            }
        }
        let positive = |v: f32| v.is_finite() && v > 0.0;
        if !(positive(self.min_scale) && self.min_scale <= self.max_scale) {
            problems.push(ConfigProblem::invalid(
                format!("{prefix}.min_scale"),
                self.min_scale,
                "must be positive and at most max_scale",
            ));
        }
        if !positive(self.max_scale) {
            problems.push(ConfigProblem::invalid(
                format!("{prefix}.max_scale"),
                self.max_scale,
                "must be finite and positive",
            ));
        }
        if self.aspect_ratios.is_empty() {
            problems.push(ConfigProblem::missing(format!("{prefix}.aspect_ratios")));
        }
        for (i, &r) in self.aspect_ratios.iter().enumerate() {
            if !positive(r) {
                problems.push(ConfigProblem::invalid(
                    format!("{prefix}.aspect_ratios[{i}]"),
                    r,
                    "must be finite and positive",
                ));
            }
        }
        if !self.interpolated_scale_aspect_ratio.is_finite() {
            problems.push(ConfigProblem::invalid(
                format!("{prefix}.interpolated_scale_aspect_ratio"),
                self.interpolated_scale_aspect_ratio,
                "must be finite",
            ));
        }
        let (bh, bw) = self.base_anchor_size;
        if !(positive(bh) && positive(bw)) {
            problems.push(ConfigProblem::invalid(
                format!("{prefix}.base_anchor_size"),
                format!("{bh}x{bw}"),
                "must be finite and positive",
            ));
        }
        if problems.is_empty() && self.anchor_count() > MAX_ANCHORS {
            problems.push(ConfigProblem::invalid(
                format!("{prefix}.feature_maps"),
                self.anchor_count(),
                format!("produce more than {MAX_ANCHORS} anchors"),
            ));
        }
        problems
    }

    /// Every anchor as `[y_center, x_center, height, width]`, normalised to the model
    /// input, in the graph's order: layer by layer, then row, column, box spec. Call
    /// after [`problems`](Self::problems) came back empty.
    pub fn generate(&self) -> Vec<Anchor> {
        let mut out = Vec::with_capacity(self.anchor_count());
        let (base_h, base_w) = self.base_anchor_size;
        for (specs, &(grid_h, grid_w)) in self.box_specs().iter().zip(&self.feature_maps) {
            // TF: stride = 1 / size, offset = stride / 2, center = i * stride + offset.
            let (stride_y, stride_x) = (1.0 / grid_h as f32, 1.0 / grid_w as f32);
            let (offset_y, offset_x) = (0.5 * stride_y, 0.5 * stride_x);
            let sizes: Vec<(f32, f32)> = specs
                .iter()
                .map(|&(scale, ratio)| {
                    let r = ratio.sqrt();
                    (scale / r * base_h, scale * r * base_w)
                })
                .collect();
            for y in 0..grid_h {
                let cy = y as f32 * stride_y + offset_y;
                for x in 0..grid_w {
                    let cx = x as f32 * stride_x + offset_x;
                    for &(h, w) in &sizes {
                        // TF stores corners, and the box coder takes centre and size back
                        // from them: keep that round trip for bit-level agreement.
                        let (y0, x0) = (cy - 0.5 * h, cx - 0.5 * w);
                        let (y1, x1) = (cy + 0.5 * h, cx + 0.5 * w);
                        out.push(Anchor {
                            y_center: (y0 + y1) / 2.0,
                            x_center: (x0 + x1) / 2.0,
                            height: y1 - y0,
                            width: x1 - x0,
                        });
                    }
                }
            }
        }
        out
    }
}

/// One anchor, normalised to the model input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Anchor {
    pub y_center: f32,
    pub x_center: f32,
    pub height: f32,
    pub width: f32,
}

impl Anchor {
    /// Decodes a `(ty, tx, th, tw)` box encoding (TF-OD `FasterRcnnBoxCoder`) divided by
    /// `scale` into normalised `[x_min, y_min, x_max, y_max]`.
    pub fn decode(&self, code: [f32; 4], scale: [f32; 4]) -> [f32; 4] {
        let ty = code[0] / scale[0];
        let tx = code[1] / scale[1];
        let th = code[2] / scale[2];
        let tw = code[3] / scale[3];
        let w = tw.exp() * self.width;
        let h = th.exp() * self.height;
        let yc = ty * self.height + self.y_center;
        let xc = tx * self.width + self.x_center;
        [xc - w / 2.0, yc - h / 2.0, xc + w / 2.0, yc + h / 2.0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mobilenet_ssd_300_has_tf_grid_and_1917_anchors() {
        let g = SsdAnchorGenerator::mobilenet_ssd(300);
        assert_eq!(
            g.feature_maps,
            vec![(19, 19), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)]
        );
        assert!(g.problems("a").is_empty());
        // 19*19*3 + (100 + 25 + 9 + 4 + 1) * 6, as the graph's box head outputs.
        assert_eq!(g.anchor_count(), 1917);
        assert_eq!(g.generate().len(), 1917);
        // 320 input (SSD MobileNet V2 320x320 configs): 20, 10, 5, 3, 2, 1.
        let g = SsdAnchorGenerator::mobilenet_ssd(320);
        assert_eq!(g.feature_maps[0], (20, 20));
        assert_eq!(g.feature_maps[5], (1, 1));
    }

    #[test]
    fn first_and_last_anchors_match_tensorflow() {
        let a = SsdAnchorGenerator::mobilenet_ssd(300).generate();
        let near = |x: f32, y: f32| (x - y).abs() < 1e-6;
        // Layer 0, cell (0, 0): (0.1, 1.0), (0.2, 2.0), (0.2, 0.5).
        let s = 1.0 / 19.0 / 2.0;
        assert!(near(a[0].y_center, s) && near(a[0].x_center, s));
        assert!(near(a[0].height, 0.1) && near(a[0].width, 0.1));
        assert!(near(a[1].height, 0.2 / 2f32.sqrt()) && near(a[1].width, 0.2 * 2f32.sqrt()));
        assert!(near(a[2].height, 0.2 * 2f32.sqrt()));
        // Second cell of the first row moves in x.
        assert!(near(a[3].x_center, 3.0 * s) && near(a[3].y_center, s));
        // Last layer: one cell at the centre, scale 0.95, the interpolated box last with
        // scale sqrt(0.95 * 1.0).
        let last = a[1916];
        assert!(near(last.y_center, 0.5) && near(last.x_center, 0.5));
        assert!(near(last.height, 0.95f64.sqrt() as f32));
        // Layer 1 scale: 0.2 + 0.75 / 5 = 0.35; its first box (ratio 1) at cell (0, 0).
        let l1 = a[19 * 19 * 3];
        assert!(near(l1.height, 0.35) && near(l1.y_center, 0.05));
    }

    #[test]
    fn decode_zero_code_is_the_anchor_and_scales_apply() {
        let a = Anchor {
            y_center: 0.5,
            x_center: 0.25,
            height: 0.2,
            width: 0.1,
        };
        let b = a.decode([0.0; 4], [10.0, 10.0, 5.0, 5.0]);
        let want = [0.2, 0.4, 0.3, 0.6];
        for (x, y) in b.iter().zip(want) {
            assert!((x - y).abs() < 1e-6, "{b:?}");
        }
        // ty = 10 moves the centre by one anchor height; tw = 5 * ln 2 doubles the width.
        let b = a.decode([10.0, 0.0, 0.0, 5.0 * 2f32.ln()], [10.0, 10.0, 5.0, 5.0]);
        let want = [0.15, 0.6, 0.35, 0.8];
        for (x, y) in b.iter().zip(want) {
            assert!((x - y).abs() < 1e-6, "{b:?}");
        }
    }

    #[test]
    fn bad_parameters_are_all_reported() {
        let g = SsdAnchorGenerator {
            feature_maps: vec![(0, 3)],
            min_scale: 2.0,
            max_scale: 1.0,
            aspect_ratios: vec![-1.0],
            interpolated_scale_aspect_ratio: f32::NAN,
            reduce_boxes_in_lowest_layer: false,
            base_anchor_size: (1.0, 0.0),
        };
        let p = g.problems("decoder.anchors");
        assert_eq!(p.len(), 5, "{p:?}");
    }
}
