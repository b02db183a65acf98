//! The file form of a `model-detector` stage: a catalog model by name, or a model file
//! described by its keys.
//!
//! ```toml
//! [[feeds.stages]]
//! kind = "model-detector"
//! model = "person-ssdlite"          # catalog: `nextvision models list`
//! confidence_threshold = 0.4
//!
//! [[feeds.stages]]
//! kind = "model-detector"
//! model = "/models/yolov8n.onnx"    # a file: input size and decoder are required
//! input_width = 640
//! input_height = 640
//! decoder = "yolov8"
//!
//! [[feeds.stages]]
//! kind = "model-detector"
//! model = "/models/person.onnx"     # the person detector converted to ONNX
//! input_width = 300
//! input_height = 300
//! decoder = "tf-ssd"
//! backend = "onnxruntime"           # cargo feature `ort`; default "tract"
//! execution_providers = ["cuda", "cpu"]  # cuda if it starts, else cpu
//! threads = 2
//! ```
//!
//! Validation resolves the name or checks that the file exists, and never loads a model;
//! a catalog model that is not in the cache yet is a problem that names the command
//! fetching it (the daemon never downloads on its own).

use serde::Deserialize;

/// Output decoding of a `model-detector` given by file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelDecoder {
    Yolov8,
    Yolov11,
    Yolov5,
    /// A PP-OCR style text segmentation map.
    Text,
    /// A TensorFlow Object Detection API SSD frozen graph (`.pb`, square input), cut at
    /// its raw head and decoded against generated anchors.
    TfSsd,
}

/// How frames are fitted into the model input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResizeName {
    /// Aspect ratio kept, padded (YOLO training).
    Letterbox,
    /// Both axes scaled to fill the input (TF Object Detection API training).
    Stretch,
}

/// `backend` of a `model-detector`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendName {
    /// Pure Rust (the default).
    Tract,
    /// ONNX Runtime, loaded at run time (nextvision built with the feature `ort`).
    Onnxruntime,
}

/// One of `execution_providers`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderName {
    Cpu,
    Cuda,
    Tensorrt,
}

/// `model-detector`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelStageConfig {
    /// A catalog model name (`nextvision models list`) or the path of a model file.
    pub model: Option<String>,
    /// The path of a model file (the older spelling of `model = "PATH"`).
    pub model_path: Option<String>,
    /// Model input size in pixels: required for a file, set by the catalog for a
    /// catalog model.
    pub input_width: Option<u32>,
    pub input_height: Option<u32>,
    /// Required for a file; set by the catalog for a catalog model.
    pub decoder: Option<ModelDecoder>,
    /// Default: as the model was trained (catalog models, `tf-ssd`: stretch; YOLO and
    /// text: letterbox).
    pub resize: Option<ResizeName>,
    pub confidence_threshold: Option<f32>,
    pub nms_iou_threshold: Option<f32>,
    #[serde(default)]
    pub class_names: Vec<String>,
    /// `tract` (default, pure Rust) or `onnxruntime` (ONNX models only).
    pub backend: Option<BackendName>,
    /// ONNX Runtime providers in order of preference (default `["cpu"]`). With `cpu`
    /// listed (last), a provider that cannot start is skipped; without it, every listed
    /// provider is required.
    pub execution_providers: Option<Vec<ProviderName>>,
    /// GPU used by the `cuda` and `tensorrt` providers (default 0).
    pub device_id: Option<u32>,
    /// Threads one inference may use (default 1).
    pub threads: Option<u32>,
}

impl ModelStageConfig {
    /// The configured `class_names` by index, or a catalog model's (empty for a model
    /// file without `class_names`). A class named `background` (column 0 of TF Object
    /// Detection API models) is left out: no detection carries it, and leaving it out lets
    /// another stage name its id.
    pub fn class_names_known(&self) -> Vec<(u32, String)> {
        let listed = if self.class_names.is_empty() {
            self.catalog_class_names()
        } else {
            self.class_names.clone()
        };
        (0u32..)
            .zip(listed)
            .filter(|(_, n)| n != "background")
            .collect()
    }

    #[cfg(feature = "model")]
    fn catalog_class_names(&self) -> Vec<String> {
        self.model
            .as_deref()
            .and_then(nv_models::find)
            .and_then(|e| crate::model::catalog_preset(e, std::path::Path::new("")))
            .map(|c| c.class_names)
            .unwrap_or_default()
    }

