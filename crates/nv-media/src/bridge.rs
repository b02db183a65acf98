//! Appsink sample → [`FrameEnvelope`] without copying pixels, and per-feed media time.
//!
//! The frame keeps the mapped GStreamer buffer alive in its guard, so the pixels stay where
//! the decoder wrote them. Plane offsets and strides come from the buffer's `GstVideoMeta`
//! when the decoder attached one (padded frames), otherwise from the caps' `GstVideoInfo`.

use gstreamer as gst;
use gstreamer_video as gst_video;

use nv_core::id::FeedId;
use nv_core::source::PixelFormat;
use nv_core::time::{MonotonicTs, WallTs};
use nv_frame::{FrameEnvelope, FrameLayout, HostBytes};

/// Formats handed to stages as decoded, without conversion.
pub(crate) const NATIVE_FORMATS: [PixelFormat; 6] = [
    PixelFormat::Nv12,
    PixelFormat::I420,
    PixelFormat::Gray8,
    PixelFormat::Rgb8,
    PixelFormat::Bgr8,
    PixelFormat::Rgba8,
];

/// Maps a GStreamer raw format to ours; `None` for formats that need conversion.
pub(crate) fn pixel_format(f: gst_video::VideoFormat) -> Option<PixelFormat> {
    use gst_video::VideoFormat as V;
    Some(match f {
        V::Nv12 => PixelFormat::Nv12,
        V::I420 => PixelFormat::I420,
        V::Gray8 => PixelFormat::Gray8,
        V::Rgb => PixelFormat::Rgb8,
        V::Bgr => PixelFormat::Bgr8,
        V::Rgba => PixelFormat::Rgba8,
        _ => return None,
    })
}

/// Why a sample could not become a frame.
#[derive(Debug)]
pub(crate) struct BridgeError(pub String);

/// A sample checked and mapped, ready to be stamped with a sequence number.
pub(crate) struct MappedFrame {
    mapped: gst::MappedBuffer<gst::buffer::Readable>,
    layout: FrameLayout,
    format: PixelFormat,
    width: u32,
    height: u32,
    /// Buffer PTS in nanoseconds, if any.
    pub pts: Option<u64>,
    /// Nominal frame interval from the caps' frame rate, if known.
    pub nominal_interval: Option<u64>,
}

/// Per-session bridge state: caches the parsed caps.
#[derive(Default)]
pub(crate) struct Bridge {
    cached: Option<(gst::Caps, gst_video::VideoInfo)>,
}

impl Bridge {
    fn info(&mut self, caps: &gst::CapsRef) -> Result<gst_video::VideoInfo, BridgeError> {
        if let Some((c, info)) = &self.cached {
            if c.as_ref() == caps {
                return Ok(info.clone());
            }
        }
        let info = gst_video::VideoInfo::from_caps(caps)
            .map_err(|e| BridgeError(format!("unusable caps: {e}")))?;
        self.cached = Some((caps.to_owned(), info.clone()));
        Ok(info)
    }

