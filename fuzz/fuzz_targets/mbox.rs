//! Fuzz target: the mbox index scan and RETR/TOP streaming on arbitrary mailbox bytes, checked against a simple model: LIST's size is what RETR sends, and unstuffing RETR gives the message back.
#![no_main]

use std::path::PathBuf;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use pop3d::lock::LockMethod;
use pop3d::maildrop::{FromQuoting, Limits, Location, Maildrop, MboxSettings, Part, StatePaths};

/// tmpfs where there is one: the target writes files at every run.
fn scratch() -> PathBuf {
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    }
}

/// A directory of this process's for the mailbox and its state files.
fn dir() -> PathBuf {
    let d = scratch().join(format!("pop3d-fuzz-mbox-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The model: the message's stored bytes as POP3 sends them before
/// byte-stuffing. Lines end at LF, CRLF or a lone CR and go out with CRLF
/// (a last line without an end gets one); a line that starts after LF or
/// CRLF (or starts the message after its From line) and reads `>From ` or
/// `>>From ` is unquoted by one `>` (mboxrd) or only as `>From ` (mboxo).
fn model(raw: &[u8], first_unquotable: bool, quoting: FromQuoting) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = raw;
    let mut unquotable = first_unquotable;
    while !rest.is_empty() {
        let end = rest.iter().position(|&b| b == b'\n' || b == b'\r').unwrap_or(rest.len());
        let mut line = &rest[..end];
        let (skip, after_lf) = match rest.get(end..end + 2) {
            Some(b"\r\n") => (2, true),
            _ if end < rest.len() => (1, rest[end] == b'\n'),
            _ => (0, false),
        };
        if unquotable {
            let gts = line.iter().take_while(|&&b| b == b'>').count();
            let quoted = match quoting {
                FromQuoting::Mboxrd => gts > 0 && line[gts..].starts_with(b"From "),
                FromQuoting::Mboxo => line.starts_with(b">From "),
                FromQuoting::Verbatim => false,
            };
            if quoted {
                line = &line[1..];
            }
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
        rest = &rest[end + skip..];
        unquotable = after_lf;
    }
    out
}

/// Byte-stuffing undone: one leading `.` removed from each line.
fn unstuff(wire: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in wire.split_inclusive(|&b| b == b'\n') {
        out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else { return };
    // Below the 64 KiB block, where long lines go in pieces (the unit tests cover those).
    if data.len() > 32 * 1024 {
        return;
    }
    let quoting = if mode & 1 == 0 { FromQuoting::Mboxrd } else { FromQuoting::Mboxo };
    let d = dir();
    let path = d.join("mbox");
    std::fs::write(&path, data).unwrap();
    // No index cache from an earlier run: every run scans.
    let _ = std::fs::remove_file(d.join("index"));
    let dotlocks = pop3d::lock::Records { dir: d.join("dotlocks"), name: "u".into() };
    let state = StatePaths { journal: d.join("journal"), copies: d.join("uids"), dotlocks, index: d.join("index") };
    let settings = MboxSettings { quoting, locking: vec![LockMethod::Fcntl], lock_timeout: Duration::ZERO };
    let limits = Limits { max_messages: 10_000, max_size: u64::MAX };
    let Ok(drop) = Maildrop::open_below(&d, Location::Mbox(path), state, &limits, &settings) else { return };
    let mut ids = std::collections::HashSet::new();
    for (n, msg) in drop.live() {
        assert!(ids.insert(msg.uid.to_string()), "UIDL {} twice", msg.uid);
        let mut wire = Vec::new();
        let sent = drop.send(n, Part::Whole, &mut wire).unwrap().unwrap();
        assert_eq!(sent, msg.size, "RETR sends what LIST says");
        let unstuffed = unstuff(&wire);
        assert_eq!(unstuffed.len() as u64, msg.size, "LIST counts the unstuffed octets");
        let raw = &data[msg.content as usize..msg.end as usize];
        let first = msg.content == 0 || data[msg.content as usize - 1] == b'\n';
        assert_eq!(unstuffed, model(raw, first, quoting), "message {n}");
        let mut top = Vec::new();
        drop.send(n, Part::Top(1), &mut top).unwrap().unwrap();
        assert!(wire.starts_with(&top), "TOP is a prefix of RETR");
    }
});
