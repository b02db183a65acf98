//! A real gst-rtsp-server on 127.0.0.1 for tests: start, kill, restart, freeze.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::net::TcpListener;
use std::sync::Arc;
use std::thread::JoinHandle;

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;
use parking_lot::Mutex;

/// Credentials the authenticated server accepts.
pub const USER: &str = "viewer";
pub const SECRET: &str = "s3cr3tPw";

/// A live H.264 test pattern served at `/x`, one pipeline per client.
pub struct TestServer {
    main_loop: glib::MainLoop,
    thread: Option<JoinHandle<()>>,
    valves: Arc<Mutex<Vec<gst::Element>>>,
    pub port: u16,
    /// When each client connection was accepted (the server's own count of attempts).
    pub connects: Arc<Mutex<Vec<std::time::Instant>>>,
}

const LAUNCH: &str = "( videotestsrc is-live=true pattern=ball \
    ! video/x-raw,format=I420,width=160,height=120,framerate=30/1 \
    ! valve name=gate drop=false \
    ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 \
    ! rtph264pay name=pay0 pt=96 config-interval=1 )";

impl TestServer {
    /// Starts serving on `port`; 0 lets the OS pick one (see [`TestServer::port`]).
    pub fn start(port: u16, with_auth: bool) -> Self {
        Self::start_with(port, with_auth.then_some((USER, SECRET)))
    }

    /// A server that accepts only `credentials` (user, password), if given.
    pub fn start_with(port: u16, credentials: Option<(&str, &str)>) -> Self {
        let credentials = credentials.map(|(u, p)| (u.to_owned(), p.to_owned()));
        nv_media::init().unwrap();
        let valves: Arc<Mutex<Vec<gst::Element>>> = Arc::default();
        let thread_valves = Arc::clone(&valves);
        let connects: Arc<Mutex<Vec<std::time::Instant>>> = Arc::default();
        let thread_connects = Arc::clone(&connects);
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("test-rtsp-server".into())
            .spawn(move || {
                let ctx = glib::MainContext::new();
                ctx.with_thread_default(|| {
                    let main_loop = glib::MainLoop::new(Some(&ctx), false);
                    let server = rtsp::RTSPServer::new();
                    server.set_address("127.0.0.1");
                    server.set_service(&port.to_string());
                    server.connect_client_connected(move |_, _| {
                        thread_connects.lock().push(std::time::Instant::now());
                    });
                    let factory = rtsp::RTSPMediaFactory::new();
                    factory.set_launch(LAUNCH);
                    factory.set_shared(false);
                    factory.connect_media_configure(move |_, media| {
                        let bin = media.element().downcast::<gst::Bin>().unwrap();
                        if let Some(v) = bin.by_name("gate") {
                            thread_valves.lock().push(v);
                        }
                    });
                    if let Some((user, password)) = &credentials {
                        let auth = rtsp::RTSPAuth::new();
                        let token = rtsp::RTSPToken::builder()
                            .field(rtsp::RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
                            .build();
                        auth.add_basic(&rtsp::RTSPAuth::make_basic(user, password), &token);
                        server.set_auth(Some(&auth));
                        factory.add_role_from_structure(
                            &gst::Structure::builder("user")
                                .field(rtsp::RTSP_PERM_MEDIA_FACTORY_ACCESS, true)
                                .field(rtsp::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, true)
                                .build(),
                        );
                    }
                    server.mount_points().unwrap().add_factory("/x", factory);
                    let id = server.attach(Some(&ctx)).unwrap();
                    let bound = u16::try_from(server.bound_port()).unwrap();
                    tx.send((main_loop.clone(), bound)).unwrap();
                    main_loop.run();
                    // Killed: drop every client connection and stop listening.
                    server.client_filter(Some(&mut |_, _| rtsp::RTSPFilterResult::Remove));
                    if let Some(src) = ctx.find_source_by_id(&id) {
                        src.destroy();
                    }
                })
                .unwrap();
            })
            .unwrap();
        let (main_loop, port) = rx.recv().unwrap();
        Self {
            main_loop,
            thread: Some(thread),
            valves,
            port,
            connects,
        }
    }

    /// The URL of `path` with these credentials.
    pub fn url_with(&self, user: &str, password: &str, path: &str) -> String {
        format!("rtsp://{user}:{password}@127.0.0.1:{}{path}", self.port)
    }

    pub fn url(&self, credentials: bool) -> String {
        if credentials {
            format!("rtsp://{USER}:{SECRET}@127.0.0.1:{}/x", self.port)
        } else {
            format!("rtsp://127.0.0.1:{}/x", self.port)
        }
    }

    /// Stops sending frames on every current stream, keeping the connections open.
    pub fn freeze(&self) {
        for v in self.valves.lock().iter() {
            v.set_property("drop", true);
        }
    }

    /// Kills the server: connections closed, port released.
    pub fn kill(mut self) {
        self.main_loop.quit();
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

/// Accepts TCP connections and never answers: an RTSP server that sends nothing.
pub struct SilentServer {
    pub port: u16,
    _thread: JoinHandle<()>,
}

impl SilentServer {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let thread = std::thread::Builder::new()
            .name("test-silent-server".into())
            .spawn(move || {
                let mut held = Vec::new();
                // Bounded: a test makes only a handful of attempts.
                for _ in 0..64 {
                    match listener.accept() {
                        Ok((s, _)) => held.push(s),
                        Err(_) => return,
                    }
                }
            })
            .unwrap();
        Self {
            port,
            _thread: thread,
        }
    }
}
