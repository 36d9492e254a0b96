//! Test harness: runs the real pop3d binary on 127.0.0.1:0 (daemon) or on pipes (inetd mode) against a private spool.
#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};

pub mod accounts;
pub mod pki;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long any read from the server may take before the test fails: a
/// hang guard, never a synchronisation.
pub const HANG_GUARD: Duration = Duration::from_secs(20);

/// SHA512-CRYPT of "secret" (openssl passwd -6 -salt pop3ddemo secret).
pub const SECRET_HASH: &str =
    "$6$pop3ddemo$v.qzGaYGZyiFyZXdQJyydnGuFB7rjPJ9J76.Yqf5tjQfl91Phkj8Js1AMDa/DkssDAviSWrahqLEdgzFO7jOA1";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A private directory with a users file, a spool and a state directory,
/// removed when dropped.
pub struct Spool {
    pub dir: PathBuf,
    /// The account pop3d runs as, when not `nobody` (uid, gid).
    owner: std::cell::Cell<Option<(u32, u32)>>,
}

impl Spool {
    pub fn new() -> Spool {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("pop3d-it-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("spool")).unwrap();
        fs::create_dir_all(dir.join("state")).unwrap();
        let users = format!("alice:{SECRET_HASH}\nbob:{SECRET_HASH}\ncarol:{{PLAIN}}tanstaaf\n");
        fs::write(dir.join("users"), users).unwrap();
        // Password hashes: never readable by everyone (pop3d -t refuses it).
        fs::set_permissions(dir.join("users"), std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
        Spool { dir, owner: std::cell::Cell::new(None) }
    }

    /// pop3d runs as `uid` (its `user`), not `nobody`: the spool is that account's from now on.
    pub fn run_as(&self, uid: u32, gid: u32) {
        self.owner.set(Some((uid, gid)));
        self.give_to_server();
    }

    pub fn mbox(&self, user: &str) -> PathBuf {
        self.dir.join("spool").join(user)
    }

    pub fn write_mbox(&self, user: &str, bytes: &[u8]) {
        fs::write(self.mbox(user), bytes).unwrap();
        self.give_to_server();
    }

    pub fn read_mbox(&self, user: &str) -> Vec<u8> {
        fs::read(self.mbox(user)).unwrap()
    }

    /// Appends as a delivery agent would.
    pub fn deliver(&self, user: &str, bytes: &[u8]) {
        let mut f = fs::OpenOptions::new().append(true).create(true).open(self.mbox(user)).unwrap();
        f.write_all(bytes).unwrap();
        drop(f);
        self.give_to_server();
    }

    /// The configuration file text with `extra` lines added.
    pub fn config(&self, extra: &[&str]) -> PathBuf {
        let d = self.dir.display();
        let defaults = [
            format!("users_file = {d}/users"),
            format!("mailbox = {d}/spool/%u"),
            format!("state_dir = {d}/state"),
            "log = stderr".into(),
            "user = nobody".into(),
        ];
        let key = |line: &str| line.split('=').next().unwrap_or("").trim().to_string();
        let mut text = String::new();
        for line in defaults.iter().filter(|l| !extra.iter().any(|e| key(e) == key(l))) {
            text.push_str(line);
            text.push('\n');
        }
        for line in extra {
            text.push_str(line);
            text.push('\n');
        }
        let path = self.dir.join("pop3d.conf");
        fs::write(&path, text).unwrap();
        self.give_to_server();
        path
    }

    /// When the tests run as root, pop3d switches to `nobody`: the spool
    /// must be theirs.
    pub fn give_to_server(&self) {
        if let Some(uid) = nobody_uid() {
            let (uid, gid) = self.owner.get().map_or((uid, nobody_gid()), |(u, g)| (u, Some(g)));
            for entry in walk(&self.dir) {
                // A running daemon may replace its state files meanwhile (a temporary file renamed away).
                match std::os::unix::fs::chown(&entry, Some(uid), None) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => panic!("chown {}: {e}", entry.display()),
                    _ => {}
                }
            }
            // The users file is root's, readable by pop3d's group: pop3d
            // refuses one its sessions' account could write.
            let users = self.dir.join("users");
            if users.exists() {
                std::os::unix::fs::chown(&users, Some(0), gid).unwrap();
            }
        }
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let Ok(entries) = fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// nobody's uid when running as root, else None.
fn nobody_uid() -> Option<u32> {
    let me = fs::read_to_string("/proc/self/status").ok()?;
    let euid_root = me.lines().find(|l| l.starts_with("Uid:"))?.split_whitespace().nth(2)? == "0";
    if !euid_root {
        return None;
    }
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find(|l| l.starts_with("nobody:"))?.split(':').nth(2)?.parse().ok()
}

/// nobody's primary gid.
fn nobody_gid() -> Option<u32> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find(|l| l.starts_with("nobody:"))?.split(':').nth(3)?.parse().ok()
}

/// The pop3d under test: `POP3D_TEST_BIN` (e.g. a cross-built binary) or the one cargo built.
pub fn binary() -> String {
    std::env::var("POP3D_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_pop3d").to_string())
}

/// A command running pop3d, through `POP3D_TEST_RUNNER` when it is set
/// (e.g. `qemu-mipsel`, so a cross-built binary runs without binfmt_misc).
pub fn pop3d() -> Command {
    match std::env::var("POP3D_TEST_RUNNER") {
        Ok(runner) if !runner.is_empty() => {
            let mut words = runner.split_whitespace();
            let mut cmd = Command::new(words.next().unwrap());
            cmd.args(words).arg(binary());
            cmd
        }
        _ => Command::new(binary()),
    }
}

/// `cmd` with RLIMIT_NPROC lowered to `threads` before it runs.
fn limited(mut cmd: Command, threads: u64) -> Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit only lowers this process's own limit, between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit { rlim_cur: threads as libc::rlim_t, rlim_max: threads as libc::rlim_t };
            match libc::setrlimit(libc::RLIMIT_NPROC, &limit) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        })
    };
    cmd
}

