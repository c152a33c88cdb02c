"""Fixtures shared by the whole suite."""

from __future__ import annotations

import http.server
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

REPO_ROOT = Path(__file__).resolve().parent.parent
#: libvirt's Xen conversion test data, next to the checkout (see ../shared/README.md).
SHARED_CORPUS = REPO_ROOT.parent / "shared" / "corpus"

# The tests run the source tree's modules by their in-project names (``agent``, ``libxl``, ...), in
# this process and in every Python child they start: an install claims only ``xenreconcile`` (see
# xenreconcile/__init__.py), so a child that runs a script outside the root finds them here.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))


@pytest.fixture(scope="session")
def shared_corpus() -> Path:
    """The corpus directory; skips (with the reason) when ../shared/corpus is not there."""
    if not (SHARED_CORPUS / "MANIFEST.tsv").is_file():
        pytest.skip(f"../shared/corpus is absent: {SHARED_CORPUS} has no MANIFEST.tsv "
                    "(libvirt's Xen conversion test data)")
    return SHARED_CORPUS


@pytest.fixture
def http_json() -> Iterator[tuple[str, list[object]]]:
    """An HTTP server on loopback answering every GET with the JSON of ``body[0]``: (its URL, body)."""
    body: list[object] = [None]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            data = json.dumps(body[0]).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", body
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def _structlog_defaults() -> Iterator[None]:
    """Verbs run in-process configure structlog onto pytest's captured stdout/stderr, which pytest
    closes after the test: restore the defaults, so no later test logs into a closed stream."""
    yield
    structlog.reset_defaults()
