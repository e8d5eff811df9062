"""A command's whole process group dies with the process that started it, however that
one dies (SIGKILL, the OOM killer, a crash).

``setpriv --pdeathsig KILL`` (:func:`~cronwarden.workers.command.dying_with_parent`)
has the kernel kill one process when its parent dies; a script's children would live
on. The keeper covers the rest of the group. The command is started through a short
``/bin/sh`` prologue whose standard input is the read end of a pipe; the prologue forks
the keeper (a subshell reading that pipe, in the command's group and session), gives
the command ``/dev/null`` as its input, and execs it. Only the starting process holds
the pipe's write end, close-on-exec, so no other child inherits it. When the starting
process dies, the kernel closes the write end, the keeper's ``read`` sees end of file,
and the keeper SIGKILLs its group, itself included. Released on purpose
(:meth:`GroupKeeper.release`), it is sent one line instead and exits alone. While it
waits it is one idle ``sh`` (no CPU, a few hundred KB).

The keeper ignores the usual stop signals, so that the stop signal sent to the group on
a timeout does not remove it while the command still has its grace to exit.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field

#: The prologue (``/bin/sh -c``); the command follows as its arguments. ``trap ''`` is
#: safe in the keeper because it execs nothing (``read`` and ``kill`` are built in).
PROLOGUE = (
    "exec 3<&0 0</dev/null; "
    "(trap '' HUP INT QUIT TERM USR1 USR2; if read line <&3; then exit 0; fi; kill -s KILL 0) & "
    'exec "$@" 3<&-'
)


@dataclass(slots=True)
class GroupKeeper:
    """The pipe between a starting process and the keeper of one command's group."""

    stdin: int = field(init=False)  # the read end: the prologue's standard input
    _write_end: int = field(init=False)

    def __post_init__(self) -> None:
        self.stdin, self._write_end = os.pipe()  # both close-on-exec

    @staticmethod
    def prefix() -> tuple[str, ...]:
        """What goes before the command's argv."""
        return ("/bin/sh", "-c", PROLOGUE, "cronwarden-keeper")

    def started(self) -> None:
        """The command is started (or could not be): the read end is the child's now."""
        if self.stdin >= 0:
            os.close(self.stdin)
            self.stdin = -1

    def close(self) -> None:
        """Close both ends without a word, as the starting process's death would: the
        group, if the command was started after all, is killed (idempotent)."""
        self.started()
        if self._write_end >= 0:
            os.close(self._write_end)
            self._write_end = -1

    def release(self) -> None:
        """Send the keeper away without touching its group (idempotent)."""
        self.started()
        if self._write_end < 0:
            return
        with contextlib.suppress(OSError):  # no keeper left to read it (group killed)
            os.write(self._write_end, b"\n")
        os.close(self._write_end)
        self._write_end = -1
