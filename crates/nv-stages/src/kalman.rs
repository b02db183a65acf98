//! Constant-velocity Kalman filter over a box (`cx, cy, w, h` and their velocities).
//!
//! With a constant-velocity transition, a position-only measurement and diagonal process
//! and measurement noise, the 8-state filter never couples the four coordinates: every
//! off-block entry of the covariance starts at zero and stays zero. So the filter is run
//! as four independent 2-state (position, velocity) filters, which is exact, needs no
//! matrix inverse, and keeps the tracker's per-object cost to a few dozen flops.
//!
//! Noise scales with the box size (as in SORT/ByteTrack): a 200 px object jitters more in
//! pixels than a 20 px one, and all coordinates here are normalised.

use nv_core::geometry::BBox;

/// Noise parameters, as fractions of the box size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KalmanParams {
    /// Process noise std of position per step, times the box size.
    pub position_noise: f64,
    /// Process noise std of velocity per step, times the box size.
    pub velocity_noise: f64,
    /// Measurement noise std, times the box size.
    pub measurement_noise: f64,
    /// Initial velocity std, times the box size (velocity is unknown at birth).
    pub initial_velocity_std: f64,
}

impl Default for KalmanParams {
    fn default() -> Self {
        Self {
            position_noise: 1.0 / 20.0,
            velocity_noise: 1.0 / 160.0,
            measurement_noise: 1.0 / 20.0,
            initial_velocity_std: 10.0 / 160.0,
        }
    }
}

/// One coordinate: position `p`, velocity `v`, covariance `[[a, b], [b, c]]`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Axis {
    p: f64,
    v: f64,
    a: f64,
    b: f64,
    c: f64,
}

impl Axis {
    fn predict(&mut self, dt: f64, q_pos: f64, q_vel: f64) {
        self.p += dt * self.v;
        // P' = F P F^T + Q with F = [[1, dt], [0, 1]].
        self.a += 2.0 * dt * self.b + dt * dt * self.c + q_pos;
        self.b += dt * self.c;
        self.c += q_vel;
    }

    fn update(&mut self, z: f64, r: f64) {
        let s = self.a + r;
        if s <= 0.0 || !s.is_finite() {
            return;
        }
        let (k0, k1) = (self.a / s, self.b / s);
        let innovation = z - self.p;
        self.p += k0 * innovation;
        self.v += k1 * innovation;
        // P' = (I - K H) P, written out so it stays symmetric.
        let (a, b, c) = (self.a, self.b, self.c);
        self.a = a * r / s;
        self.b = b * r / s;
        self.c = c - b * b / s;
    }
}

/// The box filter. Coordinates are whatever the caller uses (normalised here).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BoxKalman {
    axes: [Axis; 4],
    params: KalmanParams,
}

impl BoxKalman {
    /// Starts at `bbox` with zero velocity.
    pub fn new(bbox: &BBox, params: KalmanParams) -> Self {
        let z = measure(bbox);
        let scale = size_scale(z[2], z[3]);
        let mut axes = [Axis {
            p: 0.0,
            v: 0.0,
            a: 0.0,
            b: 0.0,
            c: 0.0,
        }; 4];
        for (i, axis) in axes.iter_mut().enumerate() {
            let s = scale[i];
            axis.p = z[i];
            axis.a = (2.0 * params.measurement_noise * s).powi(2);
            axis.c = (params.initial_velocity_std * s).powi(2);
        }
        Self { axes, params }
    }

    /// Advances the state by `dt` steps.
    pub fn predict(&mut self, dt: f64) {
        let scale = size_scale(self.axes[2].p, self.axes[3].p);
        for (axis, s) in self.axes.iter_mut().zip(scale) {
            let q_pos = (self.params.position_noise * s).powi(2) * dt;
            let q_vel = (self.params.velocity_noise * s).powi(2) * dt;
            axis.predict(dt, q_pos, q_vel);
        }
        // A shrinking box must not invert: clamp size and stop its shrinking.
        for axis in &mut self.axes[2..] {
            if axis.p < MIN_SIZE {
                axis.p = MIN_SIZE;
                axis.v = axis.v.max(0.0);
            }
        }
    }

    /// Corrects the state with an observed box.
    pub fn update(&mut self, bbox: &BBox) {
        let z = measure(bbox);
        let scale = size_scale(z[2], z[3]);
        for (i, axis) in self.axes.iter_mut().enumerate() {
            let r = (self.params.measurement_noise * scale[i]).powi(2);
            axis.update(z[i], r);
        }
    }

    /// Multiplies the size velocities by `factor` (coasting: with no evidence, a box
    /// should not keep growing or shrinking at its last rate).
    pub fn damp_size_velocity(&mut self, factor: f64) {
        for axis in &mut self.axes[2..] {
            axis.v *= factor;
        }
    }

