# Interop tests with more real clients, each in daemon and inetd (tcpserver) modes, plain and TLS: Perl's Net::POP3 (USER/PASS, APOP, AUTH LOGIN and PLAIN through Authen::SASL, STLS, implicit TLS), s-nail (APOP on and off), mailutils movemail (--uidl keep mode, opportunistic STLS) and curl (AUTH LOGIN, --sasl-authzid).
import os
import socket
import time

import pytest

import interop_lib as lib
from interop_lib import PASSWORDS

MODES = ["daemon", "daemon-tls", "inetd", "inetd-tls"]

NET_POP3 = r"""
use strict; use warnings; use Net::POP3; use Authen::SASL;
my ($port, $tls, $how, $user, $pass, $ca) = @ARGV;
my %ssl = (SSL_ca_file => $ca, SSL_verifycn_name => 'localhost');
my $p = Net::POP3->new('127.0.0.1', Port => $port, Timeout => 10, ($tls eq 'implicit' ? (SSL => 1, %ssl) : ()))
    or die "connect: $@\n";
if ($tls eq 'stls') { $p->starttls(%ssl) or die "starttls: " . $p->message . "\n"; }
my $ok;
if ($how eq 'user') { $ok = defined $p->login($user, $pass); }
elsif ($how eq 'apop') { $ok = defined $p->apop($user, $pass); }
else {
    my $sasl = Authen::SASL->new(mechanism => $how, callback => { user => $user, pass => $pass, authname => $user });
    $ok = $p->auth($sasl);
}
$ok or die "login ($how): " . $p->message . "\n";
binmode STDOUT;
my $list = $p->list; my $uidl = $p->uidl;
for my $i (sort { $a <=> $b } keys %$list) {
    my $lines = $p->get($i) or die "get $i\n";
    my $text = join('', @$lines);
    printf "MSG %d %d %s %d\n%s", $i, $list->{$i}, $uidl->{$i}, length($text), $text;
}
$p->quit or die "quit\n";
"""


class Server:
    """pop3d in one of MODES: `port` (plaintext, STLS where TLS is set up) and `tls_port` (implicit TLS, or None)."""

    def __init__(self, env, pki, mode):
        self.env, self.pki, self.mode = env, pki, mode
        self.tls = mode.endswith("-tls")
        extra = {}
        if mode.startswith("inetd"):
            self.logfile = os.path.join(env.srv, "pop3d.log")
            extra["log"] = self.logfile
        if self.tls:
            # Passwords only under TLS, as on a real network.
            env.use_tls(pki, plaintext_auth="no", **extra)
        else:
            env.write_conf(**extra)
            env.fix_perms()
        if mode == "daemon":
            self.daemon = env.start()
            self.port, self.tls_port = self.daemon.port, None
        elif mode == "daemon-tls":
            self.daemon = env.start(listen=("127.0.0.1:0", "127.0.0.1:0 tls"))
            self.port, self.tls_port = self.daemon.port, self.daemon.tls_port
        else:
            self.daemon = None
            self.port = lib.TcpServer(env).port
            self.tls_port = lib.TcpServer(env, "-s").port if self.tls else None

    def apop(self, on):
        """Restart with `apop` on or off (inetd reads the config per connection)."""
        self.env.conf_keys["apop"] = "yes" if on else "no"
        self.env.write_conf(**({"log": self.logfile} if self.daemon is None else {}))
        self.env.fix_perms()
        if self.daemon is not None:
            self.daemon.stop()
            self.daemon = self.env.start(listen=self.daemon_listen())
            self.port, self.tls_port = self.daemon.port, self.daemon.tls_port

    def daemon_listen(self):
        return ("127.0.0.1:0", "127.0.0.1:0 tls") if self.tls else ("127.0.0.1:0",)

    def log(self):
        if self.daemon is not None:
            return self.daemon.stderr()
        with open(self.logfile) as f:
            return f.read()

    def wait_log(self, text, times=1):
        """The log once `text` is in it `times` times: a session's line is written after its last reply,
        so it may come a moment after the client is done (the deadline is a hang guard)."""
        deadline = time.monotonic() + lib.IO_TIMEOUT
        while self.log().count(text) < times:
            assert time.monotonic() < deadline, "log never showed %r %d times:\n%s" % (text, times, self.log())
            time.sleep(0.02)
        return self.log()

    def check_tls(self, sessions=1):
        self.wait_log("tls=TLSv1_3" if self.tls else "tls=no", sessions)


@pytest.fixture(params=MODES)
def srv(request, env, pki):
    return Server(env, pki, request.param)


def simple_messages(n=3):
    return [lib.new_message(i, b"client test %d" % i) for i in range(1, n + 1)]


