"""Generic helpers: attribute dicts, user-facing errors, atomic writes, time formatting, caches."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar


class EasyDict(dict):
    """A dict whose keys can also be read and written as attributes (`d.key` == `d['key']`)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        del self[name]


class UserError(Exception):
    """Bad input from the user (an option, a file, a dataset).

    The message must say what is wrong, where, and how to fix it, in one line. Command-line entry
    points wrapped with `cli_main` print it as `error: <message>` and exit with status 2, without a
    traceback.
    """


F = TypeVar("F", bound=Callable[..., Any])


def cli_main(func: F) -> F:
    """Decorate a command-line entry point so `UserError` becomes one line on stderr and exit 2.

    Any other exception propagates with its traceback (that is a bug, not bad input). Apply it
    *inside* the click decorators so click's own usage errors keep their usual form.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("error: interrupted by the user", file=sys.stderr)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------------
# Atomic output: write to a temporary name in the same folder, then rename over the target.


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it to `path`, on failure delete it.

    With `overwrite=False` an existing `path` raises `UserError` before anything is written.
    Works for files and for folders (the caller creates whatever it likes at the yielded path).
    """
    target = Path(path)
    if not overwrite and target.exists():
        raise UserError(f"'{target}' already exists; choose another name or remove it first")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    os.unlink(tmp_name)  # the caller creates a file or a folder there
    tmp = Path(tmp_name)
    try:
        yield tmp
        if not overwrite and target.exists():
            raise UserError(f"'{target}' appeared while it was being written; left untouched")
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            if tmp.is_dir():
                import shutil

                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes, overwrite: bool = True) -> None:
    """Write `data` to `path` through a temporary file and an atomic rename."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path: str | os.PathLike, text: str, overwrite: bool = True) -> None:
    """Write `text` (UTF-8) to `path` through a temporary file and an atomic rename."""
    atomic_write_bytes(path, text.encode("utf-8"), overwrite=overwrite)


# ------------------------------------------------------------------------------------------------
# Misc.


def format_time(seconds: float) -> str:
    """Format a duration the way StyleGAN logs do: `12s`, `3m 04s`, `2h 05m 09s`, `1d 02h 03m`."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 60 * 60:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 24 * 60 * 60:
        return f"{s // 3600}h {(s // 60) % 60:02d}m {s % 60:02d}s"
    return f"{s // 86400}d {(s // 3600) % 24:02d}h {(s // 60) % 60:02d}m"


_cache_dir: str | None = None


def set_cache_dir(path: str | None) -> None:
    """Override the cache root used by `make_cache_dir_path` (None restores the default)."""
    global _cache_dir
    _cache_dir = path


def make_cache_dir_path(*parts: str) -> str:
    """Path inside the cache root: `set_cache_dir`, else `$RENYI_GAN_CACHE_DIR`, else
    `$DNNLIB_CACHE_DIR`, else `~/.cache/renyi-gan`."""
    root = (
        _cache_dir
        or os.environ.get("RENYI_GAN_CACHE_DIR")
        or os.environ.get("DNNLIB_CACHE_DIR")
        or os.path.join(os.path.expanduser("~"), ".cache", "renyi-gan")
    )
    return os.path.join(root, *parts)


# ------------------------------------------------------------------------------------------------
# Building objects from configuration dicts ({"class_name": "package.module.Class", **kwargs}).

ALLOWED_MODULE_PREFIXES = ("training.", "metrics.", "renyi.", "torch_utils.", "torch.optim.")


def get_obj_by_name(name: str) -> Any:
    """Import `package.module.attr` and return `attr`.

    Only names under the project's own packages and `torch.optim` are allowed, so a config or
    snapshot file can never make the program import arbitrary code.
    """
    import importlib

    if not name.startswith(ALLOWED_MODULE_PREFIXES):
        raise UserError(
            f"refusing to build '{name}': only classes from "
            f"{', '.join(p.rstrip('.') for p in ALLOWED_MODULE_PREFIXES)} may be named in a config"
        )
    module_name, _, attr = name.rpartition(".")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr)
    except (ImportError, AttributeError) as err:
        raise UserError(f"cannot find '{name}' ({err}); is the config from another version?") from None


def construct_class_by_name(*args: Any, class_name: str, **kwargs: Any) -> Any:
    """`get_obj_by_name(class_name)(*args, **kwargs)`."""
    return get_obj_by_name(class_name)(*args, **kwargs)
