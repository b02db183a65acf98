//! The `nextvision` binary as a child process, for end-to-end tests and examples: start it
//! on a config, wait for the line in its log that says it is ready (never a sleep), keep
//! draining its log so it never blocks on a full pipe, and stop it with a signal.

use std::io::{BufRead, BufReader, Lines};
use std::path::Path;
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use crate::TEST_TIMEOUT;

/// How many log lines a [`Daemon`] keeps for failure messages.
const KEPT_LOG_LINES: usize = 200;

/// A running daemon; killed and reaped on drop.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    /// `http://ADDR` of the HTTP API when the daemon announced one ("API on http://ADDR").
    pub base: Option<String>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    /// Runs `binary run CONFIG ARGS...` and returns once the log says the API listens (or,
    /// with the API disabled, that the feeds run). Panics with the log so far if the daemon
    /// exits or stays silent past [`TEST_TIMEOUT`].
    pub fn run(binary: &Path, config: &Path, args: &[&str]) -> Self {
        Self::spawn(binary, config, args, |line| {
            line.contains("API on http://") || line.contains("feeds running")
        })
    }

    /// Like [`Daemon::run`], but returns once a log line satisfies `ready`; the API address
    /// is still taken from any "API on" line seen before.
    pub fn spawn(
        binary: &Path,
        config: &Path,
        args: &[&str],
        mut ready: impl FnMut(&str) -> bool,
    ) -> Self {
        let mut child = Command::new(binary)
            .arg("run")
            .arg(config)
            .args(args)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let Some(stderr) = child.stderr.take() else {
            panic!("stderr was piped");
        };
        let mut lines = BufReader::new(stderr).lines();
        let log = Arc::new(Mutex::new(Vec::new()));
        let deadline = Instant::now() + TEST_TIMEOUT;
        let mut base = None;
        loop {
            // A silent daemon blocks `next` here; the deadline is checked per line, and a
            // daemon that hangs without a line is caught by the test harness timeout.
            let line = match lines.next() {
                Some(Ok(line)) => line,
                Some(Err(e)) => panic!("reading the daemon log: {e}"),
                None => {
                    let status = child.wait();
                    panic!(
                        "daemon exited before it was ready ({status:?}):\n{}",
                        log.lock().join("\n")
                    );
                }
            };
            keep(&log, line.clone());
            if let Some((_, addr)) = line.split_once("API on http://") {
                base = Some(format!("http://{}", addr.trim()));
            }
            if ready(&line) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "daemon not ready in time:\n{}",
                log.lock().join("\n")
            );
        }
        drain(lines, Arc::clone(&log));
        Self { child, base, log }
    }

    /// The API base URL; panics if the daemon announced none.
    pub fn base(&self) -> &str {
        match &self.base {
            Some(b) => b,
            None => panic!("the daemon announced no API:\n{}", self.log()),
        }
    }

    /// The API's port.
    pub fn port(&self) -> u16 {
        let base = self.base();
        match base.rsplit_once(':').and_then(|(_, p)| p.parse().ok()) {
            Some(port) => port,
            None => panic!("no port in {base}"),
        }
    }

    /// The process id (for signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last log lines (for failure messages).
    pub fn log(&self) -> String {
        self.log.lock().join("\n")
    }

    /// Sends `signal` (a `kill` name such as `TERM` or `INT`) and waits for the exit.
    pub fn stop_with(mut self, signal: &str) -> ExitStatus {
        let sent = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -{signal} failed");
        match self.child.wait() {
            Ok(status) => status,
            Err(e) => panic!("waiting for the daemon: {e}"),
        }
    }

    /// SIGTERM; asserts a clean stop (exit code 0).
    pub fn stop(self) {
        let log = Arc::clone(&self.log);
        let status = self.stop_with("TERM");
        assert_eq!(
            status.code(),
            Some(0),
            "daemon did not stop cleanly:\n{}",
            log.lock().join("\n")
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Already exited after `stop`; otherwise this ends a test that failed midway.
        let _killed = self.child.kill();
        let _reaped = self.child.wait();
    }
}

fn keep(log: &Mutex<Vec<String>>, line: String) {
    let mut log = log.lock();
    if log.len() == KEPT_LOG_LINES {
        log.remove(0);
    }
    log.push(line);
}

fn drain(lines: Lines<BufReader<ChildStderr>>, log: Arc<Mutex<Vec<String>>>) {
    let spawned = std::thread::Builder::new()
        .name("daemon-log".into())
        .spawn(move || {
            for line in lines.map_while(Result::ok) {
                keep(&log, line);
            }
        });
    if let Err(e) = spawned {
        panic!("cannot start the daemon log thread: {e}");
    }
}