/// A running daemon; killed when dropped.
pub struct Daemon {
    child: Child,
    /// The first plaintext listener (or the TLS one if there is none).
    pub addr: SocketAddr,
    /// The first implicit-TLS listener.
    pub tls_addr: Option<SocketAddr>,
    log: Arc<Mutex<String>>,
}

impl Daemon {
    /// Starts `pop3d -f CONF -l 127.0.0.1:0` and waits for its "listening
    /// on" line.
    pub fn start(spool: &Spool, extra: &[&str]) -> Daemon {
        Daemon::start_on(spool, extra, &["127.0.0.1:0"])
    }

    /// Starts pop3d listening on each of `listens` (e.g. "127.0.0.1:0 tls")
    /// and waits until it reports every address.
    pub fn start_on(spool: &Spool, extra: &[&str], listens: &[&str]) -> Daemon {
        Daemon::start_with(spool, extra, listens, pop3d())
    }

    /// `start` with RLIMIT_NPROC set to `threads` for the daemon: its
    /// account (its own, see `Spool::run_as`) may run that many threads.
    pub fn start_with_threads(spool: &Spool, extra: &[&str], threads: u64) -> Daemon {
        Daemon::start_with(spool, extra, &["127.0.0.1:0"], limited(pop3d(), threads))
    }

