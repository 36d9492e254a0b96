//! System accounts: a user's passwd and shadow entries, which may log in, and the password check.
//!
//! The password check runs only in the privileged helper.

use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use subtle::ConstantTimeEq;

use crate::limits::{ACCOUNT_FILE_MAX, MAX_PASSWORD};

/// What the helper hands out for an account that logged in: never a hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub uid: u32,
    pub gid: u32,
    /// The home directory from passwd (`%h` in the `mailbox` template).
    pub home: String,
}

/// Where the account files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Files {
    pub passwd: std::path::PathBuf,
    pub shadow: std::path::PathBuf,
}

/// Why an entry cannot log in whatever the password (for the log only: the
/// client hears the same answer as for a wrong password).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Refusal {
    WrongPassword,
    Unknown,
    Locked,
    NoPassword,
    Expired,
    PasswordExpired,
    /// uid 0 or gid 0: sessions never run as root or in root's group.
    Root,
    /// A hash scheme not accepted (traditional DES, or one crypt(3) lacks).
    Scheme,
    /// An aging or expiry field that is not a number of days.
    BadEntry,
}

impl Refusal {
    const ALL: [Refusal; 9] = [
        Refusal::WrongPassword,
        Refusal::Unknown,
        Refusal::Locked,
        Refusal::NoPassword,
        Refusal::Expired,
        Refusal::PasswordExpired,
        Refusal::Root,
        Refusal::Scheme,
        Refusal::BadEntry,
    ];

    /// The refusal sent as `code` (`refusal as u8`) from the check's process.
    pub fn from_code(code: u8) -> Option<Refusal> {
        Refusal::ALL.into_iter().find(|r| *r as u8 == code)
    }

    /// For the log line.
    pub fn describe(refusal: Option<Refusal>) -> &'static str {
        match refusal {
            Some(Refusal::WrongPassword) => "wrong password",
            Some(Refusal::Unknown) => "unknown user",
            Some(Refusal::Locked) => "the account is locked (! or * in shadow)",
            Some(Refusal::NoPassword) => "the account has no password",
            Some(Refusal::Expired) => "the account has expired (shadow expiry date)",
            Some(Refusal::PasswordExpired) => "the password has expired (maximum age, or must be changed)",
            Some(Refusal::Root) => "uid or gid 0 never logs in",
            Some(Refusal::Scheme) => "a hash scheme this system's crypt(3) does not compute, or DES",
            Some(Refusal::BadEntry) => "a shadow aging field is not a number",
            None => "an unknown reason",
        }
    }
}

/// The salt and cost used for users who do not exist when shadow has no
/// usable entry to borrow them from (5,000 rounds, SHA512-CRYPT's default).
const DUMMY_SETTING: &str = "$6$pop3dnobodysalt$";

/// Checks `password` for `name` against the account files: the account on
/// success; a refusal (after a crypt(3) of the same cost as a real check)
/// otherwise. `today` is in days since 1970 (shadow's unit).
pub fn check(files: &Files, name: &str, password: &[u8], today: i64) -> io::Result<Result<Account, Refusal>> {
    let passwd = read_account_file(&files.passwd)?;
    let shadow = read_account_file(&files.shadow)?;
    let account = find(&passwd, name).and_then(parse_passwd);
    let entry = find(&shadow, name).map(Shadow::parse);
    // The setting hashed when this user cannot log in: the first usable
    // entry's, so the work is what a real user's wrong password costs.
    let stand_in =
        shadow.lines().map(Shadow::parse).find(|e| e.refusal(today).is_none()).map_or(DUMMY_SETTING, |e| e.hash);
    let verdict = match (&account, &entry) {
        (Some(a), Some(e)) => match e.refusal(today) {
            _ if a.uid == 0 || a.gid == 0 => Err(Refusal::Root),
            Some(r) => Err(r),
            None => Ok(e.hash),
        },
        _ => Err(Refusal::Unknown),
    };
    let setting = verdict.unwrap_or(stand_in);
    // A password over the limit costs the same hash and fails.
    let hashed = crate::sys::crypt(setting, &password[..password.len().min(MAX_PASSWORD)]);
    let matches = password.len() <= MAX_PASSWORD
        && hashed.as_deref().is_some_and(|h| bool::from(h.as_bytes().ct_eq(setting.as_bytes())));
    Ok(match (verdict, account) {
        // The system's crypt(3) cannot compute this scheme (yescrypt on musl, say).
        (Ok(_), _) if hashed.is_none() => Err(Refusal::Scheme),
        (Ok(_), Some(account)) if matches => Ok(account),
        (Ok(_), _) => Err(Refusal::WrongPassword),
        (Err(r), _) => Err(r),
    })
}

