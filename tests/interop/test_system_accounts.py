# System accounts (accounts = system: a test-made passwd/shadow pair) with privilege separation: poplib, curl and
# fetchmail log in as real unprivileged users in daemon and inetd mode, plain and TLS; refused shadow entries; the
# uids /proc shows before and after login; mailbox permissions in the daemon (and the Debian layout); CAPA and -t.
import base64
import collections
import concurrent.futures
import os
import poplib
import pwd
import re
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time

import pytest

import interop_lib as lib
import test_fetchmail as fetchmail_client

if not lib.IS_ROOT:
    pytest.skip("system accounts need root: the test creates users and pop3d must start as root",
                allow_module_level=True)

TODAY = int(time.time() // 86400)  # days since 1970, as shadow counts them
SHELL = "/usr/sbin/nologin"
RUN_AS = "nobody"  # `user` in daemon and inetd mode; the Debian layout uses `mail`

Account = collections.namedtuple("Account", "key name uid gid password")

# key -> (what the entry is, hash field, lastchg, max, expire); "{h}" is the account's own valid $6$ hash, so a
# refusal is the entry's doing, never a wrong password.
ENTRIES = {
    "a": ("$6$ SHA512-CRYPT", "6", TODAY - 1, 99999, TODAY + 30),
    "b": ("$5$ SHA256-CRYPT", "5", TODAY - 1, 99999, ""),
    "c": ("$1$ MD5-CRYPT", "1", TODAY - 1, "", ""),
    "l": ("locked with !", "!{h}", TODAY - 1, 99999, ""),
    "s": ("locked with *", "*{h}", TODAY - 1, 99999, ""),
    "x": ("account expired yesterday", "{h}", TODAY - 100, 99999, TODAY - 1),
    "t": ("account expiring today", "{h}", TODAY - 100, 99999, TODAY),
    "e": ("empty hash field", "", TODAY - 1, 99999, ""),
    "z": ("lastchg 0 (password must be changed)", "{h}", 0, 99999, ""),
    "o": ("password older than max days", "{h}", TODAY - 10, 5, ""),
}
GOOD = ("a", "b", "c")
REFUSED = ("l", "s", "x", "t", "e", "z", "o", "uid0", "unknown")
SUFFIX = "%d" % (os.getpid() % 100000)


def account_name(key):
    return "p3sys-%s-%s" % (key, SUFFIX)


def password_of(key):
    return "Sys-pw.%s!%s" % (key, SUFFIX)


def shadow_hash(key):
    scheme = ENTRIES[key][1] if key in GOOD else "6"
    h = lib.openssl_passwd(scheme, "salt%s" % key, password_of(key))
    return h if key in GOOD else ENTRIES[key][1].replace("{h}", h)


def useradd(name):
    # another engineer's useradd may hold the lock on /etc/passwd for a moment: a bounded retry
    for _ in range(50):
        r = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", SHELL, name],
                           capture_output=True, timeout=30)
        if r.returncode == 0 or b"lock" not in r.stderr:
            break
        time.sleep(0.1)
    assert r.returncode == 0, "useradd %s: %s" % (name, r.stderr.decode(errors="replace"))


@pytest.fixture(scope="module")
def accounts():
    """Real unprivileged users (their own group each), removed at the end even when a test failed; plus the
    pseudo-accounts uid0 (a passwd entry with uid 0, not a real user) and unknown (in neither file)."""
    made = []
    try:
        out = {}
        for key in ENTRIES:
            name = account_name(key)
            useradd(name)
            made.append(name)
            pw = pwd.getpwnam(name)
            out[key] = Account(key, name, pw.pw_uid, pw.pw_gid, password_of(key))
        out["uid0"] = Account("uid0", account_name("r"), 0, 0, password_of("r"))
        out["unknown"] = Account("unknown", account_name("u"), None, None, password_of("u"))
        yield out
    finally:
        left = [err for err in map(userdel, made) if err]
        assert not left, "users left behind: %s" % "; ".join(left)


def userdel(name):
    """Remove a test user (and its group); None, or why it could not be removed. userdel refuses while a
    process still runs as the user (a session being torn down) or /etc/passwd is locked: a bounded retry."""
    for _ in range(50):
        r = subprocess.run(["userdel", name], capture_output=True, timeout=30)
        if r.returncode == 0:
            return None
        if b"currently used" not in r.stderr and b"lock" not in r.stderr:
            break
        time.sleep(0.1)
    return "userdel %s: %s" % (name, r.stderr.decode(errors="replace").strip())


