# Shared helpers for the pop3d interop tests: mbox building/parsing, expected wire bytes, daemon control, raw POP3 I/O.
import functools
import os
import poplib
import pwd
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
POP3D_BIN = os.path.join(REPO_ROOT, os.environ.get("POP3D_BIN") or os.path.join("target", "debug", "pop3d"))
# e.g. "qemu-mipsel": the daemon of Daemon() runs a cross-built POP3D_BIN under an emulator (make check-cross).
POP3D_RUNNER = os.environ.get("POP3D_TEST_RUNNER", "").split()
DELIVER = os.path.join(HERE, "deliver.py")
IS_ROOT = os.geteuid() == 0
RUN_AS = "nobody"

# Hang guards only (never used for synchronisation).
IO_TIMEOUT = 10
START_TIMEOUT = 15
CLIENT_TIMEOUT = 45

# poplib refuses lines longer than 2048 octets; our mailboxes hold far longer lines on purpose.
poplib._MAXLINE = 1 << 22

# ---------------------------------------------------------------------------
# Accounts
# ---------------------------------------------------------------------------

PASSWORDS = {
    "alice": "Alice-pw.6",    # $6$ SHA512-CRYPT
    "bob": "Bob-pw.5",        # $5$ SHA256-CRYPT
    "carol": "Carol-pw.1",    # $1$ MD5-CRYPT
    "apopuser": "apop-Secret.7",  # {PLAIN}, usable for APOP
    "dave": "Dave-pw.6",      # $6$, mailbox never created
}


@functools.lru_cache(maxsize=None)
def openssl_passwd(scheme, salt, password):
    out = subprocess.run(["openssl", "passwd", "-" + scheme, "-salt", salt, password],
                         check=True, capture_output=True, timeout=30).stdout.decode().strip()
    assert out.startswith("$%s$" % scheme), out
    return out


def users_file_text():
    return "".join([
        "# users file written by the interop tests\n",
        "alice:%s\n" % openssl_passwd("6", "aliceSALT", PASSWORDS["alice"]),
        "bob:%s\n" % openssl_passwd("5", "bobSALT", PASSWORDS["bob"]),
        "carol:%s\n" % openssl_passwd("1", "carolSLT", PASSWORDS["carol"]),
        "apopuser:{PLAIN}%s\n" % PASSWORDS["apopuser"],
        "dave:%s\n" % openssl_passwd("6", "daveSALT", PASSWORDS["dave"]),
    ])


# ---------------------------------------------------------------------------
# Messages and mbox files
# ---------------------------------------------------------------------------

FROM_LINE = b"From sender@example.org Mon Jan  1 10:00:00 2024\n"


def _hdr(n, subject, extra=b""):
    return (b"From: Sender Person <sender@example.org>\n"
            b"To: Alice Example <alice@example.net>\n"
            b"Subject: " + subject + b"\n"
            b"Date: Mon, 01 Jan 2024 10:%02d:00 +0000\n" % n +
            b"Message-ID: <msg%d.interop@example.org>\n" % n + extra)


def tricky_messages(huge=True):
    """The original messages (as an MUA wrote them), in mailbox order.

    The last one lacks a final newline, so it must stay last in an mbox file.
    huge=False keeps every line below 8 KiB: fetchmail splits longer lines (its MSGBUFSIZE), a client
    limit that is not the server's fault.
    """
    long1 = b"L" * 1500
    if huge:
        long2 = b"".join(b"%07d " % i for i in range(9000))  # 72000 octets, one line
    else:
        long2 = b"".join(b"%07d " % i for i in range(750))  # 6000 octets, one line
    m = []
    # 1: plain, 8-bit body, a folded header
    m.append(_hdr(1, b"plain message", b"X-Folded: first part\n\tsecond part\n") +
             b"\nHello Alice,\nthis is a plain message with 8-bit text: Gr\xc3\xbc\xc3\x9fe.\n")
    # 2: From_ lines in the body (stored mboxrd-quoted as >From and >>From, >>>From)
    m.append(_hdr(2, b"from lines") +
             b"\nFrom the start of a line\n>From already quoted once\n>>From quoted twice\n"
             b"From\nFromage is not a separator\n\nFrom after a blank line\nend\n")
    # 3: lines starting with dots, including a lone dot (needs byte-stuffing)
    m.append(_hdr(3, b"dot lines") +
             b"\n.\n..\n...\n.hidden\n. space\nnot.a.dot.line\n.\nlast\n")
    # 4: CRLF line ends in the store (must stay CRLF, never CR CR LF), mixed with LF
    m.append((_hdr(4, b"crlf lines")).replace(b"\n", b"\r\n") +
             b"\r\nline one with CRLF\r\n.dot with CRLF\r\nline with LF only\nFrom crlf body\r\nlast CRLF\r\n")
    # 5: empty body (headers and the blank line only)
    m.append(_hdr(5, b"empty body") + b"\n")
    # 6: long lines (> 1000 octets), one of them starting with a dot
    m.append(_hdr(6, b"long lines") + b"\n" + long1 + b"\n." + long1 + b"\n" + long2 + b"\nshort\n")
    # 7 and 8: two byte-identical messages
    twin = _hdr(7, b"identical twin") + b"\nI have a twin.\n"
    m.append(twin)
    m.append(twin)
    # 9: last line without a newline
    m.append(_hdr(9, b"no final newline") + b"\nfirst line\nlast line without newline")
    return m


