//! Tests of the system accounts: each kind of shadow entry, each hash scheme, unknown users' cost.
//!
//! Unknown users cost what wrong passwords do.

use super::*;
use crate::testkit::TempDir;

const TODAY: i64 = 20_000;

fn hash(setting: &str, password: &str) -> String {
    crate::sys::crypt(setting, password.as_bytes()).unwrap()
}

/// Test-made account files: each user's shadow fields after the hash.
fn files(dir: &TempDir, entries: &[(&str, u32, String, &str)]) -> Files {
    let mut passwd = String::from("root:x:0:0:root:/root:/bin/sh\n");
    let mut shadow = format!("root:{}:19000:0:99999:7:::\n", hash("$6$rootsalt$", "rootpw"));
    for (name, uid, hash, aging) in entries {
        passwd.push_str(&format!("{name}:x:{uid}:{uid}:Test:/home/{name}:/bin/sh\n"));
        shadow.push_str(&format!("{name}:{hash}:{aging}\n"));
    }
    let f = Files { passwd: dir.path().join("passwd"), shadow: dir.path().join("shadow") };
    std::fs::write(&f.passwd, passwd).unwrap();
    std::fs::write(&f.shadow, shadow).unwrap();
    f
}

const AGING: &str = "19000:0:99999:7:::";

fn standard(dir: &TempDir) -> Files {
    let aging = AGING;
    files(
        dir,
        &[
            ("six", 1001, hash("$6$sixsalt$", "pw6"), aging),
            ("five", 1002, hash("$5$fivesalt$", "pw5"), aging),
            ("one", 1003, hash("$1$onesalt$", "pw1"), aging),
            ("locked", 1004, format!("!{}", hash("$6$l$", "pwl")), aging),
            ("star", 1005, "*".into(), aging),
            ("empty", 1006, String::new(), aging),
            ("expired", 1007, hash("$6$e$", "pwe"), "19000:0:99999:7::19999:"),
            ("aged", 1008, hash("$6$a$", "pwa"), "19000:0:90:7:::"),
            ("mustchange", 1009, hash("$6$m$", "pwm"), "0:0:99999:7:::"),
            ("des", 1010, hash("ab", "pwd"), aging),
            ("future", 1011, hash("$6$f$", "pwf"), "19990:0:30:7::20001:"),
            ("boundary", 1012, hash("$6$b$", "pwb"), "19970:0:30:7:::"),
            ("garbled", 1013, hash("$6$g$", "pwg"), "19000:0:soon:7:::"),
            ("unset", 1014, hash("$6$u$", "pwu"), "19000:-1:-1:-1:-1:-1:"),
        ],
    )
}

#[test]
fn every_accepted_scheme_logs_in_with_its_account() {
    let dir = TempDir::new("accounts");
    let f = standard(&dir);
    let accepted = [("six", "pw6", 1001), ("five", "pw5", 1002), ("one", "pw1", 1003), ("future", "pwf", 1011)];
    for (name, pw, uid) in accepted.into_iter().chain([("unset", "pwu", 1014)]) {
        let account = check(&f, name, pw.as_bytes(), TODAY).unwrap().unwrap();
        assert_eq!(account, Account { uid, gid: uid, home: format!("/home/{name}") });
        assert_eq!(check(&f, name, b"wrong", TODAY).unwrap(), Err(Refusal::WrongPassword), "{name}");
    }
}

#[test]
fn entries_that_cannot_log_in_are_refused_with_the_right_password() {
    let dir = TempDir::new("accounts");
    let f = standard(&dir);
    for (name, pw, why) in [
        ("locked", "pwl", Refusal::Locked),
        ("star", "", Refusal::Locked),
        ("empty", "", Refusal::NoPassword),
        ("expired", "pwe", Refusal::Expired),
        ("aged", "pwa", Refusal::PasswordExpired),
        ("mustchange", "pwm", Refusal::PasswordExpired),
        ("des", "pwd", Refusal::Scheme),
        ("boundary", "pwb", Refusal::PasswordExpired),
        ("garbled", "pwg", Refusal::BadEntry),
        ("root", "rootpw", Refusal::Root),
        ("nobody-here", "pw6", Refusal::Unknown),
    ] {
        assert_eq!(check(&f, name, pw.as_bytes(), TODAY).unwrap(), Err(why), "{name}");
    }
    // The expiry day itself is expired (shadow(5)), the day before is not.
    assert_eq!(check(&f, "future", b"pwf", 20_001).unwrap(), Err(Refusal::Expired));
    assert!(check(&f, "six", &vec![b'x'; crate::limits::MAX_PASSWORD + 1], TODAY).unwrap().is_err());
}