class SysEnv(lib.Env):
    """Like lib.Env (srv/ for the server, cli/ for clients), with accounts = system and the layout of `mode`:
    daemon: user nobody, spool and state_dir nobody's, mailboxes NAME:nogroup 0660;
    inetd:  user nobody, spool and state_dir root's (state_dir 0711), mailboxes NAME:NAME 0600, no dotlocks;
    debian: user mail, spool 2775 root:mail, mailboxes NAME:mail 0660, state_dir mail's 0700."""

    def __init__(self, accounts, mode):
        # not lib.Env.__init__, which writes a users file and gives all of srv/ to `nobody`
        self.mode, self.accounts = mode, accounts
        self.user = "mail" if mode == "debian" else RUN_AS
        self.root = tempfile.mkdtemp(prefix="pop3d-sysacct-")
        os.chmod(self.root, 0o711)
        self.srv = os.path.join(self.root, "srv")
        self.cli = os.path.join(self.root, "cli")
        self.spool = os.path.join(self.srv, "spool")
        self.state = os.path.join(self.srv, "state")
        self.home = os.path.join(self.root, "home")
        for d in (self.srv, self.spool, self.state, self.home):
            os.mkdir(d, 0o755)
        os.mkdir(self.cli, 0o700)
        self.passwd_file = os.path.join(self.srv, "passwd")
        self.shadow_file = os.path.join(self.srv, "shadow")
        self.conf = os.path.join(self.srv, "pop3d.conf")
        self.logfile = os.path.join(self.srv, "pop3d.log")
        self.daemons, self.cleanups = [], []
        self.mailboxes = {}  # path -> (uid, gid, mode)
        self.hashes = {}  # key -> the shadow hash field, instead of ENTRIES' (set before write_accounts)
        self.conf_keys = {"mailbox": os.path.join(self.spool, "%u")}
        if mode == "inetd":
            # the session runs as the mailbox owner, who cannot create dotlocks in a root-owned spool
            self.conf_keys.update({"mbox_locking": "fcntl, flock", "log": self.logfile})
        self.write_accounts()
        self.write_conf()
        self.fix_perms()

    def home_of(self, acct):
        return os.path.join(self.home, acct.name)

    def write_accounts(self):
        pw = ["root:x:0:0:root:/root:/bin/bash\n"]
        sh = ["root:*:%d:0:99999:7:::\n" % (TODAY - 1)]
        for key, acct in self.accounts.items():
            if key == "unknown":
                continue
            pw.append("%s:x:%d:%d:pop3d test %s:%s:%s\n" % (acct.name, acct.uid, acct.gid, key, self.home_of(acct),
                                                           SHELL))
            if key == "uid0":
                sh.append("%s:%s:%d:0:99999:7:::\n" % (acct.name, lib.openssl_passwd("6", "saltr", acct.password),
                                                       TODAY - 1))
            else:
                _, _, lastchg, maxdays, expire = ENTRIES[key]
                sh.append("%s:%s:%s:0:%s:7::%s:\n" % (acct.name, self.hashes.get(key) or shadow_hash(key), lastchg,
                                                      maxdays, expire))
        with open(self.passwd_file, "w") as f:
            f.writelines(pw)
        with open(self.shadow_file, "w") as f:
            f.writelines(sh)

    def write_conf(self, **extra):
        keys = {
            "listen": "127.0.0.1:0",
            "accounts": "system",
            "passwd_file": self.passwd_file,
            "shadow_file": self.shadow_file,
            "state_dir": self.state,
            "mbox_format": "mboxrd",
            "log": "stderr",
            "log_level": "info",
            "user": self.user,
        }
        keys.update(self.conf_keys)
        keys.update(extra)
        with open(self.conf, "w") as f:
            f.write("# pop3d config written by the system accounts tests\n")
            for k, v in keys.items():
                f.write("%s = %s\n" % (k, v))

    def fix_perms(self):
        u = pwd.getpwnam(self.user)
        for path, owner, mode in [(self.srv, (0, 0), 0o755), (self.passwd_file, (0, 0), 0o644),
                                  (self.shadow_file, (0, 0), 0o600), (self.conf, (0, 0), 0o644)]:
            os.chown(path, *owner)
            os.chmod(path, mode)
        if self.mode == "daemon":
            layout = {self.spool: ((u.pw_uid, u.pw_gid), 0o755), self.state: ((u.pw_uid, u.pw_gid), 0o700)}
        elif self.mode == "inetd":
            layout = {self.spool: ((0, 0), 0o755), self.state: ((0, 0), 0o711)}
        else:
            layout = {self.spool: ((0, u.pw_gid), 0o2775), self.state: ((u.pw_uid, u.pw_gid), 0o700)}
        for path, (owner, mode) in layout.items():
            os.chown(path, *owner)
            os.chmod(path, mode)  # after chown, which may clear set-id bits
        tls = os.path.join(self.srv, "tls")
        if os.path.isdir(tls):
            lib._chown_tree(tls, u.pw_uid)
        for path, (uid, gid, mode) in self.mailboxes.items():
            os.chown(path, uid, gid)
            os.chmod(path, mode)

    def default_owner(self, acct):
        """(uid, gid, mode) of a mailbox in this layout."""
        if self.mode == "inetd":
            return acct.uid, acct.gid, 0o600
        return acct.uid, pwd.getpwnam(self.user).pw_gid, 0o660

    def write_mbox(self, acct, data, owner=None, path=None):
        path = path or self.mbox_path(acct.name)
        with open(path, "wb") as f:
            f.write(data)
        self.mailboxes[path] = owner or self.default_owner(acct)
        self.fix_perms()
        return path

    def log(self):
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""


@pytest.fixture
def make_env(request, accounts):
    envs = []

    def make(mode):
        e = SysEnv(accounts, mode)
        envs.append(e)
        return e

    yield make
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for e in envs:
        for d in e.daemons:
            d.stop()
            if failed:
                print("---- pop3d %s\n---- stderr:\n%s" % (" ".join(d.cmd), d.stderr()))
        for fn in e.cleanups:
            fn()
        e.cleanups = []
        if failed and e.mode == "inetd":
            print("---- inetd log %s:\n%s" % (e.logfile, e.log()))
        e.close(keep=failed and bool(os.environ.get("INTEROP_KEEP")))


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def messages():
    return lib.tricky_messages(huge=False)  # fetchmail splits longer lines


def serve(env, mode, transport):
    """Start the server of `mode` (a daemon, or tcpserver running pop3d -i [-s]); returns (port, handle)."""
    if mode in ("daemon", "debian"):
        d = env.start(listen=("127.0.0.1:0", "127.0.0.1:0 tls") if "tls_cert" in env.conf_keys else ("127.0.0.1:0",))
        return (d.tls_port if transport == "implicit" else d.port), d
    ts = lib.TcpServer(env, "-s") if transport == "implicit" else lib.TcpServer(env)
    return ts.port, ts


def connect(port, transport, pki):
    """A poplib connection on `transport` (plain, stls: STLS done, implicit)."""
    if transport == "implicit":
        return lib.pop_ssl(port, pki.context())
    p = poplib.POP3("127.0.0.1", port, timeout=lib.IO_TIMEOUT)
    if transport == "stls":
        assert p.stls(pki.context()).startswith(b"+OK")
    return p


def assert_no_stderr(handle):
    if isinstance(handle, lib.TcpServer):
        handle.stop()
        assert handle.stderr() == b"", "pop3d -i wrote to stderr: %r" % handle.stderr()[:2000]


def assert_owner(path, uid, gid, mode):
    st = os.stat(path)
    got = (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))
    assert got == (uid, gid, mode), "%s: owner, group, mode %r, expected %r" % (path, got, (uid, gid, mode))


def raw_from(port, n):
    """A raw POP3 connection from loopback address 127.0.0.n: each failed login from its own address, so the
    penalty delays (per address, network_prefix_ipv4 = 32 by default) never add up across the cases."""
    s = socket.create_connection(("127.0.0.1", port), timeout=lib.IO_TIMEOUT, source_address=("127.0.0.%d" % n, 0))
    return lib.RawConn(s)


def try_login(port, n, name, password):
    c = raw_from(port, n)
    try:
        r = c.cmd("USER " + name)
        assert r.startswith(b"+OK"), "USER %s: %r (must look like any other name)" % (name, r)
        reply = c.cmd("PASS " + password)
        c.cmd("QUIT")
        return reply
    finally:
        c.close()


def caps_without_unusable(caps, where):
    sasl = [m.upper() for m in caps.get("SASL", [])]
    bad = [m for m in sasl if m.startswith("SCRAM") or m == "EXTERNAL"]
    assert not bad, "%s: CAPA offers %s, impossible with system accounts: %r" % (where, bad, caps)
    assert "PLAIN" in sasl and "LOGIN" in sasl, "%s: CAPA lacks SASL PLAIN LOGIN: %r" % (where, caps)
    assert "USER" in caps, "%s: CAPA lacks USER: %r" % (where, caps)


