// pop3bench: POP3 load client (plaintext or TLS through rustls) and mbox generator used by bench/run.sh (`make bench`).
//
// Modes (all traffic goes to the address given, which bench/run.sh keeps on 127.0.0.1):
//   pop3bench gen    --out FILE --messages N --bytes B [--seed S]
//       Write a deterministic mbox (mboxrd quoting) of N messages totalling about B bytes.
//   pop3bench logins --addr A --prefix P --users N --pass PW --conc C --secs S --max M [--tls CERT]
//       C client threads loop login(USER/PASS)+STAT+QUIT, thread i using account P<i mod N>,
//       for at most S seconds and at most M sessions in all. Prints sessions/s.
//   pop3bench retr   --addr A --user U --pass PW [--passes K] [--secs S] [--window W] [--tls CERT]
//       Log in, LIST, RETR every message one after the other (or W at a time, pipelined,
//       if CAPA lists PIPELINING), QUIT; K passes (best is reported) within S seconds;
//       checks every RETR's unstuffed size against LIST.
//   pop3bench stat   --addr A --user U --pass PW [--hold S]
//       Connect, log in, STAT; prints the times, then keeps the session open until a line
//       (or EOF) arrives on stdin or S seconds pass, then QUIT.
//   pop3bench idle   --addr A --prefix P --users N --pass PW [--conc C] [--hold S]
//       Open N sessions (accounts P0000..), log each in, print READY, hold them until a
//       line (or EOF) on stdin or S seconds, then QUIT them all.
//   pop3bench mem    --pid P [--comm NAME]
//       Memory of process P and all its descendants (Linux /proc): sums of VmRSS and Pss,
//       and the largest VmHWM / VmRSS among the processes whose comm is NAME; and the CPU time
//       of the tree in clock ticks (utime+stime of each process, plus its reaped children's).
// --tls CERT: implicit TLS (POP3S) to A, trusting only the PEM certificate CERT (the bench's
// self-signed one; it must name A's IP address), ALPN "pop3", rustls with the ring provider.
// Session resumption is disabled, so every connection is a full handshake (the RESULT line
// counts the handshakes that were not); the client sends close_notify after QUIT.
// Output: one `RESULT key=value ...` line on stdout (READY / STATDONE lines before it for the
// holding modes); diagnostics on stderr. Exit status 0 unless the run could not be done.

use std::collections::HashMap;
use std::env;
use std::fs::File;
use std::io::{self, BufRead, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, HandshakeKind, RootCertStore, StreamOwned};

type Res<T> = Result<T, String>;

struct Args(HashMap<String, String>);

impl Args {
    fn parse(list: &[String]) -> Args {
        let mut map = HashMap::new();
        let mut i = 0;
        while i < list.len() {
            let k = list[i].trim_start_matches("--").to_string();
            let v = list.get(i + 1).cloned().unwrap_or_default();
            map.insert(k, v);
            i += 2;
        }
        Args(map)
    }
    fn s(&self, k: &str) -> String {
        match self.0.get(k) {
            Some(v) => v.clone(),
            None => die(&format!("missing --{}", k)),
        }
    }
    fn n(&self, k: &str, default: u64) -> u64 {
        match self.0.get(k) {
            Some(v) => v.parse().unwrap_or_else(|_| die(&format!("bad --{} {}", k, v))),
            None => default,
        }
    }
    fn addr(&self) -> SocketAddr {
        let a = self.s("addr");
        a.to_socket_addrs().ok().and_then(|mut it| it.next()).unwrap_or_else(|| die(&format!("bad --addr {}", a)))
    }
    /// The TLS client for `--tls CERT`, or None for plaintext.
    fn tls(&self) -> Option<Arc<ClientConfig>> {
        self.0.get("tls").map(|cert| tls_config(cert).unwrap_or_else(|e| die(&format!("--tls {}: {}", cert, e))))
    }
}

fn die(msg: &str) -> ! {
    eprintln!("pop3bench: {}", msg);
    process::exit(2)
}

