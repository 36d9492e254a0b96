//! The gen and gen-maildir modes: a deterministic mbox or Maildir of realistic messages (text and base64 bodies cut from pools).

use std::fs::File;
use std::io::{BufWriter, Write};

use crate::rng::Rng;
use crate::{die, Args};

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

/// Lines (LF-terminated) to cut message bodies from, and the offset where each starts.
struct Pool {
    data: Vec<u8>,
    starts: Vec<usize>,
}

impl Pool {
    /// `line` appended again and again (one line each time) until there are `bytes`.
    fn new(bytes: usize, mut line: impl FnMut(&mut Vec<u8>)) -> Pool {
        let mut data = Vec::with_capacity(bytes + 200);
        let mut starts = Vec::new();
        while data.len() < bytes {
            starts.push(data.len());
            line(&mut data);
        }
        Pool { data, starts }
    }

    /// Appends whole lines from the pool starting at a random line until `n` bytes are copied.
    fn slice_into(&self, out: &mut Vec<u8>, rng: &mut Rng, n: usize) {
        let (data, starts) = (&self.data, &self.starts);
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
}

/// One line of the text pool: words, quoted replies, paragraph breaks, a few CRLF lines and
/// lines that need dot-stuffing or mbox quoting.
fn text_line(rng: &mut Rng, v: &mut Vec<u8>) {
    let kind = rng.below(100);
    if kind < 4 {
        v.push(b'\n'); // paragraph break
        return;
    }
    if kind < 6 {
        // lines that need dot-stuffing or mbox quoting
        let special: &[&str] =
            &[".", "..", ".hidden line starting with a dot", ">From the archive", "> quoted reply text"];
        v.extend_from_slice(rng.pick(special).as_bytes());
        v.push(b'\n');
        return;
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

/// One line of the base64 pool: 76 random base64 characters.
fn b64_line(rng: &mut Rng, v: &mut Vec<u8>) {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for _ in 0..76 {
        v.push(A[rng.below(64) as usize]);
    }
    v.push(b'\n');
}

pub fn gen(a: &Args) {
    let out = a.s("out");
    let f = File::create(&out).unwrap_or_else(|e| die(&format!("{}: {}", out, e)));
    let mut w = BufWriter::with_capacity(1 << 20, f);
    let (n, written) = messages(a, |_, _, m| {
        if w.write_all(m).is_err() {
            die("write failed");
        }
    });
    if w.flush().is_err() {
        die("write failed");
    }
    println!("RESULT messages={} bytes={}", n, written);
}

/// A Maildir of the same messages (without the mbox `From ` line and the blank line after
/// each), in cur/ as a mail reader leaves them, with delivery-style names
/// `TIME.MmicrosPpid.host:2,S` and no `,S=` size: every file has to be read for its size.
pub fn gen_maildir(a: &Args) {
    let out = a.s("out");
    for d in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(format!("{}/{}", out, d)).unwrap_or_else(|e| die(&format!("{}: {}", out, e)));
    }
    let (n, _) = messages(a, |i, t, m| {
        let body = m.iter().position(|&b| b == b'\n').map_or(m, |p| &m[p + 1..]);
        let body = body.strip_suffix(b"\n").unwrap_or(body);
        let name = format!("{}/cur/{}.M{}P{}.bench.example:2,S", out, t, (i * 7919) % 1_000_000, 1000 + i);
        if std::fs::write(&name, body).is_err() {
            die(&format!("{}: write failed", name));
        }
    });
    println!("RESULT messages={}", n);
}

/// Generates `--messages` messages of about `--bytes` in all from `--seed`, each (its index,
/// delivery time, the message as an mbox entry: `From ` line to blank line) handed to `put`;
/// the count and the octets generated.
fn messages(a: &Args, mut put: impl FnMut(u64, i64, &[u8])) -> (u64, u64) {
    let n = a.n("messages", 2000).max(1);
    let total = a.n("bytes", 100_000_000);
    let mut rng = Rng(a.n("seed", 1));
    let text = Pool::new(8 << 20, |v| text_line(&mut rng, v));
    let b64 = Pool::new(4 << 20, |v| b64_line(&mut rng, v));
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
            text.slice_into(&mut m, &mut rng, txt);
            let _ =
                write!(
                m,
                "\n--{}\nContent-Type: application/pdf; name=\"report-{}.pdf\"\nContent-Transfer-Encoding: base64\n\
                 Content-Disposition: attachment; filename=\"report-{}.pdf\"\n\n",
                boundary, i + 1, i + 1
            );
            b64.slice_into(&mut m, &mut rng, body - txt.min(body));
            let _ = write!(m, "\n--{}--\n", boundary);
        } else {
            m.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n");
            text.slice_into(&mut m, &mut rng, body);
        }
        if m.last() != Some(&b'\n') {
            m.push(b'\n');
        }
        m.push(b'\n'); // blank line before the next separator
        put(i, t, &m);
        written += m.len() as u64;
    }
    (n, written)
}
