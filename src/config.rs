//! The configuration: defaults, the `key = value` file, command-line overrides and validation.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::limits::{MIN_SESSION_TIMEOUT, SHUTDOWN_GRACE};
use crate::lock::LockMethod;
use crate::maildrop::Location;
use crate::maildrop::{FromQuoting, Limits, MboxSettings};
use crate::policy::{Expire, Policy};
use crate::sys;
use crate::tls::TlsFiles;

/// Where log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    Syslog,
    Stderr,
    File(PathBuf),
}

/// Where plaintext logins (USER/PASS, APOP, AUTH PLAIN) are allowed without TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plaintext {
    Never,
    /// Only from a loopback address (the default).
    Loopback,
    Always,
}

impl Plaintext {
    fn parse(value: &str) -> Option<Plaintext> {
        match value {
            "no" => Some(Plaintext::Never),
            "loopback" => Some(Plaintext::Loopback),
            "yes" => Some(Plaintext::Always),
            _ => None,
        }
    }

    /// Whether a client at `peer` may log in without TLS. `None` is a client
    /// on a pipe or Unix socket (ssh, stunnel): local, like loopback.
    pub fn allows(self, peer: Option<IpAddr>) -> bool {
        match self {
            Plaintext::Never => false,
            Plaintext::Always => true,
            Plaintext::Loopback => peer.is_none_or(|ip| ip.to_canonical().is_loopback()),
        }
    }
}

/// Where accounts and their passwords come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountSource {
    /// pop3d's own users file (`users_file`).
    UsersFile,
    /// The system's passwd and shadow, checked by a privileged helper.
    System,
}

/// One listening address and how sessions on it start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub addr: SocketAddr,
    /// Implicit TLS (port 995): handshake first, then the greeting.
    pub tls: bool,
    /// Overrides `plaintext_auth` for this listener.
    pub plaintext: Option<Plaintext>,
}

impl Listen {
    /// `ADDR [tls] [plaintext=yes|no|loopback]`.
    fn parse(entry: &str) -> Option<Listen> {
        let mut words = entry.split_ascii_whitespace();
        let mut listen = Listen { addr: words.next()?.parse().ok()?, tls: false, plaintext: None };
        for word in words {
            match word.split_once('=') {
                None if word == "tls" => listen.tls = true,
                Some(("plaintext", v)) => listen.plaintext = Some(Plaintext::parse(v)?),
                _ => return None,
            }
        }
        Some(listen)
    }
}

