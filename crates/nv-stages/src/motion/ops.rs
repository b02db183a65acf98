//! Image operations of the motion detector, on caller-owned buffers so that the
//! per-frame path never allocates once the buffers have grown to the frame size.

use nv_frame::PlaneView;

/// Area-averaging downscaler from a luma plane to the analysis grid.
#[derive(Debug, Default, Clone)]
pub(crate) struct Downscaler {
    /// First source column of each grid column, plus the end (`grid_w + 1` entries).
    col_start: Vec<usize>,
    /// First source row of each grid row, plus the end.
    row_start: Vec<usize>,
    /// Per-grid-column sums of the current grid row.
    acc: Vec<u32>,
}

impl Downscaler {
    /// Prepares the source-to-grid mapping (once per frame size).
    pub fn configure(&mut self, src_w: usize, src_h: usize, grid_w: usize, grid_h: usize) {
        fill_starts(&mut self.col_start, src_w, grid_w);
        fill_starts(&mut self.row_start, src_h, grid_h);
        self.acc.clear();
        self.acc.resize(grid_w, 0);
    }

    /// Writes the mean of each cell's footprint into `out` (`grid_w * grid_h` values).
    pub fn run(&mut self, src: &PlaneView<'_>, out: &mut [f32]) {
        let grid_w = self.acc.len();
        for (gy, out_row) in out.chunks_exact_mut(grid_w).enumerate() {
            let (y0, y1) = (self.row_start[gy], self.row_start[gy + 1]);
            self.acc.fill(0);
            for y in y0..y1.min(src.rows) {
                let row = src.row(y);
                for (gx, acc) in self.acc.iter_mut().enumerate() {
                    let (x0, x1) = (self.col_start[gx], self.col_start[gx + 1].min(row.len()));
                    if let Some(px) = row.get(x0..x1) {
                        *acc += px.iter().map(|&v| u32::from(v)).sum::<u32>();
                    }
                }
            }
            let rows = (y1 - y0).max(1);
            for (gx, (o, acc)) in out_row.iter_mut().zip(&self.acc).enumerate() {
                let cols = (self.col_start[gx + 1] - self.col_start[gx]).max(1);
                *o = *acc as f32 / (rows * cols) as f32;
            }
        }
    }
}

/// `starts[i] = floor(i * src / grid)` for `i` in `0..=grid`: every source pixel lands in
/// exactly one cell, and cells differ in size by at most one pixel.
fn fill_starts(starts: &mut Vec<usize>, src: usize, grid: usize) {
    starts.clear();
    starts.extend((0..=grid).map(|i| i * src / grid.max(1)));
}

/// Median of `cur - bg` (rounded, clamped to +-255) via a histogram: the global
/// brightness shift, robust to the minority of pixels that hold moving objects.
pub(crate) fn median_shift(cur: &[f32], bg: &[f32], hist: &mut Vec<u32>) -> f32 {
    hist.clear();
    hist.resize(511, 0);
    for (c, b) in cur.iter().zip(bg) {
        let d = (c - b).round().clamp(-255.0, 255.0) as i32;
        hist[(d + 255) as usize] += 1;
    }
    let half = (cur.len() as u32).div_ceil(2);
    let mut seen = 0;
    for (i, n) in hist.iter().enumerate() {
        seen += n;
        if seen >= half && seen > 0 {
            return i as f32 - 255.0;
        }
    }
    0.0
}

/// 3x3 erosion (`dilate == false`) or dilation of a 0/1 mask, separably (row pass into
/// `tmp`, then column pass back into `mask`). Borders replicate the edge pixel.
fn morph3(mask: &mut [u8], tmp: &mut Vec<u8>, w: usize, h: usize, dilate: bool) {
    if w == 0 || h == 0 {
        return;
    }
    let pick = |a: u8, b: u8, c: u8| {
        if dilate {
            a | b | c
        } else {
            a & b & c
        }
    };
    tmp.clear();
    tmp.resize(w * h, 0);
    for (src, dst) in mask.chunks_exact(w).zip(tmp.chunks_exact_mut(w)) {
        for x in 0..w {
            let l = src[x.saturating_sub(1)];
            let r = src[(x + 1).min(w - 1)];
            dst[x] = pick(l, src[x], r);
        }
    }
    for y in 0..h {
        let up = y.saturating_sub(1) * w;
        let down = (y + 1).min(h - 1) * w;
        let here = y * w;
        for x in 0..w {
            mask[here + x] = pick(tmp[up + x], tmp[here + x], tmp[down + x]);
        }
    }
}

/// Border width of the padded mask: each of the four 3x3 passes of [`open_close`] can
/// only spread the padding's error one cell inwards.
const PAD: usize = 4;

/// 3x3 opening (removes specks) then closing (fills pinholes) of a 0/1 mask.
///
/// The mask is first padded by replicating its border cells, i.e. the scene is assumed
/// to continue beyond the frame edge. Working on the padded copy keeps both operations
/// exact at the edges: an object cut by the frame edge keeps its edge cells through the
/// opening, and an object one cell away from the edge is not grown onto it by the
/// closing (which a per-pass border rule would do).
pub(crate) fn open_close(
    mask: &mut [u8],
    w: usize,
    h: usize,
    padded: &mut Vec<u8>,
    tmp: &mut Vec<u8>,
) {
    if w == 0 || h == 0 {
        return;
    }
    let (pw, ph) = (w + 2 * PAD, h + 2 * PAD);
    padded.clear();
    padded.resize(pw * ph, 0);
    for (py, row) in padded.chunks_exact_mut(pw).enumerate() {
        let src = &mask[py.saturating_sub(PAD).min(h - 1) * w..][..w];
        for (px, p) in row.iter_mut().enumerate() {
            *p = src[px.saturating_sub(PAD).min(w - 1)];
        }
    }
    morph3(padded, tmp, pw, ph, false);
    morph3(padded, tmp, pw, ph, true);
    morph3(padded, tmp, pw, ph, true);
    morph3(padded, tmp, pw, ph, false);
    for (y, dst) in mask.chunks_exact_mut(w).enumerate() {
        dst.copy_from_slice(&padded[(y + PAD) * pw + PAD..][..w]);
    }
}