# ---------------------------------------------------------------------------
# 1. Real clients, both modes, plain and TLS
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["daemon", "inetd"])
@pytest.mark.parametrize("transport,key", [("plain", "a"), ("stls", "b"), ("implicit", "c")])
def test_poplib(make_env, accounts, pki, mode, transport, key):
    """Each hash scheme logs in over each transport in both modes; RETR is byte-exact (a 72,000-octet line
    included: in inetd mode it goes through the relay), DELE+QUIT removes exactly message 1 and the mailbox
    keeps its owner and mode."""
    env = make_env(mode)
    env.use_tls(pki)
    acct = accounts[key]
    msgs = lib.tricky_messages()
    path = env.write_mbox(acct, lib.build_mbox(msgs))
    port, handle = serve(env, mode, transport)
    p = connect(port, transport, pki)
    try:
        p.user(acct.name)
        r = p.pass_(acct.password)
        assert r.startswith(b"+OK"), r
        exp = [lib.to_wire(m) for m in msgs]
        assert p.stat() == (len(exp), sum(map(len, exp)))
        for i, w in enumerate(exp, 1):
            assert lib.poplib_raw_multi(p, "RETR %d" % i)[1] == w, "RETR %d (%s, %s)" % (i, mode, transport)
        assert p.dele(1).startswith(b"+OK")
        assert p.quit().startswith(b"+OK")
    finally:
        p.close()
    lib.assert_mbox(env.read_mbox(acct.name), b"".join(lib.mbox_entry(m) for m in msgs[1:]))
    assert_owner(path, *env.default_owner(acct))
    assert_no_stderr(handle)


def curl(pki, acct, url, *extra):
    r = lib.run_client([lib.need_tool("curl"), "-sS", "--max-time", str(lib.IO_TIMEOUT), "--cacert", pki.ca,
                        "-u", "%s:%s" % (acct.name, acct.password)] + list(extra) + [url])
    assert r.returncode == 0, "%s -> rc %d, stderr %r" % (" ".join(r.args), r.returncode, r.stderr)
    return r.stdout


@pytest.mark.parametrize("mode,transport", [("daemon", "plain"), ("daemon", "implicit"), ("inetd", "stls"),
                                            ("inetd", "implicit")])
def test_curl(make_env, accounts, pki, mode, transport):
    env = make_env(mode)
    env.use_tls(pki)
    acct = accounts["a"]
    msgs = messages()
    env.write_mbox(acct, lib.build_mbox(msgs))
    port, handle = serve(env, mode, transport)
    scheme = "pop3s" if transport == "implicit" else "pop3"
    extra = ["--ssl-reqd"] if transport == "stls" else []
    url = "%s://127.0.0.1:%d" % (scheme, port)
    assert curl(pki, acct, url + "/", *extra) == b"".join(b"%d %d\r\n" % (i, len(lib.to_wire(m)))
                                                          for i, m in enumerate(msgs, 1))
    for i in (1, 3, len(msgs)):
        assert curl(pki, acct, "%s/%d" % (url, i), *extra) == lib.to_wire(msgs[i - 1]), "curl message %d" % i
    assert curl(pki, acct, url + "/1", "-X", "DELE", "-I", *extra) == b""
    lib.assert_mbox(env.read_mbox(acct.name), b"".join(lib.mbox_entry(m) for m in msgs[1:]))
    assert_no_stderr(handle)


@pytest.mark.parametrize("mode,transport,key", [("daemon", "plain", "b"), ("daemon", "stls", "a"),
                                                ("inetd", "plain", "c"), ("inetd", "implicit", "b")])
def test_fetchmail(make_env, accounts, pki, mode, transport, key):
    """A keep+UIDL run fetches everything and leaves the mailbox alone; a fetch-and-delete run empties it."""
    env = make_env(mode)
    env.use_tls(pki)
    acct = accounts[key]
    msgs = messages()
    data = lib.build_mbox(msgs)
    env.write_mbox(acct, data)
    port, handle = serve(env, mode, transport)
    tls = {"plain": "sslproto '' no sslcertck",
           "stls": "sslproto 'tls1.2+' sslcertfile '%s' sslcertck sslcommonname localhost" % pki.ca,
           "implicit": "ssl sslcertfile '%s' sslcertck sslcommonname localhost" % pki.ca}[transport]

    def run(keep, out):
        r = fetchmail_client.fetchmail(env, port, keep, os.path.join(env.cli, out), tls=tls, user=acct.name,
                                       password=acct.password)
        log = r.stderr.decode(errors="replace") + r.stdout.decode(errors="replace")
        assert r.returncode == 0, log[-3000:]
        if transport != "plain":
            assert "SSL/TLS: using protocol TLSv1.3" in log, log[-3000:]
        return os.path.join(env.cli, out)

    lib.assert_delivered(lib.delivered(run(True, "run1")), msgs, "fetchmail", added_header=b"Received")
    lib.assert_mbox(env.read_mbox(acct.name), data)
    lib.assert_delivered(lib.delivered(run(False, "run2")), msgs, "fetchmail", added_header=b"Received")
    assert not env.read_mbox(acct.name), "mailbox not empty after fetchmail's delete pass"
    assert_no_stderr(handle)


@pytest.mark.parametrize("mode", ["daemon", "inetd"])
def test_home_directory_template(make_env, accounts, mode):
    """mailbox = %h/...: the home directory is the one in the (test-made) passwd file."""
    env = make_env(mode)
    acct = accounts["b"]
    os.mkdir(env.home_of(acct))
    os.chown(env.home_of(acct), acct.uid, acct.gid)
    env.conf_keys.update({"mailbox": "%h/mbox", "mbox_locking": "fcntl, flock"})
    env.write_conf()
    msgs = messages()[:3]
    env.write_mbox(acct, lib.build_mbox(msgs), path=os.path.join(env.home_of(acct), "mbox"))
    port, handle = serve(env, mode, "plain")
    p = connect(port, "plain", None)
    try:
        p.user(acct.name)
        assert p.pass_(acct.password).startswith(b"+OK")
        assert p.stat()[0] == len(msgs)
        assert lib.poplib_raw_multi(p, "RETR 2")[1] == lib.to_wire(msgs[1])
        assert p.quit().startswith(b"+OK")
    finally:
        p.close()
    assert_no_stderr(handle)


