"""The simulated host's state: one JSON document (host figures, domain records, the event log), its
shape, and how a transaction copies it.

The stores keep it (``libxl.hosts.sim.store``) and every operation of ``SimHost`` changes it.
Committed documents are never changed in place, so a transaction's copy is cheap
(``working_copy``) and a failed operation leaves the host as it was.
"""

from __future__ import annotations

from typing import Any

State = dict[str, Any]


def listed_name(dom: dict[str, Any]) -> str:
    """The name libxl knows a domain by: none before xenstore has it (a create cut short)."""
    return "" if dom.get("cut_short") == "domain" else str(dom["config"]["c_info"]["name"])


def working_copy(state: State) -> State:
    """What one transaction works on: fresh top-level containers over the same domain records.

    Copying the whole host per call made every operation cost O(guests) deep copies (a 1,000-guest
    reconcile took 36 s). Instead an operation replaces a domain record before changing it
    (``SimHost._own``), so the committed state is never changed in place and an operation that
    fails leaves it exactly as it was, while a call costs one record's copy.
    """
    return {k: v.copy() if isinstance(v, dict | list) else v for k, v in state.items()}


def clone(value: Any) -> Any:
    """A deep copy of JSON-shaped data (dicts, lists, scalars), several times faster than
    ``copy.deepcopy`` (which has to track shared references this data never has)."""
    if isinstance(value, dict):  # scalars are taken as they are, without a call each
        return {k: clone(v) if isinstance(v, (dict, list)) else v for k, v in value.items()}
    if isinstance(value, list):
        return [clone(v) if isinstance(v, (dict, list)) else v for v in value]
    return value


def pending_shutdowns(state: State) -> dict[str, float]:
    """Domain key -> due time of every shutdown request in flight.

    An index, so that bringing time up to date (done by every call) does not visit every guest;
    rebuilt once from the records for a state file saved before the index existed.
    """
    if "pending_shutdowns" not in state:
        state["pending_shutdowns"] = {k: d["shutdown_due"] for k, d in state["domains"].items()
                                      if d.get("shutdown_due") is not None}
    return state["pending_shutdowns"]


def new_state(total_memory_kib: int, dom0_memory_kib: int, nr_cpus: int) -> State:
    return {"version": 1, "total_memory_kib": total_memory_kib, "dom0_memory_kib": dom0_memory_kib,
            "nr_cpus": nr_cpus, "next_domid": 1, "seq": 0, "events": [], "domains": {},
            "pending_shutdowns": {}}


#: The top-level fields of a simulated host's state and their JSON types (``shape_problem``).
_STATE_FIELDS: dict[str, type | tuple[type, ...]] = {
    "total_memory_kib": int, "dom0_memory_kib": int, "nr_cpus": int, "next_domid": int, "seq": int,
    "events": list, "domains": dict}
#: The fields of one domain record.
_DOMAIN_FIELDS: dict[str, type | tuple[type, ...]] = {
    "domid": int, "config": dict, "state": str, "memory_kib": int, "started": (int, float),
    "shutdown_reason": (str, type(None)), "shutdown_due": (int, float, type(None))}


def _field_problem(record: Any, fields: dict[str, type | tuple[type, ...]], where: str) -> str | None:
    if not isinstance(record, dict):
        return f"{where.rstrip('.') or 'the file'} must be a JSON object"
    for key, kind in fields.items():
        value = record.get(key)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
            return f"{where}{key} is missing or not {'an integer' if kind is int else 'of the right type'}"
    return None


def shape_problem(state: Any) -> str | None:
    """What makes ``state`` (a decoded state file) something other than a simulated host, or None.

    Checked once per load of a changed file, so a hand-edited or foreign JSON file is one sentence
    (``domains['3'].config.b_info must be an object``) instead of a KeyError deep inside an operation.
    An empty object is a host not initialised yet."""
    if state == {}:
        return None
    problem = _field_problem(state, _STATE_FIELDS, "")
    if problem:
        return problem
    for key, dom in state["domains"].items():
        where = f"domains[{key!r}]."
        problem = _field_problem(dom, _DOMAIN_FIELDS, where)
        if problem:
            return problem
        for part in ("c_info", "b_info"):
            if not isinstance(dom["config"].get(part), dict):
                return f"{where}config.{part} must be an object"
        if not isinstance(dom["config"]["c_info"].get("name"), str):
            return f"{where}config.c_info.name must be a string"
        if not isinstance(dom["config"]["b_info"].get("max_memkb"), int):
            return f"{where}config.b_info.max_memkb must be an integer"
    if not all(isinstance(e, dict) and isinstance(e.get("seq"), int) for e in state["events"]):
        return "events must be objects with an integer seq"
    return None
