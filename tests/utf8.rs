//! UTF8 and LANG (RFC 6856) against the real binary: CAPA, the UTF8 command's states, the LANG listing and selection.

mod common;

use common::{Daemon, Spool};

#[test]
fn utf8_and_lang_commands() {
    let spool = Spool::new();
    let d = Daemon::start(&spool, &[]);
    let mut c = d.connect();
    assert!(c.line().starts_with("+OK"));
    assert_eq!(c.cmd("CAPA"), "+OK capability list follows");
    let capa = String::from_utf8(c.multi()).unwrap();
    assert!(capa.lines().any(|l| l == "UTF8 USER") && capa.lines().any(|l| l == "LANG"), "{capa}");
    assert_eq!(c.cmd("LANG"), "+OK language listing follows");
    assert_eq!(c.multi(), b"en English\r\ni-default Default language\r\n");
    assert_eq!(c.cmd("LANG de"), "-ERR invalid language de");
    assert_eq!(c.cmd("LANG EN"), "+OK en English selected");
    assert_eq!(c.cmd("LANG en-GB"), "+OK en English selected");
    assert_eq!(c.cmd("LANG *"), "+OK en English selected");
    assert_eq!(c.cmd("LANG i-default"), "+OK i-default Default language selected");
    assert_eq!(c.cmd("LANG a b"), "-ERR invalid arguments");
    assert_eq!(c.cmd("utf8"), "+OK UTF8 enabled");
    assert!(c.user_pass("alice", "secret").starts_with("+OK"));
    // UTF8 only before login; LANG in both states.
    assert_eq!(c.cmd("UTF8"), "-ERR UTF8 is only valid before login");
    assert_eq!(c.cmd("LANG en"), "+OK en English selected");
    assert_eq!(c.cmd("CAPA"), "+OK capability list follows");
    assert!(String::from_utf8(c.multi()).unwrap().lines().any(|l| l == "LANG"));
    assert!(c.cmd("QUIT").starts_with("+OK"));
}