def test_inetd_maildir_in_home(make_env, accounts):
    """popa3d's layout: mailbox = maildir:%h/Maildir, every directory 0700 and the user's own; the session, run as
    the user, moves a retrieved message to cur/ and unlinks a deleted one; what it leaves is the user's."""
    env = make_env("inetd")
    acct = accounts["c"]
    md = os.path.join(env.home_of(acct), "Maildir")
    for d in (env.home_of(acct), md, os.path.join(md, "new"), os.path.join(md, "cur"), os.path.join(md, "tmp")):
        os.mkdir(d)
        os.chown(d, acct.uid, acct.gid)
        os.chmod(d, 0o700)
    msgs = messages()[:2]
    for i, m in enumerate(msgs, 1):
        path = os.path.join(md, "new", "100%d.M1P1.test" % i)
        with open(path, "wb") as f:
            f.write(m)
        os.chown(path, acct.uid, acct.gid)
        os.chmod(path, 0o600)
    env.conf_keys["mailbox"] = "maildir:%h/Maildir"
    env.write_conf()
    port, ts = serve(env, "inetd", "plain")
    p = connect(port, "plain", None)
    try:
        p.user(acct.name)
        assert p.pass_(acct.password).startswith(b"+OK maildrop has 2 messages")
        assert lib.poplib_raw_multi(p, "RETR 1")[1] == lib.to_wire(msgs[0])
        assert p.dele(2).startswith(b"+OK")
        assert p.quit().startswith(b"+OK")
    finally:
        p.close()
    assert os.listdir(os.path.join(md, "new")) == []
    cur = os.listdir(os.path.join(md, "cur"))
    assert len(cur) == 1 and cur[0].startswith("1001.M1P1.test"), cur
    for root, dirs, files in os.walk(env.home_of(acct)):
        for n in dirs + files:
            st = os.lstat(os.path.join(root, n))
            assert (st.st_uid, st.st_gid) == (acct.uid, acct.gid), "%s is %d:%d" % (n, st.st_uid, st.st_gid)
    assert_no_stderr(ts)


@pytest.mark.parametrize("mode", ["daemon", "inetd"])
def test_auth_login(make_env, accounts, mode):
    """SASL LOGIN (name and password in two steps) with a system account."""
    env = make_env(mode)
    acct = accounts["b"]
    env.write_mbox(acct, lib.build_mbox(messages()[:1]))
    port, handle = serve(env, mode, "plain")
    p = connect(port, "plain", None)
    try:
        assert lib.auth_sasl(p, "LOGIN").startswith(b"+ ")
        assert p._shortcmd(base64.b64encode(acct.name.encode()).decode()).startswith(b"+ ")
        assert p._shortcmd(base64.b64encode(acct.password.encode()).decode()).startswith(b"+OK")
        assert p.stat()[0] == 1
        assert p.quit().startswith(b"+OK")
    finally:
        p.close()
    assert_no_stderr(handle)


# ---------------------------------------------------------------------------
# 2. Refused entries: the same answer as a wrong password
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["daemon", "inetd"])
def test_refused_entries_answer_like_a_wrong_password(make_env, accounts, mode):
    """Locked (! and *), expired (yesterday and today), empty, lastchg 0, too old, uid 0 and unknown: each is
    given the right password (its hash's) and gets exactly the answer of a wrong password, -ERR [AUTH]. Every
    refused account has a mailbox, so a wrong acceptance would show as +OK. Each attempt comes from its own
    loopback address (no penalty delay adds up)."""
    env = make_env(mode)
    for key in GOOD + REFUSED:
        if key != "unknown":
            env.write_mbox(accounts[key], lib.build_mbox(messages()[:1]))
    port, handle = serve(env, mode, "plain")
    a = accounts["a"]
    wrong = try_login(port, 10, a.name, a.password + "-wrong")
    assert wrong.startswith(b"-ERR [AUTH]"), wrong
    # all at once (each failure is answered 0.5 s after its check began): each from its own address and for
    # its own account, so no penalty spaces them; fewer than the helper's burst of failures
    with concurrent.futures.ThreadPoolExecutor(len(REFUSED)) as pool:
        futures = {key: pool.submit(try_login, port, n, accounts[key].name, accounts[key].password)
                   for n, key in enumerate(REFUSED, 11)}
    got = {key: f.result() for key, f in futures.items()}
    bad = {"%s (%s)" % (k, ENTRIES[k][0] if k in ENTRIES else k): r for k, r in got.items() if r != wrong}
    assert not bad, "answered unlike a wrong password (%r):\n%s" % (
        wrong, "\n".join("  %s: %r" % kv for kv in bad.items()))
    # the good accounts of the same server do log in (the refusals above are not a broken server)
    for n, key in enumerate(GOOD, 30):
        r = try_login(port, n, accounts[key].name, accounts[key].password)
        assert r.startswith(b"+OK"), (key, r)
    assert_no_stderr(handle)
    # the log (which says why each was refused) holds no password and no hash
    log = handle.stderr() if mode == "daemon" else env.log()
    with open(env.shadow_file) as f:
        hashes = [ln.split(":")[1].lstrip("!*") for ln in f if len(ln.split(":")[1]) > 2]
    secrets = [accounts[k].password for k in GOOD + REFUSED] + [a.password + "-wrong"] + hashes
    assert not [x for x in secrets if x in log], "a password or hash in the log"


ODD_NAMES = ("p3:sys", ".hidden", "a/b")


@pytest.mark.parametrize("mode", ["daemon", "inetd"])
def test_odd_user_names_answer_like_a_wrong_password(make_env, accounts, mode):
    """A name no account can have (':' the passwd separator, a leading '.', '/') is just another unknown user:
    the answer of a wrong password, and the same connection can still log in afterwards. (The wrong password
    is b's: a failure on a's record would space a's logins.)"""
    env = make_env(mode)
    a, b = accounts["a"], accounts["b"]
    env.write_mbox(a, lib.build_mbox(messages()[:1]))
    port, handle = serve(env, mode, "plain")
    wrong = try_login(port, 60, b.name, b.password + "-wrong")
    assert wrong.startswith(b"-ERR [AUTH]"), wrong

    def attempt(n, name):
        c = raw_from(port, n)
        try:
            assert c.cmd("USER " + name).startswith(b"+OK"), name
            first = c.cmd("PASS " + a.password)
            assert c.cmd("USER " + a.name).startswith(b"+OK")
            then = c.cmd("PASS " + a.password)
            c.cmd("QUIT")
            return first, then
        finally:
            c.close()

    # one at a time: each good login takes the mailbox's session lock
    got = {name: attempt(n, name) for n, name in enumerate(ODD_NAMES, 61)}
    bad = {name: r for name, r in got.items() if r[0] != wrong or not r[1].startswith(b"+OK")}
    assert not bad, "want %r, then +OK for %s in the same connection; got:\n%s" % (
        wrong, a.name, "\n".join("  %r: %r, then %r" % (k, r[0], r[1]) for k, r in bad.items()))
    assert_no_stderr(handle)


