//! Latest frame per feed, rendered as an annotated JPEG: boxes labelled with track id,
//! class and confidence, the feed's zones and lines with their counts, the feed name and
//! the frame's wall-clock time.
//!
//! A frame is encoded at most once, however many snapshot requests and MJPEG clients
//! ask for it: the JPEG of the newest frame is kept until a newer frame replaces it.

use std::collections::HashMap;
use std::sync::Arc;

use nv_core::geometry::Point2;
use nv_core::id::FeedId;
use nv_frame::convert::convert_into;
use nv_frame::PixelFormat;
use nv_perception::Detection;
use nv_runtime::{OutputEnvelope, SharedOutput};
use parking_lot::Mutex;
use tokio::sync::watch;

use super::annotate::{self, Canvas, LabelledBox, LineShape, Overlay, ZoneShape};
use super::event_snapshots::EventSnapshots;

/// JPEG quality of snapshots and stream frames.
const JPEG_QUALITY: u8 = 80;

/// One feed's newest frame, its drawing context and the encoded JPEG of that frame.
struct Entry {
    latest: Option<SharedOutput>,
    name: String,
    overlay: Overlay,
    /// `(frame_seq, width, jpeg)` of the newest frame, per width asked for (few: widths
    /// are rounded, and the list is cleared on every new frame).
    encoded: Vec<(u64, u32, Arc<[u8]>)>,
    /// Counts recorded frames; MJPEG streams wait on it.
    frames: watch::Sender<u64>,
}

impl Entry {
    fn new() -> Self {
        Self {
            latest: None,
            name: String::new(),
            overlay: Overlay::default(),
            encoded: Vec::new(),
            frames: watch::channel(0).0,
        }
    }
}

/// Keeps the newest output that carries a frame, per feed (bounded: one per feed).
#[derive(Clone, Default)]
pub struct SnapshotStore {
    feeds: Arc<Mutex<HashMap<FeedId, Entry>>>,
}

impl SnapshotStore {
    pub fn record(&self, output: &SharedOutput) {
        if output.frame.is_none() {
            return;
        }
        let mut feeds = self.feeds.lock();
        let e = feeds.entry(output.feed_id).or_insert_with(Entry::new);
        e.latest = Some(Arc::clone(output));
        e.encoded.clear();
        e.frames.send_modify(|n| *n += 1);
    }

    /// Sets the name and the zones and lines drawn on a feed's frames (counts are taken
    /// from each frame's zone artifacts when the overlay has none).
    pub fn set_overlay(&self, id: FeedId, name: &str, overlay: Overlay) {
        let mut feeds = self.feeds.lock();
        let e = feeds.entry(id).or_insert_with(Entry::new);
        name.clone_into(&mut e.name);
        e.overlay = overlay;
        e.encoded.clear();
    }

    pub fn forget(&self, id: FeedId) {
        self.feeds.lock().remove(&id);
    }

    /// Keeps only feeds `live` accepts: an output recorded just after a feed's removal
    /// would otherwise hold its last frame forever.
    pub fn retain(&self, live: impl Fn(FeedId) -> bool) {
        self.feeds.lock().retain(|id, _| live(*id));
    }

    /// A receiver that changes on each new frame of the feed; it closes when the feed
    /// is forgotten.
    pub fn frames(&self, id: FeedId) -> watch::Receiver<u64> {
        self.feeds
            .lock()
            .entry(id)
            .or_insert_with(Entry::new)
            .frames
            .subscribe()
    }

