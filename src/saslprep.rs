//! SASLprep (RFC 4013): UTF-8 user names and passwords prepared before they are compared (RFC 6856).
//!
//! SASLprep is a stringprep profile of RFC 3454; with it the same text typed
//! on another system (decomposed accents, a no-break space, full-width
//! letters) logs in all the same (RFC 6856 section 2).
//!
//! Mapping (non-ASCII spaces to SPACE, table B.1 to nothing), NFKC
//! normalization, the prohibited characters of tables C.1.2 to C.9, and the
//! bidirectional rule of RFC 3454 section 6, with right-to-left letters
//! (table D.1) listed and left-to-right ones taken as every other letter.
//! Unassigned code points are allowed, as for a query (RFC 4013 section 2.5).

use std::borrow::Cow;

use icu_normalizer::ComposingNormalizerBorrowed;

/// Prepares `s`; None when it holds a prohibited character or breaks the
/// bidi rule. Printable ASCII is its own preparation.
pub fn saslprep(s: &str) -> Option<Cow<'_, str>> {
    if s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Some(Cow::Borrowed(s));
    }
    let mapped: String =
        s.chars().filter(|&c| !mapped_to_nothing(c)).map(|c| if non_ascii_space(c) { ' ' } else { c }).collect();
    let prepared: String = ComposingNormalizerBorrowed::new_nfkc().normalize(&mapped).into_owned();
    if prepared.chars().any(prohibited) || !bidi_ok(&prepared) {
        return None;
    }
    Some(Cow::Owned(prepared))
}

/// A user name and password as sent, prepared where they are UTF-8. A name
/// that cannot be prepared is kept as sent (it then matches no account); a
/// password that is not UTF-8 or cannot be prepared is compared as sent,
/// as stored hashes of legacy 8-bit passwords were made from those bytes.
pub fn credentials(name: &str, password: &[u8]) -> (String, Vec<u8>) {
    let name = saslprep(name).map_or_else(|| name.to_string(), Cow::into_owned);
    let password = match std::str::from_utf8(password).ok().and_then(saslprep) {
        Some(p) => p.into_owned().into_bytes(),
        None => password.to_vec(),
    };
    (name, password)
}

/// Table C.1.2: non-ASCII space characters (mapped to SPACE).
fn non_ascii_space(c: char) -> bool {
    matches!(c, '\u{A0}' | '\u{1680}' | '\u{2000}'..='\u{200B}' | '\u{202F}' | '\u{205F}' | '\u{3000}')
}

/// Table B.1: commonly mapped to nothing.
fn mapped_to_nothing(c: char) -> bool {
    matches!(
        c,
        '\u{AD}' | '\u{34F}' | '\u{1806}' | '\u{180B}'..='\u{180D}' | '\u{200B}'..='\u{200D}' | '\u{2060}'
            | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
    )
}

/// Tables C.1.2, C.2.1, C.2.2, C.3, C.4, C.5 (impossible in a `char`),
/// C.6, C.7, C.8 and C.9.
fn prohibited(c: char) -> bool {
    let u = c as u32;
    non_ascii_space(c)
        || c.is_control()
        || matches!(
            c,
            '\u{6DD}' | '\u{70F}' | '\u{180E}' | '\u{200C}' | '\u{200D}' | '\u{2028}' | '\u{2029}'
                | '\u{2060}'..='\u{2063}' | '\u{206A}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFD}'
                | '\u{1D173}'..='\u{1D17A}' | '\u{E000}'..='\u{F8FF}' | '\u{F0000}'..='\u{FFFFD}'
                | '\u{100000}'..='\u{10FFFD}' | '\u{FDD0}'..='\u{FDEF}' | '\u{2FF0}'..='\u{2FFB}'
                | '\u{340}' | '\u{341}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{E0001}'
                | '\u{E0020}'..='\u{E007F}'
        )
        || u & 0xFFFE == 0xFFFE
}

