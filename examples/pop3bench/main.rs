//! pop3bench: the POP3 load client (plaintext or TLS) and mbox generator of bench/run.sh (`make bench`).

// Modes (all traffic goes to the address given, which bench/run.sh keeps on 127.0.0.1):
//   pop3bench gen    --out FILE --messages N --bytes B [--seed S]
//       Write a deterministic mbox (mboxrd quoting) of N messages totalling about B bytes.
//   pop3bench logins --addr A --prefix P --users N --pass PW --conc C --secs S --max M [--tls CERT]
//                    [--from IP] [--watch PID]
//       C client threads loop login(USER/PASS)+STAT+QUIT, thread i using account P<i mod N>,
//       for at most S seconds and at most M sessions in all. Prints sessions/s and the failed
//       sessions; with --from all connect from address IP; with --watch the peak thread count
//       and RSS of process PID meanwhile (sampled from /proc every 5 ms).
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
//   pop3bench dele   --addr A --user U --pass PW --which first|tenth|all
//       Log in, DELE message 1, every tenth message (1, 11, ...) or all, then time QUIT (to its
//       +OK and to the close); a second session checks how many messages are left.
//   pop3bench gen-maildir --out DIR --messages N --bytes B [--seed S]
//       The messages of gen as a Maildir (files in DIR/cur, delivery-style names).
//   pop3bench trivial-send --file F [--passes K] [--tls CERT --key KEY] [--stdout 1]
//       The RETR limit: F sent K times as it is over 127.0.0.1 (or to stdout), with the CPU
//       of the sending thread (limit.rs).
//   pop3bench household|spacing|guess|connflood ...   (busy.rs: issue 18's NAT household, wrong
//       passwords by each mechanism, distributed guessing, a connection flood for the log volume)
//   pop3bench flood|tlsdrip ...   (flood.rs: real clients under silent, dripping or TLS-stalled floods;
//       a dripped ClientHello)
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
//
// Files: main.rs (this: arguments, mode dispatch), conn.rs (one POP3 connection, plaintext or
// TLS), net.rs (connections from a chosen source address), load.rs (the load modes logins, retr,
// stat, idle, dele), busy.rs and flood.rs (issue 18's modes), mailgen.rs (gen, gen-maildir),
// limit.rs (trivial-send), memory.rs (mem, Watch), rng.rs (the deterministic random generator of
// gen), scram.rs (the SCRAM-SHA-256 client the tests use too).

mod busy;
mod conn;
mod flood;
mod limit;
mod load;
mod mailgen;
mod memory;
mod net;
// The generator the unit tests use too: one implementation of the test data stream.
#[path = "../../src/testkit/rng.rs"]
mod rng;
// The SCRAM client of tests/sasl.rs (its server-signature check is the tests' only).
#[allow(dead_code)]
#[path = "../../tests/common/scram.rs"]
mod scram;

use std::collections::HashMap;
use std::env;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process;
use std::sync::Arc;

use rustls::ClientConfig;

use busy::{connflood, guess, household, spacing};
use conn::tls_config;
use flood::{flood, tlsdrip};
use limit::trivial_send;
use load::{dele, idle, logins, retr, stat};
use mailgen::{gen, gen_maildir};
use memory::mem;

pub struct Args(HashMap<String, String>);

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
    pub fn s(&self, k: &str) -> String {
        match self.0.get(k) {
            Some(v) => v.clone(),
            None => die(&format!("missing --{}", k)),
        }
    }
    pub fn n(&self, k: &str, default: u64) -> u64 {
        match self.0.get(k) {
            Some(v) => v.parse().unwrap_or_else(|_| die(&format!("bad --{} {}", k, v))),
            None => default,
        }
    }
    pub fn addr(&self) -> SocketAddr {
        let a = self.s("addr");
        a.to_socket_addrs().ok().and_then(|mut it| it.next()).unwrap_or_else(|| die(&format!("bad --addr {}", a)))
    }
    /// The value of an optional `--k`.
    pub fn opt(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(|v| v.as_str())
    }
    /// The TLS client for `--tls CERT`, or None for plaintext.
    pub fn tls(&self) -> Option<Arc<ClientConfig>> {
        self.opt("tls").map(|cert| tls_config(cert).unwrap_or_else(|e| die(&format!("--tls {}: {}", cert, e))))
    }
}

pub fn die(msg: &str) -> ! {
    eprintln!("pop3bench: {}", msg);
    process::exit(2)
}

fn main() {
    let argv: Vec<String> = env::args().collect();
    if argv.len() < 2 {
        die("usage: pop3bench gen|gen-maildir|logins|retr|stat|idle|dele|trivial-send|mem|household|spacing|guess|connflood|flood|tlsdrip --key value ...");
    }
    let args = Args::parse(&argv[2..]);
    match argv[1].as_str() {
        "gen" => gen(&args),
        "logins" => logins(&args),
        "retr" => retr(&args),
        "stat" => stat(&args),
        "idle" => idle(&args),
        "dele" => dele(&args),
        "gen-maildir" => gen_maildir(&args),
        "trivial-send" => trivial_send(&args),
        "mem" => mem(&args),
        "household" => household(&args),
        "spacing" => spacing(&args),
        "guess" => guess(&args),
        "connflood" => connflood(&args),
        "flood" => flood(&args),
        "tlsdrip" => tlsdrip(&args),
        m => die(&format!("unknown mode {}", m)),
    }
}
