"""What the agent says about each reconcile: the reconcile metrics and the per-domain log lines.

Apart from the loop so the wording of the log can be read (and changed) without the threading
around it. It only reads: the ``Result`` and the status the reconciler recorded for it (the
reconciler is the one writer of status, ``reconcilers.apply``).
"""

from __future__ import annotations

from collections import Counter

from agent import log as agentlog
from agent.daemon.metrics import AgentMetrics
from reconcilers import status as st
from reconcilers.apply import Result
from reconcilers.desired import DesiredSet

#: Results that retrying cannot fix until the desired file changes.
TERMINAL = (st.INVALID, st.CONFLICT)


def report(metrics: AgentMetrics, results: list[Result], desired: DesiredSet, rid: str,
           seconds: float) -> None:
    """Metrics, a log line per applied action, a summary when something happened, for the results
    of one reconcile (a key's: one; a full resync's: every guest, each timed ``seconds``). The
    metrics take one call per result label, not one per guest (a tenth of a no-op resync at
    10,000); an in-sync domain says nothing at info level."""
    for label, count in Counter(map(_label, results)).items():
        metrics.observe_reconcile(label, seconds, count)
    verbose = agentlog.debug_enabled()
    for result in results:
        if verbose or not result.quiet:
            _log(result, desired, rid, seconds)


def _label(result: Result) -> str:
    return "error" if result.error else ("invalid" if result.status in TERMINAL else "success")


def _log(result: Result, desired: DesiredSet, rid: str, seconds: float) -> None:
    want = desired.domains.get(result.name)
    current = result.recorded
    file = str(want.file) if want else (current.file if current else None)
    _log_result(result, current, file, rid, seconds)


def _log_result(result: Result, current: st.Status | None, file: str | None, rid: str,
                seconds: float) -> None:
    log = agentlog.domain_logger(result.name, file, "reconcile", rid)
    for action in result.applied:
        log.info("applied", action=action.kind, reason=action.reason)
    # Notes repeat on every resync while the condition lasts: loud only when the status moved.
    moved = current is not None and current.last_transition == current.last_time
    for note in result.notes:
        (log.info if moved else log.debug)("note", kind=note.kind, detail=note.message)
    if result.error:
        log.warning("reconcile failed", status=result.status, error=result.error,
                    seconds=round(seconds, 4))
    elif result.applied or (result.notes and moved):
        log.info("reconciled", status=result.status, seconds=round(seconds, 4))
    else:
        log.debug("in sync", status=result.status, seconds=round(seconds, 4))
