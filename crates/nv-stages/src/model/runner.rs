//! The detector's inference backend: tract (always), or ONNX Runtime (feature `ort`),
//! behind one interface so preprocessing and decoding are shared.

use nv_core::error::StageError;
use nv_core::id::StageId;

use super::config::Backend;
use super::engine::{Engine, ModelSpec, Outputs};

#[derive(Debug)]
pub(crate) enum Runner {
    Tract(Engine),
    #[cfg(feature = "ort")]
    Ort(super::ort_engine::OrtEngine),
}

impl Runner {
    pub(crate) fn load(
        stage_id: StageId,
        spec: &ModelSpec<'_>,
        backend: &Backend,
        want_dynamic_batch: bool,
    ) -> Result<Self, StageError> {
        match backend {
            Backend::Tract => Engine::load(stage_id, spec, want_dynamic_batch).map(Self::Tract),
            #[cfg(feature = "ort")]
            Backend::OnnxRuntime(options) => {
                if !spec.path.is_file() {
                    return Err(StageError::DependencyUnavailable {
                        stage_id,
                        detail: format!(
                            "model file {} not found or not a file",
                            spec.path.display()
                        ),
                    });
                }
                super::ort_engine::OrtEngine::load(spec, options, spec.threads, want_dynamic_batch)
                    .map(Self::Ort)
                    .map_err(|e| StageError::other(stage_id, e))
            }
            #[cfg(not(feature = "ort"))]
            Backend::OnnxRuntime(_) => Err(StageError::DependencyUnavailable {
                stage_id,
                detail: "backend \"onnxruntime\" needs nextvision built with the cargo feature \
                         `ort`"
                    .into(),
            }),
        }
    }

    /// What runs the model, for logs and benchmarks (`tract (1 thread)`, `onnxruntime
    /// (LIBRARY; providers: cpu; 1 thread)`).
    pub(crate) fn description(&self) -> String {
        match self {
            Self::Tract(e) => {
                let n = e.threads();
                format!("tract ({n} thread{})", if n == 1 { "" } else { "s" })
            }
            #[cfg(feature = "ort")]
            Self::Ort(e) => e.description().to_string(),
        }
    }

    pub(crate) fn dynamic_batch(&self) -> bool {
        match self {
            Self::Tract(e) => e.dynamic_batch(),
            #[cfg(feature = "ort")]
            Self::Ort(e) => e.dynamic_batch(),
        }
    }

    pub(crate) fn output_shapes(&self) -> &[Vec<Option<usize>>] {
        match self {
            Self::Tract(e) => e.output_shapes(),
            #[cfg(feature = "ort")]
            Self::Ort(e) => e.output_shapes(),
        }
    }

    /// As [`Engine::set_profiling`] (tract only).
    pub(crate) fn set_profiling(&mut self, on: bool) {
        match self {
            Self::Tract(e) => e.set_profiling(on),
            #[cfg(feature = "ort")]
            Self::Ort(_) => {}
        }
    }

    /// As [`Engine::set_reuse_state`] (tract only).
    pub(crate) fn set_reuse_state(&mut self, on: bool) {
        match self {
            Self::Tract(e) => e.set_reuse_state(on),
            #[cfg(feature = "ort")]
            Self::Ort(_) => {}
        }
    }

    /// As [`Engine::profile`].
    pub(crate) fn profile(&self) -> Option<&super::engine::Profile> {
        match self {
            Self::Tract(e) => e.profile(),
            #[cfg(feature = "ort")]
            Self::Ort(_) => None,
        }
    }

    /// As [`Engine::run`].
    pub(crate) fn run(
        &mut self,
        n: usize,
        fill: impl FnOnce(&mut [f32]) -> Result<(), String>,
    ) -> Result<Option<Outputs>, String> {
        match self {
            Self::Tract(e) => e.run(n, fill),
            #[cfg(feature = "ort")]
            Self::Ort(e) => e.run(n, fill),
        }
    }
}
