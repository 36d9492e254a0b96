//! Every fixed limit of pop3d in one place, each with its reason (the configuration's defaults: `config/keys.rs`).

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

/// Heap blocks of this size and more are mapped on their own and returned
/// to the system when freed (glibc; see `sys::return_large_blocks`), so a
/// session that held a large index leaves no memory behind it. One reply
/// buffer's size: those are kept as spares anyway.
pub const MALLOC_MMAP_THRESHOLD: usize = 128 * 1024;

/// Full-size reply buffers kept for reuse across sessions (at most 1 MiB):
/// enough for the sessions busy retrieving at one moment on a small box.
pub const SPARE_REPLY_BUFFERS: usize = 8;

/// Mail files (an mbox, a Maildir message) are read in blocks of this size
/// while indexing and streaming. A line longer than this is handled in
/// pieces (never loaded whole).
pub const STORE_BLOCK: usize = 64 * 1024;

/// UPDATE moves the kept mail down inside the mailbox through one buffer of
/// this size (a few hundred reads and writes for a 100 MB tail; freed at
/// the end of the UPDATE).
pub const UPDATE_MOVE_BLOCK: usize = 256 * 1024;

/// Read blocks kept for reuse once a reader is done (at most 512 KiB): a
/// fresh zeroed block for every RETR cost more instructions than converting
/// a typical message to its wire form (callgrind); enough for the sessions
/// busy reading at one moment on a small box.
pub const SPARE_STORE_BLOCKS: usize = 8;

/// Stack of a session thread: sessions keep their buffers on the heap, so a
/// small stack keeps 1,000 idle sessions cheap.
pub const SESSION_STACK: usize = 256 * 1024;

/// The persistent mbox index is read and written this many records (60
/// octets each) at a time: 60 KiB, like a mail file block.
pub const INDEX_BLOCK_RECORDS: usize = 1024;

/// A saved Maildir listing stands for its directories without reading them
/// only if their mtimes were at least this old when it was taken: a change
/// within the same timestamp tick (coarse on most filesystems) would not
/// show in the mtime.
pub const MAILDIR_SETTLED: Duration = Duration::from_secs(2);

/// An unauthenticated session ends after this many login timeouts in total,
/// however it spends them (a client dripping CAPA or a slow TLS handshake).
pub const LOGIN_TIME_FACTOR: u32 = 4;

/// RFC 1939 section 3: the autologout timer is at least 10 minutes.
pub const MIN_SESSION_TIMEOUT: Duration = Duration::from_secs(600);

/// After a failed login the session waits this long times the number of
/// failures so far (capped); answers to logins from one address, one
/// network or for one account are spaced this long times its decayed
/// failure score (capped): at most one guess per 4 s each once saturated.
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

/// A failure record (per address, network or account) halves in this
/// time: a guesser who pauses is forgotten in about an hour, one who keeps
/// going stays at the longest delay.
pub const PENALTY_HALF_LIFE: Duration = Duration::from_secs(10 * 60);

/// Failure records (addresses, networks, accounts) the daemon keeps at
/// most, about 100 bytes each; beyond it the spent and then the oldest go,
/// so a flood of addresses cannot grow the table.
pub const PENALTY_MAX_ADDRESSES: usize = 10_000;

/// Records kept in inetd mode's `state_dir/penalties`, read and rewritten
/// at each login (about 60 bytes a line: at most ~64 KiB of file).
pub const PENALTY_FILE_MAX_ENTRIES: usize = 1_000;

/// Networks remembered per account as ones it logged in from
/// (`known_network_days`): a home, an office, a phone's carriers.
pub const KNOWN_NETWORKS_PER_ACCOUNT: usize = 16;

/// A known network's time is written again after this long: a login that
/// finds it current writes nothing.
pub const KNOWN_REFRESH: Duration = Duration::from_secs(24 * 3600);

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

/// A session waiting for its login answer's slot looks this often whether
/// it was closed meanwhile (its place given to a new connection).
pub const PAUSE_STEP: Duration = Duration::from_millis(50);

/// Session threads beyond `max_sessions`: room for connections waiting for
/// a place (every session in their way busy) and for closed sessions whose
/// threads are still ending. At that many, new connections wait in the
/// kernel's accept queue, so a busy address never grows the daemon's
/// threads without bound.
pub const SESSION_THREAD_SPARE: usize = 32;

/// Threads sessions may run beside their own at once, in all (a cold
/// scan's UIDL digests, the close of a large removed journal): beyond them
/// a session does that work in its own thread.
pub const SIDE_THREADS: usize = 4;

/// The daemon's threads other than sessions' (besides one per listener),
/// kept out of what the account's task limit (RLIMIT_NPROC) leaves for
/// sessions: the main thread, the reaper, and the side threads.
pub const OWN_THREADS: usize = 2 + SIDE_THREADS;

