//! The PROXY protocol (v1 and v2) against the real daemon: the client address from a trusted proxy's header is the session's (plaintext policy, log); malformed headers and headers from untrusted peers close the connection with a log line.

mod common;

use common::pki::Pki;
use common::{Client, Daemon, Spool};

fn v2(cmd: u8, family: u8, body: &[u8]) -> Vec<u8> {
    [&b"\r\n\r\n\0\r\nQUIT\n"[..], &[cmd, family], &(body.len() as u16).to_be_bytes(), body].concat()
}

#[test]
fn a_trusted_proxy_gives_the_client_address() {
    let spool = Spool::new();
    let d = Daemon::start(&spool, &["proxy_trusted = 10.9.9.9, 127.0.0.0/8"]);
    // v1: the client is not on loopback, so plaintext logins are refused.
    let mut c = d.connect();
    c.send(b"PROXY TCP4 192.0.2.7 127.0.0.1 5555 110\r\n");
    assert!(c.line().starts_with("+OK"));
    assert!(c.cmd("USER alice").starts_with("-ERR [AUTH] plaintext login is not allowed"));
    assert!(c.cmd("QUIT").starts_with("+OK"));
    let log = d.wait_log("peer=192.0.2.7:5555 (via proxy 127.0.0.1:");
    assert!(log.contains("end=Quit"), "{log}");
    // v2, IPv6 client, commands right behind the header.
    let mut body = vec![0u8; 36];
    body[..2].copy_from_slice(&[0x20, 0x01]);
    body[15] = 7;
    body[32..34].copy_from_slice(&4321u16.to_be_bytes());
    let mut c = d.connect();
    c.send(&[v2(0x21, 0x21, &body), b"CAPA\r\n".to_vec()].concat());
    assert!(c.line().starts_with("+OK"));
    assert_eq!(c.line(), "+OK capability list follows");
    assert!(!String::from_utf8(c.multi()).unwrap().lines().any(|l| l == "USER"), "no plaintext for a remote client");
    assert!(c.cmd("QUIT").starts_with("+OK"));
    d.wait_log("peer=[2001::7]:4321 (via proxy");
    // v2 LOCAL (a health check): the proxy's own address, on loopback here.
    let mut c = d.connect();
    c.send(&v2(0x20, 0x00, &[]));
    assert!(c.login("alice", "secret").starts_with("+OK"));
    assert!(c.cmd("QUIT").starts_with("+OK"));
}

#[test]
fn malformed_and_untrusted_headers_close_the_connection() {
    let spool = Spool::new();
    let d = Daemon::start(&spool, &["proxy_trusted = 127.0.0.1"]);
    for bad in [&b"PROXY TCP4 192.0.2.7 nowhere 1 2\r\n"[..], b"CAPA\r\n", &v2(0x21, 0x11, &[1, 2, 3])] {
        let mut c = d.connect();
        c.send(bad);
        assert!(c.rest().is_empty(), "no greeting for {bad:?}");
    }
    d.wait_log_times("end=BadProxyHeader", 3);
    assert!(d.log().contains("malformed PROXY header"));
    // From an address that is not trusted, a header is refused after the greeting.
    let spool = Spool::new();
    let d = Daemon::start(&spool, &["proxy_trusted = 10.0.0.0/8"]);
    let mut c = d.connect();
    assert!(c.line().starts_with("+OK"));
    c.send(b"PROXY TCP4 192.0.2.7 127.0.0.1 5555 110\r\n");
    assert!(c.rest().is_empty());
    let log = d.wait_log("end=BadProxyHeader");
    assert!(log.contains("PROXY header from 127.0.0.1:") && log.contains("not in proxy_trusted"), "{log}");
    let mut c = d.connect();
    assert!(c.line().starts_with("+OK"));
    c.send(&v2(0x21, 0x11, &[0; 12]));
    assert!(c.rest().is_empty());
    d.wait_log_times("end=BadProxyHeader", 2);
}