/// Every setting; see etc/pop3d.conf for each key's meaning.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Vec<Listen>,
    /// `listen` was set; otherwise TLS adds the port 995 listeners.
    listen_set: bool,
    pub tls: Option<TlsFiles>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_client_ca: Option<PathBuf>,
    pub plaintext_auth: Plaintext,
    /// The SASL mechanisms offered where usable.
    pub auth_mechanisms: crate::sasl::Mechanisms,
    pub user: Option<String>,
    /// Whose accounts log in: the users file's or the system's.
    pub accounts: AccountSource,
    pub users_file: PathBuf,
    /// passwd and shadow, for `accounts = system`.
    pub account_files: crate::accounts::Files,
    pub mailbox: String,
    pub state_dir: PathBuf,
    pub limits: Limits,
    pub mbox: MboxSettings,
    pub apop: bool,
    pub hostname: String,
    pub max_sessions: usize,
    pub max_sessions_per_ip: usize,
    /// Sessions not logged in yet, in all and per network.
    pub max_prelogin: usize,
    pub max_prelogin_per_network: usize,
    pub timeout_login: Duration,
    pub timeout_session: Duration,
    pub max_bad_commands: u32,
    /// SIGTERM: how long logged-in sessions may go on.
    pub shutdown_grace: Duration,
    /// Addresses are grouped into networks of these prefix lengths for the
    /// failure records and the pre-login budget.
    pub network_prefix_ipv4: u8,
    pub network_prefix_ipv6: u8,
    /// An account's logins from a network it logged in from within this
    /// period wait only behind its own failures (`known_network_days`; 0: never).
    pub known_network_period: Duration,
    /// EXPIRE and LOGIN-DELAY for users without their own.
    pub policy: Policy,
    /// `:` or `;` (FAT/SMB Maildirs): starts the info of Maildir names.
    pub maildir_info_separator: u8,
    /// Peers whose connections start with a PROXY protocol header.
    pub proxy_trusted: crate::proxy::Trusted,
    /// Client workarounds (`outlook-no-nuls`, `oe-ns-eoh`).
    pub workarounds: crate::maildrop::Workarounds,
    /// Reuse `X-UIDL:` headers as UIDLs (migration from qpopper, mailutils).
    pub uidl_from_x_uidl: bool,
    pub log: LogTarget,
    pub log_level: log::LevelFilter,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: default_listen(false),
            listen_set: false,
            tls: None,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            plaintext_auth: Plaintext::Loopback,
            auth_mechanisms: Default::default(),
            user: Some("mail".into()),
            accounts: AccountSource::UsersFile,
            users_file: "/etc/pop3d/users".into(),
            account_files: crate::accounts::Files { passwd: "/etc/passwd".into(), shadow: "/etc/shadow".into() },
            mailbox: "/var/mail/%u".into(),
            state_dir: "/var/lib/pop3d".into(),
            limits: Limits { max_messages: 250_000, max_size: 8 << 30 },
            mbox: MboxSettings {
                quoting: FromQuoting::Mboxrd,
                locking: vec![LockMethod::Fcntl, LockMethod::Dotlock, LockMethod::Flock],
                lock_timeout: Duration::from_secs(10),
            },
            apop: false,
            hostname: system_hostname(),
            max_sessions: 200,
            max_sessions_per_ip: 100,
            max_prelogin: 100,
            max_prelogin_per_network: 80,
            timeout_login: Duration::from_secs(60),
            timeout_session: MIN_SESSION_TIMEOUT,
            max_bad_commands: 5,
            shutdown_grace: SHUTDOWN_GRACE,
            network_prefix_ipv4: 32,
            network_prefix_ipv6: 64,
            known_network_period: Duration::from_secs(30 * 24 * 3600),
            policy: Policy::default(),
            maildir_info_separator: b':',
            uidl_from_x_uidl: false,
            workarounds: Default::default(),
            proxy_trusted: Default::default(),
            log: LogTarget::Syslog,
            log_level: log::LevelFilter::Info,
        }
    }
}

