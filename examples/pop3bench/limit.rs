//! The trivial-send mode: the CPU limit a RETR could reach (the mbox read and written to a loopback socket or stdout as it is, plain or through rustls).

// `make bench` prints pop3d's server CPU per GB of RETR as a ratio to what this costs in the
// same run on the same file: no LF -> CRLF, no dot-stuffing, no `>From ` unquoting, no index,
// just read(2) of 128 KiB blocks (pop3d's reply buffer size) and write(2) to the socket.
//   pop3bench trivial-send --file F [--passes K] [--tls CERT --key KEY] [--stdout 1]
// The sender is this process's main thread; a receiver thread connects to it over 127.0.0.1
// (with --tls: a rustls client trusting only CERT, the ring provider as in pop3d, ALPN pop3),
// reads everything and counts it. Only the sender thread's CPU is reported (utime + stime from
// /proc/thread-self/stat, in clock ticks like the server figures). --stdout 1 writes the passes
// to stdout instead, no socket and no thread: the workload bench/run.sh runs under callgrind
// beside `pop3d -i` on a pipe. Prints `RESULT bytes=.. secs=.. cpu_ticks=.. tls=..`.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConnection, ServerConfig, ServerConnection, StreamOwned};

use crate::conn::{tls_config, Res};
use crate::{die, Args};

/// Block size of the reads and writes.
const BLOCK: usize = 128 * 1024;

/// utime + stime of the calling thread, in clock ticks.
fn thread_ticks() -> u64 {
    let st = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let after = st.rfind(')').map_or("", |c| &st[c + 1..]);
    let f: Vec<&str> = after.split_whitespace().collect();
    // after the comm: state(0) ppid(1) ... utime(11) stime(12)
    (11..=12).map(|i| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)).sum()
}

/// Writes `passes` copies of `file` to `out`, block by block; the octets written.
fn send(file: &str, passes: u64, out: &mut impl Write) -> Res<u64> {
    let mut buf = vec![0u8; BLOCK];
    let mut total = 0u64;
    for _ in 0..passes {
        let mut f = File::open(file).map_err(|e| format!("{}: {}", file, e))?;
        loop {
            let n = f.read(&mut buf).map_err(|e| format!("{}: {}", file, e))?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n]).map_err(|e| format!("write: {}", e))?;
            total += n as u64;
        }
    }
    out.flush().map_err(|e| format!("write: {}", e))?;
    Ok(total)
}

/// The receiving end: reads until the sender closes; the octets received.
fn receive(mut s: impl Read) -> Res<u64> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("receive: {}", e)),
        }
    }
}

fn server_config(cert: &str, key: &str) -> Res<Arc<ServerConfig>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: {:?}", cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {:?}", cert, e))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {:?}", key, e))?;
    // as pop3d's src/tls.rs: ring, TLS 1.3 and 1.2, ALPN pop3
    let mut config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"pop3".to_vec()];
    Ok(Arc::new(config))
}

pub fn trivial_send(a: &Args) {
    let file = a.s("file");
    let passes = a.n("passes", 1);
    if a.n("stdout", 0) == 1 {
        let stdout = io::stdout();
        let mut out = stdout.lock();
        match send(&file, passes, &mut out) {
            Ok(n) => eprintln!("pop3bench trivial-send: {} octets to stdout", n),
            Err(e) => die(&e),
        }
        return;
    }
    let tls = match (a.opt("tls"), a.opt("key")) {
        (Some(cert), Some(key)) => {
            Some((server_config(cert, key).unwrap_or_else(|e| die(&e)), tls_config(cert).unwrap_or_else(|e| die(&e))))
        }
        (None, None) => None,
        _ => die("--tls CERT needs --key KEY"),
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| die(&format!("bind: {}", e)));
    let addr = listener.local_addr().unwrap_or_else(|e| die(&e.to_string()));
    let client = tls.as_ref().map(|t| t.1.clone());
    let receiver = thread::spawn(move || -> Res<u64> {
        let s = TcpStream::connect(addr).map_err(|e| format!("connect: {}", e))?;
        s.set_read_timeout(Some(Duration::from_secs(120))).map_err(|e| e.to_string())?;
        match client {
            None => receive(s),
            Some(config) => {
                let conn = ClientConnection::new(config, ServerName::IpAddress(addr.ip().into()))
                    .map_err(|e| format!("TLS: {}", e))?;
                receive(StreamOwned::new(conn, s))
            }
        }
    });
    let (s, _) = listener.accept().unwrap_or_else(|e| die(&format!("accept: {}", e)));
    let _ = s.set_nodelay(true);
    let _ = s.set_write_timeout(Some(Duration::from_secs(120)));
    let ticks0 = thread_ticks();
    let t0 = Instant::now();
    let (sent, suite) = match tls {
        None => {
            let mut s = s;
            let r = send(&file, passes, &mut s);
            let _ = s.shutdown(std::net::Shutdown::Write);
            (r, "-".to_string())
        }
        Some((config, _)) => {
            let conn = ServerConnection::new(config).unwrap_or_else(|e| die(&format!("TLS: {}", e)));
            let mut t = StreamOwned::new(conn, s);
            let mut r = send(&file, passes, &mut t);
            let suite = t.conn.negotiated_cipher_suite().map_or("-".to_string(), |c| format!("{:?}", c.suite()));
            let version = t.conn.protocol_version().map_or("-".to_string(), |v| format!("{:?}", v));
            t.conn.send_close_notify();
            if let Err(e) = t.conn.complete_io(&mut t.sock) {
                r = r.and(Err(format!("close_notify: {}", e)));
            }
            let _ = t.sock.shutdown(std::net::Shutdown::Write);
            (r, format!("{}/{}", version, suite))
        }
    };
    let secs = t0.elapsed().as_secs_f64();
    let ticks = thread_ticks() - ticks0;
    let received = receiver.join().unwrap_or_else(|_| Err("receiver panicked".into()));
    match (sent, received) {
        (Ok(n), Ok(m)) if n == m => {
            println!("RESULT bytes={} secs={:.3} cpu_ticks={} tls={}", n, secs, ticks, suite)
        }
        (Ok(n), Ok(m)) => die(&format!("sent {} octets, received {}", n, m)),
        (Err(e), _) | (_, Err(e)) => die(&e),
    }
}