    /// The newest frame as annotated JPEG with its frame number and width. `max_width`
    /// asks for a smaller image (drawn at that size, so labels stay legible): it is
    /// rounded up to a multiple of [`WIDTH_STEP`] and never exceeds the frame's width.
    pub fn jpeg(
        &self,
        id: FeedId,
        max_width: Option<u32>,
    ) -> Result<(u64, u32, Arc<[u8]>), String> {
        let (output, name, overlay, width) = {
            let feeds = self.feeds.lock();
            let Some((e, output)) = feeds
                .get(&id)
                .and_then(|e| e.latest.clone().map(|o| (e, o)))
            else {
                return Err("no frame yet (set snapshot_fps on the feed)".into());
            };
            let full = output.frame.as_ref().map_or(0, |f| f.width());
            let width = max_width.map_or(full, |w| {
                w.max(1)
                    .div_ceil(WIDTH_STEP)
                    .saturating_mul(WIDTH_STEP)
                    .min(full)
            });
            if let Some((seq, _, jpeg)) = e
                .encoded
                .iter()
                .find(|(seq, w, _)| *seq == output.frame_seq && *w == width)
            {
                return Ok((*seq, width, Arc::clone(jpeg)));
            }
            (output, e.name.clone(), e.overlay.clone(), width)
        };
        // Encoded outside the lock; concurrent first requests may both encode one frame.
        let jpeg: Arc<[u8]> = render(&output, &name, &overlay, width)?.into();
        if let Some(e) = self.feeds.lock().get_mut(&id) {
            if e.latest
                .as_ref()
                .is_some_and(|l| l.frame_seq == output.frame_seq)
            {
                if e.encoded.len() >= MAX_ENCODED_WIDTHS {
                    e.encoded.remove(0);
                }
                e.encoded.push((output.frame_seq, width, Arc::clone(&jpeg)));
            }
        }
        Ok((output.frame_seq, width, jpeg))
    }

    /// The feed's overlay with the counts of its newest frame.
    pub fn overlay_with_counts(&self, id: FeedId) -> Overlay {
        let feeds = self.feeds.lock();
        let Some(e) = feeds.get(&id) else {
            return Overlay::default();
        };
        match &e.latest {
            Some(o) => with_counts(&e.overlay, o),
            None => e.overlay.clone(),
        }
    }

