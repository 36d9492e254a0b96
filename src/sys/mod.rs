//! The one place with `unsafe`: thin, checked wrappers over the POSIX calls std does not offer.
//!
//! Every function here takes and returns safe types; each `unsafe` block
//! passes only valid pointers to buffers it owns, sized as the call expects.

use std::ffi::CString;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::fd::{FromRawFd, RawFd};
use std::time::{Duration, Instant};

pub mod process;

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Waits until `fd` is ready for `events` (POLLIN/POLLOUT); `TimedOut` once
/// `timeout` has passed, never before: the wait is rounded up to whole
/// milliseconds, and after a signal (EINTR) or an early wake-up only what
/// is left of it is waited for.
pub fn poll(fd: RawFd, events: libc::c_short, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now().checked_add(timeout);
    let mut pfd = libc::pollfd { fd, events, revents: 0 };
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        // SAFETY: one valid pollfd.
        match check(unsafe { libc::poll(&mut pfd, 1, poll_millis(left)) }) {
            Ok(0) if left.is_some_and(|l| l.is_zero()) => return Err(io::ErrorKind::TimedOut.into()),
            Ok(0) => {}
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// poll(2)'s timeout for a wait of `left` (None: longer than any clock can
/// count): whole milliseconds rounded up, so poll never returns before it.
pub(crate) fn poll_millis(left: Option<Duration>) -> libc::c_int {
    let Some(left) = left else { return libc::c_int::MAX };
    let ms = left.as_nanos().div_ceil(1_000_000);
    ms.min(libc::c_int::MAX as u128) as libc::c_int
}

/// read(2) on a descriptor we do not own (stdin).
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: reads at most buf.len() bytes into buf.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// write(2) on a descriptor we do not own (stdout).
pub fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: writes at most buf.len() bytes from buf.
    let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Sets O_NONBLOCK on a descriptor.
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl F_GETFL/F_SETFL take no pointers.
    let flags = check(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    check(unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    Ok(())
}

/// The peer address of a socket descriptor; None for a pipe or file.
pub fn peer_addr(fd: RawFd) -> Option<SocketAddr> {
    // SAFETY: a zeroed sockaddr_storage is valid; getpeername fills at most `len` bytes.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    check(unsafe { libc::getpeername(fd, (&mut addr as *mut libc::sockaddr_storage).cast(), &mut len) }).ok()?;
    match addr.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a: &libc::sockaddr_in = unsafe { &*(&addr as *const libc::sockaddr_storage).cast() };
            Some(SocketAddr::new(IpAddr::from(u32::from_be(a.sin_addr.s_addr).to_be_bytes()), u16::from_be(a.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a: &libc::sockaddr_in6 = unsafe { &*(&addr as *const libc::sockaddr_storage).cast() };
            Some(SocketAddr::new(IpAddr::from(a.sin6_addr.s6_addr), u16::from_be(a.sin6_port)))
        }
        _ => None,
    }
}

/// Outcome of a non-blocking lock attempt.
pub enum Locked {
    Yes,
    /// Held by someone else.
    Busy,
}

/// fcntl(F_SETLK) on the whole file: F_RDLCK, F_WRLCK or F_UNLCK.
pub fn fcntl_lock(fd: RawFd, kind: libc::c_int) -> io::Result<Locked> {
    // SAFETY: a zeroed flock is valid (whole file from offset 0).
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: F_SETLK with a valid flock struct.
    match check(unsafe { libc::fcntl(fd, libc::F_SETLK, &fl) }) {
        Ok(_) => Ok(Locked::Yes),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES | libc::EAGAIN)) => Ok(Locked::Busy),
        Err(e) => Err(e),
    }
}

/// flock(2) without blocking: LOCK_SH, LOCK_EX or LOCK_UN.
pub fn flock(fd: RawFd, op: libc::c_int) -> io::Result<Locked> {
    // SAFETY: flock takes no pointers.
    match check(unsafe { libc::flock(fd, op | libc::LOCK_NB) }) {
        Ok(_) => Ok(Locked::Yes),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(Locked::Busy),
        Err(e) => Err(e),
    }
}

/// Whether process `pid` exists (on this host), whoever owns it.
pub fn process_exists(pid: i32) -> bool {
    // SAFETY: kill with signal 0 sends nothing; it only checks the pid.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// flock(LOCK_EX), waiting for it (for short critical sections only).
pub fn flock_wait(fd: RawFd) -> io::Result<()> {
    loop {
        // SAFETY: flock takes no pointers.
        match check(unsafe { libc::flock(fd, libc::LOCK_EX) }) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other.map(|_| ()),
        }
    }
}

/// glibc only: blocks of `threshold` octets and more are mapped on their
/// own and given back to the system when freed. Setting it also turns off
/// glibc's sliding threshold, which after one large index (megabytes, freed
/// at the end of a session) would keep every later one on the heap, and
/// the daemon's memory at its high-water mark. musl always maps large blocks.
pub fn return_large_blocks(threshold: usize) {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt takes two integers and changes only malloc's tuning.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, threshold.try_into().unwrap_or(libc::c_int::MAX));
    }
    #[cfg(not(target_env = "gnu"))]
    let _ = threshold;
}

/// The system's host name.
pub fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    check(unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) }).ok()?;
    let len = buf.iter().position(|&b| b == 0)?;
    String::from_utf8(buf[..len].to_vec()).ok().filter(|s| !s.is_empty())
}