    /// Keeps width and height within `[min, max]` (per side), stopping any velocity that
    /// pushes past a bound.
    pub fn bound_size(&mut self, min: [f64; 2], max: [f64; 2]) {
        for (k, axis) in self.axes[2..].iter_mut().enumerate() {
            let (lo, hi) = (min[k].max(MIN_SIZE), max[k].max(min[k]).max(MIN_SIZE));
            if axis.p < lo {
                axis.p = lo;
                axis.v = axis.v.max(0.0);
            } else if axis.p > hi {
                axis.p = hi;
                axis.v = axis.v.min(0.0);
            }
        }
    }

    /// Current box estimate.
    pub fn bbox(&self) -> BBox {
        let [cx, cy, w, h] = self.position();
        let (w, h) = (w.max(MIN_SIZE), h.max(MIN_SIZE));
        BBox::new(
            (cx - w / 2.0) as f32,
            (cy - h / 2.0) as f32,
            (cx + w / 2.0) as f32,
            (cy + h / 2.0) as f32,
        )
    }

    /// `[cx, cy, w, h]`.
    pub fn position(&self) -> [f64; 4] {
        self.axes.map(|a| a.p)
    }

    /// `[vcx, vcy, vw, vh]` per step.
    pub fn velocity(&self) -> [f64; 4] {
        self.axes.map(|a| a.v)
    }

    /// Position variances `[cx, cy, w, h]`.
    pub fn position_variance(&self) -> [f64; 4] {
        self.axes.map(|a| a.a)
    }
}

/// Smallest box side kept by the filter (normalised), so predictions never invert.
const MIN_SIZE: f64 = 1e-4;

fn measure(b: &BBox) -> [f64; 4] {
    let c = b.center();
    [
        f64::from(c.x),
        f64::from(c.y),
        f64::from(b.width()),
        f64::from(b.height()),
    ]
}

/// Per-coordinate noise scale: x-ish coordinates scale with width, y-ish with height.
fn size_scale(w: f64, h: f64) -> [f64; 4] {
    let (w, h) = (w.max(MIN_SIZE), h.max(MIN_SIZE));
    [w, h, w, h]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn starts_at_measurement_and_predicts_in_place() {
        let b = BBox::from_xywh(0.1, 0.2, 0.1, 0.2);
        let mut k = BoxKalman::new(&b, KalmanParams::default());
        let [cx, cy, w, h] = k.position();
        assert!(close(cx, 0.15, 1e-6) && close(cy, 0.3, 1e-6));
        assert!(close(w, 0.1, 1e-6) && close(h, 0.2, 1e-6));
        let var0 = k.position_variance();
        k.predict(1.0);
        // Zero initial velocity: the box stays, uncertainty grows.
        assert!(close(k.position()[0], 0.15, 1e-6));
        assert!(k.position_variance()[0] > var0[0]);
    }

    #[test]
    fn learns_constant_velocity() {
        let params = KalmanParams::default();
        let start = BBox::from_xywh(0.1, 0.1, 0.1, 0.1);
        let mut k = BoxKalman::new(&start, params);
        for step in 1..40 {
            k.predict(1.0);
            let x = 0.1 + 0.01 * f64::from(step);
            k.update(&BBox::from_xywh(x as f32, 0.1, 0.1, 0.1));
        }
        let v = k.velocity();
        assert!(close(v[0], 0.01, 1e-3), "vx {v:?}");
        assert!(close(v[1], 0.0, 1e-4), "vy {v:?}");
        // One-step prediction lands on the next measurement.
        k.predict(1.0);
        assert!(close(k.position()[0], 0.1 + 0.01 * 40.0 + 0.05, 2e-3));
    }

    #[test]
    fn update_pulls_towards_measurement_and_shrinks_variance() {
        let mut k = BoxKalman::new(
            &BBox::from_xywh(0.4, 0.4, 0.1, 0.1),
            KalmanParams::default(),
        );
        k.predict(1.0);
        let before = k.position_variance()[0];
        k.update(&BBox::from_xywh(0.42, 0.4, 0.1, 0.1));
        let cx = k.position()[0];
        assert!(cx > 0.45 && cx < 0.47, "cx {cx}");
        assert!(k.position_variance()[0] < before);
    }

    #[test]
    fn shrinking_prediction_never_inverts() {
        let mut k = BoxKalman::new(
            &BBox::from_xywh(0.4, 0.4, 0.1, 0.1),
            KalmanParams::default(),
        );
        for s in 1..10 {
            k.predict(1.0);
            let size = 0.1 - 0.01 * f64::from(s);
            k.update(&BBox::from_xywh(0.4, 0.4, size as f32, size as f32));
        }
        for _ in 0..50 {
            k.predict(1.0);
            let b = k.bbox();
            assert!(b.width() > 0.0 && b.height() > 0.0);
        }
    }
}
