//! Opt-in pixel format conversion. The only code in nv-frame that allocates pixel memory.

use nv_core::source::PixelFormat;

use crate::bytes::HostBytes;
use crate::frame::{FrameAccessError, FrameEnvelope};
use crate::layout::PlaneView;

/// Conversion failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    #[error("conversion from {from} to {to} is not supported")]
    Unsupported { from: PixelFormat, to: PixelFormat },
    #[error(transparent)]
    Access(#[from] FrameAccessError),
    #[error("frame plane {plane} is missing or truncated")]
    TruncatedPlane { plane: usize },
    #[error("colour conversion rejected the frame layout: {detail}")]
    Layout { detail: String },
}

/// Converts to `target` (Rgb8, Bgr8 or Gray8), returning a new frame with the same
/// identity, timestamps and metadata. Converting to the frame's own format returns a
/// clone of the same allocation.
pub fn convert(frame: &FrameEnvelope, target: PixelFormat) -> Result<FrameEnvelope, ConvertError> {
    if frame.format() == target {
        return Ok(frame.clone());
    }
    let mut out = Vec::new();
    convert_into(frame, target, &mut out)?;
    FrameEnvelope::builder(
        frame.feed_id(),
        frame.seq(),
        frame.ts(),
        frame.width(),
        frame.height(),
        target,
    )
    .wall_ts(frame.wall_ts())
    .metadata(frame.metadata().clone())
    .host(HostBytes::from_vec(out))
    .map_err(|_| ConvertError::TruncatedPlane { plane: 0 })
}

/// Converts into a caller-owned buffer (reused across frames by hot paths). The output is
/// tightly packed.
pub fn convert_into(
    frame: &FrameEnvelope,
    target: PixelFormat,
    out: &mut Vec<u8>,
) -> Result<(), ConvertError> {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let unsupported = ConvertError::Unsupported {
        from: frame.format(),
        to: target,
    };
    let out_bpp = match target {
        PixelFormat::Rgb8 | PixelFormat::Bgr8 => 3,
        PixelFormat::Gray8 => 1,
        _ => return Err(unsupported),
    };
    out.clear();
    out.resize(w * h * out_bpp, 0);
    let plane = |i: usize| -> Result<PlaneView<'_>, ConvertError> {
        frame
            .plane(i)?
            .ok_or(ConvertError::TruncatedPlane { plane: i })
    };
    let swap = target == PixelFormat::Bgr8;
    match (frame.format(), target) {
        (
            PixelFormat::Rgb8 | PixelFormat::Bgr8 | PixelFormat::Rgba8,
            PixelFormat::Rgb8 | PixelFormat::Bgr8,
        ) => {
            let src = plane(0)?;
            let in_bpp = frame.format().bytes_per_pixel().unwrap_or(3);
            let src_is_bgr = frame.format() == PixelFormat::Bgr8;
            for (y, dst) in out.chunks_exact_mut(w * 3).enumerate() {
                for (px, d) in src.row(y).chunks_exact(in_bpp).zip(dst.chunks_exact_mut(3)) {
                    let (r, g, b) = if src_is_bgr {
                        (px[2], px[1], px[0])
                    } else {
                        (px[0], px[1], px[2])
                    };
                    d.copy_from_slice(&if swap { [b, g, r] } else { [r, g, b] });
                }
            }
        }
        (PixelFormat::Rgb8 | PixelFormat::Bgr8 | PixelFormat::Rgba8, PixelFormat::Gray8) => {
            let src = plane(0)?;
            let in_bpp = frame.format().bytes_per_pixel().unwrap_or(3);
            let src_is_bgr = frame.format() == PixelFormat::Bgr8;
            for (y, dst) in out.chunks_exact_mut(w).enumerate() {
                for (px, d) in src.row(y).chunks_exact(in_bpp).zip(dst.iter_mut()) {
                    let (r, g, b) = if src_is_bgr {
                        (px[2], px[1], px[0])
                    } else {
                        (px[0], px[1], px[2])
                    };
                    *d = luma_from_rgb(r, g, b);
                }
            }
        }
        (PixelFormat::Gray8 | PixelFormat::Nv12 | PixelFormat::I420, PixelFormat::Gray8) => {
            let src = plane(0)?;
            for (y, dst) in out.chunks_exact_mut(w).enumerate() {
                dst.copy_from_slice(src.row(y));
            }
        }
        (PixelFormat::Gray8, _) => {
            let src = plane(0)?;
            for (y, dst) in out.chunks_exact_mut(w * 3).enumerate() {
                for (v, d) in src.row(y).iter().zip(dst.chunks_exact_mut(3)) {
                    d.fill(*v);
                }
            }
        }
        // Empty frames have nothing to convert (and the SIMD library refuses zero sizes).
        (PixelFormat::Nv12 | PixelFormat::I420, _) if out.is_empty() => {}
        (PixelFormat::Nv12, _) => {
            let (luma, chroma) = (plane(0)?, plane(1)?);
            crate::yuv_simd::nv12_to_rgb(&luma, &chroma, (w, h), out, swap)?;
        }
        (PixelFormat::I420, _) => {
            let (luma, u, v) = (plane(0)?, plane(1)?, plane(2)?);
            crate::yuv_simd::i420_to_rgb([&luma, &u, &v], (w, h), out, swap)?;
        }
        _ => return Err(unsupported),
    }
    Ok(())
}

