"""The HTTP interface: metrics and health today; the operator API later."""

from __future__ import annotations