def net_pop3(srv, how, user="alice", tls=None):
    tls = tls or ("stls" if srv.tls else "none")
    port = srv.tls_port if tls == "implicit" else srv.port
    script = os.path.join(srv.env.cli, "netpop3.pl")
    with open(script, "w") as f:
        f.write(NET_POP3)
    r = lib.run_client(["perl", script, str(port), tls, how, user, PASSWORDS[user], srv.pki.ca])
    assert r.returncode == 0, (how, tls, r.stderr)
    out, msgs = r.stdout, []
    while out:
        head, out = out.split(b"\n", 1)
        _, i, size, uid, length = head.split(b" ")
        # Net::Cmd gives lines with LF on a plain socket and as sent (CRLF) over IO::Socket::SSL.
        msgs.append((int(size), uid, lib.to_lf(out[:int(length)])))
        out = out[int(length):]
    return msgs


@pytest.mark.parametrize("how", ["user", "LOGIN", "PLAIN"])
def test_net_pop3(srv, env, how):
    messages = lib.tricky_messages(huge=False)
    data = lib.build_mbox(messages)
    env.write_mbox("alice", data)
    got = net_pop3(srv, how)
    assert [(size, text) for size, _, text in got] == [(len(lib.to_wire(m)), lib.to_lf(lib.to_wire(m)))
                                                       for m in messages]
    assert len({uid for _, uid, _ in got}) == len(messages)
    lib.assert_mbox(env.read_mbox("alice"), data)
    if srv.tls_port:
        assert [t for _, _, t in net_pop3(srv, how, tls="implicit")] == [t for _, _, t in got]
    srv.check_tls()


def test_net_pop3_apop(srv, env):
    env.write_mbox("apopuser", lib.build_mbox(simple_messages(2)))
    srv.apop(True)
    got = net_pop3(srv, "apop", user="apopuser")
    assert [t for _, _, t in got] == [lib.to_lf(lib.to_wire(m)) for m in simple_messages(2)]


def left(env, user):
    return [e["message"] for e in lib.parse_mbox(env.read_mbox(user))]


def snail(srv, user, *commands, no_apop=False):
    """s-nail in batch mode on user's POP3 maildrop; STLS when the server has TLS."""
    home = os.path.join(srv.env.cli, "snail-home")
    os.makedirs(home, exist_ok=True)
    # s-nail matches the certificate by name only (not by IP address): connect as localhost.
    host = "%s:%d" % ("localhost" if srv.tls else "127.0.0.1", srv.port)
    cmd = [lib.need_tool("s-nail"), "-#", "-n", "-Sv15-compat", "-Sttycharset=utf-8",
           "-Spassword-%s@%s=%s" % (user, host, PASSWORDS[user])]
    if srv.tls:
        cmd += ["-Spop3-use-starttls", "-Stls-ca-file=" + srv.pki.ca, "-Stls-ca-no-defaults"]
    if no_apop:
        cmd += ["-Spop3-no-apop"]
    for c in commands:
        cmd += ["-Y", c]
    cmd += ["-f", "pop3://%s@%s" % (user, host)]
    return lib.run_client(cmd, env={"HOME": home, "MAILRC": "/dev/null"})


def test_s_nail_with_and_without_apop(srv, env):
    msgs = simple_messages(3)
    env.write_mbox("alice", lib.build_mbox(msgs))
    env.write_mbox("apopuser", lib.build_mbox(msgs))
    out = os.path.join(env.cli, "saved.mbox")
    # APOP off: no challenge in the greeting, s-nail logs in with USER/PASS.
    r = snail(srv, "alice", "copy 2 " + out, "delete 1", "quit")
    assert r.returncode == 0 and b"error" not in r.stderr.lower(), r.stderr
    with open(out, "rb") as f:
        assert b"A message delivered later (2)." in f.read()
    assert left(env, "alice") == msgs[1:], "message 1 deleted at QUIT"
    # APOP on: s-nail uses it by itself; a {PLAIN} account logs in...
    srv.apop(True)
    r = snail(srv, "apopuser", "delete 3", "quit")
    assert r.returncode == 0, r.stderr
    assert left(env, "apopuser") == msgs[:2]
    # ...a hashed account cannot (APOP needs the secret itself) unless pop3-no-apop is set (see pop3d.conf(5)).
    r = snail(srv, "alice", "delete 1", "quit")
    assert b"APOP authentication failed" in r.stderr and b"pop3-no-apop" in r.stderr, r.stderr
    assert left(env, "alice") == msgs[1:], "nothing deleted"
    r = snail(srv, "alice", "delete 1", "quit", no_apop=True)
    assert r.returncode == 0, r.stderr
    assert left(env, "alice") == msgs[2:]
    srv.check_tls()