    /// Validates the sample's layout and maps its buffer.
    pub fn map(&mut self, sample: &gst::Sample) -> Result<MappedFrame, BridgeError> {
        let caps = sample
            .caps()
            .ok_or_else(|| BridgeError("sample without caps".into()))?;
        let info = self.info(caps)?;
        let format = pixel_format(info.format())
            .ok_or_else(|| BridgeError(format!("unexpected format {}", info.format().to_str())))?;
        let buffer = sample
            .buffer_owned()
            .ok_or_else(|| BridgeError("sample without buffer".into()))?;
        let (width, height) = (info.width(), info.height());
        let planes: Vec<(usize, usize)> = match buffer.meta::<gst_video::VideoMeta>() {
            Some(meta) => plane_pairs(meta.offset(), meta.stride(), meta.n_planes())?,
            None => plane_pairs(info.offset(), info.stride(), info.n_planes())?,
        };
        let layout = FrameLayout::with_planes(format, width, height, &planes);
        if width == 0 || height == 0 {
            return Err(BridgeError(format!("frame size {width}x{height}")));
        }
        for p in layout.planes() {
            if p.stride < p.row_bytes {
                return Err(BridgeError(format!(
                    "stride {} below row size {}",
                    p.stride, p.row_bytes
                )));
            }
        }
        let pts = buffer.pts().map(gst::ClockTime::nseconds);
        let mapped = buffer
            .into_mapped_buffer_readable()
            .map_err(|_| BridgeError("buffer not readable".into()))?;
        if mapped.len() < layout.required_len() {
            return Err(BridgeError(format!(
                "buffer of {} bytes, layout needs {}",
                mapped.len(),
                layout.required_len()
            )));
        }
        let fps = info.fps();
        let nominal_interval = (fps.numer() > 0 && fps.denom() > 0)
            .then(|| 1_000_000_000u64.saturating_mul(fps.denom() as u64) / fps.numer() as u64);
        Ok(MappedFrame {
            mapped,
            layout,
            format,
            width,
            height,
            pts,
            nominal_interval,
        })
    }
}

fn plane_pairs(
    offsets: &[usize],
    strides: &[i32],
    n_planes: u32,
) -> Result<Vec<(usize, usize)>, BridgeError> {
    (0..n_planes as usize)
        .map(|i| {
            let offset = *offsets
                .get(i)
                .ok_or_else(|| BridgeError(format!("plane {i} without offset")))?;
            let stride = strides
                .get(i)
                .and_then(|s| usize::try_from(*s).ok())
                .ok_or_else(|| BridgeError(format!("plane {i}: negative or missing stride")))?;
            Ok((offset, stride))
        })
        .collect()
}

impl MappedFrame {
    /// Builds the frame. Cannot fail on layout: `Bridge::map` checked it.
    pub fn into_frame(
        self,
        feed_id: FeedId,
        seq: u64,
        ts: MonotonicTs,
        wall_ts: WallTs,
    ) -> Result<FrameEnvelope, BridgeError> {
        let slice = self.mapped.as_slice();
        let (ptr, len) = (slice.as_ptr(), slice.len());
        // SAFETY: the mapping is read-only and owned by the guard; the memory it points to
        // stays mapped and unmodified until the guard (the MappedBuffer) is dropped, which
        // happens only when the last clone of the frame goes away.
        let bytes = unsafe { HostBytes::from_mapped(ptr, len, Box::new(self.mapped)) };
        FrameEnvelope::builder(feed_id, seq, ts, self.width, self.height, self.format)
            .layout(self.layout)
            .wall_ts(wall_ts)
            .host(bytes)
            .map_err(|e| BridgeError(e.to_string()))
    }
}

/// A timestamp discontinuity seen in the source's PTS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Discontinuity {
    pub previous_pts: u64,
    pub new_pts: u64,
}

const DEFAULT_INTERVAL_NANOS: u64 = 33_333_333;

/// Turns source PTS into media time that never goes backwards for the feed's lifetime.
///
/// Within a segment, time advances with the PTS. A new segment starts (silently) at a
/// reconnect or a loop, and (reported) when the PTS jumps forward by more than the
/// threshold or backwards by more than a frame; a new segment continues one frame
/// interval after the last time handed out.
#[derive(Debug)]
pub(crate) struct TsNormalizer {
    /// Where the first segment starts (after the feed's earlier sessions).
    start: u64,
    base: u64,
    seg_first_pts: Option<u64>,
    last_pts: Option<u64>,
    last_out: Option<u64>,
    interval: u64,
    rebase_pending: bool,
    jump_threshold: u64,
}

impl TsNormalizer {
    /// `previous_ts` is the feed's last media time from earlier sessions (0 = none).
    pub fn new(previous_ts: u64, jump_threshold_nanos: u64) -> Self {
        Self {
            start: previous_ts,
            base: 0,
            seg_first_pts: None,
            last_pts: None,
            last_out: (previous_ts > 0).then_some(previous_ts),
            interval: DEFAULT_INTERVAL_NANOS,
            rebase_pending: true,
            jump_threshold: jump_threshold_nanos.max(1),
        }
    }

