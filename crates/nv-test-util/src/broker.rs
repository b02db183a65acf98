//! Real message brokers (mosquitto, nats-server) as child processes on 127.0.0.1 for
//! sink tests: started on a port the OS chose, verified in the broker's own log, stopped
//! with SIGTERM, killed with SIGKILL, restarted on the same port.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a broker may take to listen: longer than [`crate::TEST_TIMEOUT`]'s event waits
/// because a busy 2-core machine starts processes slowly.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How many first starts may lose their port to another process before the test fails.
const START_ATTEMPTS: u32 = 5;

/// How a broker learns its port.
#[derive(Debug, Clone, Copy)]
enum PortChoice {
    /// nats-server binds port 0 itself and writes the port it got to a ports file.
    NatsPortsFile,
    /// mosquitto cannot bind port 0 (it means a Unix socket there): ask the OS for a free
    /// port, and take another one if the broker lost it to someone else before binding.
    OsThenRetry,
}

/// A broker process on 127.0.0.1, killed on drop (even when the test fails).
///
/// Ports come from the OS. A restart reuses the port the first start got, so clients
/// configured with it reconnect to the same address.
#[derive(Debug)]
pub struct Broker {
    program: PathBuf,
    /// Arguments; `{port}` is replaced by the port (`-1` for nats' first start).
    args: Vec<String>,
    /// mosquitto's configuration; `{port}` is replaced by the port.
    conf: Option<(PathBuf, String)>,
    choice: PortChoice,
    dir: PathBuf,
    log: PathBuf,
    /// The port the broker listens on (kept across restarts).
    pub port: u16,
    child: Option<Child>,
    name: &'static str,
}

impl Broker {
    /// mosquitto with a persistent store in `dir`, logging to `dir/mosquitto.log`.
    pub fn mosquitto(dir: &Path) -> Self {
        Self::mosquitto_with(dir, "")
    }

    /// Saves its store after every change, so a SIGKILL keeps persistent sessions.
    /// (Not the default: with it, mosquitto 2.0.11 was seen to forward only part of the
    /// QoS 2 publishes it had completed.)
    pub fn mosquitto_autosave(dir: &Path) -> Self {
        Self::mosquitto_with(dir, "autosave_interval 1\nautosave_on_changes true\n")
    }

    fn mosquitto_with(dir: &Path, extra: &str) -> Self {
        let conf = dir.join("mosquitto.conf");
        let store = dir.join("mqtt-store");
        let log = dir.join("mosquitto.log");
        std::fs::create_dir_all(&store).expect("mosquitto store directory");
        let text = format!(
            "listener {{port}} 127.0.0.1\nallow_anonymous true\nuser root\npersistence true\npersistence_location {}/\nlog_dest file {}\n{extra}",
            store.display(),
            log.display()
        );
        let mut b = Self {
            program: "/usr/sbin/mosquitto".into(),
            args: vec!["-c".into(), conf.display().to_string()],
            conf: Some((conf, text)),
            choice: PortChoice::OsThenRetry,
            dir: dir.to_path_buf(),
            log,
            port: 0,
            child: None,
            name: "mosquitto",
        };
        b.start();
        b
    }

    /// nats-server (with JetStream storing in `dir/js-store` when `jetstream`), logging to
    /// `dir/nats.log`.
    pub fn nats(dir: &Path, jetstream: bool) -> Self {
        let ports_dir = dir.join("ports");
        let log = dir.join("nats.log");
        std::fs::create_dir_all(&ports_dir).expect("nats ports directory");
        let mut args = vec![
            "-a".into(),
            "127.0.0.1".into(),
            "-p".into(),
            "{port}".into(),
            "--ports_file_dir".into(),
            ports_dir.display().to_string(),
            "-l".into(),
            log.display().to_string(),
        ];
        if jetstream {
            args.extend([
                "-js".into(),
                "-sd".into(),
                dir.join("js-store").display().to_string(),
            ]);
        }
        let mut b = Self {
            program: "/usr/sbin/nats-server".into(),
            args,
            conf: None,
            choice: PortChoice::NatsPortsFile,
            dir: dir.to_path_buf(),
            log,
            port: 0,
            child: None,
            name: "nats-server",
        };
        b.start();
        b
    }

