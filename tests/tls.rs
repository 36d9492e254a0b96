//! TLS against the real daemon and inetd mode: STLS, implicit TLS, the injection test, plaintext policy, ALPN, close_notify, reload.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::pki::Pki;
use common::{from_line, Client, Daemon, Spool};

fn setup(extra: &[&str]) -> (Spool, Pki, Vec<String>) {
    let spool = Spool::new();
    spool.write_mbox("alice", format!("{}Subject: x\n\nbody\n", from_line("a@x")).as_bytes());
    let pki = Pki::new(&spool.dir);
    let mut lines = pki.server_lines();
    lines.extend(extra.iter().map(|s| s.to_string()));
    spool.give_to_server();
    (spool, pki, lines)
}

fn refs(lines: &[String]) -> Vec<&str> {
    lines.iter().map(String::as_str).collect()
}

fn capa(c: &mut Client) -> Vec<String> {
    assert_eq!(c.cmd("CAPA"), "+OK capability list follows");
    String::from_utf8(c.multi()).unwrap().lines().map(str::to_string).collect()
}

#[test]
fn stls_upgrades_and_capa_follows_the_state() {
    let (spool, pki, lines) = setup(&["plaintext_auth = no"]);
    let d = Daemon::start(&spool, &refs(&lines));
    let mut c = d.connect();
    assert!(c.line().starts_with("+OK"));
    let before = capa(&mut c);
    assert!(before.contains(&"STLS".into()), "{before:?}");
    assert!(!before.contains(&"USER".into()), "USER is hidden while refused: {before:?}");
    assert!(!before.iter().any(|l| l.starts_with("SASL")), "no SCRAM keys, no PLAIN yet: {before:?}");
    assert_eq!(c.cmd("USER alice"), "-ERR [AUTH] plaintext login is not allowed without TLS: use STLS or port 995");
    // An unoffered mechanism is no credentials failure (issue 13): no [AUTH].
    assert_eq!(
        c.cmd("AUTH PLAIN AGFsaWNlAHNlY3JldA=="),
        "-ERR mechanism not available without TLS: use STLS or port 995"
    );
    assert_eq!(c.cmd("STLS"), "+OK begin TLS negotiation");
    c.start_tls(pki.client_config(&[b"pop3"], None)).unwrap();
    let after = capa(&mut c);
    assert!(!after.contains(&"STLS".into()), "{after:?}");
    assert!(after.contains(&"USER".into()), "{after:?}");
    assert!(after.contains(&"SASL PLAIN LOGIN".into()), "{after:?}");
    assert!(c.cmd("STLS").starts_with("-ERR"), "STLS twice");
    assert!(c.cmd("USER alice").starts_with("+OK"));
    assert!(c.cmd("PASS secret").starts_with("+OK maildrop has 1"));
    assert!(c.cmd("RETR 1").starts_with("+OK"));
    assert_eq!(c.multi(), b"Subject: x\r\n\r\nbody\r\n");
    assert!(c.cmd("QUIT").starts_with("+OK"));
    // A clean EOF through rustls means the server sent close_notify.
    assert!(c.try_rest().unwrap().is_empty());
    let log = d.wait_log("session end: user=alice");
    assert!(log.contains("tls=TLSv1_3/"), "{log}");
}

#[test]
fn commands_pipelined_behind_stls_are_never_executed() {
    let (spool, pki, lines) = setup(&[]);
    let d = Daemon::start(&spool, &refs(&lines));
    let mut c = d.connect();
    assert!(c.line().starts_with("+OK"));
    // The STARTTLS injection: plaintext commands in the same write as STLS.
    c.send(b"STLS\r\nUSER alice\r\n");
    assert_eq!(c.line(), "+OK begin TLS negotiation");
    c.start_tls(pki.client_config(&[b"pop3"], None)).unwrap();
    // Had USER run, PASS would log in.
    assert_eq!(c.cmd("PASS secret"), "-ERR give USER first");
    assert!(c.cmd("QUIT").starts_with("+OK"));
}

