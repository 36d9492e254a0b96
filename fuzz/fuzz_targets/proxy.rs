//! Fuzz target: the PROXY protocol header reader (v1 text, v2 binary) and the `proxy_trusted` list parser, on arbitrary bytes: a header is read exactly, never a byte past it.
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;
use pop3d::proxy;

/// A reader that counts what was taken from it.
struct Counting<'a> {
    data: &'a [u8],
    taken: usize,
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.data.len() - self.taken);
        buf[..n].copy_from_slice(&self.data[self.taken..self.taken + n]);
        self.taken += n;
        Ok(n)
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = proxy::looks_like_header(data);
    let mut r = Counting { data, taken: 0 };
    if let Ok(Some(addr)) = proxy::read_header(&mut r) {
        assert!(r.taken <= data.len());
        let _ = addr;
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(trusted) = proxy::Trusted::parse(text) {
            let _ = trusted.contains("192.0.2.1".parse().unwrap());
        }
    }
});
