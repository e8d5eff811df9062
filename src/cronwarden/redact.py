"""Keep secrets out of everything cronwarden writes: logs, reports, run records,
``status`` and health output.

Two kinds of secret are recognised:

* credentials inside a URL: the password of ``scheme://user:password@host``, query
  parameters named like a credential (``?token=…``, ``api_key``, ``sig``, …), and the
  whole of a notification URL (``slack://T0/B0/XXXX``, ``tgram://bot-token/chat``),
  whose secrets sit in its path;
* every value read from the environment for a ``${NAME}`` reference, registered with
  :func:`remember` when it is read, wherever it later shows up (an error message, a
  job's echoed header).

What remains is enough to tell which endpoint was meant: the scheme, the user, the
host, the port and the path of an ordinary URL.
"""

from __future__ import annotations

import re
import threading
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

MASK = "***"

#: Schemes whose path and host say where, not who: only their password and credential
#: parameters are masked. Any other scheme (apprise's notification URLs) is masked
#: whole, but for its name.
_ADDRESS_SCHEMES = frozenset({
    "http", "https", "ws", "wss", "redis", "rediss", "unix", "postgres", "postgresql",
    "postgresql+psycopg", "postgresql+psycopg2", "postgresql+asyncpg", "mysql", "mariadb",
    "sqlite", "sqlite+aiosqlite", "nats", "tls", "amqp", "amqps", "mqtt", "mqtts", "file",
})  # fmt: skip
_CREDENTIAL_PARAM = re.compile(
    r"(?i)^(.*[-_])?(token|key|apikey|secret|password|passwd|pwd|pass|auth|authorization|"
    r"signature|sig|credential|credentials|session)$"
)
_URL = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*)://[^\s'\"<>\\`]+")
#: A secret shorter than this is not searched for: it would mask ordinary words.
MIN_SECRET_LENGTH = 6

_known: frozenset[str] = frozenset()
_lock = threading.Lock()


def remember(value: str) -> None:
    """Treat ``value`` (read from the environment for a ``${NAME}``) as a secret from
    now on, in this process."""
    global _known
    if len(value) >= MIN_SECRET_LENGTH and value not in _known:
        with _lock:
            _known = _known | {value}


def forget() -> None:
    """Forget every remembered secret (for tests)."""
    global _known
    with _lock:
        _known = frozenset()


def redact_url(url: str) -> str:
    """``url`` with its credentials masked; a URL it cannot read is masked whole."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _ADDRESS_SCHEMES:
            return f"{parts.scheme}://{MASK}" if parts.scheme else MASK
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, host = netloc.rpartition("@")
            user, colon, _password = userinfo.partition(":")
            netloc = f"{user}:{MASK}@{host}" if colon else f"{userinfo}@{host}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            if any(_CREDENTIAL_PARAM.match(name) for name, _ in pairs):
                query = "&".join(
                    f"{quote(name, safe='')}="
                    f"{MASK if _CREDENTIAL_PARAM.match(name) else quote(value, safe='')}"
                    for name, value in pairs
                )
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return MASK


def redact_text(text: str) -> str:
    """``text`` with every URL's credentials and every remembered secret masked."""
    known = _known
    if "://" in text:
        text = _URL.sub(lambda match: redact_url(match.group(0)), text)
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact(value: Any) -> Any:
    """``value`` (a string, or lists and dicts of them) with secrets masked in every
    string; anything else is returned as it is."""
    if isinstance(value, str):
        return redact_text(value) if ("://" in value or _known) else value
    if isinstance(value, dict):
        return {key: redact(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    if isinstance(value, tuple):
        return tuple(redact(item) for item in value)
    return value