impl Config {
    /// Parses a configuration file's text over the defaults. Errors name the line.
    pub fn parse(text: &str) -> Result<Config, String> {
        let mut config = Config::default();
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
            config.set(key, value.trim()).map_err(|e| format!("line {}: {e}", no + 1))?;
        }
        Ok(config)
    }

    /// Sets one key from its text value.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let bad = |what: &str| format!("`{key}`: {what}, got `{value}`");
        match key {
            "listen" => {
                self.listen = list(value)
                    .map(|a| {
                        Listen::parse(a).ok_or_else(|| {
                            bad("expected entries like `0.0.0.0:110`, `[::]:995 tls` or `0.0.0.0:110 plaintext=yes`")
                        })
                    })
                    .collect::<Result<_, _>>()?;
                if self.listen.is_empty() {
                    return Err(bad("expected at least one address"));
                }
                self.listen_set = true;
            }
            "tls_cert" => self.tls_cert = path(value),
            "tls_key" => self.tls_key = path(value),
            "tls_client_ca" => self.tls_client_ca = path(value),
            "plaintext_auth" => {
                self.plaintext_auth = Plaintext::parse(value).ok_or_else(|| bad("expected yes, no or loopback"))?
            }
            "auth_mechanisms" => {
                self.auth_mechanisms = crate::sasl::Mechanisms::parse(value).ok_or_else(|| {
                    bad("expected auto, none or a list of SCRAM-SHA-256(-PLUS), PLAIN, LOGIN, EXTERNAL")
                })?
            }
            "user" => self.user = (!value.is_empty()).then(|| value.to_string()),
            "users_file" => self.users_file = path(value).ok_or_else(|| bad("expected a path"))?,
            "accounts" => {
                self.accounts = match value {
                    "file" => AccountSource::UsersFile,
                    "system" => AccountSource::System,
                    _ => return Err(bad("expected file or system")),
                }
            }
            "passwd_file" => self.account_files.passwd = path(value).ok_or_else(|| bad("expected a path"))?,
            "shadow_file" => self.account_files.shadow = path(value).ok_or_else(|| bad("expected a path"))?,
            "mailbox" => {
                let template = value.strip_prefix("maildir:").or_else(|| value.strip_prefix("mbox:")).unwrap_or(value);
                // `%%u` is a literal `%u`: the name (or home) must really change the path.
                let one = expand(template, "a", "/h");
                if !one.is_absolute() || (one == expand(template, "b", "/h") && one == expand(template, "a", "/k")) {
                    return Err(bad(
                        "expected an absolute path template containing %u or %h, optionally after maildir: or mbox:",
                    ));
                }
                self.mailbox = value.to_string();
            }
            "state_dir" => self.state_dir = path(value).ok_or_else(|| bad("expected a path"))?,
            "mbox_format" => {
                self.mbox.quoting = match value {
                    "mboxrd" => FromQuoting::Mboxrd,
                    "mboxo" => FromQuoting::Mboxo,
                    _ => return Err(bad("expected mboxrd or mboxo")),
                }
            }
            "mbox_locking" => {
                let methods: Vec<LockMethod> = list(value)
                    .map(|m| LockMethod::parse(m).ok_or_else(|| bad("expected fcntl, flock and/or dotlock")))
                    .collect::<Result<_, _>>()?;
                // Twice the same lock would wait for itself until lock_timeout.
                if methods.is_empty() || methods.iter().enumerate().any(|(i, m)| methods[..i].contains(m)) {
                    return Err(bad("expected each of fcntl, flock, dotlock at most once, and at least one"));
                }
                self.mbox.locking = methods;
            }
            "lock_timeout" => {
                self.mbox.lock_timeout = Duration::from_secs(number(value).ok_or_else(|| bad("expected seconds"))?)
            }
            "max_messages" => {
                // try_from: on a 32-bit target `as` would silently wrap 2^32 + 1 to 1.
                let n = number(value).and_then(|n| usize::try_from(n).ok());
                self.limits.max_messages = n.ok_or_else(|| bad("expected a number"))?
            }
            "max_mailbox_size" => {
                self.limits.max_size = size(value).ok_or_else(|| bad("expected a size like 512M or 8G"))?
            }
            "apop" => self.apop = boolean(value).ok_or_else(|| bad("expected yes or no"))?,
            "hostname" => {
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>') {
                    return Err(bad("expected a host name"));
                }
                self.hostname = value.to_string();
            }
            "max_sessions" => self.max_sessions = positive(value).ok_or_else(|| bad("expected a number above 0"))?,
            "max_sessions_per_ip" => {
                self.max_sessions_per_ip = positive(value).ok_or_else(|| bad("expected a number above 0"))?
            }
            "max_prelogin" => self.max_prelogin = positive(value).ok_or_else(|| bad("expected a number above 0"))?,
            "max_prelogin_per_network" => {
                self.max_prelogin_per_network = positive(value).ok_or_else(|| bad("expected a number above 0"))?
            }
            "timeout_login" => {
                self.timeout_login =
                    Duration::from_secs(positive(value).ok_or_else(|| bad("expected seconds above 0"))? as u64)
            }
            "timeout_session" => {
                let t = Duration::from_secs(number(value).ok_or_else(|| bad("expected seconds"))?);
                if t < MIN_SESSION_TIMEOUT {
                    return Err(bad("RFC 1939 requires at least 600 seconds"));
                }
                self.timeout_session = t;
            }
            "network_prefix_ipv4" => {
                self.network_prefix_ipv4 =
                    value.parse().ok().filter(|n| *n <= 32).ok_or_else(|| bad("expected a prefix length 0-32"))?
            }
            "known_network_days" => {
                let days = number(value).filter(|d| *d <= 3650).ok_or_else(|| bad("expected days (0-3650)"))?;
                self.known_network_period = Duration::from_secs(days * 24 * 3600)
            }
            "network_prefix_ipv6" => {
                self.network_prefix_ipv6 =
                    value.parse().ok().filter(|n| *n <= 128).ok_or_else(|| bad("expected a prefix length 0-128"))?
            }
            "shutdown_grace" => {
                self.shutdown_grace = Duration::from_secs(number(value).ok_or_else(|| bad("expected seconds"))?)
            }
            "max_bad_commands" => {
                let n = number(value).and_then(|n| u32::try_from(n).ok());
                self.max_bad_commands = n.ok_or_else(|| bad("expected a number"))?
            }
            "proxy_trusted" => {
                self.proxy_trusted = crate::proxy::Trusted::parse(value)
                    .ok_or_else(|| bad("expected addresses or networks like `10.0.0.5, 192.168.0.0/24`"))?
            }
            "workarounds" => {
                self.workarounds = crate::maildrop::Workarounds::parse(value)
                    .ok_or_else(|| bad("expected a list of outlook-no-nuls, oe-ns-eoh, or nothing"))?
            }
            "uidl_from_x_uidl" => self.uidl_from_x_uidl = boolean(value).ok_or_else(|| bad("expected yes or no"))?,
            "maildir_info_separator" => {
                self.maildir_info_separator = match value {
                    ":" => b':',
                    ";" => b';',
                    _ => return Err(bad("expected : or ;")),
                }
            }
            "expire" => self.policy.expire = Expire::parse(value).ok_or_else(|| bad("expected days or never"))?,
            "login_delay" => self.policy.login_delay = number(value).ok_or_else(|| bad("expected seconds"))?,
            "log" => {
                self.log = match value {
                    "syslog" => LogTarget::Syslog,
                    "stderr" => LogTarget::Stderr,
                    _ => {
                        LogTarget::File(path(value).ok_or_else(|| bad("expected syslog, stderr or an absolute path"))?)
                    }
                }
            }
            "log_level" => {
                self.log_level = match value {
                    "error" => log::LevelFilter::Error,
                    "warn" => log::LevelFilter::Warn,
                    "info" => log::LevelFilter::Info,
                    "debug" => log::LevelFilter::Debug,
                    _ => return Err(bad("expected error, warn, info or debug")),
                }
            }
            _ => return Err(format!("unknown key `{key}`")),
        }
        Ok(())
    }

    /// Settles what depends on several keys (TLS files, default listeners)
    /// and checks what pop3d cannot run without; called after overrides.
    pub fn finish(&mut self, inetd: bool) -> Result<(), String> {
        self.tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                Some(TlsFiles { cert: cert.clone(), key: key.clone(), client_ca: self.tls_client_ca.clone() })
            }
            (None, None) if self.tls_client_ca.is_none() => None,
            _ => return Err("TLS needs both `tls_cert` and `tls_key` (and they are needed for `tls_client_ca`)".into()),
        };
        if !self.listen_set {
            self.listen = default_listen(self.tls.is_some());
        }
        if self.tls.is_none() && self.listen.iter().any(|l| l.tls) {
            return Err("a `tls` listener needs `tls_cert` and `tls_key`".into());
        }
        if self.accounts == AccountSource::System {
            if self.apop {
                return Err(
                    "`apop = yes` needs `accounts = file`: APOP cannot be checked against crypt(3) hashes".into()
                );
            }
        } else if self.mailbox.contains("%h") && expand(&self.mailbox, "a", "/h") != expand(&self.mailbox, "a", "/k") {
            return Err("`%h` in `mailbox` needs `accounts = system`: the users file gives no home directory".into());
        }
        if inetd && self.log == LogTarget::Stderr {
            return Err("`log = stderr` is not allowed with -i: stderr may be the client's socket".into());
        }
        match std::fs::metadata(&self.state_dir) {
            Ok(m) if !m.is_dir() => return Err(format!("state_dir {} is not a directory", self.state_dir.display())),
            // Journals and locks there decide what UPDATE writes into mailboxes.
            Ok(m) if std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o002 != 0 => {
                return Err(format!("state_dir {} must not be world-writable", self.state_dir.display()))
            }
            Ok(_) => {}
            Err(e) => return Err(format!("state_dir {}: {e}", self.state_dir.display())),
        }
        match self.accounts {
            AccountSource::UsersFile => self.users().map(|_| ()),
            AccountSource::System => Ok(()),
        }
    }

    /// The users file, read and parsed; the error names it.
    fn users(&self) -> Result<Vec<(String, crate::users::Secret)>, String> {
        let text = std::fs::read_to_string(&self.users_file)
            .map_err(|e| format!("users_file {}: {e}", self.users_file.display()))?;
        crate::users::parse(&text).map_err(|e| format!("users_file {}: {e}", self.users_file.display()))
    }

    /// Checks that this system's crypt(3) computes every hash scheme the
    /// users file uses: one full hash per scheme, so it runs for `-t` and
    /// when the daemon starts or reloads, not for every inetd session.
    pub fn check_hash_schemes(&self) -> Result<(), String> {
        if self.accounts == AccountSource::System {
            return Ok(());
        }
        crate::users::check_schemes(&self.users()?)
            .map_err(|e| format!("users_file {}: {e}", self.users_file.display()))
    }

    /// Settings that work but are likely not what the operator wants.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let locks = &self.mbox.locking;
        if let Some(dir) = self.mbox_spool_dir() {
            if locks.contains(&LockMethod::Fcntl)
                && locks.contains(&LockMethod::Flock)
                && sys::is_nfs(&dir) == Some(true)
            {
                out.push(format!(
                    "{} is on NFS, where flock is emulated with fcntl locks and the two block each other: \
                     set `mbox_locking = fcntl, dotlock`",
                    dir.display()
                ));
            }
        }
        out
    }

    /// The directory above the first `%u` of an mbox `mailbox` template
    /// (`/var/mail` for `/var/mail/%u`); None for a Maildir.
    fn mbox_spool_dir(&self) -> Option<PathBuf> {
        if self.mailbox.starts_with("maildir:") {
            return None;
        }
        let template = self.mailbox.strip_prefix("mbox:").unwrap_or(&self.mailbox);
        let before = &template[..template.find("%u")?];
        let dir = &before[..before.rfind('/')?];
        Some(PathBuf::from(if dir.is_empty() { "/" } else { dir }))
    }

    /// The part of the `mailbox` template the operator fixed: the longest
    /// directory that is the same for every user name (`/var/mail` for
    /// `/var/mail/%u`, `/home` for `maildir:/home/%u/Maildir`, the home
    /// directory itself for `maildir:%h/Maildir`). No link is followed below it.
    pub fn mailbox_fixed_dir(&self, home: &str) -> PathBuf {
        let template = self.mailbox.strip_prefix("maildir:").or_else(|| self.mailbox.strip_prefix("mbox:"));
        let template = template.unwrap_or(&self.mailbox);
        // The components that change with neither the name nor the home:
        // a home's own directories are its user's, like a name's.
        let a = expand(template, "a", home);
        let (b, c) = (expand(template, "b", home), expand(template, "a", &format!("{home}/+")));
        let mut fixed = PathBuf::new();
        for ((x, y), z) in a.components().zip(b.components()).zip(c.components()) {
            if x != y || x != z {
                break;
            }
            fixed.push(x);
        }
        if fixed == a {
            // Nothing changes it (refused by `set`): the last component is the user's.
            fixed.pop();
        }
        fixed
    }

    /// Where a (validated) user name's mail is: `mailbox` with `%u`
    /// replaced (and `%h` by `home`, for system accounts), an mbox unless
    /// it starts with `maildir:`.
    pub fn location(&self, user: &str, home: &str) -> Location {
        match self.mailbox.strip_prefix("maildir:") {
            Some(template) => Location::Maildir(expand(template, user, home)),
            None => Location::Mbox(expand(self.mailbox.strip_prefix("mbox:").unwrap_or(&self.mailbox), user, home)),
        }
    }
}

