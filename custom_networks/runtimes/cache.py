"""Where the runtime files exported at inference are kept, and the name each one is kept under.

The folder is ``$MEDSEG_RUNTIME_CACHE``, else ``$XDG_CACHE_HOME/medseg_bundles/runtime``, else
``~/.cache/medseg_bundles/runtime`` (:func:`configured_cache_dir`). A folder that cannot be created or written (a
read-only home on a hospital workstation, a container without one) never stops a run: :func:`usable_cache_dir`
then uses a temporary folder of this process, removed when it exits, and warns once, naming
``MEDSEG_RUNTIME_CACHE``. A file's name carries a hash of the part's weights, the input rank and the versions of
the packages that write and read it (:func:`cache_key`), so an upgrade never opens a file another version wrote.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.metadata
import logging
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["CACHE_ENV", "cache_key", "configured_cache_dir", "package_versions", "usable_cache_dir"]

#: the environment variable that names the cache folder
CACHE_ENV = "MEDSEG_RUNTIME_CACHE"
#: the packages whose versions change what an exported file holds or how it is read
VERSIONED_PACKAGES = ("torch", "onnx", "onnxruntime", "openvino")

logger = logging.getLogger(__name__)
#: unusable folder -> the temporary folder used instead, for the life of this process
_TEMPORARY: dict[str, Path] = {}


def configured_cache_dir() -> Path:
    """``$MEDSEG_RUNTIME_CACHE``, else ``$XDG_CACHE_HOME/medseg_bundles/runtime`` (an absolute path, as the XDG base
    directory specification requires), else ``~/.cache/medseg_bundles/runtime``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    try:
        base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
    except RuntimeError:  # no HOME and no passwd entry: usable_cache_dir uses a temporary folder instead
        base = Path("~") / ".cache"
    return base / "medseg_bundles" / "runtime"


def _writable(folder: Path) -> str | None:
    """None when ``folder`` exists (or was created) and takes a new file, else why not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        return f"{type(err).__name__}: {err.strerror or err}"
    return None


def usable_cache_dir(folder: str | os.PathLike | None = None) -> Path:
    """``folder`` (default :func:`configured_cache_dir`) when it can be created and written, else a temporary folder
    of this process (the same one for every call, removed at exit), with one warning naming ``MEDSEG_RUNTIME_CACHE``."""
    folder = Path(folder) if folder else configured_cache_dir()
    if str(folder) in _TEMPORARY:
        return _TEMPORARY[str(folder)]
    problem = "no home folder" if folder.parts[:1] == ("~",) else _writable(folder)
    if problem is None:
        return folder
    temporary = Path(tempfile.mkdtemp(prefix="medseg_runtime_"))
    atexit.register(shutil.rmtree, temporary, ignore_errors=True)
    _TEMPORARY[str(folder)] = temporary
    logger.warning("runtime cache %s cannot be written (%s): this run exports into %s, removed at exit, so the next "
                   "run exports again; set %s to a writable folder to keep the exported files", folder, problem,
                   temporary, CACHE_ENV)
    return temporary


def package_versions() -> str:
    """``"torch 2.13.0, onnx 1.23.2, ..."`` of :data:`VERSIONED_PACKAGES` (``none`` for a missing one)."""
    found = []
    for name in VERSIONED_PACKAGES:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} none")
    return ", ".join(found)


def cache_key(weights_hash: str, ndim: int) -> str:
    """The name stem of a part's exported file: a hash of its weights (``weights_hash``), its input rank ``ndim``
    and :func:`package_versions`."""
    return hashlib.sha1(f"{weights_hash} {ndim}d {package_versions()}".encode()).hexdigest()[:20]
