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
        (PixelFormat::Nv12, _) => {
            let (luma, chroma) = (plane(0)?, plane(1)?);
            for (y, dst) in out.chunks_exact_mut(w * 3).enumerate() {
                let (yr, uv) = (luma.row(y), chroma.row(y / 2));
                let pairs = uv.chunks_exact(2).map(|c| (c[0], c[1]));
                yuv_row(dst, yr, pairs, swap);
            }
        }
        (PixelFormat::I420, _) => {
            let (luma, u, v) = (plane(0)?, plane(1)?, plane(2)?);
            for (y, dst) in out.chunks_exact_mut(w * 3).enumerate() {
                let (yr, ur, vr) = (luma.row(y), u.row(y / 2), v.row(y / 2));
                yuv_row(dst, yr, ur.iter().copied().zip(vr.iter().copied()), swap);
            }
        }
        _ => return Err(unsupported),
    }
    Ok(())
}

/// Converts one row: the chroma terms are computed once per pixel pair (4:2:0 shares a
/// chroma sample between two columns), the luma term once per pixel. An odd last column
/// gets its own (final) chroma sample.
fn yuv_row(dst: &mut [u8], luma: &[u8], chroma: impl Iterator<Item = (u8, u8)>, swap: bool) {
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
        let out = convert(&make(PixelFormat::I420, 3, 3, data), PixelFormat::Rgb8).unwrap();
        let rgb = out.host_data().unwrap();
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
}