/// A `mailbox` template with `%u` replaced by `user`, `%h` by `home` and `%%` by `%`.
fn expand(template: &str, user: &str, home: &str) -> PathBuf {
    let mut out = String::new();
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('%', Some('u')) => {
                out.push_str(user);
                chars.next();
            }
            ('%', Some('h')) => {
                out.push_str(home.trim_end_matches('/'));
                chars.next();
            }
            ('%', Some('%')) => {
                out.push('%');
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out.into()
}

/// Port 110 on IPv4 and IPv6, and port 995 (implicit TLS) when TLS is set up.
fn default_listen(tls: bool) -> Vec<Listen> {
    let mut out = vec!["0.0.0.0:110", "[::]:110"];
    if tls {
        out.extend(["0.0.0.0:995 tls", "[::]:995 tls"]);
    }
    out.into_iter().filter_map(Listen::parse).collect()
}

fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn path(value: &str) -> Option<PathBuf> {
    (!value.is_empty()).then(|| value.into())
}

fn number(value: &str) -> Option<u64> {
    value.parse().ok()
}

fn positive(value: &str) -> Option<usize> {
    value.parse().ok().filter(|&n: &usize| n > 0)
}

fn boolean(value: &str) -> Option<bool> {
    match value {
        "yes" | "true" | "on" => Some(true),
        "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

/// `123`, `64K`, `512M`, `8G` (powers of 1024).
fn size(value: &str) -> Option<u64> {
    let (digits, shift) = match value.as_bytes().last()? {
        b'K' | b'k' => (&value[..value.len() - 1], 10),
        b'M' | b'm' => (&value[..value.len() - 1], 20),
        b'G' | b'g' => (&value[..value.len() - 1], 30),
        _ => (value, 0),
    };
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

fn system_hostname() -> String {
    crate::sys::hostname().unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses_to_the_defaults() {
        let mut c = Config::parse(include_str!("../etc/pop3d.conf")).unwrap();
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.plaintext_auth, Plaintext::Loopback);
        assert_eq!(c.limits.max_size, 8 << 30);
        assert_eq!(c.timeout_session, Duration::from_secs(600));
        // Every value etc/pop3d.conf shows is the built-in default, so the
        // file documents what an empty config does.
        c.listen_set = false;
        assert_eq!(format!("{c:?}"), format!("{:?}", Config::default()));
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(Config::parse("# c\nbogus = 1\n").unwrap_err(), "line 2: unknown key `bogus`");
        assert!(Config::parse("timeout_session = 60\n").unwrap_err().contains("600"));
        assert!(Config::parse("apop = yes\napop = no\n").unwrap_err().contains("twice"));
        assert!(Config::parse("listen = nowhere\n").is_err());
        assert!(Config::parse("mailbox = /var/mail/fixed\n").is_err());
        assert!(Config::parse("mbox_locking = dotlock, fcntl, dotlock\n").unwrap_err().contains("at most once"));
        assert!(Config::parse("mbox_locking = ,\n").is_err());
        assert!(Config::parse("mbox_locking = flock\n").is_ok());
    }

    #[test]
    fn numbers_never_wrap_on_32_bit_targets() {
        assert!(Config::parse("max_bad_commands = 4294967297\n").is_err());
        let wide = Config::parse("max_messages = 4294967297\n").map(|c| c.limits.max_messages as u64);
        if usize::BITS == 64 {
            assert_eq!(wide, Ok(4_294_967_297));
        } else {
            assert!(wide.unwrap_err().contains("expected a number"));
        }
        // Sizes and offsets are u64 everywhere: an 8G limit is 8G on a 32-bit box too.
        assert_eq!(Config::parse("max_mailbox_size = 8G\n").unwrap().limits.max_size, 8u64 << 30);
    }

    #[test]
    fn listeners_and_tls() {
        let mut c = Config::parse("listen = 127.0.0.1:110 plaintext=yes, [::1]:995 tls\n").unwrap();
        assert_eq!(c.listen[0].plaintext, Some(Plaintext::Always));
        assert!(c.listen[1].tls && c.listen[1].plaintext.is_none());
        assert!(c.finish(false).unwrap_err().contains("tls_cert"));
        assert!(Config::parse("listen = 127.0.0.1:110 tsl\n").is_err());
        let mut c = Config::parse("tls_cert = /c\ntls_key = /k\n").unwrap();
        let _ = c.finish(false);
        assert_eq!(c.listen.iter().filter(|l| l.tls).count(), 2, "995 is added when TLS is set up");
        assert!(Plaintext::Loopback.allows(Some("127.0.0.1".parse().unwrap())));
        assert!(Plaintext::Loopback.allows(Some("::ffff:127.0.0.1".parse().unwrap())));
        assert!(!Plaintext::Loopback.allows(Some("192.0.2.1".parse().unwrap())));
        assert!(Plaintext::Loopback.allows(None));
        assert!(!Plaintext::Never.allows(Some("127.0.0.1".parse().unwrap())));
    }

    #[test]
    fn mailbox_template() {
        let mut c = Config::default();
        c.set("mailbox", "/m/%u/100%%/%u").unwrap();
        assert_eq!(c.location("bob", ""), Location::Mbox("/m/bob/100%/bob".into()));
        c.set("mailbox", "mbox:/var/mail/%u").unwrap();
        assert_eq!(c.location("bob", ""), Location::Mbox("/var/mail/bob".into()));
        c.set("mailbox", "maildir:/home/%u/Maildir").unwrap();
        assert_eq!(c.location("bob", ""), Location::Maildir("/home/bob/Maildir".into()));
        assert!(c.set("mailbox", "maildir:Maildir/%u").is_err(), "relative");
        assert!(c.set("mailbox", "maildir:/home/Maildir").is_err(), "no %u");
        assert!(c.set("mailbox", "/var/mail/%%u").is_err(), "a literal %u: one maildrop for all");
        assert_eq!(c.mbox_spool_dir(), None, "a Maildir takes no locks");
        c.set("mailbox", "mbox:/var/mail/%u").unwrap();
        assert_eq!(c.mbox_spool_dir(), Some(PathBuf::from("/var/mail")));
        c.set("mailbox", "/home/%u/mbox").unwrap();
        assert_eq!(c.mbox_spool_dir(), Some(PathBuf::from("/home")));
        c.set("mailbox", "/%u").unwrap();
        assert_eq!(c.mbox_spool_dir(), Some(PathBuf::from("/")));
        assert!(c.warnings().is_empty(), "/ is not on NFS here");
        assert_eq!(c.mailbox_fixed_dir(""), PathBuf::from("/"));
        for (template, fixed) in [
            ("/var/mail/%u", "/var/mail"),
            ("maildir:/home/%u/mail/Maildir", "/home"),
            ("/srv/100%%/%u.mbox", "/srv/100%"),
            ("/m/x%u/mbox", "/m"),
        ] {
            c.set("mailbox", template).unwrap();
            assert_eq!(c.mailbox_fixed_dir(""), PathBuf::from(fixed), "{template}");
        }
    }

    #[test]
    fn system_accounts_and_the_home_directory() {
        let mut c =
            Config::parse("accounts = system\npasswd_file = /p\nshadow_file = /s\nmailbox = maildir:%h/Maildir\n");
        let c = c.as_mut().unwrap();
        assert_eq!(c.accounts, AccountSource::System);
        assert_eq!(c.account_files.shadow, PathBuf::from("/s"));
        assert_eq!(c.location("ann", "/home/ann/"), Location::Maildir("/home/ann/Maildir".into()));
        assert_eq!(c.mailbox_fixed_dir("/home/ann"), PathBuf::from("/home/ann"), "nothing below the home is followed");
        c.set("mailbox", "%h/mail/%u").unwrap();
        assert_eq!(c.location("ann", "/srv/ann"), Location::Mbox("/srv/ann/mail/ann".into()));
        assert_eq!(c.mailbox_fixed_dir("/srv/ann"), PathBuf::from("/srv/ann"), "the user's mail/ is no followed link");
        c.set("mailbox", "%h/mail/inbox").unwrap();
        assert_eq!(c.mailbox_fixed_dir("/home/ann"), PathBuf::from("/home/ann"));
        assert!(c.set("mailbox", "%%h/x").is_err(), "a literal %h changes nothing");
        assert!(Config::parse("accounts = pam\n").is_err());
        let state = std::env::temp_dir();
        let mut c = Config::parse("accounts = system\napop = yes\n").unwrap();
        c.state_dir = state.clone();
        assert!(c.finish(false).unwrap_err().contains("apop"));
        let mut c = Config::parse("mailbox = maildir:%h/Maildir\n").unwrap();
        c.state_dir = state;
        assert!(c.finish(false).unwrap_err().contains("accounts = system"));
    }
}
