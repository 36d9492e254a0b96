//! SCRAM-SHA-256(-PLUS) server side for POP3 AUTH, without I/O (RFC 5802, RFC 7677, RFC 9266).

use std::fmt;
use std::num::NonZeroU32;
use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hmac, pbkdf2};

/// Length of SHA-256 output, and so of every SCRAM key, signature and proof.
const KEY_LEN: usize = 32;
/// Random bytes the server adds to the client's nonce (base64-encoded: 32 characters).
const SERVER_NONCE_LEN: usize = 24;
/// Iteration count announced for unknown users.
const FAKE_ITERATIONS: u32 = 4096;
/// Salt length announced for unknown users (the usual length of a real salt).
const FAKE_SALT_LEN: usize = 16;
/// Longest user name accepted, in bytes after saslname decoding.
const MAX_USER_LEN: usize = 255;
/// The only channel binding type supported (RFC 9266).
const CB_NAME: &str = "tls-exporter";

/// Why an exchange failed: a fixed text for the log, never secret material.
type Reason = &'static str;

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
        ct_eq(&candidate.stored_key, &self.stored_key)
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
    known: bool,
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
    /// bytes, not SASLprep-normalised); it returns the user's keys, or None
    /// for an unknown user. An unknown user gets fake keys that are the same
    /// for the same name for the life of the process (salt from an HMAC of
    /// the name under a per-process random secret, 4096 iterations), and the
    /// exchange fails only at [`ScramServer::client_final`].
    pub fn client_first(&mut self, msg: &[u8], lookup: impl FnOnce(&str) -> Option<ScramKeys>) -> Step {
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
            Err(reason) => Step::Failure(reason),
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
            Err(reason) => Step::Failure(reason),
        }
    }

    /// Checks the client-first-message and builds the server-first-message.
    fn start(&self, msg: &[u8], lookup: impl FnOnce(&str) -> Option<ScramKeys>) -> Result<Exchange, Reason> {
        let text = std::str::from_utf8(msg).map_err(|_| "client-first-message is not UTF-8")?;
        let first = parse_client_first(text)?;
        self.check_cb_flag(&first.flag)?;
        if first.authzid.as_ref().is_some_and(|a| *a != first.user) {
            return Err("authzid differs from authcid");
        }
        let secret = process_secret().ok_or("random number generator failed")?;
        let server_nonce = self.server_nonce()?;
        let fake = fake_keys(&first.user, secret);
        let (keys, known) = match lookup(&first.user) {
            Some(keys) => (keys, true),
            None => (fake, false),
        };
        let nonce = format!("{}{server_nonce}", first.client_nonce);
        let server_first = format!("r={nonce},s={},i={}", STANDARD.encode(&keys.salt), keys.iterations);
        Ok(Exchange {
            channel_binding: self.expected_channel_binding(&first),
            user: first.user,
            keys,
            known,
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
        ct_eq(&sha256(&client_key), &self.keys.stored_key)
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
    if out.is_empty() || out.len() > MAX_USER_LEN || out.contains('\0') {
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

/// Compares two keys without an early exit.
fn ct_eq(a: &[u8; KEY_LEN], b: &[u8; KEY_LEN]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
    const RFC_CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    const RFC_SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const EKM: [u8; 32] = [0x5a; 32];

    fn rfc_keys() -> ScramKeys {
        let salt = STANDARD.decode(RFC_SALT).unwrap();
        ScramKeys::derive(b"pencil", &salt, 4096)
    }

    /// Keys for "user"/"pencil", derived once (PBKDF2 is slow in debug builds).
    fn keys() -> ScramKeys {
        static KEYS: OnceLock<ScramKeys> = OnceLock::new();
        KEYS.get_or_init(rfc_keys).clone()
    }

    fn lookup(name: &str) -> Option<ScramKeys> {
        (name == "user").then(keys)
    }

    /// A SCRAM client: builds the client-final-message for `password` from
    /// the server-first-message, and the server-final it expects.
    struct Client {
        gs2_header: String,
        cbind_data: Vec<u8>,
        bare: String,
    }

    impl Client {
        fn new(gs2_header: &str, cbind_data: &[u8], user: &str, nonce: &str) -> Client {
            Client {
                gs2_header: gs2_header.to_string(),
                cbind_data: cbind_data.to_vec(),
                bare: format!("n={user},r={nonce}"),
            }
        }

        fn first(&self) -> Vec<u8> {
            format!("{}{}", self.gs2_header, self.bare).into_bytes()
        }

        /// Returns (client-final-message, expected server-final-message).
        fn last(&self, server_first: &[u8], password: &[u8]) -> (Vec<u8>, Vec<u8>) {
            let server_first = std::str::from_utf8(server_first).unwrap();
            let mut parts = server_first.split(',');
            let nonce = parts.next().unwrap().strip_prefix("r=").unwrap();
            let salt = parts.next().unwrap().strip_prefix("s=").unwrap();
            let iterations = parts.next().unwrap().strip_prefix("i=").unwrap();
            let salt = STANDARD.decode(salt).unwrap();
            let salted = salted_password(password, &salt, iterations.parse().unwrap());
            let mut cbind = self.gs2_header.as_bytes().to_vec();
            cbind.extend_from_slice(&self.cbind_data);
            let without_proof = format!("c={},r={nonce}", STANDARD.encode(cbind));
            let auth = format!("{},{server_first},{without_proof}", self.bare);
            let client_key = hmac_sha256(&salted, b"Client Key");
            let signature = hmac_sha256(&sha256(&client_key), auth.as_bytes());
            let proof: Vec<u8> = client_key.iter().zip(signature).map(|(a, b)| a ^ b).collect();
            let server_key = hmac_sha256(&salted, b"Server Key");
            let expected = format!("v={}", STANDARD.encode(hmac_sha256(&server_key, auth.as_bytes())));
            let last = format!("{without_proof},p={}", STANDARD.encode(proof));
            (last.into_bytes(), expected.into_bytes())
        }
    }

    /// Runs a whole exchange; returns the final step.
    fn run(server: &mut ScramServer, client: &Client, password: &[u8]) -> Step {
        let Step::Continue(server_first) = server.client_first(&client.first(), lookup) else {
            panic!("client-first rejected");
        };
        let (last, expected) = client.last(&server_first, password);
        let step = server.client_final(&last);
        if let Step::Success { server_final, .. } = &step {
            assert_eq!(*server_final, expected);
        }
        step
    }

    fn success(user: &str, server: &mut ScramServer, client: &Client) {
        match run(server, client, b"pencil") {
            Step::Success { user: u, .. } => assert_eq!(u, user),
            other => panic!("expected success, got {other:?}"),
        }
    }

    fn first_step(plus: bool, binding: ChannelBinding, msg: &str) -> Step {
        ScramServer::new(plus, binding).client_first(msg.as_bytes(), lookup)
    }

    #[test]
    fn rfc7677_test_vector() {
        let mut server = ScramServer::with_server_nonce(false, ChannelBinding::None, RFC_SERVER_NONCE);
        let step = server.client_first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO", lookup);
        let expected_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        assert_eq!(step, Step::Continue(expected_first.as_bytes().to_vec()));
        let last = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                    p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        let step = server.client_final(last.as_bytes());
        assert_eq!(
            step,
            Step::Success {
                user: "user".to_string(),
                server_final: b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec(),
            }
        );
    }

    #[test]
    fn test_client_matches_rfc_vector() {
        let client = Client::new("n,,", b"", "user", RFC_CLIENT_NONCE);
        let first = format!("r={RFC_CLIENT_NONCE}{RFC_SERVER_NONCE},s={RFC_SALT},i=4096");
        let (last, expected) = client.last(first.as_bytes(), b"pencil");
        assert!(String::from_utf8(last).unwrap().ends_with(",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="));
        assert_eq!(expected, b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    }

    #[test]
    fn full_exchange_plain() {
        let client = Client::new("n,,", b"", "user", "abcdef");
        success("user", &mut ScramServer::new(false, ChannelBinding::None), &client);
        // `n` is fine even when the session could bind: the client does not support it.
        let mut server = ScramServer::new(false, ChannelBinding::TlsExporter(EKM));
        success("user", &mut server, &client);
        // `y` is fine when the server does not offer binding.
        let client = Client::new("y,,", b"", "user", "abcdef");
        success("user", &mut ScramServer::new(false, ChannelBinding::None), &client);
    }

    #[test]
    fn server_nonce_is_random_and_extends_client_nonce() {
        let msg = b"n,,n=user,r=xyz";
        let nonce = |step: Step| match step {
            Step::Continue(first) => {
                let first = String::from_utf8(first).unwrap();
                let nonce = first.split(',').next().unwrap().to_string();
                assert!(nonce.starts_with("r=xyz"));
                assert_eq!(nonce.len(), "r=xyz".len() + 32);
                nonce
            }
            other => panic!("unexpected {other:?}"),
        };
        let a = nonce(ScramServer::new(false, ChannelBinding::None).client_first(msg, lookup));
        let b = nonce(ScramServer::new(false, ChannelBinding::None).client_first(msg, lookup));
        assert_ne!(a, b);
    }

    #[test]
    fn full_exchange_plus() {
        let client = Client::new("p=tls-exporter,,", &EKM, "user", "abc");
        let mut server = ScramServer::new(true, ChannelBinding::TlsExporter(EKM));
        success("user", &mut server, &client);
        let client = Client::new("p=tls-exporter,a=user,", &EKM, "user", "abc");
        let mut server = ScramServer::new(true, ChannelBinding::TlsExporter(EKM));
        success("user", &mut server, &client);
    }

    #[test]
    fn wrong_password_fails() {
        let client = Client::new("n,,", b"", "user", "abc");
        let mut server = ScramServer::new(false, ChannelBinding::None);
        assert_eq!(run(&mut server, &client, b"pencil2"), Step::Failure("wrong password"));
        let client = Client::new("p=tls-exporter,,", &EKM, "user", "abc");
        let mut server = ScramServer::new(true, ChannelBinding::TlsExporter(EKM));
        assert_eq!(run(&mut server, &client, b"Pencil"), Step::Failure("wrong password"));
    }

    #[test]
    fn wrong_channel_binding_data_fails() {
        let mut other = EKM;
        other[31] ^= 1;
        let client = Client::new("p=tls-exporter,,", &other, "user", "abc");
        let mut server = ScramServer::new(true, ChannelBinding::TlsExporter(EKM));
        assert_eq!(run(&mut server, &client, b"pencil"), Step::Failure("channel binding mismatch"));
        // Header in c= differs from the one sent in client-first.
        let mut server = ScramServer::new(false, ChannelBinding::None);
        let Step::Continue(first) = server.client_first(b"n,,n=user,r=abc", lookup) else { panic!() };
        let client = Client::new("y,,", b"", "user", "abc");
        let (last, _) = client.last(&first, b"pencil");
        assert_eq!(server.client_final(&last), Step::Failure("channel binding mismatch"));
    }

    #[test]
    fn unknown_user_runs_whole_exchange_and_fails() {
        let first = |user: &str| {
            let msg = format!("n,,n={user},r=abc");
            let mut server = ScramServer::with_server_nonce(false, ChannelBinding::None, "S");
            match server.client_first(msg.as_bytes(), lookup) {
                Step::Continue(first) => (server, String::from_utf8(first).unwrap()),
                other => panic!("unexpected {other:?}"),
            }
        };
        let (_, a) = first("nobody");
        let (_, b) = first("nobody");
        let (_, c) = first("somebody");
        assert_eq!(a, b, "fake salt must be deterministic per user");
        assert_ne!(a, c);
        let fields: Vec<&str> = a.split(',').collect();
        assert_eq!(fields.len(), 3);
        assert_eq!(fields[0], "r=abcS");
        let salt = STANDARD.decode(fields[1].strip_prefix("s=").unwrap()).unwrap();
        assert_eq!(salt.len(), FAKE_SALT_LEN);
        assert_eq!(fields[2], "i=4096");

        let client = Client::new("n,,", b"", "nobody", "abc");
        let (mut server, first) = first("nobody");
        let (last, _) = client.last(first.as_bytes(), b"pencil");
        assert_eq!(server.client_final(&last), Step::Failure("unknown user"));
    }

    #[test]
    fn channel_binding_flag_rules() {
        let offered = || ChannelBinding::TlsExporter(EKM);
        let fails = |plus: bool, binding: ChannelBinding, msg: &str| {
            assert!(matches!(first_step(plus, binding, msg), Step::Failure(_)), "{plus} {msg}");
        };
        // PLUS needs p=tls-exporter and a binding.
        fails(true, offered(), "n,,n=user,r=abc");
        fails(true, offered(), "y,,n=user,r=abc");
        fails(true, offered(), "p=tls-unique,,n=user,r=abc");
        fails(true, offered(), "p=,,n=user,r=abc");
        fails(true, ChannelBinding::None, "p=tls-exporter,,n=user,r=abc");
        fails(true, ChannelBinding::None, "n,,n=user,r=abc");
        // Non-PLUS must not get p=, and y is a downgrade when binding is offered.
        fails(false, offered(), "p=tls-exporter,,n=user,r=abc");
        fails(false, ChannelBinding::None, "p=tls-exporter,,n=user,r=abc");
        fails(false, offered(), "y,,n=user,r=abc");
        fails(false, ChannelBinding::None, "x,,n=user,r=abc");
        fails(false, ChannelBinding::None, "N,,n=user,r=abc");
        assert_eq!(
            first_step(false, offered(), "y,,n=user,r=abc"),
            Step::Failure("channel binding downgrade detected")
        );
        assert!(matches!(first_step(false, ChannelBinding::None, "y,,n=user,r=abc"), Step::Continue(_)));
    }

    #[test]
    fn authzid_must_equal_authcid() {
        let ok = |msg: &str| matches!(first_step(false, ChannelBinding::None, msg), Step::Continue(_));
        assert!(ok("n,a=user,n=user,r=abc"));
        assert!(!ok("n,a=admin,n=user,r=abc"));
        assert!(!ok("n,a=,n=user,r=abc"));
        assert!(!ok("n,b=user,n=user,r=abc"));
        assert!(!ok("n,user,n=user,r=abc"));
        assert!(ok("n,a=a=2Cb,n=a=2Cb,r=abc"));
    }

    #[test]
    fn saslname_decoding() {
        assert_eq!(decode_saslname("a=2Cb=3Dc").unwrap(), "a,b=c");
        assert_eq!(decode_saslname("=3D=2C").unwrap(), "=,");
        assert_eq!(decode_saslname("müller").unwrap(), "müller");
        for bad in ["", "a=2c", "a=3d", "a=", "a=2", "a=41", "a=3Z", "a\0b", &"x".repeat(256)] {
            assert!(decode_saslname(bad).is_err(), "{bad:?}");
        }
        assert!(decode_saslname(&"x".repeat(255)).is_ok());
        // The lookup sees the decoded name.
        let mut seen = String::new();
        let step = ScramServer::new(false, ChannelBinding::None).client_first(b"n,,n=a=2Cb=3D,r=abc", |name| {
            seen = name.to_string();
            None
        });
        assert!(matches!(step, Step::Continue(_)));
        assert_eq!(seen, "a,b=");
        // And success reports it.
        let client = Client::new("n,,", b"", "us=3Der", "abc");
        let mut server = ScramServer::new(false, ChannelBinding::None);
        let Step::Continue(first) = server.client_first(&client.first(), |name| (name == "us=er").then(keys)) else {
            panic!()
        };
        let (last, _) = client.last(&first, b"pencil");
        assert!(matches!(server.client_final(&last), Step::Success { user, .. } if user == "us=er"));
    }

    #[test]
    fn client_first_syntax() {
        let ok = |msg: &[u8]| {
            matches!(ScramServer::new(false, ChannelBinding::None).client_first(msg, lookup), Step::Continue(_))
        };
        assert!(ok(b"n,,n=user,r=abc"));
        assert!(ok(b"n,,n=user,r=abc,x=ignored"));
        assert!(ok(b"n,,n=nobody,r=!\"#$%&'()*+-./~"));
        for bad in [
            &b"m=x,n=user,r=abc"[..],
            b"n,,m=x,n=user,r=abc",
            b"n,,n=user,r=abc,m=x",
            b"n,,n=user,r=abc,x=",
            b"n,,n=user,r=abc,1=a",
            b"n,,n=user,r=abc,",
            b"n,,n=user,r=",
            b"n,,n=user,r=a b",
            b"n,,n=user,r=a\x7f",
            b"n,,n=user",
            b"n,,n=,r=abc",
            b"n,,r=abc,n=user",
            b"n,,n=us\xffer,r=abc",
            b"n,,n=us\0er,r=abc",
            b"n,n=user,r=abc",
            b"n",
            b"",
        ] {
            assert!(!ok(bad), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn client_final_syntax() {
        let client = Client::new("n,,", b"", "user", "abc");
        let start = || {
            let mut server = ScramServer::with_server_nonce(false, ChannelBinding::None, "S");
            let Step::Continue(first) = server.client_first(&client.first(), lookup) else { panic!() };
            let (last, _) = client.last(&first, b"pencil");
            (server, String::from_utf8(last).unwrap())
        };
        let (mut server, last) = start();
        let (without_proof, proof) = last.rsplit_once(',').unwrap();
        // An optional extension before the proof is part of AuthMessage, so the
        // proof no longer matches; a mandatory one is refused outright.
        let cases = [
            (format!("{without_proof},x=1,{proof}"), "wrong password"),
            (format!("{without_proof},m=1,{proof}"), "mandatory extension not supported"),
            (format!("{without_proof},{proof}=="), "malformed proof"),
            (format!("{without_proof},p=AAAA"), "malformed proof"),
            (format!("{without_proof},p=!!!!"), "malformed proof"),
            (format!("{without_proof},{proof},x=1"), "missing proof"),
            (without_proof.to_string(), "missing proof"),
            (format!("r=x,{without_proof},{proof}"), "missing channel binding"),
            (format!("c=biws,{proof}"), "missing nonce"),
            (last.replacen("r=abc", "r=abd", 1), "nonce mismatch"),
            (last.replacen(",r=", ",r=x", 1), "nonce mismatch"),
        ];
        for (msg, reason) in cases {
            let (mut server, _) = start();
            assert_eq!(server.client_final(msg.as_bytes()), Step::Failure(reason), "{msg}");
        }
        assert!(matches!(server.client_final(last.as_bytes()), Step::Success { .. }));
    }

    #[test]
    fn calls_out_of_order_fail() {
        let mut server = ScramServer::new(false, ChannelBinding::None);
        assert!(matches!(server.client_final(b"c=biws,r=abc,p=AAAA"), Step::Failure(_)));
        // Once failed, stays failed.
        assert!(matches!(server.client_first(b"n,,n=user,r=abc", lookup), Step::Failure(_)));

        let client = Client::new("n,,", b"", "user", "abc");
        let mut server = ScramServer::new(false, ChannelBinding::None);
        let Step::Continue(first) = server.client_first(&client.first(), lookup) else { panic!() };
        assert!(matches!(server.client_first(&client.first(), lookup), Step::Failure(_)));
        let (last, _) = client.last(&first, b"pencil");
        assert!(matches!(server.client_final(&last), Step::Failure(_)));

        let mut server = ScramServer::new(false, ChannelBinding::None);
        let Step::Continue(first) = server.client_first(&client.first(), lookup) else { panic!() };
        let (last, _) = client.last(&first, b"pencil");
        assert!(matches!(server.client_final(&last), Step::Success { .. }));
        assert!(matches!(server.client_final(&last), Step::Failure(_)));
        assert!(matches!(server.client_first(&client.first(), lookup), Step::Failure(_)));

        let mut server = ScramServer::new(false, ChannelBinding::None);
        assert!(matches!(server.client_first(b"garbage", lookup), Step::Failure(_)));
        assert!(matches!(server.client_final(&last), Step::Failure(_)));
    }

    #[test]
    fn keys_text_round_trip() {
        let keys = keys();
        let text = keys.to_text();
        assert!(text.starts_with("4096,W22ZaJ0SNY7soEsUEjb6gQ==,"));
        assert_eq!(ScramKeys::parse(&text), Some(keys.clone()));
        let fields: Vec<&str> = text.split(',').collect();
        let key = fields[2];
        for bad in [
            String::new(),
            format!("0,{RFC_SALT},{key},{key}"),
            format!("+4096,{RFC_SALT},{key},{key}"),
            format!("-1,{RFC_SALT},{key},{key}"),
            format!(" 4096,{RFC_SALT},{key},{key}"),
            format!("99999999999,{RFC_SALT},{key},{key}"),
            format!("4096,,{key},{key}"),
            format!("4096,{RFC_SALT},{key}"),
            format!("4096,{RFC_SALT},{key},{key},"),
            format!("4096,{RFC_SALT},{key},{key},{key}"),
            format!("4096,{RFC_SALT},{key},AAAA"),
            format!("4096,{RFC_SALT},{RFC_SALT},{key}"),
            format!("4096,{RFC_SALT},{key},{key}\n"),
            format!("4096,@@@@,{key},{key}"),
        ] {
            assert_eq!(ScramKeys::parse(&bad), None, "{bad:?}");
        }
        assert_eq!(ScramKeys::parse(&format!("1,{RFC_SALT},{key},{key}")).unwrap().iterations, 1);
    }

    #[test]
    fn derive_zero_iterations_means_one() {
        let zero = ScramKeys::derive(b"pw", b"salt", 0);
        assert_eq!(zero, ScramKeys::derive(b"pw", b"salt", 1));
        assert_eq!(zero.iterations, 1);
    }

    #[test]
    fn verify_password_checks() {
        let keys = keys();
        assert!(keys.verify_password(b"pencil"));
        assert!(!keys.verify_password(b"pencil "));
        assert!(!keys.verify_password(b""));
        let mut other_salt = keys.clone();
        other_salt.salt.push(0);
        assert!(!other_salt.verify_password(b"pencil"));
    }

    #[test]
    fn debug_hides_secrets() {
        let keys = keys();
        let text = format!("{keys:?}");
        assert_eq!(text, "ScramKeys { iterations: 4096, .. }");
        let binding = format!("{:?}", ChannelBinding::TlsExporter(EKM));
        assert!(!binding.contains("90"));
        let server = ScramServer::new(true, ChannelBinding::TlsExporter(EKM));
        assert!(!format!("{server:?}").contains("90"));
    }

    /// Every prefix, every byte deleted, and every byte replaced by a few
    /// troublemakers.
    fn mutations(msg: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for i in 0..=msg.len() {
            out.push(msg[..i].to_vec());
            for insert in [&b","[..], b"=", b",m=x", b"\0", b"\xff", b"=2C"] {
                let mut m = msg[..i].to_vec();
                m.extend_from_slice(insert);
                m.extend_from_slice(&msg[i..]);
                out.push(m);
            }
        }
        for i in 0..msg.len() {
            let mut m = msg.to_vec();
            m.remove(i);
            out.push(m);
            for b in [b',', b'=', b'\0', 0xff, b'x', b'm', b'p', b'A'] {
                let mut m = msg.to_vec();
                m[i] = b;
                out.push(m);
            }
        }
        out
    }

    #[test]
    fn mutated_messages_never_panic_or_succeed() {
        for plus in [false, true] {
            let (header, cbind): (&str, &[u8]) =
                if plus { ("p=tls-exporter,a=user,", &EKM) } else { ("n,a=user,", b"") };
            let client = Client::new(header, cbind, "user", "abc");
            let new = || ScramServer::with_server_nonce(plus, ChannelBinding::TlsExporter(EKM), "S");
            let Step::Continue(first) = new().client_first(&client.first(), lookup) else { panic!() };
            let (last, _) = client.last(&first, b"pencil");
            for m in mutations(&client.first()) {
                let mut server = new();
                let step = server.client_first(&m, lookup);
                if let Step::Continue(_) = step {
                    // A variant that still parses: the original final message must not fit it
                    // unless the mutation left the meaningful content identical.
                    if let Step::Success { .. } = server.client_final(&last) {
                        assert_eq!(m, client.first());
                    }
                }
            }
            for m in mutations(&last) {
                let mut server = new();
                assert!(matches!(server.client_first(&client.first(), lookup), Step::Continue(_)));
                let step = server.client_final(&m);
                if m != last {
                    assert!(matches!(step, Step::Failure(_)), "{:?}", String::from_utf8_lossy(&m));
                }
            }
            let mut server = new();
            server.client_first(&client.first(), lookup);
            assert!(matches!(server.client_final(&last), Step::Success { .. }));
        }
    }
}
