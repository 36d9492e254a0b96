//! The users file and password checks: crypt(3) hashes, plain secrets for APOP, in constant time.
//!
//! Unknown users take the same path.

use std::fs;
use std::io;
use std::path::Path;

use md5::{Digest, Md5};

use subtle::ConstantTimeEq;

use crate::hex;
use crate::limits::MAX_USER_NAME;
use crate::policy::Overrides;
use crate::sasl::scram::ScramKeys;
use crate::sasl::ScramKeyed;

/// A stored credential.
#[derive(Clone)]
pub enum Secret {
    /// A crypt(3) string: `$6$`, `$5$` or `$1$`.
    Crypt(String),
    /// A plain secret (needed by APOP).
    Plain(Vec<u8>),
    /// SCRAM-SHA-256 keys (Dovecot's `{SCRAM-SHA-256}` form): no password kept.
    Scram(ScramKeys),
}

impl Secret {
    /// The SCRAM keys, for users who have them.
    pub fn scram(&self) -> Option<ScramKeys> {
        match self {
            Secret::Scram(k) => Some(k.clone()),
            _ => None,
        }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Secret::Crypt(_) => "Crypt(..)",
            Secret::Plain(_) => "Plain(..)",
            Secret::Scram(_) => "Scram(..)",
        })
    }
}

/// A SHA512-CRYPT hash of a random string, checked when the user does not
/// exist so that the answer and its timing are the same.
const DUMMY_HASH: &str =
    "$6$pop3dnobody$EY80/em/H.ebsQcz/2eFIrXDp7Rj2gjt.YA0r0BzBXSQVvIkDxzXIXNrhKxTODMFSU1oHWiiiZuMK8S6a95dE/";

/// Checks that `name` is safe to use as a maildrop name in a path: 1-64
/// octets of `[A-Za-z0-9._+@-]` or non-ASCII letters and digits (RFC 6856
/// UTF-8 names), not starting with `.` (so no `/`, no `..`, no NUL).
pub fn valid_name(name: &str) -> bool {
    (1..=MAX_USER_NAME).contains(&name.len())
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+-@".contains(c) || (!c.is_ascii() && c.is_alphanumeric()))
}

/// Parses one users file; returns the entries or the first error with its line number.
pub fn parse(text: &str) -> Result<Vec<(String, Secret)>, String> {
    Ok(parse_entries(text)?.into_iter().map(|(name, secret, _)| (name, secret)).collect())
}

/// Like `parse`, with each user's EXPIRE and LOGIN-DELAY overrides from
/// the Dovecot-style extra fields (the 8th field:
/// `name:hash:uid:gid:gecos:home:shell:extra`).
pub fn parse_entries(text: &str) -> Result<Vec<(String, Secret, Overrides)>, String> {
    let mut users = Vec::new();
    for (no, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let err = |what: &str| format!("line {}: {what}", no + 1);
        let (name, rest) = line.split_once(':').ok_or_else(|| err("expected name:password-hash"))?;
        let hash = rest.split(':').next().unwrap_or("");
        if !valid_name(name) {
            return Err(err("invalid user name"));
        }
        let overrides = Overrides::parse(rest.split(':').nth(6).unwrap_or("")).map_err(|e| err(&e))?;
        users.push((name.to_string(), parse_secret(hash).ok_or_else(|| err("unsupported password hash"))?, overrides));
    }
    Ok(users)
}

fn parse_secret(hash: &str) -> Option<Secret> {
    let (scheme, value) = match hash.strip_prefix('{').and_then(|h| h.split_once('}')) {
        Some((scheme, value)) => (Some(scheme.to_ascii_uppercase()), value),
        None => (None, hash),
    };
    let crypt_prefix = match scheme.as_deref() {
        // An empty secret would let anyone in through APOP or AUTH PLAIN.
        Some("PLAIN") => return (!value.is_empty()).then(|| Secret::Plain(value.as_bytes().to_vec())),
        Some("SCRAM-SHA-256") => return ScramKeys::parse(value).map(Secret::Scram),
        Some("SHA512-CRYPT") => "$6$",
        Some("SHA256-CRYPT") => "$5$",
        Some("MD5-CRYPT") => "$1$",
        Some(_) => return None,
        None => ["$6$", "$5$", "$1$"].into_iter().find(|p| value.starts_with(p))?,
    };
    (value.starts_with(crypt_prefix) && value.len() > 4).then(|| Secret::Crypt(value.to_string()))
}

/// Checks that the system's crypt(3) computes every scheme the file uses
/// (one hash per scheme): a libxcrypt built without MD5-CRYPT, say, would
/// otherwise refuse those users at every login.
pub fn check_schemes(users: &[(String, Secret)]) -> Result<(), String> {
    for (prefix, name) in [("$6$", "SHA512-CRYPT"), ("$5$", "SHA256-CRYPT"), ("$1$", "MD5-CRYPT")] {
        let used = users.iter().find_map(|(user, s)| match s {
            Secret::Crypt(h) if h.starts_with(prefix) => Some((user, h)),
            _ => None,
        });
        if let Some((user, hash)) = used {
            if crypt(hash, b"").is_none() {
                return Err(format!(
                    "user {user}: this system's crypt(3) does not support {name} or the hash is malformed"
                ));
            }
        }
    }
    Ok(())
}

