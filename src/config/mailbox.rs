//! The `mailbox` template: where each user's mail is (`/var/mail/%u`, `maildir:%h/Maildir`), and its fixed part.

use std::path::PathBuf;

use crate::maildrop::Location;

/// A checked `mailbox` value: an absolute path template in which `%u` (the
/// user name) or `%h` (the home directory) really changes the path (`%%`
/// is a literal `%`), an mbox unless it starts with `maildir:` (`mbox:` may
/// be written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxTemplate {
    maildir: bool,
    /// The path template, without its `maildir:` or `mbox:`.
    template: String,
}

impl MailboxTemplate {
    /// Reads a `mailbox` value.
    pub fn parse(value: &str) -> Result<MailboxTemplate, String> {
        let (maildir, template) = match (value.strip_prefix("maildir:"), value.strip_prefix("mbox:")) {
            (Some(t), _) => (true, t),
            (None, Some(t)) => (false, t),
            (None, None) => (false, value),
        };
        let mailbox = MailboxTemplate { maildir, template: template.to_string() };
        // `%%u` is a literal `%u`: the name (or home) must really change the path.
        let one = mailbox.expand("a", "/h");
        if !one.is_absolute() || (one == mailbox.expand("b", "/h") && one == mailbox.expand("a", "/k")) {
            return Err(
                "expected an absolute path template containing %u or %h, optionally after maildir: or mbox:".into()
            );
        }
        Ok(mailbox)
    }

    /// Whether the path changes with the home directory (`%h`), which only
    /// system accounts have.
    pub fn uses_home(&self) -> bool {
        self.expand("a", "/h") != self.expand("a", "/k")
    }

    /// Where a (validated) user name's mail is: `%u` replaced by `user`
    /// and `%h` by `home` (system accounts).
    pub fn location(&self, user: &str, home: &str) -> Location {
        let path = self.expand(user, home);
        if self.maildir {
            Location::Maildir(path)
        } else {
            Location::Mbox(path)
        }
    }

    /// The part of the template the operator fixed: the longest directory
    /// that is the same for every user name (`/var/mail` for `/var/mail/%u`,
    /// `/home` for `maildir:/home/%u/Maildir`, the home directory itself for
    /// `maildir:%h/Maildir`). No link is followed below it.
    pub fn fixed_dir(&self, home: &str) -> PathBuf {
        // The components that change with neither the name nor the home:
        // a home's own directories are its user's, like a name's.
        let a = self.expand("a", home);
        let (b, c) = (self.expand("b", home), self.expand("a", &format!("{home}/+")));
        let mut fixed = PathBuf::new();
        for ((x, y), z) in a.components().zip(b.components()).zip(c.components()) {
            if x != y || x != z {
                break;
            }
            fixed.push(x);
        }
        if fixed == a {
            // Nothing changes it (refused by `parse`): the last component is the user's.
            fixed.pop();
        }
        fixed
    }

    /// The directory above the first `%u` of an mbox template (`/var/mail`
    /// for `/var/mail/%u`), where the dotlocks go; None for a Maildir.
    pub fn spool_dir(&self) -> Option<PathBuf> {
        if self.maildir {
            return None;
        }
        let before = &self.template[..self.template.find("%u")?];
        let dir = &before[..before.rfind('/')?];
        Some(PathBuf::from(if dir.is_empty() { "/" } else { dir }))
    }

    /// The template with `%u` replaced by `user`, `%h` by `home` and `%%` by `%`.
    fn expand(&self, user: &str, home: &str) -> PathBuf {
        let mut out = String::new();
        let mut chars = self.template.chars();
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(value: &str) -> MailboxTemplate {
        MailboxTemplate::parse(value).unwrap()
    }

    #[test]
    fn locations() {
        assert_eq!(template("/m/%u/100%%/%u").location("bob", ""), Location::Mbox("/m/bob/100%/bob".into()));
        assert_eq!(template("mbox:/var/mail/%u").location("bob", ""), Location::Mbox("/var/mail/bob".into()));
        let maildir = template("maildir:/home/%u/Maildir");
        assert_eq!(maildir.location("bob", ""), Location::Maildir("/home/bob/Maildir".into()));
        assert!(MailboxTemplate::parse("maildir:Maildir/%u").is_err(), "relative");
        assert!(MailboxTemplate::parse("maildir:/home/Maildir").is_err(), "no %u");
        assert!(MailboxTemplate::parse("/var/mail/%%u").is_err(), "a literal %u: one maildrop for all");
        assert!(MailboxTemplate::parse("%%h/x").is_err(), "a literal %h changes nothing");
        assert!(!template("/var/mail/%u").uses_home() && template("%h/mail/%u").uses_home());
    }

    #[test]
    fn the_spool_directory_takes_the_dotlocks() {
        assert_eq!(template("maildir:/home/%u/Maildir").spool_dir(), None, "a Maildir takes no locks");
        assert_eq!(template("mbox:/var/mail/%u").spool_dir(), Some(PathBuf::from("/var/mail")));
        assert_eq!(template("/home/%u/mbox").spool_dir(), Some(PathBuf::from("/home")));
        assert_eq!(template("/%u").spool_dir(), Some(PathBuf::from("/")));
    }

    #[test]
    fn the_fixed_part_is_the_operators() {
        assert_eq!(template("/%u").fixed_dir(""), PathBuf::from("/"));
        for (value, fixed) in [
            ("/var/mail/%u", "/var/mail"),
            ("maildir:/home/%u/mail/Maildir", "/home"),
            ("/srv/100%%/%u.mbox", "/srv/100%"),
            ("/m/x%u/mbox", "/m"),
        ] {
            assert_eq!(template(value).fixed_dir(""), PathBuf::from(fixed), "{value}");
        }
        let home = template("maildir:%h/Maildir");
        assert_eq!(home.location("ann", "/home/ann/"), Location::Maildir("/home/ann/Maildir".into()));
        assert_eq!(home.fixed_dir("/home/ann"), PathBuf::from("/home/ann"), "nothing below the home is followed");
        let mail = template("%h/mail/%u");
        assert_eq!(mail.location("ann", "/srv/ann"), Location::Mbox("/srv/ann/mail/ann".into()));
        assert_eq!(mail.fixed_dir("/srv/ann"), PathBuf::from("/srv/ann"), "the user's mail/ is no followed link");
        assert_eq!(template("%h/mail/inbox").fixed_dir("/home/ann"), PathBuf::from("/home/ann"));
    }
}
