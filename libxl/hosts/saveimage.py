"""The agent's save images: a short header carrying the guest's libxl config, then libxl's stream.

``xl save`` prefixes libxl's migration stream with its own header holding the domain config, so
``xl restore`` needs nothing else; the agent does the same with a header of its own (a magic line,
the config's length, the config as libxl JSON), so a restore at boot can compare the saved guest with
what its desired file says *before* asking libxl for anything. Both backends use this module: the
real one hands libxl the file descriptor positioned after the header, the simulated host writes its
own small stream there. Byte handling, the files opened by the callers; and ``set_aside``, which
renames an image that will not be restored (``host-shutdown`` finding an old one in the way, a
restore that no longer matches its desired file).
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path
from typing import BinaryIO

from libxl.errors import BackendError, XenReconcileError
from libxl.hosts.backend import LibxlConfig

MAGIC = b"xenreconcile save image v1\n"
#: The suffix of the images ``host-shutdown`` writes into ``save_dir`` (others' files are never read).
SUFFIX = ".xr-save"
#: A config longer than this is not a header but a damaged file.
_MAX_CONFIG = 16 * 1024 * 1024
_LENGTH = struct.Struct(">Q")


def write_header(out: BinaryIO, config: LibxlConfig) -> None:
    """Magic, length, config JSON: what ``read_header`` takes back."""
    body = json.dumps(config, sort_keys=True).encode()
    out.write(MAGIC + _LENGTH.pack(len(body)) + body)
    out.flush()


def read_header(source: BinaryIO, path: str) -> LibxlConfig:
    """The config saved with the image; ``source`` is left at the start of the libxl stream.
    Raises BackendError (permanent) naming ``path`` for anything that is not an agent image."""
    magic = source.read(len(MAGIC))
    if magic != MAGIC:
        raise BackendError("restore", f"{path}: not a xenreconcile save image", transient=False)
    raw = source.read(_LENGTH.size)
    length = _LENGTH.unpack(raw)[0] if len(raw) == _LENGTH.size else -1
    if not 0 < length <= _MAX_CONFIG:
        raise BackendError("restore", f"{path}: damaged save image header", transient=False)
    body = source.read(length)
    try:
        config = json.loads(body)
    except ValueError:
        config = None
    if len(body) != length or not isinstance(config, dict):
        raise BackendError("restore", f"{path}: damaged save image header", transient=False)
    return config


def image_config(path: str) -> LibxlConfig:
    """The config of the image at ``path`` (opens and closes it)."""
    try:
        with open(path, "rb") as source:
            return read_header(source, path)
    except OSError as err:
        raise BackendError("restore", f"{path}: cannot read: {err.strerror or err}", transient=False) from err


def set_aside(image: Path) -> Path:
    """Rename a save image that will not be restored (``NAME.xr-save.set-aside-TIME``): kept for the
    operator, never read again by the agent."""
    target = image.with_name(f"{image.name}.set-aside-{time.strftime('%Y%m%dT%H%M%S')}")
    try:
        image.rename(target)
    except FileNotFoundError:
        return target  # nothing left to keep
    except OSError as err:
        raise XenReconcileError(f"{image}: cannot set the save image aside: {err.strerror}") from err
    return target
