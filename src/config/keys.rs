//! Every configuration key once: its name, its type, its default as the file says it, and the reader of its value.
//!
//! The table below makes `Raw` (what the file and `-o` said, a field per
//! key), its defaults and `Raw::set`; `Raw::finish` (in `config`) makes the
//! `Config` the server runs with. The man page and etc/pop3d.conf document
//! every key of it with its default (the tests below hold them to it).
//!
//! A new key is a line in the table (`name: Type = "default", reader;`,
//! the reader one of `read`'s or a small function here), its field in
//! `Config` and the line of `Raw::finish` that fills it, and its entry in
//! pop3d.conf(5) and etc/pop3d.conf.

use std::path::PathBuf;
use std::time::Duration;

use super::read::{self, Read};
use super::{AccountSource, Listen, LogTarget, MailboxTemplate, Plaintext};
use crate::limits::MIN_SESSION_TIMEOUT;
use crate::lock::LockMethod;
use crate::maildrop::{FromQuoting, Workarounds};
use crate::policy::Expire;
use crate::proxy::Trusted;

/// A key of the table, for the documentation tests.
pub struct Key {
    pub name: &'static str,
    /// Its default as the file would say it; None where that is no fixed
    /// text (`hostname`: the system's).
    pub default: Option<&'static str>,
}