    /// Renders `output` (the frame an event fired on) with its feed's overlay and keeps
    /// it in `store` under `event_id`; reuses the JPEG when it is the newest frame's.
    pub fn capture_event(
        &self,
        store: &EventSnapshots,
        event_ids: &[String],
        output: &OutputEnvelope,
    ) -> Result<(), String> {
        let (name, overlay, encoded) = {
            let feeds = self.feeds.lock();
            let e = feeds.get(&output.feed_id);
            (
                e.map(|e| e.name.clone()).unwrap_or_default(),
                e.map(|e| e.overlay.clone()).unwrap_or_default(),
                e.and_then(|e| {
                    e.encoded
                        .iter()
                        .find(|(seq, w, _)| {
                            *seq == output.frame_seq
                                && output.frame.as_ref().is_some_and(|f| f.width() == *w)
                        })
                        .map(|(_, _, jpeg)| Arc::clone(jpeg))
                }),
            )
        };
        let jpeg = match encoded {
            Some(jpeg) => jpeg,
            None => render(output, &name, &overlay, u32::MAX)?.into(),
        };
        for id in event_ids {
            store
                .insert(id, Arc::clone(&jpeg))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// The zones and lines of a feed's `zones` stages, without counts.
pub fn overlay_of(stages: &[nv_stages::StageConfig]) -> Overlay {
    let mut o = Overlay::default();
    let p = |[x, y]: [f32; 2]| Point2::new(x, y);
    for s in stages {
        if let nv_stages::StageConfig::Zones(z) = s {
            o.zones.extend(z.zones.iter().map(|z| ZoneShape {
                name: z.name.clone(),
                points: z.points.iter().copied().map(p).collect(),
                occupancy: None,
            }));
            o.lines.extend(z.lines.iter().map(|l| LineShape {
                name: l.name.clone(),
                from: p(l.from),
                to: p(l.to),
                crossings: None,
            }));
        }
    }
    o
}

/// The zones and lines of a zone configuration (after a run-time edit), without counts.
pub fn overlay_of_zones(c: &nv_stages::ZoneConfig) -> Overlay {
    Overlay {
        zones: c
            .zones
            .iter()
            .map(|z| ZoneShape {
                name: z.name.clone(),
                points: z.polygon.vertices.clone(),
                occupancy: None,
            })
            .collect(),
        lines: c
            .lines
            .iter()
            .map(|l| LineShape {
                name: l.name.clone(),
                from: l.start,
                to: l.end,
                crossings: None,
            })
            .collect(),
    }
}

/// Fills the counts the overlay lacks from the frame's zone artifact.
fn with_counts(overlay: &Overlay, output: &OutputEnvelope) -> Overlay {
    let mut o = overlay.clone();
    let Some(z) = output.metadata.get::<nv_stages::ZoneEvents>() else {
        return o;
    };
    for shape in &mut o.zones {
        if shape.occupancy.is_none() {
            shape.occupancy = z
                .occupancy
                .iter()
                .find(|(n, _)| **n == *shape.name)
                .map(|(_, k)| *k as u64);
        }
    }
    for shape in &mut o.lines {
        if shape.crossings.is_none() {
            shape.crossings = z
                .line_totals
                .iter()
                .find(|(n, _, _)| **n == *shape.name)
                .map(|(_, lr, rl)| (*lr, *rl));
        }
    }
    o
}

/// A class's display name: the model's name for it when the detector gave one, else the
/// feed's name for the class id, else `c<id>`.
fn class_text(output: &OutputEnvelope, d: Option<&Detection>, class_id: u32) -> String {
    #[cfg(feature = "model")]
    if let Some(n) = d.and_then(|d| d.metadata.get::<nv_stages::model::ClassName>()) {
        return n.0.to_string();
    }
    let _ = d;
    match output.class_names.as_deref().and_then(|n| n.get(class_id)) {
        Some(name) => name.to_owned(),
        None => format!("c{class_id}"),
    }
}

/// The boxes to draw: every track (`#id class confidence`), and the detections no track
/// follows (`class confidence`).
pub fn labelled_boxes(output: &OutputEnvelope) -> Vec<LabelledBox> {
    let dets = &output.detections;
    let by_id: HashMap<_, &Detection> = dets.iter().map(|d| (d.id, d)).collect();
    let followed: std::collections::HashSet<_> = output
        .tracks
        .iter()
        .filter_map(|t| t.current.detection_id)
        .collect();
    let mut boxes: Vec<LabelledBox> = dets
        .iter()
        .filter(|d| !followed.contains(&d.id))
        .map(|d| LabelledBox {
            bbox: d.bbox,
            color: annotate::DETECTION,
            label: format!(
                "{} {:.2}",
                class_text(output, Some(d), d.class_id),
                d.confidence
            ),
        })
        .collect();
    boxes.extend(output.tracks.iter().map(|t| {
        let det = t
            .current
            .detection_id
            .and_then(|id| by_id.get(&id).copied());
        LabelledBox {
            bbox: t.current.bbox,
            color: annotate::TRACK,
            label: format!(
                "#{} {} {:.2}",
                t.id.as_u64(),
                class_text(output, det, t.class_id),
                t.current.confidence
            ),
        }
    }));
    boxes
}

/// Draws the output's boxes, the overlay (with counts) and the captions on its frame,
/// shrunk to `width` when that is narrower, and encodes it as JPEG.
pub fn render(
    output: &OutputEnvelope,
    name: &str,
    overlay: &Overlay,
    width: u32,
) -> Result<Vec<u8>, String> {
    let frame = output.frame.as_ref().ok_or("output without frame")?;
    let mut rgb = Vec::new();
    convert_into(frame, PixelFormat::Rgb8, &mut rgb)
        .map_err(|e| format!("cannot convert frame: {e}"))?;
    let (mut w, mut h) = (frame.width(), frame.height());
    if width > 0 && width < w {
        let th = (u64::from(h) * u64::from(width) / u64::from(w)).max(1) as u32;
        rgb = shrink(&rgb, (w, h), (width, th));
        (w, h) = (width, th);
    }
    let when = if output.wall_ts.is_known() {
        annotate::utc_text(i64::try_from(output.wall_ts.as_micros()).unwrap_or(i64::MAX))
    } else {
        "time unknown".to_owned()
    };
    annotated_jpeg(
        rgb,
        (w, h),
        &with_counts(overlay, output),
        &labelled_boxes(output),
        name,
        &format!("{when} #{}", output.frame_seq),
    )
}

/// Widths asked for are rounded up to a multiple of this, so clients of slightly
/// different sizes share one encoded image.
pub const WIDTH_STEP: u32 = 80;
/// Encoded sizes kept per frame.
const MAX_ENCODED_WIDTHS: usize = 4;

/// Area-averaging downscale of a tight RGB8 image (each output pixel is the mean of the
/// source pixels it covers): cheap, and without the aliasing of point sampling.
fn shrink(rgb: &[u8], (w, h): (u32, u32), (tw, th): (u32, u32)) -> Vec<u8> {
    let (w, h, tw, th) = (w as usize, h as usize, tw as usize, th as usize);
    let mut out = vec![0u8; tw * th * 3];
    for ty in 0..th {
        let (y0, y1) = (ty * h / th, ((ty + 1) * h / th).max(ty * h / th + 1).min(h));
        for tx in 0..tw {
            let (x0, x1) = (tx * w / tw, ((tx + 1) * w / tw).max(tx * w / tw + 1).min(w));
            let mut sum = [0u32; 3];
            for y in y0..y1 {
                let row = &rgb[(y * w + x0) * 3..(y * w + x1) * 3];
                for px in row.chunks_exact(3) {
                    sum[0] += u32::from(px[0]);
                    sum[1] += u32::from(px[1]);
                    sum[2] += u32::from(px[2]);
                }
            }
            let n = ((y1 - y0) * (x1 - x0)) as u32;
            let o = (ty * tw + tx) * 3;
            for c in 0..3 {
                out[o + c] = (sum[c] / n) as u8;
            }
        }
    }
    out
}

/// Draws on a tight RGB8 image and encodes it as JPEG.
pub fn annotated_jpeg(
    mut rgb: Vec<u8>,
    (w, h): (u32, u32),
    overlay: &Overlay,
    boxes: &[LabelledBox],
    header: &str,
    footer: &str,
) -> Result<Vec<u8>, String> {
    let mut canvas = Canvas::new(&mut rgb, w, h).ok_or("frame buffer of the wrong size")?;
    annotate::annotate(&mut canvas, overlay, boxes, header, footer);
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, JPEG_QUALITY)
        .encode(&rgb, w, h, image::ExtendedColorType::Rgb8)
        .map_err(|e| format!("jpeg encoding failed: {e}"))?;
    Ok(jpeg)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;
    use nv_core::geometry::BBox;

    /// Close to `want` in every channel (JPEG is lossy, chroma is subsampled).
    fn near(px: image::Rgb<u8>, want: [u8; 3]) -> bool {
        px.0.iter().zip(want).all(|(a, b)| a.abs_diff(b) < 70)
    }

    #[test]
    fn annotated_jpeg_shows_box_zone_and_line_at_their_places() {
        let (w, h) = (1280u32, 720u32);
        let overlay = Overlay {
            zones: vec![ZoneShape {
                name: "door".into(),
                points: vec![
                    Point2::new(0.1, 0.1),
                    Point2::new(0.4, 0.1),
                    Point2::new(0.4, 0.6),
                    Point2::new(0.1, 0.6),
                ],
                occupancy: Some(2),
            }],
            lines: vec![LineShape {
                name: "gate".into(),
                from: Point2::new(0.9, 0.2),
                to: Point2::new(0.9, 0.8),
                crossings: Some((3, 1)),
            }],
        };
        let boxes = [LabelledBox {
            bbox: BBox::new(0.5, 0.5, 0.75, 0.9),
            color: annotate::TRACK,
            label: "#7 person 0.91".into(),
        }];
        let gray = vec![60u8; (w * h * 3) as usize];
        let jpeg = annotated_jpeg(gray, (w, h), &overlay, &boxes, "cam", "now").unwrap();
        let img = image::load_from_memory_with_format(&jpeg, image::ImageFormat::Jpeg)
            .unwrap()
            .to_rgb8();
        assert_eq!(img.dimensions(), (w, h));
        // Box: left edge from x = 640 (5 pixels wide at this size), y = 360 to 648.
        assert!(near(*img.get_pixel(641, 500), annotate::TRACK));
        assert!(near(*img.get_pixel(800, 500), [60; 3]));
        // Zone: right edge centred on x = 512 between y = 72 and 432.
        assert!(near(*img.get_pixel(512, 300), annotate::ZONE));
        assert!(near(*img.get_pixel(480, 300), [60; 3]));
        // Line: vertical at x = 1152 from y = 144 to 576.
        assert!(near(*img.get_pixel(1152, 250), annotate::LINE));
        assert!(near(*img.get_pixel(1100, 250), [60; 3]));
    }

    #[test]
    fn shrinking_averages_the_covered_pixels() {
        // 4x2: left half black, right half white -> 2x1: one black, one white pixel.
        let mut rgb = vec![0u8; 4 * 2 * 3];
        for y in 0..2 {
            for x in 2..4 {
                rgb[(y * 4 + x) * 3..(y * 4 + x) * 3 + 3].copy_from_slice(&[255; 3]);
            }
        }
        assert_eq!(shrink(&rgb, (4, 2), (2, 1)), [0, 0, 0, 255, 255, 255]);
        // 3 -> 2 columns: every source pixel lands in some output pixel.
        let grey = shrink(&[90u8; 3 * 3], (3, 1), (2, 1));
        assert_eq!(grey, [90; 6]);
    }

    fn provenance() -> nv_runtime::Provenance {
        let view = nv_view::ViewState::fixed_initial();
        let ts = nv_core::time::MonotonicTs::from_nanos(0);
        nv_runtime::Provenance {
            stages: nv_runtime::StageTrail::new(),
            view: nv_runtime::ViewProvenance {
                epoch: view.epoch,
                version: view.version,
                validity: view.validity,
                stability_score: view.stability_score,
                motion_source: view.motion_source,
                transition: view.transition,
                decision: None,
            },
            received_at: ts,
            dequeued_at: ts,
            completed_at: ts,
            frame_age: None,
            session: 0,
            run_id: 1,
            frame_included: false,
        }
    }

    /// Box labels name the class when the feed knows its name, else `c<id>`.
    #[test]
    fn box_labels_use_the_feeds_class_names() {
        use nv_perception::{Detection, DetectionId, DetectionSet};
        let mut o = OutputEnvelope::new(
            FeedId::new(1),
            0,
            nv_core::time::MonotonicTs::from_nanos(0),
            nv_core::time::WallTs::from_micros(0),
            provenance(),
        );
        o.detections = DetectionSet::from(vec![
            Detection::builder(DetectionId::new(1), 0, 0.5, BBox::new(0.1, 0.1, 0.2, 0.2)).build(),
            Detection::builder(DetectionId::new(2), 4, 0.25, BBox::new(0.3, 0.3, 0.4, 0.4)).build(),
        ]);
        let mut names = nv_perception::ClassNames::new();
        names.insert(0, "motion").unwrap();
        o.class_names = Some(Arc::new(names));
        let labels: Vec<String> = labelled_boxes(&o).into_iter().map(|b| b.label).collect();
        assert_eq!(labels, ["motion 0.50", "c4 0.25"]);
    }

    #[test]
    fn overlay_comes_from_zone_stages() {
        let stages: Vec<nv_stages::StageConfig> = toml::from_str::<toml::Table>(
            r#"
            [[s]]
            kind = "zones"
            zones = [{ name = "z", points = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]] }]
            lines = [{ name = "l", from = [0.5, 0.0], to = [0.5, 1.0] }]
            "#,
        )
        .unwrap()["s"]
            .clone()
            .try_into()
            .unwrap();
        let o = overlay_of(&stages);
        assert_eq!(o.zones.len(), 1);
        assert_eq!(o.zones[0].points.len(), 3);
        assert_eq!(o.lines[0].to, Point2::new(0.5, 1.0));
    }
}
