//! How each catalog model runs in the model detector.

use std::path::Path;

use nv_stages::model::{ChannelOrder, DecoderKind, ModelDetectorConfig, Preprocess};

use crate::catalog::{Entry, EntryKind, Task};

/// The detector configuration catalog model `entry` was trained for, reading the model
/// from `path`; `None` for entries that are not models.
pub fn detector_config(entry: &Entry, path: &Path) -> Option<ModelDetectorConfig> {
    match entry.kind {
        EntryKind::Model(Task::PersonDetection) => {
            // TF-OD SSD: stretched 300x300, column 0 is the background.
            let mut c = ModelDetectorConfig::tf_object_detection_ssd(path, 300);
            c.class_names = vec!["background".into(), "person".into()];
            Some(c)
        }
        EntryKind::Model(Task::TextDetection) => {
            // PP-OCR det as rapidocr runs it: BGR, (v / 255 - 0.5) / 0.5, white padding.
            let mut c = ModelDetectorConfig::new(path, (640, 480), DecoderKind::text_detection());
            c.confidence_threshold = 0.5;
            c.max_detections = 100;
            c.class_names = vec!["text".into()];
            c.preprocess = Preprocess {
                pad_value: 255,
                mean: [0.5; 3],
                std: [0.5; 3],
                channel_order: ChannelOrder::Bgr,
            };
            Some(c)
        }
        EntryKind::SampleClip => None,
    }
}

/// Class id of a person in the person detector's output.
pub const PERSON_CLASS_ID: u32 = 1;