/// Reads the users file and returns `name`'s secret, if any.
pub fn lookup(path: &Path, name: &str) -> io::Result<Option<Secret>> {
    let text = fs::read_to_string(path)?;
    let users =
        parse(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))?;
    Ok(users.into_iter().find(|(n, _)| n == name).map(|(_, s)| s))
}

/// How many accounts of the users file carry SCRAM keys, for the mechanisms
/// offered. The answer is kept while the file's
/// identity, size and change time stay the same, so a session's CAPA does
/// not parse a large file again.
pub fn scram_keyed(path: &Path) -> ScramKeyed {
    use std::os::unix::fs::MetadataExt;
    type Seen = Option<(std::path::PathBuf, [i64; 5], ScramKeyed)>;
    static SEEN: std::sync::Mutex<Seen> = std::sync::Mutex::new(None);
    // Unreadable now: perhaps some have keys; a SCRAM login then gets the
    // [SYS/TEMP] every other login gets, and nothing is kept.
    let Ok(m) = fs::metadata(path) else { return ScramKeyed::Some };
    let stamp = [m.dev() as i64, m.ino() as i64, m.size() as i64, m.ctime(), m.ctime_nsec()];
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((p, s, keyed)) = seen.as_ref() {
        if p == path && *s == stamp {
            return *keyed;
        }
    }
    let Some(users) = fs::read_to_string(path).ok().and_then(|t| parse(&t).ok()) else { return ScramKeyed::Some };
    let keyed = users.iter().filter(|(_, s)| matches!(s, Secret::Scram(_))).count();
    let keyed = match keyed {
        0 => ScramKeyed::None,
        n if n == users.len() => ScramKeyed::All,
        _ => ScramKeyed::Some,
    };
    *seen = Some((path.to_path_buf(), stamp, keyed));
    keyed
}

/// Every user's EXPIRE and LOGIN-DELAY overrides, with the user's name.
pub fn overrides(path: &Path) -> io::Result<Vec<(String, Overrides)>> {
    let text = fs::read_to_string(path)?;
    let users = parse_entries(&text)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))?;
    Ok(users.into_iter().map(|(name, _, o)| (name, o)).collect())
}

/// Checks a password. `secret` None (unknown user) does the same work as a
/// wrong password and fails.
pub fn check_password(secret: Option<&Secret>, password: &[u8]) -> bool {
    let (hash, known) = match secret {
        Some(Secret::Crypt(h)) => (h.as_str(), true),
        Some(Secret::Plain(p)) => {
            // Hash anyway so timing does not reveal the scheme.
            let _ = crypt(DUMMY_HASH, password);
            return p.ct_eq(password).into();
        }
        Some(Secret::Scram(keys)) => return keys.verify_password(password),
        None => (DUMMY_HASH, false),
    };
    match crypt(hash, password) {
        Some(computed) => bool::from(computed.as_bytes().ct_eq(hash.as_bytes())) && known,
        None => false,
    }
}

/// crypt(3) of `password` with the salt and parameters of `setting`, by
/// the system's crypt (libxcrypt or musl), for the three schemes we accept.
fn crypt(setting: &str, password: &[u8]) -> Option<String> {
    ["$6$", "$5$", "$1$"].iter().any(|p| setting.starts_with(p)).then(|| crate::sys::crypt(setting, password))?
}

/// APOP (RFC 1939 section 7): `digest` must be the hex MD5 of the greeting's
/// challenge followed by the shared secret. Users without a plain secret fail
/// after the same work.
pub fn check_apop(secret: Option<&Secret>, challenge: &str, digest: &str) -> bool {
    let (plain, known): (&[u8], bool) = match secret {
        Some(Secret::Plain(p)) => (p, true),
        _ => (b"", false),
    };
    let mut md5 = Md5::new();
    md5.update(challenge.as_bytes());
    md5.update(plain);
    let expect = hex::encode(&md5.finalize());
    bool::from(expect.as_bytes().ct_eq(digest.to_ascii_lowercase().as_bytes())) && known
}

