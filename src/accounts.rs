//! System accounts: a user's /etc/passwd and /etc/shadow entries, which of them may log in, and the password check (run only by the privileged helper).

use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use subtle::ConstantTimeEq;

use crate::limits::MAX_PASSWORD;

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
pub enum Refusal {
    WrongPassword,
    Unknown,
    Locked,
    NoPassword,
    Expired,
    PasswordExpired,
    Root,
    /// A hash scheme not accepted (traditional DES, or one crypt(3) lacks).
    Scheme,
}

/// The salt and cost used for users who do not exist, so their check costs
/// what a wrong password for a real `$6$` user does (5,000 rounds, the default).
const DUMMY_SETTING: &str = "$6$pop3dnobodysalt$";

/// Checks `password` for `name` against the account files: the account on
/// success; a refusal (after a crypt(3) of the same cost as a real check)
/// otherwise. `today` is in days since 1970 (shadow's unit).
pub fn check(files: &Files, name: &str, password: &[u8], today: i64) -> io::Result<Result<Account, Refusal>> {
    let passwd = std::fs::read_to_string(&files.passwd)?;
    let shadow = std::fs::read_to_string(&files.shadow)?;
    let account = find(&passwd, name).and_then(parse_passwd);
    let entry = find(&shadow, name).map(Shadow::parse);
    // The setting hashed when this user cannot log in: the first usable
    // hash of the file has the cost real users have.
    let stand_in = shadow.lines().filter_map(|l| Shadow::parse(l).usable_hash()).next().unwrap_or(DUMMY_SETTING);
    let verdict = match (&account, &entry) {
        (Some(a), Some(e)) => match e.refusal(today) {
            _ if a.uid == 0 => Err(Refusal::Root),
            Some(r) => Err(r),
            None => Ok(e.hash),
        },
        _ => Err(Refusal::Unknown),
    };
    let setting = verdict.unwrap_or(stand_in);
    let matches = password.len() <= MAX_PASSWORD
        && crate::sys::crypt(setting, password).is_some_and(|h| bool::from(h.as_bytes().ct_eq(setting.as_bytes())));
    Ok(match (verdict, account) {
        (Ok(_), Some(account)) if matches => Ok(account),
        (Ok(_), _) => Err(Refusal::WrongPassword),
        (Err(r), _) => Err(r),
    })
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
}

impl<'a> Shadow<'a> {
    fn parse(line: &'a str) -> Shadow<'a> {
        let f: Vec<&str> = line.split(':').collect();
        let day = |i: usize| f.get(i).and_then(|v| v.parse::<i64>().ok()).filter(|d| *d >= 0);
        Shadow { hash: f.get(1).copied().unwrap_or(""), last_change: day(2), max_age: day(4), expire: day(7) }
    }

    /// Why this entry cannot log in today, whatever the password.
    fn refusal(&self, today: i64) -> Option<Refusal> {
        if self.hash.is_empty() {
            return Some(Refusal::NoPassword);
        }
        if self.hash.starts_with(['!', '*']) {
            return Some(Refusal::Locked);
        }
        if self.expire.is_some_and(|e| today >= e) {
            return Some(Refusal::Expired);
        }
        match (self.last_change, self.max_age) {
            (Some(0), _) => return Some(Refusal::PasswordExpired),
            (Some(changed), Some(max)) if today > changed.saturating_add(max) => return Some(Refusal::PasswordExpired),
            _ => {}
        }
        if !["$6$", "$5$", "$1$"].iter().any(|p| self.hash.starts_with(p)) {
            return Some(Refusal::Scheme);
        }
        None
    }

    /// The hash, when this entry is of a scheme accepted.
    fn usable_hash(&self) -> Option<&'a str> {
        (self.hash.starts_with("$6$") && self.hash.len() > 4).then_some(self.hash)
    }
}

#[cfg(test)]
mod tests;
