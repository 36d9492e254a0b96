# Interop tests with Python's poplib (plus exact-octet checks on the same connection): every RFC 1939/2449 command.
import hashlib
import poplib
import re

import pytest

import interop_lib as lib
from interop_lib import PASSWORDS


def wires(messages):
    return [lib.to_wire(m) for m in messages]


def caps_of(p):
    return {k.upper(): v for k, v in p.capa().items()}


def test_greeting_and_capa_before_and_after_login(server):
    p = server.pop()
    assert p.getwelcome().startswith(b"+OK")
    before = caps_of(p)
    for c in ("USER", "TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"):
        assert c in before, "CAPA before login lacks %s: %r" % (c, before)
    assert "IMPLEMENTATION" not in before, "IMPLEMENTATION must only be shown after login: %r" % before
    assert "STLS" not in before, "STLS advertised but TLS is not configured: %r" % before
    p.user("alice")
    p.pass_(PASSWORDS["alice"])
    after = caps_of(p)
    # RFC 2449 s.5: capabilities of the AUTHORIZATION state MUST be announced in both states
    for c in ("USER", "TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"):
        assert c in after, "CAPA after login lacks %s: %r" % (c, after)
    assert p.quit().startswith(b"+OK")


@pytest.mark.parametrize("user", ["alice", "bob", "carol"])
def test_user_pass_all_hash_schemes(env, user, messages):
    env.write_mbox(user, lib.build_mbox(messages[:2]))
    d = env.start()
    p = d.pop()
    assert p.user(user).startswith(b"+OK")
    assert p.pass_(PASSWORDS[user]).startswith(b"+OK")
    assert p.stat() == (2, sum(len(w) for w in wires(messages[:2])))
    p.quit()


def test_stat_list_sizes_match_retr(server, messages):
    exp = wires(messages)
    p = server.login()
    assert p.stat() == (len(exp), sum(len(w) for w in exp))
    resp, lines, _ = p.list()
    assert resp.startswith(b"+OK")
    assert lines == [b"%d %d" % (i, len(w)) for i, w in enumerate(exp, 1)]
    for i, w in enumerate(exp, 1):
        r = p.list(i)
        assert r.startswith(b"+OK"), r
        assert r.split()[1:3] == [b"%d" % i, b"%d" % len(w)], r
        # the size LIST announced is the exact length of what RETR sends (CRLF line ends, unstuffed)
        _, payload = lib.poplib_raw_multi(p, "RETR %d" % i)
        assert len(payload) == int(r.split()[2]), "LIST %d says %s, RETR sent %d octets" % (i, r, len(payload))
    p.quit()


def test_retr_exact_octets(server, messages):
    exp = wires(messages)
    p = server.login()
    for i, w in enumerate(exp, 1):
        resp, payload = lib.poplib_raw_multi(p, "RETR %d" % i)
        assert payload == w, "RETR %d differs from the message on disk" % i
    # poplib's own view agrees too (lines without terminators)
    for i, w in enumerate(exp, 1):
        resp, lines, octets = p.retr(i)
        assert resp.startswith(b"+OK")
        assert lines == [ln[:-2] for ln in lib.split_lines(w)], "poplib RETR %d" % i
    p.quit()


def test_top(server, messages):
    exp = wires(messages)
    p = server.login()
    for i, w in enumerate(exp, 1):
        for n in (0, 1, 2, 5, 100000):
            _, payload = lib.poplib_raw_multi(p, "TOP %d %d" % (i, n))
            assert payload == lib.top_expected(w, n), "TOP %d %d" % (i, n)
    resp, lines, _ = p.top(3, 2)  # poplib's TOP on the dot-line message
    assert lines[-3:] == [b"", b".", b".."]
    p.quit()


UIDL_RE = re.compile(rb"^[\x21-\x7e]{1,70}$")


def uidls(p):
    resp, lines, _ = p.uidl()
    assert resp.startswith(b"+OK")
    out = {}
    for ln in lines:
        n, u = ln.split(b" ")
        out[int(n)] = u
    return out


