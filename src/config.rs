//! The configuration: what the file and `-o` say (`Raw`, read by `keys`), checked into the `Config` pop3d runs with.
//!
//! `Raw::parse` and `Raw::set` read each value by its type; `Raw::finish`
//! settles what depends on several keys and gives the `Config`, touching no
//! file; `Config::check_files` then looks at what must exist on disk.

mod keys;
mod mailbox;
mod read;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

pub use keys::{Key, Raw, KEYS};
pub use mailbox::MailboxTemplate;

use crate::lock::LockMethod;
use crate::maildrop::{Limits, MboxSettings};
use crate::policy::Policy;
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
    /// The values of `plaintext_auth` and of a listener's `plaintext=`.
    pub const NAMES: &[(&str, Plaintext)] =
        &[("yes", Plaintext::Always), ("no", Plaintext::Never), ("loopback", Plaintext::Loopback)];

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

impl AccountSource {
    /// The values of `accounts`.
    pub const NAMES: &[(&str, AccountSource)] =
        &[("file", AccountSource::UsersFile), ("system", AccountSource::System)];
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
                Some(("plaintext", v)) => listen.plaintext = Some(read::one_of(v, Plaintext::NAMES).ok()?),
                _ => return None,
            }
        }
        Some(listen)
    }
}

/// Every setting, finished (`Raw::finish`): see `keys` and etc/pop3d.conf for each key.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Vec<Listen>,
    pub tls: Option<TlsFiles>,
    pub plaintext_auth: Plaintext,
    /// The SASL mechanisms offered where usable.
    pub auth_mechanisms: crate::sasl::Mechanisms,
    pub user: Option<String>,
    /// Whose accounts log in: the users file's or the system's.
    pub accounts: AccountSource,
    pub users_file: PathBuf,
    /// passwd and shadow, for `accounts = system`.
    pub account_files: crate::accounts::Files,
    pub mailbox: MailboxTemplate,
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

impl Raw {
    /// The `Config` these values make: settles what depends on several keys
    /// (TLS files, default listeners, the host name) and refuses what does
    /// not go together. Reads no file (see `Config::check_files`).
    pub fn finish(self, inetd: bool) -> Result<Config, String> {
        let listen_given = self.given("listen");
        let tls = match (self.tls_cert, self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key, client_ca: self.tls_client_ca }),
            (None, None) if self.tls_client_ca.is_none() => None,
            _ => return Err("TLS needs both `tls_cert` and `tls_key` (and they are needed for `tls_client_ca`)".into()),
        };
        let listen = if listen_given { self.listen } else { default_listen(tls.is_some()) };
        if tls.is_none() && listen.iter().any(|l| l.tls) {
            return Err("a `tls` listener needs `tls_cert` and `tls_key`".into());
        }
        if self.accounts == AccountSource::System {
            if self.apop {
                return Err(
                    "`apop = yes` needs `accounts = file`: APOP cannot be checked against crypt(3) hashes".into()
                );
            }
        } else if self.mailbox.uses_home() {
            return Err("`%h` in `mailbox` needs `accounts = system`: the users file gives no home directory".into());
        }
        if inetd && self.log == LogTarget::Stderr {
            return Err("`log = stderr` is not allowed with -i: stderr may be the client's socket".into());
        }
        Ok(Config {
            listen,
            tls,
            plaintext_auth: self.plaintext_auth,
            auth_mechanisms: self.auth_mechanisms,
            user: self.user,
            accounts: self.accounts,
            users_file: self.users_file,
            account_files: crate::accounts::Files { passwd: self.passwd_file, shadow: self.shadow_file },
            mailbox: self.mailbox,
            state_dir: self.state_dir,
            limits: Limits { max_messages: self.max_messages, max_size: self.max_mailbox_size },
            mbox: MboxSettings {
                quoting: self.mbox_format,
                locking: self.mbox_locking,
                lock_timeout: self.lock_timeout,
            },
            apop: self.apop,
            hostname: self.hostname.unwrap_or_else(system_hostname),
            max_sessions: self.max_sessions,
            max_sessions_per_ip: self.max_sessions_per_ip,
            max_prelogin: self.max_prelogin,
            max_prelogin_per_network: self.max_prelogin_per_network,
            timeout_login: self.timeout_login,
            timeout_session: self.timeout_session,
            max_bad_commands: self.max_bad_commands,
            shutdown_grace: self.shutdown_grace,
            network_prefix_ipv4: self.network_prefix_ipv4,
            network_prefix_ipv6: self.network_prefix_ipv6,
            known_network_period: Duration::from_secs(self.known_network_days * 24 * 3600),
            policy: Policy { expire: self.expire, login_delay: self.login_delay },
            maildir_info_separator: self.maildir_info_separator,
            proxy_trusted: self.proxy_trusted,
            workarounds: self.workarounds,
            uidl_from_x_uidl: self.uidl_from_x_uidl,
            log: self.log,
            log_level: self.log_level,
        })
    }
}

