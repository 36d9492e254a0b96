# Loaded into getmail by test_getmail.py (PYTHONPATH): getmail 6.18 (getmailcore/baseclasses.py, forkchild) installs its SIGCHLD handler only after os.fork() returns, so a delivery child that exits before the parent runs again is never noticed, and getmail fails with "waiting child pid N timed out" (a lost wake-up: likely on a loaded machine). This installs the handler before the fork instead, the order getmail intends; nothing of the POP3 conversation changes.
import os

try:
    from getmailcore import baseclasses
except ImportError:  # not getmail: nothing to mend
    baseclasses = None

if baseclasses is not None and hasattr(baseclasses, "ForkingBase"):

    def _forkchild(self, childfun, with_out=True):
        self._prepare_child()  # the handler first, then the child
        self._prepare_child = lambda: None  # getmail's own call, after the fork, does nothing now
        try:
            return _original(self, childfun, with_out)
        finally:
            if os.getpid() == parent:
                del self._prepare_child

    parent = os.getpid()
    _original = baseclasses.ForkingBase.forkchild
    baseclasses.ForkingBase.forkchild = _forkchild
