//! Ports for addresses that must refuse connections, chosen by the OS and held by the test
//! (never a number that was free a moment ago and may be taken by now).

use std::net::{TcpListener, TcpStream};

/// A port on 127.0.0.1 where nothing listens, for as long as this value lives: connecting
/// to it is refused, and no other process can bind it meanwhile.
///
/// The port is the local end of a connection this value keeps open: the OS chose it, it
/// is in use (so nobody else can listen on it), and a connected socket answers a new
/// connection attempt with a reset.
#[derive(Debug)]
pub struct RefusedPort {
    port: u16,
    _client: TcpStream,
    _server: TcpStream,
}

impl RefusedPort {
    pub fn new() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("an ephemeral port from the OS");
        let client = TcpStream::connect(listener.local_addr().expect("listener address"))
            .expect("connecting to our own listener");
        let (server, _) = listener.accept().expect("accepting our own connection");
        let port = client.local_addr().expect("client address").port();
        Self {
            port,
            _client: client,
            _server: server,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Default for RefusedPort {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::RefusedPort;
    use std::io::ErrorKind;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn a_refused_port_refuses_connections_and_cannot_be_taken_while_held() {
        let refused = RefusedPort::new();
        for _ in 0..3 {
            let err = TcpStream::connect(("127.0.0.1", refused.port())).expect_err("refused");
            assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
        }
        let err = TcpListener::bind(("127.0.0.1", refused.port())).expect_err("in use");
        assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
    }
}
