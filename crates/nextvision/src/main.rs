//! `nextvision`: the NextVision command line.

mod demo;

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
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Demo(args) => demo::run(&args),
    }
}
