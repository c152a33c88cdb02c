"""Start-up cost of the CLI: building the parser, and ``host-shutdown``, load none of the heavy modules.

``xenreconcile host-shutdown`` runs at host power-off, where a slow dom0 pays every import many
times over (agent.cli.main's docstring). Each case runs in a fresh interpreter, since this
process has long imported everything.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO_ROOT

#: Third-party packages and project modules the verb modules import only inside their commands.
HEAVY = ("lxml", "structlog", "prometheus_client", "watchdog", "libxl.domain.model", "reconcilers.plan",
         "reconcilers.apply", "agent.daemon.loop")
#: What host-shutdown may not load: it reads settings and the state directory, then talks to the host.
HEAVY_FOR_HOST_SHUTDOWN = ("lxml", "structlog", "prometheus_client", "libxl.domain.model", "reconcilers.plan",
                           "reconcilers.apply")
#: The modules the host-shutdown verb imports (agent.cli.commands.lifecycle.cmd_host_shutdown).
HOST_SHUTDOWN_MODULES = ("agent.config", "agent.lifecycle", "reconcilers.state", "libxl.hosts.uri")


def loaded_after(code: str) -> set[str]:
    """The modules in ``sys.modules`` after a fresh interpreter ran ``code`` on the source tree."""
    script = (f"import json, sys\nsys.path.insert(0, {str(REPO_ROOT)!r})\n{code}\n"
              "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def test_building_the_parser_loads_no_heavy_module() -> None:
    loaded = loaded_after("import agent.cli.main\nagent.cli.main.build_parser()")
    assert "agent.cli.commands.lifecycle" in loaded  # the verb modules are imported, plainly
    assert sorted(loaded.intersection(HEAVY)) == []


def test_host_shutdown_loads_only_what_it_uses() -> None:
    loaded = loaded_after("\n".join(f"import {name}" for name in HOST_SHUTDOWN_MODULES))
    assert sorted(loaded.intersection(HEAVY_FOR_HOST_SHUTDOWN)) == []