def new_message(n, subject=b"new arrival"):
    return _hdr(n, subject) + b"\nA message delivered later (%d).\n>From quoted\n.dot\n" % n


def split_lines(data):
    """Split into lines keeping their terminator; only LF terminates a line."""
    return re.findall(rb"[^\n]*\n|[^\n]+$", data)


def mbox_quote(msg, fmt="mboxrd"):
    out = []
    for ln in split_lines(msg):
        if fmt == "mboxrd" and re.match(rb">*From ", ln):
            ln = b">" + ln
        elif fmt == "mboxo" and ln.startswith(b"From "):
            ln = b">" + ln
        out.append(ln)
    return b"".join(out)


def mbox_entry(msg, from_line=FROM_LINE, fmt="mboxrd"):
    """One mbox entry: From_ line, quoted message, separating blank line (if it ends with a newline)."""
    q = mbox_quote(msg, fmt)
    return from_line + q + (b"\n" if q.endswith(b"\n") else b"")


def build_mbox(msgs, fmt="mboxrd"):
    for msg in msgs[:-1]:
        assert msg.endswith(b"\n"), "only the last message may lack a final newline"
    data = b"".join(mbox_entry(m, fmt=fmt) for m in msgs)
    # self-check of this helper: parsing gives back exactly the originals
    assert [e["message"] for e in parse_mbox(data, fmt)] == list(msgs)
    return data


def parse_mbox(data, fmt="mboxrd"):
    """Parse an mbox: a `From ` line at the start or after a blank line starts a message; the blank
    line before the next From_ (and at the end of the file) is dropped; `>From ` is unquoted.

    Returns a list of dicts: from_line, stored (quoted, no separator), message (unquoted), entry (raw)."""
    lines = split_lines(data)
    starts = []
    prev_blank = True
    for i, ln in enumerate(lines):
        if ln.startswith(b"From ") and prev_blank:
            starts.append(i)
        prev_blank = ln in (b"\n", b"\r\n")
    assert not lines or starts and starts[0] == 0, "mbox does not start with a From_ line: %r" % lines[:1]
    out = []
    for k, s in enumerate(starts):
        e = starts[k + 1] if k + 1 < len(starts) else len(lines)
        body = lines[s + 1:e]
        entry = b"".join(lines[s:e])
        if body and body[-1] == b"\n" and (k + 1 < len(starts) or len(body) >= 2):
            body = body[:-1]
        msg = []
        for ln in body:
            if fmt == "mboxrd" and re.match(rb">+From ", ln):
                ln = ln[1:]
            elif fmt == "mboxo" and ln.startswith(b">From "):
                ln = ln[1:]
            msg.append(ln)
        out.append({"from_line": lines[s], "stored": b"".join(body),
                    "message": b"".join(msg), "entry": entry})
    return out


def mbox_diff(got, expected):
    """None if equal, else a short description of the first difference (which message, what bytes)."""
    if got == expected:
        return None
    if got is None:
        return "mbox file is missing"
    i = next((k for k in range(min(len(got), len(expected))) if got[k] != expected[k]),
             min(len(got), len(expected)))
    n = expected[:i].count(b"\nFrom ") + (1 if expected.startswith(b"From ") else 0)
    return ("mbox differs at offset %d (inside message %d of the expected file; %d vs %d octets): "
            "got %r, expected %r" % (i, n, len(got), len(expected), got[max(0, i - 40):i + 80],
                                     expected[max(0, i - 40):i + 80]))


