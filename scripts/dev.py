#!/usr/bin/env python3
"""The README's two commands: `python3 scripts/dev.py run` and `python3 scripts/dev.py test`.

Each uses the active virtualenv when one is active (as in CI), otherwise
`.venv` in the repository, creating it when missing, and (re)installs the
project into it whenever pyproject.toml changed. Needs only python3 on PATH.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = {"run": "", "test": "[dev]"}


def _venv_dir() -> Path:
    active = os.environ.get("VIRTUAL_ENV")
    return Path(active) if active else ROOT / ".venv"


def _python(env_dir: Path) -> Path:
    scripts = "Scripts" if os.name == "nt" else "bin"
    return env_dir / scripts / ("python.exe" if os.name == "nt" else "python")


def _ensure_venv(env_dir: Path) -> Path:
    python = _python(env_dir)
    if not python.exists():
        print(f"creating virtualenv {env_dir}", file=sys.stderr)
        venv.EnvBuilder(with_pip=True).create(env_dir)
    return python


def _ensure_installed(python: Path, env_dir: Path, action: str) -> None:
    extras = EXTRAS[action]
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    stamp = env_dir / f".cronwarden-installed-for-{action}"
    if stamp.exists() and stamp.read_text() == wanted:
        return
    print(f"installing cronwarden{extras} into {env_dir}", file=sys.stderr)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "--editable", f"{ROOT}{extras}"], check=True)
    stamp.write_text(wanted)


def _command(action: str, python: Path, args: list[str]) -> list[str]:
    if action == "run":
        sample = ["start", "--manifest", str(ROOT / "examples" / "cronwarden.yaml")]
        return [str(python), "-m", "cronwarden", *(args or sample)]
    return [str(python), "-m", "pytest", *args]


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in EXTRAS:
        print(__doc__, file=sys.stderr)
        return 2
    action, args = argv[0], argv[1:]
    env_dir = _venv_dir()
    python = _ensure_venv(env_dir)
    _ensure_installed(python, env_dir, action)
    return _run(_command(action, python, args))


def _run(command: list[str]) -> int:
    """Run ``command``; Ctrl-C is passed on to it and its own exit code is returned."""
    process = subprocess.Popen(command, cwd=ROOT)
    while True:
        try:
            return process.wait()
        except KeyboardInterrupt:
            process.send_signal(signal.SIGINT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
