"""``xenreconcile plan`` and ``xenreconcile apply``: one-shot reconciliation from the command line.

``plan`` is the dry run, printed like ``terraform plan`` (``+`` create, ``~`` update in place,
``-/+`` replace, ``-`` destroy, ``!`` notes), with terraform's ``-detailed-exitcode`` convention:
0 nothing to do, 2 changes pending (a ``RestartRequired`` change the restart policy will not apply
included: a CI gate must not read success for a change that will not happen), 1 error (an invalid or
conflicting desired file, an unowned guest in the way, or a host that cannot be reached). ``apply``
runs the same reconcile the agent runs, once, and exits 0 when the host has converged (a fresh plan
is empty and nothing failed), 3 when all that is left is ``RestartRequired`` changes it was not
allowed to apply, 1 otherwise.
Both share the agent's state directory, so the CLI and the agent agree on what they own; ``apply``
takes the directory's lock, so it refuses to run while the agent (or another apply) holds it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.cli.errors import CommandError
from agent.config import DEFAULT_CONFIG_PATH, AgentConfig, AgentConfigError, load_config
from libxl.errors import safe
from reconcilers.policy import DEFAULT_OWNER, PRUNE_POLICIES, RESTART_POLICIES, Policy
from reconcilers.state import DEFAULT_STATE_DIR, StateDir

if TYPE_CHECKING:  # the planner, the executor and the desired-file readers load when a verb runs
    from libxl.hosts.backend import Backend
    from reconcilers import plan as pl
    from reconcilers.apply import Reconciler, Result
    from reconcilers.desired import DesiredSet

EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_RESTART_REQUIRED = 0, 1, 2, 3


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--uri", default="xen:///system", help="host URI (default: %(default)s)")
    parser.add_argument("--dir", required=True, type=Path, help="desired-state directory")
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR,
                        help="ownership inventory directory (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--prune", choices=PRUNE_POLICIES, default="none",
                        help="owned guests whose file disappeared (default: %(default)s)")
    parser.add_argument("--restart", choices=RESTART_POLICIES, default="never",
                        help="restart-required changes (default: %(default)s)")
    parser.add_argument("--allow-empty", action="store_true",
                        help="let an empty desired directory prune every owned guest")
    parser.add_argument("--adopt", action="store_true", help="take over unowned guests with desired names")
    parser.add_argument("--shutdown-timeout", type=float, default=30.0, metavar="SECONDS",
                        help="graceful shutdown wait before destroy (default: %(default)s)")
    parser.add_argument("--owner", default=DEFAULT_OWNER, help="owner id marker (default: %(default)s)")
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="the agent's TOML settings whose security policy applies to the desired files "
                             f"(default {DEFAULT_CONFIG_PATH} if it exists, else the strict defaults)")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    plan = sub.add_parser("plan", help="show what apply would change (exit 0 none, 2 changes, 1 error)",
                          description="Exit status: 0 nothing to do, 2 changes pending (RestartRequired "
                                      "included), 1 error.")
    _common(plan)
    plan.set_defaults(func=run_plan)
    apply = sub.add_parser("apply", help="make the host match the desired directory once",
                           description="Exit status: 0 converged, 3 only RestartRequired changes left "
                                       "(restart policy never), 1 anything else left or failed.")
    _common(apply)
    apply.set_defaults(func=run_apply)


def _reconciler(args: argparse.Namespace, *, read_only: bool) -> Reconciler:
    """``read_only`` (plan): a simulated host that does not exist yet is seen empty, not created."""
    from libxl.hosts.uri import open_backend  # late: xen:/// loads the native binding only when asked for
    from reconcilers.apply import Reconciler

    policy = Policy(prune=args.prune, restart=args.restart, allow_empty=args.allow_empty, adopt=args.adopt,
                    shutdown_timeout=args.shutdown_timeout, owner=args.owner)
    # The agent's host settings: a create here balloons dom0 (or refuses) as the agent would.
    settings = _settings(args)
    backend = open_backend(args.uri, host=settings.host_settings(), read_only=read_only)
    return Reconciler(backend, policy, args.state_dir, parallel=settings.workers)


def _settings(args: argparse.Namespace) -> AgentConfig:
    try:
        return load_config(args.config)
    except AgentConfigError as err:
        raise CommandError(str(err)) from None


def _desired(args: argparse.Namespace, backend: Backend) -> DesiredSet:
    """The desired set under the agent's security policy and host settings (xl.conf defaults, the
    host's cpu count), so the CLI refuses what the agent refuses and builds the guests it would."""
    from libxl.frontends.hostconf import with_host_cpus
    from reconcilers.desired import load_desired

    settings = _settings(args)
    host = with_host_cpus(settings.host_settings(), lambda: backend.host_info().nr_cpus)
    desired = load_desired(args.dir, security=settings.security(), host=host)
    for dom in desired.domains.values():  # an xl.cfg's caveats (what xl reads leniently or ignores)
        for warning in dom.warnings:
            print(f"{warning} (warning)", file=sys.stderr)
    return desired


