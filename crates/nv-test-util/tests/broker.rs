//! The broker harness against the real brokers: OS-chosen ports, restarts on the same
//! port, logs the tests can read, and no mistaking another listener for the broker.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::net::{TcpListener, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use nv_test_util::broker::{Broker, Outage};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nv-broker-{name}-{}", std::process::id()));
    let _absent = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn listens(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[test]
fn mosquitto_restarts_on_its_port_and_logs_where_it_listens() {
    let dir = temp_dir("mosquitto");
    let mut broker = Broker::mosquitto(&dir);
    let port = broker.port;
    assert_ne!(port, 0);
    assert!(listens(port));
    let log = std::fs::read_to_string(broker.log_path()).unwrap();
    assert!(
        log.contains(&format!("listen socket on port {port}")),
        "{log}"
    );
    for outage in [Outage::Stop, Outage::Kill] {
        outage.apply(&mut broker);
        assert!(!listens(port), "{outage:?}");
        broker.start();
        assert_eq!(broker.port, port, "{outage:?}");
        assert!(listens(port), "{outage:?}");
    }
    drop(broker);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn nats_takes_the_port_it_bound_and_restarts_there() {
    let dir = temp_dir("nats");
    let mut broker = Broker::nats(&dir, false);
    let port = broker.port;
    assert_ne!(port, 0);
    assert!(listens(port));
    broker.stop();
    assert!(!listens(port));
    broker.start();
    assert_eq!(broker.port, port);
    assert!(listens(port));
    assert!(broker.log_path().exists());
    drop(broker);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A restart must keep its port; when another process holds it, the restart fails
/// instead of taking that process for the broker.
#[test]
fn a_restart_onto_a_port_someone_else_holds_fails() {
    let dir = temp_dir("taken");
    let mut broker = Broker::mosquitto(&dir);
    let port = broker.port;
    broker.stop();
    let squatter = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let restarted = catch_unwind(AssertUnwindSafe(|| broker.start()));
    assert!(restarted.is_err(), "started on a port someone else holds");
    drop(squatter);
    drop(broker);
    std::fs::remove_dir_all(&dir).unwrap();
}