    /// The next frame starts a new segment without a discontinuity report.
    pub fn rebase(&mut self) {
        self.rebase_pending = true;
    }

    fn next_after_last(&self) -> u64 {
        self.last_out
            .map_or(self.start, |l| l.saturating_add(self.interval))
    }

    /// Maps one frame's PTS to media time.
    pub fn map(
        &mut self,
        pts: Option<u64>,
        nominal_interval: Option<u64>,
    ) -> (u64, Option<Discontinuity>) {
        if let Some(i) = nominal_interval.filter(|i| *i > 0) {
            self.interval = i;
        }
        let Some(pts) = pts else {
            let out = self.next_after_last();
            self.last_out = Some(out);
            return (out, None);
        };
        let mut disc = None;
        let new_segment = match (self.rebase_pending, self.last_pts) {
            (true, _) | (_, None) => true,
            (false, Some(prev)) => {
                let backwards = prev > pts && prev - pts > self.interval;
                let jumped = pts > prev && pts - prev > self.jump_threshold;
                if backwards || jumped {
                    disc = Some(Discontinuity {
                        previous_pts: prev,
                        new_pts: pts,
                    });
                }
                backwards || jumped
            }
        };
        if new_segment {
            self.base = self.next_after_last();
            self.seg_first_pts = Some(pts);
            self.rebase_pending = false;
        }
        let first = self.seg_first_pts.unwrap_or(pts);
        let mut out = self.base.saturating_add(pts.saturating_sub(first));
        if let Some(last) = self.last_out.filter(|last| out <= *last) {
            out = last.saturating_add(1);
        }
        self.last_out = Some(out);
        self.last_pts = Some(pts);
        (out, disc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn first_session_starts_at_zero_and_follows_pts() {
        let mut n = TsNormalizer::new(0, 5_000 * MS);
        assert_eq!(n.map(Some(500 * MS), Some(40 * MS)), (0, None));
        assert_eq!(n.map(Some(540 * MS), None), (40 * MS, None));
        assert_eq!(n.map(Some(580 * MS), None), (80 * MS, None));
    }

    #[test]
    fn rebase_continues_after_last_time() {
        let mut n = TsNormalizer::new(0, 5_000 * MS);
        n.map(Some(0), Some(40 * MS));
        n.map(Some(40 * MS), None);
        n.rebase();
        // A reconnect restarts PTS at 0: time continues one frame later, silently.
        assert_eq!(n.map(Some(0), None), (80 * MS, None));
        assert_eq!(n.map(Some(40 * MS), None), (120 * MS, None));
    }

    #[test]
    fn jumps_and_resets_are_reported_and_time_stays_monotonic() {
        let mut n = TsNormalizer::new(0, 5_000 * MS);
        n.map(Some(10_000 * MS), Some(40 * MS));
        n.map(Some(10_040 * MS), None);
        let (t, d) = n.map(Some(0), None);
        assert_eq!(t, 80 * MS);
        assert_eq!(
            d,
            Some(Discontinuity {
                previous_pts: 10_040 * MS,
                new_pts: 0
            })
        );
        let (t, d) = n.map(Some(60_000 * MS), None);
        assert_eq!(t, 120 * MS);
        assert!(d.is_some());
        // Small backwards wobble: clamped, not reported.
        let (t2, d) = n.map(Some(59_990 * MS), None);
        assert!(t2 > t && d.is_none());
    }

    #[test]
    fn later_session_continues_the_feed_time() {
        let mut n = TsNormalizer::new(1_000 * MS, 5_000 * MS);
        let (t, _) = n.map(Some(0), Some(40 * MS));
        assert_eq!(t, 1_040 * MS);
        let mut m = TsNormalizer::new(0, 5_000 * MS);
        assert_eq!(m.map(None, None).0, 0);
        assert!(m.map(None, None).0 > 0);
    }
}
