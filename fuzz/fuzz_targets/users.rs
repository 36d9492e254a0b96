//! Fuzz target: the users-file parser on arbitrary text, and the stored SCRAM keys of every account it accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pop3d::users;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(accounts) = users::parse(text) {
        for (name, secret) in accounts {
            assert!(users::valid_name(&name), "{name:?}");
            if let Some(keys) = secret.scram() {
                // What `pop3d -P` writes, the parser reads back.
                assert_eq!(
                    pop3d::sasl::scram::ScramKeys::parse(&keys.to_text()).map(|k| k.to_text()),
                    Some(keys.to_text())
                );
            }
        }
    }
});
