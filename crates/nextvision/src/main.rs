//! `nextvision`: the NextVision command line and daemon.

mod api;
mod assemble;
mod config;
mod demo;
#[cfg(feature = "model")]
mod demo_video;
mod media;
mod models;
mod process;
mod records;
mod registry;
mod run;
mod sink_monitor;
mod stages;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "nextvision", version, about = "Video perception runtime")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run generated feeds through a three-stage pipeline and print a live summary.
    Demo(demo::DemoArgs),
    /// Check a configuration file and report every problem with its line; offline.
    Validate {
        file: PathBuf,
        /// Do not resolve `${VAR}` references (check their syntax only).
        #[arg(long)]
        no_environment: bool,
    },
    /// Run the feeds of a configuration file until SIGINT/SIGTERM.
    Run(run::RunArgs),
    /// Process one video (file or URL): JSON lines out, progress and a summary table.
    Process(process::ProcessArgs),
    /// The model catalog: list, fetch (download once, hash-checked) and verify.
    Models {
        #[command(subcommand)]
        command: models::ModelsCommand,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match Cli::parse().command {
        Command::Demo(args) => demo::run(&args),
        Command::Validate {
            file,
            no_environment,
        } => validate(&file, no_environment),
        Command::Run(args) => run::run(&args),
        Command::Process(args) => process::run(&args),
        Command::Models { command } => models::run(&command),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn validate(file: &std::path::Path, no_environment: bool) -> anyhow::Result<ExitCode> {
    let env = if no_environment {
        config::EnvMode::Ignore
    } else {
        config::EnvMode::Resolve
    };
    match config::load(file, env) {
        Ok(c) => {
            println!(
                "{}: ok ({} feeds, {} sinks)",
                file.display(),
                c.feeds.len(),
                c.sinks.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(problems) => {
            eprint!("{problems}");
            eprintln!("{} problem(s)", problems.problems.len());
            Ok(ExitCode::from(2))
        }
    }
}
