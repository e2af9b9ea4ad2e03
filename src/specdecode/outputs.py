"""The one output guard: every command that writes names its inputs and outputs here first.

:func:`guard` runs before any work and refuses, with one line (exit code 2):

* an output that is an input (the same file, through any link), that lies inside an input
  folder, or a folder of outputs that contains an input it would write over;
* two outputs that are the same file;
* an output that cannot be written: a directory where a file goes (or a file where a folder
  goes), a parent that is a file, a FIFO or device in the way, a folder without write
  permission, a symlink loop.

It creates nothing: a failing command leaves no folder behind. The writes themselves are atomic
(:func:`atomic_path`: a temporary file renamed over the target on success, with the mode a
plain ``open()`` would give, not ``mkstemp``'s 0600), and every text written passes through
:func:`redact`, so no secret read from the environment (an API key) is ever stored.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from specdecode.errors import InputError

PathLike = str | Path

# --------------------------------------------------------------------------- secrets
_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember a secret (an API key read from the environment): :func:`redact` removes it from
    everything written from now on. Short values and placeholders are ignored."""
    if value and len(value) >= 6 and value not in ("not-needed", "EMPTY"):
        with _secrets_lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """``text`` with every registered secret (and the long prefix of a long one) as ``***``."""
    if not _secrets:
        return text
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "***")
        if len(secret) >= 16 and secret[:12] in text:
            text = text.replace(secret[:12], "***")
    return text


# --------------------------------------------------------------------------- the guard
@dataclass(frozen=True)
class _Target:
    path: Path
    folder: bool  # a folder the command writes into (else a file)
    label: str


def _lexists(path: Path) -> bool:
    try:
        path.lstat()
    except (OSError, ValueError):
        return False
    return True


def _resolved(path: Path, label: str) -> Path:
    try:
        return Path(os.path.realpath(path, strict=False))
    except (OSError, RuntimeError):
        raise InputError(_say(label, "symlink loop (too many levels of symbolic links)"), path) from None


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except (OSError, ValueError):
        return None
    return info.st_dev, info.st_ino


def _say(label: str, text: str) -> str:
    """``text``, naming the option when the output came from one: ``… (--out)``."""
    return f"{text} ({label.split()[0]})" if label.startswith("--") else text


def _inside(child: Path, parent: Path) -> bool:
    return child != parent and parent in child.parents


BROKEN_LINK = "cannot write through a broken link or symlink loop"
PARENT_IS_FILE = "cannot create the output: a parent is a file, not a folder"


def _problem(target: _Target) -> tuple[str, Path] | None:
    """Why ``target`` cannot be created or replaced (what is in the way, or the nearest existing
    folder above it), with the path to name; None when it can."""
    path = target.path
    try:
        info: os.stat_result | None = path.stat()
    except FileNotFoundError:
        info = None
    except NotADirectoryError:
        return PARENT_IS_FILE, path
    except OSError as exc:
        return (BROKEN_LINK if _lexists(path) else (exc.strerror or str(exc))), path
    if info is None and _lexists(path):
        return BROKEN_LINK, path
    if info is not None:
        if target.folder and not stat.S_ISDIR(info.st_mode):
            return "is a file, expected a folder for the outputs", path
        if not target.folder and stat.S_ISDIR(info.st_mode):
            return "is a directory, expected a file to write", path
        if not target.folder and not stat.S_ISREG(info.st_mode):
            return "is not a regular file (a FIFO or device): refusing to write over it", path
    # where the write happens: the folder itself when it exists, else the nearest existing
    # ancestor (the missing ones are created on success)
    folder = path if (info is not None and target.folder) else path.parent
    while not folder.exists():
        if _lexists(folder):
            return BROKEN_LINK, folder
        if folder.parent == folder:
            break
        folder = folder.parent
    if folder.exists() and not folder.is_dir():
        return PARENT_IS_FILE, path
    refusal = _probe(folder)
    if refusal is not None:
        where = "" if folder in (path, path.parent) else f" ({folder} is not writable)"
        return f"cannot write here: {refusal}{where}", path
    return None