#[test]
fn implicit_tls_greets_after_the_handshake() {
    let (spool, pki, lines) = setup(&["plaintext_auth = no"]);
    let d = Daemon::start_on(&spool, &refs(&lines), &["127.0.0.1:0", "127.0.0.1:0 tls"]);
    let mut c = Client::tcp(d.tls_addr.unwrap());
    c.start_tls(pki.client_config(&[b"pop3"], None)).unwrap();
    assert!(c.line().starts_with("+OK POP3 server ready"));
    let caps = capa(&mut c);
    assert!(!caps.contains(&"STLS".into()) && caps.contains(&"USER".into()), "{caps:?}");
    assert!(c.user_pass("alice", "secret").starts_with("+OK maildrop has 1"));
    assert!(c.cmd("QUIT").starts_with("+OK"));
    assert!(c.try_rest().unwrap().is_empty(), "close_notify before the TCP close");
    // TLS 1.2 is accepted too.
    let mut c = Client::tcp(d.tls_addr.unwrap());
    c.start_tls(pki.client_config_version(&rustls::version::TLS12)).unwrap();
    assert!(c.line().starts_with("+OK"));
    // A plaintext client on the TLS port gets no greeting and is closed.
    let mut c = Client::tcp(d.tls_addr.unwrap());
    c.send(b"CAPA\r\n");
    assert!(c.try_rest().map(|b| !b.starts_with(b"+OK")).unwrap_or(true));
}

#[test]
fn alpn_other_than_pop3_is_refused() {
    let (spool, pki, lines) = setup(&[]);
    let d = Daemon::start_on(&spool, &refs(&lines), &["127.0.0.1:0 tls"]);
    for (alpn, ok) in [(&[][..], true), (&[&b"pop3"[..]][..], true), (&[&b"http/1.1"[..], &b"imap"[..]][..], false)] {
        let mut c = Client::tcp(d.addr);
        let result = c.start_tls(pki.client_config(alpn, None));
        assert_eq!(result.is_ok(), ok, "ALPN {alpn:?}: {result:?}");
        if !ok {
            let e = result.unwrap_err().to_string();
            assert!(e.contains("NoApplicationProtocol"), "{e}");
        }
    }
}

#[test]
fn tls_client_closing_without_close_notify_is_logged_and_changes_nothing() {
    let (spool, pki, lines) = setup(&[]);
    let d = Daemon::start_on(&spool, &refs(&lines), &["127.0.0.1:0 tls"]);
    {
        let mut c = Client::tcp(d.addr);
        c.start_tls(pki.client_config(&[b"pop3"], None)).unwrap();
        assert!(c.login("alice", "secret").starts_with("+OK"));
        assert!(c.cmd("DELE 1").starts_with("+OK"));
        // Dropped: TCP closes without close_notify and without QUIT.
    }
    d.wait_log("closed the TLS connection without close_notify");
    let mut c = Client::tcp(d.addr);
    c.start_tls(pki.client_config(&[b"pop3"], None)).unwrap();
    assert!(c.login("alice", "secret").starts_with("+OK maildrop has 1"), "the DELE was not carried out");
}

#[test]
fn renewed_certificates_are_used_without_a_restart() {
    let (spool, mut pki, lines) = setup(&[]);
    let d = Daemon::start_on(&spool, &refs(&lines), &["127.0.0.1:0 tls"]);
    let client = pki_config(&pki);
    let served = |d: &Daemon| {
        let mut c = Client::tcp(d.addr);
        c.start_tls(client.clone()).unwrap();
        c.peer_cert.clone().unwrap()
    };
    let first = served(&d);
    // SIGHUP: the next session uses the new certificate.
    let renewed = pki.issue_server("renewed");
    spool.give_to_server();
    d.signal(1);
    let deadline = Instant::now() + Duration::from_secs(20);
    while served(&d) != renewed {
        assert!(Instant::now() < deadline, "SIGHUP did not reload the certificate");
    }
    // Without a signal: the change time is checked every few seconds.
    let again = pki.issue_server("renewed again");
    spool.give_to_server();
    let deadline = Instant::now() + Duration::from_secs(20);
    while served(&d) != again {
        assert!(Instant::now() < deadline, "a renewed certificate was not picked up");
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_ne!(first, again);
    // A broken new file keeps the old certificate in use, and says why.
    std::fs::write(&pki.server_cert, "-----BEGIN CERTIFICATE-----\ngarbage\n").unwrap();
    d.signal(1);
    assert_eq!(served(&d), again);
    d.wait_log("TLS reload failed, keeping the previous certificate");
}

fn pki_config(pki: &Pki) -> std::sync::Arc<rustls::ClientConfig> {
    pki.client_config(&[b"pop3"], None)
}

#[test]
fn inetd_mode_with_stls_and_with_implicit_tls() {
    let (spool, pki, mut lines) = setup(&[]);
    let log = spool.dir.join("inetd.log");
    lines.push(format!("log = {}", log.display()));
    lines.push("plaintext_auth = no".into());
    let mut c = Client::inetd(&spool, &refs(&lines));
    assert!(c.line().starts_with("+OK"));
    assert!(c.cmd("USER alice").starts_with("-ERR [AUTH]"));
    assert!(c.cmd("STLS").starts_with("+OK"));
    c.start_tls(pki.client_config(&[b"pop3"], None)).unwrap();
    assert!(c.cmd("USER alice").starts_with("+OK"));
    assert!(c.cmd("PASS secret").starts_with("+OK"));
    assert!(c.cmd("QUIT").starts_with("+OK"));
    assert!(c.try_rest().unwrap().is_empty());
    let out = c.child.take().unwrap().wait_with_output().unwrap();
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));

    let mut c = Client::inetd_args(&spool, &refs(&lines), &["-s"]);
    c.start_tls(pki.client_config(&[b"pop3"], None)).unwrap();
    assert!(c.login("alice", "secret").starts_with("+OK"));
    assert!(c.cmd("QUIT").starts_with("+OK"));
    assert!(c.try_rest().unwrap().is_empty());
    assert!(c.child.take().unwrap().wait().unwrap().success());
    let logged = std::fs::read_to_string(&log).unwrap();
    assert_eq!(logged.matches("session end: user=alice peer=stdin tls=TLSv1_3").count(), 2, "{logged}");
}

