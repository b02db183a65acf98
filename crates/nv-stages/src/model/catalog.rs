//! Catalog models (crate `nv-models`) as detector configurations: how each one was trained
//! to be fed and decoded.

use std::path::Path;

use nv_models::{Entry, EntryKind, Task};

use super::config::{ChannelOrder, DecoderKind, ModelDetectorConfig, Preprocess};

/// Class id of a person in the output of the `person-ssdlite` catalog model.
pub const PERSON_CLASS_ID: u32 = 1;

/// The detector configuration catalog model `entry` was trained for, reading the model
/// from `path`; `None` for entries that are not models (sample clips).
pub fn catalog_preset(entry: &Entry, path: &Path) -> Option<ModelDetectorConfig> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalog_model_has_a_valid_preset_and_clips_have_none() {
        for e in nv_models::CATALOG {
            let preset = catalog_preset(e, Path::new("/models/x"));
            assert_eq!(preset.is_some(), e.is_model(), "{}", e.name);
            if let Some(c) = preset {
                assert_eq!(c.validate(), Ok(()), "{}", e.name);
            }
        }
    }
}
