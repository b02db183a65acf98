//! The command line: argument parsing, logging set-up and dispatch to the commands.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::{config, demo, docs, models, process, run};

#[derive(Parser, Debug)]
#[command(
    name = "nextvision",
    version,
    long_version = concat!(
        env!("CARGO_PKG_VERSION"),
        " (commit ",
        env!("NV_BUILD_COMMIT"),
        ", features: ",
        env!("NV_BUILD_FEATURES"),
        ")"
    ),
    about = "Video perception runtime",
    after_long_help = docs::AFTER_HELP
)]
struct Cli {
    /// Log line format on stderr: `text` (colours only on a terminal) or `json` (one
    /// object per line).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

/// Logs to stderr. `RUST_LOG` wins; otherwise the daemon logs lifecycle and causes at
/// `info`, and the one-shot commands (whose own output says what happened) at `warn`.
fn init_logs(format: LogFormat, daemon: bool) {
    use std::io::IsTerminal as _;
    let default = if daemon { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
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
    /// Cluster mode: `status FILE` prints the fleet's nodes, feeds and leases.
    Cluster {
        #[command(subcommand)]
        command: crate::cluster::ClusterCommand,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions(docs::CompletionsArgs),
    /// Print the manual page (roff) to stdout, or write one page per command with --out-dir.
    Man(docs::ManArgs),
}

/// Runs the command line; the process exit code is the result.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.log_format, matches!(cli.command, Command::Run(_)));
    let result = match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Validate {
            file,
            no_environment,
        } => validate(&file, no_environment),
        Command::Run(args) => run::run(&args),
        Command::Process(args) => process::run(&args),
        Command::Models { command } => models::run(&command),
        Command::Cluster { command } => crate::cluster::run_command(&command),
        Command::Completions(args) => {
            docs::completions(&args, <Cli as clap::CommandFactory>::command())
        }
        Command::Man(args) => docs::man(&args, <Cli as clap::CommandFactory>::command()),
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
