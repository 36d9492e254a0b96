//! Fuzz target: the configuration reader (`key = value` lines, every key's value syntax) on arbitrary text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pop3d::config::Raw;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(config) = Raw::parse(text).and_then(|raw| raw.finish(false)) {
        // Whatever is accepted gives a mailbox template that names each user apart.
        let _ = config.mailbox.location("a", "/home/a");
        let _ = config.mailbox.fixed_dir("/home/a");
    }
    // `-o KEY=VALUE` goes through the same setter.
    if let Some((k, v)) = text.split_once('=') {
        let _ = Raw::default().set(k.trim(), v.trim());
    }
});