/// A listening TCP socket. IPv6 sockets are IPv6-only, so `0.0.0.0:110`
/// and `[::]:110` can both be bound.
pub fn listen(addr: SocketAddr, backlog: i32) -> io::Result<TcpListener> {
    let family = if addr.is_ipv6() { libc::AF_INET6 } else { libc::AF_INET };
    // SAFETY: socket takes no pointers; the descriptor is owned by `listener` below.
    let fd = check(unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: fd is a fresh socket we own; TcpListener closes it on drop.
    let listener = unsafe { TcpListener::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    let opt = |level, name| {
        // SAFETY: the option value is a valid c_int of the size passed.
        check(unsafe { libc::setsockopt(fd, level, name, (&one as *const libc::c_int).cast(), 4) })
    };
    opt(libc::SOL_SOCKET, libc::SO_REUSEADDR)?;
    let (storage, len) = sockaddr(addr);
    if addr.is_ipv6() {
        opt(libc::IPPROTO_IPV6, libc::IPV6_V6ONLY)?;
    }
    // SAFETY: storage holds a sockaddr of `len` bytes for this family.
    check(unsafe { libc::bind(fd, (&storage as *const libc::sockaddr_storage).cast(), len) })?;
    // SAFETY: listen takes no pointers.
    check(unsafe { libc::listen(fd, backlog) })?;
    Ok(listener)
}

fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: a zeroed sockaddr_storage is valid.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for a sockaddr_in.
            let sin: &mut libc::sockaddr_in = unsafe { &mut *(&mut storage as *mut libc::sockaddr_storage).cast() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for a sockaddr_in6.
            let sin6: &mut libc::sockaddr_in6 = unsafe { &mut *(&mut storage as *mut libc::sockaddr_storage).cast() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_scope_id = a.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// The most processes and threads this process's account may have at once
/// (RLIMIT_NPROC; the kernel counts every process and thread of the
/// account), or None when unlimited.
pub fn max_user_tasks() -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NPROC, &mut limit) } != 0 || limit.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    // rlim_t is 32 bits on some targets.
    #[allow(clippy::unnecessary_cast)]
    Some(limit.rlim_cur as u64)
}

/// Ends this process (SIGALRM, not caught) after `seconds`; 0 cancels.
/// The fallback of inetd mode's deadline when no thread can watch it.
pub fn alarm(seconds: u32) {
    // SAFETY: alarm takes an integer and only sets the process's timer.
    unsafe { libc::alarm(seconds) };
}

/// The effective user id is root.
pub fn is_root() -> bool {
    // SAFETY: geteuid takes no arguments and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The uid and primary gid of account `user`, if it exists.
pub fn user_ids(user: &str) -> Option<(u32, u32)> {
    let name = CString::new(user).ok()?;
    // SAFETY: a zeroed passwd is valid; getpwnam_r fills it with pointers into `buf`.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe { libc::getpwnam_r(name.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut result) };
    (rc == 0 && !result.is_null()).then_some((pw.pw_uid, pw.pw_gid))
}

/// This process's effective uid and gid.
pub fn effective_ids() -> (u32, u32) {
    // SAFETY: geteuid and getegid take no arguments and cannot fail.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

/// Switches the whole process to `user` (its uid, primary gid and no
/// supplementary groups) for good, and checks that root cannot be regained.
pub fn drop_privileges(user: &str) -> Result<(), String> {
    let name = CString::new(user).map_err(|_| format!("invalid user name {user:?}"))?;
    // SAFETY: a zeroed passwd is valid; getpwnam_r fills it with pointers into `buf`.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe { libc::getpwnam_r(name.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() {
        return Err(format!("user {user:?} does not exist"));
    }
    let (uid, gid) = (pw.pw_uid, pw.pw_gid);
    if uid == 0 {
        return Err(format!("user {user:?} is root; sessions never run as root"));
    }
    process::switch_to(uid, gid)
}

fn signal_set() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the zeroed set; sigaddset adds valid signals.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::sigaddset(&mut set, libc::SIGTERM);
        set
    }
}