def test_uidl(server, messages):
    p = server.login()
    u = uidls(p)
    assert sorted(u) == list(range(1, len(messages) + 1))
    for n, uid in u.items():
        assert UIDL_RE.match(uid), "bad UIDL %r" % uid
        r = p.uidl(n)
        assert r.startswith(b"+OK") and r.split()[1:] == [b"%d" % n, uid], r
    assert len(set(u.values())) == len(u), "UIDLs not unique (byte-identical messages 7 and 8?): %r" % u
    p.quit()
    p = server.login()
    assert uidls(p) == u, "UIDLs changed between sessions"
    p.quit()


def test_dele_rset_noop_in_session(server, env, alice_mbox, messages):
    exp = wires(messages)
    p = server.login()
    assert p.noop().startswith(b"+OK")
    assert p.dele(2).startswith(b"+OK")
    assert p.stat() == (len(exp) - 1, sum(len(w) for i, w in enumerate(exp, 1) if i != 2))
    for cmd in ("LIST 2", "RETR 2", "TOP 2 0", "UIDL 2", "DELE 2"):
        with pytest.raises(poplib.error_proto) as ei:
            p._shortcmd(cmd)
        assert ei.value.args[0].startswith(b"-ERR"), cmd
    resp, lines, _ = p.list()
    assert b"2 %d" % len(exp[1]) not in lines and len(lines) == len(exp) - 1
    assert p.rset().startswith(b"+OK")
    assert p.stat() == (len(exp), sum(len(w) for w in exp))
    assert p.list(2).startswith(b"+OK")
    assert p.quit().startswith(b"+OK")
    lib.assert_mbox(env.read_mbox("alice"), alice_mbox)


def test_dele_quit_removes_only_those(server, env, messages):
    exp = wires(messages)
    p = server.login()
    before = uidls(p)
    gone = {2, 5, 8, 9}  # includes one of the twins and the last message (no final newline)
    for n in sorted(gone):
        assert p.dele(n).startswith(b"+OK")
    assert p.quit().startswith(b"+OK")
    kept = [i for i in range(1, len(messages) + 1) if i not in gone]
    expected_file = b"".join(lib.mbox_entry(messages[i - 1]) for i in kept)
    got = env.read_mbox("alice")
    assert got is not None, "mbox file vanished"
    assert [e["message"] for e in lib.parse_mbox(got)] == [messages[i - 1] for i in kept]
    lib.assert_mbox(got, expected_file)  # remaining messages byte-identical on disk
    # next session: the survivors, renumbered, with the same UIDLs and content
    p = lib.login_retry_in_use(server)
    assert p.stat() == (len(kept), sum(len(exp[i - 1]) for i in kept))
    after = uidls(p)
    assert [after[k] for k in sorted(after)] == [before[i] for i in kept], "UIDLs not stable across deletion"
    for n, i in enumerate(kept, 1):
        assert lib.poplib_raw_multi(p, "RETR %d" % n)[1] == exp[i - 1]
    p.quit()


def test_dele_other_message_leaves_twins_untouched(server, env, messages):
    """Deleting an unrelated message must not change the byte-identical twins (7 and 8): not on disk,
    not in what RETR sends, not in LIST sizes, not in UIDLs."""
    exp = wires(messages)
    p = server.login()
    before = uidls(p)
    assert p.dele(1).startswith(b"+OK")
    assert p.quit().startswith(b"+OK")
    p = lib.login_retry_in_use(server)
    after = uidls(p)
    assert [after[k] for k in sorted(after)] == [before[i] for i in range(2, len(messages) + 1)]
    for n, i in enumerate(range(2, len(messages) + 1), 1):
        assert p.list(n).split()[2] == b"%d" % len(exp[i - 1]), "LIST %d (was message %d) changed size" % (n, i)
        got = lib.poplib_raw_multi(p, "RETR %d" % n)[1]
        assert got == exp[i - 1], "RETR %d (was message %d) changed: starts %r" % (n, i, got[:80])
    p.quit()
    lib.assert_mbox(env.read_mbox("alice"), b"".join(lib.mbox_entry(m) for m in messages[1:]))


def test_delete_first_twin_keeps_second_twins_uidl(server, messages):
    p = server.login()
    before = uidls(p)
    assert p.dele(7).startswith(b"+OK")
    p.quit()
    p = lib.login_retry_in_use(server)
    after = uidls(p)
    assert after[7] == before[8], "UIDL of the surviving copy changed when its identical twin was deleted"
    assert [after[k] for k in sorted(after)] == [before[i] for i in range(1, len(messages) + 1) if i != 7]
    p.quit()


