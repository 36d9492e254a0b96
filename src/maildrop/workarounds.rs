//! Client workarounds from the field, off by default, as Dovecot's `pop3_workarounds`: NULs sent as 0x80, a header end.
//!
//! `outlook-no-nuls` replaces NUL bytes, which old Outlook versions stop
//! at, by 0x80; `oe-ns-eoh` adds the end-of-header blank line that Outlook
//! Express and Netscape Mail need to a message that has none (LIST and STAT
//! count it; which messages lack one is found by `headers`).

use std::io::{self, Write};

use crate::reply::MessageSink;

/// Which workarounds are on (configuration key `workarounds`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Workarounds {
    pub outlook_no_nuls: bool,
    pub oe_ns_eoh: bool,
}

impl Workarounds {
    /// A comma-separated list of `outlook-no-nuls`, `oe-ns-eoh`; empty for none.
    pub fn parse(value: &str) -> Option<Workarounds> {
        let mut w = Workarounds::default();
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "outlook-no-nuls" => w.outlook_no_nuls = true,
                "oe-ns-eoh" => w.oe_ns_eoh = true,
                _ => return None,
            }
        }
        Some(w)
    }
}

/// A sink that replaces every NUL written through it by 0x80, in the
/// sink's own buffer before it can be written out (the size is unchanged).
pub struct NoNuls<'a, W: MessageSink> {
    inner: &'a mut W,
    /// Where the bytes not yet looked at start in the inner buffer.
    mark: usize,
}

impl<'a, W: MessageSink> NoNuls<'a, W> {
    pub fn new(inner: &'a mut W) -> io::Result<NoNuls<'a, W>> {
        let mark = inner.append_room(0)?.len();
        Ok(NoNuls { inner, mark })
    }

    /// Fixes what was appended since the last call.
    pub fn finish(&mut self) -> io::Result<()> {
        let buf = self.inner.append_room(0)?;
        let start = self.mark.min(buf.len());
        buf[start..].iter_mut().filter(|b| **b == 0).for_each(|b| *b = 0x80);
        self.mark = buf.len();
        Ok(())
    }
}

impl<W: MessageSink> Write for NoNuls<'_, W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.finish()?;
        if data.contains(&0) {
            let fixed: Vec<u8> = data.iter().map(|&b| if b == 0 { 0x80 } else { b }).collect();
            self.inner.write_all(&fixed)?;
        } else {
            self.inner.write_all(data)?;
        }
        self.mark = self.inner.append_room(0)?.len();
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.finish()?;
        self.inner.flush()
    }
}

impl<W: MessageSink> MessageSink for NoNuls<'_, W> {
    fn append_room(&mut self, room: usize) -> io::Result<&mut Vec<u8>> {
        self.finish()?;
        let buf = self.inner.append_room(room)?;
        self.mark = buf.len();
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nuls_are_replaced_before_they_leave() {
        let mut out = b"+OK\r\n\0".to_vec();
        let mut w = NoNuls::new(&mut out).unwrap();
        w.write_all(b"a\0b").unwrap();
        w.append_room(3).unwrap().extend_from_slice(b"\0\0c");
        w.finish().unwrap();
        assert_eq!(out, b"+OK\r\n\0a\x80b\x80\x80c", "what was there before is untouched");
        assert_eq!(
            Workarounds::parse("oe-ns-eoh, outlook-no-nuls").unwrap(),
            Workarounds { outlook_no_nuls: true, oe_ns_eoh: true }
        );
        assert_eq!(Workarounds::parse("").unwrap(), Workarounds::default());
        assert!(Workarounds::parse("outlook").is_none());
    }
}
