//! tract model loading (ONNX, or a cut TensorFlow frozen graph) and inference.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;

use nv_core::error::StageError;
use nv_core::id::StageId;
use tract_linalg::multithread::{multithread_tract_scope, Executor};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::{DimFact, Factoid};
use tract_onnx::tract_hir::internal::DimLike;

use super::config::{InputLayout, ModelFormat};

/// Plans kept per batch size, besides batch 1.
const MAX_BATCH_PLANS: usize = 4;

type Plan = Arc<TypedRunnableModel>;

/// Model outputs as f32: shape and tensor.
pub(crate) type Outputs = Vec<(Vec<usize>, Arc<Tensor>)>;

/// What the engine loads: file, format, input size and layout.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ModelSpec<'a> {
    pub path: &'a Path,
    pub format: &'a ModelFormat,
    /// `(width, height)`.
    pub input: (u32, u32),
    pub layout: InputLayout,
    /// Threads one inference may use (1: the calling thread only).
    pub threads: usize,
}

impl ModelSpec<'_> {
    fn shape(&self, batch: usize) -> [usize; 4] {
        input_shape(self.input, self.layout, batch)
    }
}

pub(crate) fn input_shape(input: (u32, u32), layout: InputLayout, batch: usize) -> [usize; 4] {
    let (w, h) = (input.0 as usize, input.1 as usize);
    match layout {
        InputLayout::Nchw => [batch, 3, h, w],
        InputLayout::Nhwc => [batch, h, w, 3],
    }
}

/// Runnable model with the input fixed to `[n, 3, H, W]` (or `[n, H, W, 3]`) f32. tract runs concrete shapes
/// much faster than symbolic ones (measured: a symbolic batch of 8 took 6x the time of 8
/// single runs), so a batch of `n` gets its own plan, optimised on first use and cached.
pub(crate) struct Engine {
    input_size: (u32, u32),
    layout: InputLayout,
    /// Batch 1, always ready.
    single: Plan,
    /// The parsed model, kept when batches of more than one may run in one inference.
    source: Option<InferenceModel>,
    /// Plans for other batch sizes, most recently built last.
    batched: Vec<(usize, Plan)>,
    output_shapes: Vec<Vec<Option<usize>>>,
    /// Input tensor reused across calls when nothing else holds it.
    input: Option<Arc<Tensor>>,
    /// The thread pool inference runs on, for more than one thread (threads named
    /// `nv-tract-N`); `None`: on the calling thread.
    executor: Option<Executor>,
    /// The batch-1 plan's run state, kept across calls: `plan.run` would build a fresh one
    /// (every operator's state and scratch buffers) per inference.
    state: Option<TypedSimpleState>,
    /// Off: every inference builds a fresh state, as before (benchmarks compare the two).
    reuse_state: bool,
    /// Time per operator kind, while profiling (see [`Engine::set_profiling`]).
    profile: Option<Profile>,
}