def _action_line(action: pl.Action) -> str:
    return safe(f"  {action.symbol:>3} {action.domain}  {action.kind}: {action.reason}")


def _note_line(note: pl.Note) -> str:
    return safe(f"    ! {note.domain}  {note.kind}: {note.message}")


def format_plan(plan: pl.Plan) -> str:
    """The human-readable plan; the last line counts changes like terraform's summary."""
    lines = [_action_line(a) for a in plan.actions]
    lines += [_note_line(n) for n in plan.notes]
    counts = Counter(a.symbol for a in plan.actions)
    if plan.has_changes:
        summary = (f"Plan: {counts['+']} to create, {counts['~']} to change, {counts['-/+']} to replace, "
                   f"{counts['-']} to destroy.")
    else:
        summary = "No changes. The host matches the desired state."
    if plan.notes:
        summary += f" {len(plan.notes)} note{'s' if len(plan.notes) != 1 else ''}."
    return "\n".join([*lines, "", summary] if lines else [summary]) + "\n"


def _blocked(notes: list[pl.Note]) -> bool:
    """Whether a note says the desired state cannot be reached as written."""
    from reconcilers.plan import CONFLICT, INVALID, PENDING, UNOWNED

    return any(n.kind in (CONFLICT, UNOWNED, INVALID, PENDING) for n in notes)


def _restart_required(notes: list[pl.Note]) -> bool:
    from reconcilers.plan import RESTART_REQUIRED

    return any(n.kind == RESTART_REQUIRED for n in notes)


def run_plan(args: argparse.Namespace) -> int:
    """Errors (a bad URI or setting, an unreachable host) go to agent.cli.main's one error path: status 1."""
    reconciler = _reconciler(args, read_only=True)
    try:
        result = reconciler.plan(_desired(args, reconciler.backend))
    finally:
        reconciler.backend.close()
    sys.stdout.write(json.dumps(result.to_json(), indent=2) + "\n" if args.json else format_plan(result))
    if _blocked(result.notes):
        return EXIT_ERROR
    return EXIT_CHANGES if result.has_changes or _restart_required(result.notes) else EXIT_OK


def _result_json(result: Result) -> dict[str, Any]:
    return {"name": result.name, "status": result.status, "error": result.error,
            "applied": [a.to_json() for a in result.applied], "notes": [n.to_json() for n in result.notes]}


def run_apply(args: argparse.Namespace) -> int:
    from agent.collector import collector_paused

    with StateDir(args.state_dir).exclusive():  # never beside a running agent on the same host
        reconciler = _reconciler(args, read_only=False)
        try:
            desired = _desired(args, reconciler.backend)
            with collector_paused():  # every guest's configs held at once (agent.collector)
                results = reconciler.reconcile_all(desired)
                after = reconciler.plan(desired)
        finally:
            reconciler.backend.close()
    failed = [r for r in results if not r.ok]
    if args.json:
        sys.stdout.write(json.dumps({"results": [_result_json(r) for r in results],
                                     "converged": not failed and not after.has_changes}, indent=2) + "\n")
    else:
        for r in results:
            for action in r.applied:
                print(_action_line(action))
            if r.error:
                print(safe(f"    x {r.name}  error: {r.error}"))
            for note in r.notes:
                print(_note_line(note))
        applied = sum(len(r.applied) for r in results)
        print(f"\nApply complete: {applied} action{'s' if applied != 1 else ''}, {len(failed)} failed."
              + (" Changes remain: run plan." if after.has_changes else "")
              + (" Restart required (not applied under --restart never)." if _restart_required(after.notes)
                 else ""))
    if failed or after.has_changes or _blocked(after.notes):
        return EXIT_ERROR
    return EXIT_RESTART_REQUIRED if _restart_required(after.notes) else EXIT_OK
