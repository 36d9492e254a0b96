//! Tests of the header sink and its cache: what TOP n 0 says, read once; the cache says what reading says.

use std::io::{Seek, SeekFrom};
use std::time::Duration;

use super::*;
use crate::maildrop::message::Uid;
use crate::maildrop::{FromQuoting, Limits, Location, Maildrop, MboxSettings, StatePaths, Workarounds};
use crate::testkit::{Rng, TempDir};

fn scan(chunks: &[&[u8]]) -> Header {
    let mut s = HeaderScan::default();
    for c in chunks {
        s.write_all(c).unwrap();
    }
    s.finish()
}

#[test]
fn the_end_of_the_header_is_found_across_chunks() {
    assert!(!scan(&[b"Subject: a\r\n\r\n"]).no_end);
    assert!(!scan(&[b"Subject: a\r", b"\n\r", b"\n"]).no_end);
    assert!(!scan(&[b"\r\n"]).no_end, "no header at all");
    assert!(scan(&[b"Subject: a\r\nX: b\r\n"]).no_end);
    assert!(scan(&[b"Subject: a\r\n", b"body without a blank line\r\n"]).no_end);
    assert!(scan(&[b"Subject: a\r\nX\r\nY: b\r\n"]).no_end, "a one-character line is no blank line");
    assert!(scan(&[b"Subject: a\r\n\r\r\n"]).no_end, "nor is a lone CR");
}

#[test]
fn the_first_x_uidl_of_the_header_only() {
    let h = scan(&[b"Subject: a\r\nx-uidl:  abc123 \r\nX-UIDL: second\r\n\r\n"]);
    assert_eq!(h, Header { x_uidl: Some("abc123".into()), no_end: false });
    let long = [b"Subject: ".to_vec(), vec![b'a'; 5000], b"X-UIDL: hidden\r\n".to_vec()].concat();
    let chunks: Vec<&[u8]> = long.chunks(700).collect();
    assert_eq!(scan(&chunks).x_uidl, None, "an X-UIDL inside a long line is no header");
    assert_eq!(scan(&[b"X-UIDL: a b\r\n"]).x_uidl, None, "not a usable id");
    assert!(valid_id(b"0123456789abcdef") && !valid_id(b"") && !valid_id(&[b'a'; 71]) && !valid_id(b"a b"));
}

fn message(n: u8, size: u64) -> Message {
    Message { start: 0, content: 0, end: 0, size, uid: Uid { digest: [n; 16], copy: u32::from(n) }, head: 0 }
}

#[test]
fn a_header_is_read_once() {
    let dir = crate::testkit::TempDir::new("headers");
    let path = dir.join("ann.headers");
    let said = |i: usize| Header { x_uidl: i.is_multiple_of(2).then(|| format!("id{i}")), no_end: i == 1 };
    let reads = || READS.with(|r| r.get());
    let mut messages: Vec<Message> = (0..3).map(|n| message(n, 100)).collect();
    let first = headers(&messages, &path, |i| Some(said(i)));
    assert_eq!(first, (0..3).map(said).collect::<Vec<_>>());
    let before = reads();
    assert_eq!(headers(&messages, &path, |_| None), first, "all from the cache");
    assert_eq!(reads(), before);
    // One deleted, one new, one whose size changed: the last two are read.
    messages.remove(0);
    messages[1].size = 99;
    messages.push(message(7, 100));
    let third = headers(&messages, &path, |i| Some(Header { x_uidl: Some(format!("new{i}")), no_end: false }));
    assert_eq!(third[0], said(1));
    assert_eq!(third[1..], [1, 2].map(|i| Header { x_uidl: Some(format!("new{i}")), no_end: false }));
    assert_eq!(reads(), before + 2);
    // A message that cannot be read is read again next time.
    messages.push(message(8, 1));
    assert_eq!(headers(&messages, &path, |_| None)[3], Header::default());
    assert_eq!(headers(&messages, &path, |_| Some(said(0)))[3], said(0));
    assert_eq!(reads(), before + 4);
    // A torn or foreign cache is not used.
    let whole = fs::read(&path).unwrap();
    for bad in [&whole[..whole.len() - 1], b"POP3D-HEADERS-1\n\0\0\0\0\0\0\0\0"] {
        fs::write(&path, bad).unwrap();
        assert_eq!(load(&path, 10).unwrap(), []);
    }
}