/// `name: Type = "default", reader;` per key: `Raw` gets a field `name`,
/// `Raw::default` the default read by the reader (`none`: `None`), and
/// `Raw::set` the reader, a `fn(&str) -> Read<Type>`.
macro_rules! keys {
    ($($(#[$doc:meta])* $name:ident: $type:ty = $default:tt, $read:expr;)*) => {
        /// What the configuration file and `-o` said: every key's value, read
        /// by its type; keys not given have their defaults.
        #[derive(Debug, Clone)]
        pub struct Raw {
            $($(#[$doc])* pub $name: $type,)*
            /// The keys given (`listen` was not: the default listeners follow TLS).
            given: Vec<String>,
        }

        /// Every key, in the order of the table.
        pub const KEYS: &[Key] = &[$(Key { name: stringify!($name), default: default_text!($default) },)*];

        impl Default for Raw {
            fn default() -> Raw {
                Raw { $($name: default_value!($default, $read, stringify!($name)),)* given: Vec::new() }
            }
        }

        impl Raw {
            /// Reads `value` into the field of `key`; None for a key not in the table.
            fn read(&mut self, key: &str, value: &str) -> Option<Read<()>> {
                Some(match key {
                    $(stringify!($name) => ($read)(value).map(|v| self.$name = v),)*
                    _ => return None,
                })
            }
        }
    };
}

macro_rules! default_text {
    (none) => {
        None
    };
    ($text:literal) => {
        Some($text)
    };
}

macro_rules! default_value {
    (none, $read:expr, $name:expr) => {
        None
    };
    // Every default reads: `Raw::default` runs in every test of `config`.
    ($text:literal, $read:expr, $name:expr) => {
        ($read)($text).unwrap_or_else(|e| panic!("the default of `{}`: {e}", $name))
    };
}

keys! {
    // Listening and TLS.
    /// Not given: port 110 on IPv4 and IPv6, and 995 (implicit TLS) when TLS is set up.
    listen: Vec<Listen> = "0.0.0.0:110, [::]:110", listeners;
    /// No certificate, no TLS: a box has none until its operator makes one.
    tls_cert: Option<PathBuf> = "", read::optional_path;
    tls_key: Option<PathBuf> = "", read::optional_path;
    tls_client_ca: Option<PathBuf> = "", read::optional_path;
    /// Reusable secrets in the clear only on loopback (stunnel, ssh, a local MUA).
    plaintext_auth: Plaintext = "loopback", |v| read::one_of(v, Plaintext::NAMES);
    /// `auto`: what can succeed for the accounts there are and the clients on their defaults.
    auth_mechanisms: crate::sasl::Mechanisms = "auto", mechanisms;
    // Accounts and mailboxes.
    /// Empty: none (pop3d then refuses to start as root).
    user: Option<String> = "mail", read::optional_text;
    users_file: PathBuf = "/etc/pop3d/users", read::path;
    accounts: AccountSource = "file", |v| read::one_of(v, AccountSource::NAMES);
    passwd_file: PathBuf = "/etc/passwd", read::path;
    shadow_file: PathBuf = "/etc/shadow", read::path;
    mailbox: MailboxTemplate = "/var/mail/%u", MailboxTemplate::parse;
    state_dir: PathBuf = "/var/lib/pop3d", read::path;
    /// About 100 bytes each while a maildrop is open: 25 MB at most per session.
    max_messages: usize = "250000", read::number;
    max_mailbox_size: u64 = "8G", read::size;
    workarounds: Workarounds = "", workaround_names;
    uidl_from_x_uidl: bool = "no", read::boolean;
    maildir_info_separator: u8 = ":", |v| read::one_of(v, &[(":", b':'), (";", b';')]);
    // mbox files.
    mbox_format: FromQuoting = "mboxrd", |v| read::one_of(v, MBOX_FORMATS);
    /// All three: every delivery agent, whichever it takes, waits for a rewrite.
    mbox_locking: Vec<LockMethod> = "fcntl, dotlock, flock", lock_methods;
    lock_timeout: Duration = "10", read::seconds;
    // Protocol.
    apop: bool = "no", read::boolean;
    /// Not given: the system's host name.
    hostname: Option<String> = none, host_name;
    max_sessions: usize = "200", read::positive;
    /// 64 concurrent clients from one address (a fetchmail host, an office behind NAT) with room.
    max_sessions_per_ip: usize = "100", read::positive;
    max_prelogin: usize = "100", read::positive;
    max_prelogin_per_network: usize = "80", read::positive;
    /// A customer has one IPv4 address and a whole IPv6 /64.
    network_prefix_ipv4: u8 = "32", read::prefix_len::<32>;
    network_prefix_ipv6: u8 = "64", read::prefix_len::<128>;
    /// A month: a laptop or a phone back from a trip is still known at home.
    known_network_days: u64 = "30", known_days;
    proxy_trusted: Trusted = "", proxies;
    timeout_login: Duration = "60", |v| read::seconds_at_least(v, Duration::from_secs(1), "expected seconds above 0");
    timeout_session: Duration = "600", session_timeout;
    max_bad_commands: u32 = "5", read::number;
    /// SIGTERM: logged-in sessions get this long to finish (a client in the
    /// middle of RETR and QUIT completes), then the daemon ends after any
    /// UPDATE running; shorter than the init script's and systemd's wait
    /// before SIGKILL (10 s, 90 s).
    shutdown_grace: Duration = "8", read::seconds;
    expire: Expire = "never", expire_days;
    login_delay: u64 = "0", read::number;
    // Logging.
    log: LogTarget = "syslog", log_target;
    log_level: log::LevelFilter = "info", |v| read::one_of(v, LOG_LEVELS);
}

impl Raw {
    /// Reads a configuration file's text over the defaults. Errors name the line.
    pub fn parse(text: &str) -> Result<Raw, String> {
        let mut raw = Raw::default();
        let mut seen = Vec::new();
        for (no, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) =
                line.split_once('=').ok_or_else(|| format!("line {}: expected `key = value`", no + 1))?;
            let key = key.trim();
            if seen.contains(&key) {
                return Err(format!("line {}: `{key}` is set twice", no + 1));
            }
            seen.push(key);
            raw.set(key, value.trim()).map_err(|e| format!("line {}: {e}", no + 1))?;
        }
        Ok(raw)
    }

    /// Sets one key from its text value (a line of the file, `-o`, `-l`).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let read = self.read(key, value).ok_or_else(|| format!("unknown key `{key}`"))?;
        read.map_err(|what| format!("`{key}`: {what}, got `{value}`"))?;
        if !self.given(key) {
            self.given.push(key.to_string());
        }
        Ok(())
    }

    /// Whether `key` was set (by the file, `-o` or `-l`) rather than left at its default.
    pub fn given(&self, key: &str) -> bool {
        self.given.iter().any(|k| k == key)
    }
}

const MBOX_FORMATS: &[(&str, FromQuoting)] = &[("mboxrd", FromQuoting::Mboxrd), ("mboxo", FromQuoting::Mboxo)];

const LOG_LEVELS: &[(&str, log::LevelFilter)] = &[
    ("error", log::LevelFilter::Error),
    ("warn", log::LevelFilter::Warn),
    ("info", log::LevelFilter::Info),
    ("debug", log::LevelFilter::Debug),
];

/// `timeout_session`: RFC 1939 section 3, the autologout timer is at least 10 minutes.
fn session_timeout(value: &str) -> Read<Duration> {
    read::seconds_at_least(value, MIN_SESSION_TIMEOUT, "RFC 1939 requires at least 600 seconds")
}

/// `known_network_days`: whole days, at most ten years.
fn known_days(value: &str) -> Read<u64> {
    read::number::<u64>(value).ok().filter(|d| *d <= 3650).ok_or_else(|| "expected days (0-3650)".into())
}

/// `auth_mechanisms`: auto, none, or a list of mechanism names.
fn mechanisms(value: &str) -> Read<crate::sasl::Mechanisms> {
    crate::sasl::Mechanisms::parse(value)
        .ok_or_else(|| "expected auto, none or a list of SCRAM-SHA-256(-PLUS), PLAIN, LOGIN, EXTERNAL".into())
}

fn expire_days(value: &str) -> Read<Expire> {
    Expire::parse(value).ok_or_else(|| "expected days or never".into())
}

/// `listen`: at least one `ADDR [tls] [plaintext=MODE]`.
fn listeners(value: &str) -> Read<Vec<Listen>> {
    let expected = "expected entries like `0.0.0.0:110`, `[::]:995 tls` or `0.0.0.0:110 plaintext=yes`";
    let listen = read::list_of(value, Listen::parse, expected)?;
    if listen.is_empty() {
        return Err("expected at least one address".into());
    }
    Ok(listen)
}

/// `mbox_locking`: each method at most once (twice the same lock would wait
/// for itself until lock_timeout), and at least one.
fn lock_methods(value: &str) -> Read<Vec<LockMethod>> {
    let methods = read::list_of(value, LockMethod::parse, "expected fcntl, flock and/or dotlock")?;
    if methods.is_empty() || methods.iter().enumerate().any(|(i, m)| methods[..i].contains(m)) {
        return Err("expected each of fcntl, flock, dotlock at most once, and at least one".into());
    }
    Ok(methods)
}

/// `hostname`: printable ASCII without blanks, `<` or `>` (it goes into the APOP challenge).
fn host_name(value: &str) -> Read<Option<String>> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>') {
        return Err("expected a host name".into());
    }
    Ok(Some(value.to_string()))
}

