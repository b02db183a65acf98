//! Frame-to-frame transform estimates and the affine decompositions the policy uses.
//!
//! Transforms are in normalised image coordinates (see `nv_core::geometry`), so a
//! translation of 0.25 is a quarter of the frame whatever the resolution.

use nv_core::geometry::AffineTransform2D;

use crate::state::ViewVersion;

/// How a transform estimate was produced. Decides the [`MotionSource`] it implies:
/// feature matching is *inferred* (with its confidence), a PTZ model or an external system
/// is *external* knowledge.
///
/// [`MotionSource`]: crate::MotionSource
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransformEstimationMethod {
    /// Derived from PTZ pose and a lens model.
    PtzModel,
    /// Estimated from image content (feature tracks, optical flow).
    FeatureMatching,
    /// Supplied by something outside the runtime (a VMS, a gimbal controller).
    External,
}

impl TransformEstimationMethod {
    /// Stable text for provenance and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PtzModel => "ptz_model",
            Self::FeatureMatching => "feature_matching",
            Self::External => "external",
        }
    }
}

/// An estimate of how the image moved since the previous frame: maps previous-frame
/// coordinates to current-frame coordinates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GlobalTransformEstimate {
    pub transform: AffineTransform2D,
    /// 0 (no idea) to 1 (certain).
    pub confidence: f32,
    pub method: TransformEstimationMethod,
    /// The view version the estimate was computed against.
    pub computed_at: ViewVersion,
}

impl GlobalTransformEstimate {
    pub const fn new(
        transform: AffineTransform2D,
        confidence: f32,
        method: TransformEstimationMethod,
        computed_at: ViewVersion,
    ) -> Self {
        Self {
            transform,
            confidence,
            method,
            computed_at,
        }
    }
    /// Norm of the translation part, in normalised image units.
    pub fn displacement_magnitude(&self) -> f64 {
        self.transform.translation_magnitude()
    }
    /// See [`affine_rotation_deg`].
    pub fn rotation_deg(&self) -> f64 {
        affine_rotation_deg(&self.transform)
    }
    /// See [`affine_scale_ratio`].
    pub fn scale_ratio(&self) -> f64 {
        affine_scale_ratio(&self.transform)
    }
}

/// Rotation of the linear part in degrees, in (-180, 180]. For a similarity transform
/// `s·R(θ)` this is exactly θ; for a general affine it is the rotation of the x axis, which
/// is what a camera roll or a compensation error shows up as.
pub fn affine_rotation_deg(t: &AffineTransform2D) -> f64 {
    let [a, _, _, c, _, _] = t.m;
    c.atan2(a).to_degrees()
}

/// Isotropic scale of the linear part: `sqrt(|det|)`, the factor by which areas scale
/// taken back to lengths. 1 means no zoom; 1.1 is a 10% zoom in.
pub fn affine_scale_ratio(t: &AffineTransform2D) -> f64 {
    let [a, b, _, c, d, _] = t.m;
    (a * d - b * c).abs().sqrt()
}

/// Length scale of each image axis: the norms of the linear part's columns.
pub fn affine_axis_scales(t: &AffineTransform2D) -> (f64, f64) {
    let [a, b, _, c, d, _] = t.m;
    (a.hypot(c), b.hypot(d))
}

/// Largest relative scale change along either axis or overall: `0.1` means some length in
/// the image grew or shrank by 10%. An anisotropic stretch has `sqrt(|det|) == 1` yet
/// distorts zones just as badly, so the compensation ceiling needs the per-axis view.
pub fn affine_max_scale_change(t: &AffineTransform2D) -> f64 {
    let (sx, sy) = affine_axis_scales(t);
    let iso = affine_scale_ratio(t);
    (sx - 1.0)
        .abs()
        .max((sy - 1.0).abs())
        .max((iso - 1.0).abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn similarity(scale: f64, angle_deg: f64, tx: f64, ty: f64) -> AffineTransform2D {
        let (s, c) = angle_deg.to_radians().sin_cos();
        AffineTransform2D::new([scale * c, -scale * s, tx, scale * s, scale * c, ty])
    }

    #[test]
    fn decomposes_similarity() {
        let t = similarity(1.2, 30.0, 0.3, -0.4);
        assert!((affine_rotation_deg(&t) - 30.0).abs() < 1e-9);
        assert!((affine_scale_ratio(&t) - 1.2).abs() < 1e-9);
        let est = GlobalTransformEstimate::new(
            t,
            0.9,
            TransformEstimationMethod::FeatureMatching,
            ViewVersion::INITIAL,
        );
        assert!((est.displacement_magnitude() - 0.5).abs() < 1e-9);
        assert!((est.rotation_deg() - 30.0).abs() < 1e-9);
        assert!((est.scale_ratio() - 1.2).abs() < 1e-9);
    }

    #[test]
    fn identity_and_negative_rotation() {
        let id = AffineTransform2D::IDENTITY;
        assert_eq!(affine_rotation_deg(&id), 0.0);
        assert_eq!(affine_scale_ratio(&id), 1.0);
        assert!((affine_rotation_deg(&similarity(1.0, -7.0, 0.0, 0.0)) + 7.0).abs() < 1e-9);
        let stretch = AffineTransform2D::scale(0.5, 2.0);
        assert!((affine_scale_ratio(&stretch) - 1.0).abs() < 1e-9);
        assert!((affine_max_scale_change(&stretch) - 1.0).abs() < 1e-9);
        assert!(affine_max_scale_change(&similarity(1.0, 40.0, 0.1, 0.0)) < 1e-9);
        assert!((affine_max_scale_change(&similarity(0.9, 0.0, 0.0, 0.0)) - 0.1).abs() < 1e-9);
    }

    #[test]
    fn method_text_is_stable() {
        assert_eq!(TransformEstimationMethod::PtzModel.as_str(), "ptz_model");
        assert_eq!(
            TransformEstimationMethod::FeatureMatching.as_str(),
            "feature_matching"
        );
        assert_eq!(TransformEstimationMethod::External.as_str(), "external");
    }
}