impl Config {
    /// Checks what pop3d cannot run without on disk: `state_dir` and, for
    /// `accounts = file`, the users file.
    pub fn check_files(&self) -> Result<(), String> {
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
        if let Some(dir) = self.mailbox.spool_dir() {
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
}

/// Port 110 on IPv4 and IPv6, and port 995 (implicit TLS) when TLS is set up.
fn default_listen(tls: bool) -> Vec<Listen> {
    let mut out = vec!["0.0.0.0:110", "[::]:110"];
    if tls {
        out.extend(["0.0.0.0:995 tls", "[::]:995 tls"]);
    }
    out.into_iter().filter_map(Listen::parse).collect()
}

fn system_hostname() -> String {
    crate::sys::hostname().unwrap_or_else(|| "localhost".into())
}

/// The built-in defaults, finished (tests).
#[cfg(test)]
impl Default for Config {
    fn default() -> Config {
        Raw::default().finish(false).expect("the defaults go together")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maildrop::Location;

    fn parse(text: &str) -> Result<Config, String> {
        Raw::parse(text)?.finish(false)
    }

    #[test]
    fn the_documented_example_parses_to_the_defaults() {
        let c = parse(include_str!("../etc/pop3d.conf")).unwrap();
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.plaintext_auth, Plaintext::Loopback);
        assert_eq!(c.limits.max_size, 8 << 30);
        assert_eq!(c.timeout_session, Duration::from_secs(600));
        // Every value etc/pop3d.conf shows is the built-in default, so the
        // file documents what an empty config does.
        assert_eq!(format!("{c:?}"), format!("{:?}", Config::default()));
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(Raw::parse("# c\nbogus = 1\n").unwrap_err(), "line 2: unknown key `bogus`");
        assert_eq!(
            Raw::parse("timeout_session = 60\n").unwrap_err(),
            "line 1: `timeout_session`: RFC 1939 requires at least 600 seconds, got `60`"
        );
        assert_eq!(Raw::parse("apop = yes\napop = no\n").unwrap_err(), "line 2: `apop` is set twice");
        assert_eq!(Raw::parse("apop\n").unwrap_err(), "line 1: expected `key = value`");
        assert_eq!(
            Raw::parse("plaintext_auth = sometimes\n").unwrap_err(),
            "line 1: `plaintext_auth`: expected yes, no or loopback, got `sometimes`"
        );
        assert!(Raw::parse("listen = nowhere\n").is_err());
        assert!(Raw::parse("listen = ,\n").unwrap_err().contains("at least one address"));
        assert!(Raw::parse("mailbox = /var/mail/fixed\n").is_err());
        assert!(Raw::parse("mbox_locking = dotlock, fcntl, dotlock\n").unwrap_err().contains("at most once"));
        assert!(Raw::parse("mbox_locking = ,\n").is_err());
        assert!(Raw::parse("mbox_locking = flock\n").is_ok());
        assert!(Raw::parse("hostname = \n").unwrap_err().contains("expected a host name"));
        assert!(Raw::parse("hostname = a<b\n").is_err());
        assert!(Raw::parse("timeout_login = 0\n").unwrap_err().contains("above 0"));
        assert!(Raw::parse("log = \n").unwrap_err().contains("expected syslog, stderr or an absolute path"));
    }

    #[test]
    fn numbers_never_wrap_on_32_bit_targets() {
        assert!(Raw::parse("max_bad_commands = 4294967297\n").is_err());
        let wide = Raw::parse("max_messages = 4294967297\n").map(|r| r.max_messages as u64);
        if usize::BITS == 64 {
            assert_eq!(wide, Ok(4_294_967_297));
        } else {
            assert!(wide.unwrap_err().contains("expected a number"));
        }
        // Sizes and offsets are u64 everywhere: an 8G limit is 8G on a 32-bit box too.
        assert_eq!(parse("max_mailbox_size = 8G\n").unwrap().limits.max_size, 8u64 << 30);
    }

    #[test]
    fn overrides_and_the_values_they_set() {
        let mut raw = Raw::parse("apop = yes\nlog_level = warn\n").unwrap();
        raw.set("apop", "no").unwrap();
        assert!(raw.set("nonsense", "1").unwrap_err().contains("unknown key `nonsense`"));
        let c = raw.finish(false).unwrap();
        assert!(!c.apop, "-o goes over the file");
        assert_eq!(c.log_level, log::LevelFilter::Warn);
        let c = parse("hostname = nas.example\nexpire = 3\nlogin_delay = 900\nmbox_format = mboxo\n").unwrap();
        assert_eq!(c.hostname, "nas.example");
        assert_eq!(c.policy, Policy { expire: crate::policy::Expire::Days(3), login_delay: 900 });
        assert_eq!(c.mbox.quoting, crate::maildrop::FromQuoting::Mboxo);
        assert_eq!(parse("log = /var/log/pop3d.log\n").unwrap().log, LogTarget::File("/var/log/pop3d.log".into()));
        assert!(parse("log = stderr\n").is_ok());
        assert!(Raw::parse("log = stderr\n").unwrap().finish(true).unwrap_err().contains("-i"));
    }

    #[test]
    fn listeners_and_tls() {
        let c = parse("listen = 127.0.0.1:110 plaintext=yes, [::1]:995 tls\n");
        assert!(c.unwrap_err().contains("tls_cert"));
        let raw = Raw::parse("listen = 127.0.0.1:110 plaintext=yes, [::1]:995 tls\n").unwrap();
        assert_eq!(raw.listen[0].plaintext, Some(Plaintext::Always));
        assert!(raw.listen[1].tls && raw.listen[1].plaintext.is_none());
        assert!(Raw::parse("listen = 127.0.0.1:110 tsl\n").is_err());
        assert!(Raw::parse("listen = 127.0.0.1:110 plaintext=maybe\n").is_err());
        let c = parse("tls_cert = /c\ntls_key = /k\n").unwrap();
        assert_eq!(c.listen.iter().filter(|l| l.tls).count(), 2, "995 is added when TLS is set up");
        let c = parse("tls_cert = /c\ntls_key = /k\nlisten = 127.0.0.1:110\n").unwrap();
        assert_eq!(c.listen.len(), 1, "a listen line is taken as it is");
        assert!(parse("tls_cert = /c\n").unwrap_err().contains("both"));
        assert!(parse("tls_client_ca = /ca\n").unwrap_err().contains("tls_client_ca"));
        assert!(Plaintext::Loopback.allows(Some("127.0.0.1".parse().unwrap())));
        assert!(Plaintext::Loopback.allows(Some("::ffff:127.0.0.1".parse().unwrap())));
        assert!(!Plaintext::Loopback.allows(Some("192.0.2.1".parse().unwrap())));
        assert!(Plaintext::Loopback.allows(None));
        assert!(!Plaintext::Never.allows(Some("127.0.0.1".parse().unwrap())));
    }

    #[test]
    fn system_accounts_and_the_home_directory() {
        let c = parse("accounts = system\npasswd_file = /p\nshadow_file = /s\nmailbox = maildir:%h/Maildir\n").unwrap();
        assert_eq!(c.accounts, AccountSource::System);
        assert_eq!(c.account_files.shadow, PathBuf::from("/s"));
        assert_eq!(c.mailbox.location("ann", "/home/ann/"), Location::Maildir("/home/ann/Maildir".into()));
        assert!(Raw::parse("accounts = pam\n").is_err());
        assert!(parse("accounts = system\napop = yes\n").unwrap_err().contains("apop"));
        assert!(parse("mailbox = maildir:%h/Maildir\n").unwrap_err().contains("accounts = system"));
        assert!(parse("mailbox = /%u\n").unwrap().warnings().is_empty(), "/ is not on NFS here");
    }

    #[test]
    fn the_disk_is_checked_apart() {
        let dir = crate::testkit::TempDir::new("config");
        let mut c = Config { state_dir: dir.path().join("missing"), ..Default::default() };
        assert!(c.check_files().unwrap_err().starts_with("state_dir"));
        c.state_dir = dir.path().to_path_buf();
        c.users_file = dir.path().join("users");
        assert!(c.check_files().unwrap_err().starts_with("users_file"));
        std::fs::write(&c.users_file, "ann:{PLAIN}secret\n").unwrap();
        assert_eq!(c.check_files(), Ok(()));
    }
}