/// A users-file line `name:{SCRAM-SHA-256}...` for the password on the first
/// line of `input` (a random 16-byte salt, 4096 iterations as RFC 7677 asks).
pub fn scram_line(name: &str, mut input: impl std::io::BufRead) -> Result<String, String> {
    // The name as a SCRAM login will look it up (RFC 5802: SASLprep).
    let prepared = crate::saslprep::saslprep(name).ok_or_else(|| format!("invalid user name {name:?}"))?;
    let name: &str = &prepared;
    if !valid_name(name) {
        return Err(format!("invalid user name {name:?}"));
    }
    let mut password = String::new();
    input.read_line(&mut password).map_err(|e| format!("reading the password: {e}"))?;
    let password = password.trim_end_matches(['\r', '\n']);
    // SCRAM hashes the prepared password (RFC 5802 section 2.2).
    let password = crate::saslprep::saslprep(password).ok_or("the password holds a character SASLprep prohibits")?;
    if password.is_empty() {
        return Err("empty password".into());
    }
    let mut salt = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
        .map_err(|_| "no random source for the salt".to_string())?;
    Ok(format!("{name}:{{SCRAM-SHA-256}}{}", ScramKeys::derive(password.as_bytes(), &salt, 4096).to_text()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const USERS: &str = include_str!("../etc/users.example");

    fn secret(name: &str) -> Option<Secret> {
        parse(USERS).unwrap().into_iter().find(|(n, _)| n == name).map(|(_, s)| s)
    }

    #[test]
    fn every_scheme_of_the_example_file() {
        for name in ["demo", "sha256", "md5", "apopuser", "scram"] {
            let s = secret(name).unwrap();
            assert!(check_password(Some(&s), b"secret"), "{name}");
            assert!(!check_password(Some(&s), b"Secret"), "{name}");
        }
        assert!(!check_password(None, b"secret"));
    }

    #[test]
    fn dovecot_style_prefixes() {
        let users = parse("a:{SHA512-CRYPT}$6$pop3ddemo$v.qzGaYGZyiFyZXdQJyydnGuFB7rjPJ9J76.Yqf5tjQfl91Phkj8Js1AMDa/DkssDAviSWrahqLEdgzFO7jOA1\n").unwrap();
        assert!(check_password(Some(&users[0].1), b"secret"));
        assert!(parse("a:{SSHA}xyz\n").is_err());
        assert!(parse("a:{PLAIN}\n").is_err(), "an empty secret");
        assert!(parse("a:nohash\n").is_err());
        assert!(parse("../x:$1$a$b\n").is_err());
    }

    #[test]
    fn the_system_crypt_computes_every_scheme() {
        assert_eq!(check_schemes(&parse(USERS).unwrap()), Ok(()));
        // glibc/libxcrypt's own test vectors for sha512crypt and md5crypt.
        assert_eq!(
            crypt("$6$saltstring", b"Hello world!").as_deref(),
            Some(
                "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
            )
        );
        assert_eq!(crypt("$1$saltstri$", b"Hello world!").as_deref(), Some("$1$saltstri$YMyguxXMBpd2TEZ.vS/3q1"));
        assert_eq!(crypt("$6$x$", b"pass\0word"), None, "a NUL in the password");
        assert_eq!(crypt("$7$x$", b"secret"), None, "a scheme we do not accept");
        let broken = parse("a:$6$rounds=many$salt$hash\n").unwrap();
        assert!(check_schemes(&broken).unwrap_err().contains("user a:"), "a setting crypt refuses");
    }

    #[test]
    fn extra_fields_give_overrides_and_shadow_lines_still_parse() {
        let text =
            format!("a:{{PLAIN}}x::::::pop3_expire=7 pop3_login_delay=60\nb:{}:19000:0:99999:7:::\n", DUMMY_HASH);
        let users = parse_entries(&text).unwrap();
        assert_eq!(users[0].2.expire, Some(crate::policy::Expire::Days(7)));
        assert_eq!(users[0].2.login_delay, Some(60));
        assert_eq!(users[1].2, Overrides::default());
        assert!(parse("a:{PLAIN}x::::::pop3_expire=soon\n").unwrap_err().starts_with("line 1: pop3_expire"));
    }

    #[test]
    fn apop_rfc1939_example() {
        let s = Secret::Plain(b"tanstaaf".to_vec());
        let challenge = "<1896.697170952@dbc.mtview.ca.us>";
        assert!(check_apop(Some(&s), challenge, "c4c9334bac560ecc979e58001b3e22fb"));
        assert!(!check_apop(Some(&s), challenge, "c4c9334bac560ecc979e58001b3e22fc"));
        assert!(!check_apop(secret("demo").as_ref(), challenge, "c4c9334bac560ecc979e58001b3e22fb"));
    }

    #[test]
    fn scram_lines_verify_their_password() {
        let line = scram_line("carol", &b"pencil\n"[..]).unwrap();
        let users = parse(&line).unwrap();
        assert_eq!(users[0].0, "carol");
        assert!(check_password(Some(&users[0].1), b"pencil"));
        assert!(!check_password(Some(&users[0].1), b"pencil2"));
        assert!(users[0].1.scram().is_some());
        assert!(scram_line("../x", &b"p\n"[..]).is_err());
    }

    #[test]
    fn names() {
        for ok in ["alice", "a.b", "user@example.com", "x-1_2+3", "j\u{FC}rgen", "\u{5F20}\u{4F1F}"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../etc",
            "a/b",
            "a\0b",
            ".hidden",
            &"x".repeat(MAX_USER_NAME + 1),
            "a\u{A0}b",
            "a\u{2215}b",
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }
}
