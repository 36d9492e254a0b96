//! The PROXY protocol (HAProxy v1 and v2): the real client address, told by a trusted proxy in front.
//!
//! A load balancer or TLS terminator in front of pop3d tells the real
//! client address in a header before the session's first byte. Accepted
//! only from configured trusted addresses; from anyone else a header closes
//! the connection.

use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::limits::MAX_PROXY_V2_LENGTH;

/// The version 2 signature.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// A version 1 header is at most 107 octets with its CRLF.
const V1_MAX: usize = 107;

/// The addresses whose connections start with a PROXY header: single
/// addresses or networks (`10.0.0.0/8`, `fd00::/8`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trusted(Vec<(IpAddr, u8)>);

impl Trusted {
    /// `ADDR[/PREFIX], ...`; an empty value trusts nobody.
    pub fn parse(value: &str) -> Option<Trusted> {
        let mut out = Vec::new();
        for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (addr, prefix) = match entry.split_once('/') {
                Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
                None => (entry.parse::<IpAddr>().ok()?, None),
            };
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix = prefix.unwrap_or(max);
            if prefix > max {
                return None;
            }
            out.push((addr, prefix));
        }
        Some(Trusted(out))
    }

    /// Whether a connection from `ip` must start with a PROXY header.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|&(net, prefix)| match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => masked(u32::from(n).into(), u32::from(a).into(), prefix, 32),
            (IpAddr::V6(n), IpAddr::V6(a)) => masked(u128::from(n), u128::from(a), prefix, 128),
            _ => false,
        })
    }
}

fn masked(net: u128, addr: u128, prefix: u8, bits: u32) -> bool {
    let shift = bits - u32::from(prefix);
    shift >= bits || (net >> shift) == (addr >> shift)
}

/// Whether a client's first bytes look like a PROXY header (from an
/// address that is not trusted: refused).
pub fn looks_like_header(first: &[u8]) -> bool {
    first.starts_with(b"PROXY ") || (first.len() >= 5 && V2_SIGNATURE.starts_with(&first[..first.len().min(12)]))
}

/// Reads a PROXY header from `r`, exactly (not a byte past it: TLS or the
/// client's commands follow). Ok(Some(addr)) is the client's address;
/// Ok(None) a header that names none (v1 UNKNOWN, v2 LOCAL: the proxy's
/// own health check). Err(InvalidData) for a malformed header.
pub fn read_header(r: &mut impl Read) -> io::Result<Option<SocketAddr>> {
    let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, format!("malformed PROXY header: {why}"));
    let mut first = [0u8; 12];
    r.read_exact(&mut first[..6])?;
    if &first[..6] == b"PROXY " {
        let mut line = first[..6].to_vec();
        while !line.ends_with(b"\r\n") {
            if line.len() == V1_MAX {
                return Err(bad("version 1 line too long"));
            }
            let mut b = [0u8];
            r.read_exact(&mut b)?;
            line.push(b[0]);
        }
        let text = std::str::from_utf8(&line[..line.len() - 2]).map_err(|_| bad("not text"))?;
        return parse_v1(text).ok_or_else(|| bad("version 1 fields"));
    }
    if first[..6] != V2_SIGNATURE[..6] {
        return Err(bad("no PROXY signature"));
    }
    r.read_exact(&mut first[6..])?;
    if first != V2_SIGNATURE {
        return Err(bad("no PROXY signature"));
    }
    let mut head = [0u8; 4];
    r.read_exact(&mut head)?;
    let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
    if len > MAX_PROXY_V2_LENGTH {
        return Err(bad("version 2 header too long"));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    parse_v2(head[0], head[1], &body).ok_or_else(|| bad("version 2 fields"))
}

/// `PROXY TCP4|TCP6 SRC DST SPORT DPORT` or `PROXY UNKNOWN ...`.
fn parse_v1(line: &str) -> Option<Option<SocketAddr>> {
    let fields: Vec<&str> = line.split(' ').collect();
    match fields.as_slice() {
        ["PROXY", "UNKNOWN", ..] => Some(None),
        ["PROXY", family @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            let (src, dst): (IpAddr, IpAddr) = (src.parse().ok()?, dst.parse().ok()?);
            let v4 = *family == "TCP4";
            if src.is_ipv4() != v4 || dst.is_ipv4() != v4 {
                return None;
            }
            let port = |p: &str| -> Option<u16> { (!p.starts_with('0') || p == "0").then(|| p.parse().ok())? };
            port(dport)?;
            Some(Some(SocketAddr::new(src, port(sport)?)))
        }
        _ => None,
    }
}

