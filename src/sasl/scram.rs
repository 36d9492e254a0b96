//! SCRAM-SHA-256(-PLUS) server side for POP3 AUTH, without I/O (RFC 5802, RFC 7677, RFC 9266).

use std::fmt;
use std::io;
use std::num::NonZeroU32;
use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hmac, pbkdf2};
use subtle::ConstantTimeEq;

use crate::limits::MAX_USER_NAME;

/// Length of SHA-256 output, and so of every SCRAM key, signature and proof.
const KEY_LEN: usize = 32;
/// Random bytes the server adds to the client's nonce (base64-encoded: 32 characters).
const SERVER_NONCE_LEN: usize = 24;
/// Iteration count announced for unknown users.
const FAKE_ITERATIONS: u32 = 4096;
/// Salt length announced for unknown users (the usual length of a real salt).
const FAKE_SALT_LEN: usize = 16;
/// The only channel binding type supported (RFC 9266).
const CB_NAME: &str = "tls-exporter";

/// Why an exchange failed: a fixed text for the log, never secret material.
type Reason = &'static str;

/// Why the client-first-message ends the exchange.
enum Stop {
    /// The message is refused (a [`Step::Failure`]).
    Refused(Reason),
    /// The user's keys could not be read (a [`Step::Unavailable`]).
    Unavailable(io::Error),
}

impl From<Reason> for Stop {
    fn from(reason: Reason) -> Stop {
        Stop::Refused(reason)
    }
}

/// Stored SCRAM-SHA-256 credentials (what the users file keeps instead of a password).
#[derive(Clone, PartialEq, Eq)]
pub struct ScramKeys {
    /// PBKDF2 iteration count (at least 1).
    pub iterations: u32,
    /// PBKDF2 salt (non-empty).
    pub salt: Vec<u8>,
    /// StoredKey = SHA-256(ClientKey).
    pub stored_key: [u8; KEY_LEN],
    /// ServerKey = HMAC(SaltedPassword, "Server Key").
    pub server_key: [u8; KEY_LEN],
}

impl ScramKeys {
    /// Derives keys from a password (used for tests and for a `pop3d` helper
    /// that prints users-file lines).
    ///
    /// The password is used as given: no SASLprep normalisation is done, so
    /// clients must send the same bytes (true for ASCII passwords). An
    /// `iterations` of 0 is treated as 1, and the result records 1.
    /// Cost grows linearly with `iterations`.
    pub fn derive(password: &[u8], salt: &[u8], iterations: u32) -> ScramKeys {
        let iterations = iterations.max(1);
        let salted = salted_password(password, salt, iterations);
        let client_key = hmac_sha256(&salted, b"Client Key");
        ScramKeys {
            iterations,
            salt: salt.to_vec(),
            stored_key: sha256(&client_key),
            server_key: hmac_sha256(&salted, b"Server Key"),
        }
    }

    /// Parses Dovecot's users-file form (the part after `{SCRAM-SHA-256}`):
    /// `ITER,SALT_B64,STOREDKEY_B64,SERVERKEY_B64`, standard padded base64.
    ///
    /// Returns None if malformed: ITER must be decimal digits giving 1..=u32::MAX
    /// (any value is accepted, but every login costs ITER HMAC rounds, so keep
    /// it near 4096); the salt must be non-empty; both keys exactly 32 bytes;
    /// no surrounding whitespace and no extra fields.
    pub fn parse(text: &str) -> Option<ScramKeys> {
        let mut fields = text.split(',');
        let iterations = parse_iterations(fields.next()?)?;
        let salt = STANDARD.decode(fields.next()?).ok()?;
        let stored_key = decode_key(fields.next()?)?;
        let server_key = decode_key(fields.next()?)?;
        if salt.is_empty() || fields.next().is_some() {
            return None;
        }
        Some(ScramKeys { iterations, salt, stored_key, server_key })
    }

    /// The form [`ScramKeys::parse`] reads, for printing into a users file.
    pub fn to_text(&self) -> String {
        format!(
            "{},{},{},{}",
            self.iterations,
            STANDARD.encode(&self.salt),
            STANDARD.encode(self.stored_key),
            STANDARD.encode(self.server_key)
        )
    }