/// What a session with both header options on serves: each message's
/// number, size (the end-of-header line counted) and UIDL.
fn served(maildrop: &mut Maildrop) -> Vec<(u32, u64, String)> {
    maildrop.set_workarounds(Workarounds { outlook_no_nuls: false, oe_ns_eoh: true });
    maildrop.adopt_x_uidl();
    maildrop.live().map(|(n, m)| (n, m.size, maildrop.uidl(n).unwrap())).collect()
}

/// A message of random header and body lines: X-UIDLs unique or shared,
/// with or without the blank line that ends its header.
fn random_message(rng: &mut Rng) -> Vec<u8> {
    let pieces: [&[u8]; 11] = [
        b"Subject: s\n",
        b"X-UIDL: not an id\n",
        b"X\n",
        b"lone\rcr\n",
        b"crlf\r\n",
        b"\r\n",
        b"\n",
        b"\r",
        b"body line\n",
        b">From quoted\n",
        b"x-uidl:",
    ];
    let mut out = b"From sender@example Mon Nov 23 09:00:00 2026\n".to_vec();
    for _ in 0..rng.below(8) {
        if rng.below(4) == 0 {
            out.extend_from_slice(format!("X-UIDL: id{}\r\n", rng.below(40)).as_bytes());
        }
        out.extend_from_slice(rng.pick(&pieces));
    }
    out.extend_from_slice(b"\n");
    out
}

