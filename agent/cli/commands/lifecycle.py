"""``xenreconcile host-shutdown``, ``adopt`` and ``clear``: the host lifecycle verbs.

``host-shutdown`` is what ``xenreconcile-guests.service`` runs when the host goes down (after the
agent stopped, so it takes the state directory's lock itself). ``adopt`` and ``clear`` change the
agent's record: while the agent runs they ask it over its root-only socket (it holds the lock and
reconciles the names at once); otherwise they edit the state directory under its lock.
Exit status: 0 done, 1 something failed or was refused (each named on stderr), 2 bad settings.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from agent.config import DEFAULT_CONFIG_PATH, AgentConfig, AgentConfigError, load_config
from libxl.errors import BackendUnavailable, ConfigError, XenReconcileError
from reconcilers.state import StateDir, StateError


def _settings_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help=f"the agent's TOML settings (default {DEFAULT_CONFIG_PATH} if it exists)")
    parser.add_argument("--uri", help="host URI (default: the settings' uri)")
    parser.add_argument("--state-dir", help="the agent's state directory (default: the settings' state_dir)")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    down = sub.add_parser(
        "host-shutdown", help="shut down, save or leave the owned guests as the host goes down",
        description="What xenreconcile-guests.service runs at host shutdown: on_host_shutdown "
                    "(shutdown | save | leave) for the guests this agent owns, and only those, "
                    "host_shutdown_parallel at a time (0: all at once), destroying what is left after "
                    "host_shutdown_timeout. Saved guests are restored when the agent starts.")
    _settings_flags(down)
    down.set_defaults(func=cmd_host_shutdown)
    verbs = [
        ("adopt", cmd_adopt, "take over running guests that desired files name",
         "Record the named running guests as owned by this agent (hand-over from xendomains or libvirt): "
         "their desired file must name them; drift is then reported as usual."),
        ("clear", cmd_clear, "let the agent start guests it holds away (saved, migrated, stopped)",
         "Forget how the named guests left the host (xl save, xl migrate, or a stop their run strategy "
         "respects): the next reconcile starts them as their files say."),
    ]
    for verb, func, summary, description in verbs:
        parser = sub.add_parser(verb, help=summary, description=description)
        parser.add_argument("names", nargs="+", metavar="NAME")
        _settings_flags(parser)
        parser.set_defaults(func=func)
        if verb == "adopt":
            parser.add_argument("--dir", help="desired-state directory (default: the settings' desired_dir)")

def _load(args: argparse.Namespace) -> AgentConfig:
    overrides = {"uri": args.uri, "state_dir": args.state_dir, "desired_dir": getattr(args, "dir", None)}
    return load_config(args.config, {k: v for k, v in overrides.items() if v is not None})


def _fail(verb: str, err: Exception | str, code: int = 1) -> int:
    print(f"xenreconcile {verb}: {err}", file=sys.stderr)
    return code


def cmd_host_shutdown(args: argparse.Namespace) -> int:
    from agent.lifecycle import host_shutdown
    from libxl.hosts.uri import open_backend

    try:
        settings = _load(args)
    except AgentConfigError as err:
        return _fail("host-shutdown", err, 2)
    state = StateDir(Path(settings.state_dir))
    try:
        with state.exclusive():  # the agent has stopped; never beside a running one
            backend = open_backend(settings.uri)
            try:
                inventory = state.load()
                outcomes = host_shutdown(
                    backend, inventory, settings.policy(), mode=settings.on_host_shutdown,
                    parallel=settings.host_shutdown_parallel, timeout=settings.host_shutdown_timeout,
                    save_dir=Path(settings.save_dir))
                state.record_departures([o.departure for o in outcomes if o.departure is not None])
            finally:
                backend.close()
    except (XenReconcileError, ConfigError) as err:
        return _fail("host-shutdown", err)
    for outcome in outcomes:
        print(outcome.line(), file=sys.stdout if outcome.ok else sys.stderr)
    print(f"host-shutdown ({settings.on_host_shutdown}): {len(outcomes)} owned guest(s), "
          f"{sum(not o.ok for o in outcomes)} failed")
    return 0 if all(o.ok for o in outcomes) else 1


def _through_agent(settings: AgentConfig, verb: str, names: list[str]) -> dict[str, Any]:
    from agent.daemon.socket_api import query

    if not settings.socket_path:
        raise BackendUnavailable("the agent runs (it holds the state directory) and socket_path is \"\"")
    return query(settings.socket_path, " ".join([verb, *names]))


def _adopt_here(settings: AgentConfig, state: StateDir, names: list[str]) -> dict[str, Any]:
    """Adopt ``names`` in this process, which holds the state directory (no agent runs)."""
    from libxl.hosts.uri import open_backend
    from reconcilers.apply import Reconciler
    from reconcilers.desired import load_desired

    host = settings.host_settings()  # xl.conf and libxl.conf, read once for both
    backend = open_backend(settings.uri, host=host)
    try:
        desired = load_desired(Path(settings.desired_dir), security=settings.security(), host=host)
        done = Reconciler(backend, settings.policy(), state.path).adopt(names, desired)
    finally:
        backend.close()
    return {"adopt": {a.name: {"adopted": a.adopted, "detail": a.detail} for a in done}}


def _edit_record(verb: str, args: argparse.Namespace) -> dict[str, Any]:
    """Ask the running agent, or change the state directory ourselves when no agent holds it."""
    settings = _load(args)
    state = StateDir(Path(settings.state_dir))
    try:
        with state.exclusive():
            if verb == "clear":
                inventory = state.load()
                cleared = inventory.clear_departures(args.names)
                state.record_departures(cleared=cleared)
                return {"cleared": cleared, "unknown": [n for n in args.names if n not in cleared]}
            return _adopt_here(settings, state, args.names)
    except StateError as err:
        if "in use by another xenreconcile" not in str(err):
            raise
    return _through_agent(settings, verb, args.names)


def _asked(verb: str, args: argparse.Namespace) -> dict[str, Any] | int:
    """The answer document, or the exit status when the request could not be made."""
    try:
        return _edit_record(verb, args)
    except AgentConfigError as err:
        return _fail(verb, err, 2)
    except (XenReconcileError, ConfigError) as err:
        return _fail(verb, err)


def cmd_adopt(args: argparse.Namespace) -> int:
    doc = _asked("adopt", args)
    if isinstance(doc, int):
        return doc
    refused = 0
    for name, verdict in doc.get("adopt", {}).items():
        if verdict["adopted"]:
            print(f"{name}: adopted: {verdict['detail']}")
        else:
            refused += 1
            print(f"xenreconcile adopt: {name}: not adopted: {verdict['detail']}", file=sys.stderr)
    return 1 if refused else 0


def cmd_clear(args: argparse.Namespace) -> int:
    doc = _asked("clear", args)
    if isinstance(doc, int):
        return doc
    for name in doc.get("cleared", []):
        print(f"{name}: cleared; the agent starts it as its file says")
    for name in doc.get("unknown", []):
        print(f"xenreconcile clear: {name}: nothing held (no departure recorded)", file=sys.stderr)
    return 1 if doc.get("unknown") else 0