    /// Checks a plaintext password against the stored keys (for USER/PASS and
    /// AUTH PLAIN). Runs PBKDF2 with the stored salt and iteration count, then
    /// compares StoredKey in constant time.
    pub fn verify_password(&self, password: &[u8]) -> bool {
        let candidate = ScramKeys::derive(password, &self.salt, self.iterations);
        bool::from(candidate.stored_key.ct_eq(&self.stored_key))
    }
}

impl fmt::Debug for ScramKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramKeys").field("iterations", &self.iterations).finish_non_exhaustive()
    }
}

/// Channel binding the server can offer for this session.
#[derive(Clone, PartialEq, Eq)]
pub enum ChannelBinding {
    /// Not on TLS, or not TLS 1.3: only SCRAM-SHA-256 may be advertised.
    None,
    /// The 32-byte TLS exporter value for label "EXPORTER-Channel-Binding"
    /// and an empty context (RFC 9266): SCRAM-SHA-256-PLUS may be advertised.
    TlsExporter([u8; KEY_LEN]),
}

impl fmt::Debug for ChannelBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChannelBinding::None => "None",
            ChannelBinding::TlsExporter(_) => "TlsExporter(..)",
        })
    }
}

/// What the caller does after feeding a client message.
#[derive(Debug)]
pub enum Step {
    /// Send this server-first-message (as bytes, the caller base64-encodes)
    /// and wait for the next client response.
    Continue(Vec<u8>),
    /// Authentication succeeded for `user` (the decoded authcid): send this
    /// server-final-message (`v=...`, the caller base64-encodes it) as the
    /// final challenge or with the +OK, as the POP3 SASL profile allows.
    Success {
        /// The authenticated user name.
        user: String,
        /// The server-final-message.
        server_final: Vec<u8>,
    },
    /// Failed; the caller answers -ERR [AUTH]. `reason` is for the log only
    /// (never secret material). The exchange is over.
    Failure(&'static str),
    /// The exchange was for an account stored with another kind of secret
    /// (a crypt hash, `{PLAIN}`): it ran on fake keys and could never
    /// succeed. (An unknown name fails as a wrong password does.)
    NoKeys,
    /// The user's keys could not be read (the users file): the caller
    /// answers [SYS/TEMP] rather than going on with made-up keys.
    Unavailable(io::Error),
}

/// What the users file holds for the name a SCRAM exchange is for.
pub enum Stored {
    /// The account's SCRAM keys.
    Keys(ScramKeys),
    /// An account with another kind of secret (a crypt hash, `{PLAIN}`):
    /// SCRAM cannot succeed for it whatever the password ([`Step::NoKeys`]).
    OtherSecret,
    /// No such account: the exchange fails as a wrong password does, so
    /// that a name with keys is not told from no name at all.
    Unknown,
}

/// The server side of one SCRAM-SHA-256(-PLUS) exchange.
///
/// Use one per AUTH command: [`ScramServer::client_first`], then
/// [`ScramServer::client_final`]. Any failure ends the exchange, and every
/// later call returns [`Step::Failure`].
pub struct ScramServer {
    plus: bool,
    binding: ChannelBinding,
    state: State,
    #[cfg(test)]
    fixed_nonce: Option<String>,
}

/// Where the exchange is.
enum State {
    Start,
    AwaitingFinal(Box<Exchange>),
    Done,
}

/// What the server remembers between client-first and client-final.
struct Exchange {
    user: String,
    keys: ScramKeys,
    /// The keys are the account's own (not made up).
    known: bool,
    /// The account exists with another kind of secret.
    other_secret: bool,
    /// The exact `c=` value the client must send.
    channel_binding: String,
    /// Client nonce followed by server nonce.
    nonce: String,
    client_first_bare: String,
    server_first: String,
}

/// The gs2-cbind-flag of the client-first-message.
#[derive(PartialEq, Eq)]
enum CbFlag<'a> {
    /// `n`: the client does not support channel binding.
    NotSupported,
    /// `y`: the client supports it but thinks the server does not.
    NotOffered,
    /// `p=NAME`: the client uses channel binding type NAME.
    Used(&'a str),
}

/// The parts of a client-first-message the server needs.
struct ClientFirst<'a> {
    gs2_header: &'a str,
    flag: CbFlag<'a>,
    authzid: Option<String>,
    user: String,
    client_nonce: &'a str,
    bare: &'a str,
}

