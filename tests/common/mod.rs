//! Test harness: runs the real pop3d binary on 127.0.0.1:0 (daemon) or on pipes (inetd mode) against a private spool.
#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
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
        Spool { dir }
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
            for entry in walk(&self.dir) {
                std::os::unix::fs::chown(entry, Some(uid), None).unwrap();
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
    for e in fs::read_dir(dir).unwrap().flatten() {
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

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_pop3d")
}

/// A running daemon; killed when dropped.
pub struct Daemon {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Daemon {
    /// Starts `pop3d -f CONF -l 127.0.0.1:0` and waits for its "listening
    /// on" line.
    pub fn start(spool: &Spool, extra: &[&str]) -> Daemon {
        let conf = spool.config(extra);
        let mut child = Command::new(binary())
            .args(["-f", conf.to_str().unwrap(), "-l", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
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
        let addr = match rx.recv_timeout(HANG_GUARD) {
            Ok(a) => a.parse().unwrap(),
            Err(_) => {
                let _ = child.kill();
                panic!("pop3d did not start: {}", log.lock().unwrap());
            }
        };
        Daemon { child, addr, log }
    }

    pub fn connect(&self) -> Client {
        Client::tcp(self.addr)
    }

    /// Everything pop3d logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits (bounded) until the log contains `text`.
    pub fn wait_log(&self, text: &str) -> String {
        let deadline = std::time::Instant::now() + HANG_GUARD;
        loop {
            let log = self.log();
            if log.contains(text) {
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

/// A POP3 client speaking raw protocol lines.
pub struct Client {
    reader: BufReader<Box<dyn Read + Send>>,
    writer: Box<dyn Write + Send>,
    pub child: Option<Child>,
}

impl Client {
    pub fn tcp(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(HANG_GUARD)).unwrap();
        let r = s.try_clone().unwrap();
        Client { reader: BufReader::new(Box::new(r)), writer: Box::new(s), child: None }
    }

    /// `pop3d -i` on pipes, as inetd would run it (stderr captured to check it stays silent).
    pub fn inetd(spool: &Spool, extra: &[&str]) -> Client {
        let conf = spool.config(extra);
        let mut child = Command::new(binary())
            .args(["-i", "-f", conf.to_str().unwrap()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin: ChildStdin = child.stdin.take().unwrap();
        let stdout: ChildStdout = child.stdout.take().unwrap();
        Client { reader: BufReader::new(Box::new(stdout)), writer: Box::new(stdin), child: Some(child) }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
        self.writer.flush().unwrap();
    }

    /// One reply line without CRLF (empty at EOF).
    pub fn line(&mut self) -> String {
        let mut buf = Vec::new();
        self.reader.read_until(b'\n', &mut buf).expect("read from pop3d (hang guard)");
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
            let mut buf = Vec::new();
            self.reader.read_until(b'\n', &mut buf).expect("read from pop3d (hang guard)");
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
        let mut out = Vec::new();
        self.reader.read_to_end(&mut out).expect("server should close (hang guard)");
        out
    }

    pub fn login(&mut self, user: &str, pass: &str) -> String {
        assert!(self.line().starts_with("+OK"), "greeting");
        assert!(self.cmd(&format!("USER {user}")).starts_with("+OK"));
        self.cmd(&format!("PASS {pass}"))
    }
}

/// An mbox message with a fixed From_ line.
pub fn from_line(sender: &str) -> String {
    format!("From {sender} Mon Nov 23 09:00:00 2026\n")
}
