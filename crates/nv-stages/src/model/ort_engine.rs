//! The ONNX Runtime backend (cargo feature `ort`).
//!
//! `libonnxruntime.so` is never linked and never downloaded by the build: it is loaded at
//! run time from [`OrtOptions::library_path`], else `ORT_DYLIB_PATH`, else the copy that
//! `scripts/fetch-onnxruntime.sh` puts in the cache directory
//! (`~/.cache/nextvision/onnxruntime/VERSION/`). A missing or unloadable library is an
//! [`OrtError`], never a panic: the library is loaded by this module before any other
//! ONNX Runtime call (which would otherwise try the system search path and abort).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ort::environment::Environment;
use ort::ep::{ExecutionProvider as _, TensorRT, CUDA};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};
use tract_onnx::prelude::Tensor;

use super::config::{ExecutionProvider, InputLayout, OrtOptions};
use super::engine::{ModelSpec, Outputs};

/// The ONNX Runtime release `scripts/fetch-onnxruntime.sh` installs (and the cache
/// directory is searched for).
pub const ONNXRUNTIME_VERSION: &str = "1.32.0";

/// Why the ONNX Runtime backend could not start.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OrtError {
    /// No library at any place searched.
    #[error(
        "ONNX Runtime library not found (looked for {searched}): run \
         scripts/fetch-onnxruntime.sh once, or set ORT_DYLIB_PATH to a libonnxruntime.so"
    )]
    LibraryMissing { searched: String },
    /// The file exists but is not a loadable ONNX Runtime of a supported version.
    #[error("cannot load ONNX Runtime library {path}: {cause}")]
    LibraryLoad { path: PathBuf, cause: String },
    #[error("cannot start ONNX Runtime: {cause}")]
    Environment { cause: String },
    /// A required execution provider did not start (no GPU, no CUDA libraries, a CPU-only
    /// ONNX Runtime build). List `cpu` last in `execution_providers` to fall back instead.
    #[error(
        "execution provider {provider} is not available: {cause} (list \"cpu\" last in \
         execution_providers to fall back to the CPU)"
    )]
    ProviderUnavailable {
        provider: &'static str,
        cause: String,
    },
    #[error("ONNX Runtime cannot load model {path}: {cause}")]
    Model { path: PathBuf, cause: String },
}

/// The library and environment of this process (ONNX Runtime allows one environment per
/// process, and a library once loaded stays).
struct Runtime {
    env: Environment,
    library: PathBuf,
}

static RUNTIME: Mutex<Option<Arc<Runtime>>> = Mutex::new(None);

/// The cached copy's path: `CACHE/onnxruntime/VERSION/libonnxruntime.so.VERSION`.
pub fn cached_onnxruntime_library() -> Option<PathBuf> {
    let root = nv_models::default_cache_dir().ok()?;
    Some(
        root.join("onnxruntime")
            .join(ONNXRUNTIME_VERSION)
            .join(format!("libonnxruntime.so.{ONNXRUNTIME_VERSION}")),
    )
}

/// Which library the backend would load: `explicit`, else `ORT_DYLIB_PATH`, else the
/// cached copy. Errors when the chosen file is not there.
pub fn onnxruntime_library(explicit: Option<&Path>) -> Result<PathBuf, OrtError> {
    let from_env = std::env::var_os("ORT_DYLIB_PATH")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let (path, how) = match (explicit, from_env, cached_onnxruntime_library()) {
        (Some(p), _, _) => (p.to_path_buf(), "the configured library"),
        (None, Some(p), _) => (p, "ORT_DYLIB_PATH"),
        (None, None, Some(p)) => (p, "the cache"),
        (None, None, None) => {
            return Err(OrtError::LibraryMissing {
                searched: "ORT_DYLIB_PATH (unset) and the cache (no HOME or XDG_CACHE_HOME)".into(),
            })
        }
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(OrtError::LibraryMissing {
            searched: format!("{} ({how})", path.display()),
        })
    }
}