def test_delete_first_twin_leaves_second_byte_identical(server, env, messages):
    """DELE must remove only the deleted message: the surviving identical copy keeps its exact bytes on
    disk, in RETR and in LIST."""
    exp = wires(messages)
    p = server.login()
    assert p.dele(7).startswith(b"+OK")
    p.quit()
    p = lib.login_retry_in_use(server)
    assert p.list(7).split()[2] == b"%d" % len(exp[7]), "LIST size of the surviving twin changed"
    got = lib.poplib_raw_multi(p, "RETR 7")[1]
    assert got == exp[7], "RETR of the surviving twin changed: starts %r" % got[:80]
    p.quit()
    lib.assert_mbox(env.read_mbox("alice"), b"".join(lib.mbox_entry(m) for i, m in enumerate(messages, 1) if i != 7))


def test_uidl_stable_across_new_delivery(env, messages):
    first = messages[:-1]
    env.write_mbox("alice", lib.build_mbox(first))
    d = env.start()
    p = d.login()
    before = uidls(p)
    p.quit()
    env.append_mbox("alice", lib.mbox_entry(lib.new_message(30)) + lib.mbox_entry(messages[6]))
    p = lib.login_retry_in_use(d)
    after = uidls(p)
    assert len(after) == len(first) + 2
    assert {k: after[k] for k in before} == before, "UIDLs changed after a new delivery"
    assert len(set(after.values())) == len(after), "a new copy of an existing message got a duplicate UIDL"
    assert lib.poplib_raw_multi(p, "RETR %d" % len(after))[1] == lib.to_wire(messages[6])
    p.quit()


def test_mboxo_format(env):
    # mboxo: a writer quotes only `From ` (so `>From ` in a body is ambiguous); a reader removes one `>`
    # from `>From ` only and leaves `>>From ` alone
    stored = (lib.FROM_LINE + b"From: a@example.org\nSubject: mboxo\n\n>From start\n>From quoted\n>>From twice\n\n")
    env.write_mbox("alice", stored)
    d = env.start("mbox_format=mboxo")
    p = d.login()
    got = lib.poplib_raw_multi(p, "RETR 1")[1]
    assert got == lib.to_wire(b"From: a@example.org\nSubject: mboxo\n\nFrom start\nFrom quoted\n>>From twice\n")
    assert p.list(1).split()[2] == b"%d" % len(got)
    p.quit()


def test_dele_all_then_quit_empties_mbox(server, env, messages):
    p = server.login()
    for n in range(1, len(messages) + 1):
        p.dele(n)
    p.quit()
    data = env.read_mbox("alice")
    assert not data, "mbox should be empty (or gone), has %d octets" % len(data)
    p = lib.login_retry_in_use(server)
    assert p.stat() == (0, 0)
    p.quit()


def test_dropped_connection_after_dele_removes_nothing(server, env, alice_mbox, messages):
    c = server.raw()
    assert c.login().startswith(b"+OK")
    for n in range(1, len(messages) + 1):
        assert c.cmd("DELE %d" % n).startswith(b"+OK")
    c.abort()
    p = lib.login_retry_in_use(server)
    assert p.stat()[0] == len(messages), "messages lost after a dropped connection"
    p.quit()
    lib.assert_mbox(env.read_mbox("alice"), alice_mbox)


def test_second_session_gets_in_use(server, env, alice_mbox):
    p1 = server.login()
    p2 = server.pop()
    p2.user("alice")
    with pytest.raises(poplib.error_proto) as ei:
        p2.pass_(PASSWORDS["alice"])
    assert ei.value.args[0].startswith(b"-ERR [IN-USE]"), ei.value.args[0]
    p2.close()
    p1.dele(1)
    p1.quit()
    p3 = lib.login_retry_in_use(server)
    assert p3.stat()[0] == len(lib.parse_mbox(alice_mbox)) - 1
    p3.quit()


def test_wrong_password_auth_code_and_session_goes_on(server):
    p = server.pop()
    p.user("alice")
    with pytest.raises(poplib.error_proto) as ei:
        p.pass_("wrong-password")
    wrong = ei.value.args[0]
    assert wrong.startswith(b"-ERR [AUTH]"), wrong
    # unknown user: the same answer
    p.user("nosuchuser")
    with pytest.raises(poplib.error_proto) as ei:
        p.pass_("wrong-password")
    assert ei.value.args[0] == wrong, "unknown user answered differently: %r vs %r" % (ei.value.args[0], wrong)
    # still in AUTHORIZATION: a correct login now works
    p.user("alice")
    assert p.pass_(PASSWORDS["alice"]).startswith(b"+OK")
    assert p.stat()[0] > 0
    p.quit()