def test_unknown_user_costs_what_a_wrong_password_does(make_env, accounts):
    """A PASS for a user in neither file takes as long as a wrong password for a real one. Every failed PASS
    is answered no sooner than 0.5 s after the check began, so the real accounts' hash is made slower than
    that ($6$ with 2,000,000 rounds, about 1 s, the first usable hash of the file): an unknown user answered
    without a hash of the same cost would come back in about half the time. The two paths are compared with
    each other, never with a fixed time: the fastest of 2 each (a busy machine only adds time), within a
    factor of 1.3; one after the other (2 cores). Each attempt from its own address and for its own account:
    no penalty delay. (Daemon mode: inetd's helper runs the same check.)"""
    env = make_env("daemon")
    slow = lib.openssl_passwd("6", "rounds=2000000$slowhash", accounts["a"].password)
    env.hashes.update({"a": slow, "b": slow})
    env.write_accounts()
    port, handle = serve(env, "daemon", "plain")

    def timed(n, name):
        c = raw_from(port, n)
        try:
            assert c.cmd("USER " + name).startswith(b"+OK")
            t0 = time.monotonic()
            r = c.cmd("PASS not-the-password")
            took = time.monotonic() - t0
            assert r.startswith(b"-ERR [AUTH]"), (name, r)
            return took
        finally:
            c.close()

    wrong, unknown = [], []
    for i, key in enumerate(("a", "b")):
        wrong.append(timed(40 + 2 * i, accounts[key].name))
        unknown.append(timed(41 + 2 * i, "p3sys-nobody%d-%s" % (i, SUFFIX)))
    w, u = min(wrong), min(unknown)
    assert w / 1.3 <= u <= 1.3 * w, "unknown user answered in %.3fs, a wrong password in %.3fs (all: %r vs %r)" % (
        u, w, unknown, wrong)


# ---------------------------------------------------------------------------
# 3. inetd: uids before and after login, from /proc
# ---------------------------------------------------------------------------

def describe(procs):
    return "; ".join("pid %d ppid %d %s uids %s gids %s groups %s" % (
        s["pid"], s["ppid"], s["name"], s["uids"], s["gids"], s["groups"]) for s in procs) or "(none)"


@pytest.mark.parametrize("transport", ["plain", "implicit"])
def test_inetd_runs_as_user_then_as_mailbox_owner(make_env, accounts, pki, transport):
    """Before login: the started pop3d (tcpserver's child) is root, its one child runs as `user`. After login:
    the started pid runs as the account (uid and gid), the child still as `user`, no root process, no
    supplementary group 0. state_dir/shared and state_dir/users/NAME are made with the right owners."""
    env = make_env("inetd")
    env.use_tls(pki)
    acct = accounts["a"]
    msgs = messages()
    env.write_mbox(acct, lib.build_mbox(msgs))
    nob = pwd.getpwnam(RUN_AS)
    user_ids = ((nob.pw_uid,) * 4, (nob.pw_gid,) * 4)
    port, ts = serve(env, "inetd", transport)
    p = connect(port, transport, pki)  # the greeting (and the handshake) came: the child serves the session
    try:
        def tree():
            t = lib.process_tree(ts.proc.pid)[1:]  # tcpserver itself is ours, not pop3d's
            top = [s for s in t if s["ppid"] == ts.proc.pid]
            return t, top

        def before():
            t, top = tree()
            if len(top) != 1:
                return False, "tcpserver's children: " + describe(t)
            pop = top[0]
            kids = [s for s in t if s["ppid"] == pop["pid"]]
            ok = (pop["uids"] == (0,) * 4 and len(kids) == 1 and (kids[0]["uids"], kids[0]["gids"]) == user_ids
                  and 0 not in kids[0]["groups"] and len(t) == 2)
            return ok, describe(t)

        lib.poll_until(before, "before login: want the started pop3d as root and one child as %s (uid %d), "
                               "nothing else" % (RUN_AS, nob.pw_uid), timeout=5)
        pid = tree()[1][0]["pid"]
        p.user(acct.name)
        assert p.pass_(acct.password).startswith(b"+OK")

        def after():
            t, top = tree()
            if len(top) != 1 or top[0]["pid"] != pid:
                return False, "tcpserver's children: " + describe(t)
            pop = top[0]
            kids = [s for s in t if s["ppid"] == pop["pid"]]
            ok = ((pop["uids"], pop["gids"]) == ((acct.uid,) * 4, (acct.gid,) * 4) and len(kids) == 1
                  and (kids[0]["uids"], kids[0]["gids"]) == user_ids
                  and not any(0 in s["uids"] or 0 in s["gids"] or 0 in s["groups"] for s in t))
            return ok, describe(t)

        lib.poll_until(after, "after login: want pid %d as %s (uid %d gid %d), its child as %s, no root"
                       % (pid, acct.name, acct.uid, acct.gid, RUN_AS), timeout=5)
        # the session works through the relay
        assert p.stat()[0] == len(msgs)
        assert lib.poplib_raw_multi(p, "RETR 4")[1] == lib.to_wire(msgs[3])
        assert p.quit().startswith(b"+OK")
    finally:
        p.close()
    # the session over, none of its processes stays (no root helper left waiting)
    lib.poll_until(lambda: (len(tree()[0]) == 0, describe(tree()[0])), "processes left after QUIT", timeout=5)
    assert os.stat(os.path.join(env.state, "shared")).st_uid == nob.pw_uid, "state_dir/shared not owned by " + RUN_AS
    assert os.stat(os.path.join(env.state, "users", acct.name)).st_uid == acct.uid, \
        "state_dir/users/%s not owned by the account" % acct.name
    assert_no_stderr(ts)


@pytest.mark.parametrize("client", ["idle", "busy"])
def test_inetd_client_that_never_logs_in_leaves_no_root_process(make_env, client):
    """timeout_login = 1: an idle client is cut after 1 s; a busy one (a CAPA every 0.5 s, so never idle) at the
    pre-login deadline (4 x 1 s, then 1 s to reap). Either way the connection closes and neither the root
    helper nor its child stays. (test_inetd_stuck_child_leaves_no_root_process: a child that does not end.)"""
    env = make_env("inetd")
    env.write_conf(timeout_login=1)
    port, ts = serve(env, "inetd", "plain")
    c = lib.RawConn(socket.create_connection(("127.0.0.1", port), timeout=lib.IO_TIMEOUT))
    try:
        assert c.greeting.startswith(b"+OK")
        assert len(lib.process_tree(ts.proc.pid)) == 3, describe(lib.process_tree(ts.proc.pid))
        if client == "busy":
            end = time.monotonic() + 15  # hang guard: the deadline is 5 s away
            try:
                while time.monotonic() < end:
                    if not c.cmd("CAPA").startswith(b"+OK"):
                        break  # the session's end, announced
                    lib.read_multiline(c.f)
                    time.sleep(0.5)  # the client's pace, below the 1 s idle timeout
            except (EOFError, ConnectionError):
                pass  # the session's end, unannounced
            assert time.monotonic() < end, "still served after 15 s"
        rest = c.f.read()  # up to EOF: the session ended
        assert b"+OK maildrop" not in rest
    finally:
        c.close()
    lib.poll_until(lambda: (len(lib.process_tree(ts.proc.pid)) == 1, describe(lib.process_tree(ts.proc.pid))),
                   "pop3d processes left after the session ended", timeout=5)
    assert_no_stderr(ts)


