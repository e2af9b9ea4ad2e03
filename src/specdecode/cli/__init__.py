"""The ``specdecode`` command line: one small module per command group, nothing but wiring.

Heavy libraries (torch, transformers) load lazily inside the commands that need them, so
``--help`` and the data commands start fast. Settings are declared once in
``specdecode.settings``; options accept ``--snake_case`` and ``--kebab-case`` alike.
"""

from __future__ import annotations

import typer
from rich.markup import escape

try:  # typer ≥ 0.25 ships its own copy of click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older typer on the real click
    from click import exceptions as click_errors

from specdecode.cli._common import err_console, normalize_token
from specdecode.cli.data import data_app
from specdecode.cli.demo import demo_app
from specdecode.cli.evaluate import eval_app
from specdecode.cli.gaia import gaia_app
from specdecode.cli.mcp import mcp_app
from specdecode.cli.report import report_app
from specdecode.cli.speculate import speculate_app
from specdecode.cli.traces import traces_app
from specdecode.cli.train import train_app
from specdecode.errors import InputError

app = typer.Typer(
    help="Train and measure speculators: small LoRA-tuned models that guess an agent's next "
    "tool call so it can run ahead of time.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "token_normalize_func": normalize_token},
)
app.add_typer(gaia_app, name="gaia")
app.add_typer(data_app, name="data")
for _group in (train_app, eval_app, demo_app):
    app.registered_commands += _group.registered_commands

app.add_typer(traces_app, name="traces")
app.add_typer(speculate_app, name="speculate")
app.add_typer(mcp_app, name="mcp")
app.registered_commands += report_app.registered_commands


def _one_line(error: click_errors.ClickException) -> str:
    """A click usage error as one line: ``eval: --batch-size: 'x' is not a valid integer``."""
    message = error.format_message().replace("\n", " ")
    ctx = getattr(error, "ctx", None)
    return f"{ctx.command_path}: {message}" if ctx is not None else message


def main() -> None:
    """Entry point of the ``specdecode`` command: bad input ends with one line and exit code 2."""
    try:
        code = app(standalone_mode=False)
    except InputError as exc:
        err_console.print(f"[red]error:[/] {escape(exc.message)}", highlight=False, soft_wrap=True)
        raise SystemExit(InputError.exit_code) from None
    except click_errors.NoArgsIsHelpError:  # the help is already printed
        raise SystemExit(0) from None
    except click_errors.ClickException as exc:
        err_console.print(f"[red]error:[/] {escape(_one_line(exc))}", highlight=False, soft_wrap=True)
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        err_console.print("aborted", highlight=False)
        raise SystemExit(130) from None
    except OSError as exc:  # the last net: a file system refusal is one line, never a traceback
        where = f"{exc.filename}: " if exc.filename else ""
        err_console.print(
            f"[red]error:[/] {escape(where + (exc.strerror or str(exc)))}", highlight=False, soft_wrap=True
        )
        raise SystemExit(InputError.exit_code) from None
    raise SystemExit(code if isinstance(code, int) else 0)


__all__ = ["app", "main"]