/// A connected foreground region of the grid (inclusive bounds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Blob {
    pub x0: usize,
    pub y0: usize,
    pub x1: usize,
    pub y1: usize,
    pub area: usize,
}

/// 8-connected components of a 0/1 mask by iterative flood fill. `labels` and `stack`
/// are scratch; blobs of at least `min_area` pixels are appended to `blobs`.
pub(crate) fn components(
    mask: &[u8],
    w: usize,
    h: usize,
    min_area: usize,
    labels: &mut Vec<bool>,
    stack: &mut Vec<usize>,
    blobs: &mut Vec<Blob>,
) {
    labels.clear();
    labels.resize(w * h, false);
    for start in 0..w * h {
        if mask[start] == 0 || labels[start] {
            continue;
        }
        labels[start] = true;
        stack.clear();
        stack.push(start);
        let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
        let mut area = 0;
        while let Some(i) = stack.pop() {
            let (x, y) = (i % w, i / w);
            area += 1;
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
            for ny in y.saturating_sub(1)..=(y + 1).min(h - 1) {
                for nx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                    let j = ny * w + nx;
                    if mask[j] != 0 && !labels[j] {
                        labels[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
        if area >= min_area {
            blobs.push(Blob {
                x0,
                y0,
                x1,
                y1,
                area,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask_from(rows: &[&str]) -> (Vec<u8>, usize, usize) {
        let w = rows[0].len();
        let m = rows
            .iter()
            .flat_map(|r| r.bytes().map(|b| u8::from(b == b'#')))
            .collect();
        (m, w, rows.len())
    }

    #[test]
    fn downscale_averages_footprints() {
        // 4x2 source into 2x1 grid: means of [1,2,5,6] and [3,4,7,8].
        let data = [1u8, 2, 3, 4, 5, 6, 7, 8];
        let plane = PlaneView {
            data: &data,
            stride: 4,
            row_bytes: 4,
            rows: 2,
        };
        let mut d = Downscaler::default();
        d.configure(4, 2, 2, 1);
        let mut out = [0.0f32; 2];
        d.run(&plane, &mut out);
        assert_eq!(out, [3.5, 5.5]);
    }

    #[test]
    fn opening_removes_specks_and_closing_fills_holes() {
        let (mut m, w, h) = mask_from(&[
            "........", //
            "........", //
            "..####..", //
            "..#.##..", //
            "..####..", //
            "........", //
            "........",
        ]);
        let mut tmp = Vec::new();
        // Close: dilate then erode fills the pinhole and restores the outline.
        morph3(&mut m, &mut tmp, w, h, true);
        morph3(&mut m, &mut tmp, w, h, false);
        let (solid, _, _) = mask_from(&[
            "........", //
            "........", //
            "..####..", //
            "..####..", //
            "..####..", //
            "........", //
            "........",
        ]);
        assert_eq!(m, solid);
        // Open: erode then dilate removes a lone speck and keeps the block.
        m[6 * w + 7] = 1;
        morph3(&mut m, &mut tmp, w, h, false);
        morph3(&mut m, &mut tmp, w, h, true);
        assert_eq!(m, solid);
    }

    #[test]
    fn open_close_is_exact_at_frame_edges() {
        let (mut m, w, h) = mask_from(&[
            "..........", //
            ".###......", //
            ".###......", //
            ".###....##", //
            "........##", //
        ]);
        let expected = m.clone();
        open_close(&mut m, w, h, &mut Vec::new(), &mut Vec::new());
        // Neither grown onto the edge one cell away, nor eroded where cut by the edge.
        assert_eq!(m, expected);
    }

    #[test]
    fn finds_eight_connected_components() {
        let (m, w, h) = mask_from(&[
            "##....#", //
            "##...#.", //
            "......#", //
            ".......", //
            "###....",
        ]);
        let mut blobs = Vec::new();
        components(&m, w, h, 2, &mut Vec::new(), &mut Vec::new(), &mut blobs);
        assert_eq!(
            blobs,
            vec![
                Blob {
                    x0: 0,
                    y0: 0,
                    x1: 1,
                    y1: 1,
                    area: 4
                },
                Blob {
                    x0: 5,
                    y0: 0,
                    x1: 6,
                    y1: 2,
                    area: 3
                },
                Blob {
                    x0: 0,
                    y0: 4,
                    x1: 2,
                    y1: 4,
                    area: 3
                },
            ]
        );
    }

    #[test]
    fn median_shift_ignores_a_minority() {
        let bg = vec![100.0f32; 100];
        let mut cur = vec![110.0f32; 100];
        for c in cur.iter_mut().take(30) {
            *c = 250.0;
        }
        assert_eq!(median_shift(&cur, &bg, &mut Vec::new()), 10.0);
    }
}