def assert_mbox(got, expected):
    d = mbox_diff(got, expected)
    assert d is None, d


def to_wire(msg):
    """The octets RETR must send for a stored message, before byte-stuffing: every line ends in CRLF
    (a CRLF already there stays, a bare LF becomes CRLF, a missing final newline is added)."""
    out = []
    for ln in split_lines(msg):
        if ln.endswith(b"\r\n"):
            out.append(ln)
        elif ln.endswith(b"\n"):
            out.append(ln[:-1] + b"\r\n")
        else:
            out.append(ln + b"\r\n")
    return b"".join(out)


def to_lf(wire):
    return wire.replace(b"\r\n", b"\n")


def top_expected(wire, n):
    """TOP: all headers, the blank line, then n body lines."""
    lines = split_lines(wire)
    out = []
    body = None
    for ln in lines:
        if body is None:
            out.append(ln)
            if ln == b"\r\n":
                body = 0
        elif body < n:
            out.append(ln)
            body += 1
        else:
            break
    return b"".join(out)


# ---------------------------------------------------------------------------
# Per-test environment and the daemon
# ---------------------------------------------------------------------------

def _chown_tree(path, uid):
    os.chown(path, uid, -1)
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            try:
                os.lchown(os.path.join(root, n), uid, -1)
            except FileNotFoundError:
                pass  # a running daemon's temporary file (scram.secret.new-PID), gone meanwhile



def protect_users_file(path, run_as):
    """pop3d refuses a users file its sessions' account could write: root's, readable by that account's group."""
    os.chown(path, 0, pwd.getpwnam(run_as).pw_gid)
    os.chmod(path, 0o640)


