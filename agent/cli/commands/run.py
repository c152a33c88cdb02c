"""``xenreconcile run`` (the agent) and ``xenreconcile status`` (ask a running agent).

``run`` flags are generated from ``AgentConfig``, one per setting, so every key of the TOML file can
be overridden on the command line and no flag can exist without a documented, checked setting.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.cli.commands.hosts import domain_rows, with_display_ports
from agent.cli.errors import CommandError
from agent.cli.replies import status_document, status_url
from agent.config import DEFAULT_CONFIG_PATH, AgentConfig, AgentConfigError, load_config
from libxl.errors import BackendUnavailable, ConfigError, XenReconcileError, safe
from libxl.hosts.uri import open_backend, parse_uri
from reconcilers.state import StateDir, StateError

if TYPE_CHECKING:  # the daemon (prometheus_client, watchdog, structlog) loads when `run` runs
    from agent.daemon.socket_api import AgentSocket
    from libxl.hosts.backend import Backend

DEFAULT_STATUS_URL = f"http://{AgentConfig().metrics_listen}"
#: The largest /status reply read (10,000 guests make about 5 MiB); a bigger one is not an agent's.
MAX_STATUS_BYTES = 64 << 20
#: Short flags for the settings people type most.
_ALIASES = {"desired_dir": ["--dir"]}


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    run = sub.add_parser(
        "run", help="run the agent: watch the desired directory and keep the host matching it",
        description="Run the reconciliation agent. Settings come from the TOML file (--config, default "
                    f"{DEFAULT_CONFIG_PATH} if it exists); every flag below overrides its key. Metrics, "
                    "/healthz, /readyz and /status are served on --metrics-listen.")
    run.add_argument("--config", type=Path, metavar="FILE", help="the agent's TOML settings file")
    defaults = AgentConfig()
    for f in fields(AgentConfig):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        names = [flag, *_ALIASES.get(f.name, [])]
        if isinstance(default, bool):
            run.add_argument(*names, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                             help=f"override {f.name} (default {str(default).lower()})")
        elif isinstance(default, tuple):  # a list setting: comma-separated on the command line
            run.add_argument(*names, dest=f.name, type=_comma_list, default=None, metavar="PATH,...",
                             help=f"override {f.name} (default {','.join(default)})")
        else:
            run.add_argument(*names, dest=f.name, type=type(default), default=None,
                             metavar=f.name.upper().replace("_", "-"),
                             help=f"override {f.name} (default {default})")
    run.set_defaults(func=cmd_run)

    status = sub.add_parser("status", help="print the per-domain status of a running agent",
                            description="Read /status from a running agent's HTTP endpoint and print one "
                                        "line per domain (or the JSON document with --json).")
    status.add_argument("--url", default=DEFAULT_STATUS_URL,
                        help=f"the agent's metrics address (default {DEFAULT_STATUS_URL})")
    status.add_argument("--json", action="store_true", help="print the raw JSON status document")
    status.add_argument("--uri", help="ask elsewhere: xen+ssh://[user@]host/system (that host's agent, over "
                                      "ssh) or xen+unix:///system (this agent's root-only socket)")
    status.set_defaults(func=cmd_status)


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {f.name: getattr(args, f.name) for f in fields(AgentConfig) if getattr(args, f.name) is not None}


def cmd_run(args: argparse.Namespace) -> int:
    from agent import log as agentlog

    overrides = _overrides(args)
    try:
        settings = load_config(args.config, overrides)
    except AgentConfigError as err:
        print(f"xenreconcile run: {err}", file=sys.stderr)
        return 2
    agentlog.configure(settings.log_format, settings.log_level)
    log = agentlog.get_logger(component="run")
    try:
        host_settings = settings.host_settings()
    except ConfigError as err:
        print(f"xenreconcile run: {err}", file=sys.stderr)
        return 2
    try:
        backend = open_backend(settings.uri, host=host_settings)
    except ConfigError as err:
        print(f"xenreconcile run: uri: {err}", file=sys.stderr)
        return 2
    except BackendUnavailable as err:
        print(f"xenreconcile run: {err}", file=sys.stderr)
        return 1
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(StateDir(settings.state_dir).exclusive())
        except StateError as err:
            print(f"xenreconcile run: {err}", file=sys.stderr)
            backend.close()
            return 1
        return _serve(args, overrides, settings, backend, log)


def _serve(args: argparse.Namespace, overrides: dict[str, Any], settings: AgentConfig, backend: Backend,
           log: Any) -> int:
    """The agent proper, while this process holds the state directory."""
    from agent.daemon.endpoints import Endpoints, MetricsServer
    from agent.daemon.loop import Controller
    from agent.daemon.metrics import AgentMetrics
    from agent.daemon.systemd import Notifier

    metrics = AgentMetrics()
    try:
        controller = Controller(settings, backend, metrics=metrics, notifier=Notifier(),
                                config_loader=lambda: load_config(args.config, overrides), freeze_heap=True)
    except XenReconcileError as err:  # e.g. a corrupt inventory: never guess at ownership
        print(f"xenreconcile run: {err}", file=sys.stderr)
        backend.close()
        return 1
    try:
        server = MetricsServer(settings.metrics_address, metrics.registry,
                               Endpoints(controller.healthy, controller.ready, controller.status_document))
    except OSError as err:
        print(f"xenreconcile run: metrics_listen {settings.metrics_listen}: {err.strerror}", file=sys.stderr)
        backend.close()
        return 1
    server.start()
    host, port = server.address
    log.info("agent starting", uri=settings.uri, desired_dir=settings.desired_dir,
             state_dir=settings.state_dir, metrics=f"http://{host}:{port}/metrics")
    signal.signal(signal.SIGTERM, lambda *_: controller.request_stop())
    signal.signal(signal.SIGINT, lambda *_: controller.request_stop())
    signal.signal(signal.SIGHUP, lambda *_: controller.request_reload())
    local = start_agent_socket(settings.socket_path, controller.status_document, backend, log,
                               {"adopt": controller.adopt, "clear": controller.clear})
    try:
        return controller.run()
    finally:
        server.stop()
        if local is not None:
            local.stop()


def start_agent_socket(path: str, status: Callable[[], dict[str, Any]], backend: Backend,
                       log: Any, verbs: dict[str, Callable[..., Any]] | None = None) -> AgentSocket | None:
    """The xen+unix:///system listener; a failure is logged, not fatal (HTTP /status still works).
    ``verbs`` are the operator's requests that change the agent's record (adopt, clear)."""
    from agent.daemon.socket_api import AgentSocket

    if not path:
        return None
    def rows() -> list[dict[str, object]]:
        return domain_rows(with_display_ports(backend, backend.list_domains()))

    try:
        local = AgentSocket(path, {"status": status, "list": rows, **(verbs or {})})
    except OSError as err:
        log.warning("agent socket unavailable", socket=path, error=str(err))
        return None
    local.start()
    return local


def format_status(doc: dict[str, Any]) -> list[str]:
    """One line per domain (name, state, last action, display ports when any guest has one, file,
    error), then invalid files."""
    rows = []
    for name, s in sorted(doc.get("domains", {}).items()):
        ports = " ".join(f"{kind}:{s[f'{kind}_port']}" for kind in ("vnc", "spice") if s.get(f"{kind}_port"))
        rows.append([name, s.get("state") or "-", s.get("last_action") or "-", ports or "-",
                     s.get("file") or "-", s.get("last_error") or ""])
    known = {s.get("file") for s in doc.get("domains", {}).values()}
    for path, error in sorted(doc.get("invalid_files", {}).items()):
        if path not in known:
            rows.append(["-", "invalid", "-", "-", path, error])
    if not rows:
        return []
    if all(r[3] == "-" for r in rows):
        rows = [r[:3] + r[4:] for r in rows]  # no graphical guest: no ports column
    rows = [[safe(str(cell)) for cell in row] for row in rows]  # names come from files: no ESC, no newline
    last = len(rows[0]) - 1
    widths = [max(len(r[i]) for r in rows) for i in range(last)]
    return ["  ".join(cell.ljust(widths[i]) if i < last else cell for i, cell in enumerate(r)).rstrip()
            for r in rows]


def cmd_status(args: argparse.Namespace) -> int:
    """Errors (a bad --url or --uri, no agent there, a reply that is not a status document) go to
    agent.cli.main's one error path: one line, status 1."""
    import urllib.error
    import urllib.request

    if args.uri is not None:  # agent.cli.remote.dispatch serves the remote ones: never fall back to --url
        parse_uri(args.uri)  # a bad URI is a ConfigError naming the bad part
        raise CommandError(f"--uri {args.uri!r}: status asks xen+ssh://[user@]host/system or "
                           "xen+unix:///system; a local agent's HTTP address is --url")
    url = status_url(args.url).rstrip("/") + "/status"
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = resp.read(MAX_STATUS_BYTES + 1)
        if len(body) > MAX_STATUS_BYTES:
            raise CommandError(f"{url}: reply over {MAX_STATUS_BYTES >> 20} MiB: not an agent's status")
        doc = status_document(json.loads(body), url)
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise CommandError(f"cannot read {url}: {reason}") from None
    if args.json:
        json.dump(doc, sys.stdout, indent=2, sort_keys=True)
        print()
        return 0
    for line in format_status(doc):
        print(line)
    if not doc.get("ready"):
        print("(agent not ready yet: first full reconcile not done)", file=sys.stderr)
    return 0