    #[cfg(not(feature = "model"))]
    fn catalog_class_names(&self) -> Vec<String> {
        Vec::new()
    }
}

#[cfg(feature = "model")]
mod resolve {
    use std::path::PathBuf;

    use nv_core::error::ConfigProblem;
    use nv_models::{CatalogError, Entry, ModelStore};

    use super::{BackendName, ModelDecoder, ModelStageConfig, ProviderName, ResizeName};
    use crate::model::{
        catalog_preset, Backend, DecoderKind, ExecutionProvider, ModelDetectorConfig, ModelFormat,
        OrtOptions, ResizeMode,
    };

    /// A stage configuration turned into the detector's, before any file is read.
    pub(crate) struct Resolved {
        pub config: ModelDetectorConfig,
        /// The catalog entry, for a catalog model.
        pub catalog: Option<&'static Entry>,
        /// Whether the model file is there (the cache, or the given path).
        pub present: bool,
        /// The key that named the model (`model` or `model_path`).
        pub key: &'static str,
    }

    impl Resolved {
        /// The problem a missing model file is, naming what brings it.
        pub(crate) fn absence(&self) -> Option<ConfigProblem> {
            if self.present {
                return None;
            }
            let path = self.config.model_path.display();
            Some(match self.catalog {
                Some(e) => ConfigProblem::invalid(
                    "model",
                    e.name,
                    format!(
                        "catalog model not fetched yet (no {path}): run `nextvision models \
                         fetch {}` once with network access",
                        e.name
                    ),
                ),
                None if self.key == "model" => ConfigProblem::invalid(
                    "model",
                    path,
                    format!(
                        "no such model file, and not a catalog model (known: {})",
                        nv_models::names()
                    ),
                ),
                None => ConfigProblem::invalid(self.key, path, "no such model file"),
            })
        }
    }

    impl ModelStageConfig {
        /// Resolves the model (catalog name or file) into a detector configuration, with
        /// every problem of the keys. Reads no model; looks at the file system only to
        /// see whether the file is there.
        pub(crate) fn resolve(&self) -> Result<Resolved, Vec<ConfigProblem>> {
            self.resolve_in(ModelStore::from_env())
        }

        /// [`resolve`](Self::resolve) with catalog models cached in `store`.
        pub(crate) fn resolve_in(
            &self,
            store: Result<ModelStore, CatalogError>,
        ) -> Result<Resolved, Vec<ConfigProblem>> {
            let mut problems = Vec::new();
            let named = match (&self.model, &self.model_path) {
                (Some(_), Some(_)) => {
                    problems.push(ConfigProblem {
                        field: "model_path".into(),
                        value: None,
                        reason: "give either `model` (a catalog name or a file) or `model_path`, \
                                 not both"
                            .into(),
                    });
                    None
                }
                (Some(m), None) => Some((m.as_str(), true)),
                (None, Some(p)) => Some((p.as_str(), false)),
                (None, None) => {
                    let mut p = ConfigProblem::missing("model");
                    p.reason = format!(
                        "is required: a catalog model ({}) or the path of a model file",
                        nv_models::names()
                    );
                    problems.push(p);
                    None
                }
            };
            let entry = named
                .filter(|(_, catalog_allowed)| *catalog_allowed)
                .and_then(|(name, _)| nv_models::find(name));
            let resolved = match (named, entry) {
                (None, _) => None,
                (Some(_), Some(entry)) => self.catalog(entry, store, &mut problems),
                (Some((path, via_model)), None) => {
                    let key = if via_model { "model" } else { "model_path" };
                    self.file(path, key, &mut problems)
                }
            };
            let resolved = resolved.map(|mut r| {
                self.apply_backend(&mut r.config, &mut problems);
                r
            });
            match resolved {
                Some(r) if problems.is_empty() => Ok(r),
                _ => Err(problems),
            }
        }