def _probe(folder: Path) -> str | None:
    """Why a file cannot be created in ``folder`` (permissions, a read-only file system, ACLs),
    found by creating and removing an empty one; None when it can."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return "permission denied"
    try:
        fd, probe = tempfile.mkstemp(prefix=".specdecode-probe-", dir=folder)
    except OSError as exc:
        return "permission denied" if isinstance(exc, PermissionError) else (exc.strerror or str(exc)).lower()
    os.close(fd)
    os.unlink(probe)
    return None


def _check_writable(target: _Target) -> None:
    problem = _problem(target)
    if problem is not None:
        raise InputError(_say(target.label, problem[0]), problem[1])


def _targets(group: Iterable[PathLike | None] | dict[str, PathLike | None], folder: bool) -> list[_Target]:
    items = group.items() if isinstance(group, dict) else ((None, p) for p in group)
    return [
        _Target(Path(value), folder, label or str(value))
        for label, value in items
        if value is not None and str(value) != ""
    ]


def guard(
    inputs: Iterable[PathLike | None] = (),
    files: Iterable[PathLike | None] | dict[str, PathLike | None] = (),
    folders: Iterable[PathLike | None] | dict[str, PathLike | None] = (),
    trees: Iterable[PathLike | None] | dict[str, PathLike | None] = (),
    input_folders: Iterable[PathLike | None] = (),
) -> None:
    """Refuse, before any work, outputs that would destroy an input or cannot be written.

    Args:
        inputs: files (or folders) the command reads. ``None`` entries are ignored.
        files: files the command writes (a mapping labels each for the message: ``{"--out": p}``;
            a label's first word is the option named).
        folders: folders that receive the listed ``files`` (and nothing else): they must be
            folders, or creatable as folders.
        trees: folders whose whole content is the command's (checkpoints, one file per id): none
            may hold an input.
        input_folders: folders read as a whole (a GAIA copy): nothing may be written inside.
    """
    targets = [*_targets(folders, True), *_targets(trees, True), *_targets(files, False)]
    tree_paths = {t.path for t in _targets(trees, True)}
    read = [Path(p) for p in inputs if p is not None and str(p) != ""]
    whole = [Path(p) for p in input_folders if p is not None and str(p) != ""]
    for target in targets:
        _check_writable(target)
    sources = [(source, _resolved(source, str(source)), source in whole) for source in [*read, *whole]]
    seen: dict[Path, _Target] = {}
    for target in targets:
        real = _resolved(target.path, target.label)
        ident = _identity(target.path)
        for source, source_real, read_whole in sources:
            if real == source_real or (ident is not None and ident == _identity(source)):
                raise InputError(
                    _say(target.label, "is also an input: refusing to overwrite it"), target.path
                )
            if _inside(real, source_real) and (read_whole or source_real.is_dir()):
                raise InputError(
                    _say(target.label, f"is inside the input folder {source}: refusing to write there"),
                    target.path,
                )
            if target.path in tree_paths and _inside(source_real, real):
                raise InputError(
                    _say(target.label, f"holds the input {source}: refusing to write over it"), target.path
                )
        if not target.folder:
            if real in seen:
                other = seen[real]
                raise InputError(f"{target.label} and {other.label} are the same file", target.path)
            seen[real] = target


# --------------------------------------------------------------------------- atomic writes
_umask: int | None = None


def _file_mode() -> int:
    """The mode ``open(path, "w")`` would give a new file: ``0o666`` less the umask."""
    global _umask
    if _umask is None:
        current = os.umask(0o022)
        os.umask(current)
        _umask = current
    return 0o666 & ~_umask


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success (missing
    parent folders are created then, so a failure leaves nothing behind)."""
    path = Path(path)
    _check_writable(_Target(path, False, str(path)))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InputError("cannot create the output: a parent is a file, not a folder", path) from None
    except PermissionError:
        raise InputError("cannot write here: permission denied", path) from None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except PermissionError:
        raise InputError("cannot write here: permission denied", path) from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_text(path: PathLike, text: str) -> None:
    """Write ``text`` (redacted, UTF-8) atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(redact(text), encoding="utf-8", newline="\n")


__all__ = ["atomic_path", "guard", "redact", "register_secret", "write_text"]