def test_movemail_uidl_keep_mode(srv, env):
    msgs = simple_messages(2)
    env.write_mbox("alice", lib.build_mbox(msgs))
    dest = os.path.join(env.cli, "inbox")
    home = os.path.join(env.cli, "mu-home")
    os.makedirs(home, exist_ok=True)
    scheme, port = ("pops", srv.tls_port) if srv.tls else ("pop", srv.port)

    def movemail(url):
        r = lib.run_client([lib.need_tool("movemail"), "--no-config", "--keep-messages", "--uidl", url, dest],
                           env={"HOME": home})
        assert r.returncode == 0, (url, r.stderr)

    url = "%s://alice:%s@127.0.0.1:%d" % (scheme, PASSWORDS["alice"], port)
    movemail(url)
    with open(dest, "rb") as f:
        first = f.read()
    assert first.count(b"\nFrom ") + first.startswith(b"From ") == 2
    # Keep mode with UIDLs: a new message only is fetched next time; the maildrop keeps everything.
    env.append_mbox("alice", lib.mbox_entry(lib.new_message(3)))
    movemail(url)
    with open(dest, "rb") as f:
        second = f.read()
    for n in (1, 2, 3):
        assert second.count(b"A message delivered later (%d)." % n) == 1, second
    srv.wait_log("retr=1/", 1)
    assert len(left(env, "alice")) == 3
    if srv.tls:
        # Opportunistic STLS on the plaintext port: movemail upgrades by itself.
        movemail("pop://alice:%s@127.0.0.1:%d" % (PASSWORDS["alice"], srv.port))
        srv.wait_log("tls=TLSv1_3", 3)


def curl(srv, path, *extra, user="alice"):
    base = ("pop3s://127.0.0.1:%d" % srv.tls_port) if srv.tls else ("pop3://127.0.0.1:%d" % srv.port)
    cmd = [lib.need_tool("curl"), "-sS", "--max-time", str(lib.IO_TIMEOUT), "--cacert", srv.pki.ca,
           "-u", "%s:%s" % (user, PASSWORDS[user])] + list(extra) + [base + path]
    return lib.run_client(cmd)


def test_curl_auth_login_and_sasl_authzid(srv, env):
    msgs = simple_messages(2)
    env.write_mbox("alice", lib.build_mbox(msgs))
    r = curl(srv, "/2", "--login-options", "AUTH=LOGIN")
    assert r.returncode == 0 and r.stdout == lib.to_wire(msgs[1]), r.stderr
    r = curl(srv, "/1", "--login-options", "AUTH=PLAIN", "--sasl-authzid", "alice")
    assert r.returncode == 0 and r.stdout == lib.to_wire(msgs[0]), r.stderr
    # Another authorization identity is refused (no proxy logins).
    r = curl(srv, "/1", "--login-options", "AUTH=PLAIN", "--sasl-authzid", "bob")
    assert r.returncode == 67, (r.returncode, r.stderr)
    # An unknown mechanism is no failed login: curl's fallback to USER/PASS works.
    r = curl(srv, "/", "--login-options", "AUTH=*")
    assert r.returncode == 0, r.stderr
    srv.wait_log("PLAIN authorization identity differs")


def test_proxy_header_in_inetd_mode(env):
    # tcpserver in front of pop3d -i, as behind HAProxy on the same box: the PROXY header from the trusted
    # address gives the client's address to the session (its log line, its plaintext policy).
    env.write_mbox("alice", lib.build_mbox(simple_messages(1)))
    logfile = os.path.join(env.srv, "pop3d.log")
    env.write_conf(log=logfile, proxy_trusted="127.0.0.1")
    env.fix_perms()
    port = lib.TcpServer(env).port
    sock = socket.create_connection(("127.0.0.1", port), timeout=lib.IO_TIMEOUT)
    sock.sendall(b"PROXY TCP4 198.51.100.20 127.0.0.1 40000 110\r\nUSER alice\r\nQUIT\r\n")
    f = sock.makefile("rb")
    assert lib.read_reply_line(f).startswith(b"+OK")
    assert lib.read_reply_line(f).startswith(b"-ERR [AUTH] plaintext login is not allowed"), "not loopback"
    assert lib.read_reply_line(f).startswith(b"+OK")
    sock.close()
    deadline = time.monotonic() + lib.IO_TIMEOUT
    while "peer=198.51.100.20:40000 (via proxy 127.0.0.1:" not in open(logfile).read():
        assert time.monotonic() < deadline, open(logfile).read()
        time.sleep(0.02)