#[test]
fn certificate_errors_name_the_file() {
    let (spool, pki, _) = setup(&[]);
    let conf = spool.config(&[]);
    let check = |args: &[String]| {
        let out = common::pop3d().args(["-t", "-f", conf.to_str().unwrap()]).args(args).output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    let o = |k: &str, v: &std::path::Path| vec!["-o".to_string(), format!("{k}={}", v.display())];
    let good = [o("tls_cert", &pki.server_cert), o("tls_key", &pki.server_key)].concat();
    assert!(check(&good).0, "{}", check(&good).1);
    let missing = spool.dir.join("missing.pem");
    let (ok, err) = check(&[o("tls_cert", &missing), o("tls_key", &pki.server_key)].concat());
    assert!(!ok && err.contains("missing.pem"), "{err}");
    let (ok, err) = check(&[o("tls_cert", &pki.server_cert), o("tls_key", &pki.ca)].concat());
    assert!(!ok && err.contains("ca.pem"), "{err}");
    let (ok, err) = check(&o("tls_cert", &pki.server_cert));
    assert!(!ok && err.contains("tls_key"), "{err}");
}

#[test]
fn no_certificate_request_unless_client_certificates_are_configured() {
    let (spool, pki, lines) = setup(&[]);
    let d = Daemon::start_on(&spool, &refs(&lines), &["127.0.0.1:0 tls"]);
    let s_client = |addr: std::net::SocketAddr| {
        let out = Command::new("openssl")
            .args(["s_client", "-connect", &addr.to_string(), "-CAfile", pki.ca.to_str().unwrap(), "-alpn", "pop3"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let out = s_client(d.addr);
    assert!(out.contains("No client certificate CA names sent"), "{out}");
    assert!(out.contains("ALPN protocol: pop3") && out.contains("Verification: OK"), "{out}");
    let ca_line = format!("tls_client_ca = {}", pki.ca.display());
    let mut lines2 = lines.clone();
    lines2.push(ca_line);
    let d2 = Daemon::start_on(&spool, &refs(&lines2), &["127.0.0.1:0 tls"]);
    let out = s_client(d2.addr);
    assert!(out.contains("Acceptable client certificate CA names"), "{out}");
}

#[test]
fn apop_is_refused_without_tls_under_the_default_policy() {
    use md5::{Digest, Md5};
    let (spool, pki, lines) = setup(&["apop = yes", "plaintext_auth = no"]);
    let d = Daemon::start(&spool, &refs(&lines));
    let mut c = d.connect();
    let greeting = c.line();
    let challenge = &greeting[greeting.find('<').unwrap()..=greeting.find('>').unwrap()];
    let digest: String =
        Md5::digest(format!("{challenge}tanstaaf").as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    assert!(c.cmd(&format!("APOP carol {digest}")).starts_with("-ERR [AUTH] plaintext login is not allowed"));
    assert!(c.cmd("STLS").starts_with("+OK"));
    c.start_tls(pki.client_config(&[b"pop3"], None)).unwrap();
    assert!(c.cmd(&format!("APOP carol {digest}")).starts_with("+OK maildrop"), "the greeting's challenge still holds");
}

/// RSA (PKCS#1 file), ECDSA (SEC1 file) and Ed25519 (PKCS#8 file) keys, each
/// with a self-signed certificate made by openssl: pop3d loads them and
/// completes a handshake with each key type.
#[test]
fn rsa_ecdsa_and_ed25519_keys_in_pkcs1_sec1_and_pkcs8_files() {
    let spool = Spool::new();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(&spool.dir).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    openssl(&["genrsa", "-traditional", "-out", "rsa.key", "2048"]);
    openssl(&["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ec.key"]);
    openssl(&["genpkey", "-algorithm", "ed25519", "-out", "ed.key"]);
    for (key, header, peer_type) in [
        ("rsa.key", "BEGIN RSA PRIVATE KEY", "RSA"),
        ("ec.key", "BEGIN EC PRIVATE KEY", "ECDSA"),
        ("ed.key", "BEGIN PRIVATE KEY", "Ed25519"),
    ] {
        let cert = format!("{key}.pem");
        openssl(&["req", "-x509", "-key", key, "-subj", "/CN=localhost", "-days", "2", "-out", &cert]);
        assert!(std::fs::read_to_string(spool.dir.join(key)).unwrap().contains(header));
        spool.give_to_server();
        let lines = [
            format!("tls_cert = {}", spool.dir.join(&cert).display()),
            format!("tls_key = {}", spool.dir.join(key).display()),
        ];
        let d = Daemon::start_on(&spool, &refs(&lines), &["127.0.0.1:0 tls"]);
        let out = Command::new("openssl")
            .args(["s_client", "-connect", &d.addr.to_string(), "-alpn", "pop3"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
        // "RSA-PSS", "ECDSA", "ed25519" as OpenSSL prints them.
        assert!(text.contains(&format!("peer signature type: {}", peer_type.to_lowercase())), "{key}: {text}");
        assert!(text.contains("alpn protocol: pop3"), "{key}: {text}");
    }
}

/// inetd mode's pre-login deadline when no thread can watch it (the
/// account's task limit reached, as under a flood of connections through
/// tcpserver): a TLS handshake dripped a byte at a time is still ended at
/// the deadline, by the kernel's alarm.
#[test]
fn an_inetd_handshake_without_a_watchdog_thread_still_ends_at_the_deadline() {
    if !common::accounts::is_root() {
        eprintln!("skipped: needs root to create the session's own account and set its limits");
        return;
    }
    let owner = common::accounts::LocalUser::new("wd");
    let spool = Spool::new();
    spool.run_as(owner.uid, owner.gid);
    let pki = Pki::new(&spool.dir);
    let mut lines = pki.server_lines();
    let log = spool.dir.join("pop3d.log");
    lines.extend([format!("user = {}", owner.name), "timeout_login = 1".into(), format!("log = {}", log.display())]);
    spool.give_to_server();
    // One task for the account: the process itself, and no thread besides.
    let mut c = Client::inetd_with_threads(&spool, &refs(&lines), 1, &["-s"]);
    let hello = [&b"\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03"[..], &[7u8; 189]].concat();
    let started = std::time::Instant::now();
    let mut dripped = hello.iter();
    let status = loop {
        if let Some(status) = c.child.as_mut().unwrap().try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < common::HANG_GUARD, "still running after {:?}", started.elapsed());
        // A byte every half second: no read waits the 1 s timeout, only the deadline can end it.
        if let Some(&b) = dripped.next() {
            c.send(&[b]);
        }
        std::thread::sleep(std::time::Duration::from_millis(500)); // the drip's pace, not a synchronisation
    };
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGALRM), "{status:?} {said}");
    assert!(started.elapsed() >= std::time::Duration::from_secs(4), "not before the deadline");
}

/// A TLS handshake stalled after STLS is the client's move, as on port 995:
/// when the pre-login budget is full such a session makes way for a new
/// connection (it counted as the server's work, so new clients waited for
/// its deadline and were then refused as busy).
#[test]
fn a_handshake_stalled_after_stls_makes_way_when_the_budget_is_full() {
    let (spool, _pki, lines) = setup(&["max_prelogin = 2", "max_prelogin_per_network = 2", "timeout_login = 30"]);
    let d = Daemon::start(&spool, &refs(&lines));
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let mut c = d.connect();
        assert!(c.line().starts_with("+OK"));
        assert_eq!(c.cmd("STLS"), "+OK begin TLS negotiation");
        stalled.push(c); // and no ClientHello
    }
    let mut c = d.connect();
    let greeting = c.line();
    assert!(greeting.starts_with("+OK"), "greeted before the stalled handshakes' deadline: {greeting}");
    d.wait_log("to admit new ones");
    assert!(c.user_pass("alice", "secret").starts_with("+OK"));
}