impl fmt::Debug for ScramServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Start => "start",
            State::AwaitingFinal(_) => "awaiting-final",
            State::Done => "done",
        };
        f.debug_struct("ScramServer")
            .field("plus", &self.plus)
            .field("binding", &self.binding)
            .field("state", &state)
            .finish()
    }
}

impl ScramServer {
    /// Starts an exchange. `plus` is true for the SCRAM-SHA-256-PLUS
    /// mechanism; `binding` is what this session can offer. Advertise -PLUS
    /// only when `binding` is [`ChannelBinding::TlsExporter`]: with `plus`
    /// and [`ChannelBinding::None`] every exchange fails.
    pub fn new(plus: bool, binding: ChannelBinding) -> ScramServer {
        ScramServer {
            plus,
            binding,
            state: State::Start,
            #[cfg(test)]
            fixed_nonce: None,
        }
    }

    /// A server whose nonce part is `nonce` instead of random (tests only).
    #[cfg(test)]
    fn with_server_nonce(plus: bool, binding: ChannelBinding, nonce: &str) -> ScramServer {
        ScramServer { fixed_nonce: Some(nonce.to_string()), ..ScramServer::new(plus, binding) }
    }

    /// Feeds the decoded client-first-message; returns [`Step::Continue`]
    /// with the server-first-message or [`Step::Failure`].
    ///
    /// `lookup(authcid)` is called once, only for a syntactically valid
    /// message, with the decoded user name (valid UTF-8, no NUL, 1..=255
    /// bytes, not SASLprep-normalised); it returns what is stored for the
    /// name ([`Stored`]), or the error that kept it from reading it
    /// ([`Step::Unavailable`]). A name without keys gets fake keys that are
    /// the same for the same name for the life of the process (salt from an
    /// HMAC of the name under a per-process random secret, 4096
    /// iterations), and the exchange fails only at
    /// [`ScramServer::client_final`].
    pub fn client_first(&mut self, msg: &[u8], lookup: impl FnOnce(&str) -> io::Result<Stored>) -> Step {
        if !matches!(self.state, State::Start) {
            self.state = State::Done;
            return Step::Failure("client-first-message out of order");
        }
        self.state = State::Done;
        match self.start(msg, lookup) {
            Ok(exchange) => {
                let server_first = exchange.server_first.clone().into_bytes();
                self.state = State::AwaitingFinal(Box::new(exchange));
                Step::Continue(server_first)
            }
            Err(Stop::Refused(reason)) => Step::Failure(reason),
            Err(Stop::Unavailable(e)) => Step::Unavailable(e),
        }
    }

    /// The user the client-first-message named, once it was accepted.
    pub fn user(&self) -> Option<&str> {
        match &self.state {
            State::AwaitingFinal(exchange) => Some(&exchange.user),
            _ => None,
        }
    }

    /// Feeds the decoded client-final-message; returns [`Step::Success`] or
    /// [`Step::Failure`]. Called before [`ScramServer::client_first`]
    /// succeeded, or a second time, it fails.
    pub fn client_final(&mut self, msg: &[u8]) -> Step {
        let State::AwaitingFinal(exchange) = std::mem::replace(&mut self.state, State::Done) else {
            return Step::Failure("client-final-message out of order");
        };
        match exchange.finish(msg) {
            Ok(server_final) => Step::Success { user: exchange.user, server_final },
            Err(_) if exchange.other_secret => Step::NoKeys,
            Err(reason) => Step::Failure(reason),
        }
    }