fn main() {
    let argv: Vec<String> = env::args().collect();
    if argv.len() < 2 {
        die("usage: pop3bench gen|logins|retr|stat|idle --key value ...");
    }
    let args = Args::parse(&argv[2..]);
    match argv[1].as_str() {
        "gen" => gen(&args),
        "logins" => logins(&args),
        "retr" => retr(&args),
        "stat" => stat(&args),
        "idle" => idle(&args),
        "mem" => mem(&args),
        m => die(&format!("unknown mode {}", m)),
    }
}

fn user_name(prefix: &str, i: u64) -> String {
    format!("{}{:04}", prefix, i)
}

// ---------------------------------------------------------------- TLS

/// A client configuration that trusts only the certificate in `cert` (PEM), offers ALPN
/// "pop3" and never resumes a session: every handshake is a full one.
fn tls_config(cert: &str) -> Res<Arc<ClientConfig>> {
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
struct Handshake {
    /// "TLSv1_3/TLS13_AES_256_GCM_SHA384/X25519": version, cipher suite, key exchange group.
    summary: String,
    full: bool,
    /// From the start of connect to the end of the handshake.
    time: Duration,
}

// ---------------------------------------------------------------- POP3 connection

struct Conn {
    s: Stream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    handshake: Option<Handshake>,
}

impl Conn {
    /// Connects, and with `tls` completes the TLS handshake before returning (implicit TLS).
    fn connect(addr: &SocketAddr, timeout: Duration, tls: Option<&Arc<ClientConfig>>) -> Res<Conn> {
        let t0 = Instant::now();
        let s = TcpStream::connect_timeout(addr, timeout).map_err(|e| format!("connect: {}", e))?;
        s.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
        s.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
        let _ = s.set_nodelay(true);
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
    fn close(mut self) {
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
    fn line(&mut self) -> Res<String> {
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

    fn send(&mut self, cmd: &str) -> Res<()> {
        let mut v = Vec::with_capacity(cmd.len() + 2);
        v.extend_from_slice(cmd.as_bytes());
        v.extend_from_slice(b"\r\n");
        self.s.write_all(&v).map_err(|e| format!("write: {}", e))
    }

    fn cmd_ok(&mut self, cmd: &str) -> Res<String> {
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
    fn multiline_size(&mut self) -> Res<u64> {
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
    fn multiline_lines(&mut self) -> Res<Vec<String>> {
        let mut v = Vec::new();
        loop {
            let l = self.line()?;
            if l == "." {
                return Ok(v);
            }
            v.push(l);
        }
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

fn parse_stat(l: &str) -> (u64, u64) {
    let mut it = l.split_whitespace().skip(1);
    let n = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    let o = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    (n, o)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ---------------------------------------------------------------- logins

/// What one `logins` client thread did.
#[derive(Default)]
struct LoginStats {
    ok: u64,
    errors: u64,
    first_errors: Vec<String>,
    /// Session times (connect to QUIT answer) and TLS handshake times, microseconds.
    lat: Vec<u32>,
    hs_lat: Vec<u32>,
    /// TLS handshakes that were not full ones (resumed), and what was negotiated.
    not_full: u64,
    negotiated: Vec<String>,
}

fn micros(d: Duration) -> u32 {
    d.as_micros().min(u32::MAX as u128) as u32
}

/// The p-th percentile of sorted microsecond samples, in milliseconds.
fn pct_ms(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        0.0
    } else {
        sorted[((sorted.len() - 1) as f64 * p) as usize] as f64 / 1000.0
    }
}

fn logins(a: &Args) {
    let addr = a.addr();
    let prefix = a.s("prefix");
    let users = a.n("users", 64).max(1);
    let pass = a.s("pass");
    let conc = a.n("conc", 8).max(1);
    let secs = a.n("secs", 5);
    let max = a.n("max", 100_000);
    let tls = a.tls();
    let started = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(secs);
    let mut hs = Vec::new();
    for t in 0..conc {
        let (prefix, pass, started, tls) = (prefix.clone(), pass.clone(), started.clone(), tls.clone());
        hs.push(thread::spawn(move || {
            let user = user_name(&prefix, t % users);
            let mut st = LoginStats::default();
            while Instant::now() < deadline && started.fetch_add(1, Ordering::Relaxed) < max {
                let s0 = Instant::now();
                let r = (|| -> Res<Option<Handshake>> {
                    let mut c = Conn::connect(&addr, Duration::from_secs(30), tls.as_ref())?;
                    c.login(&user, &pass)?;
                    c.cmd_ok("STAT")?;
                    c.cmd_ok("QUIT")?;
                    let h = c.handshake.take();
                    c.close();
                    Ok(h)
                })();
                match r {
                    Ok(h) => {
                        st.ok += 1;
                        st.lat.push(micros(s0.elapsed()));
                        if let Some(h) = h {
                            st.hs_lat.push(micros(h.time));
                            st.not_full += u64::from(!h.full);
                            if !st.negotiated.contains(&h.summary) {
                                st.negotiated.push(h.summary);
                            }
                        }
                    }
                    Err(e) => {
                        st.errors += 1;
                        if st.first_errors.len() < 3 {
                            st.first_errors.push(e);
                        }
                        thread::sleep(Duration::from_millis(20));
                    }
                }
            }
            st
        }));
    }
    let mut all = LoginStats::default();
    for h in hs {
        let st = h.join().unwrap_or_else(|_| LoginStats {
            errors: 1,
            first_errors: vec!["thread panicked".into()],
            ..Default::default()
        });
        all.ok += st.ok;
        all.errors += st.errors;
        all.first_errors.extend(st.first_errors);
        all.lat.extend(st.lat);
        all.hs_lat.extend(st.hs_lat);
        all.not_full += st.not_full;
        for n in st.negotiated {
            if !all.negotiated.contains(&n) {
                all.negotiated.push(n);
            }
        }
    }
    let el = t0.elapsed().as_secs_f64();
    all.lat.sort_unstable();
    all.hs_lat.sort_unstable();
    for e in all.first_errors.iter().take(3) {
        eprintln!("pop3bench logins: error: {}", e);
    }
    let tls_part = if tls.is_some() {
        format!(
            " tls={} full_handshakes={} resumed={} hs_p50_ms={:.2} hs_p99_ms={:.2}",
            if all.negotiated.is_empty() { "-".into() } else { all.negotiated.join(",") },
            all.hs_lat.len() as u64 - all.not_full,
            all.not_full,
            pct_ms(&all.hs_lat, 0.5),
            pct_ms(&all.hs_lat, 0.99)
        )
    } else {
        String::new()
    };
    println!(
        "RESULT sessions={} errors={} secs={:.3} rate={:.1} p50_ms={:.2} p99_ms={:.2}{}",
        all.ok,
        all.errors,
        el,
        all.ok as f64 / el,
        pct_ms(&all.lat, 0.5),
        pct_ms(&all.lat, 0.99),
        tls_part
    );
}

// ---------------------------------------------------------------- retr

fn retr(a: &Args) {
    let addr = a.addr();
    let user = a.s("user");
    let pass = a.s("pass");
    let passes = a.n("passes", 3).max(1);
    let secs = a.n("secs", 120);
    let window = a.n("window", 1).max(1);
    let tls = a.tls();
    let mut negotiated = String::from("-");
    let t_all = Instant::now();
    let mut best: Option<(f64, u64, u64, f64)> = None; // (MB/s, bytes, messages, secs)
    let mut mismatches = 0u64;
    let mut total_bytes = 0u64; // over every pass, for CPU per byte
    if window > 1 {
        // pipelining only where the server offers it (RFC 2449)
        let capa = (|| -> Res<bool> {
            let mut c = Conn::connect(&addr, Duration::from_secs(30), tls.as_ref())?;
            c.line()?;
            if c.cmd_ok("CAPA").is_err() {
                return Ok(false);
            }
            let yes = c.multiline_lines()?.iter().any(|l| l.eq_ignore_ascii_case("PIPELINING"));
            if c.cmd_ok("QUIT").is_ok() {
                c.close();
            }
            Ok(yes)
        })();
        match capa {
            Ok(true) => {}
            Ok(false) => {
                eprintln!("pop3bench retr: no PIPELINING in CAPA, skipped");
                println!("RESULT skipped=1");
                return;
            }
            Err(e) => {
                eprintln!("pop3bench retr: CAPA: {}", e);
                println!("RESULT error=1");
                return;
            }
        }
    }
    for p in 0..passes {
        if p > 0 && t_all.elapsed() > Duration::from_secs(secs) {
            break;
        }
        let r = (|| -> Res<(u64, u64, f64, u64)> {
            let mut c = Conn::connect(&addr, Duration::from_secs(120), tls.as_ref())?;
            if let Some(h) = &c.handshake {
                negotiated.clone_from(&h.summary);
            }
            c.login(&user, &pass)?;
            let st = c.cmd_ok("STAT")?;
            let (n, _) = parse_stat(&st);
            c.cmd_ok("LIST")?;
            let mut sizes = vec![0u64; n as usize + 1];
            for l in c.multiline_lines()? {
                let mut it = l.split_whitespace();
                if let (Some(i), Some(s)) = (it.next(), it.next()) {
                    if let (Ok(i), Ok(s)) = (i.parse::<usize>(), s.parse::<u64>()) {
                        if i < sizes.len() {
                            sizes[i] = s;
                        }
                    }
                }
            }
            let t0 = Instant::now();
            let mut bytes = 0u64;
            let mut mism = 0u64;
            let (mut sent, mut done) = (0u64, 0u64);
            let mut stop = false;
            while done < sent || (!stop && sent < n) {
                // keep up to `window` RETRs outstanding, sent in one write
                let mut batch = String::new();
                while !stop && sent < n && sent - done < window {
                    sent += 1;
                    batch.push_str(&format!("RETR {}\r\n", sent));
                }
                if !batch.is_empty() {
                    c.s.write_all(batch.as_bytes()).map_err(|e| format!("write: {}", e))?;
                }
                let l = c.line()?;
                if !l.starts_with("+OK") {
                    return Err(format!("RETR {} -> {}", done + 1, l));
                }
                let oct = c.multiline_size()?;
                done += 1;
                bytes += oct;
                if oct != sizes[done as usize] {
                    if mism < 3 {
                        eprintln!(
                            "pop3bench retr: message {}: LIST says {} octets, RETR sent {}",
                            done, sizes[done as usize], oct
                        );
                    }
                    mism += 1;
                }
                if !stop && t_all.elapsed() > Duration::from_secs(secs) {
                    eprintln!("pop3bench retr: time limit reached after {} messages", done);
                    stop = true;
                }
            }
            let el = t0.elapsed().as_secs_f64();
            c.cmd_ok("QUIT")?;
            c.close();
            Ok((bytes, done, el, mism))
        })();
        match r {
            Ok((bytes, done, el, mism)) => {
                mismatches = mismatches.max(mism);
                total_bytes += bytes;
                let mbs = bytes as f64 / 1e6 / el;
                eprintln!(
                    "pop3bench retr: pass {}: {} messages, {} bytes in {:.3} s = {:.1} MB/s",
                    p + 1,
                    done,
                    bytes,
                    el,
                    mbs
                );
                if !matches!(best, Some(b) if b.0 >= mbs) {
                    best = Some((mbs, bytes, done, el));
                }
            }
            Err(e) => {
                eprintln!("pop3bench retr: {}", e);
                println!("RESULT error=1");
                return;
            }
        }
    }
    let (mbs, bytes, done, el) = best.unwrap_or((0.0, 0, 0, 0.0));
    let tls_part = if tls.is_some() { format!(" tls={}", negotiated) } else { String::new() };
    println!(
        "RESULT mbs={:.1} bytes={} messages={} secs={:.3} size_mismatches={} total_bytes={}{}",
        mbs, bytes, done, el, mismatches, total_bytes, tls_part
    );
}

// ---------------------------------------------------------------- stat / idle

/// Waits for a line or EOF on stdin, or `hold` seconds.
fn wait_stdin(hold: u64) {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut l = String::new();
        let _ = io::stdin().lock().read_line(&mut l);
        let _ = tx.send(());
    });
    let _ = rx.recv_timeout(Duration::from_secs(hold));
}

fn stat(a: &Args) {
    let addr = a.addr();
    let user = a.s("user");
    let pass = a.s("pass");
    let hold = a.n("hold", 60);
    let t0 = Instant::now();
    let r = (|| -> Res<(Conn, f64, f64, String)> {
        let mut c = Conn::connect(&addr, Duration::from_secs(300), None)?;
        c.login(&user, &pass)?;
        let t_login = t0.elapsed();
        let st = c.cmd_ok("STAT")?;
        Ok((c, ms(t_login), ms(t0.elapsed()), st))
    })();
    match r {
        Ok((mut c, login_ms, stat_ms, st)) => {
            let (n, o) = parse_stat(&st);
            println!("STATDONE");
            let _ = io::stdout().flush();
            wait_stdin(hold);
            let q = c.cmd_ok("QUIT").is_ok();
            println!(
                "RESULT stat_ms={:.1} login_ms={:.1} messages={} octets={} quit_ok={}",
                stat_ms, login_ms, n, o, q as u8
            );
        }
        Err(e) => {
            eprintln!("pop3bench stat: error: {}", e);
            println!("STATDONE");
            println!("RESULT error=1");
        }
    }
}

fn idle(a: &Args) {
    let addr = a.addr();
    let prefix = a.s("prefix");
    let users = a.n("users", 1000);
    let pass = a.s("pass");
    let conc = a.n("conc", 8).max(1);
    let hold = a.n("hold", 120);
    let next = Arc::new(AtomicU64::new(0));
    let conns: Arc<Mutex<Vec<Conn>>> = Arc::new(Mutex::new(Vec::new()));
    let errs = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(hold);
    let mut hs = Vec::new();
    for _ in 0..conc {
        let (prefix, pass, next, conns, errs) =
            (prefix.clone(), pass.clone(), next.clone(), conns.clone(), errs.clone());
        hs.push(thread::spawn(move || loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= users || Instant::now() > deadline {
                return;
            }
            let user = user_name(&prefix, i);
            let r = (|| -> Res<Conn> {
                let mut c = Conn::connect(&addr, Duration::from_secs(60), None)?;
                c.login(&user, &pass)?;
                Ok(c)
            })();
            match r {
                Ok(c) => conns.lock().unwrap().push(c),
                Err(e) => {
                    if errs.fetch_add(1, Ordering::Relaxed) < 3 {
                        eprintln!("pop3bench idle: {}: {}", user, e);
                    }
                }
            }
        }));
    }
    for h in hs {
        let _ = h.join();
    }
    let open_secs = t0.elapsed().as_secs_f64();
    let n = conns.lock().unwrap().len();
    println!("READY sessions={} errors={} secs={:.2}", n, errs.load(Ordering::Relaxed), open_secs);
    let _ = io::stdout().flush();
    wait_stdin(hold);
    let mut quit_ok = 0;
    let mut list = std::mem::take(&mut *conns.lock().unwrap());
    for c in list.iter_mut() {
        if c.send("QUIT").is_ok() {
            quit_ok += 1;
        }
    }
    for c in list.iter_mut() {
        let _ = c.line();
    }
    println!(
        "RESULT sessions={} errors={} open_secs={:.2} quit_sent={}",
        n,
        errs.load(Ordering::Relaxed),
        open_secs,
        quit_ok
    );
}

// ---------------------------------------------------------------- gen

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[self.below(v.len() as u64) as usize]
    }
}

const WORDS: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "this",
    "are",
    "or",
    "his",
    "from",
    "at",
    "which",
    "but",
    "have",
    "an",
    "had",
    "they",
    "you",
    "were",
    "their",
    "one",
    "all",
    "we",
    "can",
    "her",
    "has",
    "there",
    "been",
    "if",
    "more",
    "when",
    "will",
    "would",
    "who",
    "so",
    "no",
    "meeting",
    "report",
    "budget",
    "quarter",
    "server",
    "mailbox",
    "invoice",
    "schedule",
    "project",
    "review",
    "deadline",
    "customer",
    "release",
    "update",
    "network",
    "router",
    "storage",
    "backup",
    "firmware",
    "please",
    "thanks",
    "regards",
    "attached",
    "tomorrow",
    "yesterday",
    "morning",
    "afternoon",
    "question",
    "answer",
    "problem",
    "solution",
    "delivery",
    "package",
    "address",
    "account",
    "password",
    "policy",
    "change",
    "request",
    "ticket",
    "issue",
    "fixed",
    "broken",
    "urgent",
    "minor",
    "major",
    "version",
    "install",
    "configure",
    "performance",
    "memory",
    "latency",
    "throughput",
    "disk",
    "volume",
    "share",
    "folder",
    "photo",
    "holiday",
    "weekend",
    "lunch",
    "coffee",
    "office",
    "travel",
    "flight",
    "hotel",
    "conference",
    "agenda",
    "minutes",
    "draft",
    "final",
    "approved",
    "pending",
    "shipping",
    "order",
    "payment",
    "über",
    "café",
    "naïve",
    "Grüße",
    "déjà",
    "señor",
    "1,024",
    "42",
    "2025",
    "v1.2.3",
    "e-mail",
];

const FIRST: &[&str] = &[
    "Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Mallory", "Niaj", "Olivia",
    "Peggy", "Rupert", "Sybil", "Trent", "Victor", "Walter", "Zoë",
];
const LAST: &[&str] = &[
    "Smith",
    "Jones",
    "Müller",
    "García",
    "Nguyen",
    "Kowalski",
    "Rossi",
    "Dubois",
    "Tanaka",
    "Okafor",
    "Johansson",
    "Novak",
    "Silva",
    "Kim",
    "Brown",
    "Martin",
];
const DOMAINS: &[&str] =
    &["example.org", "example.com", "example.net", "mail.example.org", "lists.example.net", "corp.example"];
const SUBJ: &[&str] = &[
    "Quarterly report draft",
    "Re: backup schedule",
    "Invoice",
    "Fwd: firmware update",
    "Meeting notes",
    "Re: Re: disk usage",
    "Your order has shipped",
    "[list] weekly digest",
    "Holiday photos",
    "Password policy change",
    "Re: question about the router",
    "Build failed",
    "Lunch tomorrow?",
    "=?UTF-8?B?R3LDvMOfZSBhdXMgTcO8bmNoZW4=?=",
    "Ticket updated",
    "Agenda for Monday",
];
const DAYS: &[&str] = &["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: &[&str] = &["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// (year, month 1-12, day) from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, usize, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m as usize, d)
}

fn dates(t: i64) -> (String, String) {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    let wd = DAYS[days.rem_euclid(7) as usize];
    let (hh, mm, ss) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mon = MONTHS[m - 1];
    // mbox separator date (asctime) and RFC 5322 Date
    (
        format!("{} {} {:2} {:02}:{:02}:{:02} {}", wd, mon, d, hh, mm, ss, y),
        format!("{}, {} {} {} {:02}:{:02}:{:02} +0000", wd, d, mon, y, hh, mm, ss),
    )
}

/// A pool of text lines (LF-terminated) to slice bodies from, with line start offsets.
fn text_pool(rng: &mut Rng, bytes: usize) -> (Vec<u8>, Vec<usize>) {
    let mut v = Vec::with_capacity(bytes + 200);
    let mut starts = Vec::new();
    while v.len() < bytes {
        starts.push(v.len());
        let kind = rng.below(100);
        if kind < 4 {
            v.push(b'\n'); // paragraph break
            continue;
        }
        if kind < 6 {
            // lines that need dot-stuffing or mbox quoting
            let special: &[&str] =
                &[".", "..", ".hidden line starting with a dot", ">From the archive", "> quoted reply text"];
            v.extend_from_slice(rng.pick(special).as_bytes());
            v.push(b'\n');
            continue;
        }
        let width = 40 + rng.below(38) as usize;
        let mut l = String::new();
        if kind < 12 {
            l.push_str("> ");
        }
        while l.len() < width {
            if !l.is_empty() && !l.ends_with(' ') {
                l.push(' ');
            }
            l.push_str(rng.pick(WORDS));
            if rng.below(12) == 0 {
                l.push(if rng.below(2) == 0 { '.' } else { ',' });
            }
        }
        if kind < 14 {
            l.push('\r'); // a few CRLF lines in the store
        }
        v.extend_from_slice(l.as_bytes());
        v.push(b'\n');
    }
    (v, starts)
}

fn b64_pool(rng: &mut Rng, bytes: usize) -> (Vec<u8>, Vec<usize>) {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut v = Vec::with_capacity(bytes + 100);
    let mut starts = Vec::new();
    while v.len() < bytes {
        starts.push(v.len());
        for _ in 0..76 {
            v.push(A[rng.below(64) as usize]);
        }
        v.push(b'\n');
    }
    (v, starts)
}

/// Appends whole lines from the pool starting at a random line until `n` bytes are copied.
fn slice_into(out: &mut Vec<u8>, rng: &mut Rng, pool: &(Vec<u8>, Vec<usize>), n: usize) {
    let (data, starts) = pool;
    let mut left = n;
    while left > 0 {
        let s = starts[rng.below(starts.len() as u64 / 2) as usize];
        let want = (s + left).min(data.len());
        // extend to the end of the line
        let e = match data[want - 1..].iter().position(|&b| b == b'\n') {
            Some(p) => want + p,
            None => data.len(),
        };
        out.extend_from_slice(&data[s..e]);
        left = left.saturating_sub(e - s);
    }
}

fn gen(a: &Args) {
    let out = a.s("out");
    let n = a.n("messages", 2000).max(1);
    let total = a.n("bytes", 100_000_000);
    let mut rng = Rng(a.n("seed", 1));
    let text = text_pool(&mut rng, 8 << 20);
    let b64 = b64_pool(&mut rng, 4 << 20);
    let f = File::create(&out).unwrap_or_else(|e| die(&format!("{}: {}", out, e)));
    let mut w = BufWriter::with_capacity(1 << 20, f);
    let mut written: u64 = 0;
    let mut t: i64 = 1_735_689_600; // 2025-01-01
    let mut m = Vec::with_capacity(1 << 20);
    for i in 0..n {
        m.clear();
        t += 20 + rng.below(600) as i64;
        let (sep_date, date) = dates(t);
        let (fname, lname, dom) = (rng.pick(FIRST), rng.pick(LAST), rng.pick(DOMAINS));
        let local = format!("{}.{}", fname.to_lowercase(), lname.to_lowercase());
        let qid = rng.next();
        let subj = rng.pick(SUBJ);
        let left_msgs = n - i;
        let left_bytes = total.saturating_sub(written);
        let avg = (left_bytes / left_msgs).max(600);
        // body size: varied around what keeps the total on target
        let body = ((avg as f64) * (0.25 + 1.5 * (rng.below(1000) as f64 / 1000.0))) as usize;
        let body = body.saturating_sub(900).max(40);
        let _ = write!(
            m,
            "From {}@{} {}\n\
             Return-Path: <{}@{}>\n\
             X-Original-To: bench@bench.example\n\
             Delivered-To: bench@bench.example\n\
             Received: from mail.{} (mail.{} [192.0.2.{}])\n\
             \tby mx.bench.example (Postfix) with ESMTPS id {:010X}\n\
             \tfor <bench@bench.example>; {}\n\
             Received: by mail.{} (Postfix, from userid {}) id {:08X}; {}\n\
             Message-ID: <{}.{:016x}@{}>\n\
             Date: {}\n\
             From: {} {} <{}@{}>\n\
             To: Bench User <bench@bench.example>\n\
             Subject: {} {}\n\
             MIME-Version: 1.0\n",
            local,
            dom,
            sep_date,
            local,
            dom,
            dom,
            dom,
            1 + rng.below(250),
            qid >> 24,
            date,
            dom,
            1000 + rng.below(100),
            qid & 0xffff_ffff,
            date,
            t,
            qid,
            dom,
            date,
            fname,
            lname,
            local,
            dom,
            subj,
            i + 1,
        );
        if rng.below(5) == 0 {
            // multipart with a base64 "attachment"
            let boundary = format!("=_bench_{:016x}", rng.next());
            let txt = body / 5 + 10;
            let _ = write!(
                m,
                "Content-Type: multipart/mixed; boundary=\"{}\"\n\nThis is a multi-part message in MIME format.\n\n--{}\n\
                 Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n",
                boundary, boundary
            );
            slice_into(&mut m, &mut rng, &text, txt);
            let _ =
                write!(
                m,
                "\n--{}\nContent-Type: application/pdf; name=\"report-{}.pdf\"\nContent-Transfer-Encoding: base64\n\
                 Content-Disposition: attachment; filename=\"report-{}.pdf\"\n\n",
                boundary, i + 1, i + 1
            );
            slice_into(&mut m, &mut rng, &b64, body - txt.min(body));
            let _ = write!(m, "\n--{}--\n", boundary);
        } else {
            m.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n");
            slice_into(&mut m, &mut rng, &text, body);
        }
        if m.last() != Some(&b'\n') {
            m.push(b'\n');
        }
        m.push(b'\n'); // blank line before the next separator
        if w.write_all(&m).is_err() {
            die("write failed");
        }
        written += m.len() as u64;
    }
    if w.flush().is_err() {
        die("write failed");
    }
    println!("RESULT messages={} bytes={}", n, written);
}

// ---------------------------------------------------------------- mem

fn status_kb(text: &str, key: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l[key.len()..].split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn mem(a: &Args) {
    let root = a.n("pid", 0) as u32;
    let comm = a.0.get("comm").cloned();
    // (pid, ppid, comm, CPU ticks) for every process
    let mut procs: Vec<(u32, u32, String, u64)> = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let pid: u32 = match e.file_name().to_str().and_then(|n| n.parse().ok()) {
                Some(p) => p,
                None => continue,
            };
            let st = match std::fs::read_to_string(format!("/proc/{}/stat", pid)) {
                Ok(s) => s,
                Err(_) => continue,
            };
            let (open, close) = match (st.find('('), st.rfind(')')) {
                (Some(o), Some(c)) if c > o => (o, c),
                _ => continue,
            };
            let name = st[open + 1..close].to_string();
            // after the comm: state ppid ... utime(11) stime cutime cstime(14)
            let fields: Vec<&str> = st[close + 1..].split_whitespace().collect();
            let field = |i: usize| -> u64 { fields.get(i).and_then(|v| v.parse().ok()).unwrap_or(0) };
            let ppid = field(1) as u32;
            let ticks = (11..=14).map(field).sum();
            procs.push((pid, ppid, name, ticks));
        }
    }
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    let mut names: HashMap<u32, String> = HashMap::new();
    let mut cpu: HashMap<u32, u64> = HashMap::new();
    for (pid, ppid, name, ticks) in procs {
        children.entry(ppid).or_default().push(pid);
        names.insert(pid, name);
        cpu.insert(pid, ticks);
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        if let Some(c) = children.get(&tree[i]) {
            tree.extend(c.iter().copied().filter(|&p| p != 0));
        }
        i += 1;
    }
    let (mut rss, mut pss, mut n, mut nc, mut hwm_max, mut rss_max) = (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let cpu_ticks: u64 = tree.iter().filter_map(|p| cpu.get(p)).sum();
    for pid in &tree {
        let st = match std::fs::read_to_string(format!("/proc/{}/status", pid)) {
            Ok(s) => s,
            Err(_) => continue,
        };
        n += 1;
        let r = status_kb(&st, "VmRSS:");
        rss += r;
        if let Ok(sm) = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", pid)) {
            pss += status_kb(&sm, "Pss:");
        }
        let name = names.get(pid).map(|s| s.as_str()).unwrap_or("");
        if comm.as_deref() == Some(name) {
            nc += 1;
            hwm_max = hwm_max.max(status_kb(&st, "VmHWM:"));
            rss_max = rss_max.max(r);
        }
    }
    println!(
        "RESULT procs={} rss_kb={} pss_kb={} comm_procs={} comm_hwm_max_kb={} comm_rss_max_kb={} cpu_ticks={}",
        n, rss, pss, nc, hwm_max, rss_max, cpu_ticks
    );
}
