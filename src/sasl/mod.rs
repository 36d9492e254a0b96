//! SASL for AUTH (RFC 5034): the mechanisms usable now, and PLAIN, LOGIN, EXTERNAL and SCRAM exchanges as pure steps.

pub mod login;
pub mod scram;

use std::io::{self, Write};
use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};

use self::scram::{ChannelBinding, ScramServer, Step};

/// Which mechanisms to offer: `auth_mechanisms` (etc/pop3d.conf).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Mechanisms {
    /// What can succeed for the accounts there are, in the forms widely used
    /// clients survive: no -PLUS (DESIGN.md, "Mechanisms clients survive").
    #[default]
    Auto,
    /// Exactly these (upper case, from [`MECHANISMS`]), each where usable.
    Listed(Vec<&'static str>),
}

/// Every mechanism pop3d implements, in its order of preference.
pub const MECHANISMS: [&str; 5] = ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN", "LOGIN", "EXTERNAL"];

impl Mechanisms {
    /// `auto`, `none`, or a comma-separated list of mechanism names.
    pub fn parse(value: &str) -> Option<Mechanisms> {
        match value {
            "auto" => return Some(Mechanisms::Auto),
            "none" => return Some(Mechanisms::Listed(Vec::new())),
            _ => {}
        }
        let names = value.split(',').map(str::trim).filter(|s| !s.is_empty());
        let listed = names.map(|n| MECHANISMS.into_iter().find(|m| m.eq_ignore_ascii_case(n)));
        listed.collect::<Option<Vec<_>>>().filter(|l| !l.is_empty()).map(Mechanisms::Listed)
    }
}

/// How many of the accounts carry SCRAM keys (the users file's; system
/// accounts never do).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ScramKeyed {
    #[default]
    None,
    Some,
    All,
}

/// What the connection offers right now, which decides the mechanisms.
#[derive(Debug, Clone, Default)]
pub struct Offer {
    /// Plaintext passwords may be sent now (TLS, or allowed by policy).
    pub plaintext: bool,
    /// The connection is TLS.
    pub tls: bool,
    /// Which accounts have SCRAM keys.
    pub scram: ScramKeyed,
    /// The user a verified client certificate maps to.
    pub certificate_user: Option<String>,
    /// tls-exporter data (TLS 1.3).
    pub channel_binding: Option<[u8; 32]>,
    /// The operator's choice.
    pub policy: Mechanisms,
}

impl Offer {
    /// Whether `mechanism` can run on this connection at all.
    fn runnable(&self, mechanism: &str) -> bool {
        match mechanism {
            "SCRAM-SHA-256-PLUS" => self.scram != ScramKeyed::None && self.channel_binding.is_some(),
            "SCRAM-SHA-256" => self.scram != ScramKeyed::None,
            "PLAIN" | "LOGIN" => self.plaintext,
            "EXTERNAL" => self.certificate_user.is_some(),
            _ => false,
        }
    }

    /// Whether AUTH `mechanism` (upper case) is accepted now: runnable and
    /// allowed by the policy (`auto` allows what it does not advertise, for
    /// clients configured to ask for it).
    pub fn accepts(&self, mechanism: &str) -> bool {
        self.runnable(mechanism)
            && match &self.policy {
                Mechanisms::Auto => true,
                Mechanisms::Listed(l) => l.contains(&mechanism),
            }
    }

