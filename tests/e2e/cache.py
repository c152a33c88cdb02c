"""The e2e image cache: outside the checkout, keyed by a hash of the image recipe.

A warm run finds ``CACHE/image-KEY/`` complete and boots it at once; any change to a file under
``tests/e2e/image/`` gives a new key and one cold build. Downloaded .debs are kept in ``CACHE/debs``
across builds. The project itself reaches dom0 as the Debian package built for each run (run_e2e.py).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RECIPE_DIR = HERE / "image"
IMAGE_FILES = ("xen.elf", "vmlinuz", "initrd.img", "dom0.ext4")
#: Image entries kept besides the current one (older keys are deleted to bound disk use).
KEEP_OLD_IMAGES = 1


def cache_root() -> Path:
    """``$XR_E2E_CACHE``, else /var/cache/xenreconcile-e2e for root, else ~/.cache/xenreconcile-e2e."""
    if os.environ.get("XR_E2E_CACHE"):
        return Path(os.environ["XR_E2E_CACHE"])
    if os.geteuid() == 0:
        return Path("/var/cache/xenreconcile-e2e")
    return Path.home() / ".cache" / "xenreconcile-e2e"


def digest(paths: list[Path], base: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(paths):
        h.update(str(path.relative_to(base)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def image_key() -> str:
    return digest([p for p in RECIPE_DIR.rglob("*") if p.is_file()], RECIPE_DIR)


def ensure_image(root: Path, log: Path) -> tuple[Path, float, bool]:
    """Return (image dir, seconds spent, whether it was built now); build it when missing."""
    key = image_key()
    image = root / f"image-{key}"
    start = time.monotonic()
    if all((image / name).exists() for name in IMAGE_FILES):
        return image, time.monotonic() - start, False
    root.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.run(["bash", str(RECIPE_DIR / "build.sh"), str(image), str(root / "debs")],
                              stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-30:]
        raise RuntimeError("image build failed (log: {}):\n{}".format(log, "\n".join(tail)))
    _drop_old(root, "image-", image)
    return image, time.monotonic() - start, True


def _drop_old(root: Path, prefix: str, current: Path) -> None:
    old = sorted((p for p in root.glob(f"{prefix}*") if p != current and p.is_dir()),
                 key=lambda p: p.stat().st_mtime, reverse=True)
    for path in old[KEEP_OLD_IMAGES:]:
        shutil.rmtree(path, ignore_errors=True)
