//! Plane layout: offsets and strides of each plane within a frame's bytes.

use nv_core::source::PixelFormat;

/// One plane of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plane {
    pub offset: usize,
    /// Bytes from the start of one row to the next (may exceed the row's payload).
    pub stride: usize,
    /// Payload bytes per row.
    pub row_bytes: usize,
    pub rows: usize,
}

impl Plane {
    /// Bytes needed to hold this plane (the last row needs only its payload).
    pub fn end(&self) -> usize {
        if self.rows == 0 {
            self.offset
        } else {
            self.offset + self.stride * (self.rows - 1) + self.row_bytes
        }
    }
}

/// Where each plane lives. Packed formats have one plane, NV12 two, I420 three.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameLayout {
    planes: [Plane; 3],
    plane_count: usize,
}

const EMPTY: Plane = Plane {
    offset: 0,
    stride: 0,
    row_bytes: 0,
    rows: 0,
};

/// Payload bytes per row and row count of each plane of `format` at `width` x `height`.
pub(crate) fn plane_shapes(format: PixelFormat, width: u32, height: u32) -> Vec<(usize, usize)> {
    let (w, h) = (width as usize, height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    match format.bytes_per_pixel() {
        Some(bpp) => vec![(w * bpp, h)],
        None if format == PixelFormat::Nv12 => vec![(w, h), (cw * 2, ch)],
        None => vec![(w, h), (cw, ch), (cw, ch)],
    }
}

impl FrameLayout {
    /// Planes packed back to back with no row padding.
    pub fn tight(format: PixelFormat, width: u32, height: u32) -> Self {
        let mut planes = [EMPTY; 3];
        let mut offset = 0;
        let shapes = plane_shapes(format, width, height);
        for (i, (row_bytes, rows)) in shapes.iter().enumerate() {
            planes[i] = Plane {
                offset,
                stride: *row_bytes,
                row_bytes: *row_bytes,
                rows: *rows,
            };
            offset += row_bytes * rows;
        }
        Self {
            planes,
            plane_count: shapes.len(),
        }
    }

    /// Explicit offsets and strides (as reported by a decoder). Checked by the frame builder.
    pub fn with_planes(
        format: PixelFormat,
        width: u32,
        height: u32,
        offsets_strides: &[(usize, usize)],
    ) -> Self {
        let shapes = plane_shapes(format, width, height);
        let mut planes = [EMPTY; 3];
        for (i, (row_bytes, rows)) in shapes.iter().enumerate() {
            let (offset, stride) = offsets_strides.get(i).copied().unwrap_or((0, 0));
            planes[i] = Plane {
                offset,
                stride,
                row_bytes: *row_bytes,
                rows: *rows,
            };
        }
        Self {
            planes,
            plane_count: shapes.len(),
        }
    }

    pub fn planes(&self) -> &[Plane] {
        &self.planes[..self.plane_count]
    }

    /// Minimum buffer length that holds every plane.
    pub fn required_len(&self) -> usize {
        self.planes().iter().map(Plane::end).max().unwrap_or(0)
    }
}

/// A borrowed plane.
#[derive(Clone, Copy, Debug)]
pub struct PlaneView<'a> {
    pub data: &'a [u8],
    pub stride: usize,
    pub row_bytes: usize,
    pub rows: usize,
}

impl<'a> PlaneView<'a> {
    /// Row `y`'s payload (without padding). Panics only if `y >= rows`, which callers
    /// iterate within.
    pub fn row(&self, y: usize) -> &'a [u8] {
        let start = y * self.stride;
        &self.data[start..start + self.row_bytes]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tight_sizes() {
        assert_eq!(
            FrameLayout::tight(PixelFormat::Rgb8, 4, 2).required_len(),
            24
        );
        assert_eq!(
            FrameLayout::tight(PixelFormat::Nv12, 4, 2).required_len(),
            12
        );
        assert_eq!(
            FrameLayout::tight(PixelFormat::I420, 5, 3).required_len(),
            15 + 6 + 6
        );
        assert_eq!(
            FrameLayout::tight(PixelFormat::I420, 4, 4).planes().len(),
            3
        );
    }
}
