"""Small, dependency-free utilities shared by every part of the project.

`dnnlib.util` holds the attribute dictionary `EasyDict`, the `UserError` exception and the
`cli_main` wrapper that turn bad input into one clear error line, atomic file writing
(`atomic_path`, `atomic_write_bytes`, `atomic_write_text`), time formatting and the cache-folder
lookup used for downloaded weights and dataset statistics.
"""

from .util import EasyDict, UserError, make_cache_dir_path  # noqa: F401