def test_missing_mbox_is_empty_maildrop(env):
    d = env.start()
    p = d.login("dave")
    assert p.stat() == (0, 0)
    assert p.list()[1] == []
    assert p.uidl()[1] == []
    p.quit()


def test_apop(env, messages):
    env.write_mbox("apopuser", lib.build_mbox(messages[:3]))
    d = env.start("apop=yes")
    p = d.pop()
    m = re.search(rb"<[\x21-\x7e]+@[\x21-\x7e]+>", p.getwelcome())
    assert m, "no APOP challenge in greeting %r" % p.getwelcome()
    assert p.apop("apopuser", PASSWORDS["apopuser"]).startswith(b"+OK")
    assert p.stat() == (3, sum(len(w) for w in wires(messages[:3])))
    assert lib.poplib_raw_multi(p, "RETR 3")[1] == lib.to_wire(messages[2])
    p.quit()
    # a fresh challenge on every connection
    p2 = d.pop()
    m2 = re.search(rb"<[\x21-\x7e]+@[\x21-\x7e]+>", p2.getwelcome())
    assert m2 and m2.group(0) != m.group(0), "APOP challenge repeated"
    with pytest.raises(poplib.error_proto) as ei:
        p2.apop("apopuser", "not-the-secret")
    assert ei.value.args[0].startswith(b"-ERR [AUTH]"), ei.value.args[0]
    # a hashed ($6$) account cannot do APOP
    digest = hashlib.md5(m2.group(0) + PASSWORDS["alice"].encode()).hexdigest()
    with pytest.raises(poplib.error_proto):
        p2._shortcmd("APOP alice " + digest)
    # USER/PASS still works for the {PLAIN} account on the same connection
    p2.user("apopuser")
    assert p2.pass_(PASSWORDS["apopuser"]).startswith(b"+OK")
    p2.quit()


def test_bad_commands_get_one_err_and_session_goes_on(server, messages):
    c = server.raw()
    # fewer than max_bad_commands (5) invalid commands before login
    for line in ("STAT", "RETR 1", "NOSUCHCMD", "PASS x"):
        r = c.cmd(line)
        assert r.startswith(b"-ERR"), (line, r)
    assert c.login().startswith(b"+OK")
    n = len(messages)
    for line in ("LIST 0", "LIST %d" % (n + 1), "LIST 4294967297", "LIST 18446744073709551617",
                 "RETR x", "RETR -1", "TOP 1", "TOP 1 x", "DELE", "UIDL 0", "NOSUCHCMD", "USER alice"):
        r = c.cmd(line)
        assert r.startswith(b"-ERR"), (line, r)
    # keywords are case-insensitive
    assert c.cmd("stat") == b"+OK %d %d\r\n" % (n, sum(len(lib.to_wire(m)) for m in messages))
    assert c.cmd("NoOp").startswith(b"+OK")
    assert c.cmd("quit").startswith(b"+OK")
    c.close()


def test_pipelining(server, messages):
    exp = wires(messages)
    c = server.raw()
    c.sock.sendall(b"USER alice\r\nPASS " + PASSWORDS["alice"].encode() + b"\r\nSTAT\r\nRETR 3\r\nLIST 6\r\nRETR 6\r\nNOOP\r\n")
    f = c.f
    assert lib.read_reply_line(f).startswith(b"+OK")
    assert lib.read_reply_line(f).startswith(b"+OK")
    assert lib.read_reply_line(f) == b"+OK %d %d\r\n" % (len(exp), sum(map(len, exp)))
    assert lib.read_reply_line(f).startswith(b"+OK")
    assert lib.read_multiline(f) == exp[2]
    assert lib.read_reply_line(f).split()[:3] == [b"+OK", b"6", b"%d" % len(exp[5])]
    assert lib.read_reply_line(f).startswith(b"+OK")
    assert lib.read_multiline(f) == exp[5]
    assert lib.read_reply_line(f).startswith(b"+OK")
    assert c.cmd("QUIT").startswith(b"+OK")
    c.close()
