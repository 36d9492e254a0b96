//! Every fixed limit and default of pop3d in one place, each with the reason for it.

use std::time::Duration;

/// RFC 2449 section 4: a command line is at most 255 octets including CRLF.
pub const MAX_LINE: usize = 255;

/// RFC 1939 section 3: arguments are at most 40 characters. PASS and SASL
/// responses are exempt (RFC 2449 raised the line limit for them; long
/// passphrases from password managers are common).
pub const MAX_ARG: usize = 40;

/// A user name (a maildrop name in paths and logs): RFC 1939 does not bound
/// it beyond the 40-octet argument; 64 octets hold every account name a
/// passwd file or an e-mail address local part uses. Longer names are
/// refused the same way by every login method.
pub const MAX_USER_NAME: usize = 64;

/// A client response during a SASL exchange can exceed the command line
/// limit (RFC 5034 section 4); it is bounded all the same (a SCRAM message
/// with a long channel binding fits easily).
pub const MAX_SASL_LINE: usize = 8 * 1024;

/// Client input is read in blocks of this size; pipelined commands that
/// arrive together are answered together.
pub const READ_BUFFER: usize = 4 * 1024;

/// Replies are collected in a buffer of this size and written in as few
/// writes as possible (PIPELINING); RETR streams through it in blocks, so a
/// typical message leaves in one write. It grows only as replies need it.
pub const WRITE_BUFFER: usize = 128 * 1024;

/// A reply buffer larger than this is freed while the session waits for
/// input, so 1,000 idle sessions stay cheap.
pub const IDLE_WRITE_BUFFER: usize = 4 * 1024;

/// Full-size reply buffers kept for reuse across sessions (at most 1 MiB):
/// enough for the sessions busy retrieving at one moment on a small box.
pub const SPARE_REPLY_BUFFERS: usize = 8;

/// Mail files (an mbox, a Maildir message) are read in blocks of this size
/// while indexing and streaming. A line longer than this is handled in
/// pieces (never loaded whole).
pub const STORE_BLOCK: usize = 64 * 1024;

/// Stack of a session thread: sessions keep their buffers on the heap, so a
/// small stack keeps 1,000 idle sessions cheap.
pub const SESSION_STACK: usize = 256 * 1024;

/// An unauthenticated session ends after this many login timeouts in total,
/// however it spends them (a client dripping CAPA or a slow TLS handshake).
pub const LOGIN_TIME_FACTOR: u32 = 4;

/// RFC 1939 section 3: the autologout timer is at least 10 minutes.
pub const MIN_SESSION_TIMEOUT: Duration = Duration::from_secs(600);

/// After a failed login the session waits this long times the number of
/// failures so far (capped), to slow down password guessing.
pub const AUTH_FAIL_DELAY: Duration = Duration::from_millis(500);
pub const AUTH_FAIL_DELAY_MAX_STEPS: u32 = 8;

/// Failed logins allowed in one session before it is closed.
pub const MAX_AUTH_FAILURES: u32 = 5;

/// A dotlock older than this is stale (left by a crashed writer) and is
/// removed, as procmail and mutt do.
pub const DOTLOCK_STALE: Duration = Duration::from_secs(300);

/// Dotlock records (see `lock::Records`) looked at when a process starts:
/// one per maildrop being updated at the moment of a crash, so a few; the
/// bound keeps a flooded directory from delaying the start.
pub const MAX_DOTLOCK_RECORDS: usize = 1000;

/// The longest PROXY protocol version 2 header body accepted: the
/// addresses (at most 216 octets for Unix sockets) and the TLVs a proxy
/// adds (SSL details, a unique id), with room; the header is read before
/// the greeting, so it is bounded.
pub const MAX_PROXY_V2_LENGTH: usize = 1024;

/// Pause between attempts to take a mailbox lock held by someone else.
pub const LOCK_RETRY: Duration = Duration::from_millis(50);

/// A failed login older than this no longer lengthens the delay for its
/// address.
pub const PENALTY_FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

/// Addresses whose failed logins are tracked at most; beyond it the stalest
/// entries are dropped, so a flood of addresses cannot grow the table.
pub const PENALTY_MAX_ADDRESSES: usize = 10_000;

/// How often the TLS certificate files are checked for a change (renewed
/// certificates are picked up without a restart).
pub const TLS_RELOAD_CHECK: Duration = Duration::from_secs(5);

/// Connections the kernel queues per listener before accept: enough for a
/// burst of clients polling at the same minute.
pub const LISTEN_BACKLOG: i32 = 128;

/// Pause after a failed accept (out of descriptors or memory), instead of
/// spinning on the error.
pub const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// How long the "too many sessions" answer may take to write: a refused
/// client is never waited on.
pub const REFUSE_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// A "too many sessions" log line is written at most this often.
pub const LIMIT_LOG_INTERVAL: Duration = Duration::from_secs(10);