/// A session not logged in whose client has owed its next command this
/// long (or that has waited this long for a penalty slot) counts as
/// stalled: when the whole pre-login budget is full, the network holding
/// the most of them makes way first. A client in a normal exchange answers
/// within a round trip.
pub const STALLED_AFTER: Duration = Duration::from_secs(1);

/// How often the daemon closes sessions that did not log in within the
/// login deadline (however their bytes arrive: a TLS handshake dripping a
/// byte at a time included). The deadline holds to within this.
pub const REAP_INTERVAL: Duration = Duration::from_millis(500);

/// The login deadline is enforced from outside (the daemon's reaper, inetd
/// mode's watchdog) this long after it passes: a session in an ordinary
/// read sees it first and says why (`-ERR autologout`); only one stuck
/// elsewhere (a TLS handshake dripped a byte at a time) is cut.
pub const REAP_GRACE: Duration = Duration::from_secs(1);

/// How often a process waiting for its child (inetd mode's root helper)
/// looks whether it has ended, up to the deadline that bounds the wait.
pub const CHILD_LOOK: Duration = Duration::from_millis(10);

/// Connection and failure log lines (about sessions that never logged in)
/// for all clients: a burst of this many, then `LOG_RATE` a second. At most
/// ~400 bytes a line (client text is cut to `LOG_CLIENT_TEXT`): about 8 KB/s
/// sustained under any flood, which logd's ring on a router and flash
/// storage survive.
pub const LOG_BURST: u32 = 100;
pub const LOG_RATE: f64 = 20.0;

/// The same per client address: a burst of 10, then one a second.
pub const LOG_PER_ADDRESS_BURST: u32 = 10;
pub const LOG_PER_ADDRESS_EVERY: Duration = Duration::from_secs(1);

/// Addresses whose log rate is tracked at most (a flood of addresses
/// cannot grow the table; the global limit still holds).
pub const LOG_MAX_ADDRESSES: usize = 4_096;

/// Addresses whose log budget inetd's sessions share through
/// state_dir/logbudget (rewritten for each line held to it, so kept
/// small); beyond it a new address is held to the budget for all only.
pub const LOG_SHARED_ADDRESSES: usize = 256;

/// How often the count of held-back log lines is logged.
pub const LOG_SUMMARY_INTERVAL: Duration = Duration::from_secs(10);

/// Client text (a user name) in a log line: at most this many bytes, each
/// escaped to at most 4 characters.
pub const LOG_CLIENT_TEXT: usize = 64;

/// The longest password checked against a system account (longer ones fail
/// after the same work); crypt(3) implementations bound theirs too.
pub const MAX_PASSWORD: usize = 1_024;

/// passwd and shadow are read whole at each check; a larger one is refused.
pub const ACCOUNT_FILE_MAX: u64 = 16 << 20;

/// One message to or from the credentials helper: a request is a name of
/// at most `MAX_USER_NAME` octets and a password of at most `MAX_PASSWORD`;
/// an answer carries a home directory (at most 4 KiB in passwd, PATH_MAX).
pub const HELPER_MESSAGE: usize = 8 + MAX_USER_NAME + MAX_PASSWORD + 4_096;

/// Failed checks of one user name the helper answers at once; each one
/// after them comes `HELPER_NAME_SPACING` after the last, whoever asks (a
/// session process that bypasses its own delays gains nothing: about
/// 43,000 guesses a day per name at most, as the per-account penalty
/// allows remote clients). A quiet spell of burst times spacing gives the
/// burst back.
pub const HELPER_NAME_BURST: u32 = 10;
pub const HELPER_NAME_SPACING: Duration = Duration::from_secs(2);

/// Failed checks of all names together: beyond this burst, one per
/// `HELPER_FAILURE_SPACING` (50 a second), so only a flood slows the good
/// logins queued behind it.
pub const HELPER_FAILURE_BURST: u32 = 100;
pub const HELPER_FAILURE_SPACING: Duration = Duration::from_millis(20);

/// User names whose failures the helper remembers (the ones quiet longest
/// are forgotten first when it is full).
pub const HELPER_NAMES: usize = 1_024;

/// How long a session waits for the helper's answer: beyond a check's
/// hash, the helper may be spacing failures of other sessions.
pub const HELPER_TIMEOUT: Duration = Duration::from_secs(60);

/// inetd mode with system accounts: client bytes the relay holds for the
/// user's session before it stops reading the client (a pipelining client
/// that does not read its answers waits, instead of growing this).
pub const RELAY_BUFFER: usize = 256 * 1024;

/// A scan hands the bytes its UIDL digests cover to their thread in
/// batches of this many octets (a few hundred meetings per gigabyte).
pub const DIGEST_BATCH: usize = 256 * 1024;

/// The stack of that thread (it hashes only).
pub const DIGEST_STACK: usize = 64 * 1024;
