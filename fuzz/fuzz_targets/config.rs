//! Fuzz target: the configuration parser (`key = value` lines, every key's value syntax) on arbitrary text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pop3d::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(config) = Config::parse(text) {
        // Whatever parses gives a mailbox template that names each user apart.
        let _ = config.location("a", "/home/a");
        let _ = config.mailbox_fixed_dir("/home/a");
    }
    // `-o KEY=VALUE` goes through the same setter.
    if let Some((k, v)) = text.split_once('=') {
        let _ = Config::default().set(k.trim(), v.trim());
    }
});
