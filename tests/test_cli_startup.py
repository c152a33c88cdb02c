"""Start-up cost of the CLI: building the parser, and ``host-shutdown``, load none of the heavy modules;
a run of one verb loads its own verb module only.

``xenreconcile host-shutdown`` runs at host power-off, where a slow dom0 pays every import many
times over (agent.cli.main's docstring). Each case runs in a fresh interpreter, since this
process has long imported everything.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from agent.cli.main import COMMANDS, build_parser
from tests.conftest import REPO_ROOT

#: Third-party packages and project modules the verb modules import only inside their commands.
HEAVY = ("lxml", "structlog", "prometheus_client", "watchdog", "libxl.domain.model", "reconcilers.plan",
         "reconcilers.apply", "agent.daemon.loop")
#: What host-shutdown may not load: it reads settings and the state directory, then talks to the host.
HEAVY_FOR_HOST_SHUTDOWN = ("lxml", "structlog", "prometheus_client", "libxl.domain.model", "reconcilers.plan",
                           "reconcilers.apply")
#: The modules the host-shutdown verb imports (agent.cli.commands.lifecycle.cmd_host_shutdown).
HOST_SHUTDOWN_MODULES = ("agent.config", "agent.lifecycle", "reconcilers.state", "libxl.hosts.uri",
                         "libxl.hosts.binding.host")


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


def project(modules: set[str]) -> set[str]:
    return {m for m in modules if m.split(".")[0] in ("agent", "libxl", "reconcilers")}


def registered(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each verb of ``parser`` and the module of the function it runs."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {verb: p.get_default("func").__module__ for verb, p in sub.choices.items()}


def test_the_verb_table_says_what_each_module_registers() -> None:
    declared = {verb: f"agent.cli.commands.{module}" for module, verbs in COMMANDS.items() for verb in verbs}
    assert registered(build_parser()) == declared


@pytest.mark.parametrize("verb", sorted(v for verbs in COMMANDS.values() for v in verbs))
def test_a_run_of_one_verb_builds_and_imports_its_own_module_only(verb: str) -> None:
    module = next(f"agent.cli.commands.{m}" for m, verbs in COMMANDS.items() if verb in verbs)
    loaded = loaded_after(f"import agent.cli.main\nagent.cli.main.build_parser({verb!r})")
    alone = loaded_after(f"import agent.cli.main, {module}")
    assert module in loaded
    assert project(loaded) == project(alone)  # no project module but those the verb's module imports
    assert set(registered(build_parser(verb)).values()) == {module}


def test_anything_but_a_verb_builds_the_whole_tree() -> None:
    whole = registered(build_parser())
    for first in (None, "--help", "no-such-verb", "-h"):
        assert registered(build_parser(first)) == whole
