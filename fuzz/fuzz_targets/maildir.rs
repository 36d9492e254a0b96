//! Fuzz target: Maildir listing and file names (the unique part, flags, delivery-time order, a message seen in both new/ and cur/) on arbitrary names and contents, checked: one id per unique part, LIST's size is what RETR sends.
#![no_main]

use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
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

/// This process's Maildir, emptied.
fn root() -> PathBuf {
    let d = scratch().join(format!("pop3d-fuzz-maildir-{}", std::process::id()));
    for sub in ["new", "cur", "tmp"] {
        let sub = d.join("Maildir").join(sub);
        match std::fs::read_dir(&sub) {
            Ok(files) => files.flatten().for_each(|f| drop(std::fs::remove_file(f.path()))),
            Err(_) => std::fs::create_dir_all(&sub).unwrap(),
        }
    }
    d
}

fuzz_target!(|data: &[u8]| {
    let d = root();
    let maildir = d.join("Maildir");
    // Entries separated by NUL: the first byte picks new/ or cur/, then the
    // name up to a `/`, then the file's content.
    let mut uniques = HashSet::new();
    for entry in data.split(|&b| b == 0).take(16) {
        let Some((&which, rest)) = entry.split_first() else { continue };
        let (name, content) = match rest.iter().position(|&b| b == b'/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &b""[..]),
        };
        if name.is_empty() || name == b"." || name == b".." || name.len() > 200 {
            continue;
        }
        let sub = if which & 1 == 0 { "new" } else { "cur" };
        let path = maildir.join(sub).join(std::ffi::OsStr::from_bytes(name));
        if std::fs::write(&path, content).is_ok() && !name.starts_with(b".") {
            // The unique part ends at the info separator, `:` or `;` (FAT/SMB).
            uniques.insert(name.split(|&b| b == b':' || b == b';').next().unwrap().to_vec());
        }
    }
    // No index cache from an earlier run: every run scans.
    let _ = std::fs::remove_file(d.join("index"));
    let dotlocks = pop3d::lock::Records { dir: d.join("dotlocks"), name: "u".into() };
    let state = StatePaths { journal: d.join("journal"), copies: d.join("uids"), dotlocks, index: d.join("index") };
    let settings = MboxSettings { quoting: FromQuoting::Mboxrd, locking: Vec::new(), lock_timeout: Duration::ZERO };
    let limits = Limits { max_messages: 100, max_size: u64::MAX };
    let drop = Maildrop::open_below(&d, Location::Maildir(maildir), state, &limits, &settings).unwrap();
    assert_eq!(drop.len(), uniques.len(), "one message per unique part");
    let ids: HashSet<String> = drop.live().map(|(_, m)| m.uid.to_string()).collect();
    assert_eq!(ids.len(), drop.len(), "ids are unique");
    for (n, msg) in drop.live() {
        let mut wire = Vec::new();
        assert_eq!(drop.send(n, Part::Whole, &mut wire).unwrap().unwrap(), msg.size);
    }
});
