//! tract-onnx model loading and inference.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;

use nv_core::error::StageError;
use nv_core::id::StageId;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::{DimFact, Factoid};
use tract_onnx::tract_hir::internal::DimLike;

/// Runnable model with the input fixed to `[N or 1, 3, H, W]` f32.
pub(crate) struct Engine {
    plan: Arc<TypedRunnableModel>,
    dynamic_batch: bool,
    output_shapes: Vec<Vec<Option<usize>>>,
    /// Input tensor reused across calls when nothing else holds it.
    input: Option<Arc<Tensor>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("dynamic_batch", &self.dynamic_batch)
            .field("output_shapes", &self.output_shapes)
            .finish_non_exhaustive()
    }
}

fn unavailable(stage_id: StageId, detail: String) -> StageError {
    StageError::DependencyUnavailable { stage_id, detail }
}

/// What the model declares about its input, before any fact is set.
struct DeclaredInput {
    /// `Some(n)` for a fixed batch dimension, `None` for a symbolic or unknown one.
    batch: Option<usize>,
}

fn concrete(d: &DimFact) -> Option<i64> {
    d.concretize().and_then(|t| t.to_i64().ok())
}

fn check_declared_input(
    model: &InferenceModel,
    path: &Path,
    input: (u32, u32),
) -> Result<DeclaredInput, String> {
    let inputs = model.input_outlets().map_err(|e| format!("{e:#}"))?.len();
    if inputs != 1 {
        return Err(format!(
            "model {} has {inputs} inputs, the detector feeds exactly one image input",
            path.display()
        ));
    }
    let fact = model.input_fact(0).map_err(|e| format!("{e:#}"))?;
    if let Some(dt) = fact.datum_type.concretize() {
        if dt != f32::datum_type() {
            return Err(format!(
                "model {} input is {dt:?}, the detector feeds f32",
                path.display()
            ));
        }
    }
    let dims: Vec<Option<i64>> = fact.shape.dims().map(concrete).collect();
    if fact.shape.is_open() && dims.is_empty() {
        return Ok(DeclaredInput { batch: None });
    }
    if dims.len() != 4 {
        return Err(format!(
            "model {} input has rank {}, the detector feeds NCHW images (rank 4)",
            path.display(),
            dims.len()
        ));
    }
    let show = |d: Option<i64>| d.map_or_else(|| "?".to_string(), |v| v.to_string());
    let declared = format!(
        "[{}, {}, {}, {}]",
        show(dims[0]),
        show(dims[1]),
        show(dims[2]),
        show(dims[3])
    );
    if matches!(dims[1], Some(c) if c != 3) {
        return Err(format!(
            "model {} input is {declared}, the detector feeds 3-channel images",
            path.display()
        ));
    }
    let (w, h) = (i64::from(input.0), i64::from(input.1));
    if matches!(dims[2], Some(v) if v != h) || matches!(dims[3], Some(v) if v != w) {
        return Err(format!(
            "model {} input is {declared} (NCHW), configured input_size is {}x{} (w x h)",
            path.display(),
            input.0,
            input.1
        ));
    }
    match dims[0] {
        Some(1) => Ok(DeclaredInput { batch: Some(1) }),
        Some(n) if n > 1 => Err(format!(
            "model {} input is {declared}: a fixed batch of {n} is not supported (export with \
             batch 1 or a dynamic batch dimension)",
            path.display()
        )),
        _ => Ok(DeclaredInput { batch: None }),
    }
}

fn optimise(
    mut model: InferenceModel,
    input: (u32, u32),
    symbolic_batch: bool,
) -> TractResult<TypedModel> {
    let (w, h) = (input.0 as usize, input.1 as usize);
    let batch: TDim = if symbolic_batch {
        model.sym("N").into()
    } else {
        1.into()
    };
    let shape: TVec<TDim> = tvec![batch, 3.into(), h.into(), w.into()];
    model.set_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), shape))?;
    model.into_optimized()
}

impl Engine {
    /// Loads and optimises `path`. With `want_dynamic_batch`, a model whose batch dimension
    /// is not fixed gets a symbolic batch (one run per batch); otherwise batch 1.
    pub(crate) fn load(
        stage_id: StageId,
        path: &Path,
        input: (u32, u32),
        want_dynamic_batch: bool,
    ) -> Result<Self, StageError> {
        if !path.is_file() {
            return Err(unavailable(
                stage_id,
                format!("model file {} not found or not a file", path.display()),
            ));
        }
        let loaded = catch_unwind(AssertUnwindSafe(|| {
            Self::load_inner(path, input, want_dynamic_batch)
        }));
        match loaded {
            Ok(Ok(engine)) => Ok(engine),
            Ok(Err(detail)) => Err(unavailable(stage_id, detail)),
            Err(_) => Err(unavailable(
                stage_id,
                format!("model loader panicked on {}", path.display()),
            )),
        }
    }

