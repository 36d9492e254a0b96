# Crash suite: pop3d killed (SIGKILL, injected by strace) at every file-changing system call of UPDATE and of the
# recovery that follows, with and without a delivery between crash and recovery, for mbox and Maildir; every
# outcome checked byte for byte against the two allowed ones, with the UIDLs. CRASH_TORTURE=1 (`make torture`)
# steps through more system calls and adds randomized-delay kills over a large mailbox.
# Each test runs with the spool and state_dir in the test's temporary directory, and on btrfs, XFS (reflink) and
# ext4 made in loop files (loopfs.py), with messages of a few blocks there, so that the journal's copies are clones
# where the filesystem shares blocks; the procmail deliveries on those three under CRASH_TORTURE only (a second
# each).
import os
import random
import re
import shutil
import subprocess
import time

import pytest

import interop_lib as lib
import loopfs

TORTURE = bool(os.environ.get("CRASH_TORTURE"))
# The system calls that change files (openat too in the torture run: it creates the journal and temporary files).
# copy_file_range: the journal's copy of each piece (io::copy between files; in two calls, split where its source
# reaches a block boundary, where it is longer than that), and recovery's copy back from the journal; pwrite64: the
# kept mail moved down inside the mailbox, the cut marker, the journal's state.
SYSCALLS = ["write", "pwrite64", "copy_file_range", "fsync", "fdatasync", "ftruncate", "rename", "unlink", "link",
            "mkdir"]
if TORTURE:
    SYSCALLS += ["openat", "unlinkat"]
PASSWORD = lib.PASSWORDS["alice"]
PROCMAIL_RC = b"SHELL=/bin/sh\nLOCKTIMEOUT=30\n:0:\n%s\n"


def message(n, size=40):
    return b"From: s%d@example.org\nSubject: crash %d\n\n" % (n, n) + b"".join(
        b"line %d of message %d\n" % (k, n) for k in range(size))


def block(msg):
    """A message as it stands in the mbox: its From line, the text, the separating blank line."""
    return lib.mbox_entry(msg)


@pytest.fixture
def host_crash_env(env):
    lib.need_tool("strace")
    env.write_conf(log=os.path.join(env.srv, "pop3d.log"))
    env.fix_perms()
    env.msg_lines = 40  # about 900 octets a message
    return env


@pytest.fixture(params=["tmpdir"] + loopfs.FILESYSTEMS)
def crash_env(request, host_crash_env):
    """The environment of a crash test: spool and state_dir in the test's directory, or on a filesystem of their
    own, with messages of about 9 KB (several blocks: the journal's copies are clones on btrfs and XFS)."""
    env = host_crash_env
    if request.param != "tmpdir":
        loopfs.use(env, request.param, log=os.path.join(env.srv, "pop3d.log"))
        env.msg_lines = 400
    env.fs = request.param
    return env


def session(env, script, inject=None):
    """One inetd session running `script` (CRLF added per line); with `inject` (syscall, n), strace kills it at
    that system call. Returns (stdout, killed)."""
    cmd = [lib.POP3D_BIN, "-i", "-f", env.conf]
    if inject:
        sc, n = inject
        cmd = ["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=%s" % sc,
               "-e", "inject=%s:signal=KILL:when=%d" % (sc, n)] + cmd
    data = b"".join(line.encode() + b"\r\n" for line in script)
    r = subprocess.run(cmd, input=data, capture_output=True, timeout=lib.CLIENT_TIMEOUT)
    # strace ends itself with the signal that ended the traced process.
    killed = r.returncode == -9
    return r.stdout, killed


def uidls(env):
    out, killed = session(env, ["USER alice", "PASS " + PASSWORD, "UIDL", "QUIT"])
    assert not killed, out
    lines = out.decode().split("\r\n")
    assert "+OK unique-id listing follows" in lines, "%s\nlog:\n%s" % (out, open(os.path.join(env.srv, "pop3d.log")).read()[-1500:])
    start = lines.index("+OK unique-id listing follows") + 1
    listing = lines[start:lines.index(".", start)]
    return [ln.split()[1] for ln in listing]


