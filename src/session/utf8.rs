//! UTF8 and LANG (RFC 6856): UTF-8 mode before login (user names and passwords in UTF-8, prepared with SASLprep; message content is sent unchanged), and the language of the replies, of which there is one, English.

use std::io::{self, Write};

use super::{Next, Session};
use crate::transport::Transport;

/// The languages LANG lists: tag and description.
const LANGUAGES: [(&str, &str); 2] = [("en", "English"), ("i-default", "Default language")];

impl<T: Transport> Session<'_, T> {
    /// UTF8 in AUTHORIZATION. UTF-8 credentials are accepted with or
    /// without it (CAPA says `UTF8 USER`); content is never changed.
    pub(super) fn utf8(&mut self) -> io::Result<Next> {
        self.out.ok("UTF8 enabled").map(|_| Next::Continue)
    }

    /// LANG: the listing, or a language selected by tag (`en`, a range
    /// like `en-GB` that English serves, `i-default`, or `*`, the server's
    /// choice).
    pub(super) fn lang(&mut self, tag: Option<String>) -> io::Result<Next> {
        let Some(tag) = tag else {
            let mut text = String::from("+OK language listing follows\r\n");
            for (tag, name) in LANGUAGES {
                text.push_str(&format!("{tag} {name}\r\n"));
            }
            text.push_str(".\r\n");
            return self.out.write_all(text.as_bytes()).map(|_| Next::Continue);
        };
        let lower = tag.to_ascii_lowercase();
        let chosen = match lower.as_str() {
            "*" | "en" => Some(LANGUAGES[0]),
            t if t.starts_with("en-") => Some(LANGUAGES[0]),
            "i-default" => Some(LANGUAGES[1]),
            _ => None,
        };
        match chosen {
            Some((tag, name)) => self.out.ok(format_args!("{tag} {name} selected"))?,
            None => self.out.err(format_args!("invalid language {tag}"))?,
        }
        Ok(Next::Continue)
    }
}
