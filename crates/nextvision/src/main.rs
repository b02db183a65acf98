//! `nextvision`: the NextVision command line and daemon.

fn main() -> std::process::ExitCode {
    nextvision::cli::main()
}