/// Table D.1: characters with bidi property R or AL.
fn rand_al(c: char) -> bool {
    matches!(
        c,
        '\u{5BE}' | '\u{5C0}' | '\u{5C3}' | '\u{5D0}'..='\u{5EA}' | '\u{5F0}'..='\u{5F4}' | '\u{61B}' | '\u{61F}'
            | '\u{621}'..='\u{63A}' | '\u{640}'..='\u{64A}' | '\u{66D}'..='\u{66F}' | '\u{671}'..='\u{6D5}'
            | '\u{6DD}' | '\u{6E5}' | '\u{6E6}' | '\u{6FA}'..='\u{6FE}' | '\u{700}'..='\u{70D}' | '\u{710}'
            | '\u{712}'..='\u{72C}' | '\u{780}'..='\u{7A5}' | '\u{7B1}' | '\u{200F}' | '\u{FB1D}'
            | '\u{FB1F}'..='\u{FB28}' | '\u{FB2A}'..='\u{FB36}' | '\u{FB38}'..='\u{FB3C}' | '\u{FB3E}'
            | '\u{FB40}' | '\u{FB41}' | '\u{FB43}' | '\u{FB44}' | '\u{FB46}'..='\u{FBB1}'
            | '\u{FBD3}'..='\u{FD3D}' | '\u{FD50}'..='\u{FD8F}' | '\u{FD92}'..='\u{FDC7}'
            | '\u{FDF0}'..='\u{FDFC}' | '\u{FE70}'..='\u{FE74}' | '\u{FE76}'..='\u{FEFC}'
    )
}

/// RFC 3454 section 6: a string with a right-to-left letter has no
/// left-to-right letter, and starts and ends with a right-to-left one.
fn bidi_ok(s: &str) -> bool {
    if !s.chars().any(rand_al) {
        return true;
    }
    let ltr = |c: char| c.is_alphabetic() && !rand_al(c);
    !s.chars().any(ltr) && s.chars().next().is_some_and(rand_al) && s.chars().last().is_some_and(rand_al)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4013_examples() {
        // RFC 4013 section 3.
        assert_eq!(saslprep("I\u{AD}X").as_deref(), Some("IX"), "SOFT HYPHEN mapped to nothing");
        assert_eq!(saslprep("user").as_deref(), Some("user"));
        assert_eq!(saslprep("USER").as_deref(), Some("USER"), "case preserved");
        assert_eq!(saslprep("\u{AA}").as_deref(), Some("a"), "output is NFKC");
        assert_eq!(saslprep("\u{2168}").as_deref(), Some("IX"), "output is NFKC");
        assert_eq!(saslprep("\u{7}"), None, "prohibited character");
        assert_eq!(saslprep("\u{627}1"), None, "bidirectional check");
    }

    #[test]
    fn what_clients_send() {
        assert_eq!(saslprep("ju\u{308}rgen").as_deref(), Some("j\u{FC}rgen"), "a decomposed umlaut (macOS)");
        assert_eq!(saslprep("pass\u{A0}word").as_deref(), Some("pass word"));
        assert_eq!(saslprep("\u{FF21}\u{FF22}").as_deref(), Some("AB"), "full-width letters");
        assert_eq!(saslprep("\u{5D0}\u{5D1}").as_deref(), Some("\u{5D0}\u{5D1}"), "Hebrew");
        assert_eq!(saslprep("\u{5D0}a\u{5D1}"), None, "mixed directions");
        assert_eq!(saslprep("a\u{E000}"), None, "private use");
        assert_eq!(saslprep("x\u{FFFF}"), None, "non-character");
        let (name, pw) = credentials("j\u{FC}rgen", b"\xffraw");
        assert_eq!((name.as_str(), pw.as_slice()), ("j\u{FC}rgen", &b"\xffraw"[..]), "8-bit password kept");
        let (_, pw) = credentials("a", "se\u{301}same".as_bytes());
        assert_eq!(pw, "s\u{E9}same".as_bytes());
    }
}
