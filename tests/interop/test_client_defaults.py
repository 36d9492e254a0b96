# Every client on its own defaults, as a user configures it from its manual (server, account, password, the CA to
# trust, nothing about TLS versions or SASL mechanisms), against accounts of every hash kind, over STLS, implicit TLS
# and plaintext loopback: mutt and neomutt (fetch-mail with pop_delete, and the mailbox opened as pop:// or
# pops://), mpop (auth on), c-client through php-imap, Perl Mail::POP3Client and Ruby net-pop. Each checks the bytes
# fetched and the deletions on the server. auth_mechanisms is left at `auto`: the users file mixes crypt(3),
# {PLAIN} and SCRAM accounts, and one more test has SCRAM accounts only.
import os
import subprocess

import pytest

import clients_lib as cl
import interop_lib as lib

# One account per kind of stored secret: $6$, $5$, $1$, {PLAIN}, {SCRAM-SHA-256} (pop3d -P).
USERS = ["alice", "bob", "carol", "apopuser", "erin"]
TRANSPORTS = ["stls", "tls", "plain"]
# What a client cannot do on its defaults, and why (the report's table says the same).
NOT_OFFERED = {
    ("perl", "stls"): "Mail::POP3Client has no STLS",
    ("ruby", "stls"): "net-pop has no STLS",
}
CLIENTS = ["mutt", "neomutt", "mpop", "php", "perl", "ruby"]


def messages():
    """An 8-bit body with a folded header, lines of dots, a `>From` line: no body line starts with `From `, so
    an mbox written by any client reads back without guessing its quoting."""
    tricky = lib.tricky_messages(huge=False)
    return [tricky[0], tricky[2], lib.new_message(9, b"last")]