def test_inetd_stuck_child_leaves_no_root_process(make_env):
    """The unprivileged child neither logs in nor ends (stopped here, as a compromised or wedged one might be):
    the root helper ends anyway at the pre-login deadline (timeout_login = 1: 4 s, then 1 s to reap)."""
    env = make_env("inetd")
    env.write_conf(timeout_login=1)
    port, ts = serve(env, "inetd", "plain")
    c = lib.RawConn(socket.create_connection(("127.0.0.1", port), timeout=lib.IO_TIMEOUT))
    child = None
    try:
        t = lib.process_tree(ts.proc.pid)
        assert len(t) == 3 and t[1]["uids"][0] == 0, describe(t)
        helper, child = t[1]["pid"], t[2]["pid"]
        os.kill(child, signal.SIGSTOP)
        lib.poll_until(lambda: (lib.proc_status("/proc/%d/status" % helper) is None,
                                describe(lib.process_tree(ts.proc.pid))),
                       "the root helper still runs past the pre-login deadline", timeout=10)
    finally:
        if child is not None:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
        c.close()
    assert_no_stderr(ts)


@pytest.mark.parametrize("mode", ["daemon", "inetd"])
def test_pipelining_client_is_served_through_the_relay(make_env, accounts, mode):
    """CAPA says PIPELINING: a client may send 40,000 RETRs (320 KB, more than a socket buffer holds) while it
    reads the 12 MB of answers. In inetd mode they pass through the relay, which must not stop reading the
    session's output while the session waits for it to take more commands. (Plaintext only: a Python TLS
    socket must not be read and written from two threads at once.)"""
    env = make_env(mode)
    acct = accounts["a"]
    msg = messages()[0]
    env.write_mbox(acct, lib.build_mbox([msg]))
    port, handle = serve(env, mode, "plain")
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)  # the hang guard of every read below
    c = lib.RawConn(sock)
    n = 40000
    sender = None
    try:
        assert "PIPELINING" in c.multi("CAPA")[1].decode().split("\r\n")
        assert c.login(acct.name, acct.password).startswith(b"+OK")
        sender = threading.Thread(target=lambda: sock.sendall(b"RETR 1\r\n" * n + b"QUIT\r\n"), daemon=True)
        sender.start()
        wire = lib.to_wire(msg)
        got = 0
        try:
            for got in range(n):
                assert lib.read_reply_line(c.f).startswith(b"+OK")
                assert lib.read_multiline(c.f) == wire
            got = n
        except (socket.timeout, EOFError) as e:
            raise AssertionError("%d of %d pipelined RETRs answered, then: %r" % (got, n, e))
        assert c.f.readline().startswith(b"+OK"), "QUIT"
    finally:
        try:
            sock.shutdown(socket.SHUT_RDWR)  # wakes a sender still blocked in sendall
        except OSError:
            pass
        c.close()
        if sender is not None:
            sender.join(timeout=5)
    assert_no_stderr(handle)


@pytest.mark.parametrize("how", ["pipes", "tcp half-close"])
def test_inetd_commands_sent_before_eof_are_all_answered(make_env, accounts, how):
    """A client may send its whole dialogue at once and then close its sending side (`printf ... | pop3d -i`,
    or a TCP half-close): every command is answered and QUIT's UPDATE runs, as with a users file
    (test_inetd.py), although the login hands the session from the relaying child to the account's process."""
    env = make_env("inetd")
    acct = accounts["a"]
    msgs = messages()[:2]
    env.write_mbox(acct, lib.build_mbox(msgs))
    dialogue = b"USER %s\r\nPASS %s\r\nSTAT\r\nDELE 1\r\nQUIT\r\n" % (acct.name.encode(), acct.password.encode())
    if how == "pipes":
        r = subprocess.run([lib.POP3D_BIN, "-i", "-f", env.conf], input=dialogue, capture_output=True,
                           timeout=lib.CLIENT_TIMEOUT)
        assert r.stderr == b"", r.stderr
        out = r.stdout
    else:
        ts = lib.TcpServer(env)
        s = socket.create_connection(("127.0.0.1", ts.port), timeout=lib.IO_TIMEOUT)
        try:
            s.sendall(dialogue)
            s.shutdown(socket.SHUT_WR)
            with s.makefile("rb") as f:
                out = f.read()
        finally:
            s.close()
        assert_no_stderr(ts)
    replies = lib.split_lines(out)
    assert [r[:3] for r in replies] == [b"+OK"] * 6, "want the greeting and 5 answers, got %r" % replies
    lib.assert_mbox(env.read_mbox(acct.name), lib.mbox_entry(msgs[1]))


# ---------------------------------------------------------------------------
# 4. daemon: the helper is the only root process; mailbox permissions; the Debian layout
# ---------------------------------------------------------------------------

def test_daemon_helper_is_the_only_root_process(make_env, accounts):
    """With two sessions logged in and one before login: the daemon and all its threads run as `user`, exactly
    one process of its tree is root (the helper, a child of the daemon)."""
    env = make_env("daemon")
    for key in ("a", "c"):
        env.write_mbox(accounts[key], lib.build_mbox(messages()[:2]))
    d = env.start()
    nob = pwd.getpwnam(RUN_AS)
    conns = []
    try:
        for key in ("a", "c"):
            p = d.pop()
            conns.append(p)
            p.user(accounts[key].name)
            assert p.pass_(accounts[key].password).startswith(b"+OK")
        conns.append(d.pop())  # greeted, not logged in

        def check():
            t = lib.process_tree(d.proc.pid)
            threads = lib.process_threads(d.proc.pid)
            root = [s for s in t if 0 in s["uids"]]
            daemon_ok = all((s["uids"], s["gids"]) == ((nob.pw_uid,) * 4, (nob.pw_gid,) * 4)
                            and 0 not in s["groups"] for s in threads)
            ok = (daemon_ok and threads and len(root) == 1 and root[0]["ppid"] == d.proc.pid
                  and root[0]["uids"] == (0,) * 4)
            return ok, "processes: %s\n threads of %d: %s" % (describe(t), d.proc.pid, describe(threads))

        lib.poll_until(check, "want the daemon's threads as %s and exactly one root process, its child"
                       % RUN_AS, timeout=5)
        helper = [s for s in lib.process_tree(d.proc.pid) if 0 in s["uids"]][0]["pid"]
        for p in conns[:2]:
            assert p.stat()[0] == 2
            assert p.quit().startswith(b"+OK")
    finally:
        for p in conns:
            p.close()
    # the helper does not outlive the daemon (SIGTERM, as Daemon.stop sends)
    d.stop()
    lib.poll_until(lambda: (lib.proc_status("/proc/%d/status" % helper) is None, "pid %d still there" % helper),
                   "the root helper outlived the daemon", timeout=5)


