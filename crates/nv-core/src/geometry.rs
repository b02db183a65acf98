//! Normalised geometry: coordinates in [0, 1], origin top-left, x right, y down.

/// A point in normalised image coordinates.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Point2 {
    pub x: f32,
    pub y: f32,
}

impl Point2 {
    pub const fn new(x: f32, y: f32) -> Self {
        Self { x, y }
    }
    pub fn distance(self, other: Self) -> f32 {
        (self.x - other.x).hypot(self.y - other.y)
    }
}

/// Axis-aligned box in normalised coordinates. Constructors order the corners, so
/// `x_min <= x_max` and `y_min <= y_max` hold for every box built through them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BBox {
    pub x_min: f32,
    pub y_min: f32,
    pub x_max: f32,
    pub y_max: f32,
}

impl BBox {
    /// Builds a box from two corners in any order.
    pub fn new(x0: f32, y0: f32, x1: f32, y1: f32) -> Self {
        Self {
            x_min: x0.min(x1),
            y_min: y0.min(y1),
            x_max: x0.max(x1),
            y_max: y0.max(y1),
        }
    }
    /// Builds a box from its top-left corner and size.
    pub fn from_xywh(x: f32, y: f32, w: f32, h: f32) -> Self {
        Self::new(x, y, x + w, y + h)
    }
    pub fn width(&self) -> f32 {
        (self.x_max - self.x_min).max(0.0)
    }
    pub fn height(&self) -> f32 {
        (self.y_max - self.y_min).max(0.0)
    }
    pub fn area(&self) -> f32 {
        self.width() * self.height()
    }
    pub fn center(&self) -> Point2 {
        Point2::new(
            (self.x_min + self.x_max) * 0.5,
            (self.y_min + self.y_max) * 0.5,
        )
    }
    pub fn intersection(&self, other: &Self) -> f32 {
        let w = (self.x_max.min(other.x_max) - self.x_min.max(other.x_min)).max(0.0);
        let h = (self.y_max.min(other.y_max) - self.y_min.max(other.y_min)).max(0.0);
        w * h
    }
    /// Intersection over union; 0 when the union is empty or not finite.
    pub fn iou(&self, other: &Self) -> f32 {
        let inter = self.intersection(other);
        let union = self.area() + other.area() - inter;
        if union > 0.0 && union.is_finite() {
            (inter / union).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
    pub fn contains(&self, p: Point2) -> bool {
        p.x >= self.x_min && p.x <= self.x_max && p.y >= self.y_min && p.y <= self.y_max
    }
    /// Clamps the box into the unit square.
    pub fn clamped(&self) -> Self {
        Self::new(
            self.x_min.clamp(0.0, 1.0),
            self.y_min.clamp(0.0, 1.0),
            self.x_max.clamp(0.0, 1.0),
            self.y_max.clamp(0.0, 1.0),
        )
    }
}

/// A simple polygon (vertex list, implicitly closed).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Polygon {
    pub vertices: Vec<Point2>,
}

impl Polygon {
    pub fn new(vertices: Vec<Point2>) -> Self {
        Self { vertices }
    }
    /// Even-odd rule point-in-polygon test. Degenerate polygons (< 3 vertices) contain nothing.
    pub fn contains(&self, p: Point2) -> bool {
        let n = self.vertices.len();
        if n < 3 {
            return false;
        }
        let mut inside = false;
        let mut j = n - 1;
        for i in 0..n {
            let (a, b) = (self.vertices[i], self.vertices[j]);
            if (a.y > p.y) != (b.y > p.y) {
                let x_cross = (b.x - a.x) * (p.y - a.y) / (b.y - a.y) + a.x;
                if p.x < x_cross {
                    inside = !inside;
                }
            }
            j = i;
        }
        inside
    }
    /// Absolute area by the shoelace formula.
    pub fn area(&self) -> f32 {
        let n = self.vertices.len();
        if n < 3 {
            return 0.0;
        }
        let mut twice = 0.0f32;
        for i in 0..n {
            let (a, b) = (self.vertices[i], self.vertices[(i + 1) % n]);
            twice += a.x * b.y - b.x * a.y;
        }
        (twice * 0.5).abs()
    }
    pub fn bounding_box(&self) -> Option<BBox> {
        let first = self.vertices.first()?;
        let mut b = BBox::new(first.x, first.y, first.x, first.y);
        for v in &self.vertices[1..] {
            b = BBox::new(
                b.x_min.min(v.x),
                b.y_min.min(v.y),
                b.x_max.max(v.x),
                b.y_max.max(v.y),
            );
        }
        Some(b)
    }
}

/// 2x3 affine transform `[a, b, tx, c, d, ty]` mapping `(x, y)` to
/// `(a x + b y + tx, c x + d y + ty)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AffineTransform2D {
    pub m: [f64; 6],
}

impl AffineTransform2D {
    pub const IDENTITY: Self = Self {
        m: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
    };