fn workaround_names(value: &str) -> Read<Workarounds> {
    Workarounds::parse(value).ok_or_else(|| "expected a list of outlook-no-nuls, oe-ns-eoh, or nothing".into())
}

fn proxies(value: &str) -> Read<Trusted> {
    Trusted::parse(value).ok_or_else(|| "expected addresses or networks like `10.0.0.5, 192.168.0.0/24`".into())
}

/// `log`: syslog, stderr or a file.
fn log_target(value: &str) -> Read<LogTarget> {
    Ok(match value {
        "syslog" => LogTarget::Syslog,
        "stderr" => LogTarget::Stderr,
        _ => LogTarget::File(read::path(value).map_err(|_| "expected syslog, stderr or an absolute path")?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a `Raw` holds, whatever was given.
    fn values(raw: &Raw) -> String {
        format!("{:?}", Raw { given: Vec::new(), ..raw.clone() })
    }

    /// Whether `text`, said of `key` in the documentation, is its default.
    fn is_default(key: &Key, text: &str) -> bool {
        let mut raw = Raw::default();
        raw.set(key.name, text).is_ok() && values(&raw) == values(&Raw::default())
    }

    /// The man page's KEYS section as (key, the text after `Default:`): an
    /// entry is a `.TP` then `.B key` outside any `.RS` list of values.
    fn man_page_defaults() -> Vec<(String, String)> {
        let page = include_str!("../../man/pop3d.conf.5");
        let section = page.split("\n.SH KEYS\n").nth(1).unwrap().split("\n.SH ").next().unwrap();
        let lines: Vec<&str> = section.lines().collect();
        let mut entries: Vec<(String, Vec<&str>)> = Vec::new();
        let mut depth = 0;
        for (i, line) in lines.iter().enumerate() {
            match *line {
                ".RS" => depth += 1,
                ".RE" => depth -= 1,
                ".TP" if depth == 0 => {
                    let name = lines[i + 1].strip_prefix(".B ").expect("a key after .TP");
                    entries.push((name.to_string(), Vec::new()));
                    continue;
                }
                _ => {}
            }
            if let Some((_, text)) = entries.last_mut() {
                text.push(line);
            }
        }
        entries
            .into_iter()
            .map(|(name, text)| {
                let at =
                    text.iter().position(|l| l.starts_with("Default:")).unwrap_or_else(|| panic!("{name}: no default"));
                let said = text[at]["Default:".len()..].trim();
                let said = if said.is_empty() { text[at + 1] } else { said };
                // `.BR value .`, `.BR "a, b" ,` or plain text (`none.`).
                let default = match said.strip_prefix(".BR ").or_else(|| said.strip_prefix(".B ")) {
                    Some(arg) if arg.starts_with('"') => arg[1..].split('"').next().unwrap().to_string(),
                    Some(arg) => arg.split(' ').next().unwrap().to_string(),
                    None => said.to_string(),
                };
                (name, default.replace("\\-", "-"))
            })
            .collect()
    }

    #[test]
    fn every_default_reads_and_is_kept_by_its_reader() {
        for key in KEYS {
            if let Some(text) = key.default {
                assert!(is_default(key, text), "{}", key.name);
            }
        }
        assert!(KEYS.iter().enumerate().all(|(i, k)| KEYS[..i].iter().all(|j| j.name != k.name)), "a key twice");
    }

    #[test]
    fn the_man_page_documents_every_key_with_its_default() {
        let documented = man_page_defaults();
        let names: Vec<&str> = documented.iter().map(|(name, _)| name.as_str()).collect();
        for key in KEYS {
            assert!(names.contains(&key.name), "pop3d.conf(5) does not document `{}`", key.name);
        }
        for (name, said) in &documented {
            let key = KEYS.iter().find(|k| k.name == name).unwrap_or_else(|| panic!("pop3d.conf(5): no key `{name}`"));
            match key.default {
                Some(_) if said.starts_with("none") => assert!(is_default(key, ""), "{name}: not none"),
                Some(_) => assert!(is_default(key, said), "pop3d.conf(5): `{name}` defaults to `{said}`? no"),
                None => assert!(!said.starts_with(".B") && !is_default(key, said), "{name}: `{said}`"),
            }
        }
    }

    #[test]
    fn the_example_file_shows_every_key() {
        let example = include_str!("../../etc/pop3d.conf");
        let shown: Vec<&str> = example
            .lines()
            .filter_map(|l| l.trim_start_matches('#').split_once(" = "))
            .map(|(k, _)| k.trim())
            .filter(|k| !k.contains(' '))
            .collect();
        for key in KEYS {
            assert!(shown.contains(&key.name), "etc/pop3d.conf does not show `{}`", key.name);
        }
        // And what it sets is the default (the whole file: `config`'s tests).
        let raw = Raw::parse(example).unwrap();
        assert_eq!(values(&Raw { listen: Raw::default().listen, ..raw }), values(&Raw::default()));
    }
}
