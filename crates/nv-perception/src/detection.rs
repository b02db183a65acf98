//! Detections.

use nv_core::geometry::BBox;
use nv_core::id::DetectionId;
use nv_core::metadata::TypedMetadata;

/// One detected object in one frame.
#[derive(Clone, Debug)]
pub struct Detection {
    pub id: DetectionId,
    pub class_id: u32,
    /// In [0, 1]; the builder clamps and maps NaN to 0.
    pub confidence: f32,
    pub bbox: BBox,
    pub embedding: Option<Vec<f32>>,
    pub metadata: TypedMetadata,
}

impl Detection {
    pub fn builder(
        id: DetectionId,
        class_id: u32,
        confidence: f32,
        bbox: BBox,
    ) -> DetectionBuilder {
        DetectionBuilder {
            inner: Detection {
                id,
                class_id,
                confidence: if confidence.is_nan() {
                    0.0
                } else {
                    confidence.clamp(0.0, 1.0)
                },
                bbox,
                embedding: None,
                metadata: TypedMetadata::new(),
            },
        }
    }
}

/// Builder for [`Detection`].
#[derive(Debug)]
pub struct DetectionBuilder {
    inner: Detection,
}

impl DetectionBuilder {
    pub fn embedding(mut self, e: Vec<f32>) -> Self {
        self.inner.embedding = Some(e);
        self
    }
    pub fn meta<T: Clone + Send + Sync + 'static>(mut self, v: T) -> Self {
        self.inner.metadata.insert(v);
        self
    }
    pub fn build(self) -> Detection {
        self.inner
    }
}

/// All detections of one frame.
#[derive(Clone, Debug, Default)]
pub struct DetectionSet {
    pub detections: Vec<Detection>,
}

impl DetectionSet {
    pub fn empty() -> Self {
        Self::default()
    }
    pub fn len(&self) -> usize {
        self.detections.len()
    }
    pub fn is_empty(&self) -> bool {
        self.detections.is_empty()
    }
    pub fn iter(&self) -> std::slice::Iter<'_, Detection> {
        self.detections.iter()
    }
}

impl From<Vec<Detection>> for DetectionSet {
    fn from(detections: Vec<Detection>) -> Self {
        Self { detections }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confidence_is_sanitised() {
        let b = BBox::new(0.0, 0.0, 0.1, 0.1);
        assert_eq!(
            Detection::builder(DetectionId::new(1), 0, f32::NAN, b)
                .build()
                .confidence,
            0.0
        );
        assert_eq!(
            Detection::builder(DetectionId::new(1), 0, 1.7, b)
                .build()
                .confidence,
            1.0
        );
        let d = Detection::builder(DetectionId::new(1), 2, 0.5, b)
            .embedding(vec![1.0])
            .meta(7u8)
            .build();
        assert_eq!(d.metadata.get::<u8>(), Some(&7));
        assert_eq!(DetectionSet::from(vec![d]).len(), 1);
    }
}
