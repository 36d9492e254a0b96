//! Client connections from a chosen source address (bind before connect), so a bench client can be one busy address or many.

// std's TcpStream cannot bind before it connects, so this takes the few libc calls it needs (socket,
// bind, connect) and hands the descriptor to a TcpStream at once, which owns and closes it. The bench
// binds loopback addresses only (127.0.0.0/8: every one of them is this machine's).

use std::io;
use std::mem::size_of;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::time::Duration;

/// `a` as a sockaddr_storage and its length.
fn sockaddr(a: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data, for which all zeroes is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match a {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from(*v4.ip()).to_be() },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than sockaddr_in and suitably aligned for it.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr { s6_addr: v6.ip().octets() },
                sin6_scope_id: 0,
            };
            // SAFETY: as above, for sockaddr_in6.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// A TCP connection to `to` from `from` (an ephemeral port of that address),
/// the connect bounded by `timeout` (SO_SNDTIMEO, which Linux applies to
/// connect), with `timeout` as its read and write timeouts too.
pub fn connect_from(from: IpAddr, to: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let domain = if to.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: socket(2) with constant arguments; the result is checked.
    let fd = unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh socket that nothing else owns; the stream closes it from now on.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let (local, len) = sockaddr(&SocketAddr::new(from, 0));
    // SAFETY: local is a valid sockaddr of length len.
    if unsafe { libc::bind(stream.as_raw_fd(), (&local as *const libc::sockaddr_storage).cast(), len) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let (remote, len) = sockaddr(to);
    // SAFETY: remote is a valid sockaddr of length len.
    if unsafe { libc::connect(stream.as_raw_fd(), (&remote as *const libc::sockaddr_storage).cast(), len) } < 0 {
        let e = io::Error::last_os_error();
        // EINPROGRESS: what a connect that SO_SNDTIMEO cut short reports
        return Err(match e.raw_os_error() {
            Some(libc::EINPROGRESS) => io::Error::new(io::ErrorKind::TimedOut, "connect timed out"),
            _ => e,
        });
    }
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// `net` + `i` as an IPv4 address: `net` is the first three octets
/// ("127.0.40"), `i` picks the last (1..=250, wrapping), so a client can
/// spread its connections over up to 250 loopback addresses.
pub fn address_in(net: &str, i: u64) -> IpAddr {
    format!("{}.{}", net.trim_end_matches('.'), i % 250 + 1)
        .parse()
        .unwrap_or_else(|_| crate::die(&format!("bad address prefix {net}")))
}