/// Loads the library (once per process: the first one loaded serves every later session)
/// and starts the environment.
fn runtime(explicit: Option<&Path>) -> Result<Arc<Runtime>, OrtError> {
    let library = onnxruntime_library(explicit)?;
    let mut slot = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(rt) = slot.as_ref() {
        return Ok(rt.clone());
    }
    let builder = ort::init_from(&library).map_err(|e| OrtError::LibraryLoad {
        path: library.clone(),
        cause: e.to_string(),
    })?;
    let env = builder
        .with_name("nextvision")
        .build()
        .map_err(|e| OrtError::Environment {
            cause: e.to_string(),
        })?;
    let rt = Arc::new(Runtime { env, library });
    *slot = Some(rt.clone());
    Ok(rt)
}

/// A model loaded into an ONNX Runtime session.
pub(crate) struct OrtEngine {
    session: Session,
    /// `[n, 3, H, W]` or `[n, H, W, 3]` for n = 1 (the batch slot is set per run).
    item_shape: [usize; 4],
    dynamic_batch: bool,
    output_shapes: Vec<Vec<Option<usize>>>,
    /// Input buffer reused across runs.
    input: Vec<f32>,
    description: String,
}

impl std::fmt::Debug for OrtEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrtEngine")
            .field("description", &self.description)
            .field("dynamic_batch", &self.dynamic_batch)
            .field("output_shapes", &self.output_shapes)
            .finish_non_exhaustive()
    }
}

fn dims_of(t: &ValueType) -> Option<(TensorElementType, Vec<i64>)> {
    match t {
        ValueType::Tensor { ty, shape, .. } => Some((*ty, shape.to_vec())),
        _ => None,
    }
}

impl OrtEngine {
    pub(crate) fn load(
        spec: &ModelSpec<'_>,
        options: &OrtOptions,
        threads: usize,
        want_dynamic_batch: bool,
    ) -> Result<Self, OrtError> {
        let rt = runtime(options.library_path.as_deref())?;
        let path = spec.path;
        let model_err = |cause: String| OrtError::Model {
            path: path.to_path_buf(),
            cause,
        };
        let mut builder = Session::builder(&rt.env).map_err(|e| model_err(e.to_string()))?;
        builder = builder
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(|e| model_err(e.to_string()))?;
        builder = builder
            .with_intra_threads(threads)
            .map_err(|e| model_err(e.to_string()))?;
        builder = builder
            .with_inter_threads(1)
            .map_err(|e| model_err(e.to_string()))?;
        let fallback = options
            .execution_providers
            .contains(&ExecutionProvider::Cpu);
        let mut active = Vec::new();
        let mut skipped = Vec::new();
        for ep in &options.execution_providers {
            let registered = match *ep {
                ExecutionProvider::Cpu => Ok(()),
                ExecutionProvider::Cuda { device_id } => CUDA::default()
                    .with_device_id(device_id.min(i32::MAX as u32) as i32)
                    .register(&mut builder),
                ExecutionProvider::TensorRt { device_id } => TensorRT::default()
                    .with_device_id(device_id.min(i32::MAX as u32) as i32)
                    .register(&mut builder),
            };
            match registered {
                Ok(()) => active.push(ep.name()),
                Err(e) if fallback => skipped.push(format!("{} ({e})", ep.name())),
                Err(e) => {
                    return Err(OrtError::ProviderUnavailable {
                        provider: ep.name(),
                        cause: e.to_string(),
                    })
                }
            }
        }
        let session = builder
            .commit_from_file(path)
            .map_err(|e| model_err(e.to_string()))?;
        let item_shape = super::engine::input_shape(spec.input, spec.layout, 1);
        let dynamic_batch = check_input(&session, spec, item_shape).map_err(model_err)?;
        let mut output_shapes = Vec::new();
        for (i, o) in session.outputs().iter().enumerate() {
            let Some((ty, dims)) = dims_of(o.dtype()) else {
                return Err(model_err(format!(
                    "output {i} ({}) is not a tensor",
                    o.name()
                )));
            };
            if ty != TensorElementType::Float32 {
                return Err(model_err(format!(
                    "output {i} ({}) holds {ty}, the detector reads f32",
                    o.name()
                )));
            }
            output_shapes.push(dims.iter().map(|&d| usize::try_from(d).ok()).collect());
        }
        let mut description = format!(
            "onnxruntime ({}; providers: {}; {threads} thread{})",
            rt.library.display(),
            active.join(", "),
            if threads == 1 { "" } else { "s" }
        );
        if !skipped.is_empty() {
            description.push_str(&format!("; unavailable: {}", skipped.join(", ")));
        }
        Ok(Self {
            session,
            item_shape,
            dynamic_batch: dynamic_batch && want_dynamic_batch,
            output_shapes,
            input: Vec::new(),
            description,
        })
    }

