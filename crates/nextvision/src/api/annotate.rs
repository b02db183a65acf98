//! Drawing on a frame: labelled boxes, zones and lines with their counts, a caption and a
//! timestamp. Everything here takes plain values (normalised coordinates, strings,
//! counts), so the zone geometry and the counts can come from the configuration, from
//! the zone stage's artifacts, or from run-time edits without this module knowing.

use nv_core::geometry::{BBox, Point2};

use super::font;

pub type Rgb = [u8; 3];

pub const DETECTION: Rgb = [0, 220, 0];
pub const TRACK: Rgb = [255, 210, 0];
pub const ZONE: Rgb = [0, 190, 255];
pub const LINE: Rgb = [255, 60, 200];
const TEXT_DARK: Rgb = [0, 0, 0];
const TEXT_LIGHT: Rgb = [255, 255, 255];
const BANNER: Rgb = [0, 0, 0];

/// A zone to draw: a closed polygon in normalised coordinates.
#[derive(Clone, Debug, PartialEq)]
pub struct ZoneShape {
    pub name: String,
    pub points: Vec<Point2>,
    /// Tracks inside, when known.
    pub occupancy: Option<u64>,
}

/// A directed line to draw; "left" and "right" as seen walking from `from` to `to`.
#[derive(Clone, Debug, PartialEq)]
pub struct LineShape {
    pub name: String,
    pub from: Point2,
    pub to: Point2,
    /// `(left to right, right to left)` crossings, when known.
    pub crossings: Option<(u64, u64)>,
}

/// The zones and lines of a feed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overlay {
    pub zones: Vec<ZoneShape>,
    pub lines: Vec<LineShape>,
}

/// A box with the text of its label.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelledBox {
    pub bbox: BBox,
    pub color: Rgb,
    pub label: String,
}

/// A tight RGB8 image being drawn on.
pub struct Canvas<'a> {
    rgb: &'a mut [u8],
    w: usize,
    h: usize,
    /// Font pixel size in image pixels: labels stay legible on large frames.
    scale: usize,
}

impl<'a> Canvas<'a> {
    /// `None` when the buffer is not `w * h * 3` bytes or the image is empty.
    pub fn new(rgb: &'a mut [u8], w: u32, h: u32) -> Option<Self> {
        let (w, h) = (w as usize, h as usize);
        if w == 0 || h == 0 || rgb.len() != w.checked_mul(h)?.checked_mul(3)? {
            return None;
        }
        let scale = (h / 360).clamp(1, 4);
        Some(Self { rgb, w, h, scale })
    }

    /// Line thickness in pixels: odd, and at least 3, so a line covers whole 2x2 chroma
    /// blocks of the JPEG and keeps its colour.
    fn stroke(&self) -> usize {
        2 * self.scale + 1
    }

    fn put(&mut self, x: i64, y: i64, c: Rgb) {
        if x < 0 || y < 0 || x >= self.w as i64 || y >= self.h as i64 {
            return;
        }
        let i = (y as usize * self.w + x as usize) * 3;
        self.rgb[i..i + 3].copy_from_slice(&c);
    }

