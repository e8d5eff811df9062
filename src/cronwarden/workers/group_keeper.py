"""A command's whole process group dies with the process that started it, however that
one dies (SIGKILL, the OOM killer, a crash).

``setpriv --pdeathsig KILL`` (:func:`~cronwarden.workers.command.dying_with_parent`)
has the kernel kill one process when its parent dies; a script's children would live
on. The keeper covers the rest of the group: a ``/bin/sh`` started right after the
command, as a child of the starting process and outside the command's group, whose
standard input is the read end of a pipe. Only the starting process holds the write
end (close-on-exec: no other child inherits it). When the starting process dies, the
kernel closes the write end, the keeper's ``read`` sees end of file, and the keeper
SIGKILLs the command's group. Released on purpose (:meth:`GroupKeeper.release`), it is
sent one line instead and exits without a signal. While it waits it is one idle ``sh``
(no CPU, a few hundred KB).

The command itself is untouched: exec'd as before, with its own environment, its own
children (the keeper is not one of them) and its own output; the keeper's output is
``/dev/null``. The keeper has a session of its own, so that a signal to the starting
process's group (``kill -9 -PGID``, Ctrl-C or Ctrl-Z at a terminal) does not reach it
with the starting process, and it ignores the usual stop signals besides.

The keeper holds only the group's number, not a place in it, so it is released as soon
as the group is known to be gone or left to itself: the number could be reused later.

A command started in the instant before its keeper is covered by ``--pdeathsig`` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess

#: What the keeper runs (``/bin/sh -c``), with the command's process group as ``$1``.
#: ``trap ''`` is safe here: the keeper execs nothing (``read`` and ``kill`` are built in).
KEEPER_SCRIPT = (
    "trap '' HUP INT QUIT TERM USR1 USR2; if read line; then exit 0; fi; kill -s KILL -- -$1"
)
LOGGER = logging.getLogger("cronwarden.worker")
#: How long a released keeper may take to exit before it is killed.
RELEASE_WAIT_S = 2.0


class GroupKeeper:
    """The keeper of one command's process group; :meth:`start` it once the command
    runs, :meth:`release` it once the command has exited."""

    def __init__(self, process: asyncio.subprocess.Process, write_end: int) -> None:
        self._process, self._write_end = process, write_end

    @classmethod
    async def start(cls, pgid: int) -> GroupKeeper | None:
        """A keeper of group ``pgid``; ``None`` when none could be started (no pipe or
        no shell left to the process), in which case only ``--pdeathsig`` holds."""
        try:
            read_end, write_end = os.pipe()  # both close-on-exec
        except OSError as err:
            _unkept(pgid, err)
            return None
        try:
            process = await asyncio.create_subprocess_exec(
                "/bin/sh", "-c", KEEPER_SCRIPT, "cronwarden-keeper", str(pgid), stdin=read_end,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True)  # fmt: skip
        except BaseException as err:
            os.close(write_end)
            if isinstance(err, (OSError, subprocess.SubprocessError)):
                _unkept(pgid, err)
                return None
            raise
        finally:
            os.close(read_end)
        return cls(process, write_end)

    async def release(self) -> None:
        """Send the keeper away without touching the group (idempotent). Done at once,
        without waiting, even when the caller is being cancelled; the wait for the
        keeper's exit that follows is bounded."""
        if self._write_end < 0:
            return
        with contextlib.suppress(OSError):  # the keeper is gone already
            os.write(self._write_end, b"\n")
        os.close(self._write_end)
        self._write_end = -1
        try:
            await asyncio.wait_for(self._process.wait(), RELEASE_WAIT_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()


def _unkept(pgid: int, err: BaseException) -> None:
    LOGGER.warning("no keeper for process group %d (%s): only the command itself dies "
                   "with this process", pgid, err)  # fmt: skip
