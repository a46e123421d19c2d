"""What every task shares: errors become one line and an exit code, never a traceback."""

from __future__ import annotations

import functools
import sys

from invoke import task as invoke_task
from invoke.exceptions import Exit

from directus_deploy.core.errors import EXIT_INTERRUPTED, DeployError, Refused


def task(*args, **kwargs):
    """`invoke.task`, plus the tool's error handling: a DeployError prints `error: <line>`
    on stderr and exits with its code; Ctrl-C exits 130."""

    def decorate(body):
        @functools.wraps(body)
        def run(c, *a, **kw):
            try:
                return body(c, *a, **kw)
            except DeployError as why:
                raise Exit(f"error: {why}", code=why.exit_code) from None
            except KeyboardInterrupt:
                raise Exit("interrupted", code=EXIT_INTERRUPTED) from None

        return invoke_task(run, **kwargs)

    if len(args) == 1 and callable(args[0]) and not kwargs:
        return decorate(args[0])
    return decorate


def confirm(question: str, yes: bool) -> None:
    """Ask before something destructive; --yes answers for CI. Never waits without a terminal."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise Refused(f"{question} Not confirmed: no terminal to ask on; pass --yes to proceed")
    answer = input(f"{question} [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise Refused("not confirmed; nothing was changed")
