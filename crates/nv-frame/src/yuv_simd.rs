//! 4:2:0 (NV12, I420) to packed RGB/BGR through `yuvutils-rs`, which picks AVX2, SSE4.1 or
//! NEON at run time. Same maths as the scalar reference (BT.601, limited range, chroma
//! shared by each 2x2 block), in the library's 14-bit "professional" precision: results
//! agree with the scalar path within one level (tested on random frames, odd sizes and
//! padded strides included).
//!
//! The library's NV12 path is the only one with that precision, and it accepts only a
//! tight chroma plane (no row padding), so both formats run through it band by band: a
//! band's chroma rows are gathered (I420: interleaved) into a small scratch buffer first.

use yuvutils_rs::{YuvBiPlanarImage, YuvConversionMode, YuvRange, YuvStandardMatrix};

use crate::convert::ConvertError;
use crate::layout::PlaneView;

/// Chroma scratch per band, on the stack so converting allocates nothing (8 chroma rows
/// of 1080p; only frames wider than 16,384 pixels fall back to a heap buffer).
const BAND_BYTES: usize = 16 * 1024;

fn to_u32(v: usize, what: &str) -> Result<u32, ConvertError> {
    u32::try_from(v).map_err(|_| ConvertError::Layout {
        detail: format!("{what} {v} exceeds u32"),
    })
}

/// Converts luma rows `[0, rows)` of `y` with chroma rows `[0, ceil(rows / 2))` of `uv`
/// (interleaved U,V) into `out` (tight, `width * 3` per row).
#[allow(
    clippy::too_many_arguments,
    reason = "one plane pair, its strides and the output: grouping them adds nothing"
)]
fn nv12_band(
    y: &[u8],
    y_stride: usize,
    uv: &[u8],
    uv_stride: usize,
    width: usize,
    rows: usize,
    out: &mut [u8],
    bgr: bool,
) -> Result<(), ConvertError> {
    let image = YuvBiPlanarImage {
        y_plane: y,
        y_stride: to_u32(y_stride, "luma stride")?,
        uv_plane: uv,
        uv_stride: to_u32(uv_stride, "chroma stride")?,
        width: to_u32(width, "width")?,
        height: to_u32(rows, "height")?,
    };
    let convert = if bgr {
        yuvutils_rs::yuv_nv12_to_bgr
    } else {
        yuvutils_rs::yuv_nv12_to_rgb
    };
    convert(
        &image,
        out,
        to_u32(width * 3, "row bytes")?,
        YuvRange::Limited,
        YuvStandardMatrix::Bt601,
        YuvConversionMode::Professional,
    )
    .map_err(|e| ConvertError::Layout {
        detail: e.to_string(),
    })
}

/// Chroma rows for one band, written interleaved (U, V) into a tight row of `dst`.
trait ChromaSource {
    fn gather(&self, row: usize, dst: &mut [u8]);
}

struct Interleaved<'a>(&'a PlaneView<'a>);
struct Planar<'a>(&'a PlaneView<'a>, &'a PlaneView<'a>);

impl ChromaSource for Interleaved<'_> {
    fn gather(&self, row: usize, dst: &mut [u8]) {
        dst.copy_from_slice(self.0.row(row));
    }
}

impl ChromaSource for Planar<'_> {
    fn gather(&self, row: usize, dst: &mut [u8]) {
        for ((d, u), v) in dst
            .chunks_exact_mut(2)
            .zip(self.0.row(row))
            .zip(self.1.row(row))
        {
            d[0] = *u;
            d[1] = *v;
        }
    }
}

/// Converts band by band: the library accepts only a tight interleaved chroma plane, so
/// each band's chroma rows are gathered into a scratch buffer first.
fn convert_bands(
    luma: &PlaneView<'_>,
    chroma: &dyn ChromaSource,
    (width, height): (usize, usize),
    out: &mut [u8],
    bgr: bool,
) -> Result<(), ConvertError> {
    let chroma_rows = height.div_ceil(2);
    let uv_stride = width.div_ceil(2) * 2;
    // The library walks luma in whole strides, so a last row without its padding (as
    // decoders lay frames out) would be skipped: rows of the last chroma row go scalar.
    let simd_chroma_rows = if luma.data.len() < luma.stride * height {
        chroma_rows - 1
    } else {
        chroma_rows
    };
    let band_chroma_rows = (BAND_BYTES / uv_stride).clamp(1, chroma_rows);
    let mut stack = [0u8; BAND_BYTES];
    let mut heap = Vec::new();
    let uv: &mut [u8] = if band_chroma_rows * uv_stride <= BAND_BYTES {
        &mut stack[..band_chroma_rows * uv_stride]
    } else {
        heap.resize(band_chroma_rows * uv_stride, 0);
        &mut heap
    };
    let mut first = 0;
    while first < simd_chroma_rows {
        let n = band_chroma_rows.min(simd_chroma_rows - first);
        for (i, dst) in uv.chunks_exact_mut(uv_stride).take(n).enumerate() {
            chroma.gather(first + i, dst);
        }
        let y0 = first * 2;
        let rows = (n * 2).min(height - y0);
        nv12_band(
            &luma.data[y0 * luma.stride..],
            luma.stride,
            &uv[..n * uv_stride],
            uv_stride,
            width,
            rows,
            &mut out[y0 * width * 3..(y0 + rows) * width * 3],
            bgr,
        )?;
        first += n;
    }
    if simd_chroma_rows < chroma_rows {
        let row_uv = &mut uv[..uv_stride];
        chroma.gather(simd_chroma_rows, row_uv);
        for y in simd_chroma_rows * 2..height {
            let pairs = row_uv.chunks_exact(2).map(|c| (c[0], c[1]));
            let dst = &mut out[y * width * 3..(y + 1) * width * 3];
            crate::convert::yuv_row(dst, luma.row(y), pairs, bgr);
        }
    }
    Ok(())
}

/// `out` holds `width * height * 3` bytes, tightly packed; `width`, `height` > 0.
pub(crate) fn nv12_to_rgb(
    luma: &PlaneView<'_>,
    chroma: &PlaneView<'_>,
    size: (usize, usize),
    out: &mut [u8],
    bgr: bool,
) -> Result<(), ConvertError> {
    convert_bands(luma, &Interleaved(chroma), size, out, bgr)
}

/// `out` holds `width * height * 3` bytes, tightly packed; `width`, `height` > 0.
pub(crate) fn i420_to_rgb(
    [y, u, v]: [&PlaneView<'_>; 3],
    size: (usize, usize),
    out: &mut [u8],
    bgr: bool,
) -> Result<(), ConvertError> {
    convert_bands(y, &Planar(u, v), size, out, bgr)
}