    /// Mechanism names for CAPA's SASL line and for a bare AUTH, in order of
    /// preference. `auto` leaves out -PLUS (mutt and neomutt with GNU SASL
    /// pick it and cannot finish it), and SCRAM under TLS where only some
    /// accounts have keys: there PLAIN works for every account, and clients
    /// that prefer SCRAM (mpop) would fail for the others. Without TLS careful
    /// clients send no password (mpop, mutt): SCRAM is their only way in.
    pub fn mechanisms(&self) -> Vec<&'static str> {
        let auto = |m: &str| match m {
            "SCRAM-SHA-256-PLUS" => false,
            "SCRAM-SHA-256" => self.scram == ScramKeyed::All || !self.tls,
            _ => true,
        };
        let offered = |m: &&str| match &self.policy {
            Mechanisms::Auto => auto(m),
            Mechanisms::Listed(_) => true,
        };
        MECHANISMS.into_iter().filter(|m| self.accepts(m)).filter(offered).collect()
    }

    /// The channel binding data for a SCRAM exchange of `mechanism`: a -PLUS
    /// exchange binds to it; a plain one only learns whether -PLUS was
    /// advertised (RFC 5802: a client's `y` is a downgrade only then).
    pub fn binding_for(&self, mechanism: &str) -> Option<[u8; 32]> {
        let advertised = self.mechanisms().contains(&"SCRAM-SHA-256-PLUS");
        self.channel_binding.filter(|_| mechanism.ends_with("-PLUS") || advertised)
    }

    /// Why `mechanism` (upper case) cannot be used now, for a plain `-ERR`
    /// (RFC 3206: no `[AUTH]`, the credentials were never tried); None if
    /// it can.
    pub fn refusal(&self, mechanism: &str) -> Option<&'static str> {
        if self.accepts(mechanism) {
            return None;
        }
        let listed = match &self.policy {
            Mechanisms::Auto => MECHANISMS.contains(&mechanism),
            Mechanisms::Listed(l) => l.contains(&mechanism),
        };
        Some(match mechanism {
            _ if !MECHANISMS.contains(&mechanism) => "unsupported authentication mechanism",
            _ if !listed => "mechanism not enabled on this server (auth_mechanisms)",
            "PLAIN" | "LOGIN" => "mechanism not available without TLS: use STLS or port 995",
            "EXTERNAL" => "mechanism EXTERNAL needs a verified TLS client certificate",
            _ if self.scram == ScramKeyed::None => {
                "SCRAM needs keys from the users file (pop3d -P), and no account here has them"
            }
            _ => "mechanism SCRAM-SHA-256-PLUS needs TLS 1.3 (channel binding)",
        })
    }
}

/// One step of an exchange, for the session to act on.
#[derive(Debug)]
pub enum Outcome {
    /// Send `+ base64(challenge)` and feed the client's next line.
    Challenge(Vec<u8>),
    /// Check this user's password (PLAIN); the session does the lookup.
    CheckPassword {
        user: String,
        password: Vec<u8>,
    },
    /// Authenticated as `user` (EXTERNAL, SCRAM). `final_data` (SCRAM's
    /// server-final message) is sent as one more challenge that the client
    /// answers with an empty line (RFC 5034 section 4).
    Success {
        user: String,
        final_data: Option<Vec<u8>>,
    },
    Failure(&'static str),
    /// The credentials of `user` were wrong (SCRAM's proof): a failed login
    /// for that account, `why` for the log.
    Rejected {
        user: String,
        why: &'static str,
    },
    /// SCRAM for an account stored with another kind of secret: it could
    /// never succeed, so it is no guessed password.
    NoKeys,
    /// The user's keys could not be read (the users file): [SYS/TEMP], not a
    /// failed login.
    Unavailable(std::io::Error),
}

/// An exchange in progress.
pub enum Exchange {
    /// Waiting for PLAIN's response after an empty challenge.
    Plain,
    /// LOGIN, waiting for the user name or the password.
    Login(login::Login),
    /// Waiting for EXTERNAL's authorization identity.
    External(String),
    /// SCRAM; `started` once the client-first message was fed.
    Scram { server: Box<ScramServer>, started: bool },
    /// SCRAM succeeded; waiting for the client's empty line after the
    /// server-final message.
    Finishing(String),
}

impl Exchange {
    /// Starts `mechanism`, with the decoded initial response if one was
    /// given. `lookup` says what is stored for a SCRAM name (Err when it
    /// cannot be read). Returns the exchange (if
    /// it goes on) and what to do now.
    pub fn start(
        mechanism: &str,
        initial: Option<Vec<u8>>,
        offer: &Offer,
        lookup: impl FnOnce(&str) -> std::io::Result<scram::Stored>,
    ) -> (Option<Exchange>, Outcome) {
        let usable = offer.accepts(mechanism);
        match mechanism {
            _ if !usable => (None, Outcome::Failure("mechanism not available")),
            "PLAIN" => match initial {
                Some(data) => (None, plain(&data)),
                None => (Some(Exchange::Plain), Outcome::Challenge(Vec::new())),
            },
            "LOGIN" => login::start(initial),
            "EXTERNAL" => {
                let user = offer.certificate_user.clone().unwrap_or_default();
                match initial {
                    Some(authzid) => (None, external(user, &authzid)),
                    None => (Some(Exchange::External(user)), Outcome::Challenge(Vec::new())),
                }
            }
            "SCRAM-SHA-256" | "SCRAM-SHA-256-PLUS" => {
                let plus = mechanism.ends_with("-PLUS");
                let binding = match offer.binding_for(mechanism) {
                    Some(cb) => ChannelBinding::TlsExporter(cb),
                    None => ChannelBinding::None,
                };
                let server = Box::new(ScramServer::new(plus, binding));
                match initial {
                    Some(first) => Exchange::Scram { server, started: false }.step(&first, lookup),
                    None => (Some(Exchange::Scram { server, started: false }), Outcome::Challenge(Vec::new())),
                }
            }
            _ => (None, Outcome::Failure("unknown mechanism")),
        }
    }

