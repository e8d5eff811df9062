"""``cronwarden supervisor status|restart|stop``: the running daemon's workloads."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cronwarden.interfaces.cli_common import daemon_call

supervisor_app = typer.Typer(help="The workloads the running daemon supervises.")

HttpOption = Annotated[
    str, typer.Option("--http", envvar="CRONWARDEN_HTTP", help="Where the daemon serves.")
]
NameArgument = Annotated[str, typer.Argument(help="The workload.")]

_STYLES = {"running": "green", "starting": "yellow", "backoff": "yellow", "stopped": "dim"}


@supervisor_app.command("status")
def status(
    http: HttpOption = "127.0.0.1:9464",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every workload: state, pid, age, restarts in the window, last exit and its reason,
    the policy, backoff and hang timeout in effect. Exit 1 when one is failed or hung."""
    workloads = daemon_call(http, "/api/supervisor")["workloads"]
    if as_json:
        typer.echo(json.dumps(workloads))
    else:
        _print(workloads)
    if any(w["state"] in ("failed", "hung") for w in workloads):
        raise typer.Exit(1)


@supervisor_app.command("restart")
def restart(name: NameArgument, http: HttpOption = "127.0.0.1:9464") -> None:
    """Restart NAME now (also a failed one); not counted against its restart budget."""
    _act(http, name, "restart")


@supervisor_app.command("stop")
def stop(name: NameArgument, http: HttpOption = "127.0.0.1:9464") -> None:
    """Stop NAME (its stop signal, then SIGKILL after its grace); it stays stopped until
    `supervisor restart NAME`."""
    _act(http, name, "stop")


def _act(http: str, name: str, action: str) -> None:
    path = f"/api/supervisor/{urllib.parse.quote(name, safe='')}/{action}"
    found = daemon_call(http, path, post=True, timeout_s=120)
    typer.echo(f"{found['name']}: {found['state']}"
               f"{' (pid ' + str(found['pid']) + ')' if found.get('pid') else ''}")  # fmt: skip


def _print(workloads: Sequence[dict[str, Any]]) -> None:
    table = Table(title="supervisor", title_justify="left")
    for column in ("name", "state", "pid", "age", "restarts", "last exit", "policy", "kind"):
        table.add_column(column)
    for w in workloads:
        style = _STYLES.get(w["state"], "red")
        age = w.get("age_s")
        last = w.get("last_reason") or ("" if w.get("last_exit_code") is None
                                        else f"exit {w['last_exit_code']}")  # fmt: skip
        table.add_row(
            w["name"], f"[{style}]{w['state']}[/{style}]", str(w.get("pid") or "-"),
            "-" if age is None else f"{age:.0f} s", str(w.get("restarts_in_window", 0)),
            last, str(w.get("restart", "")), str(w.get("labels", {}).get("workload_kind", "")),
        )  # fmt: skip
    Console().print(table)
