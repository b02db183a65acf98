//! Letterbox preprocessing: resize keeping the aspect ratio, centre, pad, normalise into an
//! NCHW f32 plane set; and the inverse mapping of model-input boxes to frame coordinates.

use nv_core::geometry::BBox;

use super::config::{ChannelOrder, InputLayout, Preprocess, ResizeMode};

/// Fixed-point precision of the bilinear weights (Q11, as OpenCV's INTER_LINEAR).
const WEIGHT_BITS: u32 = 11;
const WEIGHT_ONE: u32 = 1 << WEIGHT_BITS;

/// Where a frame lands inside the model input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Letterbox {
    pub frame_width: u32,
    pub frame_height: u32,
    pub input_width: u32,
    pub input_height: u32,
    /// Size of the resized frame inside the input.
    pub content_width: u32,
    pub content_height: u32,
    /// Offset of the resized frame (left and top padding).
    pub pad_left: u32,
    pub pad_top: u32,
}

impl Letterbox {
    /// Scale `min(iw / fw, ih / fh)`, content size rounded (at least 1 pixel), centred
    /// with the odd padding pixel on the right or bottom.
    pub fn new(frame: (u32, u32), input: (u32, u32)) -> Self {
        let (fw, fh) = (frame.0.max(1), frame.1.max(1));
        let (iw, ih) = (input.0.max(1), input.1.max(1));
        let scale = (f64::from(iw) / f64::from(fw)).min(f64::from(ih) / f64::from(fh));
        let cw = ((f64::from(fw) * scale).round() as u32).clamp(1, iw);
        let ch = ((f64::from(fh) * scale).round() as u32).clamp(1, ih);
        Self {
            frame_width: fw,
            frame_height: fh,
            input_width: iw,
            input_height: ih,
            content_width: cw,
            content_height: ch,
            pad_left: (iw - cw) / 2,
            pad_top: (ih - ch) / 2,
        }
    }

    /// The whole input is content: each axis scaled on its own (no padding).
    pub fn stretch(frame: (u32, u32), input: (u32, u32)) -> Self {
        let (iw, ih) = (input.0.max(1), input.1.max(1));
        Self {
            frame_width: frame.0.max(1),
            frame_height: frame.1.max(1),
            input_width: iw,
            input_height: ih,
            content_width: iw,
            content_height: ih,
            pad_left: 0,
            pad_top: 0,
        }
    }

    /// The geometry `mode` gives.
    pub fn fit(frame: (u32, u32), input: (u32, u32), mode: ResizeMode) -> Self {
        match mode {
            ResizeMode::Letterbox => Self::new(frame, input),
            ResizeMode::Stretch => Self::stretch(frame, input),
        }
    }

    /// Maps a point in model-input pixels to normalised frame coordinates (not clamped).
    pub fn to_frame(&self, x: f32, y: f32) -> (f32, f32) {
        (
            (x - self.pad_left as f32) / self.content_width as f32,
            (y - self.pad_top as f32) / self.content_height as f32,
        )
    }

    /// Maps an `x1, y1, x2, y2` box in model-input pixels to a normalised frame box,
    /// clamped into the frame.
    pub fn box_to_frame(&self, b: [f32; 4]) -> BBox {
        let (x0, y0) = self.to_frame(b[0], b[1]);
        let (x1, y1) = self.to_frame(b[2], b[3]);
        BBox::new(x0, y0, x1, y1).clamped()
    }

    /// Maps a normalised frame point to model-input pixels (the forward mapping).
    pub fn to_input(&self, x: f32, y: f32) -> (f32, f32) {
        (
            x * self.content_width as f32 + self.pad_left as f32,
            y * self.content_height as f32 + self.pad_top as f32,
        )
    }
}

/// Per-axis bilinear sampling table: source indices and the Q11 weight of the second.
#[derive(Debug, Default)]
struct AxisTable {
    i0: Vec<u32>,
    i1: Vec<u32>,
    w1: Vec<u32>,
}

impl AxisTable {
    fn build(&mut self, src: u32, dst: u32) {
        self.i0.clear();
        self.i1.clear();
        self.w1.clear();
        let ratio = f64::from(src) / f64::from(dst);
        let last = f64::from(src.saturating_sub(1));
        for d in 0..dst {
            let s = ((f64::from(d) + 0.5) * ratio - 0.5).clamp(0.0, last);
            let i0 = s.floor();
            let w1 = ((s - i0) * f64::from(WEIGHT_ONE)).round() as u32;
            let i0 = i0 as u32;
            self.i0.push(i0);
            self.i1.push((i0 + 1).min(src.saturating_sub(1)));
            self.w1.push(w1.min(WEIGHT_ONE));
        }
    }
}