        fn catalog(
            &self,
            entry: &'static Entry,
            store: Result<ModelStore, CatalogError>,
            problems: &mut Vec<ConfigProblem>,
        ) -> Option<Resolved> {
            for (key, set) in [
                ("input_width", self.input_width.is_some()),
                ("input_height", self.input_height.is_some()),
                ("decoder", self.decoder.is_some()),
            ] {
                if set {
                    problems.push(ConfigProblem {
                        field: key.into(),
                        value: None,
                        reason: format!(
                            "is set by catalog model `{}` (as the model was trained); remove the key",
                            entry.name
                        ),
                    });
                }
            }
            let store = match store {
                Ok(s) => s,
                Err(e) => {
                    problems.push(ConfigProblem::invalid("model", entry.name, e.to_string()));
                    return None;
                }
            };
            let path = store.path_of(entry);
            let Some(mut config) = catalog_preset(entry, &path) else {
                problems.push(ConfigProblem::invalid(
                    "model",
                    entry.name,
                    format!("catalog entry is a {}, not a model", entry.kind.label()),
                ));
                return None;
            };
            self.overrides(&mut config);
            Some(Resolved {
                present: path.is_file(),
                config,
                catalog: Some(entry),
                key: "model",
            })
        }

        fn file(
            &self,
            path: &str,
            key: &'static str,
            problems: &mut Vec<ConfigProblem>,
        ) -> Option<Resolved> {
            let present = PathBuf::from(path).is_file() || path.is_empty();
            if !present {
                // A misspelt catalog name or a wrong path: the keys a file needs are noise.
                let absent = Resolved {
                    config: ModelDetectorConfig::new(path, (1, 1), DecoderKind::yolov8()),
                    catalog: None,
                    present,
                    key,
                };
                problems.extend(absent.absence());
                return None;
            }
            let mut missing = |key: &str| {
                let mut p = ConfigProblem::missing(key);
                p.reason = "is required for a model given by file".into();
                problems.push(p);
            };
            let (Some(w), Some(h), Some(decoder)) =
                (self.input_width, self.input_height, self.decoder)
            else {
                if self.input_width.is_none() {
                    missing("input_width");
                }
                if self.input_height.is_none() {
                    missing("input_height");
                }
                if self.decoder.is_none() {
                    missing("decoder");
                }
                return None;
            };
            let mut config = match decoder {
                ModelDecoder::TfSsd => {
                    if w != h {
                        problems.push(ConfigProblem::invalid(
                            "input_height",
                            h,
                            format!(
                                "a tf-ssd model has a square input: must equal input_width ({w})"
                            ),
                        ));
                    }
                    let mut c = ModelDetectorConfig::tf_object_detection_ssd(path, w);
                    let onnx = std::path::Path::new(path)
                        .extension()
                        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"));
                    if onnx {
                        // The same cut converted to ONNX (tf2onnx keeps the NHWC input).
                        c.format = ModelFormat::Onnx;
                    }
                    c
                }
                ModelDecoder::Yolov8 | ModelDecoder::Yolov11 => {
                    ModelDetectorConfig::new(path, (w, h), DecoderKind::yolov8())
                }
                ModelDecoder::Yolov5 => {
                    ModelDetectorConfig::new(path, (w, h), DecoderKind::yolov5())
                }
                ModelDecoder::Text => {
                    ModelDetectorConfig::new(path, (w, h), DecoderKind::text_detection())
                }
            };
            self.overrides(&mut config);
            Some(Resolved {
                config,
                catalog: None,
                present,
                key,
            })
        }

        /// `backend`, `execution_providers`, `device_id`, `threads`.
        fn apply_backend(&self, c: &mut ModelDetectorConfig, problems: &mut Vec<ConfigProblem>) {
            if let Some(t) = self.threads {
                c.threads = t as usize;
            }
            let backend = self.backend.unwrap_or(BackendName::Tract);
            if backend == BackendName::Tract {
                for (key, set) in [
                    ("execution_providers", self.execution_providers.is_some()),
                    ("device_id", self.device_id.is_some()),
                ] {
                    if set {
                        problems.push(ConfigProblem {
                            field: key.into(),
                            value: None,
                            reason: "is used by backend = \"onnxruntime\" only".into(),
                        });
                    }
                }
                c.backend = Backend::Tract;
                return;
            }
            if !cfg!(feature = "ort") {
                problems.push(ConfigProblem::invalid(
                    "backend",
                    "onnxruntime",
                    "this nextvision was built without the cargo feature `ort` (ONNX \
                     Runtime); build with --features ort, or use backend = \"tract\"",
                ));
            }
            let device_id = self.device_id.unwrap_or(0);
            let execution_providers = match &self.execution_providers {
                None => vec![ExecutionProvider::Cpu],
                Some(list) => list
                    .iter()
                    .map(|p| match p {
                        ProviderName::Cpu => ExecutionProvider::Cpu,
                        ProviderName::Cuda => ExecutionProvider::Cuda { device_id },
                        ProviderName::Tensorrt => ExecutionProvider::TensorRt { device_id },
                    })
                    .collect(),
            };
            c.backend = Backend::OnnxRuntime(OrtOptions {
                execution_providers,
                library_path: None,
            });
        }

