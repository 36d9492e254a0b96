//! One POP3 client connection, plaintext or implicit TLS (rustls), with the reads the load modes need.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, HandshakeKind, RootCertStore, StreamOwned};

use crate::net::connect_from;

pub type Res<T> = Result<T, String>;

/// A client configuration that trusts only the certificate in `cert` (PEM), offers ALPN
/// "pop3" and never resumes a session: every handshake is a full one.
pub fn tls_config(cert: &str) -> Res<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert).map_err(|e| format!("{:?}", e))? {
        roots.add(c.map_err(|e| format!("{:?}", e))?).map_err(|e| e.to_string())?;
    }
    if roots.is_empty() {
        return Err("no certificate in the file".into());
    }
    let mut config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = Resumption::disabled();
    config.alpn_protocols = vec![b"pop3".to_vec()];
    Ok(Arc::new(config))
}

/// The socket under the TLS layer, read through a large buffer: rustls reads ciphertext a
/// few KiB at a time, and one recv per 4 KiB would make the client, not the server, the
/// limit of the TLS RETR figure.
struct BufSock {
    s: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Read for BufSock {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = self.s.read(&mut self.buf)?;
        }
        let n = out.len().min(self.end - self.start);
        out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
        self.start += n;
        Ok(n)
    }
}

impl Write for BufSock {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.s.write(b)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.s.flush()
    }
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, BufSock>>),
}

impl Read for Stream {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(b),
            Stream::Tls(s) => s.read(b),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(b),
            Stream::Tls(s) => s.write(b),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// What a TLS connection negotiated.
pub struct Handshake {
    /// "TLSv1_3/TLS13_AES_256_GCM_SHA384/X25519": version, cipher suite, key exchange group.
    pub summary: String,
    pub full: bool,
    /// From the start of connect to the end of the handshake.
    pub time: Duration,
}

// ---------------------------------------------------------------- POP3 connection

pub struct Conn {
    s: Stream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    pub handshake: Option<Handshake>,
}

impl Conn {
    /// Connects, and with `tls` completes the TLS handshake before returning (implicit TLS).
    pub fn connect(addr: &SocketAddr, timeout: Duration, tls: Option<&Arc<ClientConfig>>) -> Res<Conn> {
        Conn::connect_from(None, addr, timeout, tls)
    }

    /// As `connect`, from source address `from` when one is given.
    pub fn connect_from(
        from: Option<IpAddr>,
        addr: &SocketAddr,
        timeout: Duration,
        tls: Option<&Arc<ClientConfig>>,
    ) -> Res<Conn> {
        let t0 = Instant::now();
        let s = match from {
            None => {
                let s = TcpStream::connect_timeout(addr, timeout).map_err(|e| format!("connect: {}", e))?;
                s.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
                s.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
                let _ = s.set_nodelay(true);
                s
            }
            Some(ip) => connect_from(ip, addr, timeout).map_err(|e| format!("connect from {}: {}", ip, e))?,
        };
        let (s, handshake) = match tls {
            None => (Stream::Plain(s), None),
            Some(config) => {
                let name = ServerName::IpAddress(addr.ip().into());
                let conn = ClientConnection::new(config.clone(), name).map_err(|e| format!("TLS: {}", e))?;
                let sock = BufSock { s, buf: vec![0u8; 256 * 1024], start: 0, end: 0 };
                let mut t = StreamOwned::new(conn, sock);
                while t.conn.is_handshaking() {
                    t.conn.complete_io(&mut t.sock).map_err(|e| format!("TLS handshake: {}", e))?;
                }
                let c = &t.conn;
                let summary = format!(
                    "{:?}/{:?}/{:?}",
                    c.protocol_version().ok_or("TLS: no version")?,
                    c.negotiated_cipher_suite().ok_or("TLS: no cipher suite")?.suite(),
                    c.negotiated_key_exchange_group().ok_or("TLS: no key exchange group")?.name()
                );
                let full =
                    matches!(c.handshake_kind(), Some(HandshakeKind::Full | HandshakeKind::FullWithHelloRetryRequest));
                (Stream::Tls(Box::new(t)), Some(Handshake { summary, full, time: t0.elapsed() }))
            }
        };
        Ok(Conn { s, buf: vec![0u8; 256 * 1024], start: 0, end: 0, handshake })
    }

    /// Ends the connection after QUIT: over TLS, close_notify before the socket is closed.
    pub fn close(mut self) {
        if let Stream::Tls(t) = &mut self.s {
            t.conn.send_close_notify();
            let _ = t.conn.complete_io(&mut t.sock);
        }
    }