    /// Checks the client-first-message and builds the server-first-message.
    fn start(&self, msg: &[u8], lookup: impl FnOnce(&str) -> io::Result<Stored>) -> Result<Exchange, Stop> {
        let text = std::str::from_utf8(msg).map_err(|_| "client-first-message is not UTF-8")?;
        let first = parse_client_first(text)?;
        self.check_cb_flag(&first.flag)?;
        if first.authzid.as_ref().is_some_and(|a| *a != first.user) {
            return Err("authzid differs from authcid".into());
        }
        let secret = process_secret().ok_or("random number generator failed")?;
        let server_nonce = self.server_nonce()?;
        let fake = fake_keys(&first.user, secret);
        let stored = lookup(&first.user).map_err(Stop::Unavailable)?;
        let other_secret = matches!(stored, Stored::OtherSecret);
        let (keys, known) = match stored {
            Stored::Keys(keys) => (keys, true),
            Stored::OtherSecret | Stored::Unknown => (fake, false),
        };
        let nonce = format!("{}{server_nonce}", first.client_nonce);
        let server_first = format!("r={nonce},s={},i={}", STANDARD.encode(&keys.salt), keys.iterations);
        Ok(Exchange {
            channel_binding: self.expected_channel_binding(&first),
            user: first.user,
            keys,
            known,
            other_secret,
            nonce,
            client_first_bare: first.bare.to_string(),
            server_first,
        })
    }

    /// Applies RFC 5802 section 6 and RFC 9266 to the gs2-cbind-flag.
    fn check_cb_flag(&self, flag: &CbFlag<'_>) -> Result<(), Reason> {
        let offered = matches!(self.binding, ChannelBinding::TlsExporter(_));
        match flag {
            CbFlag::Used(_) if !self.plus => Err("channel binding sent for non-PLUS mechanism"),
            CbFlag::Used(name) if *name != CB_NAME => Err("unsupported channel binding type"),
            CbFlag::Used(_) if !offered => Err("channel binding not available"),
            CbFlag::Used(_) => Ok(()),
            _ if self.plus => Err("PLUS mechanism without channel binding"),
            CbFlag::NotOffered if offered => Err("channel binding downgrade detected"),
            CbFlag::NotOffered | CbFlag::NotSupported => Ok(()),
        }
    }

    /// The `c=` value: base64 of the gs2 header followed by the channel
    /// binding data when the client uses channel binding.
    fn expected_channel_binding(&self, first: &ClientFirst<'_>) -> String {
        let mut data = first.gs2_header.as_bytes().to_vec();
        if let (CbFlag::Used(_), ChannelBinding::TlsExporter(ekm)) = (&first.flag, &self.binding) {
            data.extend_from_slice(ekm);
        }
        STANDARD.encode(data)
    }

    /// The server's part of the nonce: 24 random bytes, base64-encoded.
    fn server_nonce(&self) -> Result<String, Reason> {
        #[cfg(test)]
        {
            if let Some(nonce) = &self.fixed_nonce {
                return Ok(nonce.clone());
            }
        }
        let bytes: [u8; SERVER_NONCE_LEN] = random_bytes().ok_or("random number generator failed")?;
        Ok(STANDARD.encode(bytes))
    }
}

impl Exchange {
    /// Checks the client-final-message; returns the server-final-message.
    fn finish(&self, msg: &[u8]) -> Result<Vec<u8>, Reason> {
        let text = std::str::from_utf8(msg).map_err(|_| "client-final-message is not UTF-8")?;
        let (without_proof, proof_attr) = text.rsplit_once(',').ok_or("missing proof")?;
        let proof = proof_attr.strip_prefix("p=").ok_or("missing proof")?;
        let mut attrs = without_proof.split(',');
        let cbind = attr(attrs.next(), "c=").ok_or("missing channel binding")?;
        let nonce = attr(attrs.next(), "r=").ok_or("missing nonce")?;
        attrs.try_for_each(check_extension)?;
        if cbind != self.channel_binding {
            return Err("channel binding mismatch");
        }
        if nonce != self.nonce {
            return Err("nonce mismatch");
        }
        let proof = decode_key(proof).ok_or("malformed proof")?;
        let auth_message = format!("{},{},{without_proof}", self.client_first_bare, self.server_first);
        let proof_ok = self.proof_is_valid(&proof, auth_message.as_bytes());
        if !self.known {
            return Err("unknown user");
        }
        if !proof_ok {
            return Err("wrong password");
        }
        let signature = hmac_sha256(&self.keys.server_key, auth_message.as_bytes());
        Ok(format!("v={}", STANDARD.encode(signature)).into_bytes())
    }

