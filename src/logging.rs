//! Log setup: syslog (facility mail, over /dev/log), stderr or a file, through the `log` facade; never a secret.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixDatagram;
use std::sync::Mutex;

use log::{Level, LevelFilter, Log, Metadata, Record};
use simplelog::{ConfigBuilder, WriteLogger};

use crate::config::LogTarget;

/// Installs the global logger. Errors are for the caller to report.
pub fn init(target: &LogTarget, level: LevelFilter) -> Result<(), String> {
    let config = ConfigBuilder::new().set_time_format_rfc3339().set_thread_level(LevelFilter::Off).build();
    // One writer type for both targets: the logger and the time
    // formatting under it are built once, not once per target (about
    // 15 KB of the firmware binary).
    let sink: Box<dyn Write + Send> = match target {
        LogTarget::Stderr => Box::new(std::io::stderr()),
        LogTarget::File(path) => {
            // Opened as root, perhaps in a directory others can write: a
            // link there is not followed, a FIFO does not block.
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o640)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(path)
                .map_err(|e| format!("log file {} (links are not followed): {e}", path.display()))?;
            if !file.metadata().is_ok_and(|m| m.is_file()) {
                return Err(format!("log file {} is not a regular file", path.display()));
            }
            Box::new(file)
        }
        LogTarget::Syslog => {
            log::set_max_level(level);
            return log::set_boxed_logger(Box::new(Syslog { socket: Mutex::new(None), level }))
                .map_err(|e| format!("cannot set up logging: {e}"));
        }
    };
    WriteLogger::init(level, config, WholeLines::new(sink)).map_err(|e| format!("cannot set up logging: {e}"))
}

/// Hands the writer under it whole lines, each in one `write` call: the
/// logger writes a record in pieces (time, level, text), and several inetd
/// processes appending to one log file (O_APPEND) would interleave the
/// pieces. A line longer than the kernel takes in one write is the only
/// one that can still be split.
struct WholeLines<W: Write> {
    inner: W,
    line: Vec<u8>,
}

impl<W: Write> WholeLines<W> {
    fn new(inner: W) -> Self {
        WholeLines { inner, line: Vec::new() }
    }
}

impl<W: Write> Write for WholeLines<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(data);
        if let Some(end) = self.line.iter().rposition(|&b| b == b'\n') {
            let result = self.inner.write_all(&self.line[..=end]);
            self.line.drain(..=end);
            result?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.line.is_empty() {
            let result = self.inner.write_all(&self.line);
            self.line.clear();
            result?;
        }
        self.inner.flush()
    }
}

/// Sends RFC 3164 lines to the local syslog daemon; drops lines when there
/// is none (never falls back to stderr, which may be the client's socket).
struct Syslog {
    socket: Mutex<Option<UnixDatagram>>,
    level: LevelFilter,
}

/// syslog facility "mail".
const LOG_MAIL: u8 = 2 << 3;

impl Log for Syslog {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let severity = match record.level() {
            Level::Error => 3,
            Level::Warn => 4,
            Level::Info => 6,
            Level::Debug | Level::Trace => 7,
        };
        let line = format!("<{}>pop3d[{}]: {}", LOG_MAIL | severity, std::process::id(), record.args());
        let Ok(mut socket) = self.socket.lock() else {
            return;
        };
        for _ in 0..2 {
            if socket.is_none() {
                *socket = UnixDatagram::unbound().and_then(|s| s.connect("/dev/log").map(|_| s)).ok();
            }
            match socket.as_ref().map(|s| s.send(line.as_bytes())) {
                Some(Ok(_)) | None => return,
                // syslogd restarted: reconnect once.
                Some(Err(_)) => *socket = None,
            }
        }
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records every write.
    #[derive(Default)]
    struct Writes(Vec<Vec<u8>>);

    impl Write for Writes {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            self.0.push(data.to_vec());
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_line_written_in_pieces_leaves_in_one_write() {
        let mut w = WholeLines::new(Writes::default());
        for piece in ["2026-11-27T10:00:00Z", " [INFO] ", "session end: user=alice", "\n"] {
            w.write_all(piece.as_bytes()).unwrap();
        }
        w.write_all(b"two\nlines\npart").unwrap();
        assert_eq!(w.inner.0, [&b"2026-11-27T10:00:00Z [INFO] session end: user=alice\n"[..], b"two\nlines\n"]);
        w.flush().unwrap();
        assert_eq!(w.inner.0.last().unwrap(), b"part");
    }
}
