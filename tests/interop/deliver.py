# Test MDA for fetchmail/mpop/getmail: stores the message from stdin as OUTDIR/NNNNNN.eml (delivery order).
import os
import sys


def main():
    outdir = sys.argv[1]
    data = sys.stdin.buffer.read()
    n = len([x for x in os.listdir(outdir) if x.endswith(".eml")])
    while True:
        path = os.path.join(outdir, "%06d.eml" % n)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            break
        except FileExistsError:
            n += 1
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