    pub(crate) fn description(&self) -> &str {
        &self.description
    }

    pub(crate) fn dynamic_batch(&self) -> bool {
        self.dynamic_batch
    }

    pub(crate) fn output_shapes(&self) -> &[Vec<Option<usize>>] {
        &self.output_shapes
    }

    /// As [`Engine::run`](super::engine::Engine::run).
    pub(crate) fn run(
        &mut self,
        n: usize,
        fill: impl FnOnce(&mut [f32]) -> Result<(), String>,
    ) -> Result<Option<Outputs>, String> {
        if n > 1 && !self.dynamic_batch {
            return Ok(None);
        }
        let mut shape = self.item_shape;
        shape[0] = n;
        let len = shape.iter().product::<usize>();
        self.input.resize(len, 0.0);
        fill(&mut self.input)?;
        let input = TensorRef::from_array_view((shape, self.input.as_slice()))
            .map_err(|e| format!("input tensor: {e}"))?;
        let outputs = self
            .session
            .run(ort::inputs![input])
            .map_err(|e| format!("inference failed: {e}"))?;
        let mut out = Vec::with_capacity(outputs.len());
        for i in 0..outputs.len() {
            let (dims, data) = outputs[i]
                .try_extract_tensor::<f32>()
                .map_err(|e| format!("reading output {i}: {e}"))?;
            let dims: Vec<usize> = dims
                .iter()
                .map(|&d| usize::try_from(d).unwrap_or(0))
                .collect();
            let t = Tensor::from_shape(&dims, data)
                .map_err(|e| format!("reading output {i}: {e:#}"))?;
            out.push((dims, Arc::new(t)));
        }
        Ok(Some(out))
    }
}

/// Checks the model's single f32 image input against the spec; `Ok(true)` when its batch
/// dimension is dynamic.
fn check_input(
    session: &Session,
    spec: &ModelSpec<'_>,
    expected: [usize; 4],
) -> Result<bool, String> {
    let inputs = session.inputs();
    if inputs.len() != 1 {
        return Err(format!(
            "the model has {} inputs, the detector feeds exactly one image input",
            inputs.len()
        ));
    }
    let Some((ty, dims)) = dims_of(inputs[0].dtype()) else {
        return Err("the model input is not a tensor".into());
    };
    if ty != TensorElementType::Float32 {
        return Err(format!("the model input is {ty}, the detector feeds f32"));
    }
    let layout = match spec.layout {
        InputLayout::Nchw => "NCHW",
        InputLayout::Nhwc => "NHWC",
    };
    let show = |d: i64| {
        if d < 0 {
            "?".to_string()
        } else {
            d.to_string()
        }
    };
    let declared = format!(
        "[{}]",
        dims.iter().map(|&d| show(d)).collect::<Vec<_>>().join(", ")
    );
    if dims.len() != 4 {
        return Err(format!(
            "the model input is {declared}, the detector feeds {layout} images (rank 4)"
        ));
    }
    for axis in 1..4 {
        if dims[axis] >= 0 && dims[axis] as usize != expected[axis] {
            return Err(format!(
                "the model input is {declared}, the detector feeds {layout} [{}] (input size \
                 {}x{}, w x h)",
                expected.map(|d| d.to_string()).join(", "),
                spec.input.0,
                spec.input.1
            ));
        }
    }
    match dims[0] {
        1 => Ok(false),
        d if d < 0 => Ok(true),
        n => Err(format!(
            "the model input is {declared}: a fixed batch of {n} is not supported"
        )),
    }
}
