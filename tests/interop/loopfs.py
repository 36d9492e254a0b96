# Real filesystems for the tests where the filesystem matters: btrfs, XFS with reflink and ext4, each made by the test
# in a sparse loop file and mounted (as root), with the mailbox spool and state_dir on it; skipped with the reason
# where that cannot be done.
import os
import shutil
import subprocess

import pytest

import interop_lib as lib

# The filesystems UPDATE is tested on: two that share blocks between files (a copy into the journal is a clone there)
# and one that does not.
FILESYSTEMS = ["btrfs", "xfs", "ext4"]
CLONING = ("btrfs", "xfs")
MKFS = {
    "btrfs": ["mkfs.btrfs", "-q", "-f"],
    "xfs": ["mkfs.xfs", "-q", "-f", "-m", "reflink=1"],
    "ext4": ["mkfs.ext4", "-q", "-F"],
}
# Sparse files: only what the filesystem writes takes space. XFS wants 300 MB at least (xfsprogs 5.19 and later).
SIZE = {"btrfs": 320 << 20, "xfs": 320 << 20, "ext4": 128 << 20}


def mount(fstype, image, where):
    """Makes a `fstype` filesystem in the sparse file `image` and mounts it on `where` through a loop device.
    Returns the function that unmounts it (the loop device goes with it). Skips the test, saying why, where that
    cannot be done."""
    if not lib.IS_ROOT:
        pytest.skip("%s in a loop file: mounting needs root" % fstype)
    if shutil.which(MKFS[fstype][0]) is None:
        pytest.skip("%s missing (tests/install-deps.sh installs it)" % MKFS[fstype][0])
    with open(image, "wb") as f:
        f.truncate(SIZE[fstype])
    r = subprocess.run(MKFS[fstype] + [image], capture_output=True, timeout=lib.CLIENT_TIMEOUT)
    assert r.returncode == 0, "%s: %s" % (MKFS[fstype][0], r.stderr.decode(errors="replace"))
    os.makedirs(where, exist_ok=True)
    r = subprocess.run(["mount", "-t", fstype, "-o", "loop", image, where], capture_output=True,
                       timeout=lib.CLIENT_TIMEOUT)
    if r.returncode != 0:
        os.unlink(image)
        pytest.skip("cannot mount a %s loop file here (no loop device or no %s in this kernel?): %s"
                    % (fstype, fstype, r.stderr.decode(errors="replace").strip()))

    def unmount():
        if subprocess.run(["umount", where], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", where], capture_output=True)
        if os.path.exists(image):
            os.unlink(image)
    return unmount


def use(env, fstype, **conf):
    """Moves `env`'s spool and state_dir onto a fresh `fstype` filesystem (one filesystem for both: a journal can
    share blocks only with a mailbox on its own filesystem) and rewrites its configuration (with `conf`)."""
    where = os.path.join(env.srv, "fs-" + fstype)
    env.cleanups.append(mount(fstype, os.path.join(env.root, fstype + ".img"), where))
    env.spool = os.path.join(where, "spool")
    env.state = os.path.join(where, "state")
    os.mkdir(env.spool, 0o755)
    os.mkdir(env.state, 0o700)
    env.write_conf(**conf)
    env.fix_perms()


def device_of(where):
    """The block device (sysfs name, e.g. loop3) mounted on `where` (from /proc/self/mounts: btrfs reports an
    anonymous device number in stat)."""
    where = os.path.realpath(where)
    with open("/proc/self/mounts") as f:
        for ln in f:
            source, point = ln.split()[:2]
            if point == where and source.startswith("/dev/"):
                return os.path.basename(os.path.realpath(source))
    raise AssertionError("nothing mounted on %s" % where)


def device_bytes_written(dev):
    """Octets written to block device `dev` since it was set up (/sys/block/DEV/stat: sectors of 512)."""
    with open("/sys/block/%s/stat" % dev) as f:
        return int(f.read().split()[6]) * 512
