//! The checksum of pop3d's own cache files in state_dir: catches torn, zeroed and cut files cheaply.
//!
//! Not cryptographic, as state_dir is the daemon's own; a fraction of MD5's
//! cost.

/// A 64-bit checksum over 8-octet words (FNV-1a style multiply, then a
/// rotation so a word's position counts): one multiply per word. Writing
/// and reading must add a file in the same pieces, so the words line up
/// the same way.
#[derive(Debug)]
pub struct Checksum(pub u64);

impl Default for Checksum {
    fn default() -> Self {
        Checksum(0xcbf2_9ce4_8422_2325)
    }
}

impl Checksum {
    pub fn add(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let w = u64::from_le_bytes(w.try_into().unwrap_or_default());
            self.0 = (self.0 ^ w).wrapping_mul(0x0100_0000_01b3).rotate_left(23);
        }
        for &b in words.remainder() {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3).rotate_left(23);
        }
    }
}