#[test]
fn a_passwd_entry_without_shadow_or_the_reverse_is_unknown() {
    let dir = TempDir::new("accounts");
    let f = standard(&dir);
    std::fs::write(&f.passwd, "six:x:1001:1001::/home/six:/bin/sh\nghost:x:5:5::/:/bin/sh\n").unwrap();
    assert!(check(&f, "six", b"pw6", TODAY).unwrap().is_ok());
    assert_eq!(check(&f, "five", b"pw5", TODAY).unwrap(), Err(Refusal::Unknown));
    assert_eq!(check(&f, "ghost", b"", TODAY).unwrap(), Err(Refusal::Unknown));
    std::fs::write(&f.passwd, "six:x:notanumber:1001::/home/six:/bin/sh\n").unwrap();
    assert_eq!(check(&f, "six", b"pw6", TODAY).unwrap(), Err(Refusal::Unknown));
    std::fs::remove_file(&f.shadow).unwrap();
    assert!(check(&f, "six", b"pw6", TODAY).is_err(), "an unreadable shadow is an error, not a refusal");
}

/// Unknown users cost what a wrong password of a `$6$` user does: the two
/// paths are timed against each other (the fastest of several runs each),
/// not against the machine.
#[test]
fn unknown_users_take_as_long_as_wrong_passwords() {
    let dir = TempDir::new("accounts");
    let f = standard(&dir);
    let fastest = |name: &str| {
        (0..7)
            .map(|_| {
                let t = std::time::Instant::now();
                assert!(check(&f, name, b"guess", TODAY).unwrap().is_err());
                t.elapsed()
            })
            .min()
            .unwrap()
    };
    let (unknown, wrong, locked) = (fastest("nobody-here"), fastest("six"), fastest("locked"));
    for (what, t) in [("unknown", unknown), ("locked", locked)] {
        let ratio = t.as_secs_f64() / wrong.as_secs_f64();
        assert!((0.5..2.0).contains(&ratio), "{what} {t:?} vs wrong password {wrong:?}");
    }
}

/// Whatever scheme the system's crypt(3) computes logs in (yescrypt, the
/// default of Debian 11 and later, on libxcrypt); one it cannot compute is
/// refused as such, not as a wrong password.
#[test]
fn any_scheme_of_the_system_crypt_and_gid_zero() {
    let dir = TempDir::new("accounts");
    let yescrypt = crate::sys::crypt("$y$j9T$F5Jx5fExrKuPp53xLKQ..1$", b"pwy");
    let f = files(
        &dir,
        &[
            ("yes", 1020, yescrypt.clone().unwrap_or("$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X".into()), AGING),
            ("rootgroup", 1021, hash("$6$r$", "pwr"), AGING),
        ],
    );
    std::fs::write(&f.passwd, std::fs::read_to_string(&f.passwd).unwrap().replace(":1021:1021:", ":1021:0:")).unwrap();
    match yescrypt {
        Some(_) => assert!(check(&f, "yes", b"pwy", TODAY).unwrap().is_ok()),
        None => assert_eq!(check(&f, "yes", b"pwy", TODAY).unwrap(), Err(Refusal::Scheme)),
    }
    assert_eq!(check(&f, "rootgroup", b"pwr", TODAY).unwrap(), Err(Refusal::Root));
    for r in Refusal::ALL {
        assert_eq!(Refusal::from_code(r as u8), Some(r));
    }
}