def test_one_busy_address_keeps_the_daemons_threads_bounded(make_env, accounts):
    """64 clients from one address loop login + STAT + QUIT (a fetchmail host polling many accounts) against
    a daemon with small limits (16 sessions, 8 before login, 4 per network): the daemon's threads stay within
    max_sessions + 32 + its own few at every sample, it never aborts, and it serves a login afterwards. (Before:
    sessions closed to make room kept their threads while they waited for the credentials helper, some 2,000
    new threads a second, until thread creation failed and the daemon aborted.)"""
    env = make_env("daemon")
    for key in GOOD:
        env.write_mbox(accounts[key], lib.build_mbox(messages()[:1]))
    d = env.start("max_sessions=16", "max_prelogin=8", "max_prelogin_per_network=4")
    peak, done = [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], len(lib.process_threads(d.proc.pid)))
            done.wait(0.005)  # a sampling rate, not a synchronisation

    def client(i):
        acct = accounts[GOOD[i % len(GOOD)]]
        for _ in range(5):
            try:
                s = socket.create_connection(("127.0.0.1", d.port), timeout=lib.IO_TIMEOUT,
                                             source_address=("127.0.6.6", 0))
                s.sendall(b"USER %s\r\nPASS %s\r\nSTAT\r\nQUIT\r\n" % (acct.name.encode(), acct.password.encode()))
                while s.recv(4096):
                    pass
                s.close()
            except OSError:
                pass  # refused or busy: this test counts threads, not logins

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    workers = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(64)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(lib.IO_TIMEOUT * 5)
    done.set()
    sampler.join(lib.IO_TIMEOUT)
    print("peak %d daemon threads" % peak[0])
    assert d.proc.poll() is None, "the daemon ended:\n%s" % d.stderr()[-3000:]
    assert peak[0] <= 16 + 32 + 8, peak[0]
    p = d.pop()
    p.user(accounts["a"].name)
    assert p.pass_(accounts["a"].password).startswith(b"+OK")
    p.quit()


def test_daemon_sees_shadow_changes_without_restart(make_env, accounts):
    """passwd(1) or usermod -L change /etc/shadow under a running daemon: the next login is checked against
    the file as it is now (a new password works, the old one and a locked account do not)."""
    env = make_env("daemon")
    acct = accounts["a"]
    env.write_mbox(acct, lib.build_mbox(messages()[:1]))
    d = env.start()
    assert try_login(d.port, 50, acct.name, acct.password).startswith(b"+OK")
    env.hashes["a"] = lib.openssl_passwd("6", "newsalt", acct.password + "-new")
    env.write_accounts()
    assert try_login(d.port, 51, acct.name, acct.password).startswith(b"-ERR [AUTH]"), "old password still taken"
    assert try_login(d.port, 52, acct.name, acct.password + "-new").startswith(b"+OK"), "new password refused"
    env.hashes["a"] = "!" + env.hashes["a"]
    env.write_accounts()
    assert try_login(d.port, 53, acct.name, acct.password + "-new").startswith(b"-ERR [AUTH]"), "locked, yet in"


def wait_log(d, needle):
    return lib.poll_until(lambda: (needle in d.stderr(), d.stderr()[-3000:]),
                          "no log line naming %s" % needle)


@pytest.mark.parametrize("case", ["mode 0600 NAME:NAME", "owned by another account"])
def test_daemon_refuses_mailbox_it_cannot_use(make_env, accounts, case):
    env = make_env("daemon")
    acct, other = accounts["a"], accounts["b"]
    nob = pwd.getpwnam(RUN_AS)
    data = lib.build_mbox(messages()[:2])
    if case == "mode 0600 NAME:NAME":
        path = env.write_mbox(acct, data, owner=(acct.uid, acct.gid, 0o600))
    else:
        path = env.write_mbox(acct, data, owner=(other.uid, nob.pw_gid, 0o660))
    d = env.start()
    p = d.pop()
    try:
        p.user(acct.name)
        with pytest.raises(poplib.error_proto) as e:
            p.pass_(acct.password)
        assert e.value.args[0].startswith(b"-ERR [SYS/PERM]"), e.value.args
    finally:
        p.close()
    wait_log(d, path)
    lines = [ln for ln in d.stderr().splitlines() if path in ln]
    if case == "mode 0600 NAME:NAME":
        # the line says what is needed: `user` (nobody) must read and write the mailbox
        assert any(RUN_AS in ln and re.search(r"read.*writ", ln) for ln in lines), lines
    else:
        # ... and whose mailbox it is instead of the account's
        assert any(str(other.uid) in ln and str(acct.uid) in ln for ln in lines), lines
    assert env.read_mbox(acct.name) == data


def test_debian_layout(make_env, accounts):
    """/var/mail as Debian has it: spool 2775 root:mail, mailbox 0660 NAME:mail, user = mail, dotlocks made by
    mail in the spool: RETR, DELE, QUIT removes the message; owner and mode stay."""
    env = make_env("debian")
    acct = accounts["c"]
    mail = pwd.getpwnam("mail")
    msgs = messages()
    path = env.write_mbox(acct, lib.build_mbox(msgs))
    assert_owner(path, acct.uid, mail.pw_gid, 0o660)
    assert_owner(env.spool, 0, mail.pw_gid, 0o2775)
    d = env.start()
    p = d.pop()
    try:
        p.user(acct.name)
        assert p.pass_(acct.password).startswith(b"+OK")
        assert lib.poplib_raw_multi(p, "RETR 2")[1] == lib.to_wire(msgs[1])
        assert p.dele(2).startswith(b"+OK")
        assert p.quit().startswith(b"+OK")
    finally:
        p.close()
    lib.assert_mbox(env.read_mbox(acct.name), b"".join(lib.mbox_entry(m) for m in msgs[:1] + msgs[2:]))
    assert_owner(path, acct.uid, mail.pw_gid, 0o660)
    assert not os.path.exists(path + ".lock"), "dotlock left behind"