def count_calls(env, script, sc):
    """How many times the session calls `sc` (run on a copy of the current state, which it changes)."""
    trace = os.path.join(env.cli, "strace.out")
    cmd = ["strace", "-f", "-qq", "-o", trace, "-e", "trace=%s" % sc, lib.POP3D_BIN, "-i", "-f", env.conf]
    data = b"".join(line.encode() + b"\r\n" for line in script)
    subprocess.run(cmd, input=data, capture_output=True, timeout=lib.CLIENT_TIMEOUT, check=True)
    with open(trace) as f:
        return sum(1 for ln in f if re.search(r"\b%s\(" % sc, ln) and "resumed>" not in ln)


def snapshot(env):
    return {"spool": env.read_mbox("alice"), "state": {n: open(os.path.join(env.state, n), "rb").read()
                                                        for n in os.listdir(env.state)
                                                        if os.path.isfile(os.path.join(env.state, n))}}


def restore(env, snap):
    env.write_mbox("alice", snap["spool"])
    shutil.rmtree(env.state)
    os.mkdir(env.state, 0o700)
    for n, data in snap["state"].items():
        with open(os.path.join(env.state, n), "wb") as f:
            f.write(data)
    lock = env.mbox_path("alice") + ".lock"
    if os.path.exists(lock):
        os.unlink(lock)
    env.fix_perms()


def deliver_procmail(env, n):
    rc = os.path.join(env.cli, "procmailrc")
    with open(rc, "wb") as f:
        f.write(PROCMAIL_RC % env.mbox_path("alice").encode())
    # The kill left no dotlock behind by now (a pop3d process started since removed it): procmail needs no wait.
    assert not os.path.exists(env.mbox_path("alice") + ".lock"), "a stale dotlock is left for procmail"
    r = subprocess.run(["procmail", "-f", "late@example.org", "-m", rc], input=message(100 + n, 5),
                       capture_output=True, timeout=lib.CLIENT_TIMEOUT)
    assert r.returncode == 0, r.stderr
    env.fix_perms()


def check(env, before, after_update, delivered, kept_uidls, all_uidls, what):
    """After the next login (which finishes an interrupted update), the mailbox is one of the two allowed
    outcomes, with what was delivered after the crash; the UIDLs of the messages that stay are the ones they
    had."""
    ids = uidls(env)
    left = [n for n in os.listdir(env.state) if n.endswith(("-new", ".journal")) or "journal" in n]
    assert not left, "%s: left in state_dir after the next login: %s" % (what, left)
    got = env.read_mbox("alice")
    if got.endswith(delivered) and got[:len(got) - len(delivered)] == after_update:
        want = kept_uidls
    elif got.endswith(delivered) and got[:len(got) - len(delivered)] == before:
        want = all_uidls
    else:
        raise AssertionError("%s: mailbox is neither outcome:\n%s" % (what, got[-400:]))
    assert ids[:len(want)] == want, "%s: UIDLs %s, expected %s first" % (what, ids, want)
    assert len(set(ids)) == len(ids), "%s: duplicate UIDLs %s" % (what, ids)


def start_any_process(env):
    """What follows a crash: the next pop3d process (the next inetd connection, or the daemon restarted by its
    supervisor) starts, and removes the dotlock the dead one left."""
    out, _ = session(env, ["QUIT"])
    assert out.startswith(b"+OK"), out


def five_messages(env):
    """alice's mbox of five messages and an UPDATE that deletes 2 and the last one (the case where a
    byte-identical redelivery of the last imitates the tail): the messages, the mailbox before and after, the
    UIDLs of all and of the kept ones, and the session script."""
    msgs = [message(n, env.msg_lines) for n in range(1, 6)]
    before = lib.build_mbox(msgs)
    after_update = lib.build_mbox([msgs[0], msgs[2], msgs[3]])
    env.write_mbox("alice", before)
    all_ids = uidls(env)
    kept_ids = [all_ids[0], all_ids[2], all_ids[3]]
    script = ["USER alice", "PASS " + PASSWORD, "DELE 2", "DELE 5", "QUIT"]
    return msgs, before, after_update, all_ids, kept_ids, script