    /// The broker's own log file (kept across restarts), for assertions on what it saw.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Starts the broker (again, on the same port after the first start) and waits until
    /// it listens.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} already running", self.name);
        let first = self.port == 0;
        // A first start may lose its port to another process between the OS handing it
        // out and the broker binding it: take another. A restart must keep its port.
        for attempt in 1..=START_ATTEMPTS {
            let port = match (first, self.choice) {
                (false, _) => self.port,
                (true, PortChoice::NatsPortsFile) => 0,
                (true, PortChoice::OsThenRetry) => os_port(),
            };
            match self.try_start(port) {
                Ok(bound) => {
                    self.port = bound;
                    return;
                }
                Err(why) if first && attempt < START_ATTEMPTS => {
                    eprintln!(
                        "{}: start attempt {attempt} failed ({why}); retrying",
                        self.name
                    );
                }
                Err(why) => panic!("could not start {} on port {port}: {why}", self.name),
            }
        }
    }

    /// One start on `port` (0: let the broker choose); the port it listens on.
    fn try_start(&mut self, port: u16) -> Result<u16, String> {
        let port_text = if port == 0 {
            "-1".to_owned()
        } else {
            port.to_string()
        };
        if let Some((path, text)) = &self.conf {
            std::fs::write(path, text.replace("{port}", &port_text))
                .map_err(|e| format!("writing {}: {e}", path.display()))?;
        }
        let args: Vec<String> = self
            .args
            .iter()
            .map(|a| a.replace("{port}", &port_text))
            .collect();
        // The log is appended to across restarts: this run's lines start here.
        let log_start = std::fs::metadata(&self.log)
            .map_or(0, |m| usize::try_from(m.len()).unwrap_or(usize::MAX));
        let mut child = Command::new(&self.program)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", self.name));
        let ports_file = self
            .dir
            .join("ports")
            .join(format!("nats-server_{}.ports", child.id()));
        let deadline = Instant::now() + START_TIMEOUT;
        // No event to wait on: poll the process and its listener until the deadline.
        let bound = loop {
            if let Some(status) = child.try_wait().expect("polling the broker") {
                return Err(format!("exited with {status} before listening"));
            }
            let candidate = match self.choice {
                PortChoice::NatsPortsFile => read_nats_port(&ports_file),
                PortChoice::OsThenRetry => Some(port),
            };
            // The broker's own word first (its log or ports file), then one connection to
            // confirm. Connecting before that would reach whoever else holds the port: a
            // listener that never accepts fills its backlog, and a connect to a full
            // backlog blocks for minutes of SYN retries, so connects are also bounded.
            if let Some(p) = candidate.filter(|p| self.listening_logged(*p, log_start)) {
                if answers(p) && child.try_wait().expect("polling the broker").is_none() {
                    break p;
                }
            }
            if Instant::now() >= deadline {
                let _killed = child.kill();
                let _reaped = child.wait();
                return Err("not listening before the deadline".into());
            }
            std::thread::yield_now();
        };
        self.child = Some(child);
        Ok(bound)
    }

    /// Whether the broker's own log, from byte `log_start` on, says it listens on `port`
    /// (so a connection that succeeded reached this broker, not another process that
    /// holds the port).
    fn listening_logged(&self, port: u16, log_start: usize) -> bool {
        match self.choice {
            // The ports file is written by this process after it bound its listener.
            PortChoice::NatsPortsFile => true,
            // mosquitto logs "Opening ... listen socket on port N" before it binds (an
            // "Address already in use" error may follow), and "... running" only once
            // every listener is open: both, in what this run appended to the log (a
            // restart on the same port must not pass on the previous run's lines).
            PortChoice::OsThenRetry => std::fs::read(&self.log)
                .map(|log| {
                    let this_run = String::from_utf8_lossy(log.get(log_start..).unwrap_or(&log));
                    let opened = format!("listen socket on port {port}");
                    this_run.lines().any(|l| l.contains(&opened))
                        && this_run.lines().any(|l| l.ends_with(" running"))
                })
                .unwrap_or(false),
        }
    }

    /// Stops the broker with SIGTERM (it saves its store) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let status = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .expect("running kill");
            assert!(status.success(), "kill -TERM {}: {status}", self.name);
            child.wait().expect("reaping the broker");
        }
    }

    /// Kills the broker with SIGKILL (no shutdown work at all) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("killing the broker");
            child.wait().expect("reaping the broker");
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _killed = child.kill();
            let _reaped = child.wait();
        }
    }
}

/// Several nats-servers routed into one JetStream cluster on 127.0.0.1 (each server
/// routes to every other): client ports from the OS (ports files), route ports handed out
/// by the OS a moment before the start (a start that lost one is retried with new ones).
/// Killed on drop.
#[derive(Debug)]
pub struct NatsCluster {
    pub servers: Vec<Broker>,
}

