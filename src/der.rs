//! A minimal DER reader that finds the subject common name of an X.509 certificate already verified by webpki.
//!
//! Only definite-length DER is read; every length is checked against the
//! bytes left, so no input can make it panic or read out of bounds.

/// One TLV: its tag, its contents, and what follows it.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The contents of a TLV that must have tag `want`.
fn expect(input: &[u8], want: u8) -> Option<(&[u8], &[u8])> {
    let (tag, body, rest) = tlv(input)?;
    (tag == want).then_some((body, rest))
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
/// 2.5.4.3, id-at-commonName.
const CN_OID: &[u8] = &[0x55, 0x04, 0x03];

/// The subject's CN as text, or None if there is none or more than one.
pub fn subject_common_name(cert: &[u8]) -> Option<String> {
    let (certificate, _) = expect(cert, SEQUENCE)?;
    let (tbs, _) = expect(certificate, SEQUENCE)?;
    let mut rest = tbs;
    // [0] EXPLICIT version, optional.
    if rest.first() == Some(&0xa0) {
        rest = tlv(rest)?.2;
    }
    // serialNumber, signature, issuer, validity, then subject.
    for _ in 0..4 {
        rest = tlv(rest)?.2;
    }
    let (mut subject, _) = expect(rest, SEQUENCE)?;
    let mut found = None;
    while !subject.is_empty() {
        let (mut rdn, next) = expect(subject, SET)?;
        subject = next;
        while !rdn.is_empty() {
            let (atv, next) = expect(rdn, SEQUENCE)?;
            rdn = next;
            let (oid, value) = expect(atv, OID)?;
            if oid == CN_OID {
                let (tag, text, _) = tlv(value)?;
                // UTF8String, PrintableString, IA5String.
                if !matches!(tag, 0x0c | 0x13 | 0x16) || found.is_some() {
                    return None;
                }
                found = Some(String::from_utf8(text.to_vec()).ok()?);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DER SEQUENCE/SET/etc. with a short-form or long-form length.
    fn wrap(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        if body.len() < 0x80 {
            out.push(body.len() as u8);
        } else {
            out.extend_from_slice(&[0x82, (body.len() >> 8) as u8, body.len() as u8]);
        }
        out.extend_from_slice(body);
        out
    }

    fn name(cns: &[&str]) -> Vec<u8> {
        let mut rdns = Vec::new();
        // O=Example first, then each CN.
        let org = [wrap(OID, &[0x55, 0x04, 0x0a]), wrap(0x0c, b"Example")].concat();
        rdns.extend(wrap(SET, &wrap(SEQUENCE, &org)));
        for cn in cns {
            let atv = [wrap(OID, CN_OID), wrap(0x0c, cn.as_bytes())].concat();
            rdns.extend(wrap(SET, &wrap(SEQUENCE, &atv)));
        }
        wrap(SEQUENCE, &rdns)
    }

    fn cert(subject: &[u8]) -> Vec<u8> {
        let tbs = [
            wrap(0xa0, &wrap(0x02, &[2])),
            wrap(0x02, &[1, 2, 3]),
            wrap(SEQUENCE, &wrap(OID, &[0x2a, 0x86, 0x48])),
            name(&["Test CA"]),
            wrap(SEQUENCE, &[wrap(0x17, b"260101000000Z"), wrap(0x17, b"270101000000Z")].concat()),
            subject.to_vec(),
            wrap(SEQUENCE, &[0u8; 200]),
        ]
        .concat();
        wrap(SEQUENCE, &[wrap(SEQUENCE, &tbs), wrap(SEQUENCE, &[]), wrap(0x03, &[0])].concat())
    }

    #[test]
    fn finds_the_subject_cn_not_the_issuer_cn() {
        assert_eq!(subject_common_name(&cert(&name(&["alice"]))), Some("alice".into()));
        assert_eq!(subject_common_name(&cert(&name(&[]))), None);
        assert_eq!(subject_common_name(&cert(&name(&["a", "b"]))), None, "two CNs are ambiguous");
    }

    #[test]
    fn never_panics_on_truncated_or_mangled_input() {
        let good = cert(&name(&["alice"]));
        for len in 0..good.len() {
            let _ = subject_common_name(&good[..len]);
        }
        for i in 0..good.len() {
            for b in [0x00, 0x7f, 0x80, 0x84, 0xff] {
                let mut bad = good.clone();
                bad[i] = b;
                let _ = subject_common_name(&bad);
            }
        }
    }
}
