"""Failpoints: a process kills itself (SIGKILL) at a named moment, so that the worst
moments of a crash can be tested deterministically.

``CRONWARDEN_FAILPOINT=after-commit cronwarden start`` dies right after its first
dispatch row is committed, before anything is published. The names:

* ``after-claim``: a fire is claimed, its row not committed;
* ``after-commit``: its row is committed, its triggers not published;
* ``mid-run``: a worker has started a target's command.

Read once at import; with the variable unset, a failpoint costs one comparison.
"""

from __future__ import annotations

import os
import signal

ENV = "CRONWARDEN_FAILPOINT"
NAMES = frozenset({"after-claim", "after-commit", "mid-run"})
_ARMED = os.environ.get(ENV, "")


def failpoint(name: str) -> None:
    """Die here, at once and without cleaning up, if ``name`` is the armed failpoint."""
    if name == _ARMED:
        os.kill(os.getpid(), signal.SIGKILL)