    fn fill_rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: Rgb) {
        let (x0, x1) = (x0.max(0), x1.min(self.w as i64));
        let (y0, y1) = (y0.max(0), y1.min(self.h as i64));
        for y in y0..y1 {
            for x in x0..x1 {
                self.put(x, y, c);
            }
        }
    }

    fn to_px(&self, p: Point2) -> (i64, i64) {
        let clamp = |v: f32, n: usize| {
            let v = if v.is_finite() {
                v.clamp(0.0, 1.0)
            } else {
                0.0
            };
            ((v * n as f32) as i64).min(n as i64 - 1)
        };
        (clamp(p.x, self.w), clamp(p.y, self.h))
    }

    /// A thick segment between two pixel positions (Bresenham, square pen).
    fn segment(&mut self, (mut x, mut y): (i64, i64), (x1, y1): (i64, i64), c: Rgb) {
        let t = self.stroke() as i64;
        let (dx, dy) = ((x1 - x).abs(), -(y1 - y).abs());
        let (sx, sy) = (if x < x1 { 1 } else { -1 }, if y < y1 { 1 } else { -1 });
        let mut err = dx + dy;
        loop {
            self.fill_rect(x - t / 2, y - t / 2, x - t / 2 + t, y - t / 2 + t, c);
            if x == x1 && y == y1 {
                return;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// The outline of a normalised box, drawn inside its edges.
    pub fn rect(&mut self, b: &BBox, c: Rgb) {
        let b = b.clamped();
        let (x0, y0) = self.to_px(Point2::new(b.x_min, b.y_min));
        let (x1, y1) = self.to_px(Point2::new(b.x_max, b.y_max));
        let t = self.stroke() as i64;
        self.fill_rect(x0, y0, x1 + 1, y0 + t, c);
        self.fill_rect(x0, y1 + 1 - t, x1 + 1, y1 + 1, c);
        self.fill_rect(x0, y0, x0 + t, y1 + 1, c);
        self.fill_rect(x1 + 1 - t, y0, x1 + 1, y1 + 1, c);
    }

    /// Text on a filled background whose top-left corner is at pixel `(x, y)`, moved left
    /// and up as far as needed to fit in the image (clipped only when wider than it).
    /// Returns the background's size.
    pub fn label(&mut self, x: i64, y: i64, text: &str, bg: Rgb, fg: Rgb) -> (i64, i64) {
        let s = self.scale as i64;
        let (w, h) = (
            (font::text_width(text) as i64 + 1) * s,
            font::LINE_H as i64 * s,
        );
        let x = x.min(self.w as i64 - w).max(0);
        let y = y.min(self.h as i64 - h).max(0);
        self.fill_rect(x, y, x + w, y + h, bg);
        for (i, ch) in text.chars().enumerate() {
            let rows = font::glyph(ch);
            let gx = x + (1 + i * font::ADVANCE) as i64 * s;
            for fy in 0..font::GLYPH_H {
                for fx in 0..font::GLYPH_W {
                    if font::lit(&rows, fx, fy) {
                        let (px, py) = (gx + fx as i64 * s, y + (1 + fy) as i64 * s);
                        self.fill_rect(px, py, px + s, py + s, fg);
                    }
                }
            }
        }
        (w, h)
    }

    fn label_height(&self) -> i64 {
        (font::LINE_H * self.scale) as i64
    }

    /// A box with its label above it (inside it when the box touches the top).
    pub fn labelled_box(&mut self, b: &LabelledBox) {
        self.rect(&b.bbox, b.color);
        let bb = b.bbox.clamped();
        let (x, y) = self.to_px(Point2::new(bb.x_min, bb.y_min));
        let lh = self.label_height();
        let y = if y >= lh { y - lh } else { y };
        self.label(x, y, &b.label, b.color, TEXT_DARK);
    }

    pub fn zone(&mut self, z: &ZoneShape) {
        let pts: Vec<(i64, i64)> = z.points.iter().map(|p| self.to_px(*p)).collect();
        for (i, a) in pts.iter().enumerate() {
            let b = pts[(i + 1) % pts.len()];
            self.segment(*a, b, ZONE);
        }
        if let Some(&(x, y)) = pts.iter().min_by_key(|(x, y)| (*y, *x)) {
            let text = match z.occupancy {
                Some(n) => format!("{} {n}", z.name),
                None => z.name.clone(),
            };
            self.label(x, y, &text, ZONE, TEXT_DARK);
        }
    }

    pub fn line(&mut self, l: &LineShape) {
        let (a, b) = (self.to_px(l.from), self.to_px(l.to));
        self.segment(a, b, LINE);
        // An arrow head at `to` shows the direction "left" and "right" refer to.
        let (dx, dy) = ((b.0 - a.0) as f32, (b.1 - a.1) as f32);
        let len = dx.hypot(dy);
        if len >= 1.0 {
            let head = (8 * self.scale) as f32;
            let (ux, uy) = (dx / len, dy / len);
            for side in [-1.0f32, 1.0] {
                let hx = b.0 as f32 - head * ux + side * head * 0.5 * uy;
                let hy = b.1 as f32 - head * uy - side * head * 0.5 * ux;
                self.segment(b, (hx as i64, hy as i64), LINE);
            }
        }
        let text = match l.crossings {
            Some((lr, rl)) => format!("{} L>R {lr} R>L {rl}", l.name),
            None => l.name.clone(),
        };
        let (mx, my) = ((a.0 + b.0) / 2, (a.1 + b.1) / 2);
        self.label(mx, my, &text, LINE, TEXT_DARK);
    }

    /// A banner along the bottom edge (timestamp, frame number).
    pub fn footer(&mut self, text: &str) {
        let lh = self.label_height();
        self.label(0, self.h as i64 - lh, text, BANNER, TEXT_LIGHT);
    }

    /// A banner at the top-left corner (feed name).
    pub fn header(&mut self, text: &str) {
        self.label(0, 0, text, BANNER, TEXT_LIGHT);
    }
}

/// Draws everything: zones and lines first, so boxes and their labels stay on top.
pub fn annotate(
    canvas: &mut Canvas<'_>,
    overlay: &Overlay,
    boxes: &[LabelledBox],
    header: &str,
    footer: &str,
) {
    for z in &overlay.zones {
        canvas.zone(z);
    }
    for l in &overlay.lines {
        canvas.line(l);
    }
    for b in boxes {
        canvas.labelled_box(b);
    }
    canvas.header(header);
    canvas.footer(footer);
}

/// `YYYY-MM-DD HH:MM:SS.mmm UTC` for microseconds since the Unix epoch.
pub fn utc_text(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let millis = micros.rem_euclid(1_000_000) / 1000;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{millis:03} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (eras of 400 years).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rgb: &[u8], w: usize, x: usize, y: usize) -> Rgb {
        let i = (y * w + x) * 3;
        [rgb[i], rgb[i + 1], rgb[i + 2]]
    }

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(utc_text(0), "1970-01-01 00:00:00.000 UTC");
        // 2000-02-29 12:34:56.789 (a leap day in a century leap year).
        assert_eq!(utc_text(951_827_696_789_000), "2000-02-29 12:34:56.789 UTC");
        assert_eq!(utc_text(-1_000), "1969-12-31 23:59:59.999 UTC");
        assert_eq!(
            utc_text(4_102_444_800_000_000),
            "2100-01-01 00:00:00.000 UTC"
        );
    }

    #[test]
    fn boxes_zones_and_text_land_where_expected() {
        let (w, h) = (200usize, 100usize);
        let mut rgb = vec![128u8; w * h * 3];
        let mut c = Canvas::new(&mut rgb, w as u32, h as u32).unwrap();
        c.rect(&BBox::new(0.5, 0.5, 0.75, 0.9), DETECTION);
        c.segment((10, 10), (10, 40), ZONE);
        c.label(150, 0, "8", BANNER, TEXT_LIGHT);
        // Box edges at x = 100 (left) and y = 50 (top); its inside untouched.
        assert_eq!(at(&rgb, w, 100, 70), DETECTION);
        assert_eq!(at(&rgb, w, 120, 50), DETECTION);
        assert_eq!(at(&rgb, w, 120, 70), [128; 3]);
        assert_eq!(at(&rgb, w, 10, 25), ZONE);
        assert_eq!(at(&rgb, w, 14, 25), [128; 3]);
        // "8" row 0 is .###.: font pixel (1, 0) is lit at (150 + 1 + 1, 0 + 1).
        assert_eq!(at(&rgb, w, 152, 1), TEXT_LIGHT);
        assert_eq!(at(&rgb, w, 151, 1), BANNER);
    }

    #[test]
    fn out_of_frame_geometry_is_clipped() {
        let mut rgb = vec![0u8; 30 * 20 * 3];
        let mut c = Canvas::new(&mut rgb, 30, 20).unwrap();
        c.zone(&ZoneShape {
            name: "a very long zone name that does not fit".into(),
            points: vec![
                Point2::new(-5.0, 0.2),
                Point2::new(f32::NAN, 9.0),
                Point2::new(1.0, 1.0),
            ],
            occupancy: Some(3),
        });
        c.line(&LineShape {
            name: "l".into(),
            from: Point2::new(0.5, 0.5),
            to: Point2::new(0.5, 0.5),
            crossings: Some((1, 2)),
        });
        c.footer("2026-11-30 20:00:00.000 UTC");
        assert!(Canvas::new(&mut [0u8; 5], 2, 1).is_none());
    }
}