    /// ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); checks
    /// SHA-256(ClientKey) == StoredKey in constant time.
    fn proof_is_valid(&self, proof: &[u8; KEY_LEN], auth_message: &[u8]) -> bool {
        let signature = hmac_sha256(&self.keys.stored_key, auth_message);
        let mut client_key = [0u8; KEY_LEN];
        for ((k, p), s) in client_key.iter_mut().zip(proof).zip(&signature) {
            *k = p ^ s;
        }
        bool::from(sha256(&client_key).ct_eq(&self.keys.stored_key))
    }
}

/// Splits a client-first-message into its gs2 header and bare parts.
fn parse_client_first(text: &str) -> Result<ClientFirst<'_>, Reason> {
    let (flag, rest) = text.split_once(',').ok_or("missing gs2 header")?;
    let (authzid, bare) = rest.split_once(',').ok_or("missing gs2 header")?;
    let gs2_header = text.get(..text.len() - bare.len()).ok_or("missing gs2 header")?;
    let (user, client_nonce) = parse_bare(bare)?;
    Ok(ClientFirst {
        gs2_header,
        flag: parse_cb_flag(flag)?,
        authzid: parse_authzid(authzid)?,
        user,
        client_nonce,
        bare,
    })
}

/// Parses a gs2-cbind-flag: `n`, `y` or `p=NAME`.
fn parse_cb_flag(flag: &str) -> Result<CbFlag<'_>, Reason> {
    match flag {
        "n" => Ok(CbFlag::NotSupported),
        "y" => Ok(CbFlag::NotOffered),
        _ => match flag.strip_prefix("p=") {
            Some(name) if is_cb_name(name) => Ok(CbFlag::Used(name)),
            _ => Err("malformed channel binding flag"),
        },
    }
}

/// cb-name = 1*(ALPHA / DIGIT / "." / "-").
fn is_cb_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// Parses the optional `a=saslname` of the gs2 header.
fn parse_authzid(text: &str) -> Result<Option<String>, Reason> {
    if text.is_empty() {
        return Ok(None);
    }
    let name = text.strip_prefix("a=").ok_or("malformed authzid")?;
    decode_saslname(name).map(Some)
}

/// Parses client-first-message-bare: `n=USER,r=NONCE[,extensions]`.
fn parse_bare(bare: &str) -> Result<(String, &str), Reason> {
    let mut attrs = bare.split(',');
    let first = attrs.next().unwrap_or("");
    if first.starts_with("m=") {
        return Err("mandatory extension not supported");
    }
    let user = decode_saslname(first.strip_prefix("n=").ok_or("missing user name")?)?;
    let nonce = attr(attrs.next(), "r=").ok_or("missing nonce")?;
    if nonce.is_empty() || !nonce.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',') {
        return Err("malformed nonce");
    }
    attrs.try_for_each(check_extension)?;
    Ok((user, nonce))
}

/// The value of `attr` if it starts with `prefix`.
fn attr<'a>(attr: Option<&'a str>, prefix: &str) -> Option<&'a str> {
    attr?.strip_prefix(prefix)
}

/// Accepts an optional extension (`ALPHA=value`, ignored); rejects `m=`
/// and anything malformed.
fn check_extension(ext: &str) -> Result<(), Reason> {
    let mut bytes = ext.bytes();
    let name = bytes.next().filter(u8::is_ascii_alphabetic);
    let well_formed = name.is_some() && bytes.next() == Some(b'=') && ext.len() > 2;
    if !well_formed || ext.contains('\0') {
        return Err("malformed extension");
    }
    if name == Some(b'm') {
        return Err("mandatory extension not supported");
    }
    Ok(())
}