@pytest.mark.parametrize("later", ["none", "procmail", "identical"])
def test_kill_at_every_file_changing_call_of_update(crash_env, later):
    env = crash_env
    if later == "procmail":
        if env.fs != "tmpdir" and not TORTURE:
            pytest.skip("procmail deliveries on %s: under CRASH_TORTURE (make torture) only" % env.fs)
        lib.need_tool("procmail")
    msgs, before, after_update, all_ids, kept_ids, script = five_messages(env)
    snap = snapshot(env)
    runs = 0
    for sc in SYSCALLS:
        total = count_calls(env, script, sc)
        restore(env, snap)
        for n in range(1, total + 1):
            _, killed = session(env, script, inject=(sc, n))
            assert killed, "%s #%d: the injected kill did not happen" % (sc, n)
            start_any_process(env)
            delivered = b""
            if later == "procmail":
                pre = env.read_mbox("alice")
                deliver_procmail(env, n)
                delivered = env.read_mbox("alice")[len(pre):]
                assert b"Subject: crash %d" % (100 + n) in delivered
            elif later == "identical":
                delivered = block(msgs[4])
                env.append_mbox("alice", delivered)
            check(env, before, after_update, delivered, kept_ids, all_ids, "%s #%d" % (sc, n))
            restore(env, snap)
            runs += 1
    assert runs >= 20, "only %d kill points" % runs


def test_kill_at_every_call_of_recovery(crash_env):
    """A crash that leaves a journal (before the kept mail is moved, at the cut marker, before the mailbox is
    synced, at the cut), then the recovery itself killed at each of its file-changing calls, then a clean
    recovery."""
    env = crash_env
    msgs, before, after_update, all_ids, kept_ids, script = five_messages(env)
    recovery = ["USER alice", "PASS " + PASSWORD, "QUIT"]
    snap = snapshot(env)
    runs = 0
    # pwrite64 #1: the first block of the kept mail moved down in the mailbox (the journal is written), the last
    # but one: the cut marker (the last: the journal's state M); fdatasync #1: the mailbox's, before the state M;
    # ftruncate #1: the cut. (A crash in the middle of the move: the randomized kills below, and the unit tests.)
    writes = count_calls(env, script, "pwrite64")
    restore(env, snap)
    for first in [("ftruncate", 1), ("pwrite64", 1), ("pwrite64", writes - 1), ("fdatasync", 1)]:
        session(env, script, inject=first)
        crashed = snapshot(env)
        assert any(n.endswith(".journal") for n in crashed["state"]), "%s left no journal" % (first,)
        for sc in SYSCALLS:
            total = count_calls(env, recovery, sc)
            restore(env, crashed)
            for n in range(1, total + 1):
                session(env, recovery, inject=(sc, n))
                start_any_process(env)
                check(env, before, after_update, b"", kept_ids, all_ids, "%s then %s #%d" % (first, sc, n))
                restore(env, crashed)
                runs += 1
        restore(env, snap)
    assert runs >= 10


def test_randomized_kills_during_update_of_a_large_mailbox(crash_env):
    """SIGKILL after a random delay while UPDATE rewrites a large mailbox (deleting its first message moves
    everything after it); bounded in count, longer under CRASH_TORTURE."""
    env = crash_env
    count = 200 if TORTURE else 12
    msgs = [message(n, 3000) for n in range(1, 401 if TORTURE else 41)]  # 70 KB each: 28 MB or 2.8 MB
    longest = 0.5 if TORTURE else 0.05
    before = lib.build_mbox(msgs)
    after_update = lib.build_mbox(msgs[1:])
    env.write_mbox("alice", before)
    all_ids = uidls(env)
    snap = snapshot(env)
    rng = random.Random(7)
    script = b"USER alice\r\nPASS %s\r\nDELE 1\r\nQUIT\r\n" % PASSWORD.encode()
    for i in range(count):
        p = subprocess.Popen([lib.POP3D_BIN, "-i", "-f", env.conf], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL)
        p.stdin.write(script)
        p.stdin.flush()
        # Wait for the DELE answer (a read, bounded by the hang guard), then kill at a random moment of QUIT.
        got = b""
        while got.count(b"\r\n") < 4:
            chunk = p.stdout.read1(4096)
            if not chunk:
                break
            got += chunk
        time.sleep(rng.uniform(0, longest))  # the randomized moment of the kill, not synchronisation
        p.kill()
        p.wait(timeout=lib.CLIENT_TIMEOUT)
        p.stdout.close()
        p.stdin.close()
        start_any_process(env)
        check(env, before, after_update, b"", all_ids[1:], all_ids, "random kill %d" % i)
        restore(env, snap)


