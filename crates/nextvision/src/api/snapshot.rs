//! Latest frame per feed, rendered as JPEG with detections and tracks drawn on it.

use std::collections::HashMap;
use std::sync::Arc;

use nv_core::geometry::BBox;
use nv_core::id::FeedId;
use nv_frame::convert::convert_into;
use nv_frame::PixelFormat;
use nv_runtime::SharedOutput;
use parking_lot::Mutex;

/// Keeps the newest output that carries a frame, per feed (bounded: one per feed).
#[derive(Clone, Default)]
pub struct SnapshotStore {
    latest: Arc<Mutex<HashMap<FeedId, SharedOutput>>>,
}

impl SnapshotStore {
    pub fn record(&self, output: &SharedOutput) {
        if output.frame.is_some() {
            self.latest
                .lock()
                .insert(output.feed_id, Arc::clone(output));
        }
    }

    pub fn forget(&self, id: FeedId) {
        self.latest.lock().remove(&id);
    }

    /// Keeps only feeds `live` accepts: an output recorded just after a feed's removal
    /// would otherwise hold its last frame forever.
    pub fn retain(&self, live: impl Fn(FeedId) -> bool) {
        self.latest.lock().retain(|id, _| live(*id));
    }

    /// The latest frame as JPEG, boxes drawn (detections green, tracks yellow).
    pub fn jpeg(&self, id: FeedId) -> Result<Vec<u8>, String> {
        let output = self
            .latest
            .lock()
            .get(&id)
            .cloned()
            .ok_or("no frame yet (set snapshot_fps on the feed)")?;
        let frame = output.frame.as_ref().ok_or("output without frame")?;
        let (w, h) = (frame.width(), frame.height());
        let mut rgb = Vec::new();
        convert_into(frame, PixelFormat::Rgb8, &mut rgb)
            .map_err(|e| format!("cannot convert frame: {e}"))?;
        for d in output.detections.iter() {
            draw_box(&mut rgb, w, h, &d.bbox, [0, 220, 0]);
        }
        for t in &output.tracks {
            draw_box(&mut rgb, w, h, &t.current.bbox, [240, 220, 0]);
        }
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 80)
            .encode(&rgb, w, h, image::ExtendedColorType::Rgb8)
            .map_err(|e| format!("jpeg encoding failed: {e}"))?;
        Ok(jpeg)
    }
}

/// Draws a 2-pixel rectangle outline of a normalised box onto a tight RGB buffer.
fn draw_box(rgb: &mut [u8], w: u32, h: u32, b: &BBox, color: [u8; 3]) {
    let b = b.clamped();
    let (w, h) = (w as usize, h as usize);
    if w == 0 || h == 0 {
        return;
    }
    let px = |x: f32, n: usize| ((x * n as f32) as usize).min(n - 1);
    let (x0, x1, y0, y1) = (
        px(b.x_min, w),
        px(b.x_max, w),
        px(b.y_min, h),
        px(b.y_max, h),
    );
    let mut put = |x: usize, y: usize| {
        let i = (y * w + x) * 3;
        if let Some(p) = rgb.get_mut(i..i + 3) {
            p.copy_from_slice(&color);
        }
    };
    for t in 0..2 {
        for x in x0..=x1 {
            put(x, (y0 + t).min(h - 1));
            put(x, y1.saturating_sub(t));
        }
        for y in y0..=y1 {
            put((x0 + t).min(w - 1), y);
            put(x1.saturating_sub(t), y);
        }
    }
}
