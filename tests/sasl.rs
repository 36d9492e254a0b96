//! SASL (RFC 5034) against the real daemon: PLAIN, EXTERNAL with client certificates, SCRAM-SHA-256 and -PLUS with channel binding.

mod common;
#[path = "common/scram.rs"]
mod scram;

use std::io::Write;
use std::process::Stdio;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use common::pki::Pki;
use common::{from_line, Client, Daemon, Spool};
use scram::ScramClient;

/// Adds user `dave` with SCRAM keys for "pencil", made by `pop3d -P`.
fn add_scram_user(spool: &Spool) {
    let mut child = common::pop3d().args(["-P", "dave"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"pencil\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(line.starts_with("dave:{SCRAM-SHA-256}4096,"), "{line}");
    let users = spool.dir.join("users");
    let mut text = std::fs::read_to_string(&users).unwrap();
    text.push_str(&line);
    std::fs::write(&users, text).unwrap();
    spool.write_mbox("dave", format!("{}Subject: d\n\nd\n", from_line("a@x")).as_bytes());
}

/// Runs a SCRAM exchange; returns the final answer line.
fn scram(c: &mut Client, mech: &str, client: &mut ScramClient, initial: bool) -> String {
    let mut reply = if initial {
        c.cmd(&format!("AUTH {mech} {}", client.first()))
    } else {
        assert_eq!(c.cmd(&format!("AUTH {mech}")), "+ ");
        c.cmd(&client.first())
    };
    let Some(challenge) = reply.strip_prefix("+ ") else { return reply };
    reply = c.cmd(&client.finish(challenge).expect("a server-first message"));
    let Some(final_msg) = reply.strip_prefix("+ ") else { return reply };
    client.check_server_final(final_msg);
    c.cmd("")
}

#[test]
fn plain_with_and_without_initial_response_and_cancel() {
    let spool = Spool::new();
    let d = Daemon::start(&spool, &[]);
    let mut c = d.connect();
    assert!(c.line().starts_with("+OK"));
    assert_eq!(c.cmd("AUTH"), "+OK SASL mechanisms follow");
    // No account has SCRAM keys: SCRAM is not offered.
    assert_eq!(c.multi(), b"PLAIN\r\nLOGIN\r\n");
    assert_eq!(c.cmd("AUTH PLAIN"), "+ ");
    assert_eq!(c.cmd("*"), "-ERR authentication cancelled");
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {}", B64.encode("\0alice\0wrong"))),
        "-ERR [AUTH] invalid user name or password"
    );
    assert_eq!(c.cmd("AUTH PLAIN"), "+ ");
    assert!(c.cmd(&B64.encode("alice\0alice\0secret")).starts_with("+OK maildrop has 0"));
    assert!(c.cmd("QUIT").starts_with("+OK"));
    let mut c = d.connect();
    assert!(c.line().starts_with("+OK"));
    assert!(c.cmd("AUTH PLAIN not!base64").starts_with("-ERR"));
    assert_eq!(c.cmd("AUTH KERBEROS_V4"), "-ERR unsupported authentication mechanism");
    assert!(c.cmd(&format!("AUTH PLAIN {}", B64.encode("\0bob\0secret"))).starts_with("+OK"));
}

#[test]
fn scram_sha_256_without_tls_and_with_a_stored_key_user() {
    let spool = Spool::new();
    add_scram_user(&spool);
    let d = Daemon::start(&spool, &[]);
    let mut c = d.connect();
    assert!(c.line().starts_with("+OK"));
    let reply = scram(&mut c, "SCRAM-SHA-256", &mut ScramClient::new("dave", "wrong", None), true);
    assert_eq!(reply, "-ERR [AUTH] invalid user name or password");
    // SCRAM for an account with a crypt hash could never succeed: a -ERR
    // that says so, no [AUTH], not counted. An unknown name is answered and
    // counted as dave's wrong password is: a name with keys is not told from
    // no name at all.
    let reply = scram(&mut c, "SCRAM-SHA-256", &mut ScramClient::new("alice", "pencil", None), false);
    assert_eq!(reply, "-ERR SCRAM cannot succeed for this user (no SCRAM keys stored): use another mechanism");
    let reply = scram(&mut c, "SCRAM-SHA-256", &mut ScramClient::new("nobody-here", "pencil", None), true);
    assert_eq!(reply, "-ERR [AUTH] invalid user name or password");
    let reply = scram(&mut c, "SCRAM-SHA-256", &mut ScramClient::new("dave", "pencil", None), false);
    assert_eq!(reply, "+OK maildrop has 1 messages (17 octets)");
    assert!(c.cmd("QUIT").starts_with("+OK"));
    let log = d.wait_log("session end: user=dave");
    assert_eq!(log.matches("login failed").count(), 2, "dave's wrong password and the unknown name: {log}");
    assert!(log.contains("login failed for \"nobody-here\": unknown user"), "{log}");
    assert_eq!(log.matches("not counted as a failed login").count(), 1, "{log}");
    // Some accounts have keys, no TLS: SCRAM is advertised, the only
    // mechanism careful clients (mpop) use without TLS. (Under TLS it is
    // not: scram_plus_binds_to_the_tls_channel.)
    let mut c = d.connect();
    assert!(c.line().starts_with("+OK"));
    assert_eq!(c.cmd("AUTH"), "+OK SASL mechanisms follow");
    assert_eq!(c.multi(), b"SCRAM-SHA-256\r\nPLAIN\r\nLOGIN\r\n");
    // The stored keys also check a USER/PASS password.
    assert!(d.connect().login("dave", "pencil").starts_with("+OK"));
    assert!(d.connect().login("dave", "pencil2").starts_with("-ERR [AUTH]"));
    // -PLUS is not offered without TLS.
    let mut c = d.connect();
    assert!(c.line().starts_with("+OK"));
    let reply = scram(&mut c, "SCRAM-SHA-256-PLUS", &mut ScramClient::new("dave", "pencil", Some([7; 32])), true);
    assert_eq!(reply, "-ERR mechanism SCRAM-SHA-256-PLUS needs TLS 1.3 (channel binding)");
}

/// A client on `d`'s implicit-TLS port, past the greeting.
fn tls_client(d: &Daemon, pki: &Pki) -> Client {
    let mut c = Client::tcp(d.addr);
    c.start_tls(pki.client_config(&[b"pop3"], None)).unwrap();
    assert!(c.line().starts_with("+OK"));
    c
}

#[test]
fn scram_plus_binds_to_the_tls_channel() {
    let spool = Spool::new();
    add_scram_user(&spool);
    let pki = Pki::new(&spool.dir);
    spool.give_to_server();
    let lines = pki.server_lines();
    let mut conf: Vec<&str> = lines.iter().map(String::as_str).collect();
    conf.push("auth_mechanisms = SCRAM-SHA-256-PLUS, SCRAM-SHA-256, PLAIN");
    let d = Daemon::start_on(&spool, &conf, &["127.0.0.1:0 tls"]);
    let connect = || tls_client(&d, &pki);
    let mut c = connect();
    let cb = c.exporter.unwrap();
    let mut wrong = cb;
    wrong[0] ^= 1;
    let reply = scram(&mut c, "SCRAM-SHA-256-PLUS", &mut ScramClient::new("dave", "pencil", Some(wrong)), true);
    assert!(reply.starts_with("-ERR [AUTH]"), "wrong channel binding: {reply}");
    // A client that could bind but says it cannot: a downgrade.
    let mut c = connect();
    let mut no_binding = ScramClient::new("dave", "pencil", None);
    no_binding.gs2 = "y,,".into();
    let reply = scram(&mut c, "SCRAM-SHA-256", &mut no_binding, true);
    assert!(reply.starts_with("-ERR [AUTH]"), "downgrade: {reply}");
    let mut c = connect();
    let cb = c.exporter.unwrap();
    let reply = scram(&mut c, "SCRAM-SHA-256-PLUS", &mut ScramClient::new("dave", "pencil", Some(cb)), false);
    assert!(reply.starts_with("+OK maildrop has 1"), "{reply}");
    assert!(c.cmd("QUIT").starts_with("+OK"));
    // Plain SCRAM-SHA-256 over TLS still works (n,,).
    let mut c = connect();
    let reply = scram(&mut c, "SCRAM-SHA-256", &mut ScramClient::new("dave", "pencil", None), true);
    assert!(reply.starts_with("+OK"), "{reply}");
    assert!(c.cmd("QUIT").starts_with("+OK"));
    // auth_mechanisms = auto: -PLUS is not advertised (mutt and neomutt
    // with GNU SASL pick it and fail), so a client's `y` is no downgrade;
    // asked for by name, -PLUS still binds.
    drop(d);
    let conf: Vec<&str> = lines.iter().map(String::as_str).collect();
    let d = Daemon::start_on(&spool, &conf, &["127.0.0.1:0 tls"]);
    let connect = || tls_client(&d, &pki);
    let mut c = connect();
    assert_eq!(c.cmd("AUTH"), "+OK SASL mechanisms follow");
    assert_eq!(c.multi(), b"PLAIN\r\nLOGIN\r\n", "mixed accounts, PLAIN offered: no SCRAM advertised");
    let mut may_bind = ScramClient::new("dave", "pencil", None);
    may_bind.gs2 = "y,,".into();
    let reply = scram(&mut c, "SCRAM-SHA-256", &mut may_bind, true);
    assert!(reply.starts_with("+OK"), "y without -PLUS advertised: {reply}");
    assert!(c.cmd("QUIT").starts_with("+OK"));
    let mut c = connect();
    let cb = c.exporter.unwrap();
    let reply = scram(&mut c, "SCRAM-SHA-256-PLUS", &mut ScramClient::new("dave", "pencil", Some(cb)), true);
    assert!(reply.starts_with("+OK"), "{reply}");
}

#[test]
fn external_maps_the_verified_certificate_cn_to_a_user() {
    let spool = Spool::new();
    let pki = Pki::new(&spool.dir);
    let alice = pki.client("alice", false);
    let mallory = pki.client("mallory", false);
    let foreign = pki.client("alice", true);
    spool.give_to_server();
    let mut lines = pki.server_lines();
    lines.push(format!("tls_client_ca = {}", pki.ca.display()));
    let d = Daemon::start_on(&spool, &lines.iter().map(String::as_str).collect::<Vec<_>>(), &["127.0.0.1:0 tls"]);
    let connect = |cert| {
        let mut c = Client::tcp(d.addr);
        c.start_tls(pki.client_config(&[b"pop3"], cert)).map(|_| c)
    };
    let mut c = connect(Some(&alice)).unwrap();
    assert!(c.line().starts_with("+OK"));
    assert_eq!(c.cmd("CAPA"), "+OK capability list follows");
    assert!(String::from_utf8(c.multi()).unwrap().contains("SASL PLAIN LOGIN EXTERNAL\r\n"));
    assert!(c.cmd(&format!("AUTH EXTERNAL {}", B64.encode("bob"))).starts_with("-ERR [AUTH]"), "not bob");
    assert!(c.cmd("AUTH EXTERNAL =").starts_with("+OK maildrop"));
    assert!(c.cmd("QUIT").starts_with("+OK"));
    // The continuation form with an authorization identity equal to the CN.
    let mut c = connect(Some(&alice)).unwrap();
    assert!(c.line().starts_with("+OK"));
    assert_eq!(c.cmd("AUTH EXTERNAL"), "+ ");
    assert!(c.cmd(&B64.encode("alice")).starts_with("+OK"));
    assert!(c.cmd("QUIT").starts_with("+OK"));
    // A certificate for a name that is not an account.
    let mut c = connect(Some(&mallory)).unwrap();
    assert!(c.line().starts_with("+OK"));
    assert!(c.cmd("AUTH EXTERNAL =").starts_with("-ERR [AUTH]"));
    // No certificate: no EXTERNAL.
    let mut c = connect(None).unwrap();
    assert!(c.line().starts_with("+OK"));
    assert_eq!(c.cmd("CAPA"), "+OK capability list follows");
    assert!(!String::from_utf8(c.multi()).unwrap().contains("EXTERNAL"));
    assert_eq!(c.cmd("AUTH EXTERNAL ="), "-ERR mechanism EXTERNAL needs a verified TLS client certificate");
    // A certificate from another CA is refused in the handshake (TLS 1.3
    // reports it at the first read).
    let refused = connect(Some(&foreign)).and_then(|mut c| c.try_rest());
    assert!(refused.is_err(), "{refused:?}");
}

/// In inetd mode every session is a new process: an unknown user's SCRAM
/// salt must still be the same each time, or it gives the user away.
#[test]
fn an_unknown_users_scram_salt_is_stable_across_inetd_processes() {
    let spool = Spool::new();
    add_scram_user(&spool);
    let log = format!("log = {}", spool.dir.join("inetd.log").display());
    let salt = |user: &str| {
        let mut c = Client::inetd(&spool, &[&log]);
        assert!(c.line().starts_with("+OK"));
        let reply = c.cmd(&format!("AUTH SCRAM-SHA-256 {}", B64.encode(format!("n,,n={user},r=abcdefgh"))));
        let first = String::from_utf8(B64.decode(reply.strip_prefix("+ ").unwrap()).unwrap()).unwrap();
        c.send(b"*\r\nQUIT\r\n");
        first.split(',').find_map(|f| f.strip_prefix("s=")).unwrap().to_string()
    };
    let ghost = salt("ghost");
    assert_eq!(salt("ghost"), ghost);
    assert_ne!(salt("phantom"), ghost, "different names, different salts");
}

/// An unreadable users file is the server's trouble, not a wrong password:
/// every way in answers [SYS/TEMP] (and none is counted as a failed login).
#[test]
fn an_unreadable_users_file_is_a_temporary_failure_for_every_mechanism() {
    let spool = Spool::new();
    add_scram_user(&spool);
    let d = Daemon::start(&spool, &[]);
    std::fs::remove_file(spool.dir.join("users")).unwrap();
    let temp = "-ERR [SYS/TEMP] authentication unavailable, try later";
    let mut c = d.connect();
    assert!(c.line().starts_with("+OK"));
    assert_eq!(c.cmd(&format!("AUTH PLAIN {}", B64.encode("\0alice\0secret"))), temp);
    assert_eq!(c.user_pass("alice", "secret"), temp);
    let client_first = B64.encode("n,,n=dave,r=abcdefghijklmnop");
    assert_eq!(c.cmd(&format!("AUTH SCRAM-SHA-256 {client_first}")), temp);
    assert_eq!(c.cmd("AUTH SCRAM-SHA-256"), "+ ");
    assert_eq!(c.cmd(&client_first), temp);
    // Still in AUTHORIZATION, with no failure counted: more tries are answered.
    assert!(c.cmd("NOOP").starts_with("-ERR"));
    assert_eq!(c.user_pass("alice", "secret"), temp);
}

/// AUTH LOGIN (draft-murchison-sasl-login) in both forms, under the
/// plaintext policy of PLAIN; an unknown or unoffered mechanism is a plain
/// `-ERR` (no [AUTH], no delay, not a failed login), so the sequence curl
/// and other clients use, trying mechanisms in turn, ends in a login.
#[test]
fn auth_login_and_falling_back_from_unknown_mechanisms() {
    let spool = Spool::new();
    let d = Daemon::start(&spool, &[]);
    let mut c = d.connect();
    assert!(c.line().starts_with("+OK"));
    assert_eq!(c.cmd("AUTH LOGIN"), format!("+ {}", B64.encode("Username:")));
    assert_eq!(c.cmd(&B64.encode("alice")), format!("+ {}", B64.encode("Password:")));
    assert_eq!(c.cmd(&B64.encode("wrong")), "-ERR [AUTH] invalid user name or password");
    // Initial response: the user name (curl's form).
    assert_eq!(c.cmd(&format!("AUTH LOGIN {}", B64.encode("alice"))), format!("+ {}", B64.encode("Password:")));
    assert_eq!(c.cmd("*"), "-ERR authentication cancelled");
    // Five unknown mechanisms in a row cost no failure: a wrong password
    // after them is the session's second failure, not its seventh.
    for m in ["CRAM-MD5", "DIGEST-MD5", "NTLM", "GSSAPI", "XOAUTH2", "SCRAM-SHA-1"] {
        assert_eq!(c.cmd(&format!("AUTH {m}")), "-ERR unsupported authentication mechanism", "{m}");
    }
    assert_eq!(c.cmd("AUTH EXTERNAL ="), "-ERR mechanism EXTERNAL needs a verified TLS client certificate");
    assert_eq!(c.cmd(&format!("AUTH LOGIN {}", B64.encode("alice"))), format!("+ {}", B64.encode("Password:")));
    assert!(c.cmd(&B64.encode("secret")).starts_with("+OK maildrop has 0"));
    assert!(c.cmd("QUIT").starts_with("+OK"));
    let log = d.wait_log("session end: user=alice");
    assert_eq!(log.matches("login failed").count(), 1, "{log}");
    assert!(!log.contains("SASL authentication failed"), "an unknown mechanism is no failed login: {log}");
}

/// Where plaintext logins are refused, LOGIN is neither offered nor usable,
/// and saying so is a plain -ERR, not [AUTH].
#[test]
fn auth_login_follows_the_plaintext_policy() {
    let spool = Spool::new();
    let d = Daemon::start(&spool, &["plaintext_auth = no"]);
    let mut c = d.connect();
    assert!(c.line().starts_with("+OK"));
    assert_eq!(c.cmd("AUTH"), "+OK SASL mechanisms follow");
    assert_eq!(c.multi(), b"", "no account has SCRAM keys: nothing to offer");
    for m in ["LOGIN", "PLAIN"] {
        assert_eq!(
            c.cmd(&format!("AUTH {m}")),
            "-ERR mechanism not available without TLS: use STLS or port 995",
            "{m}"
        );
    }
    assert!(!d.log().contains("login failed"));
}

/// UTF-8 credentials (RFC 6856) prepared with SASLprep (RFC 4013) in every
/// mechanism: the account is stored composed (NFC), the client sends the
/// name and password decomposed (as macOS does) or with a no-break space.
#[test]
fn utf8_credentials_are_prepared_for_every_mechanism() {
    let spool = Spool::new();
    let name = "j\u{FC}rgen";
    let password = "p\u{E4}ss w\u{F6}rd";
    let mut child =
        common::pop3d().args(["-P", "z\u{F6}e"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    // `pop3d -P` prepares the password too: given with a no-break space.
    child.stdin.take().unwrap().write_all("p\u{E4}ss\u{A0}w\u{F6}rd\n".as_bytes()).unwrap();
    let scram_line = String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap();
    let users = format!("{name}:{{PLAIN}}{password}\n{scram_line}");
    std::fs::write(spool.dir.join("users"), users).unwrap();
    spool.write_mbox(name, format!("{}Subject: gr\u{FC}\u{DF}e\n\nUTF-8 \u{2713}\n", from_line("a@x")).as_bytes());
    let d = Daemon::start(&spool, &[]);
    let nfd_name = "ju\u{308}rgen";
    let nfd_password = "pa\u{308}ss\u{A0}wo\u{308}rd";
    // USER/PASS.
    let mut c = d.connect();
    assert!(c.line().starts_with("+OK"));
    assert_eq!(c.cmd("UTF8"), "+OK UTF8 enabled");
    assert_eq!(c.user_pass(nfd_name, nfd_password), "+OK maildrop has 1 messages (31 octets)");
    // Message content is sent as it is.
    assert!(c.cmd("RETR 1").starts_with("+OK"));
    assert_eq!(c.multi(), "Subject: gr\u{FC}\u{DF}e\r\n\r\nUTF-8 \u{2713}\r\n".as_bytes());
    assert!(c.cmd("QUIT").starts_with("+OK"));
    // PLAIN and LOGIN, without the UTF8 command (CAPA says UTF8 USER).
    let mut c = d.connect();
    assert!(c.line().starts_with("+OK"));
    let plain = B64.encode(format!("\0{nfd_name}\0{nfd_password}"));
    assert!(c.cmd(&format!("AUTH PLAIN {plain}")).starts_with("+OK maildrop has 1"));
    assert!(c.cmd("QUIT").starts_with("+OK"));
    let mut c = d.connect();
    assert!(c.line().starts_with("+OK"));
    assert!(c.cmd(&format!("AUTH LOGIN {}", B64.encode(nfd_name))).starts_with("+ "));
    assert!(c.cmd(&B64.encode(nfd_password)).starts_with("+OK maildrop has 1"));
    assert!(c.cmd("QUIT").starts_with("+OK"));
    // SCRAM: the server prepares the name; the client its password (RFC 5802).
    let mut c = d.connect();
    assert!(c.line().starts_with("+OK"));
    let reply = scram(&mut c, "SCRAM-SHA-256", &mut ScramClient::new("zo\u{308}e", password, None), true);
    assert!(reply.starts_with("+OK maildrop has 0"), "{reply}");
    assert!(c.cmd("QUIT").starts_with("+OK"));
    // A wrong UTF-8 password still fails, and a prohibited character too.
    let mut c = d.connect();
    assert!(c.line().starts_with("+OK"));
    assert!(c.user_pass(nfd_name, "p\u{E4}ss w\u{F6}rt").starts_with("-ERR [AUTH]"));
    assert!(c.user_pass("j\u{FC}rgen\u{E000}", password).starts_with("-ERR [AUTH]"));
}