    fn fill(&mut self) -> Res<()> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                let n = self.buf.len();
                self.buf.resize(n * 2, 0);
            }
        }
        match self.s.read(&mut self.buf[self.end..]) {
            Ok(0) => Err("connection closed by server".into()),
            Ok(n) => {
                self.end += n;
                Ok(())
            }
            Err(e) => Err(format!("read: {}", e)),
        }
    }

    /// One response line without CRLF.
    pub fn line(&mut self) -> Res<String> {
        loop {
            if let Some(p) = self.buf[self.start..self.end].iter().position(|&b| b == b'\n') {
                let e = self.start + p;
                let mut l = &self.buf[self.start..e];
                if l.last() == Some(&b'\r') {
                    l = &l[..l.len() - 1];
                }
                let out = String::from_utf8_lossy(l).into_owned();
                self.start = e + 1;
                return Ok(out);
            }
            if self.end - self.start > 64 * 1024 {
                return Err("response line too long".into());
            }
            self.fill()?;
        }
    }

    pub fn send(&mut self, cmd: &str) -> Res<()> {
        let mut v = Vec::with_capacity(cmd.len() + 2);
        v.extend_from_slice(cmd.as_bytes());
        v.extend_from_slice(b"\r\n");
        self.write_all(&v)
    }

    /// Sends `b` as it is (commands with their CRLFs).
    pub fn write_all(&mut self, b: &[u8]) -> Res<()> {
        self.s.write_all(b).map_err(|e| format!("write: {}", e))
    }

    pub fn cmd_ok(&mut self, cmd: &str) -> Res<String> {
        self.send(cmd)?;
        let l = self.line()?;
        if l.starts_with("+OK") {
            Ok(l)
        } else {
            let shown = if cmd.starts_with("PASS") { "PASS ****" } else { cmd };
            Err(format!("{} -> {}", shown, l))
        }
    }

    /// Body of a multi-line answer (status line already read): consumes it up to and
    /// including the terminating ".CRLF" line, leaving any following (pipelined) answer in
    /// the buffer. Returns the octets after dot-unstuffing, without the terminator.
    pub fn multiline_size(&mut self) -> Res<u64> {
        let mut consumed: u64 = 0;
        let mut stuffed: u64 = 0;
        let mut line_start = true; // the status line just ended
        loop {
            // A response that has not ended yet always has at least ".CRLF" to come, so
            // waiting for three bytes never blocks past the end of the answer.
            if self.end - self.start < 3 {
                self.fill()?;
                continue;
            }
            let r = &self.buf[self.start..self.end];
            if line_start && r[0] == b'.' {
                if r[1] == b'\r' && r[2] == b'\n' {
                    self.start += 3;
                    return Ok(consumed - stuffed);
                }
                stuffed += 1;
                consumed += 1;
                self.start += 1;
                line_start = false;
                continue;
            }
            let limit = r.len() - 3;
            match find_nl_dot(r, limit) {
                Some(j) => {
                    consumed += j as u64 + 1;
                    self.start += j + 1;
                    line_start = true;
                }
                None => {
                    line_start = if limit > 0 { r[limit - 1] == b'\n' } else { line_start };
                    consumed += limit as u64;
                    self.start += limit;
                    if limit == 0 {
                        self.fill()?;
                    }
                }
            }
        }
    }

    /// Lines of a multi-line answer (for LIST).
    pub fn multiline_lines(&mut self) -> Res<Vec<String>> {
        let mut v = Vec::new();
        loop {
            let l = self.line()?;
            if l == "." {
                return Ok(v);
            }
            v.push(l);
        }
    }

    /// Connects (as `connect_from`) and logs in with USER/PASS.
    pub fn session_from(
        from: Option<IpAddr>,
        addr: &SocketAddr,
        timeout: Duration,
        tls: Option<&Arc<ClientConfig>>,
        user: &str,
        pass: &str,
    ) -> Res<Conn> {
        let mut c = Conn::connect_from(from, addr, timeout, tls)?;
        c.login(user, pass)?;
        Ok(c)
    }

    fn login(&mut self, user: &str, pass: &str) -> Res<()> {
        let g = self.line()?;
        if !g.starts_with("+OK") {
            return Err(format!("greeting: {}", g));
        }
        self.cmd_ok(&format!("USER {}", user))?;
        self.cmd_ok(&format!("PASS {}", pass))?;
        Ok(())
    }
}

/// First j < limit with r[j] == '\n' and r[j + 1] == '.' (r.len() > limit), found with memchr's
/// SIMD substring search: a plain scan here made the client, not the server, the limit of the
/// RETR figures (it ran at about the rate pop3d sends over TLS).
fn find_nl_dot(r: &[u8], limit: usize) -> Option<usize> {
    memchr::memmem::find(&r[..limit + 1], b"\n.")
}
