"""`python -m cronwarden` runs the command-line interface."""

from __future__ import annotations

from cronwarden.interfaces.cli import main

if __name__ == "__main__":
    main()