/// Blocks SIGHUP and SIGTERM in the calling thread and every thread it
/// starts later, so that they stay pending for `wait_signal` instead of
/// ending the process. Call before starting any thread.
pub fn block_signals() -> io::Result<()> {
    let set = signal_set();
    // SAFETY: a valid, initialised set; the old mask is not asked for.
    match unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) } {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// A signal the daemon acts on.
pub enum Signal {
    Hup,
    Term,
}

/// Waits until SIGHUP or SIGTERM (blocked by `block_signals`) arrives.
pub fn wait_signal() -> Signal {
    let set = signal_set();
    let mut sig: libc::c_int = 0;
    loop {
        // SAFETY: a valid set and a valid place for the signal number. sigwait
        // only fails for an invalid set; then the loop asks again.
        if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
            match sig {
                libc::SIGHUP => return Signal::Hup,
                libc::SIGTERM => return Signal::Term,
                _ => {}
            }
        }
    }
}

/// PR_SET_NO_NEW_PRIVS: nothing this process runs can gain privileges
/// (setuid binaries, file capabilities), for good.
pub fn no_new_privs() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }).map(|_| ())
}

/// Stops a listening socket: an `accept` blocked on it returns at once.
pub fn stop_listening(fd: RawFd) {
    // SAFETY: shutdown takes no pointers; on a listening socket it wakes accept.
    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
}

// glibc's crypt_r lives in libcrypt (libxcrypt, or glibc's own before 2.38);
// musl keeps it in libc itself, and rustc's self-contained musl ships no
// libcrypt.a at all, so "crypt" is linked on glibc only.
#[cfg_attr(target_env = "gnu", link(name = "crypt"))]
extern "C" {
    fn crypt_r(phrase: *const libc::c_char, setting: *const libc::c_char, data: *mut libc::c_void)
        -> *mut libc::c_char;
}

/// The size of the zeroed `struct crypt_data` area handed to crypt_r: larger
/// than libxcrypt's (32 KiB), glibc's own before 2.38 (131,232 bytes on
/// 64-bit targets, less on 32-bit ones) and musl's (260 bytes on every
/// target: an int and 256 chars). None of them holds pointers, so the size
/// does not grow with the word size.
const CRYPT_DATA_SIZE: usize = 256 * 1024;

/// The system's crypt(3): `password` hashed with the salt and parameters of
/// `setting`. None when the password holds a NUL byte or crypt rejects the
/// setting (libxcrypt answers such calls with a string starting with `*`).
pub fn crypt(setting: &str, password: &[u8]) -> Option<String> {
    let phrase = CString::new(password).ok()?;
    let setting = CString::new(setting).ok()?;
    // The crypt_data area is a private anonymous mapping: zero-filled (the
    // "initialized = 0" both libcs ask for), page-aligned, and given back
    // whole to the kernel afterwards, so neither the hash's intermediate
    // state nor the memory stays with the process.
    // SAFETY: a fresh anonymous mapping; no pointer is passed in.
    let data = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            CRYPT_DATA_SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if data == libc::MAP_FAILED {
        log::error!("crypt: cannot map {CRYPT_DATA_SIZE} bytes: {}", io::Error::last_os_error());
        return None;
    }
    // SAFETY: both strings are NUL-terminated; `data` is a zeroed area larger
    // than struct crypt_data; the result points into `data` or to a static
    // string (or is NULL) and is copied out before `data` is unmapped.
    let out = unsafe {
        let p = crypt_r(phrase.as_ptr(), setting.as_ptr(), data);
        (!p.is_null()).then(|| std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned())
    };
    // SAFETY: the mapping made above, of that size, no longer used.
    unsafe { libc::munmap(data, CRYPT_DATA_SIZE) };
    out.filter(|out| !out.starts_with('*'))
}