/// Reads passwd or shadow: a regular file (never a FIFO to block on) of
/// bounded size.
fn read_account_file(path: &std::path::Path) -> io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() || meta.len() > ACCOUNT_FILE_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: not a regular file of at most {ACCOUNT_FILE_MAX} bytes", path.display()),
        ));
    }
    let mut text = String::new();
    file.take(ACCOUNT_FILE_MAX).read_to_string(&mut text)?;
    Ok(text)
}

/// Today in days since 1970-01-01 (UTC), shadow's date unit.
pub fn today() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| (d.as_secs() / 86_400) as i64)
}

/// The line of `text` whose first field is `name`.
fn find<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find(|l| l.split(':').next() == Some(name))
}

/// `name:x:uid:gid:gecos:home:shell`.
fn parse_passwd(line: &str) -> Option<Account> {
    let f: Vec<&str> = line.split(':').collect();
    if f.len() != 7 || !f[5].starts_with('/') {
        return None;
    }
    Some(Account { uid: f[2].parse().ok()?, gid: f[3].parse().ok()?, home: f[5].to_string() })
}

/// A shadow(5) entry: `name:hash:lastchg:min:max:warn:inactive:expire:`.
struct Shadow<'a> {
    hash: &'a str,
    /// Days since 1970 of the last change; 0 means "change at next login".
    last_change: Option<i64>,
    max_age: Option<i64>,
    expire: Option<i64>,
    /// A day field that is neither empty nor a number.
    malformed: bool,
}

impl<'a> Shadow<'a> {
    fn parse(line: &'a str) -> Shadow<'a> {
        let f: Vec<&str> = line.split(':').collect();
        let mut malformed = false;
        let mut day = |i: usize| match f.get(i).copied().unwrap_or("") {
            "" => None,
            v => match v.parse::<i64>() {
                // -1 is how some tools write "not set".
                Ok(d) => (d >= 0).then_some(d),
                Err(_) => {
                    malformed = true;
                    None
                }
            },
        };
        let (last_change, max_age, expire) = (day(2), day(4), day(7));
        Shadow { hash: f.get(1).copied().unwrap_or(""), last_change, max_age, expire, malformed }
    }

    /// Why this entry cannot log in today, whatever the password.
    fn refusal(&self, today: i64) -> Option<Refusal> {
        if self.hash.is_empty() {
            return Some(Refusal::NoPassword);
        }
        if self.hash.starts_with(['!', '*']) {
            return Some(Refusal::Locked);
        }
        if self.malformed {
            return Some(Refusal::BadEntry);
        }
        if self.expire.is_some_and(|e| today >= e) {
            return Some(Refusal::Expired);
        }
        match (self.last_change, self.max_age) {
            (Some(0), _) => return Some(Refusal::PasswordExpired),
            // shadow-utils: expired from the day last change + maximum age on.
            (Some(changed), Some(max)) if today >= changed.saturating_add(max) => {
                return Some(Refusal::PasswordExpired)
            }
            _ => {}
        }
        // crypt(3) schemes all start with `$` (`$6$`, `$y$`, `$2b$`...);
        // traditional DES (13 characters, 8-character passwords) is refused.
        if !self.hash.starts_with('$') || self.hash.len() < 4 {
            return Some(Refusal::Scheme);
        }
        None
    }
}

#[cfg(test)]
mod tests;
