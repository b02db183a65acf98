//! Geometry of zone and line analytics, in normalised image coordinates (y down).

use nv_core::geometry::{AffineTransform2D, BBox, Point2};

/// Which point of a track's box stands for the track.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Anchor {
    /// Middle of the bottom edge: where a person or vehicle touches the ground, which
    /// is what floor zones and counting lines are drawn against.
    #[default]
    BottomCenter,
    /// Box centre, for top-down views and objects that do not stand on the floor.
    Center,
}

impl Anchor {
    pub fn point(self, b: &BBox) -> Point2 {
        match self {
            Self::BottomCenter => Point2::new((b.x_min + b.x_max) * 0.5, b.y_max),
            Self::Center => b.center(),
        }
    }
}

/// Twice the signed area of (start, end, p): positive when `p` is on the right of the
/// direction start -> end as seen on screen (y pointing down), negative on the left.
pub fn side(start: Point2, end: Point2, p: Point2) -> f64 {
    let (dx, dy) = (f64::from(end.x - start.x), f64::from(end.y - start.y));
    let (px, py) = (f64::from(p.x - start.x), f64::from(p.y - start.y));
    dx * py - dy * px
}

/// Whether the move `a -> b`, with `a` and `b` strictly on opposite sides of the line
/// through `start -> end`, passes through the segment itself (ends included) rather than
/// beside it.
pub fn crosses_segment(start: Point2, end: Point2, a: Point2, b: Point2) -> bool {
    let (sa, sb) = (side(start, end, a), side(start, end, b));
    if sa == 0.0 || sb == 0.0 || (sa > 0.0) == (sb > 0.0) {
        return false;
    }
    // Where a -> b meets the infinite line, as a fraction of a -> b.
    let t = sa / (sa - sb);
    let qx = f64::from(a.x) + t * f64::from(b.x - a.x);
    let qy = f64::from(a.y) + t * f64::from(b.y - a.y);
    // ... and where that point lies along start -> end.
    let (dx, dy) = (f64::from(end.x - start.x), f64::from(end.y - start.y));
    let len2 = dx * dx + dy * dy;
    if len2 == 0.0 {
        return false;
    }
    let u = ((qx - f64::from(start.x)) * dx + (qy - f64::from(start.y)) * dy) / len2;
    (0.0..=1.0).contains(&u)
}

/// Inverse of an affine transform, `None` when it is singular.
pub fn invert(t: &AffineTransform2D) -> Option<AffineTransform2D> {
    let [a, b, tx, c, d, ty] = t.m;
    let det = a * d - b * c;
    if det.abs() < 1e-12 || !det.is_finite() {
        return None;
    }
    let (ia, ib, ic, id) = (d / det, -b / det, -c / det, a / det);
    Some(AffineTransform2D::new([
        ia,
        ib,
        -(ia * tx + ib * ty),
        ic,
        id,
        -(ic * tx + id * ty),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn side_orientation_on_screen() {
        let (s, e) = (Point2::new(0.0, 0.5), Point2::new(1.0, 0.5));
        // Walking right along y = 0.5, "below" on screen is the right-hand side.
        assert!(side(s, e, Point2::new(0.5, 0.9)) > 0.0);
        assert!(side(s, e, Point2::new(0.5, 0.1)) < 0.0);
        assert_eq!(side(s, e, Point2::new(0.3, 0.5)), 0.0);
    }

    #[test]
    fn crossing_within_and_beside_the_segment() {
        let (s, e) = (Point2::new(0.4, 0.5), Point2::new(0.6, 0.5));
        let (above, below) = (Point2::new(0.5, 0.4), Point2::new(0.5, 0.6));
        assert!(crosses_segment(s, e, above, below));
        assert!(crosses_segment(s, e, below, above));
        // Passing beside the end of the segment is not a crossing.
        assert!(!crosses_segment(
            s,
            e,
            Point2::new(0.7, 0.4),
            Point2::new(0.7, 0.6)
        ));
        // Same side: no crossing.
        assert!(!crosses_segment(s, e, above, Point2::new(0.1, 0.1)));
    }

    #[test]
    fn anchors() {
        let b = BBox::new(0.2, 0.2, 0.4, 0.6);
        assert_eq!(Anchor::BottomCenter.point(&b), Point2::new(0.3, 0.6));
        assert_eq!(Anchor::Center.point(&b), Point2::new(0.3, 0.4));
    }

    proptest! {
        #[test]
        fn invert_round_trips(m in prop::array::uniform6(-2.0f64..2.0), x in 0.0f32..1.0, y in 0.0f32..1.0) {
            let t = AffineTransform2D::new(m);
            let det = m[0] * m[4] - m[1] * m[3];
            prop_assume!(det.abs() > 0.05);
            let inv = invert(&t).unwrap();
            let p = Point2::new(x, y);
            let back = inv.apply(t.apply(p));
            prop_assert!((back.x - x).abs() < 1e-3 && (back.y - y).abs() < 1e-3);
        }

        /// A crossing found by `crosses_segment` agrees with a parametric segment
        /// intersection computed independently.
        #[test]
        fn matches_parametric_intersection(
            c in prop::array::uniform8(0.0f32..1.0),
        ) {
            let (s, e, a, b) = (
                Point2::new(c[0], c[1]),
                Point2::new(c[2], c[3]),
                Point2::new(c[4], c[5]),
                Point2::new(c[6], c[7]),
            );
            // Solve s + u (e - s) = a + t (b - a).
            let (rx, ry) = (f64::from(e.x - s.x), f64::from(e.y - s.y));
            let (qx, qy) = (f64::from(b.x - a.x), f64::from(b.y - a.y));
            let denom = rx * qy - ry * qx;
            prop_assume!(denom.abs() > 1e-3);
            let (wx, wy) = (f64::from(a.x - s.x), f64::from(a.y - s.y));
            let u = (wx * qy - wy * qx) / denom;
            let t = (wx * ry - wy * rx) / denom;
            // Stay away from the ends, where rounding decides.
            let margin = 1e-3;
            prop_assume!((u - 0.0).abs() > margin && (u - 1.0).abs() > margin);
            prop_assume!((t - 0.0).abs() > margin && (t - 1.0).abs() > margin);
            let expected = (0.0..=1.0).contains(&u) && (0.0..=1.0).contains(&t);
            prop_assert_eq!(crosses_segment(s, e, a, b), expected);
        }
    }
}