# ---------------------------------------------------------------------------
# 5. CAPA and the configuration check
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["daemon", "inetd"])
def test_capa_offers_only_what_can_succeed(make_env, accounts, pki, mode):
    """No SCRAM-SHA-256(-PLUS), no EXTERNAL (even with client certificates configured), no APOP timestamp:
    plaintext, after STLS and on implicit TLS; AUTH PLAIN logs in."""
    env = make_env(mode)
    env.use_tls(pki, client_ca=True)
    acct = accounts["b"]
    env.write_mbox(acct, lib.build_mbox(messages()[:2]))
    port, handle = serve(env, mode, "plain")
    p = connect(port, "plain", pki)
    try:
        assert not re.search(rb"<[^>]*@[^>]*>", p.getwelcome()), "APOP timestamp in %r" % p.getwelcome()
        caps_without_unusable(p.capa(), "plaintext (loopback)")
        assert p.stls(pki.context()).startswith(b"+OK")
        caps_without_unusable(p.capa(), "after STLS")
        with pytest.raises(poplib.error_proto):
            lib.auth_sasl(p, "SCRAM-SHA-256", base64.b64encode(b"n,,n=%s,r=abcdefgh" % acct.name.encode()).decode())
        cred = base64.b64encode(b"\0%s\0%s" % (acct.name.encode(), acct.password.encode())).decode()
        assert lib.auth_sasl(p, "PLAIN", cred).startswith(b"+OK"), "AUTH PLAIN"
        assert p.stat()[0] == 2
        assert p.quit().startswith(b"+OK")
    finally:
        p.close()
    if mode == "daemon":
        port = handle.tls_port
    else:
        assert_no_stderr(handle)
        port, handle = serve(env, mode, "implicit")
    p = lib.pop_ssl(port, pki.context(pki.client(acct.name)))
    try:
        assert not re.search(rb"<[^>]*@[^>]*>", p.getwelcome()), "APOP timestamp in %r" % p.getwelcome()
        caps_without_unusable(p.capa(), "implicit TLS with a client certificate")
        with pytest.raises(poplib.error_proto):
            lib.auth_sasl(p, "EXTERNAL", "=")
        p.quit()
    finally:
        p.close()
    assert_no_stderr(handle)


def inetd_session(env, lines):
    """pop3d -i over pipes: the greeting, then each of `lines` sent once the previous one was answered, then
    EOF. Returns (exit status, the reply lines; an empty list when no greeting came)."""
    proc = subprocess.Popen([lib.POP3D_BIN, "-i", "-f", env.conf], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    timer = threading.Timer(lib.CLIENT_TIMEOUT, proc.kill)  # hang guard
    timer.start()
    replies = []
    try:
        for line in [None] + list(lines):
            if line is not None:
                proc.stdin.write(line.encode() + b"\r\n")
                proc.stdin.flush()
            r = proc.stdout.readline()
            if not r:
                break
            replies.append(r)
    except BrokenPipeError:
        pass
    finally:
        try:
            proc.stdin.close()
        except BrokenPipeError:
            pass
        replies += lib.split_lines(proc.stdout.read())
        err = proc.stderr.read()
        rc = proc.wait()
        timer.cancel()
    assert rc != -9, "pop3d -i hung (killed by the hang guard)"
    assert err == b"", "pop3d -i wrote to stderr: %r" % err[:2000]
    return rc, replies


@pytest.mark.parametrize("owner,mode,ok", [("root", "0711", True), ("root", "0755", True), ("nobody", "0700", False),
                                           ("root", "0775", False), ("root", "0733", False)])
def test_inetd_state_dir_must_be_roots(make_env, accounts, owner, mode, ok):
    """In inetd mode with system accounts the sessions of every user keep their state below state_dir, made by
    root: root's and writable by nobody else, or pop3d -i serves nothing and logs why. (A world-writable one is
    refused by the older start-up check, before the log is open: silently, as with a users file.)"""
    env = make_env("inetd")
    acct = accounts["a"]
    env.write_mbox(acct, lib.build_mbox(messages()[:1]))
    os.chown(env.state, *((0, 0) if owner == "root" else (pwd.getpwnam(owner).pw_uid, pwd.getpwnam(owner).pw_gid)))
    os.chmod(env.state, int(mode, 8))
    rc, replies = inetd_session(env, ["USER " + acct.name, "PASS " + acct.password, "STAT", "QUIT"])
    if ok:
        assert rc == 0 and [r[:3] for r in replies] == [b"+OK"] * 5, (rc, replies)
    else:
        assert rc != 0 and not any(r.startswith(b"+OK maildrop") for r in replies), (rc, replies)
        if int(mode, 8) & 0o002 == 0:
            assert env.state in env.log(), "no log line naming state_dir: %r" % env.log()[-2000:]


@pytest.mark.parametrize("owner,mode,ok", [("root", "0711", True), ("nobody", "0700", False), ("root", "0775", False),
                                           ("root", "0733", False)])
def test_config_check_inetd_state_dir(make_env, owner, mode, ok):
    """pop3d -t -i refuses what pop3d -i would refuse at run time (test_inetd_state_dir_must_be_roots)."""
    env = make_env("inetd")
    os.chown(env.state, *((0, 0) if owner == "root" else (pwd.getpwnam(owner).pw_uid, pwd.getpwnam(owner).pw_gid)))
    os.chmod(env.state, int(mode, 8))
    r = subprocess.run([lib.POP3D_BIN, "-t", "-i", "-f", env.conf], capture_output=True, timeout=30)
    assert (r.returncode == 0) == ok, "state_dir %s %s: pop3d -t -i exit %d: %r" % (
        owner, mode, r.returncode, r.stdout + r.stderr)


@pytest.mark.parametrize("mode,args", [("daemon", []), ("inetd", ["-i"])])
def test_config_check_needs_user_when_root(make_env, mode, args):
    """Started as root with system accounts, `user` (the account before login) is required."""
    env = make_env(mode)
    r = subprocess.run([lib.POP3D_BIN, "-t"] + args + ["-f", env.conf], capture_output=True, timeout=30)
    assert r.returncode == 0, (r.stdout, r.stderr)
    env.write_conf(user="")
    r = subprocess.run([lib.POP3D_BIN, "-t"] + args + ["-f", env.conf], capture_output=True, timeout=30)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)


def test_config_check_refuses_apop_with_system_accounts(make_env):
    env = make_env("daemon")
    r = subprocess.run([lib.POP3D_BIN, "-t", "-f", env.conf], capture_output=True, timeout=30)
    assert r.returncode == 0, "the same configuration without apop must pass -t: %r" % r.stderr
    env.write_conf(apop="yes")
    r = subprocess.run([lib.POP3D_BIN, "-t", "-f", env.conf], capture_output=True, timeout=30)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert b"apop" in (r.stdout + r.stderr).lower(), (r.stdout, r.stderr)