        fn overrides(&self, c: &mut ModelDetectorConfig) {
            c.confidence_threshold = self.confidence_threshold.unwrap_or(c.confidence_threshold);
            c.nms_iou_threshold = self.nms_iou_threshold.unwrap_or(c.nms_iou_threshold);
            if !self.class_names.is_empty() {
                c.class_names = self.class_names.clone();
            }
            if let Some(r) = self.resize {
                c.resize = match r {
                    ResizeName::Letterbox => ResizeMode::Letterbox,
                    ResizeName::Stretch => ResizeMode::Stretch,
                };
            }
        }
    }
}

#[cfg(all(test, feature = "model"))]
mod tests {
    use nv_models::ModelStore;

    use super::*;
    use crate::model::ResizeMode;

    fn parse(text: &str) -> ModelStageConfig {
        toml::from_str(text).expect("parses")
    }

    fn problems(c: &ModelStageConfig, store: &ModelStore) -> Vec<String> {
        match c.resolve_in(Ok(store.clone())) {
            Ok(r) => r.absence().into_iter().map(|p| p.to_string()).collect(),
            Err(p) => p.into_iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn a_catalog_name_resolves_to_its_preset_and_says_how_to_fetch_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ModelStore::new(dir.path());
        let c = parse("model = \"person-ssdlite\"\nconfidence_threshold = 0.4\n");
        let r = c.resolve_in(Ok(store.clone())).expect("resolves");
        assert_eq!(r.catalog.map(|e| e.name), Some("person-ssdlite"));
        assert_eq!(r.config.input_size, (300, 300));
        assert_eq!(r.config.resize, ResizeMode::Stretch);
        assert_eq!(r.config.confidence_threshold, 0.4);
        assert_eq!(r.config.class_names, ["background", "person"]);
        let entry = nv_models::find("person-ssdlite").expect("entry");
        assert_eq!(r.config.model_path, store.path_of(entry));
        let p = problems(&c, &store);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("model = person-ssdlite: catalog model not fetched yet"));
        assert!(
            p[0].contains("run `nextvision models fetch person-ssdlite`"),
            "{p:?}"
        );

        let path = store.path_of(entry);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, b"not checked here").expect("write");
        assert_eq!(problems(&c, &store), Vec::<String>::new());
    }

    #[test]
    fn catalog_models_refuse_the_keys_the_catalog_sets() {
        let store = ModelStore::new("/nonexistent");
        let c = parse(
            "model = \"person-ssdlite\"\ninput_width = 320\ndecoder = \"yolov8\"\nresize = \"letterbox\"\n",
        );
        let p = problems(&c, &store);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].starts_with("input_width: is set by catalog model `person-ssdlite`"));
        assert!(p[1].starts_with("decoder: is set by"));
        let c = parse("model = \"bikes-clip\"\n");
        assert_eq!(
            problems(&c, &store),
            ["model = bikes-clip: catalog entry is a sample clip, not a model"]
        );
    }

    #[test]
    fn a_file_needs_its_keys_and_must_exist() {
        let store = ModelStore::new("/nonexistent");
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("m.onnx");
        std::fs::write(&file, b"x").expect("write");
        let p = problems(
            &parse(&format!("model = {:?}\n", file.display().to_string())),
            &store,
        );
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].starts_with("input_width: is required for a model given by file"));
        let c = parse("model = \"person-ssdlte\"\n");
        let p = problems(&c, &store);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("model = person-ssdlte: no such model file, and not a catalog model (known: person-ssdlite"),
            "{p:?}"
        );
        // A catalog name under `model_path` is a file name, as that key always was.
        let c = parse(
            "model_path = \"person-ssdlite\"\ninput_width = 300\ninput_height = 300\ndecoder = \"tf-ssd\"\n",
        );
        assert_eq!(
            problems(&c, &store),
            ["model_path = person-ssdlite: no such model file"]
        );
        let c = parse(&format!(
            "model = {:?}\ninput_width = 300\ninput_height = 200\ndecoder = \"tf-ssd\"\n",
            file.display().to_string()
        ));
        let p = problems(&c, &store);
        assert!(p[0].contains("square input"), "{p:?}");
        let p = problems(&parse("model = \"a\"\nmodel_path = \"b\"\n"), &store);
        assert!(p[0].contains("not both"), "{p:?}");
        let p = problems(&parse(""), &store);
        assert!(
            p[0].starts_with("model: is required: a catalog model"),
            "{p:?}"
        );
    }

    #[test]
    fn an_existing_tf_ssd_file_resolves_as_the_tf_od_preset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("graph.pb");
        std::fs::write(&file, b"x").expect("write");
        let c = parse(&format!(
            "model = {:?}\ninput_width = 320\ninput_height = 320\ndecoder = \"tf-ssd\"\nresize = \"letterbox\"\n",
            file.display().to_string()
        ));
        let r = c
            .resolve_in(Ok(ModelStore::new("/nonexistent")))
            .expect("resolves");
        assert!(r.present && r.catalog.is_none());
        assert_eq!(r.config.input_size, (320, 320));
        assert_eq!(r.config.resize, ResizeMode::Letterbox);
        assert_eq!(r.config.validate(), Ok(()));
    }

    #[test]
    fn backend_keys_select_the_engine_and_every_problem_is_reported() {
        use crate::model::{Backend, ExecutionProvider, ModelFormat};

        let store = ModelStore::new("/nonexistent");
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("person.onnx");
        std::fs::write(&file, b"x").expect("write");
        let head = format!(
            "model = {:?}\ninput_width = 300\ninput_height = 300\ndecoder = \"tf-ssd\"\n",
            file.display().to_string()
        );
        // Default: tract; an .onnx file with the tf-ssd decoder is read as ONNX.
        let r = parse(&head)
            .resolve_in(Ok(store.clone()))
            .expect("resolves");
        assert_eq!(r.config.backend, Backend::Tract);
        assert_eq!(r.config.format, ModelFormat::Onnx);
        assert_eq!(r.config.threads, 1);

        // Provider keys belong to onnxruntime.
        let c = parse(&format!(
            "{head}execution_providers = [\"cuda\"]\ndevice_id = 1\n"
        ));
        let p = problems(&c, &store);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].starts_with("execution_providers: is used by backend = \"onnxruntime\""));
        assert!(p[1].starts_with("device_id: is used by"));

        let c = parse(&format!(
            "{head}backend = \"onnxruntime\"\nexecution_providers = [\"cuda\", \"cpu\"]\n\
             device_id = 1\nthreads = 2\n"
        ));
        match (c.resolve_in(Ok(store.clone())), cfg!(feature = "ort")) {
            (Ok(r), true) => {
                assert_eq!(r.config.threads, 2);
                let Backend::OnnxRuntime(o) = &r.config.backend else {
                    panic!("{:?}", r.config.backend)
                };
                assert_eq!(
                    o.execution_providers,
                    [
                        ExecutionProvider::Cuda { device_id: 1 },
                        ExecutionProvider::Cpu
                    ]
                );
                assert_eq!(r.config.validate(), Ok(()));
            }
            (Err(p), false) => {
                assert_eq!(p.len(), 1, "{p:?}");
                assert!(p[0].to_string().contains("without the cargo feature `ort`"));
            }
            (other, ort) => panic!("feature ort {ort}: {:?}", other.map(|r| r.config)),
        }

        // Validation: cpu must come last, no provider twice, threads in range.
        let c = parse(&format!(
            "{head}backend = \"onnxruntime\"\nexecution_providers = [\"cpu\", \"cuda\", \"cuda\"]\n\
             threads = 0\n"
        ));
        if let Ok(r) = c.resolve_in(Ok(store)) {
            let e = r.config.validate().expect_err("invalid");
            let p: Vec<String> = e.problems.iter().map(|p| p.to_string()).collect();
            assert_eq!(p.len(), 3, "{p:?}");
            assert!(p[0].starts_with("threads = 0: must be in 1..=64"), "{p:?}");
            assert!(
                p[1].contains("execution_providers[0] = cpu: must be last"),
                "{p:?}"
            );
            assert!(
                p[2].contains("execution_providers[2] = cuda: is listed twice"),
                "{p:?}"
            );
        }
    }
}