def maildir_env(env):
    md = os.path.join(env.spool, "alice.md")
    for d in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(md, d), exist_ok=True)
    for n in range(1, 6):
        with open(os.path.join(md, "cur", "17000000%02d.M%dP1.host:2,S" % (n, n)), "wb") as f:
            f.write(message(n))
    env.write_conf(log=os.path.join(env.srv, "pop3d.log"), mailbox="maildir:" + os.path.join(env.spool, "%u.md"))
    env.fix_perms()
    return md


def put_back(env, md, contents):
    """Writes again the messages of `contents` an UPDATE removed from the Maildir `md`."""
    for name, data in contents.items():
        path = os.path.join(md, "cur", name)
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(data)
    env.fix_perms()


def test_maildir_kill_at_every_unlink_and_directory_sync(crash_env):
    """Maildir UPDATE killed at each unlink and fsync: every kept message and its UIDL stay; a deleted one is
    gone or still there, never damaged."""
    env = crash_env
    md = maildir_env(env)
    files = sorted(os.listdir(os.path.join(md, "cur")))
    contents = {f: open(os.path.join(md, "cur", f), "rb").read() for f in files}
    all_ids = uidls(env)
    script = ["USER alice", "PASS " + PASSWORD, "DELE 2", "DELE 4", "QUIT"]
    runs = 0
    for sc in ["unlink", "unlinkat", "fsync"]:
        total = count_calls(env, script, sc)
        put_back(env, md, contents)
        for n in range(1, total + 1):
            session(env, script, inject=(sc, n))
            left = sorted(os.listdir(os.path.join(md, "cur")))
            for keep in (files[0], files[2], files[4]):
                assert keep in left and open(os.path.join(md, "cur", keep), "rb").read() == contents[keep]
            for f in left:
                assert open(os.path.join(md, "cur", f), "rb").read() == contents[f]
            ids = uidls(env)
            expected = [u for f, u in zip(files, all_ids) if f in left]
            assert ids == expected, "%s #%d: %s != %s" % (sc, n, ids, expected)
            put_back(env, md, contents)
            runs += 1
    assert runs >= 2


def test_recovery_needs_room_for_one_journal_only(host_crash_env):
    """state_dir on a filesystem with room for one journal: an UPDATE killed after writing it is finished by
    the next login (which reuses the journal instead of writing a second one)."""
    env = host_crash_env
    if not lib.IS_ROOT:
        pytest.skip("mounting a tmpfs needs root")
    shutil.rmtree(env.state)
    os.mkdir(env.state)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", env.state], check=True)
    env.cleanups.append(lambda: subprocess.run(["umount", env.state]))
    msgs = [message(1, 10)] + [message(n, 500) for n in range(2, 4)]  # a ~24 KB tail after message 1
    before = lib.build_mbox(msgs)
    after_update = lib.build_mbox(msgs[1:])
    env.write_mbox("alice", before)
    all_ids = uidls(env)
    # The journal (about 24 KB) fits; a second one beside it would not.
    with open(os.path.join(env.state, "filler"), "wb") as f:
        f.write(b"\0" * (64 * 1024 - 4096 - 2 * len(after_update) + len(after_update) // 2))
    env.fix_perms()
    _, killed = session(env, ["USER alice", "PASS " + PASSWORD, "DELE 1", "QUIT"], inject=("pwrite64", 1))
    assert killed
    assert any(n.endswith(".journal") for n in os.listdir(env.state))
    check(env, before, after_update, b"", all_ids[1:], all_ids, "one journal's room")
    assert env.read_mbox("alice") == after_update, "the update was finished, not refused"