class Env:
    """A temp dir with srv/ (users file, spool, state, config; owned by `nobody` when root) and cli/
    (client configs and outputs, owned by the caller)."""

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="pop3d-interop-")
        os.chmod(self.root, 0o711)
        self.srv = os.path.join(self.root, "srv")
        self.cli = os.path.join(self.root, "cli")
        self.spool = os.path.join(self.srv, "spool")
        self.state = os.path.join(self.srv, "state")
        for d in (self.srv, self.spool):
            os.mkdir(d, 0o755)
        os.mkdir(self.state, 0o700)
        os.mkdir(self.cli, 0o700)
        self.users_file = os.path.join(self.srv, "users")
        self.conf = os.path.join(self.srv, "pop3d.conf")
        self.daemons = []
        self.cleanups = []
        self.conf_keys = {}  # kept by every write_conf (set by use_tls)
        with open(self.users_file, "w") as f:
            f.write(users_file_text())
        os.chmod(self.users_file, 0o600)
        self.write_conf()
        self.fix_perms()

    def write_conf(self, **extra):
        keys = {
            "listen": "127.0.0.1:0",
            "users_file": self.users_file,
            "mailbox": os.path.join(self.spool, "%u"),
            "state_dir": self.state,
            "mbox_format": "mboxrd",
            "log": "stderr",
            "log_level": "info",
        }
        if IS_ROOT:
            keys["user"] = RUN_AS
        keys.update(getattr(self, "conf_keys", {}))
        keys.update(extra)
        with open(self.conf, "w") as f:
            f.write("# pop3d config written by the interop tests\n")
            for k, v in keys.items():
                f.write("%s = %s\n" % (k, v))

    def fix_perms(self):
        if IS_ROOT:
            _chown_tree(self.srv, pwd.getpwnam(RUN_AS).pw_uid)
            protect_users_file(self.users_file, RUN_AS)

    def use_tls(self, pki, client_ca=False, **extra):
        """Copy the server certificate and key of `pki` (and its CA, for client certificates) into srv/tls
        and keep tls_cert/tls_key (and tls_client_ca) plus `extra` in the config from now on."""
        d = os.path.join(self.srv, "tls")
        os.makedirs(d, mode=0o700, exist_ok=True)
        keys = {"tls_cert": os.path.join(d, "cert.pem"), "tls_key": os.path.join(d, "key.pem")}
        shutil.copyfile(pki.server_cert, keys["tls_cert"])
        shutil.copyfile(pki.server_key, keys["tls_key"])
        os.chmod(keys["tls_key"], 0o600)
        if client_ca:
            keys["tls_client_ca"] = os.path.join(d, "client-ca.pem")
            shutil.copyfile(pki.ca, keys["tls_client_ca"])
        keys.update(extra)
        self.conf_keys.update(keys)
        self.write_conf()
        self.fix_perms()

    def add_user_line(self, line):
        """Append one `name:hash` line to the users file."""
        with open(self.users_file, "a") as f:
            f.write(line if line.endswith("\n") else line + "\n")
        self.fix_perms()

    def mbox_path(self, user):
        return os.path.join(self.spool, user)

    def write_mbox(self, user, data):
        p = self.mbox_path(user)
        with open(p, "wb") as f:
            f.write(data)
        os.chmod(p, 0o600)
        self.fix_perms()
        return p

    def append_mbox(self, user, data):
        with open(self.mbox_path(user), "ab") as f:
            f.write(data)
        self.fix_perms()

    def read_mbox(self, user):
        try:
            with open(self.mbox_path(user), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def start(self, *opts, listen=("127.0.0.1:0",)):
        d = Daemon(self, opts, listen)
        self.daemons.append(d)
        return d

    def close(self, keep=False):
        for fn in self.cleanups:
            fn()
        for d in self.daemons:
            d.stop()
        if not keep:
            shutil.rmtree(self.root, ignore_errors=True)


class Daemon:
    """pop3d in daemon mode. `listen`: its -l entries (e.g. "127.0.0.1:0 tls"); after start, `port` is the
    first plaintext listener's port and `tls_port` the first implicit-TLS one's (None if there is none)."""

    def __init__(self, env, opts=(), listen=("127.0.0.1:0",)):
        if not os.path.exists(POP3D_BIN):
            raise RuntimeError("pop3d binary not found at %s (cargo build, or set POP3D_BIN)" % POP3D_BIN)
        cmd = POP3D_RUNNER + [POP3D_BIN, "-f", env.conf]
        for a in listen:
            cmd += ["-l", a]
        cmd += ["-o", "log=stderr"]
        for o in opts:
            cmd += ["-o", o]
        self.cmd = cmd
        self.lines = []
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        q = queue.Queue()

        def pump():
            for line in self.proc.stderr:
                self.lines.append(line)
                q.put(line)
            q.put(None)

        self.thread = threading.Thread(target=pump, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        self.port = self.tls_port = None
        self.listeners = []  # (port, is_tls) in the order logged
        while len(self.listeners) < len(listen):
            try:
                line = q.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                raise RuntimeError("pop3d printed no 'listening on' line within %ss; stderr:\n%s"
                                   % (START_TIMEOUT, self.stderr()))
            if line is None:
                rc = self.proc.wait()
                raise RuntimeError("pop3d exited (%s) before listening: %s\nstderr:\n%s"
                                   % (rc, " ".join(cmd), self.stderr()))
            m = re.search(rb"listening on (\S+)( \(TLS\))?", line)
            if m:
                addr = m.group(1).decode()
                host, port = addr.rsplit(":", 1)
                self.host = host.strip("[]")
                is_tls = m.group(2) is not None
                self.listeners.append((int(port), is_tls))
                if is_tls and self.tls_port is None:
                    self.tls_port = int(port)
                elif not is_tls and self.port is None:
                    self.port = int(port)

    def stderr(self):
        return b"".join(self.lines).decode("utf-8", "replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.thread.join(timeout=5)

    # --- clients -----------------------------------------------------------
    def pop(self):
        return poplib.POP3("127.0.0.1", self.port, timeout=IO_TIMEOUT)

    def login(self, user="alice", password=None):
        p = self.pop()
        p.user(user)
        p.pass_(PASSWORDS[user] if password is None else password)
        return p

    def raw(self):
        return RawConn(socket.create_connection(("127.0.0.1", self.port), timeout=IO_TIMEOUT))


# ---------------------------------------------------------------------------
# Raw POP3 I/O (exact octets)
# ---------------------------------------------------------------------------

def read_reply_line(f):
    line = f.readline()
    if not line:
        raise EOFError("connection closed by server")
    assert line.endswith(b"\r\n"), "reply line not CRLF-terminated: %r" % line[:200]
    return line


def read_multiline(f):
    """Read a multi-line body up to `.CRLF`, checking CRLF line ends, and undo byte-stuffing."""
    out = []
    while True:
        line = f.readline()
        if not line:
            raise EOFError("connection closed inside a multi-line reply")
        assert line.endswith(b"\r\n"), "line not CRLF-terminated: %r" % line[-200:]
        assert b"\r" not in line[:-2], "bare CR inside a line (CR CR LF?): %r" % line[-200:]
        if line == b".\r\n":
            return b"".join(out)
        if line.startswith(b"."):
            line = line[1:]
        out.append(line)


def poplib_raw_multi(p, cmd):
    """Send `cmd` on a poplib connection and read its multi-line reply octet by octet."""
    p._putcmd(cmd)
    resp = read_reply_line(p.file)
    if not resp.startswith(b"+OK"):
        raise poplib.error_proto(resp.rstrip(b"\r\n"))
    return resp, read_multiline(p.file)


class RawConn:
    def __init__(self, sock):
        self.sock = sock
        self.f = sock.makefile("rb")
        self.greeting = read_reply_line(self.f)

    def cmd(self, line):
        self.sock.sendall(line.encode() + b"\r\n" if isinstance(line, str) else line)
        return read_reply_line(self.f)

    def multi(self, line):
        resp = self.cmd(line)
        assert resp.startswith(b"+OK"), (line, resp)
        return resp, read_multiline(self.f)

    def login(self, user="alice", password=None):
        r = self.cmd("USER " + user)
        assert r.startswith(b"+OK"), r
        return self.cmd("PASS " + (PASSWORDS[user] if password is None else password))

    def abort(self):
        """Drop the connection without QUIT (RST)."""
        import struct
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.f.close()
        self.sock.close()

    def close(self):
        self.f.close()
        self.sock.close()


def login_retry_in_use(daemon, user="alice", deadline_s=10.0):
    """Log in; while the previous session of this maildrop is still being torn down by the server the
    answer may be [IN-USE]: retry that (bounded) and nothing else."""
    end = time.monotonic() + deadline_s
    while True:
        p = daemon.pop()
        p.user(user)
        try:
            p.pass_(PASSWORDS[user])
            return p
        except poplib.error_proto as e:
            p.close()
            if b"[IN-USE]" not in e.args[0] or time.monotonic() > end:
                raise
            time.sleep(0.05)


def race_deliveries_with_updates(daemon, deliver, total, sessions, number_of, user="alice"):
    """A bounded race: deliver(1) .. deliver(total - 1) run in a thread while `sessions` sessions each
    retrieve the first message, delete it and quit. Returns the numbers of the deleted messages
    (`number_of(lines)` reads one from a retrieved message's lines); fails if a delivery failed.
    When a session fails, no further delivery starts and the one under way is waited for: no delivery
    of this race outlives it (into the next test's mailbox, or after the fixture removed the account)."""
    errors = []
    stop = threading.Event()

    def deliverer():
        try:
            for n in range(1, total):
                if stop.is_set():
                    return
                deliver(n)
        except Exception as e:  # reported below
            errors.append(e)

    t = threading.Thread(target=deliverer)
    t.start()
    deleted = []
    try:
        for _ in range(sessions):
            p = login_retry_in_use(daemon, user)
            if p.stat()[0]:
                _, lines, _ = p.retr(1)
                deleted.append(number_of(lines))
                p.dele(1)
            p.quit()
    except BaseException:
        stop.set()
        raise
    finally:
        t.join(timeout=CLIENT_TIMEOUT * 2)
    assert not t.is_alive() and not errors, errors
    return deleted


def need_tool(name):
    path = shutil.which(name)
    if not path:
        raise RuntimeError("%s not installed: run `bash tests/install-deps.sh` as root" % name)
    return path


def kill_group(proc, sig=signal.SIGKILL):
    """Signal the process group of a child started with start_new_session=True (it and its own children,
    e.g. an MDA or pop3d -i under tcpserver)."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def run_client(cmd, env=None, timeout=CLIENT_TIMEOUT):
    """Run a mail client; on the hang guard's timeout kill it with everything it started and fail."""
    e = dict(os.environ)
    if env:
        e.update(env)
    proc = subprocess.Popen(cmd, env=e, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        raise AssertionError("client hung for %ss (killed): %s\nstdout: %r\nstderr: %r"
                             % (timeout, " ".join(cmd), out[-2000:], err[-2000:]))
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def delivered(outdir):
    """Messages written by deliver.py, in delivery order."""
    names = sorted(n for n in os.listdir(outdir) if n.endswith(".eml"))
    res = []
    for n in names:
        with open(os.path.join(outdir, n), "rb") as f:
            res.append(f.read())
    return res


def strip_first_header(msg, name):
    """Remove the first header line (with its folded continuation lines) if it is `name:`; return
    (header, rest). Fails if the message does not start with that header."""
    lines = split_lines(msg)
    assert lines and lines[0].lower().startswith(name.lower() + b":"), \
        "expected the client to prepend a %r header, got %r" % (name, lines[:1])
    i = 1
    while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
        i += 1
    return b"".join(lines[:i]), b"".join(lines[i:])


def assert_delivered(got, msgs, who, added_header=None):
    """Each message a client delivered (through an MDA, so with LF line ends) is the mbox message byte for
    byte, after removing the one header the client adds first (`added_header`, e.g. fetchmail's Received)."""
    assert len(got) == len(msgs), "%s delivered %d messages, expected %d" % (who, len(got), len(msgs))
    for i, (g, m) in enumerate(zip(got, msgs), 1):
        if added_header is not None:
            _, g = strip_first_header(g, added_header)
        assert g == to_lf(to_wire(m)), "message %d delivered by %s differs" % (i, who)


def mpop_rc(env, port, keep, delivery, tls="tls off\n", host="127.0.0.1"):
    """A private mpop configuration for alice on `port`; `tls` holds its TLS lines."""
    path = os.path.join(env.cli, "mpoprc")
    with open(path, "w") as f:
        f.write("defaults\n" + tls +
                "auth user\n"
                "received_header off\n"
                "timeout 10\n"
                "uidls_file %s\n"
                "\n"
                "account default\n"
                "host %s\n"
                "port %d\n"
                "user alice\n"
                "password %s\n"
                "delivery %s\n"
                "keep %s\n"
                "only_new on\n"
                % (os.path.join(env.cli, "mpop_uidls"), host, port, PASSWORDS["alice"], delivery,
                   "on" if keep else "off"))
    os.chmod(path, 0o600)
    return path


def mda_cmd(outdir):
    return "%s %s %s" % (sys.executable, DELIVER, outdir)


# ---------------------------------------------------------------------------
# TLS: a throw-away PKI made with the openssl CLI, and client helpers
# ---------------------------------------------------------------------------

def _openssl(*args):
    r = subprocess.run([need_tool("openssl")] + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=30)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (" ".join(args), r.stderr.decode(errors="replace")))


class Pki:
    """In `dirpath`: a test CA (ca.pem), a server certificate for DNS:localhost and IP:127.0.0.1 signed by it
    (server.pem, server.key), and on demand client certificates (subject CN) from that CA or from another,
    unrelated CA. EC P-256 keys (fast to make), PKCS#8 PEM."""

    def __init__(self, dirpath):
        self.dir = dirpath
        self.ca, self.ca_key = self._ca("ca", "pop3d interop test CA")
        self.server_cert, self.server_key = self._leaf(
            "server", "localhost", self.ca, self.ca_key,
            ["subjectAltName=DNS:localhost,IP:127.0.0.1", "extendedKeyUsage=serverAuth"])
        self._other = None
        self._clients = {}

    def _ca(self, name, cn):
        cert, key = os.path.join(self.dir, name + ".pem"), os.path.join(self.dir, name + ".key")
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", key, "-out", cert, "-days", "7", "-subj", "/CN=" + cn,
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        return cert, key

    def _leaf(self, name, cn, ca, ca_key, exts):
        cert, key = os.path.join(self.dir, name + ".pem"), os.path.join(self.dir, name + ".key")
        args = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", key, "-out", cert, "-days", "7", "-subj", "/CN=" + cn, "-CA", ca, "-CAkey", ca_key,
                "-addext", "basicConstraints=critical,CA:FALSE",
                "-addext", "keyUsage=critical,digitalSignature"]
        for e in exts:
            args += ["-addext", e]
        _openssl(*args)
        return cert, key

    def other_ca(self):
        """(cert, key) of a second CA, unrelated to the one that issued the server certificate."""
        if self._other is None:
            self._other = self._ca("other-ca", "some other CA")
        return self._other

    def client(self, cn, foreign=False):
        """(cert, key) PEM paths of a client certificate with subject CN `cn`, issued by the test CA or,
        when `foreign`, by another CA that the server does not trust."""
        k = (cn, foreign)
        if k not in self._clients:
            if foreign:
                ca, ca_key = self.other_ca()
            else:
                ca, ca_key = self.ca, self.ca_key
            self._clients[k] = self._leaf("client-%s-%s" % (cn, "foreign" if foreign else "ours"), cn, ca, ca_key,
                                          ["extendedKeyUsage=clientAuth"])
        return self._clients[k]

    def context(self, cert=None):
        """A Python ssl client context that trusts only the test CA and checks the host name."""
        import ssl
        ctx = ssl.create_default_context(cafile=self.ca)
        if cert is not None:
            ctx.load_cert_chain(*cert)
        return ctx


def pop_ssl(port, context):
    return poplib.POP3_SSL("127.0.0.1", port, timeout=IO_TIMEOUT, context=context)


def auth_sasl(p, mech, initial=None):
    """Start `AUTH mech [initial]` on a poplib connection; returns the reply line (a `+ ...` continuation or
    `+OK`; a `-ERR` raises poplib.error_proto)."""
    return p._shortcmd("AUTH %s %s" % (mech, initial) if initial is not None else "AUTH " + mech)


class TcpServer:
    """ucspi-tcp's tcpserver on 127.0.0.1 and a port it picks, running `pop3d -i ARGS -f CONF` per connection;
    pop3d inherits tcpserver's stderr, kept in a file (pop3d -i must never write there)."""

    def __init__(self, env, *pop3d_args):
        tcpserver = need_tool("tcpserver")
        self.errfile = os.path.join(env.cli, "tcpserver-%d.stderr" % len(env.cleanups))
        with open(self.errfile, "wb") as err:
            self.proc = subprocess.Popen([tcpserver, "-1", "-q", "-R", "-H", "-l", "localhost", "127.0.0.1", "0",
                                          POP3D_BIN, "-i"] + list(pop3d_args) + ["-f", env.conf],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                                         start_new_session=True)
        env.cleanups.append(self.stop)
        import select
        ready, _, _ = select.select([self.proc.stdout], [], [], START_TIMEOUT)
        if not ready:
            self.stop()
            raise RuntimeError("tcpserver did not report its port")
        self.port = int(self.proc.stdout.readline().strip())

    def stop(self):
        if self.proc.poll() is None:
            kill_group(self.proc, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                kill_group(self.proc)
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()

    def stderr(self):
        with open(self.errfile, "rb") as f:
            return f.read()


# ---------------------------------------------------------------------------
# Processes as /proc shows them (privilege separation tests)
# ---------------------------------------------------------------------------

def proc_status(path):
    """The ids in one /proc/PID/status (or /proc/PID/task/TID/status): a dict with pid, ppid, name, uids and
    gids (real, effective, saved, filesystem) and groups (supplementary); None if the process is gone."""
    try:
        with open(path) as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = dict(ln.split(":", 1) for ln in text.splitlines() if ":" in ln)
    return {"pid": int(fields["Pid"]), "ppid": int(fields["PPid"]), "name": fields["Name"].strip(),
            "uids": tuple(int(x) for x in fields["Uid"].split()),
            "gids": tuple(int(x) for x in fields["Gid"].split()),
            "groups": tuple(int(x) for x in fields.get("Groups", "").split())}


def process_tree(pid):
    """pid and all its descendant processes (not threads), each as proc_status gives it, parents first."""
    procs = [s for s in (proc_status("/proc/%s/status" % n) for n in os.listdir("/proc") if n.isdigit()) if s]
    children = {}
    for s in procs:
        children.setdefault(s["ppid"], []).append(s)
    top = proc_status("/proc/%d/status" % pid)
    out, todo = [], [top] if top else []
    while todo:
        s = todo.pop(0)
        out.append(s)
        todo.extend(sorted(children.get(s["pid"], []), key=lambda c: c["pid"]))
    return out


def process_threads(pid):
    """The threads of one process, each as proc_status gives it."""
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except FileNotFoundError:
        return []
    return [s for s in (proc_status("/proc/%d/task/%s/status" % (pid, t)) for t in tids) if s]


def poll_until(check, what, timeout=IO_TIMEOUT):
    """Call check() until it returns (True, detail) and return detail; fail with `what` and the last detail
    once `timeout` passes. For state another process reaches after it answered (e.g. its uids in /proc):
    the bound is a hang guard, the short pause between looks keeps the loop from spinning."""
    end = time.monotonic() + timeout
    while True:
        ok, detail = check()
        if ok:
            return detail
        if time.monotonic() > end:
            raise AssertionError("%s (after %ss): %s" % (what, timeout, detail))
        time.sleep(0.02)
