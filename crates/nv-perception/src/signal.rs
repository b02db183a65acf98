//! Named values derived by stages.

use std::borrow::Cow;

use nv_core::time::MonotonicTs;

/// Value of a [`DerivedSignal`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum SignalValue {
    Scalar(f64),
    Vector(Vec<f64>),
    Boolean(bool),
    Categorical(Cow<'static, str>),
}

/// A named per-frame value (a count, a flag, a score).
#[derive(Clone, Debug, PartialEq)]
pub struct DerivedSignal {
    pub name: Cow<'static, str>,
    pub value: SignalValue,
    pub ts: MonotonicTs,
}

impl DerivedSignal {
    pub fn new(name: impl Into<Cow<'static, str>>, value: SignalValue, ts: MonotonicTs) -> Self {
        Self {
            name: name.into(),
            value,
            ts,
        }
    }
}

/// Value of a [`SceneFeature`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum SceneFeatureValue {
    Scalar(f64),
    Vector(Vec<f64>),
    Boolean(bool),
    Categorical(Cow<'static, str>),
    Distribution(Vec<(Cow<'static, str>, f64)>),
}

/// A scene-level observation (brightness, crowd density, weather).
#[derive(Clone, Debug, PartialEq)]
pub struct SceneFeature {
    pub name: Cow<'static, str>,
    pub value: SceneFeatureValue,
    pub confidence: Option<f32>,
    pub ts: MonotonicTs,
}
