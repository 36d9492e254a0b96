//! What a session offers now, in any state: CAPA (RFC 2449), LANG (RFC 6856), SASL mechanisms, the plaintext policy.

use std::io;

use super::expire;
use super::state::Transaction;
use super::Session;
use crate::config::AccountSource;
use crate::reply::{Answered, Pending};
use crate::sasl::Offer;
use crate::transport::Transport;

/// The languages LANG lists: tag and description.
const LANGUAGES: [(&str, &str); 2] = [("en", "English"), ("i-default", "Default language")];

/// CAPA lists exactly what works now. The login capabilities (USER, SASL,
/// STLS) are what this connection offers in AUTHORIZATION; RFC 2449
/// section 5 has them announced in the TRANSACTION state too (`logged_in`).
/// IMPLEMENTATION only after login.
pub(super) fn capa<T: Transport>(
    s: &mut Session<'_, T>,
    p: Pending,
    logged_in: Option<&Transaction>,
) -> io::Result<Answered> {
    let mut lines = vec!["TOP".to_string(), "UIDL".into(), "RESP-CODES".into(), "AUTH-RESP-CODE".into()];
    lines.push("PIPELINING".into());
    lines.extend(expire::capa(s.config, logged_in.map(|t| &t.expiry)).lines().map(str::to_string));
    lines.extend(["UTF8 USER".to_string(), "LANG".into()]);
    if s.plaintext_allowed() {
        lines.push("USER".into());
    }
    let mechanisms = s.sasl_offer().mechanisms();
    if !mechanisms.is_empty() {
        lines.push(format!("SASL {}", mechanisms.join(" ")));
    }
    if s.link.tls.is_some() && !s.out.get_ref().is_tls() {
        lines.push("STLS".into());
    }
    if logged_in.is_some() {
        lines.push(format!("IMPLEMENTATION pop3d-{}", env!("CARGO_PKG_VERSION")));
    }
    let mut listing = s.out.listing(p, "capability list follows")?;
    for line in lines {
        listing.line(line)?;
    }
    listing.end()
}

/// LANG: the listing, or a language selected by tag (`en`, a range like
/// `en-GB` that English serves, `i-default`, or `*`, the server's choice).
pub(super) fn lang<T: Transport>(s: &mut Session<'_, T>, p: Pending, tag: Option<String>) -> io::Result<Answered> {
    let Some(tag) = tag else {
        let mut listing = s.out.listing(p, "language listing follows")?;
        for (tag, name) in LANGUAGES {
            listing.line(format_args!("{tag} {name}"))?;
        }
        return listing.end();
    };
    let chosen = match tag.to_ascii_lowercase().as_str() {
        "*" | "en" => Some(LANGUAGES[0]),
        t if t.starts_with("en-") => Some(LANGUAGES[0]),
        "i-default" => Some(LANGUAGES[1]),
        _ => None,
    };
    match chosen {
        Some((tag, name)) => s.out.ok(p, format_args!("{tag} {name} selected")),
        None => s.out.err(p, format_args!("invalid language {tag}")),
    }
}

impl<T: Transport> Session<'_, T> {
    /// Plaintext passwords may be sent now: on TLS, or where policy allows.
    pub(super) fn plaintext_allowed(&self) -> bool {
        self.out.get_ref().is_tls() || self.link.plaintext.allows(self.peer.map(|p| p.ip()))
    }

    /// What SASL can offer on this connection now.
    pub(super) fn sasl_offer(&self) -> Offer {
        let conn = self.out.get_ref();
        let certificate_user = match self.link.tls {
            Some(tls) if tls.client_certs() => conn.certificate_user(),
            _ => None,
        };
        match self.config.accounts {
            // System accounts: the helper checks passwords, and only them.
            AccountSource::System => Offer {
                plaintext: self.plaintext_allowed(),
                policy: self.config.auth_mechanisms.clone(),
                ..Offer::default()
            },
            AccountSource::UsersFile => Offer {
                plaintext: self.plaintext_allowed(),
                tls: conn.is_tls(),
                scram: crate::users::scram_keyed(&self.config.users_file),
                certificate_user,
                channel_binding: conn.channel_binding(),
                policy: self.config.auth_mechanisms.clone(),
            },
        }
    }
}