/// Whether `dir` is on NFS (None if it cannot be asked).
pub fn is_nfs(dir: &std::path::Path) -> Option<bool> {
    let path = CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: a zeroed statfs is valid; statfs fills it from a NUL-terminated path.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    check(unsafe { libc::statfs(path.as_ptr(), &mut st) }).ok()?;
    // f_type and the constant are c_long on some targets, c_uint on others.
    #[allow(clippy::unnecessary_cast)]
    Some(st.f_type as i64 == libc::NFS_SUPER_MAGIC as i64)
}

/// Octets an unprivileged process may still write on the filesystem of `fd`
/// (fstatvfs: f_bavail blocks of f_frsize).
pub fn free_space(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<u64> {
    use std::os::fd::AsRawFd;
    // SAFETY: a zeroed statvfs is valid; fstatvfs fills it.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    check(unsafe { libc::fstatvfs(fd.as_raw_fd(), &mut st) })?;
    // The fields are u32 on some 32-bit targets.
    #[allow(clippy::unnecessary_cast)]
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// A path or file name as a C string (None if it holds a NUL byte).
fn c_path(name: &std::ffi::OsStr) -> io::Result<CString> {
    CString::new(name.as_encoded_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// Opens directory `name` inside `dir`, not following a symbolic link.
pub fn open_dir_at(dir: std::os::fd::BorrowedFd<'_>, name: &std::ffi::OsStr) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::AsRawFd;
    open_at(dir.as_raw_fd(), name, libc::O_DIRECTORY)
}

/// Opens file `name` inside `dir` for reading, not following a symbolic
/// link and without blocking on a FIFO; only a regular file with one link
/// is accepted (a hard link could be another user's message). Returns the
/// file and its length.
pub fn open_file_at(dir: std::os::fd::BorrowedFd<'_>, name: &std::ffi::OsStr) -> io::Result<(std::fs::File, u64)> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    let file = std::fs::File::from(open_at(dir.as_raw_fd(), name, libc::O_NONBLOCK)?);
    let meta = file.metadata()?;
    if !meta.is_file() || meta.nlink() != 1 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "not a regular file with a single link"));
    }
    Ok((file, meta.len()))
}

/// Opens `name` inside `dir` with `flags` (O_RDONLY unless O_RDWR is among
/// them), never following a symbolic link in `name` (ELOOP).
pub fn open_nofollow_at(
    dir: std::os::fd::BorrowedFd<'_>,
    name: &std::ffi::OsStr,
    flags: libc::c_int,
) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::AsRawFd;
    open_at(dir.as_raw_fd(), name, flags)
}

fn open_at(dir: RawFd, name: &std::ffi::OsStr, flags: libc::c_int) -> io::Result<std::os::fd::OwnedFd> {
    let name = c_path(name)?;
    let flags = flags | libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: a NUL-terminated name; the new descriptor is owned by the result.
    let fd = check(unsafe { libc::openat(dir, name.as_ptr(), flags) })?;
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Removes file `name` from directory `dir` (never follows a link: a link is
/// removed itself).
pub fn unlink_at(dir: std::os::fd::BorrowedFd<'_>, name: &std::ffi::OsStr) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let name = c_path(name)?;
    // SAFETY: a NUL-terminated name relative to a directory we hold open.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) })?;
    Ok(())
}

/// Renames `from` in directory `from_dir` to `to` in `to_dir`, both
/// directories held open, so no path is followed. Like rename(2), it
/// replaces an existing `to`.
pub fn rename_at(
    from_dir: std::os::fd::BorrowedFd<'_>,
    from: &std::ffi::OsStr,
    to_dir: std::os::fd::BorrowedFd<'_>,
    to: &std::ffi::OsStr,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let (from, to) = (c_path(from)?, c_path(to)?);
    // SAFETY: NUL-terminated names relative to directories we hold open.
    check(unsafe { libc::renameat(from_dir.as_raw_fd(), from.as_ptr(), to_dir.as_raw_fd(), to.as_ptr()) })?;
    Ok(())
}

/// Opens an existing regular file `name` inside `dir` for appending, not
/// following a symbolic link (Maildir++'s maildirsize).
pub fn open_append_at(dir: std::os::fd::BorrowedFd<'_>, name: &std::ffi::OsStr) -> io::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::from(open_at(dir.as_raw_fd(), name, libc::O_WRONLY | libc::O_APPEND | libc::O_NONBLOCK)?);
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "not a regular file"));
    }
    Ok(file)
}

#[cfg(test)]
mod tests;
