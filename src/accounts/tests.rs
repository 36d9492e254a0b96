//! Tests of the system account source: each kind of shadow entry, each hash scheme, and unknown users costing what wrong passwords do.

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

fn standard(dir: &TempDir) -> Files {
    let aging = "19000:0:99999:7:::";
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
        ],
    )
}

#[test]
fn every_accepted_scheme_logs_in_with_its_account() {
    let dir = TempDir::new("accounts");
    let f = standard(&dir);
    for (name, pw, uid) in [("six", "pw6", 1001), ("five", "pw5", 1002), ("one", "pw1", 1003), ("future", "pwf", 1011)]
    {
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