/// A trusted proxy carries many clients: max_sessions_per_ip does not
/// count its connections (max_sessions still does).
#[test]
fn a_trusted_proxy_is_not_held_to_the_per_address_limit() {
    let spool = Spool::new();
    let extra = ["proxy_trusted = 127.0.0.1", "max_sessions_per_ip = 1", "max_sessions = 3"];
    // The clients are not on loopback: plaintext logins allowed on this listener.
    let d = Daemon::start_on(&spool, &extra, &["127.0.0.1:0 plaintext=yes"]);
    let mut open = Vec::new();
    for (i, user) in ["alice", "bob", "carol"].iter().enumerate() {
        let mut c = d.connect();
        c.send(format!("PROXY TCP4 192.0.2.{i} 127.0.0.1 1000 110\r\n").as_bytes());
        let password = if *user == "carol" { "tanstaaf" } else { "secret" };
        assert!(c.login(user, password).starts_with("+OK"), "session {i}");
        open.push(c);
    }
    // Every place is taken by a logged-in session (the pre-login budget
    // would close a waiting one to admit a new connection, never these).
    let mut c = d.connect();
    assert_eq!(c.line(), "-ERR [SYS/TEMP] too many sessions, try again later");
}

/// On an implicit-TLS port the header comes before the handshake, and not
/// a byte of the ClientHello behind it is taken as part of it.
#[test]
fn the_header_before_an_implicit_tls_handshake() {
    let spool = Spool::new();
    let pki = Pki::new(&spool.dir);
    let mut lines = pki.server_lines();
    lines.push("proxy_trusted = 127.0.0.1".into());
    spool.give_to_server();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let d = Daemon::start_on(&spool, &lines, &["127.0.0.1:0 tls"]);
    for header in [
        b"PROXY TCP4 203.0.113.5 127.0.0.1 7777 995\r\n".to_vec(),
        v2(0x21, 0x11, &[203, 0, 113, 6, 127, 0, 0, 1, 0x1e, 0x61, 3, 0xe3]),
    ] {
        let mut c = Client::tcp(d.tls_addr.unwrap());
        c.send(&header);
        c.start_tls(pki.client_config(&[b"pop3"], None)).unwrap();
        assert!(c.line().starts_with("+OK POP3 server ready"));
        assert!(c.cmd("QUIT").starts_with("+OK"));
    }
    let log = d.wait_log("peer=203.0.113.6:7777 (via proxy");
    assert!(log.contains("peer=203.0.113.5:7777 (via proxy") && log.contains("tls=TLSv1_3"), "{log}");
}

/// Behind a trusted proxy, `max_sessions_per_ip` counts the client each
/// PROXY header names: a second logged-in session for one client is
/// refused, another client is not.
#[test]
fn behind_a_proxy_the_per_address_limit_counts_each_client() {
    let spool = Spool::new();
    let extra = ["proxy_trusted = 127.0.0.1", "max_sessions_per_ip = 1"];
    let d = Daemon::start_on(&spool, &extra, &["127.0.0.1:0 plaintext=yes"]);
    let mut first = d.connect();
    first.send(b"PROXY TCP4 192.0.2.7 127.0.0.1 1000 110\r\n");
    assert!(first.login("alice", "secret").starts_with("+OK"));
    let mut second = d.connect();
    second.send(b"PROXY TCP4 192.0.2.7 127.0.0.1 1001 110\r\n");
    assert_eq!(second.line(), "-ERR [SYS/TEMP] too many sessions, try again later");
    let mut other = d.connect();
    other.send(b"PROXY TCP4 192.0.2.8 127.0.0.1 1002 110\r\n");
    assert!(other.login("bob", "secret").starts_with("+OK"));
    assert!(d.wait_log("too many sessions from 192.0.2.7").contains("via 127.0.0.1"));
}

/// The per-address log budget behind a trusted proxy belongs to each
/// client, not to the proxy: 30 clients that never log in all get their
/// session line (one address gets 10 at once).
#[test]
fn behind_a_proxy_each_client_has_its_own_log_budget() {
    let spool = Spool::new();
    let d = Daemon::start(&spool, &["proxy_trusted = 127.0.0.1"]);
    for i in 0..30 {
        let mut c = d.connect();
        c.send(format!("PROXY TCP4 198.51.100.{i} 127.0.0.1 1000 110\r\n").as_bytes());
        assert!(c.line().starts_with("+OK POP3"));
        assert!(c.cmd("QUIT").starts_with("+OK"));
    }
    let log = d.wait_log_times("session end: user=-", 30);
    assert_eq!(log.matches("session end: user=-").count(), 30, "{log}");
}