def add_scram_user(env, name, password):
    r = subprocess.run([lib.POP3D_BIN, "-P", name], input=(password + "\n").encode(), capture_output=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    env.add_user_line(r.stdout.decode())
    lib.PASSWORDS.setdefault(name, password)


class Servers:
    """A TLS daemon as on a real network (plaintext_auth = no; STLS on `port`, implicit TLS on `tls_port`) and a
    plaintext one without TLS (loopback: plaintext allowed), sharing the spool and state_dir."""

    def __init__(self, env, pki):
        self.env, self.pki = env, pki
        env.use_tls(pki, plaintext_auth="no")
        self.tls = env.start(listen=("127.0.0.1:0", "127.0.0.1:0 tls"))
        self.plain = env.start("tls_cert=", "tls_key=", "plaintext_auth=loopback")

    def daemon(self, transport):
        return self.plain if transport == "plain" else self.tls

    def port(self, transport):
        return {"stls": self.tls.port, "tls": self.tls.tls_port, "plain": self.plain.port}[transport]

    def sessions(self, transport, user):
        return [ln for ln in self.daemon(transport).stderr().splitlines() if "session end: user=%s " % user in ln]


@pytest.fixture(scope="module")
def servers(pki):
    env = lib.Env()
    add_scram_user(env, "erin", "Erin-scram.256")
    try:
        yield Servers(env, pki)
    finally:
        env.close()


def home_for(env, name):
    home = os.path.join(env.cli, name)
    os.makedirs(home, exist_ok=True)
    return home


def fetch(servers, client, transport, user, home):
    """Runs `client`; returns (ok, the messages it fetched, detail for a failure)."""
    env, ca, port = servers.env, servers.pki.ca, servers.port(transport)
    if client in ("mutt", "neomutt"):
        scheme = "pops" if transport == "tls" else "pop"
        url = "%s://%s@127.0.0.1:%d" % (scheme, user, port)
        inbox = os.path.join(home, "inbox")
        open(inbox, "w").close()
        # Their default ssl_force_tls = yes refuses a server without TLS ("Encrypted connection unavailable",
        # test_mutt_refuses_plaintext_on_its_defaults); the manual's setting for a trusted network turns it off.
        extra = "set ssl_force_tls=no\n" if transport == "plain" else ""
        # The mailbox opened as pop(s)://: the first message deleted, purged at quit.
        keys = ["-d", "2", "-f", url, "-e", "push <delete-message><quit>"]
        code, screen = cl.mutt(client, home, ca, url, user, keys, inbox, extra)
        if code != 0 or env.read_mbox(user) != lib.build_mbox(messages()[1:]):
            return False, [], "open %s: exit %d, left %r, screen %r" % (url, code, env.read_mbox(user), screen[-800:])
        code, screen = cl.mutt(client, home, ca, url, user, ["-e", "push <fetch-mail><quit>"], inbox, extra)
        got = cl.mutt_messages(inbox)
        return code == 0 and len(got) == 2, [None] + got, "fetch-mail: exit %d, screen %r" % (code, screen[-800:])
    if client == "mpop":
        target = os.path.join(home, "mbox")
        open(target, "w").close()
        r = cl.mpop(home, ca, "127.0.0.1", port, user, transport, target)
        with open(target, "rb") as f:
            got = [lib.strip_first_header(e["message"], b"Received")[1] for e in lib.parse_mbox(f.read())]
        return r.returncode == 0, got, (r.stdout + r.stderr).decode(errors="replace")
    if client == "php":
        # c-client's own flags: /ssl is port 995; with none it uses STLS when offered. It checks the name
        # against the certificate's CN, not an IP address SAN, so it connects to localhost.
        flags = {"tls": "/ssl", "stls": "", "plain": ""}[transport]
        args = ["{localhost:%d/pop3%s}INBOX" % (port, flags), user, lib.PASSWORDS[user]]
    else:
        args = ["127.0.0.1", str(port), "1" if transport == "tls" else "0", user, lib.PASSWORDS[user], ca]
        args = args[:5] if client == "perl" else args
    r, got = cl.scripted(home, client, args, ca)
    return r.returncode == 0, got, r.stderr.decode(errors="replace")[-2500:]


CASES = [(c, t, u) for c in CLIENTS for t in TRANSPORTS for u in USERS if (c, t) not in NOT_OFFERED]


@pytest.mark.parametrize("client,transport,user", CASES)
def test_client_on_its_defaults(servers, client, transport, user):
    env = servers.env
    msgs = messages()
    env.write_mbox(user, lib.build_mbox(msgs))
    before = len(servers.sessions(transport, user))
    home = home_for(env, "%s-%s-%s" % (client, transport, user))
    ok, got, detail = fetch(servers, client, transport, user, home)
    if (client, transport) == ("php", "stls"):
        # c-client offers only TLS 1.0 after STLS: refused, nothing read or deleted, and the log says why.
        assert not ok, detail
        lib.assert_mbox(env.read_mbox(user), lib.build_mbox(msgs))
        lib.poll_until(lambda: ("the client offers at most TLS 1.0;" in servers.tls.stderr(), detail),
                       "the TLS 1.0 log line")
        return
    if (client, transport) == ("mpop", "plain") and user != "erin":
        # mpop sends no password without TLS: SCRAM is all it tries, which cannot succeed for an account
        # without SCRAM keys; the server says so, charges nothing, and nothing is read or deleted.
        assert not ok and "SCRAM cannot succeed for this user" in detail, detail
        lib.assert_mbox(env.read_mbox(user), lib.build_mbox(msgs))
        assert "login failed for \"%s\"" % user not in servers.plain.stderr()
        return
    assert ok, detail
    for i, (g, m) in enumerate(zip(got, msgs), 1):
        if g is not None:
            assert lib.to_lf(g) == lib.to_lf(lib.to_wire(m)), "%s: message %d differs" % (client, i)
    assert len(got) == len(msgs), (client, len(got))
    assert not env.read_mbox(user), "%s deleted what it fetched" % client
    lines = lib.poll_until(lambda: (len(servers.sessions(transport, user)) > before,
                                    servers.sessions(transport, user)), "the session's log line")
    tls = "tls=no" if transport == "plain" else "tls=TLSv1_"
    assert all(tls in ln for ln in lines[before:]), lines[before:]
    log = servers.daemon(transport).stderr()
    assert "login failed for \"%s\"" % user not in log, "no failed login on a client's defaults"


@pytest.mark.parametrize("client", ["mutt", "neomutt"])
def test_mutt_refuses_plaintext_on_its_defaults(servers, client):
    env = servers.env
    env.write_mbox("bob", lib.build_mbox(messages()))
    home = home_for(env, "%s-forced-tls" % client)
    inbox = os.path.join(home, "inbox")
    open(inbox, "w").close()
    url = "pop://bob@127.0.0.1:%d" % servers.plain.port
    logins = servers.plain.stderr().count("login bob:")
    code, screen = cl.mutt(client, home, servers.pki.ca, url, "bob", ["-f", url, "-e", "push <quit>"], inbox)
    assert b"Encrypted connection unavailable" in screen, screen
    assert cl.mutt_messages(inbox) == [] and servers.plain.stderr().count("login bob:") == logins
    lib.assert_mbox(env.read_mbox("bob"), lib.build_mbox(messages()))


@pytest.mark.parametrize("client", ["mutt", "neomutt", "mpop"])
@pytest.mark.parametrize("transport", ["stls", "tls", "plain"])
def test_scram_only_accounts(env, pki, client, transport):
    """Every account has SCRAM keys: auto advertises SCRAM-SHA-256 (never -PLUS); mutt and neomutt (GNU SASL) pick
    it everywhere, mpop where there is no TLS, and all get in."""
    with open(env.users_file, "w") as f:
        f.write("")
    add_scram_user(env, "sven", "Sven-scram.256")
    msgs = messages()
    env.write_mbox("sven", lib.build_mbox(msgs))
    servers = Servers(env, pki)
    p = lib.pop_ssl(servers.tls.tls_port, pki.context())
    assert p.capa()["SASL"] == ["SCRAM-SHA-256", "PLAIN", "LOGIN"]
    p.quit()
    home = home_for(env, client)
    ok, got, detail = fetch(servers, client, transport, "sven", home)
    assert ok, detail
    if client == "mpop":
        # mpop prefers PLAIN once TLS protects it, SCRAM without.
        assert ("--> AUTH PLAIN\r\n" if transport != "plain" else "--> AUTH SCRAM-SHA-256\r\n") in detail, detail
    else:
        # `-d 2` (set by fetch for this check) logs the protocol to ~/.muttdebug0 (neomutt: ~/.neomuttdebug0).
        with open(os.path.join(home, "." + client + "debug0"), "rb") as f:
            assert b"> AUTH SCRAM-SHA-256\r\n" in f.read()
    assert [lib.to_lf(g) for g in got if g is not None] == [lib.to_lf(lib.to_wire(m)) for m in msgs[len(msgs) - len(
        [g for g in got if g is not None]):]]
    assert not env.read_mbox("sven")
    log = servers.daemon(transport).stderr()
    assert "login failed" not in log and "SASL" not in log.replace("session end", ""), log
