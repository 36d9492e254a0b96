//! Lowercase hexadecimal text for digests and random tokens (UIDLs, journal headers, APOP).

/// `bytes` as lowercase hex, two digits a byte.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

/// The `N` bytes that exactly `2 * N` lowercase hex digits stand for; None
/// for anything else (uppercase, a sign, a wrong length), so a value reads
/// back only in the form `encode` wrote it.
pub fn decode<const N: usize>(text: &str) -> Option<[u8; N]> {
    let text = text.as_bytes();
    if text.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (b, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *b = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_other_forms() {
        let bytes = [0x00, 0x7f, 0x80, 0xff, 0x0a];
        assert_eq!(encode(&bytes), "007f80ff0a");
        assert_eq!(decode::<5>("007f80ff0a"), Some(bytes));
        assert_eq!(decode::<5>("007F80FF0A"), None, "uppercase");
        assert_eq!(decode::<5>("007f80ff0"), None, "short");
        assert_eq!(decode::<2>("+1ff"), None, "sign");
        assert_eq!(decode::<1>("g0"), None);
    }
}
