"""The command group: one-line errors with exit code 2 for user mistakes and parse errors, old
option spellings refused with their new name, Ctrl-C reported in one line; ``main`` is the
``smoothrl`` console script."""

from __future__ import annotations

import functools
import sys
import types
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import typer
import typer._click.exceptions as click_errors  # typer's own click (its parse errors are these)
from rich.console import Console
from typer.core import TyperGroup

from smoothrl.errors import SmoothRLError, TrainingInterrupted

#: Options renamed in smoothrl 0.1 (one word per meaning) -> their new spelling.
RENAMED_OPTIONS = {
    "--smooth-sigma": "--smoothing-sigma",
    "--smooth-samples": "--smoothing-samples",
    "--smooth-mode": "--smoothing-mode",
}


INTERRUPTED_EARLY = "interrupted (Ctrl-C) before anything was written"


#: whether a command has printed its own interruption line (typer turns a Ctrl-C it catches into exit 130 silently)
reported = types.SimpleNamespace(interrupt=False)


class _Commands(TyperGroup):
    """The command group: an option spelled the old way fails with one line naming the new one,
    and every parse error (a bad option value, an unknown option or command) is one line on
    stderr with exit code 2, instead of typer's framed usage box."""

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click_errors.NoArgsIsHelpError as e:  # `smoothrl` alone, `smoothrl bridge`: the help
            e.show()
            sys.exit(e.exit_code)
        except click_errors.ClickException as e:
            ctx = getattr(e, "ctx", None)
            hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
            typer.echo(f"error: {e.format_message().rstrip('.')}{hint}", err=True)
            sys.exit(e.exit_code)
        except typer.Abort:
            typer.echo("aborted", err=True)
            sys.exit(1)
        if code == 130 and not reported.interrupt:  # Ctrl-C that typer caught before a command could say so
            typer.echo(INTERRUPTED_EARLY, err=True)
        sys.exit(code if isinstance(code, int) else 0)

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        for arg in args:
            old = arg.split("=", 1)[0]
            if old in RENAMED_OPTIONS:
                typer.echo(f"error: {old} is now {RENAMED_OPTIONS[old]}; rename it", err=True)
                ctx.exit(2)
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_Commands,
    help="smoothrl: smooth, robust, deployable RL control on Stable-Baselines3.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


console = Console()


F = TypeVar("F", bound=Callable[..., Any])


def user_errors(func: F) -> F:
    """Turn a :class:`SmoothRLError` into one line on stderr and exit code 2 (130 when interrupted)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except TrainingInterrupted as e:
            reported.interrupt = True
            typer.echo(f"interrupted: {e.for_cli()}", err=True)
            raise typer.Exit(130) from None
        except KeyboardInterrupt:  # outside the writing phases (those say what they saved themselves)
            reported.interrupt = True
            typer.echo(INTERRUPTED_EARLY, err=True)
            raise typer.Exit(130) from None
        except SmoothRLError as e:
            typer.echo(f"error: {e.for_cli()}", err=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def main() -> None:
    """Entry point of the ``smoothrl`` command."""
    import signal

    warnings.filterwarnings("ignore", message=".*rich is experimental.*")
    try:
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # from here on, KeyboardInterrupt as usual
            signal.signal(signal.SIGINT, signal.default_int_handler)
        app()
    except KeyboardInterrupt:  # before a command started (while parsing or importing)
        typer.echo(INTERRUPTED_EARLY, err=True)
        sys.exit(130)