    pub const fn new(m: [f64; 6]) -> Self {
        Self { m }
    }
    pub const fn translation(tx: f64, ty: f64) -> Self {
        Self {
            m: [1.0, 0.0, tx, 0.0, 1.0, ty],
        }
    }
    pub const fn scale(sx: f64, sy: f64) -> Self {
        Self {
            m: [sx, 0.0, 0.0, 0.0, sy, 0.0],
        }
    }
    pub fn apply(&self, p: Point2) -> Point2 {
        let [a, b, tx, c, d, ty] = self.m;
        let (x, y) = (f64::from(p.x), f64::from(p.y));
        Point2::new((a * x + b * y + tx) as f32, (c * x + d * y + ty) as f32)
    }
    /// Transforms the four corners and returns their bounding box.
    pub fn apply_bbox(&self, b: &BBox) -> BBox {
        let corners = [
            self.apply(Point2::new(b.x_min, b.y_min)),
            self.apply(Point2::new(b.x_max, b.y_min)),
            self.apply(Point2::new(b.x_min, b.y_max)),
            self.apply(Point2::new(b.x_max, b.y_max)),
        ];
        let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
        for c in corners {
            x0 = x0.min(c.x);
            y0 = y0.min(c.y);
            x1 = x1.max(c.x);
            y1 = y1.max(c.y);
        }
        BBox::new(x0, y0, x1, y1)
    }
    /// `self` followed by `next`: `(self.then(next)).apply(p) == next.apply(self.apply(p))`.
    pub fn then(&self, next: &Self) -> Self {
        let [a1, b1, t1, c1, d1, u1] = self.m;
        let [a2, b2, t2, c2, d2, u2] = next.m;
        Self::new([
            a2 * a1 + b2 * c1,
            a2 * b1 + b2 * d1,
            a2 * t1 + b2 * u1 + t2,
            c2 * a1 + d2 * c1,
            c2 * b1 + d2 * d1,
            c2 * t1 + d2 * u1 + u2,
        ])
    }
    /// Norm of the translation part.
    pub fn translation_magnitude(&self) -> f64 {
        self.m[2].hypot(self.m[5])
    }
}

impl Default for AffineTransform2D {
    fn default() -> Self {
        Self::IDENTITY
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn iou_known_values() {
        let a = BBox::new(0.0, 0.0, 0.5, 0.5);
        let b = BBox::new(0.25, 0.25, 0.75, 0.75);
        let expected = 0.0625 / (0.25 + 0.25 - 0.0625);
        assert!((a.iou(&b) - expected).abs() < 1e-6);
        assert_eq!(a.iou(&a), 1.0);
        assert_eq!(a.iou(&BBox::new(0.6, 0.6, 0.7, 0.7)), 0.0);
        assert_eq!(BBox::default().iou(&BBox::default()), 0.0);
    }

    #[test]
    fn corners_are_ordered() {
        let b = BBox::new(0.9, 0.8, 0.1, 0.2);
        assert_eq!((b.x_min, b.y_min, b.x_max, b.y_max), (0.1, 0.2, 0.9, 0.8));
    }

    #[test]
    fn polygon_contains_and_area() {
        let square = Polygon::new(vec![
            Point2::new(0.2, 0.2),
            Point2::new(0.8, 0.2),
            Point2::new(0.8, 0.8),
            Point2::new(0.2, 0.8),
        ]);
        assert!(square.contains(Point2::new(0.5, 0.5)));
        assert!(!square.contains(Point2::new(0.1, 0.5)));
        assert!((square.area() - 0.36).abs() < 1e-6);
        assert!(!Polygon::new(vec![Point2::new(0.0, 0.0)]).contains(Point2::new(0.0, 0.0)));
    }

    #[test]
    fn affine_compose_and_bbox() {
        let t = AffineTransform2D::translation(0.1, 0.2);
        let s = AffineTransform2D::scale(2.0, 2.0);
        let p = Point2::new(0.1, 0.1);
        let composed = t.then(&s).apply(p);
        let stepwise = s.apply(t.apply(p));
        assert!((composed.x - stepwise.x).abs() < 1e-6 && (composed.y - stepwise.y).abs() < 1e-6);
        let b = t.apply_bbox(&BBox::new(0.0, 0.0, 0.1, 0.1));
        assert!((b.x_min - 0.1).abs() < 1e-6 && (b.y_max - 0.3).abs() < 1e-6);
    }

    fn bbox() -> impl Strategy<Value = BBox> {
        (0.0f32..1.0, 0.0f32..1.0, 0.0f32..1.0, 0.0f32..1.0)
            .prop_map(|(a, b, c, d)| BBox::new(a, b, c, d))
    }

    proptest! {
        #[test]
        fn iou_is_symmetric_and_bounded(a in bbox(), b in bbox()) {
            let ab = a.iou(&b);
            prop_assert!((0.0..=1.0).contains(&ab));
            prop_assert!((ab - b.iou(&a)).abs() < 1e-6);
        }

        #[test]
        fn intersection_never_exceeds_either_area(a in bbox(), b in bbox()) {
            let i = a.intersection(&b);
            prop_assert!(i <= a.area() + 1e-6 && i <= b.area() + 1e-6);
        }

        #[test]
        fn compose_matches_stepwise(m1 in prop::array::uniform6(-2.0f64..2.0), m2 in prop::array::uniform6(-2.0f64..2.0), x in 0.0f32..1.0, y in 0.0f32..1.0) {
            let (t1, t2) = (AffineTransform2D::new(m1), AffineTransform2D::new(m2));
            let p = Point2::new(x, y);
            let a = t1.then(&t2).apply(p);
            let b = t2.apply(t1.apply(p));
            prop_assert!((a.x - b.x).abs() < 1e-3 && (a.y - b.y).abs() < 1e-3);
        }

        #[test]
        fn bbox_center_inside(b in bbox()) {
            prop_assert!(b.contains(b.center()));
        }
    }
}
