"""Telling systemd how the daemon is (``sd_notify``): ``READY=1`` once it runs,
``WATCHDOG=1`` while it is well, ``STOPPING=1`` on the way out. Nothing happens
unless systemd asked for it (``$NOTIFY_SOCKET``, ``$WATCHDOG_USEC``)."""

from __future__ import annotations

import logging
import os
import socket

LOGGER = logging.getLogger("cronwarden.systemd")


def notify(state: str) -> bool:
    """Send ``state`` (``READY=1``, ``WATCHDOG=1``, ...) to ``$NOTIFY_SOCKET``; whether it
    was sent. A socket that cannot be reached costs a warning, never the daemon."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as err:
        LOGGER.warning("sd_notify %s: %s", state.split("=")[0], err)
        return False
    return True


def watchdog_period_s() -> float | None:
    """How often to send ``WATCHDOG=1``: half of ``$WATCHDOG_USEC`` when systemd set it
    for this process; ``None`` when it did not."""
    usec, pid = os.environ.get("WATCHDOG_USEC"), os.environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    return int(usec) / 1_000_000 / 2