    fn load_inner(
        path: &Path,
        input: (u32, u32),
        want_dynamic_batch: bool,
    ) -> Result<Self, String> {
        let parse = || {
            onnx()
                .model_for_path(path)
                .map_err(|e| format!("cannot read ONNX model {}: {e:#}", path.display()))
        };
        let model = parse()?;
        let declared = check_declared_input(&model, path, input)?;
        let dynamic = want_dynamic_batch && declared.batch.is_none();
        let typed = match optimise(model, input, dynamic) {
            Ok(t) => (t, dynamic),
            Err(first) if dynamic => match optimise(parse()?, input, false) {
                // Some graphs only optimise with a concrete batch: run those per item.
                Ok(t) => (t, false),
                Err(_) => {
                    return Err(format!(
                        "cannot prepare model {} for input {}x{}: {first:#}",
                        path.display(),
                        input.0,
                        input.1
                    ))
                }
            },
            Err(e) => {
                return Err(format!(
                    "cannot prepare model {} for input {}x{}: {e:#}",
                    path.display(),
                    input.0,
                    input.1
                ))
            }
        };
        let (typed, dynamic_batch) = typed;
        let mut output_shapes = Vec::new();
        let outlets = typed
            .output_outlets()
            .map_err(|e| format!("{e:#}"))?
            .to_vec();
        for o in outlets {
            let fact = typed.outlet_fact(o).map_err(|e| format!("{e:#}"))?;
            output_shapes.push(
                fact.shape
                    .iter()
                    .map(|d| d.to_usize().ok())
                    .collect::<Vec<_>>(),
            );
        }
        let plan = typed
            .into_runnable()
            .map_err(|e| format!("cannot plan model {}: {e:#}", path.display()))?;
        Ok(Self {
            plan,
            dynamic_batch,
            output_shapes,
            input: None,
        })
    }

    pub(crate) fn dynamic_batch(&self) -> bool {
        self.dynamic_batch
    }

    /// Output shapes known after optimisation (`None` for symbolic dimensions).
    pub(crate) fn output_shapes(&self) -> &[Vec<Option<usize>>] {
        &self.output_shapes
    }

    /// Runs `n` images (`n` must be 1 unless the batch is dynamic). `fill` writes the NCHW
    /// input (`n * 3 * h * w` values). Outputs are cast to f32.
    pub(crate) fn run(
        &mut self,
        n: usize,
        input: (u32, u32),
        fill: impl FnOnce(&mut [f32]) -> Result<(), String>,
    ) -> Result<Vec<(Vec<usize>, Arc<Tensor>)>, String> {
        let shape = [n, 3, input.1 as usize, input.0 as usize];
        let mut tensor = match self.input.take() {
            Some(t) if t.shape() == shape => t,
            _ => Arc::new(Tensor::zero::<f32>(&shape).map_err(|e| format!("{e:#}"))?),
        };
        let slot = match Arc::get_mut(&mut tensor) {
            Some(t) => t,
            None => {
                tensor = Arc::new(Tensor::zero::<f32>(&shape).map_err(|e| format!("{e:#}"))?);
                Arc::get_mut(&mut tensor).ok_or_else(|| "input tensor is shared".to_string())?
            }
        };
        let mut view = slot.try_as_plain_ram_mut().map_err(|e| format!("{e:#}"))?;
        fill(view.as_slice_mut::<f32>().map_err(|e| format!("{e:#}"))?)?;
        let plan = &self.plan;
        let feed = tensor.clone();
        let result = catch_unwind(AssertUnwindSafe(|| {
            plan.run(tvec![TValue::from_const(feed)])
        }));
        self.input = Some(tensor);
        let outputs = match result {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => return Err(format!("inference failed: {e:#}")),
            Err(_) => return Err("inference panicked".to_string()),
        };
        let mut out = Vec::with_capacity(outputs.len());
        for v in outputs {
            let t = v.into_arc_tensor();
            let t = if t.datum_type() == f32::datum_type() {
                t
            } else {
                Arc::new(
                    t.cast_to::<f32>()
                        .map_err(|e| format!("cannot read output as f32: {e:#}"))?
                        .into_owned(),
                )
            };
            out.push((t.shape().to_vec(), t));
        }
        Ok(out)
    }
}