/// The cached headers say what reading every header says, whatever happens
/// to the mbox between logins: appends, UPDATEs, same-length edits in
/// place, replacements, a cut, and a damaged cache.
#[test]
fn the_cache_says_what_reading_says() {
    let dir = TempDir::new("headercache");
    let path = dir.join("mbox");
    let limits = Limits { max_messages: 1000, max_size: u64::MAX };
    let settings = MboxSettings { quoting: FromQuoting::Mboxrd, locking: Vec::new(), lock_timeout: Duration::ZERO };
    let open = |index: &str| {
        let dotlocks = crate::lock::Records { dir: dir.join("dotlocks"), name: "u".into() };
        let state =
            StatePaths { journal: dir.join("journal"), copies: dir.join("uids"), dotlocks, index: dir.join(index) };
        Maildrop::open(Location::Mbox(path.clone()), state, &limits, &settings)
    };
    let messages = |rng: &mut Rng| (0..=rng.below(5)).flat_map(|_| random_message(rng)).collect::<Vec<u8>>();
    let mut rng = Rng(0x4ea0_e125);
    let (mut compared, mut read_cached, mut read_plain) = (0, 0, 0);
    for round in 0..30 {
        // A new mailbox in the old file: the index cache goes (it cannot tell
        // a rewrite of the same length followed by an append: DESIGN.md),
        // the header cache stays.
        fs::write(&path, messages(&mut rng)).unwrap();
        let _ = fs::remove_file(dir.join("uids"));
        let _ = fs::remove_file(dir.join("cached"));
        for step in 0..10 {
            let what = rng.below(7);
            match what {
                0 => fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(&messages(&mut rng)).unwrap(),
                1 => {
                    if let Ok(mut maildrop) = open("cached") {
                        (1..=maildrop.len() as u32)
                            .filter(|_| rng.below(3) == 0)
                            .for_each(|n| maildrop.delete(n).then_some(()).unwrap());
                        maildrop.commit().unwrap();
                    }
                }
                2 => {
                    // A same-length edit: one octet of a header or body changed.
                    let mut bytes = fs::read(&path).unwrap();
                    if bytes.len() > 50 {
                        let at = 46 + rng.below(bytes.len() as u64 - 46) as usize;
                        bytes[at] = *rng.pick(&[&b'1', &b'\n', &b'x', &b' ', &b'\r']);
                        let mut file = fs::OpenOptions::new().write(true).open(&path).unwrap();
                        file.seek(SeekFrom::Start(0)).unwrap();
                        file.write_all(&bytes).unwrap();
                    }
                }
                3 => {
                    let len = fs::metadata(&path).unwrap().len() as usize;
                    let mut bytes = messages(&mut rng);
                    bytes.resize(len.max(bytes.len()), b'y');
                    fs::write(dir.join("other"), bytes).unwrap();
                    fs::rename(dir.join("other"), &path).unwrap();
                }
                4 => {
                    let len = fs::metadata(&path).unwrap().len();
                    fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(rng.below(len + 1)).unwrap();
                }
                5 => {
                    if let Ok(mut bytes) = fs::read(dir.join("cached.headers")) {
                        if !bytes.is_empty() {
                            let at = rng.below(bytes.len() as u64) as usize;
                            bytes[at] ^= 1 << rng.below(8);
                            fs::write(dir.join("cached.headers"), bytes).unwrap();
                        }
                    }
                }
                _ => {}
            }
            for stale in ["plain", "plain.headers"] {
                let _ = fs::remove_file(dir.join(stale));
            }
            let context = format!("round {round} step {step} mutation {what}");
            match (open("cached"), open("plain")) {
                (Ok(mut cached), Ok(mut plain)) => {
                    let reads = READS.with(|r| r.get());
                    let from_cache = served(&mut cached);
                    let between = READS.with(|r| r.get());
                    if what == 6 && step > 0 {
                        assert_eq!(between, reads, "{context}: nothing changed, nothing read");
                    }
                    assert_eq!(from_cache, served(&mut plain), "{context}");
                    read_cached += between - reads;
                    read_plain += READS.with(|r| r.get()) - between;
                    compared += 1;
                }
                (Err(_), Err(_)) => {}
                (c, p) => panic!("{context}: {:?} / {:?}", c.err(), p.err()),
            }
        }
    }
    assert!(compared > 200, "only {compared} comparisons");
    assert!(read_cached < read_plain, "{read_cached} headers read with the cache, {read_plain} without");
}

/// A Maildir's headers are read once: its messages never change.
#[test]
fn a_maildir_header_is_read_once() {
    let dir = TempDir::new("headermaildir");
    let root = dir.join("Maildir");
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(root.join(sub)).unwrap();
    }
    fs::write(root.join("cur/1.a.host:2,S"), "Subject: a\nX-UIDL: first\n").unwrap();
    fs::write(root.join("new/2.b.host"), "Subject: b\n\nbody\n").unwrap();
    let limits = Limits { max_messages: 10, max_size: u64::MAX };
    let settings = MboxSettings { quoting: FromQuoting::Mboxrd, locking: Vec::new(), lock_timeout: Duration::ZERO };
    let open = || {
        let dotlocks = crate::lock::Records { dir: dir.join("dotlocks"), name: "u".into() };
        let state = StatePaths { journal: dir.join("j"), copies: dir.join("u"), dotlocks, index: dir.join("u.index") };
        Maildrop::open(Location::Maildir(root.clone()), state, &limits, &settings).unwrap()
    };
    let reads = || READS.with(|r| r.get());
    let before = reads();
    let first = served(&mut open());
    assert_eq!(reads(), before + 2);
    assert_eq!(first[0].2, "first");
    assert_eq!(first[0].1, "Subject: a\r\nX-UIDL: first\r\n\r\n".len() as u64, "the end of header is added");
    assert_eq!(served(&mut open()), first);
    assert_eq!(reads(), before + 2, "nothing read again");
    fs::write(root.join("new/3.c.host"), "Subject: c\n\n").unwrap();
    assert_eq!(served(&mut open()).len(), 3);
    assert_eq!(reads(), before + 3, "only the new message");
}
