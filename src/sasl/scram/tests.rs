//! Tests of the SCRAM-SHA-256(-PLUS) server: RFC 7677 vectors, a ring-based client, channel binding, bad messages.

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

fn lookup(name: &str) -> io::Result<Stored> {
    Ok(match name {
        "user" => Stored::Keys(keys()),
        "crypt" => Stored::OtherSecret,
        _ => Stored::Unknown,
    })
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
    assert!(matches!(step, Step::Continue(ref first) if first == expected_first.as_bytes()), "{step:?}");
    let last = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    let step = server.client_final(last.as_bytes());
    let Step::Success { user, server_final } = step else { panic!("{step:?}") };
    assert_eq!(user, "user");
    assert_eq!(server_final, b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
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
    assert!(matches!(run(&mut server, &client, b"pencil2"), Step::Failure(r) if r == "wrong password"));
    let client = Client::new("p=tls-exporter,,", &EKM, "user", "abc");
    let mut server = ScramServer::new(true, ChannelBinding::TlsExporter(EKM));
    assert!(matches!(run(&mut server, &client, b"Pencil"), Step::Failure(r) if r == "wrong password"));
}

#[test]
fn wrong_channel_binding_data_fails() {
    let mut other = EKM;
    other[31] ^= 1;
    let client = Client::new("p=tls-exporter,,", &other, "user", "abc");
    let mut server = ScramServer::new(true, ChannelBinding::TlsExporter(EKM));
    assert!(matches!(run(&mut server, &client, b"pencil"), Step::Failure(r) if r == "channel binding mismatch"));
    // Header in c= differs from the one sent in client-first.
    let mut server = ScramServer::new(false, ChannelBinding::None);
    let Step::Continue(first) = server.client_first(b"n,,n=user,r=abc", lookup) else { panic!() };
    let client = Client::new("y,,", b"", "user", "abc");
    let (last, _) = client.last(&first, b"pencil");
    assert!(matches!(server.client_final(&last), Step::Failure(r) if r == "channel binding mismatch"));
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

    // An unknown name fails as a wrong password does (a name with keys is
    // not told from no name at all); an account with another kind of secret
    // could never succeed: no guessed password.
    for (user, unknown) in [("nobody", true), ("crypt", false)] {
        let client = Client::new("n,,", b"", user, "abc");
        let (mut server, first) = first(user);
        let (last, _) = client.last(first.as_bytes(), b"pencil");
        match server.client_final(&last) {
            Step::Failure(why) => assert!(unknown && why == "unknown user", "{user}: {why}"),
            Step::NoKeys => assert!(!unknown, "{user}"),
            other => panic!("{user}: unexpected {other:?}"),
        }
    }
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
    assert!(matches!(
        first_step(false, offered(), "y,,n=user,r=abc"),
        Step::Failure(r) if r == "channel binding downgrade detected"
    ));
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
    for bad in ["", "a=2c", "a=3d", "a=", "a=2", "a=41", "a=3Z", "a\0b", &"x".repeat(MAX_USER_NAME + 1)] {
        assert!(decode_saslname(bad).is_err(), "{bad:?}");
    }
    assert!(decode_saslname(&"x".repeat(MAX_USER_NAME)).is_ok());
    // The lookup sees the decoded name.
    let mut seen = String::new();
    let step = ScramServer::new(false, ChannelBinding::None).client_first(b"n,,n=a=2Cb=3D,r=abc", |name| {
        seen = name.to_string();
        Ok(Stored::Unknown)
    });
    assert!(matches!(step, Step::Continue(_)));
    assert_eq!(seen, "a,b=");
    // And success reports it.
    let client = Client::new("n,,", b"", "us=3Der", "abc");
    let mut server = ScramServer::new(false, ChannelBinding::None);
    let Step::Continue(first) = server
        .client_first(&client.first(), |name| Ok(if name == "us=er" { Stored::Keys(keys()) } else { Stored::Unknown }))
    else {
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
        assert!(matches!(server.client_final(msg.as_bytes()), Step::Failure(r) if r == reason), "{msg}");
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
        let (header, cbind): (&str, &[u8]) = if plus { ("p=tls-exporter,a=user,", &EKM) } else { ("n,a=user,", b"") };
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