/// Reusable letterbox writer: caches the sampling tables and the normalisation table.
#[derive(Debug)]
pub struct LetterboxWriter {
    pre: Preprocess,
    resize: ResizeMode,
    layout: InputLayout,
    /// `lut[c][v]`: normalised value of 8-bit level `v` in model channel `c`.
    lut: [[f32; 256]; 3],
    geometry: Option<Letterbox>,
    xs: AxisTable,
    ys: AxisTable,
    /// One resized RGB row (content width x 3).
    row: Vec<u8>,
}

impl LetterboxWriter {
    /// Letterboxing into NCHW.
    pub fn new(pre: Preprocess) -> Self {
        Self::with_options(pre, ResizeMode::Letterbox, InputLayout::Nchw)
    }

    pub fn with_options(pre: Preprocess, resize: ResizeMode, layout: InputLayout) -> Self {
        let mut lut = [[0.0f32; 256]; 3];
        for (c, table) in lut.iter_mut().enumerate() {
            for (v, out) in table.iter_mut().enumerate() {
                *out = (v as f32 / 255.0 - pre.mean[c]) / pre.std[c];
            }
        }
        Self {
            pre,
            resize,
            layout,
            lut,
            geometry: None,
            xs: AxisTable::default(),
            ys: AxisTable::default(),
            row: Vec::new(),
        }
    }