/// The scalar integer path for NV12/I420 to Rgb8/Bgr8, kept as the exactness reference
/// of the SIMD path that [`convert_into`] uses (tests and the conversion benchmark compare
/// the two). Other formats are refused.
pub fn yuv420_reference_into(
    frame: &FrameEnvelope,
    target: PixelFormat,
    out: &mut Vec<u8>,
) -> Result<(), ConvertError> {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    if !matches!(target, PixelFormat::Rgb8 | PixelFormat::Bgr8) {
        return Err(ConvertError::Unsupported {
            from: frame.format(),
            to: target,
        });
    }
    out.clear();
    out.resize(w * h * 3, 0);
    yuv420_scalar(frame, target, out)
}

/// The scalar 4:2:0 conversion into `out`, already sized `width * height * 3`.
fn yuv420_scalar(
    frame: &FrameEnvelope,
    target: PixelFormat,
    out: &mut [u8],
) -> Result<(), ConvertError> {
    let w = frame.width() as usize;
    let swap = target == PixelFormat::Bgr8;
    let plane = |i: usize| -> Result<PlaneView<'_>, ConvertError> {
        frame
            .plane(i)?
            .ok_or(ConvertError::TruncatedPlane { plane: i })
    };
    match frame.format() {
        PixelFormat::Nv12 => {
            let (luma, chroma) = (plane(0)?, plane(1)?);
            for (y, dst) in out.chunks_exact_mut(w * 3).enumerate() {
                let (yr, uv) = (luma.row(y), chroma.row(y / 2));
                let pairs = uv.chunks_exact(2).map(|c| (c[0], c[1]));
                yuv_row(dst, yr, pairs, swap);
            }
        }
        PixelFormat::I420 => {
            let (luma, u, v) = (plane(0)?, plane(1)?, plane(2)?);
            for (y, dst) in out.chunks_exact_mut(w * 3).enumerate() {
                let (yr, ur, vr) = (luma.row(y), u.row(y / 2), v.row(y / 2));
                yuv_row(dst, yr, ur.iter().copied().zip(vr.iter().copied()), swap);
            }
        }
        from => return Err(ConvertError::Unsupported { from, to: target }),
    }
    Ok(())
}

/// Converts one row: the chroma terms are computed once per pixel pair (4:2:0 shares a
/// chroma sample between two columns), the luma term once per pixel. An odd last column
/// gets its own (final) chroma sample.
pub(crate) fn yuv_row(
    dst: &mut [u8],
    luma: &[u8],
    chroma: impl Iterator<Item = (u8, u8)>,
    swap: bool,
) {
    let clip = |x: i32| x.clamp(0, 255) as u8;
    let pixels = dst.chunks_mut(6).zip(luma.chunks(2)).zip(chroma);
    for ((d, ys), (u, v)) in pixels {
        let (du, dv) = (i32::from(u) - 128, i32::from(v) - 128);
        let (r_c, g_c, b_c) = (409 * dv + 128, -100 * du - 208 * dv + 128, 516 * du + 128);
        for (px, &y) in d.chunks_exact_mut(3).zip(ys) {
            let c = 298 * (i32::from(y) - 16);
            let (r, g, b) = (
                clip((c + r_c) >> 8),
                clip((c + g_c) >> 8),
                clip((c + b_c) >> 8),
            );
            px.copy_from_slice(&if swap { [b, g, r] } else { [r, g, b] });
        }
    }
}