    /// Feeds the client's decoded response.
    pub fn step(
        self,
        data: &[u8],
        lookup: impl FnOnce(&str) -> std::io::Result<scram::Stored>,
    ) -> (Option<Exchange>, Outcome) {
        match self {
            Exchange::Plain => (None, plain(data)),
            Exchange::Login(state) => login::step(state, data),
            Exchange::External(user) => (None, external(user, data)),
            Exchange::Scram { mut server, started } => {
                let outcome = if started {
                    let user = server.user().map(str::to_string);
                    match (scram_step(server.client_final(data)), user) {
                        (Outcome::Failure(why), Some(user)) => Outcome::Rejected { user, why },
                        (outcome, _) => outcome,
                    }
                } else {
                    scram_step(server.client_first(data, lookup))
                };
                match outcome {
                    Outcome::Challenge(c) => (Some(Exchange::Scram { server, started: true }), Outcome::Challenge(c)),
                    Outcome::Success { user, final_data: Some(v) } => {
                        (Some(Exchange::Finishing(user)), Outcome::Challenge(v))
                    }
                    other => (None, other),
                }
            }
            Exchange::Finishing(user) if data.is_empty() => (None, Outcome::Success { user, final_data: None }),
            Exchange::Finishing(_) => (None, Outcome::Failure("unexpected data after SCRAM success")),
        }
    }
}

fn scram_step(step: Step) -> Outcome {
    match step {
        Step::Continue(msg) => Outcome::Challenge(msg),
        Step::Success { user, server_final } => Outcome::Success { user, final_data: Some(server_final) },
        Step::Failure(why) => Outcome::Failure(why),
        Step::NoKeys => Outcome::NoKeys,
        Step::Unavailable(e) => Outcome::Unavailable(e),
    }
}

/// PLAIN (RFC 4616): `authzid NUL authcid NUL password`; an authzid, if
/// given, must be the authcid (no proxy logins).
fn plain(data: &[u8]) -> Outcome {
    let mut parts = data.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(password), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Outcome::Failure("malformed PLAIN response");
    };
    if !authzid.is_empty() && authzid != authcid {
        return Outcome::Failure("PLAIN authorization identity differs");
    }
    match std::str::from_utf8(authcid) {
        Ok(user) if !user.is_empty() => Outcome::CheckPassword { user: user.to_string(), password: password.to_vec() },
        _ => Outcome::Failure("malformed PLAIN user name"),
    }
}

/// EXTERNAL (RFC 4422 appendix A): the certificate's user, or the
/// requested authorization identity if it is that same user.
fn external(user: String, authzid: &[u8]) -> Outcome {
    if user.is_empty() {
        return Outcome::Failure("no usable client certificate");
    }
    if !authzid.is_empty() && authzid != user.as_bytes() {
        return Outcome::Failure("EXTERNAL authorization identity differs from the certificate's");
    }
    Outcome::Success { user, final_data: None }
}

/// Loads (or creates, 0600) `state_dir/scram.secret`, the secret that makes
/// the SCRAM salt of an unknown user look like a real user's: stable across
/// processes and restarts. A new secret is written to a temporary file and
/// then linked into place, so no process ever reads a short one; an
/// unusable one (empty or short, from a full disk) is replaced, a good one
/// never. A failure is logged; a per-process secret is used then.
pub fn load_fake_key_secret(state_dir: &Path) {
    let path = state_dir.join("scram.secret");
    match fake_key_secret(state_dir, &path) {
        Ok(secret) => scram::use_fake_key_secret(secret),
        Err(e) => log::warn!("{}: {e}; unknown users' SCRAM salts are per process", path.display()),
    }
}

