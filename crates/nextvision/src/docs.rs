//! `nextvision completions SHELL` and `nextvision man`: generated from the clap definition
//! of the command line, so they cannot drift from what the parser accepts. The Debian
//! package ships both (scripts/package-deb.sh).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

/// The FILES / ENVIRONMENT text of `--help` and of the manual page.
pub const AFTER_HELP: &str = "\
Files:
  /etc/nextvision/nextvision.toml   daemon configuration (packaged example); check it with
                                    `nextvision validate`
  /etc/default/nextvision           optional environment for the service (secrets referenced
                                    as ${VAR} in the configuration)
  /var/lib/nextvision               the service's state and working directory (relative
                                    sink paths land here)

Environment:
  RUST_LOG         log filter (default: warn), e.g. `info` or `nextvision=debug`
  NOTIFY_SOCKET    set by systemd: readiness, status line and stop notice are sent there
  WATCHDOG_USEC    set by systemd (WatchdogSec=): the daemon pings at half this interval";

#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    /// Shell to generate the script for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

#[derive(clap::Args, Debug)]
pub struct ManArgs {
    /// Write one page per command (nextvision.1, nextvision-run.1, ...) into this
    /// directory instead of printing the main page.
    #[arg(long)]
    out_dir: Option<PathBuf>,
}

pub fn completions(args: &CompletionsArgs, mut cmd: clap::Command) -> anyhow::Result<ExitCode> {
    let name = cmd.get_name().to_string();
    clap_complete::generate(args.shell, &mut cmd, name, &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

pub fn man(args: &ManArgs, cmd: clap::Command) -> anyhow::Result<ExitCode> {
    match &args.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("writing manual pages to {}", dir.display()))?;
        }
        None => clap_mangen::Man::new(cmd)
            .render(&mut std::io::stdout())
            .context("writing the manual page")?,
    }
    Ok(ExitCode::SUCCESS)
}