/// BT.601 luma, integer weights (77, 150, 29) / 256, rounded.
pub fn luma_from_rgb(r: u8, g: u8, b: u8) -> u8 {
    ((77 * u32::from(r) + 150 * u32::from(g) + 29 * u32::from(b) + 128) >> 8) as u8
}

/// BT.601 limited-range YUV to RGB, integer arithmetic.
pub fn yuv_to_rgb(y: u8, u: u8, v: u8) -> (u8, u8, u8) {
    let c = i32::from(y) - 16;
    let d = i32::from(u) - 128;
    let e = i32::from(v) - 128;
    let clip = |x: i32| x.clamp(0, 255) as u8;
    (
        clip((298 * c + 409 * e + 128) >> 8),
        clip((298 * c - 100 * d - 208 * e + 128) >> 8),
        clip((298 * c + 516 * d + 128) >> 8),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::FrameLayout;
    use nv_core::id::FeedId;
    use nv_core::time::MonotonicTs;

    fn make(format: PixelFormat, w: u32, h: u32, data: Vec<u8>) -> FrameEnvelope {
        FrameEnvelope::new_owned(
            FeedId::new(1),
            3,
            MonotonicTs::from_nanos(5),
            w,
            h,
            format,
            data,
        )
        .unwrap()
    }

    #[test]
    fn rgb_bgr_gray_roundtrip() {
        let rgb = make(PixelFormat::Rgb8, 2, 1, vec![255, 0, 0, 0, 0, 255]);
        let bgr = convert(&rgb, PixelFormat::Bgr8).unwrap();
        assert_eq!(bgr.host_data().unwrap(), &[0, 0, 255, 255, 0, 0]);
        assert_eq!(bgr.seq(), 3);
        let back = convert(&bgr, PixelFormat::Rgb8).unwrap();
        assert_eq!(back.host_data().unwrap(), rgb.host_data().unwrap());
        let gray = convert(&rgb, PixelFormat::Gray8).unwrap();
        assert_eq!(
            gray.host_data().unwrap(),
            &[luma_from_rgb(255, 0, 0), luma_from_rgb(0, 0, 255)]
        );
        assert!(convert(&rgb, PixelFormat::Rgb8).unwrap().ptr_eq(&rgb));
        assert!(matches!(
            convert(&rgb, PixelFormat::Nv12),
            Err(ConvertError::Unsupported { .. })
        ));
    }

    #[test]
    fn nv12_and_i420_agree() {
        // 2x2: Y = 16, 81, 145, 235; one chroma sample.
        let nv12 = make(PixelFormat::Nv12, 2, 2, vec![16, 81, 145, 235, 90, 240]);
        let i420 = make(PixelFormat::I420, 2, 2, vec![16, 81, 145, 235, 90, 240]);
        let a = convert(&nv12, PixelFormat::Rgb8).unwrap();
        let b = convert(&i420, PixelFormat::Rgb8).unwrap();
        assert_eq!(a.host_data().unwrap(), b.host_data().unwrap());
        assert_eq!(
            &a.host_data().unwrap()[..3],
            &[
                yuv_to_rgb(16, 90, 240).0,
                yuv_to_rgb(16, 90, 240).1,
                yuv_to_rgb(16, 90, 240).2
            ]
        );
        let gray = convert(&nv12, PixelFormat::Gray8).unwrap();
        assert_eq!(gray.host_data().unwrap(), &[16, 81, 145, 235]);
    }

    #[test]
    fn odd_sizes_match_the_per_pixel_formula() {
        // 3x3 I420: chroma planes are 2x2.
        let y: Vec<u8> = (0..9).map(|i| 20 + i * 25).collect();
        let (u, v) = ([60u8, 90, 120, 150], [200u8, 170, 140, 110]);
        let data = [y.clone(), u.to_vec(), v.to_vec()].concat();
        // The scalar reference is exact; the SIMD path is held to it by the tests below.
        let mut rgb = Vec::new();
        yuv420_reference_into(
            &make(PixelFormat::I420, 3, 3, data),
            PixelFormat::Rgb8,
            &mut rgb,
        )
        .unwrap();
        for py in 0..3 {
            for px in 0..3 {
                let c = (py / 2) * 2 + px / 2;
                let (r, g, b) = yuv_to_rgb(y[py * 3 + px], u[c], v[c]);
                let i = (py * 3 + px) * 3;
                assert_eq!(&rgb[i..i + 3], &[r, g, b], "pixel {px},{py}");
            }
        }
    }

    #[test]
    fn yuv_reference_points() {
        assert_eq!(yuv_to_rgb(16, 128, 128), (0, 0, 0));
        assert_eq!(yuv_to_rgb(235, 128, 128), (255, 255, 255));
        let (r, g, b) = yuv_to_rgb(81, 90, 240);
        assert!(
            r > 240 && g < 10 && b < 10,
            "pure red in BT.601: {r} {g} {b}"
        );
    }

    #[test]
    fn respects_stride_padding() {
        let layout = FrameLayout::with_planes(PixelFormat::Rgb8, 1, 2, &[(0, 4)]);
        let f = FrameEnvelope::builder(
            FeedId::new(1),
            0,
            MonotonicTs::ZERO,
            1,
            2,
            PixelFormat::Rgb8,
        )
        .layout(layout)
        .host(HostBytes::from_vec(vec![1, 2, 3, 99, 4, 5, 6]))
        .unwrap();
        let bgr = convert(&f, PixelFormat::Bgr8).unwrap();
        assert_eq!(bgr.host_data().unwrap(), &[3, 2, 1, 6, 5, 4]);
    }

    /// Pseudo-random bytes (xorshift), so failures reproduce.
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    /// Maps bytes into BT.601's legal ranges: luma 16..=235 for the first `luma_len`
    /// bytes, chroma 16..=240 after. (Outside them the SIMD library clamps luma to 16..=235
    /// before converting; the scalar path does not. See docs/dependencies.md.)
    fn legal_range(mut data: Vec<u8>, luma_len: usize) -> Vec<u8> {
        for (i, v) in data.iter_mut().enumerate() {
            let span = if i < luma_len { 219 } else { 224 };
            *v = 16 + (u32::from(*v) * span / 255) as u8;
        }
        data
    }

    fn max_level_difference(a: &[u8], b: &[u8]) -> u8 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| x.abs_diff(*y))
            .max()
            .unwrap_or(0)
    }

    proptest::proptest! {
        /// The SIMD path agrees with the scalar reference within one level on any
        /// content, size (odd included) and row padding, for both formats and targets.
        #[test]
        fn simd_matches_scalar_reference(
            w in 1u32..70,
            h in 1u32..12,
            pad in 0usize..9,
            seed in proptest::prelude::any::<u64>(),
            nv12 in proptest::prelude::any::<bool>(),
            bgr in proptest::prelude::any::<bool>(),
        ) {
            let format = if nv12 { PixelFormat::Nv12 } else { PixelFormat::I420 };
            let target = if bgr { PixelFormat::Bgr8 } else { PixelFormat::Rgb8 };
            let (wu, hu) = (w as usize, h as usize);
            let (cw, ch) = (wu.div_ceil(2), hu.div_ceil(2));
            // Padded strides, planes back to back.
            let y_stride = wu + pad;
            let c_row = if nv12 { cw * 2 } else { cw };
            let c_stride = c_row + pad;
            let y_len = y_stride * hu;
            let c_len = c_stride * ch;
            let mut planes = vec![(0, y_stride), (y_len, c_stride)];
            if !nv12 {
                planes.push((y_len + c_len, c_stride));
            }
            let total = y_len + c_len * (planes.len() - 1);
            let layout = FrameLayout::with_planes(format, w, h, &planes);
            let frame = FrameEnvelope::builder(FeedId::new(1), 0, MonotonicTs::ZERO, w, h, format)
                .layout(layout)
                .host(HostBytes::from_vec(legal_range(noise(total, seed), y_len)))
                .unwrap();
            let (mut fast, mut slow) = (Vec::new(), Vec::new());
            convert_into(&frame, target, &mut fast).unwrap();
            yuv420_reference_into(&frame, target, &mut slow).unwrap();
            let d = max_level_difference(&fast, &slow);
            proptest::prop_assert!(d <= 1, "{w}x{h} pad {pad}: {d} levels apart");
        }
    }

    #[test]
    fn simd_matches_scalar_on_a_720p_frame() {
        let (w, h) = (1280u32, 720u32);
        for format in [PixelFormat::Nv12, PixelFormat::I420] {
            let frame = make(
                format,
                w,
                h,
                legal_range(noise(1280 * 720 * 3 / 2, 42), 1280 * 720),
            );
            let (mut fast, mut slow) = (Vec::new(), Vec::new());
            convert_into(&frame, PixelFormat::Rgb8, &mut fast).unwrap();
            yuv420_reference_into(&frame, PixelFormat::Rgb8, &mut slow).unwrap();
            assert!(max_level_difference(&fast, &slow) <= 1, "{format}");
        }
    }
}