fn fake_key_secret(state_dir: &Path, path: &Path) -> io::Result<[u8; 32]> {
    let read = |path: &Path| -> io::Result<[u8; 32]> {
        let mut bytes = Vec::new();
        io::Read::read_to_end(&mut crate::nofollow::open_state(path)?, &mut bytes)?;
        <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not 32 bytes"))
    };
    let missing = match read(path) {
        Ok(secret) => return Ok(secret),
        Err(e) if e.kind() == io::ErrorKind::NotFound => true,
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            log::warn!("{}: {e}, making a new one", path.display());
            false
        }
        Err(e) => return Err(e),
    };
    let mut secret = [0u8; 32];
    SystemRandom::new().fill(&mut secret).map_err(|_| io::Error::other("no random source"))?;
    let tmp = state_dir.join(format!("scram.secret.new-{}", std::process::id()));
    let written = crate::nofollow::create_temp(&tmp).and_then(|mut f| f.write_all(&secret).and_then(|_| f.sync_all()));
    let placed = written.and_then(|_| {
        if missing {
            // Another process may have made it first: then theirs is used.
            match std::fs::hard_link(&tmp, path) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
                other => other,
            }
        } else {
            std::fs::rename(&tmp, path)
        }
    });
    let _ = std::fs::remove_file(&tmp);
    placed?;
    read(path)
}

/// Decodes a client's base64 line; `=` is the empty initial response.
pub fn decode(line: &[u8]) -> Option<Vec<u8>> {
    if line == b"=" {
        return Some(Vec::new());
    }
    BASE64.decode(line).ok()
}

