//! The daemon run the way systemd runs `packaging/nextvision.service`, without systemd:
//! the unit's ExecStartPre and ExecStart command lines, its Environment=, a clean
//! environment, its user (an unprivileged id standing in for `DynamicUser=yes` when the
//! test runs as root), its state directory as the working directory, `NOTIFY_SOCKET`
//! pointing at a datagram socket of this test and `WATCHDOG_USEC` set. The daemon must send
//! READY=1 with a status line, keep pinging WATCHDOG=1, and on SIGTERM send STOPPING=1 and
//! exit 0. `systemd-analyze verify` checks the unit when the tool is installed.
//!
//! scripts/test-package.sh reruns this against an installed package with
//! NV_SERVICE_UNIT, NV_SERVICE_BINARY (and optionally NV_SERVICE_CONFIG) set.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The stand-in for a transient `DynamicUser=` id: nobody/nogroup.
const UNPRIVILEGED_ID: u32 = 65534;
/// How long any one expected notification may take before the test fails.
const NOTIFY_DEADLINE: Duration = Duration::from_secs(60);
/// Systemd's `WatchdogSec=` for the test run: pings are expected every 250 ms.
const WATCHDOG_USEC: u64 = 500_000;
const PACKAGED_BINARY: &str = "/usr/bin/nextvision";
const PACKAGED_CONFIG: &str = "/etc/nextvision/nextvision.toml";

/// The [Service] settings this test acts on.
#[derive(Debug, Default)]
struct Unit {
    kind: String,
    exec_start_pre: Vec<Vec<String>>,
    exec_start: Vec<String>,
    environment: Vec<(String, String)>,
    dynamic_user: bool,
    user: Option<String>,
    watchdog_secs: f64,
    timeout_stop_secs: f64,
    state_directory: Option<String>,
    working_directory: Option<String>,
    settings: Vec<(String, String)>,
}

impl Unit {
    fn parse(text: &str) -> Unit {
        let mut unit = Unit::default();
        let mut in_service = false;
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                in_service = line == "[Service]";
                continue;
            }
            if !in_service || line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line.split_once('=').unwrap();
            let words = || value.split_whitespace().map(str::to_string).collect();
            match key {
                "Type" => unit.kind = value.to_string(),
                "ExecStartPre" => unit.exec_start_pre.push(words()),
                "ExecStart" => unit.exec_start = words(),
                "Environment" => {
                    for pair in value.split_whitespace() {
                        let (k, v) = pair.split_once('=').unwrap();
                        unit.environment.push((k.into(), v.into()));
                    }
                }
                "DynamicUser" => unit.dynamic_user = value == "yes",
                "User" => unit.user = Some(value.to_string()),
                "WatchdogSec" => unit.watchdog_secs = value.parse().unwrap(),
                "TimeoutStopSec" => unit.timeout_stop_secs = value.parse().unwrap(),
                "StateDirectory" => unit.state_directory = Some(value.to_string()),
                "WorkingDirectory" => unit.working_directory = Some(value.to_string()),
                _ => {}
            }
            unit.settings.push((key.to_string(), value.to_string()));
        }
        unit
    }

    fn has(&self, key: &str, value: &str) -> bool {
        self.settings.iter().any(|(k, v)| k == key && v == value)
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn unit_path() -> PathBuf {
    std::env::var_os("NV_SERVICE_UNIT")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("packaging/nextvision.service"))
}

fn binary() -> PathBuf {
    std::env::var_os("NV_SERVICE_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_nextvision")))
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The unit's command line with the packaged paths swapped for the ones under test.
fn command_line(words: &[String], binary: &Path, config: &Path) -> Vec<String> {
    words
        .iter()
        .map(|w| match w.as_str() {
            PACKAGED_BINARY => binary.display().to_string(),
            PACKAGED_CONFIG => config.display().to_string(),
            _ => w.clone(),
        })
        .collect()
}

/// A command as systemd would start it: clean environment plus the unit's, in the state
/// directory, as the unit's user.
fn service_command(
    unit: &Unit,
    argv: &[String],
    state_dir: &Path,
    as_unprivileged: bool,
) -> Command {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("LANG", "C.UTF-8")
        .envs(unit.environment.iter().map(|(k, v)| (k, v)))
        .current_dir(state_dir);
    if as_unprivileged {
        cmd.uid(UNPRIVILEGED_ID).gid(UNPRIVILEGED_ID);
    }
    cmd
}

#[test]
fn unit_is_hardened_and_consistent() {
    let unit = Unit::parse(&std::fs::read_to_string(unit_path()).unwrap());
    assert_eq!(unit.kind, "notify");
    assert!(unit.watchdog_secs > 0.0, "WatchdogSec set");
    assert!(
        unit.dynamic_user || unit.user.is_some(),
        "never runs as root"
    );
    for (key, value) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("CapabilityBoundingSet", ""),
        ("RestrictSUIDSGID", "yes"),
        ("NotifyAccess", "main"),
    ] {
        assert!(unit.has(key, value), "{key}={value}");
    }
    let state = unit.state_directory.as_deref().unwrap();
    assert_eq!(
        unit.working_directory.as_deref(),
        Some(format!("/var/lib/{state}").as_str()),
        "the working directory is the (only writable) state directory"
    );
    // The daemon's own drain deadline must act before systemd's stop timeout kills it.
    let drain = unit
        .exec_start
        .windows(2)
        .find(|w| w[0] == "--drain-timeout-secs")
        .map(|w| w[1].parse::<f64>().unwrap())
        .unwrap();
    assert!(
        drain < unit.timeout_stop_secs,
        "drain {drain} < TimeoutStopSec"
    );
}