    /// Writes one image: `rgb` is tightly packed RGB of `frame` size; `out` is one item in
    /// the writer's layout (`3 * input_w * input_h` values). Returns the geometry used.
    pub fn write(
        &mut self,
        rgb: &[u8],
        frame: (u32, u32),
        input: (u32, u32),
        out: &mut [f32],
    ) -> Letterbox {
        let lb = Letterbox::fit(frame, input, self.resize);
        if self.geometry != Some(lb) {
            self.xs.build(lb.frame_width, lb.content_width);
            self.ys.build(lb.frame_height, lb.content_height);
            self.geometry = Some(lb);
        }
        let (iw, ih) = (lb.input_width as usize, lb.input_height as usize);
        let plane = iw * ih;
        debug_assert_eq!(out.len(), 3 * plane);
        debug_assert_eq!(
            rgb.len(),
            3 * lb.frame_width as usize * lb.frame_height as usize
        );
        let src_channel = |c: usize| match self.pre.channel_order {
            ChannelOrder::Rgb => c,
            ChannelOrder::Bgr => 2 - c,
        };
        let pad = usize::from(self.pre.pad_value);
        let pad_rgb = [self.lut[0][pad], self.lut[1][pad], self.lut[2][pad]];
        let padded = lb.content_width != lb.input_width || lb.content_height != lb.input_height;
        if padded {
            match self.layout {
                InputLayout::Nchw => {
                    for (c, v) in pad_rgb.iter().enumerate() {
                        out[c * plane..(c + 1) * plane].fill(*v);
                    }
                }
                InputLayout::Nhwc => {
                    for px in out.chunks_exact_mut(3) {
                        px.copy_from_slice(&pad_rgb);
                    }
                }
            }
        }
        let (cw, ch) = (lb.content_width as usize, lb.content_height as usize);
        let (pl, pt) = (lb.pad_left as usize, lb.pad_top as usize);
        let stride = 3 * lb.frame_width as usize;
        self.row.resize(cw * 3, 0);
        for dy in 0..ch {
            let (y0, y1, wy1) = (
                self.ys.i0[dy] as usize,
                self.ys.i1[dy] as usize,
                self.ys.w1[dy],
            );
            let wy0 = WEIGHT_ONE - wy1;
            let (r0, r1) = (
                &rgb[y0 * stride..(y0 + 1) * stride],
                &rgb[y1 * stride..(y1 + 1) * stride],
            );
            for (dx, px) in self.row.chunks_exact_mut(3).enumerate() {
                let (x0, x1, wx1) = (
                    3 * self.xs.i0[dx] as usize,
                    3 * self.xs.i1[dx] as usize,
                    self.xs.w1[dx],
                );
                let wx0 = WEIGHT_ONE - wx1;
                for (k, p) in px.iter_mut().enumerate() {
                    let top = u32::from(r0[x0 + k]) * wx0 + u32::from(r0[x1 + k]) * wx1;
                    let bottom = u32::from(r1[x0 + k]) * wx0 + u32::from(r1[x1 + k]) * wx1;
                    let v = (u64::from(top) * u64::from(wy0)
                        + u64::from(bottom) * u64::from(wy1)
                        + (1 << (2 * WEIGHT_BITS - 1)))
                        >> (2 * WEIGHT_BITS);
                    *p = v.min(255) as u8;
                }
            }
            let row_start = (pt + dy) * iw + pl;
            match self.layout {
                InputLayout::Nchw => {
                    for c in 0..3 {
                        let lut = &self.lut[c];
                        let sc = src_channel(c);
                        let dst = &mut out[c * plane + row_start..c * plane + row_start + cw];
                        for (d, px) in dst.iter_mut().zip(self.row.chunks_exact(3)) {
                            *d = lut[usize::from(px[sc])];
                        }
                    }
                }
                InputLayout::Nhwc => {
                    let (s0, s1, s2) = (src_channel(0), src_channel(1), src_channel(2));
                    let dst = &mut out[3 * row_start..3 * (row_start + cw)];
                    for (d, px) in dst.chunks_exact_mut(3).zip(self.row.chunks_exact(3)) {
                        d[0] = self.lut[0][usize::from(px[s0])];
                        d[1] = self.lut[1][usize::from(px[s1])];
                        d[2] = self.lut[2][usize::from(px[s2])];
                    }
                }
            }
        }
        lb
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_wide_frame_pads_top_and_bottom() {
        let lb = Letterbox::new((1280, 720), (640, 640));
        assert_eq!((lb.content_width, lb.content_height), (640, 360));
        assert_eq!((lb.pad_left, lb.pad_top), (0, 140));
        let lb = Letterbox::new((100, 200), (64, 64));
        assert_eq!((lb.content_width, lb.content_height), (32, 64));
        assert_eq!((lb.pad_left, lb.pad_top), (16, 0));
    }

    #[test]
    fn inverse_mapping_is_exact() {
        let lb = Letterbox::new((128, 64), (64, 64));
        assert_eq!(
            (lb.content_width, lb.content_height, lb.pad_top),
            (64, 32, 16)
        );
        // Content corners map to the frame corners.
        assert_eq!(lb.to_frame(0.0, 16.0), (0.0, 0.0));
        assert_eq!(lb.to_frame(64.0, 48.0), (1.0, 1.0));
        assert_eq!(lb.to_frame(16.0, 24.0), (0.25, 0.25));
        let b = lb.box_to_frame([8.0, 20.0, 24.0, 40.0]);
        assert_eq!(b, BBox::new(0.125, 0.125, 0.375, 0.75));
        // Boxes reaching into the padding are clamped to the frame.
        let b = lb.box_to_frame([-4.0, 0.0, 70.0, 64.0]);
        assert_eq!(b, BBox::new(0.0, 0.0, 1.0, 1.0));
        // Forward then inverse is the identity on grid points.
        for &(x, y) in &[(0.5f32, 0.5f32), (0.25, 0.75), (1.0, 0.0)] {
            let (ix, iy) = lb.to_input(x, y);
            assert_eq!(lb.to_frame(ix, iy), (x, y));
        }
    }

    #[test]
    fn writes_padding_content_and_normalisation() {
        // 4x2 frame: left half red, right half blue, into an 8x8 input: content 8x4 at y 2.
        let mut rgb = Vec::new();
        for _y in 0..2 {
            for x in 0..4 {
                rgb.extend_from_slice(if x < 2 { &[255, 0, 0] } else { &[0, 0, 255] });
            }
        }
        let mut w = LetterboxWriter::new(Preprocess::default());
        let mut out = vec![0.0f32; 3 * 64];
        let lb = w.write(&rgb, (4, 2), (8, 8), &mut out);
        assert_eq!((lb.content_width, lb.content_height, lb.pad_top), (8, 4, 2));
        let at = |o: &[f32], c: usize, x: usize, y: usize| o[c * 64 + y * 8 + x];
        let pad = 114.0 / 255.0;
        for x in 0..8 {
            for y in [0, 1, 6, 7] {
                for c in 0..3 {
                    assert_eq!(at(&out, c, x, y), pad, "pad at c{c} {x},{y}");
                }
            }
        }
        // Far left pixels are pure red, far right pure blue (exact: no blending there).
        for y in 2..6 {
            assert_eq!(
                (at(&out, 0, 0, y), at(&out, 1, 0, y), at(&out, 2, 0, y)),
                (1.0, 0.0, 0.0)
            );
            assert_eq!(
                (at(&out, 0, 7, y), at(&out, 1, 7, y), at(&out, 2, 7, y)),
                (0.0, 0.0, 1.0)
            );
        }
        // BGR order and mean/std.
        let mut w = LetterboxWriter::new(Preprocess {
            pad_value: 0,
            mean: [0.5; 3],
            std: [0.5; 3],
            channel_order: ChannelOrder::Bgr,
        });
        let lb = w.write(&rgb, (4, 2), (8, 8), &mut out);
        assert_eq!(lb.pad_top, 2);
        assert_eq!(at(&out, 0, 0, 0), -1.0);
        assert_eq!((at(&out, 0, 0, 3), at(&out, 2, 0, 3)), (-1.0, 1.0));
        assert_eq!((at(&out, 0, 7, 3), at(&out, 2, 7, 3)), (1.0, -1.0));
    }

    #[test]
    fn stretch_fills_the_input_and_nhwc_interleaves() {
        let lb = Letterbox::stretch((1280, 720), (300, 300));
        assert_eq!((lb.content_width, lb.content_height), (300, 300));
        assert_eq!((lb.pad_left, lb.pad_top), (0, 0));
        let b = lb.box_to_frame([30.0, 150.0, 150.0, 300.0]);
        assert_eq!(b, BBox::new(0.1, 0.5, 0.5, 1.0));
        // 4x2 frame (left red, right blue) stretched into 2x2 NHWC: no padding anywhere.
        let mut rgb = Vec::new();
        for _y in 0..2 {
            for x in 0..4 {
                rgb.extend_from_slice(if x < 2 { &[255, 0, 0] } else { &[0, 0, 255] });
            }
        }
        let mut w = LetterboxWriter::with_options(
            Preprocess::default(),
            ResizeMode::Stretch,
            InputLayout::Nhwc,
        );
        let mut out = vec![9.0f32; 3 * 4];
        w.write(&rgb, (4, 2), (2, 2), &mut out);
        assert_eq!(
            out,
            vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]
        );
        // Letterboxed NHWC pads every channel of the padding pixels.
        let mut w = LetterboxWriter::with_options(
            Preprocess::default(),
            ResizeMode::Letterbox,
            InputLayout::Nhwc,
        );
        let mut out = vec![9.0f32; 3 * 16];
        let lb = w.write(&rgb, (4, 2), (4, 4), &mut out);
        assert_eq!(lb.pad_top, 1);
        let pad = 114.0 / 255.0;
        assert!(out[..12].iter().all(|v| *v == pad), "{out:?}");
        assert_eq!(&out[12..15], &[1.0, 0.0, 0.0]);
        assert_eq!(&out[21..24], &[0.0, 0.0, 1.0]);
    }

    #[test]
    fn same_size_is_a_copy_and_uniform_stays_uniform() {
        let rgb: Vec<u8> = (0..4 * 4 * 3).map(|i| (i * 5) as u8).collect();
        let mut w = LetterboxWriter::new(Preprocess::default());
        let mut out = vec![0.0f32; 3 * 16];
        w.write(&rgb, (4, 4), (4, 4), &mut out);
        for y in 0..4 {
            for x in 0..4 {
                for c in 0..3 {
                    let v = rgb[(y * 4 + x) * 3 + c];
                    assert_eq!(out[c * 16 + y * 4 + x], f32::from(v) / 255.0);
                }
            }
        }
        let white = vec![255u8; 37 * 23 * 3];
        let mut out = vec![0.0f32; 3 * 19 * 19];
        let lb = w.write(&white, (37, 23), (19, 19), &mut out);
        let plane = 19 * 19;
        for y in lb.pad_top..lb.pad_top + lb.content_height {
            for x in 0..19 {
                assert_eq!(out[(y * 19 + x) as usize], 1.0);
                assert_eq!(out[2 * plane + (y * 19 + x) as usize], 1.0);
            }
        }
    }
}
