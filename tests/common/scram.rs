//! A SCRAM-SHA-256 client (RFC 5802) for tests/sasl.rs and the bench's load client (examples/pop3bench): one implementation of the exchange.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ring::{digest, hmac, pbkdf2};

/// The client side of one SCRAM-SHA-256(-PLUS) exchange, ring doing the
/// cryptography (PBKDF2, HMAC, SHA-256).
pub struct ScramClient {
    password: Vec<u8>,
    /// The GS2 header (`n,,`, `y,,` or `p=tls-exporter,,`).
    pub gs2: String,
    cbind: Vec<u8>,
    first_bare: String,
    nonce: String,
    server_signature: Vec<u8>,
}

impl ScramClient {
    pub fn new(user: &str, password: &str, binding: Option<[u8; 32]>) -> ScramClient {
        let nonce = "fyko+d2lbbFgONRv9qkxdawL".to_string();
        let (gs2, cbind) = match binding {
            Some(b) => ("p=tls-exporter,,".to_string(), b.to_vec()),
            None => ("n,,".to_string(), Vec::new()),
        };
        let first_bare = format!("n={user},r={nonce}");
        ScramClient { password: password.into(), gs2, cbind, first_bare, nonce, server_signature: Vec::new() }
    }

    /// The client-first message, base64.
    pub fn first(&self) -> String {
        B64.encode(format!("{}{}", self.gs2, self.first_bare))
    }

    /// The client-final message (base64) for a base64 server-first challenge;
    /// Err says what is wrong with the challenge.
    pub fn finish(&mut self, challenge_b64: &str) -> Result<String, String> {
        let text = B64.decode(challenge_b64.trim()).map_err(|e| format!("server-first: {e}"))?;
        let server_first = String::from_utf8(text).map_err(|e| format!("server-first: {e}"))?;
        let field = |k: &str| {
            server_first
                .split(',')
                .find_map(|f| f.strip_prefix(k))
                .map(str::to_string)
                .ok_or_else(|| format!("server-first without {k}: {server_first}"))
        };
        let r = field("r=")?;
        let s = B64.decode(field("s=")?).map_err(|e| format!("salt: {e}"))?;
        let i: u32 = field("i=")?.parse().map_err(|e| format!("iterations: {e}"))?;
        if !r.starts_with(&self.nonce) {
            return Err(format!("the server's nonce {r} does not extend ours"));
        }
        let rounds = std::num::NonZeroU32::new(i).ok_or("zero iterations")?;
        let mut salted = [0u8; 32];
        pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, rounds, &s, &self.password, &mut salted);
        let key = hmac::Key::new(hmac::HMAC_SHA256, &salted);
        let client_key = hmac::sign(&key, b"Client Key");
        let stored_key = digest::digest(&digest::SHA256, client_key.as_ref());
        let channel = B64.encode([self.gs2.as_bytes(), &self.cbind].concat());
        let without_proof = format!("c={channel},r={r}");
        let auth_message = format!("{},{server_first},{without_proof}", self.first_bare);
        let signature = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, stored_key.as_ref()), auth_message.as_bytes());
        let proof: Vec<u8> = client_key.as_ref().iter().zip(signature.as_ref()).map(|(a, b)| a ^ b).collect();
        let server_key = hmac::sign(&key, b"Server Key");
        self.server_signature =
            hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, server_key.as_ref()), auth_message.as_bytes())
                .as_ref()
                .to_vec();
        Ok(B64.encode(format!("{without_proof},p={}", B64.encode(proof))))
    }

    /// Checks the server-final message (base64): the server knew the keys.
    pub fn check_server_final(&self, challenge_b64: &str) {
        let v = String::from_utf8(B64.decode(challenge_b64).unwrap()).unwrap();
        assert_eq!(v, format!("v={}", B64.encode(&self.server_signature)), "server signature");
    }
}