/// Per operator kind: total time and evaluations.
pub(crate) type Profile = std::collections::BTreeMap<String, (std::time::Duration, u32)>;

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("input_size", &self.input_size)
            .field("dynamic_batch", &self.source.is_some())
            .field(
                "batch_plans",
                &self.batched.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            )
            .field("output_shapes", &self.output_shapes)
            .field("threads", &self.threads())
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
    spec: &ModelSpec<'_>,
) -> Result<DeclaredInput, String> {
    let (path, input) = (spec.path, spec.input);
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
    let layout = match spec.layout {
        InputLayout::Nchw => "NCHW",
        InputLayout::Nhwc => "NHWC",
    };
    if dims.len() != 4 {
        return Err(format!(
            "model {} input has rank {}, the detector feeds {layout} images (rank 4)",
            path.display(),
            dims.len()
        ));
    }
    let (c_ix, h_ix, w_ix) = match spec.layout {
        InputLayout::Nchw => (1, 2, 3),
        InputLayout::Nhwc => (3, 1, 2),
    };
    let show = |d: Option<i64>| d.map_or_else(|| "?".to_string(), |v| v.to_string());
    let declared = format!(
        "[{}, {}, {}, {}]",
        show(dims[0]),
        show(dims[1]),
        show(dims[2]),
        show(dims[3])
    );
    if matches!(dims[c_ix], Some(c) if c != 3) {
        return Err(format!(
            "model {} input is {declared} ({layout}), the detector feeds 3-channel images",
            path.display()
        ));
    }
    let (w, h) = (i64::from(input.0), i64::from(input.1));
    if matches!(dims[h_ix], Some(v) if v != h) || matches!(dims[w_ix], Some(v) if v != w) {
        return Err(format!(
            "model {} input is {declared} ({layout}), configured input_size is {}x{} (w x h)",
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

/// Whether models loaded from now on get our graph rewrites (default on; benchmarks turn
/// them off to time the graph as tract alone optimises it).
static TRACT_REWRITES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Turns our tract graph rewrites (the depthwise bias fold) on or off for models loaded
/// from now on, process-wide. For benchmarks comparing the two; leave it on otherwise.
pub fn set_tract_rewrites(on: bool) {
    TRACT_REWRITES.store(on, std::sync::atomic::Ordering::Relaxed);
}

fn optimise(mut model: InferenceModel, shape: [usize; 4]) -> TractResult<TypedModel> {
    model.set_input_fact(0, f32::fact(shape).into())?;
    let mut typed = model.into_typed()?.into_decluttered()?;
    if TRACT_REWRITES.load(std::sync::atomic::Ordering::Relaxed) {
        super::tract_fold::fold_depthwise_bias(&mut typed)?;
    }
    typed.into_optimized()
}

/// Model loads attempted in this process (see [`model_loads`]).
static MODEL_LOADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many times this process tried to load a model file. Loading is the expensive part
/// of a model detector (seconds for a large model); the daemon does it once per feed, never
/// while validating a configuration, and tests check that with this count.
pub fn model_loads() -> u64 {
    MODEL_LOADS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Parses the model file into tract's inference graph.
fn parse(spec: &ModelSpec<'_>) -> Result<InferenceModel, String> {
    match spec.format {
        ModelFormat::Onnx => onnx()
            .model_for_path(spec.path)
            .map_err(|e| format!("cannot read ONNX model {}: {e:#}", spec.path.display())),
        ModelFormat::TensorFlow(cut) => {
            let [_, a, b, c] = spec.shape(1).map(|d| d as i64);
            super::tf_graph::load(spec.path, cut, [-1, a, b, c])
        }
    }
}

impl Engine {
    /// Loads and optimises `path`. With `want_dynamic_batch`, a model whose batch dimension
    /// is not fixed gets a symbolic batch (one run per batch); otherwise batch 1.
    pub(crate) fn load(
        stage_id: StageId,
        spec: &ModelSpec<'_>,
        want_dynamic_batch: bool,
    ) -> Result<Self, StageError> {
        MODEL_LOADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = spec.path;
        if !path.is_file() {
            return Err(unavailable(
                stage_id,
                format!("model file {} not found or not a file", path.display()),
            ));
        }
        let loaded = catch_unwind(AssertUnwindSafe(|| {
            Self::load_inner(spec, want_dynamic_batch)
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

    fn load_inner(spec: &ModelSpec<'_>, want_dynamic_batch: bool) -> Result<Self, String> {
        let (path, input) = (spec.path, spec.input);
        let model = parse(spec)?;
        let declared = check_declared_input(&model, spec)?;
        let source = (want_dynamic_batch && declared.batch.is_none()).then(|| model.clone());
        let typed = optimise(model, spec.shape(1)).map_err(|e| {
            format!(
                "cannot prepare model {} for input {}x{}: {e:#}",
                path.display(),
                input.0,
                input.1
            )
        })?;
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
        let single = typed
            .into_runnable()
            .map_err(|e| format!("cannot plan model {}: {e:#}", path.display()))?;
        let executor =
            (spec.threads > 1).then(|| Executor::multithread_with_name(spec.threads, "nv-tract"));
        let state = single
            .spawn()
            .map_err(|e| format!("cannot plan model {}: {e:#}", path.display()))?;
        Ok(Self {
            state: Some(state),
            reuse_state: true,
            profile: None,
            input_size: input,
            layout: spec.layout,
            single,
            source,
            batched: Vec::new(),
            output_shapes,
            input: None,
            executor,
        })
    }

    /// The plan for a batch of `n` (> 1), built on first use. A model that cannot be
    /// prepared for batches falls back to one inference per item for good.
    fn plan_for(&mut self, n: usize) -> Option<Plan> {
        if let Some(i) = self.batched.iter().position(|(k, _)| *k == n) {
            let entry = self.batched.remove(i);
            let plan = entry.1.clone();
            self.batched.push(entry);
            return Some(plan);
        }
        let source = self.source.clone()?;
        let shape = self.shape(n);
        let built = catch_unwind(AssertUnwindSafe(|| {
            optimise(source, shape).and_then(|m| m.into_runnable())
        }));
        match built {
            Ok(Ok(plan)) => {
                if self.batched.len() >= MAX_BATCH_PLANS {
                    self.batched.remove(0);
                }
                self.batched.push((n, plan.clone()));
                Some(plan)
            }
            _ => {
                self.source = None;
                self.batched.clear();
                None
            }
        }
    }

    fn shape(&self, batch: usize) -> [usize; 4] {
        input_shape(self.input_size, self.layout, batch)
    }

    /// Starts (or stops) timing every operator of batch-1 inferences.
    pub(crate) fn set_profiling(&mut self, on: bool) {
        self.profile = on.then(Profile::new);
    }

    /// Whether batch-1 inferences keep one run state (the default) or build a fresh one
    /// each time (the behaviour before; for benchmarks).
    pub(crate) fn set_reuse_state(&mut self, on: bool) {
        self.reuse_state = on;
    }

    /// Operator times gathered since profiling started.
    pub(crate) fn profile(&self) -> Option<&Profile> {
        self.profile.as_ref()
    }

    /// Threads one inference uses.
    pub(crate) fn threads(&self) -> usize {
        match &self.executor {
            Some(Executor::MultiThread(pool)) => pool.current_num_threads(),
            _ => 1,
        }
    }

    /// Whether a batch of several images can run as one inference.
    pub(crate) fn dynamic_batch(&self) -> bool {
        self.source.is_some()
    }

    /// Output shapes known after optimisation (`None` for symbolic dimensions).
    pub(crate) fn output_shapes(&self) -> &[Vec<Option<usize>>] {
        &self.output_shapes
    }

    /// Runs `n` images as one inference; `Ok(None)` when `n > 1` and the model cannot run
    /// batches (run the items one by one). `fill` writes the input in the model's layout
    /// (`n * 3 * h * w` values). Outputs are cast to f32.
    pub(crate) fn run(
        &mut self,
        n: usize,
        fill: impl FnOnce(&mut [f32]) -> Result<(), String>,
    ) -> Result<Option<Outputs>, String> {
        let plan = if n == 1 {
            self.single.clone()
        } else {
            match self.plan_for(n) {
                Some(p) => p,
                None => return Ok(None),
            }
        };
        let shape = self.shape(n);
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
        let feed = tensor.clone();
        let executor = self.executor.clone();
        // Batch 1 runs on the kept state (taken out, so a panic inside leaves none behind).
        let mut state = if n == 1 && self.reuse_state {
            self.state.take()
        } else {
            None
        };
        let profile = &mut self.profile;
        let result = catch_unwind(AssertUnwindSafe(|| {
            let go = || -> TractResult<TVec<TValue>> {
                let inputs = tvec![TValue::from_const(feed)];
                match (&mut state, profile.as_mut()) {
                    (Some(s), Some(p)) => s.run_plan_with_eval(inputs, |ctx, op_state, node, i| {
                        let started = std::time::Instant::now();
                        let r = tract_onnx::tract_core::plan::eval(ctx, op_state, node, i);
                        let e = p.entry(node.op().name().to_string()).or_default();
                        e.0 += started.elapsed();
                        e.1 += 1;
                        r
                    }),
                    (Some(s), None) => s.run(inputs),
                    (None, Some(p)) => {
                        plan.spawn()?
                            .run_plan_with_eval(inputs, |ctx, op_state, node, i| {
                                let started = std::time::Instant::now();
                                let r = tract_onnx::tract_core::plan::eval(ctx, op_state, node, i);
                                let e = p.entry(node.op().name().to_string()).or_default();
                                e.0 += started.elapsed();
                                e.1 += 1;
                                r
                            })
                    }
                    (None, None) => plan.run(inputs),
                }
            };
            match executor {
                Some(pool) => multithread_tract_scope(pool, go),
                None => go(),
            }
        }));
        if result.as_ref().is_ok_and(Result::is_ok) {
            self.state = self.state.take().or(state);
        } else if n == 1 && self.reuse_state {
            // A failed run may leave the state half-way: start the next one afresh.
            self.state = self.single.spawn().ok();
        }
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
        Ok(Some(out))
    }
}