#[test]
fn systemd_analyze_verifies_the_unit() {
    let Ok(out) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("skipped: systemd-analyze is not installed (Debian package systemd)");
        return;
    };
    assert!(out.status.success());
    // verify checks that ExecStart's binary exists: point it at the binary under test.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(unit_path()).unwrap();
    let rewritten = text.replace(PACKAGED_BINARY, &binary().display().to_string());
    let path = dir.path().join("nextvision.service");
    std::fs::write(&path, rewritten).unwrap();
    // --man=no: the manual pages are only installed by the package.
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {stderr}");
    assert!(
        !stderr.contains("nextvision.service:"),
        "warnings about the unit: {stderr}"
    );
}

/// Receives the next datagram, failing the test after `NOTIFY_DEADLINE`.
fn next_message(sock: &UnixDatagram, deadline: Instant) -> String {
    let left = deadline
        .checked_duration_since(Instant::now())
        .expect("notification deadline passed");
    sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("no notification in time");
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

/// Reads notifications until one has `key` set; returns all lines seen on the way.
fn wait_for(sock: &UnixDatagram, key: &str, seen: &mut Vec<String>) -> String {
    let deadline = Instant::now() + NOTIFY_DEADLINE;
    loop {
        let msg = next_message(sock, deadline);
        seen.extend(msg.lines().map(str::to_string));
        if msg.lines().any(|l| l == key) {
            return msg;
        }
    }
}

#[test]
fn daemon_notifies_ready_watchdog_and_stopping_as_the_unit_runs_it() {
    let unit = Unit::parse(&std::fs::read_to_string(unit_path()).unwrap());
    let as_unprivileged = is_root() && (unit.dynamic_user || unit.user.is_some());
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();

    // The binary, copied where the unprivileged user can reach it (the build directory
    // may sit under a private home).
    let binary = if std::env::var_os("NV_SERVICE_BINARY").is_some() {
        binary()
    } else {
        let copy = dir.path().join("nextvision");
        if std::fs::hard_link(binary(), &copy).is_err() {
            std::fs::copy(binary(), &copy).unwrap();
        }
        copy
    };

    // StateDirectory=: created by systemd, owned by the service's user.
    let state_dir = dir.path().join("state");
    std::fs::create_dir(&state_dir).unwrap();
    std::fs::set_permissions(&state_dir, std::fs::Permissions::from_mode(0o750)).unwrap();
    if as_unprivileged {
        let owner = format!("{UNPRIVILEGED_ID}:{UNPRIVILEGED_ID}");
        assert!(Command::new("chown")
            .args([&owner])
            .arg(&state_dir)
            .status()
            .unwrap()
            .success());
    }

    let config = match std::env::var_os("NV_SERVICE_CONFIG") {
        Some(c) => PathBuf::from(c),
        None => {
            let port = free_port();
            let path = dir.path().join("nextvision.toml");
            // A relative sink path: it must land in the working (state) directory.
            std::fs::write(
                &path,
                format!(
                    r#"
[api]
listen = "127.0.0.1:{port}"

[[sinks]]
name = "events"
kind = "file"
path = "out/outputs.jsonl"

[[feeds]]
name = "lobby"
source = "synthetic:160x120@30"
sinks = ["events"]
[[feeds.stages]]
kind = "motion-detector"
"#
                ),
            )
            .unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            path
        }
    };

    for pre in &unit.exec_start_pre {
        let argv = command_line(pre, &binary, &config);
        let out = service_command(&unit, &argv, &state_dir, as_unprivileged)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ExecStartPre {argv:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let socket_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&socket_path).unwrap();
    // The service's user must be allowed to send to it.
    std::fs::set_permissions(&socket_path, std::fs::Permissions::from_mode(0o777)).unwrap();

    let argv = command_line(&unit.exec_start, &binary, &config);
    let mut child = service_command(&unit, &argv, &state_dir, as_unprivileged)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", WATCHDOG_USEC.to_string())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = std::thread::Builder::new()
        .name("daemon-stderr".into())
        .spawn(move || {
            BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<_>>()
        })
        .unwrap();

    let mut seen = Vec::new();
    let ready = wait_for(&sock, "READY=1", &mut seen);
    assert!(
        ready.lines().any(|l| l.starts_with("STATUS=")),
        "READY carries a status line: {ready:?}"
    );
    // Two pings: the keep-alive is periodic, not a one-off.
    for _ in 0..2 {
        let ping = wait_for(&sock, "WATCHDOG=1", &mut seen);
        assert!(
            ping.lines()
                .any(|l| l.starts_with("STATUS=1/1 feeds running")),
            "pings refresh the status: {ping:?}"
        );
    }

    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    wait_for(&sock, "STOPPING=1", &mut seen);
    let status = child.wait().unwrap();
    let log = log.join().unwrap();
    assert_eq!(status.code(), Some(0), "daemon log: {log:#?}");
    assert!(
        log.iter().any(|l| l.contains("stopped cleanly")),
        "daemon log: {log:#?}"
    );
    let order: Vec<&str> = seen
        .iter()
        .map(String::as_str)
        .filter(|l| ["READY=1", "STOPPING=1"].contains(l))
        .collect();
    assert_eq!(
        order,
        ["READY=1", "STOPPING=1"],
        "one READY, then one STOPPING"
    );

    if std::env::var_os("NV_SERVICE_CONFIG").is_none() {
        let path = state_dir.join("out/outputs.jsonl");
        let out = std::fs::read_to_string(&path).unwrap();
        assert!(
            out.lines().count() > 0,
            "outputs written in the state directory"
        );
        if as_unprivileged {
            use std::os::unix::fs::MetadataExt as _;
            let owner = std::fs::metadata(&path).unwrap().uid();
            assert_eq!(owner, UNPRIVILEGED_ID, "written by the service's user");
        }
    }
}