impl NatsCluster {
    /// Starts `size` servers, each storing in `dir/nK/js-store` and logging to
    /// `dir/nK/nats.log`, and waits until the cluster elected a JetStream metadata leader
    /// (streams and key-value buckets can be created).
    pub fn start(dir: &Path, size: usize) -> Self {
        for attempt in 1..=START_ATTEMPTS {
            let routes: Vec<u16> = (0..size).map(|_| os_port()).collect();
            let route_list = routes
                .iter()
                .map(|p| format!("nats://127.0.0.1:{p}"))
                .collect::<Vec<_>>()
                .join(", ");
            let mut servers = Vec::new();
            let mut failed = None;
            for (i, route) in routes.iter().enumerate() {
                let sdir = dir.join(format!("n{}", i + 1));
                std::fs::create_dir_all(sdir.join("ports")).expect("nats server directory");
                let conf = sdir.join("nats.conf");
                let text = format!(
                    "listen: 127.0.0.1:{{port}}\nserver_name: n{}\njetstream {{ store_dir: \"{}\" }}\ncluster {{\n  name: nv-test\n  listen: 127.0.0.1:{route}\n  routes: [{route_list}]\n}}\n",
                    i + 1,
                    sdir.join("js-store").display()
                );
                let log = sdir.join("nats.log");
                let mut b = Broker {
                    program: "/usr/sbin/nats-server".into(),
                    args: vec![
                        "-c".into(),
                        conf.display().to_string(),
                        "--ports_file_dir".into(),
                        sdir.join("ports").display().to_string(),
                        "-l".into(),
                        log.display().to_string(),
                    ],
                    conf: Some((conf, text)),
                    choice: PortChoice::NatsPortsFile,
                    dir: sdir,
                    log,
                    port: 0,
                    child: None,
                    name: "nats-server",
                };
                match b.try_start(0) {
                    Ok(port) => {
                        b.port = port;
                        servers.push(b);
                    }
                    Err(why) => {
                        failed = Some(why);
                        break;
                    }
                }
            }
            match failed {
                None => {
                    let cluster = Self { servers };
                    cluster.wait_for_leader();
                    return cluster;
                }
                Some(why) if attempt < START_ATTEMPTS => {
                    eprintln!("nats cluster: start attempt {attempt} failed ({why}); retrying");
                }
                Some(why) => panic!("could not start a nats cluster: {why}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// `nats://127.0.0.1:PORT` of every server.
    pub fn urls(&self) -> Vec<String> {
        self.servers
            .iter()
            .map(|b| format!("nats://127.0.0.1:{}", b.port))
            .collect()
    }

    /// Waits (polling the servers' logs, bounded) until one reports a JetStream metadata
    /// leader.
    fn wait_for_leader(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let elected = self.servers.iter().any(|b| {
                std::fs::read_to_string(&b.log).is_ok_and(|l| {
                    l.contains("JetStream cluster new metadata leader")
                        || l.contains("Self is new JetStream cluster metadata leader")
                })
            });
            if elected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nats cluster: no JetStream metadata leader before the deadline"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// How a test takes the broker down.
#[derive(Clone, Copy, Debug)]
pub enum Outage {
    /// SIGTERM: the broker saves its store and exits.
    Stop,
    /// SIGKILL: the process vanishes.
    Kill,
}

impl Outage {
    pub fn apply(self, broker: &mut Broker) {
        match self {
            Self::Stop => broker.stop(),
            Self::Kill => broker.kill(),
        }
    }
}

/// How long one confirming connection to a broker may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether something accepts a TCP connection on 127.0.0.1:`port` within [`CONNECT_TIMEOUT`].
fn answers(port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).is_ok()
}

/// A port the OS handed out a moment ago (released again, so the broker can bind it; the
/// caller checks that it did).
fn os_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("an ephemeral port from the OS")
        .port()
}

/// The client port in a nats-server ports file (`{"nats":["nats://127.0.0.1:PORT"]}`):
/// the digits after the last `:` of the `nats://` URL. A file read while it is still being
/// written has no closing quote yet and gives `None`.
fn read_nats_port(path: &Path) -> Option<u16> {
    let text = std::fs::read_to_string(path).ok()?;
    let (_, url) = text.split_once("\"nats://")?;
    let (url, _) = url.split_once('"')?;
    url.rsplit(':').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::read_nats_port;

    #[test]
    fn reads_the_client_port_of_a_nats_ports_file() {
        let dir = std::env::temp_dir().join(format!("nv-ports-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("nats-server_1.ports");
        std::fs::write(
            &path,
            r#"{"nats":["nats://127.0.0.1:41234"],"monitoring":["http://127.0.0.1:8222"]}"#,
        )
        .expect("write");
        assert_eq!(read_nats_port(&path), Some(41234));
        std::fs::write(&path, r#"{"nats":[]}"#).expect("write");
        assert_eq!(read_nats_port(&path), None);
        std::fs::write(&path, r#"{"nats":["nats://127.0.0.1:412"#).expect("write");
        assert_eq!(read_nats_port(&path), None, "a half-written file");
        assert_eq!(read_nats_port(&dir.join("absent")), None);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