/// Decodes a saslname (`=2C` is `,`, `=3D` is `=`, any other `=` is an
/// error) and checks the result: no NUL, 1..=255 bytes.
fn decode_saslname(text: &str) -> Result<String, Reason> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some((head, tail)) = rest.split_once('=') {
        out.push_str(head);
        let (ch, tail) = if let Some(tail) = tail.strip_prefix("2C") {
            (',', tail)
        } else if let Some(tail) = tail.strip_prefix("3D") {
            ('=', tail)
        } else {
            return Err("malformed escape in user name");
        };
        out.push(ch);
        rest = tail;
    }
    out.push_str(rest);
    // RFC 5802 section 5.1: the name is prepared with SASLprep.
    let out = crate::saslprep::saslprep(&out).ok_or("invalid user name")?.into_owned();
    if out.is_empty() || out.len() > MAX_USER_NAME || out.contains('\0') {
        return Err("invalid user name");
    }
    Ok(out)
}

/// Decimal digits only (no sign, no spaces), at least 1.
fn parse_iterations(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|&n| n >= 1)
}

/// Decodes standard padded base64 that must give exactly 32 bytes.
fn decode_key(text: &str) -> Option<[u8; KEY_LEN]> {
    let bytes = STANDARD.decode(text).ok()?;
    <[u8; KEY_LEN]>::try_from(bytes.as_slice()).ok()
}

/// Keys for a user that does not exist: deterministic per name for the life
/// of the process, unguessable without the process secret.
fn fake_keys(user: &str, secret: &[u8; KEY_LEN]) -> ScramKeys {
    let derive = |label: &[u8]| {
        let mut data = label.to_vec();
        data.extend_from_slice(user.as_bytes());
        hmac_sha256(secret, &data)
    };
    let salt = derive(b"pop3d fake salt\0");
    ScramKeys {
        iterations: FAKE_ITERATIONS,
        salt: salt.iter().take(FAKE_SALT_LEN).copied().collect(),
        stored_key: derive(b"pop3d fake stored key\0"),
        server_key: derive(b"pop3d fake server key\0"),
    }
}

static SECRET: OnceLock<[u8; KEY_LEN]> = OnceLock::new();

/// Sets the secret behind fake keys (kept in `state_dir`, so that an unknown
/// user's salt is the same in every process: inetd mode runs one per
/// session). Without it a per-process secret is made on first use.
pub fn use_fake_key_secret(secret: [u8; KEY_LEN]) {
    let _ = SECRET.set(secret);
}

/// The secret behind fake keys; None only if the system random number
/// generator fails.
fn process_secret() -> Option<&'static [u8; KEY_LEN]> {
    if let Some(secret) = SECRET.get() {
        return Some(secret);
    }
    let fresh: [u8; KEY_LEN] = random_bytes()?;
    Some(SECRET.get_or_init(|| fresh))
}

/// N bytes from the system random number generator.
fn random_bytes<const N: usize>() -> Option<[u8; N]> {
    let mut bytes = [0u8; N];
    SystemRandom::new().fill(&mut bytes).ok()?;
    Some(bytes)
}

/// SaltedPassword = PBKDF2-HMAC-SHA-256(password, salt, iterations).
fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> [u8; KEY_LEN] {
    let rounds = NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN);
    let mut out = [0u8; KEY_LEN];
    pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, rounds, salt, password, &mut out);
    out
}

/// HMAC-SHA-256(key, data).
fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; KEY_LEN] {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data);
    to_key(tag.as_ref())
}

/// SHA-256(data).
fn sha256(data: &[u8]) -> [u8; KEY_LEN] {
    to_key(digest::digest(&digest::SHA256, data).as_ref())
}

/// Copies a 32-byte SHA-256 or HMAC-SHA-256 output into an array.
fn to_key(bytes: &[u8]) -> [u8; KEY_LEN] {
    let mut out = [0u8; KEY_LEN];
    for (o, b) in out.iter_mut().zip(bytes) {
        *o = *b;
    }
    out
}

#[cfg(test)]
mod tests;