pub fn encode(data: &[u8]) -> String {
    BASE64.encode(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(plaintext: bool) -> Offer {
        Offer {
            plaintext,
            tls: plaintext,
            scram: ScramKeyed::All,
            certificate_user: Some("alice".into()),
            channel_binding: None,
            policy: Mechanisms::Auto,
        }
    }

    #[test]
    fn mechanisms_follow_the_offer() {
        assert_eq!(offer(false).mechanisms(), ["SCRAM-SHA-256", "EXTERNAL"]);
        let o = Offer { certificate_user: None, channel_binding: Some([1; 32]), ..offer(true) };
        // auto: -PLUS is accepted when asked for, never advertised.
        assert_eq!(o.mechanisms(), ["SCRAM-SHA-256", "PLAIN", "LOGIN"]);
        assert_eq!(o.refusal("SCRAM-SHA-256-PLUS"), None);
        assert_eq!(o.binding_for("SCRAM-SHA-256-PLUS"), Some([1; 32]));
        assert_eq!(o.binding_for("SCRAM-SHA-256"), None, "a client's y is no downgrade when -PLUS is not offered");
        assert_eq!(o.refusal("LOGIN"), None);
        assert_eq!(o.refusal("CRAM-MD5"), Some("unsupported authentication mechanism"));
        assert!(offer(false).refusal("PLAIN").unwrap().contains("TLS"));
    }

    #[test]
    fn scram_is_offered_where_it_can_succeed() {
        // Only some accounts have keys: SCRAM without TLS (careful clients'
        // only way in), accepted but not advertised under TLS (PLAIN is).
        let some = Offer { scram: ScramKeyed::Some, certificate_user: None, ..offer(true) };
        assert_eq!(some.mechanisms(), ["PLAIN", "LOGIN"]);
        assert_eq!(some.refusal("SCRAM-SHA-256"), None);
        assert_eq!(Offer { plaintext: false, tls: false, ..some.clone() }.mechanisms(), ["SCRAM-SHA-256"]);
        let loopback = Offer { tls: false, ..some.clone() };
        assert_eq!(loopback.mechanisms(), ["SCRAM-SHA-256", "PLAIN", "LOGIN"]);
        let none = Offer { scram: ScramKeyed::None, ..some };
        assert_eq!(none.mechanisms(), ["PLAIN", "LOGIN"]);
        assert!(none.refusal("SCRAM-SHA-256").unwrap().contains("no account"));
    }

    #[test]
    fn the_listed_mechanisms_where_usable() {
        let listed = |v: &str| Offer { policy: Mechanisms::parse(v).unwrap(), ..offer(true) };
        let o = Offer { channel_binding: Some([2; 32]), ..listed("scram-sha-256-plus, SCRAM-SHA-256, PLAIN") };
        assert_eq!(o.mechanisms(), ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN"]);
        assert_eq!(o.binding_for("SCRAM-SHA-256"), Some([2; 32]), "-PLUS advertised: y is a downgrade");
        assert!(o.refusal("LOGIN").unwrap().contains("auth_mechanisms"));
        assert_eq!(listed("PLAIN").mechanisms(), ["PLAIN"]);
        assert!(listed("none").mechanisms().is_empty());
        assert_eq!(Mechanisms::parse("PLAIN, CRAM-MD5"), None);
        assert_eq!(Mechanisms::parse(""), None);
    }

    #[test]
    fn plain_forms() {
        let (_, o) =
            Exchange::start("PLAIN", Some(b"\0alice\0pw".to_vec()), &offer(true), |_| Ok(scram::Stored::Unknown));
        assert!(matches!(o, Outcome::CheckPassword { ref user, ref password } if user == "alice" && password == b"pw"));
        let (_, o) =
            Exchange::start("PLAIN", Some(b"bob\0alice\0pw".to_vec()), &offer(true), |_| Ok(scram::Stored::Unknown));
        assert!(matches!(o, Outcome::Failure(_)));
        let (_, o) =
            Exchange::start("PLAIN", Some(b"alice\0pw".to_vec()), &offer(true), |_| Ok(scram::Stored::Unknown));
        assert!(matches!(o, Outcome::Failure(_)));
        let (_, o) =
            Exchange::start("PLAIN", Some(b"\0alice\0pw".to_vec()), &offer(false), |_| Ok(scram::Stored::Unknown));
        assert!(matches!(o, Outcome::Failure("mechanism not available")));
        let (ex, o) = Exchange::start("PLAIN", None, &offer(true), |_| Ok(scram::Stored::Unknown));
        assert!(matches!(o, Outcome::Challenge(ref c) if c.is_empty()));
        let (_, o) = ex.unwrap().step(b"alice\0alice\0pw", |_| Ok(scram::Stored::Unknown));
        assert!(matches!(o, Outcome::CheckPassword { .. }));
    }

    #[test]
    fn external_forms() {
        let (_, o) = Exchange::start("EXTERNAL", Some(Vec::new()), &offer(false), |_| Ok(scram::Stored::Unknown));
        assert!(matches!(o, Outcome::Success { ref user, .. } if user == "alice"));
        let (_, o) = Exchange::start("EXTERNAL", Some(b"bob".to_vec()), &offer(false), |_| Ok(scram::Stored::Unknown));
        assert!(matches!(o, Outcome::Failure(_)));
        let no_cert = Offer { certificate_user: None, ..offer(false) };
        let (_, o) = Exchange::start("EXTERNAL", Some(Vec::new()), &no_cert, |_| Ok(scram::Stored::Unknown));
        assert!(matches!(o, Outcome::Failure(_)));
    }

    #[test]
    fn the_fake_key_secret_is_made_once_and_remade_only_when_unusable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = crate::testkit::TempDir::new("secret");
        let path = dir.join("scram.secret");
        let made = fake_key_secret(dir.path(), &path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), made);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fake_key_secret(dir.path(), &path).unwrap(), made, "a good secret is kept");
        // Left empty by a full disk: made anew, then kept.
        std::fs::write(&path, b"").unwrap();
        let again = fake_key_secret(dir.path(), &path).unwrap();
        assert_ne!(again, made);
        assert_eq!(fake_key_secret(dir.path(), &path).unwrap(), again);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, ["scram.secret"], "no temporary file left");
    }

    #[test]
    fn base64_lines() {
        assert_eq!(decode(b"="), Some(Vec::new()));
        assert_eq!(decode(b"AGFsaWNlAHB3"), Some(b"\0alice\0pw".to_vec()));
        assert_eq!(decode(b"not base64!"), None);
    }
}