/// Version 2 after the signature: version and command, family, addresses.
fn parse_v2(ver_cmd: u8, family: u8, body: &[u8]) -> Option<Option<SocketAddr>> {
    if ver_cmd >> 4 != 2 {
        return None;
    }
    match ver_cmd & 0x0f {
        0 => return Some(None), // LOCAL: the proxy's own connection
        1 => {}
        _ => return None,
    }
    match family {
        0x11 if body.len() >= 12 => {
            let ip = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            Some(Some(SocketAddr::new(ip.into(), u16::from_be_bytes([body[8], body[9]]))))
        }
        0x21 if body.len() >= 36 => {
            let ip = Ipv6Addr::from(<[u8; 16]>::try_from(&body[..16]).ok()?);
            Some(Some(SocketAddr::new(ip.into(), u16::from_be_bytes([body[32], body[33]]))))
        }
        0x00 => Some(None), // UNSPEC: no address given
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8]) -> (io::Result<Option<SocketAddr>>, usize) {
        let mut r = bytes;
        let got = read_header(&mut r);
        (got, r.len())
    }

    #[test]
    fn version_1() {
        let (got, left) = read(b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 110\r\nCAPA\r\n");
        assert_eq!(got.unwrap(), Some("192.0.2.7:56324".parse().unwrap()));
        assert_eq!(left, 6, "nothing past the header is read");
        let (got, _) = read(b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 995\r\n");
        assert_eq!(got.unwrap(), Some("[2001:db8::1]:4000".parse().unwrap()));
        assert_eq!(read(b"PROXY UNKNOWN\r\n").0.unwrap(), None);
        for bad in [
            &b"PROXY TCP4 192.0.2.7 198.51.100.1 56324\r\n"[..],
            b"PROXY TCP4 2001:db8::1 198.51.100.1 1 2\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 65536 110\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 0123 110\r\n",
            b"PROXY TCP5 a b c d\r\n",
            b"HELLO there, this is no header\r\n",
        ] {
            assert_eq!(read(bad).0.unwrap_err().kind(), io::ErrorKind::InvalidData, "{bad:?}");
        }
        let long = [&b"PROXY "[..], &[b'x'; 200]].concat();
        assert_eq!(read(&long).0.unwrap_err().kind(), io::ErrorKind::InvalidData);
        assert_eq!(read(b"PROXY TCP4").0.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }

    fn v2(cmd: u8, family: u8, body: &[u8]) -> Vec<u8> {
        [&V2_SIGNATURE[..], &[cmd, family], &(body.len() as u16).to_be_bytes(), body].concat()
    }

    #[test]
    fn version_2() {
        let body = [192, 0, 2, 9, 198, 51, 100, 1, 0x1f, 0x90, 0, 110, 0x04, 0, 1, 0x2a];
        let (got, left) = read(&[v2(0x21, 0x11, &body), b"rest".to_vec()].concat());
        assert_eq!(got.unwrap(), Some("192.0.2.9:8080".parse().unwrap()));
        assert_eq!(left, 4);
        let mut six = vec![0u8; 36];
        six[15] = 1;
        six[32..34].copy_from_slice(&443u16.to_be_bytes());
        assert_eq!(read(&v2(0x21, 0x21, &six)).0.unwrap(), Some("[::1]:443".parse().unwrap()));
        assert_eq!(read(&v2(0x20, 0x00, &[])).0.unwrap(), None, "LOCAL");
        for bad in [v2(0x11, 0x11, &body), v2(0x22, 0x11, &body), v2(0x21, 0x11, &body[..8]), v2(0x21, 0x31, &body)] {
            assert_eq!(read(&bad).0.unwrap_err().kind(), io::ErrorKind::InvalidData);
        }
        let huge = [&V2_SIGNATURE[..], &[0x21, 0x11], &u16::MAX.to_be_bytes()].concat();
        assert_eq!(read(&huge).0.unwrap_err().kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn trusted_addresses_and_untrusted_headers() {
        let t = Trusted::parse("127.0.0.1, 10.0.0.0/8, fd00::/8").unwrap();
        assert!(t.contains("10.200.3.4".parse().unwrap()) && t.contains("127.0.0.1".parse().unwrap()));
        assert!(t.contains("::ffff:10.1.1.1".parse().unwrap()), "v4-mapped");
        assert!(t.contains("fd12::1".parse().unwrap()) && !t.contains("fe80::1".parse().unwrap()));
        assert!(!t.contains("11.0.0.1".parse().unwrap()) && !t.contains("127.0.0.2".parse().unwrap()));
        assert!(Trusted::parse("0.0.0.0/0").unwrap().contains("192.0.2.1".parse().unwrap()));
        assert_eq!(Trusted::parse("").unwrap(), Trusted::default());
        assert!(Trusted::parse("10.0.0.0/33").is_none() && Trusted::parse("nowhere").is_none());
        assert!(looks_like_header(b"PROXY TCP4 1.2.3.4") && looks_like_header(&V2_SIGNATURE[..6]));
        assert!(!looks_like_header(b"CAPA\r\n") && !looks_like_header(b"\r\n"));
    }
}