    fn start_with(spool: &Spool, extra: &[&str], listens: &[&str], mut cmd: Command) -> Daemon {
        let conf = spool.config(extra);
        cmd.args(["-f", conf.to_str().unwrap()]);
        for l in listens {
            cmd.args(["-l", l]);
        }
        let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("listening on ").nth(1) {
                    let _ = tx.send(addr.trim().to_string());
                }
                log2.lock().unwrap().push_str(&line);
                log2.lock().unwrap().push('\n');
            }
        });
        let mut addrs = Vec::new();
        let mut tls_addrs = Vec::new();
        while addrs.len() + tls_addrs.len() < listens.len() {
            match rx.recv_timeout(HANG_GUARD) {
                Ok(a) => match a.strip_suffix(" (TLS)") {
                    Some(a) => tls_addrs.push(a.parse().unwrap()),
                    None => addrs.push(a.parse().unwrap()),
                },
                Err(_) => {
                    let _ = child.kill();
                    panic!("pop3d did not start: {}", log.lock().unwrap());
                }
            }
        }
        let addr = addrs.first().or(tls_addrs.first()).copied().unwrap();
        Daemon { child, addr, tls_addr: tls_addrs.first().copied(), log }
    }

    /// Sends a signal (e.g. libc::SIGHUP) to the daemon.
    pub fn signal(&self, sig: i32) {
        Command::new("kill").arg(format!("-{sig}")).arg(self.child.id().to_string()).status().unwrap();
    }

    pub fn connect(&self) -> Client {
        Client::tcp(self.addr)
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (bounded by the hang guard) for the daemon to exit.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + HANG_GUARD;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "pop3d did not exit:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything pop3d logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits (bounded) until the log contains `text`.
    pub fn wait_log(&self, text: &str) -> String {
        self.wait_log_times(text, 1)
    }

    /// Waits until `text` is in the log `times` times; returns the log.
    pub fn wait_log_times(&self, text: &str, times: usize) -> String {
        let deadline = std::time::Instant::now() + HANG_GUARD;
        loop {
            let log = self.log();
            if log.matches(text).count() >= times {
                return log;
            }
            assert!(std::time::Instant::now() < deadline, "log never showed {text:?}:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Anything a client can talk through.
pub trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// A child's stdin and stdout as one stream.
struct Pipes(ChildStdout, ChildStdin);

impl Read for Pipes {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Pipes {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.1.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.1.flush()
    }
}

/// A POP3 client speaking raw protocol lines, over TCP, TLS or pipes.
pub struct Client {
    stream: Box<dyn Stream>,
    buf: Vec<u8>,
    /// After TLS: the tls-exporter channel binding (TLS 1.3) and the server's certificate.
    pub exporter: Option<[u8; 32]>,
    pub peer_cert: Option<rustls::pki_types::CertificateDer<'static>>,
    pub child: Option<Child>,
}

impl Client {
    pub fn tcp(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(HANG_GUARD)).unwrap();
        Client { stream: Box::new(s), buf: Vec::new(), exporter: None, peer_cert: None, child: None }
    }

    /// Wraps the TCP connection in TLS with `config` (after STLS, or at once
    /// for port 995) and completes the handshake.
    pub fn start_tls(&mut self, config: std::sync::Arc<rustls::ClientConfig>) -> Result<(), std::io::Error> {
        assert!(self.buf.is_empty(), "plaintext left unread before TLS");
        let plain = std::mem::replace(&mut self.stream, Box::new(std::io::empty()));
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let conn = rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
        let mut tls = rustls::StreamOwned::new(conn, plain);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock)?;
        }
        self.exporter = tls.conn.export_keying_material([0u8; 32], b"EXPORTER-Channel-Binding", None).ok();
        self.peer_cert = tls.conn.peer_certificates().and_then(|c| c.first().cloned());
        self.stream = Box::new(tls);
        Ok(())
    }

    /// `pop3d -i` on pipes, as inetd would run it (stderr captured to check it stays silent).
    pub fn inetd(spool: &Spool, extra: &[&str]) -> Client {
        Client::inetd_args(spool, extra, &[])
    }

    pub fn inetd_args(spool: &Spool, extra: &[&str], args: &[&str]) -> Client {
        Client::inetd_conf(&spool.config(extra), args)
    }

    /// An inetd-mode session on the configuration file `conf` as it is.
    pub fn inetd_conf(conf: &Path, args: &[&str]) -> Client {
        Client::inetd_command(pop3d(), conf, args)
    }

    /// An inetd-mode session whose account may run only `threads` tasks
    /// (RLIMIT_NPROC, set before exec; see `Spool::run_as`).
    pub fn inetd_with_threads(spool: &Spool, extra: &[&str], threads: u64, args: &[&str]) -> Client {
        Client::inetd_command(limited(pop3d(), threads), &spool.config(extra), args)
    }

    fn inetd_command(mut cmd: Command, conf: &Path, args: &[&str]) -> Client {
        let mut child = cmd
            .args(["-i", "-f", conf.to_str().unwrap()])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin: ChildStdin = child.stdin.take().unwrap();
        let stdout: ChildStdout = child.stdout.take().unwrap();
        Client {
            stream: Box::new(Pipes(stdout, stdin)),
            buf: Vec::new(),
            exporter: None,
            peer_cert: None,
            child: Some(child),
        }
    }

    /// Reads more into the buffer; false at EOF. Over TLS, an EOF without
    /// close_notify is an error (rustls reports it), so a clean EOF proves
    /// the server sent close_notify.
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).expect("read from pop3d (hang guard; TLS: close_notify)");
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    /// Reads to EOF, returning the error instead of failing the test.
    pub fn try_rest(&mut self) -> std::io::Result<Vec<u8>> {
        let mut out = std::mem::take(&mut self.buf);
        self.stream.read_to_end(&mut out)?;
        Ok(out)
    }

    /// The next line with its LF, or what is left at EOF.
    fn raw_line(&mut self) -> Vec<u8> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                return self.buf.drain(..=i).collect();
            }
            if !self.fill() {
                return std::mem::take(&mut self.buf);
            }
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
        self.stream.flush().unwrap();
    }

    /// One reply line without CRLF (empty at EOF).
    pub fn line(&mut self) -> String {
        let buf = self.raw_line();
        assert!(buf.is_empty() || buf.ends_with(b"\r\n"), "line not ended by CRLF: {buf:?}");
        String::from_utf8_lossy(&buf).trim_end_matches("\r\n").to_string()
    }

    /// Sends a command line and returns the first reply line.
    pub fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.line()
    }

    /// The body of a multi-line reply, un-stuffed, up to the `.` line.
    pub fn multi(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let buf = self.raw_line();
            assert!(buf.ends_with(b"\r\n"), "multi-line reply cut short: {:?}", String::from_utf8_lossy(&out));
            if buf == b".\r\n" {
                return out;
            }
            let line = if buf.starts_with(b".") { &buf[1..] } else { &buf[..] };
            out.extend_from_slice(line);
        }
    }

    /// Reads until the server closes; returns what came.
    pub fn rest(&mut self) -> Vec<u8> {
        while self.fill() {}
        std::mem::take(&mut self.buf)
    }

    /// Reads the greeting, then USER/PASS; returns PASS's answer.
    pub fn login(&mut self, user: &str, pass: &str) -> String {
        assert!(self.line().starts_with("+OK"), "greeting");
        self.user_pass(user, pass)
    }

    /// USER/PASS; returns PASS's answer.
    pub fn user_pass(&mut self, user: &str, pass: &str) -> String {
        assert!(self.cmd(&format!("USER {user}")).starts_with("+OK"));
        self.cmd(&format!("PASS {pass}"))
    }
}

/// An mbox message with a fixed From_ line.
pub fn from_line(sender: &str) -> String {
    format!("From {sender} Mon Nov 23 09:00:00 2026\n")
}
