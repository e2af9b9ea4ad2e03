"""What every command module shares: consoles, the success line, and commands built from settings.

``settings_command`` turns a settings model (``specdecode.settings``) into a typer command: one
option per field, named after it (``--test-file``), with the field's help, type, choices and
default, plus ``--config FILE``. The command function receives the validated settings object,
so no option is declared twice.
"""

from __future__ import annotations

import contextvars
import inspect
import types
import typing
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin

import typer
from pydantic.fields import FieldInfo
from rich.console import Console

from specdecode.errors import InputError
from specdecode.outputs import PathLike
from specdecode.outputs import guard as _guard
from specdecode.settings import RENAMED, Settings, load_settings

console = Console()
err_console = Console(stderr=True)

S = TypeVar("S", bound=Settings)


def done(message: str) -> None:
    """The one green line a command ends with."""
    err_console.print(f"[green]✓[/] {message}", highlight=False, soft_wrap=True)


def warn(message: str) -> None:
    """A yellow warning line on stderr."""
    err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


_config_file: contextvars.ContextVar[Path | None] = contextvars.ContextVar("config_file", default=None)


def guard(
    inputs: Iterable[PathLike | None] = (),
    files: Mapping[str, PathLike | None] | Iterable[PathLike | None] = (),
    folders: Mapping[str, PathLike | None] | Iterable[PathLike | None] = (),
    trees: Mapping[str, PathLike | None] | Iterable[PathLike | None] = (),
    input_folders: Iterable[PathLike | None] = (),
) -> None:
    """The output guard (:func:`specdecode.outputs.guard`) for this command: its ``--config``
    file counts as an input too. Call it before any work."""
    _guard(
        [*inputs, _config_file.get()],
        dict(files) if isinstance(files, Mapping) else files,
        dict(folders) if isinstance(folders, Mapping) else folders,
        dict(trees) if isinstance(trees, Mapping) else trees,
        input_folders,
    )


def registry_file(name: str | None) -> Path | None:
    """The registry's file when ``name`` is a path (an input), None for a built-in one."""
    from specdecode.registry import BUILTIN

    return None if not name or name in BUILTIN else Path(name)


def unknown_tools(
    path: Path, records: Iterable[Any], registry: Any, strict: bool = False, hint: str = ""
) -> None:
    """Warn (or with ``strict`` stop) when traces call tools the registry lacks (``hint`` ends
    the warning)."""
    unknown = Counter(
        step.action.tool_name
        for record in records
        for step in record.trace
        if registry.get(step.action.tool_name) is None
    )
    if not unknown:
        return
    listing = ", ".join(f"{name} ×{count}" for name, count in unknown.most_common())
    message = f"{sum(unknown.values())} calls of tools not in registry {registry.name}: {listing}"
    if strict:
        raise InputError(message, path)
    warn(f"{path}: {message}{hint}")


def flag(name: str) -> str:
    """``train_file`` → ``--train-file`` (``--train_file`` is accepted too: see ``normalize_token``)."""
    return "--" + name.replace("_", "-")


RENAMED_FLAGS = {flag(old).removeprefix("--"): flag(new).removeprefix("--") for old, new in RENAMED.items()}


def normalize_token(token: str) -> str:
    """Option names (click passes them without the dashes) in either spelling match: ``--train_file``
    and ``--train-file`` are one option; a renamed option's old name (``--chat-template-kwargs``)
    is the new one."""
    token = token.replace("_", "-")
    return RENAMED_FLAGS.get(token, token)


def _cli_type(annotation: Any) -> tuple[Any, str | None]:
    """The type typer parses (Literals as text, validated by pydantic) and a metavar for choices."""
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in get_args(annotation) if a is not type(None)]
        base, metavar = _cli_type(inner[0])
        return base | None, metavar
    if origin is Literal:
        return str, "|".join(str(a) for a in get_args(annotation))
    return annotation, None


def _metavar(choices: str | None, help_text: str) -> tuple[str | None, str]:
    """Choices shown click-style as the option's type: ``--mode [next-call|trace]``."""
    return (None if choices is None else f"[{choices}]"), help_text


def _parameter(name: str, field: FieldInfo) -> inspect.Parameter:
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    kind, choices = _cli_type(field.annotation)
    metavar, help_text = _metavar(choices, field.description or "")
    required = field.is_required()
    if not required and field.default not in (None, False, "") and "[default" not in help_text:
        default = field.default.value if hasattr(field.default, "value") else field.default
        help_text += f" [default: {default}]"
    # Every option is optional here: a required setting may come from --config; pydantic
    # reports it when neither gives it.
    if extra.get("argument"):
        info: Any = typer.Argument(help=help_text, show_default=False, metavar=metavar)
        return inspect.Parameter(
            name,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            default=None,
            annotation=Annotated[kind | None, info],
        )
    decls = [flag(name)] + ([str(extra["short"])] if extra.get("short") else [])
    if kind in (bool, bool | None):
        kind, decls = bool | None, [f"{flag(name)}/--no-{name.replace('_', '-')}"]
        if field.default is False:  # a plain switch, as the prototype's flags were
            kind, decls = bool, [flag(name)]
    if required:
        help_text += " [required]"
    info = typer.Option(*decls, help=help_text, show_default=False, metavar=metavar)
    annotation = kind if kind is bool else kind | None
    default: Any = False if kind is bool else None
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[annotation, info]
    )


def parse_ratios(text: str) -> tuple[float, float, float]:
    """``--ratios`` text (``0.75,0.125,0.125``) as three fractions summing to 1."""
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise InputError(f"--ratios: expected three numbers like 0.75,0.125,0.125, got {text!r}") from None
    if len(parts) != 3 or any(p < 0 for p in parts) or abs(sum(parts) - 1) > 1e-6:
        raise InputError(f"--ratios: expected three non-negative numbers summing to 1, got {text!r}")
    return parts  # type: ignore[return-value]


Out = Annotated[Path, typer.Option("--out", "-o", help="Output JSONL file (written atomically).")]
SkipInvalid = Annotated[
    bool,
    typer.Option("--skip-invalid", help="Skip bad input lines with a counted warning instead of stopping."),
]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="YAML file of these options (flags override it).")
]


def settings_command(app: typer.Typer, name: str, model: type[S], **command_kwargs: Any) -> Callable:
    """Register ``fn(settings)`` as command ``name`` with one option per field of ``model``."""

    def decorate(fn: Callable[[S], Any]) -> Callable[[S], Any]:
        parameters = [_parameter(n, f) for n, f in model.model_fields.items()]
        parameters.sort(key=lambda p: p.kind)  # arguments first
        parameters.append(
            inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ConfigOpt)
        )

        switches = {p.name for p in parameters if p.default is False}  # False = not given

        def command(**given: Any) -> Any:
            config = given.pop("config", None)
            flags = {k: v for k, v in given.items() if v is not None and not (k in switches and v is False)}
            token = _config_file.set(Path(config) if config is not None else None)
            try:
                return fn(load_settings(model, config, flags))
            finally:
                _config_file.reset(token)

        command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in parameters}
        command.__doc__ = fn.__doc__
        command.__name__ = fn.__name__
        app.command(name, **command_kwargs)(command)
        return fn

    return decorate
