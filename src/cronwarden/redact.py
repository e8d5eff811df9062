"""Keep secrets out of everything cronwarden writes: logs, reports, run records,
``status`` and health output.

Two kinds of secret are recognised:

* credentials inside a URL: the password of ``scheme://user:password@host``, query
  parameters named like a credential (``?token=…``, ``api_key``, ``accessToken``,
  ``sig``, …), path segments of an http(s) URL that read as generated tokens (a
  webhook's), and the whole of a URL of any scheme not known as an address
  (apprise's ``slack://T0/B0/XXXX``, ``tgram://bot-token/chat``), whose secrets sit
  in its path;
* every value read from the environment for a ``${NAME}`` reference in a header, or
  whose name says it is a credential (:func:`looks_secret`), registered with
  :func:`remember` when it is read, wherever it later shows up (an error message, a
  job's echoed header, a JSON log line).

What remains is enough to tell which endpoint was meant: the scheme, the user, the
host, the port and the path of an ordinary URL.
"""

from __future__ import annotations

import json
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
    "mysql+pymysql", "sqlite", "sqlite+aiosqlite", "nats", "tls", "amqp", "amqps", "mqtt",
    "mqtts", "file", "s3", "gs", "gcs", "az", "abfs", "hdfs", "ftp", "ftps", "sftp", "ssh",
    "git", "git+ssh", "smb", "ldap", "ldaps", "mongodb", "mongodb+srv", "kafka", "grpc",
    "grpcs", "tcp", "udp", "memcached", "etcd", "consul", "zk", "jdbc",
})  # fmt: skip
#: Names of credentials, as a suffix: ``token``, ``accessToken``, ``X-Amz-Signature``.
_CREDENTIAL_PARAM = re.compile(
    r"(?i)(token|key|secret|password|passwd|pwd|pass|auth|authorization|signature|sig|"
    r"credentials?|session|cookie)$"
)
#: The same words anywhere in an environment variable's name (``SLACK_TOKEN_PROD``).
_CREDENTIAL_NAME = re.compile(
    r"(?i)(token|key|secret|passw|pwd|auth|signature|credential|session|cookie|private)"
)
#: A path segment that reads as a generated token (a webhook's: Slack, Discord,
#: Teams): long, and made of letters and digits both.
_TOKEN_SEGMENT = re.compile(r"^(?=.*[A-Za-z])(?=.*\d)[A-Za-z0-9_\-.~=]{20,}$")
_URL = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*)://[^\s'\"<>\\`]+")
#: A secret shorter than this is not searched for: it would mask ordinary words.
MIN_SECRET_LENGTH = 6

_known: frozenset[str] = frozenset()
_lock = threading.Lock()


def remember(value: str) -> None:
    """Treat ``value`` (read from the environment for a ``${NAME}``) as a secret from
    now on, in this process: as written, and as it reads inside a JSON string."""
    global _known
    if len(value) >= MIN_SECRET_LENGTH and value not in _known:
        escaped = json.dumps(value)[1:-1]  # a quote, a backslash, an accent: escaped
        with _lock:
            _known = _known | {value, escaped}


def looks_secret(name: str) -> bool:
    """Whether an environment variable's or a parameter's name says it holds a
    credential (``API_TOKEN``, ``accessToken``, ``db_password``, ``HOOK_KEY``)."""
    return bool(_CREDENTIAL_NAME.search(name))


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
        path = parts.path
        if scheme in ("http", "https") and path:
            path = "/".join(MASK if _TOKEN_SEGMENT.match(segment) else segment
                            for segment in path.split("/"))  # fmt: skip
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            if any(_CREDENTIAL_PARAM.search(name) for name, _ in pairs):
                query = "&".join(
                    f"{quote(name, safe='')}="
                    f"{MASK if _CREDENTIAL_PARAM.search(name) else quote(value, safe='')}"
                    for name, value in pairs
                )
        return urlunsplit((parts.scheme, netloc, path, query, parts.fragment))
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
