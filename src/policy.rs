//! EXPIRE and LOGIN-DELAY (RFC 2449 6.7, 6.5): global settings, per-user overrides, their CAPA lines.
//!
//! Per-user overrides come from the users file's extra fields.

use std::fmt;

/// How long a retrieved message is kept (RFC 2449 EXPIRE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Expire {
    /// Deleted at the first UPDATE at least this many days after it was
    /// first retrieved (0: at the QUIT of the session that retrieved it).
    Days(u32),
    /// Kept until the client deletes it (sorts after every number).
    Never,
}

impl Expire {
    /// `never` or a number of days.
    pub fn parse(value: &str) -> Option<Expire> {
        if value.eq_ignore_ascii_case("never") {
            return Some(Expire::Never);
        }
        value.parse().ok().map(Expire::Days)
    }

    /// The age in seconds at which a retrieved message goes, if ever.
    pub fn seconds(self) -> Option<u64> {
        match self {
            Expire::Days(d) => Some(u64::from(d) * 86_400),
            Expire::Never => None,
        }
    }
}

impl fmt::Display for Expire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expire::Days(d) => write!(f, "{d}"),
            Expire::Never => f.write_str("NEVER"),
        }
    }
}

/// One user's retention and login spacing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub expire: Expire,
    /// Minimum seconds between two logins (0: none).
    pub login_delay: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy { expire: Expire::Never, login_delay: 0 }
    }
}

/// A user's overrides of the global policy, from the users file's extra
/// fields (`pop3_expire=DAYS|never pop3_login_delay=SECONDS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overrides {
    pub expire: Option<Expire>,
    pub login_delay: Option<u64>,
}

impl Overrides {
    /// Parses Dovecot-style extra fields: space-separated `key=value`
    /// pairs. Keys other than ours (Dovecot's `userdb_...`) and words
    /// without `=` (a shadow line's numbers) are left alone; one of ours
    /// with a bad value is an error.
    pub fn parse(field: &str) -> Result<Overrides, String> {
        let mut out = Overrides::default();
        for word in field.split_ascii_whitespace() {
            match word.split_once('=') {
                Some(("pop3_expire", v)) => {
                    out.expire = Some(Expire::parse(v).ok_or("pop3_expire: expected days or never")?)
                }
                Some(("pop3_login_delay", v)) => {
                    out.login_delay = Some(v.parse().map_err(|_| "pop3_login_delay: expected seconds")?)
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// The policy of a user with these overrides.
    pub fn apply(self, global: Policy) -> Policy {
        Policy {
            expire: self.expire.unwrap_or(global.expire),
            login_delay: self.login_delay.unwrap_or(global.login_delay),
        }
    }
}

/// The EXPIRE and LOGIN-DELAY lines of CAPA. After login (`user` given),
/// the user's own values. Before login, the lowest value any user has,
/// with the `USER` tag when users differ (RFC 2449: a client learns its own
/// after login); LOGIN-DELAY only when some user has one.
pub fn capa(global: Policy, overrides: &[Overrides], user: Option<Policy>) -> String {
    if let Some(p) = user {
        let mut out = format!("EXPIRE {}\r\n", p.expire);
        if p.login_delay > 0 {
            out.push_str(&format!("LOGIN-DELAY {}\r\n", p.login_delay));
        }
        return out;
    }
    let all: Vec<Policy> = std::iter::once(global).chain(overrides.iter().map(|o| o.apply(global))).collect();
    let tag = |varies: bool| if varies { " USER" } else { "" };
    let expire = all.iter().map(|p| p.expire).min().unwrap_or(Expire::Never);
    let mut out = format!("EXPIRE {expire}{}\r\n", tag(all.iter().any(|p| p.expire != expire)));
    let delay = all.iter().map(|p| p.login_delay).min().unwrap_or(0);
    if all.iter().any(|p| p.login_delay > 0) {
        out.push_str(&format!("LOGIN-DELAY {delay}{}\r\n", tag(all.iter().any(|p| p.login_delay != delay))));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_fields() {
        let o = Overrides::parse("userdb_mail=maildir:~/M pop3_expire=30 nologin pop3_login_delay=900").unwrap();
        assert_eq!(o, Overrides { expire: Some(Expire::Days(30)), login_delay: Some(900) });
        assert_eq!(Overrides::parse("").unwrap(), Overrides::default());
        assert_eq!(Overrides::parse("19000").unwrap(), Overrides::default(), "a shadow field");
        assert_eq!(Overrides::parse("pop3_expire=NEVER").unwrap().expire, Some(Expire::Never));
        assert!(Overrides::parse("pop3_expire=soon").is_err());
        assert!(Overrides::parse("pop3_login_delay=-1").is_err());
    }

    #[test]
    fn capa_before_and_after_login() {
        let global = Policy::default();
        assert_eq!(capa(global, &[], None), "EXPIRE NEVER\r\n");
        assert_eq!(capa(global, &[Overrides::default()], None), "EXPIRE NEVER\r\n");
        let o = [Overrides { expire: Some(Expire::Days(30)), login_delay: Some(600) }];
        assert_eq!(capa(global, &o, None), "EXPIRE 30 USER\r\nLOGIN-DELAY 0 USER\r\n");
        let same = Policy { expire: Expire::Days(0), login_delay: 60 };
        assert_eq!(capa(same, &[], None), "EXPIRE 0\r\nLOGIN-DELAY 60\r\n");
        assert_eq!(capa(global, &o, Some(o[0].apply(global))), "EXPIRE 30\r\nLOGIN-DELAY 600\r\n");
        assert_eq!(capa(global, &o, Some(global)), "EXPIRE NEVER\r\n");
    }
}
