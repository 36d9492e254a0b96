# UPDATE on real filesystems (btrfs, XFS with reflink, ext4 in loop files): what it writes. Where the filesystem shares
# blocks, the journal's copy of the moved tail is a clone and the tail is written once, into its new place; on ext4
# twice (journal, then mailbox). Bytes written: what reached the loop device (/sys/block/loopN/stat, the filesystem's
# own data and metadata, with nothing else on it), between two syncs; a count, not a time. The session's own
# /proc/PID/io write_bytes is printed beside it: it counts every page-cache folio the process dirtied whole, which on
# filesystems with large folios (XFS) adds up to a few MB that are never written. Mailbox and UIDLs are checked too.
import errno
import os
import subprocess

import pytest

import interop_lib as lib
import loopfs

PASSWORD = lib.PASSWORDS["alice"]
# The target of issue 21: on a filesystem that clones, DELE 1 writes at most this much per octet moved.
ONCE = 1.1
MESSAGES = 800  # of about 40 KB: a 32 MB mbox, where the filesystem's own metadata is a small part


def message(n, size):
    """A message of about `size` octets whose lines differ from every other message's (no `From ` to quote)."""
    head = b"From: s%d@example.org\nSubject: update %d\nMessage-ID: <%d.update@example.org>\n\n" % (n, n, n)
    body = b"".join(b"line %d of message %d, some text to fill it\n" % (k, n) for k in range(size // 44))
    return head + body


def session(env, script):
    """One inetd session running `script`; returns (replies, the process's write_bytes)."""
    p = subprocess.Popen([lib.POP3D_BIN, "-i", "-f", env.conf], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    try:
        p.stdin.write(b"".join(ln.encode() + b"\r\n" for ln in script))
        p.stdin.close()
        out = p.stdout.read()
        # Exited, not yet reaped: its counters (all its threads') are still there to read.
        os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)
        with open("/proc/%d/io" % p.pid) as f:
            io = dict(ln.split(": ") for ln in f.read().splitlines())
    finally:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=lib.CLIENT_TIMEOUT)
        p.stdout.close()
    return out.decode().split("\r\n")[:-1], int(io["write_bytes"])


def fill(path, leave):
    """Allocates the file `path` until about `leave` octets are free on its filesystem (btrfs refuses to allocate its
    last free blocks at once: smaller pieces then; bounded)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        at, want = 0, None
        for _ in range(200):
            st = os.statvfs(os.path.dirname(path))
            free = st.f_bavail * st.f_frsize
            if free <= leave + (1 << 20):
                return
            want = min(want or free, free - leave)
            try:
                os.posix_fallocate(fd, at, want)
                at += want
            except OSError as e:
                if e.errno != errno.ENOSPC or want < (1 << 20):
                    raise
                want //= 2
        raise AssertionError("could not fill %s to %d free octets" % (path, leave))
    finally:
        os.close(fd)


def uidls(env):
    lines, _ = session(env, ["USER alice", "PASS " + PASSWORD, "UIDL", "QUIT"])
    start = lines.index("+OK unique-id listing follows") + 1
    return [ln.split()[1] for ln in lines[start:lines.index(".", start)]]


@pytest.mark.parametrize("fstype", loopfs.FILESYSTEMS)
@pytest.mark.parametrize("which", ["first", "tenth"])
def test_update_writes_the_moved_tail_once_where_blocks_are_shared(env, fstype, which):
    """DELE 1 (the tail moves in one piece) or every tenth message (80 pieces) of a 32 MB mbox, QUIT: on btrfs and
    XFS the filesystem writes at most 1.1x the octets that move for DELE 1, well under 2x for the 80 pieces; on
    ext4 twice, as it must to stay crash-safe without shared blocks. The kept messages keep their UIDLs."""
    loopfs.use(env, fstype, log=os.path.join(env.srv, "pop3d.log"))
    msgs = [message(n, 40000) for n in range(1, MESSAGES + 1)]
    entries = [lib.mbox_entry(m) for m in msgs]
    gone = {0} if which == "first" else set(range(0, MESSAGES, 10))
    env.write_mbox("alice", b"".join(entries))
    all_ids = uidls(env)  # the index is built here, not in the measured session
    moved = sum(len(e) for i, e in enumerate(entries) if i > min(gone) and i not in gone)
    dev = loopfs.device_of(os.path.dirname(env.spool))
    os.sync()
    dev0 = loopfs.device_bytes_written(dev)
    script = ["USER alice", "PASS " + PASSWORD] + ["DELE %d" % (i + 1) for i in sorted(gone)] + ["QUIT"]
    replies, by_process = session(env, script)
    os.sync()
    written = loopfs.device_bytes_written(dev) - dev0
    print("%s, DELE %s: %d octets moved; the filesystem wrote %d (%.3fx), the session dirtied %d (%.3fx)"
          % (fstype, which, moved, written, written / moved, by_process, by_process / moved))
    assert len(replies) == len(script) + 1 and all(r.startswith("+OK") for r in replies), replies[-3:]
    assert env.read_mbox("alice") == b"".join(e for i, e in enumerate(entries) if i not in gone), "the mailbox"
    assert uidls(env) == [u for i, u in enumerate(all_ids) if i not in gone], "the UIDLs of the kept messages"
    assert not [n for n in os.listdir(env.state) if "journal" in n], "a journal left behind"
    if fstype in loopfs.CLONING:
        # Every piece: a clone of its whole blocks into the journal; what is copied is at most a block at each
        # end of it, and the filesystem's metadata.
        bound = ONCE if which == "first" else 1.25
        assert written <= bound * moved, "%s: %d octets written for %d moved (%.3fx > %.2fx)" % (
            fstype, written, moved, written / moved, bound)
    else:
        # No shared blocks: the moved octets go to the journal and back, no more.
        assert 1.9 * moved <= written <= 2.2 * moved, "%s: %d octets written for %d moved" % (fstype, written, moved)


@pytest.mark.parametrize("fstype", loopfs.CLONING)
def test_no_room_for_the_move_is_refused_before_the_mailbox_is_touched(env, fstype):
    """Room for the journal's clone but not for the move (overwriting shared blocks writes new ones): the UPDATE is
    refused with [SYS/TEMP] before the mailbox is touched, as when a journal does not fit, and no journal stays;
    with room again the same deletion goes through."""
    loopfs.use(env, fstype, log=os.path.join(env.srv, "pop3d.log"))
    entries = [lib.mbox_entry(message(n, 40000)) for n in range(1, MESSAGES + 1)]
    before = b"".join(entries)
    env.write_mbox("alice", before)
    all_ids = uidls(env)
    filler = os.path.join(os.path.dirname(env.spool), "filler")
    fill(filler, 8 << 20)  # for a 33 MB move
    script = ["USER alice", "PASS " + PASSWORD, "DELE 1", "QUIT"]
    replies, _ = session(env, script)
    assert replies[-1].startswith("-ERR [SYS/TEMP]"), replies
    assert env.read_mbox("alice") == before, "the mailbox was touched"
    assert not [n for n in os.listdir(env.state) if "journal" in n], "a journal left behind"
    assert uidls(env) == all_ids
    os.unlink(filler)
    os.sync()  # btrfs counts the space free at its next commit
    replies, _ = session(env, script)
    assert replies[-1].startswith("+OK"), replies
    assert env.read_mbox("alice") == b"".join(entries[1:])
    assert uidls(env) == all_ids[1:]
