//! Fuzz target: the SASL decoders (PLAIN, LOGIN, EXTERNAL, SCRAM-SHA-256(-PLUS) client-first and client-final) fed arbitrary client messages through the exchange the session runs.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pop3d::sasl::scram::{ScramKeys, Stored};
use pop3d::sasl::{self, Exchange, Offer, Outcome, ScramKeyed};

const MECHANISMS: [&str; 5] = ["PLAIN", "EXTERNAL", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS", "LOGIN"];

/// The one known user's keys (one PBKDF2 iteration: the fuzzer is after
/// the parsing, not the hashing).
fn keys() -> ScramKeys {
    static KEYS: OnceLock<String> = OnceLock::new();
    let text = KEYS.get_or_init(|| ScramKeys::derive(b"pencil", b"0123456789abcdef", 1).to_text());
    ScramKeys::parse(text).expect("keys round-trip")
}

fn lookup(name: &str) -> std::io::Result<Stored> {
    Ok(match name {
        "user" => Stored::Keys(keys()),
        "crypt" => Stored::OtherSecret,
        _ => Stored::Unknown,
    })
}

/// The nonce of a server-first message (`r=...,s=...,i=...`).
fn server_nonce(challenge: &[u8]) -> Option<&[u8]> {
    challenge.split(|&b| b == b',').find_map(|f| f.strip_prefix(b"r="))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else { return };
    let mechanism = MECHANISMS[usize::from(mode) % MECHANISMS.len()];
    let offer = Offer {
        plaintext: true,
        tls: mode & 0x80 != 0,
        scram: ScramKeyed::All,
        certificate_user: Some("user".into()),
        channel_binding: (mode & 0x80 != 0).then_some([7u8; 32]),
        policy: Default::default(),
    };
    // Up to three client messages, separated by 0xff; the first may be sent
    // as the initial response. `NONCE` in a later one stands for the
    // server's nonce, so client-final messages get past the nonce check.
    let mut messages = data.splitn(3, |&b| b == 0xff);
    let first = messages.next().unwrap_or_default();
    let initial = (mode & 0x40 != 0).then(|| first.to_vec());
    let (mut exchange, mut outcome) = Exchange::start(mechanism, initial.clone(), &offer, lookup);
    let mut pending: Vec<&[u8]> = messages.collect();
    if initial.is_none() {
        pending.insert(0, first);
    }
    let mut nonce = Vec::new();
    for message in pending {
        if let Outcome::Challenge(challenge) = &outcome {
            if let Some(n) = server_nonce(challenge) {
                nonce = n.to_vec();
            }
        }
        let Some(current) = exchange.take() else { break };
        let mut line = Vec::new();
        let mut rest = message;
        while let Some(i) = rest.windows(5).position(|w| w == b"NONCE") {
            line.extend_from_slice(&rest[..i]);
            line.extend_from_slice(&nonce);
            rest = &rest[i + 5..];
        }
        line.extend_from_slice(rest);
        // What the session does with a client line: base64 (checked both ways), then the step.
        assert_eq!(sasl::decode(sasl::encode(&line).as_bytes()).as_deref(), Some(&line[..]));
        (exchange, outcome) = current.step(&line, lookup);
    }
    // (A user name may hold anything here, a NUL from LOGIN included: the
    // session checks every name with `users::valid_name` before it is
    // looked up, and escapes it in the log.)
    if let Outcome::Success { user, .. } | Outcome::CheckPassword { user, .. } = &outcome {
        let _ = pop3d::users::valid_name(user);
    }
});
