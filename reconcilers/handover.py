"""Hand-over: taking a running guest over explicitly (``xenreconcile adopt NAME...``).

Moving a host from xendomains or libvirt, the guests already run; the agent must neither stop them
(no ``Conflicts=`` with xendomains) nor leave them Unowned for ever. The operator adopts them by
name once their desired files are in place; from then on drift is reported like any guest's. The
``adopt`` setting does the same for every desired name automatically.
"""

from __future__ import annotations

from dataclasses import dataclass

from libxl.hosts.backend import DomainInfo
from reconcilers.desired import DesiredSet
from reconcilers.ownership import is_owned
from reconcilers.policy import Policy
from reconcilers.state import Inventory, OwnedDomain

#: States in which a guest can be taken over (a dead one is for the run strategy to handle).
_LIVE = ("running", "blocked", "paused")


@dataclass(frozen=True)
class Adoption:
    name: str
    adopted: bool
    detail: str


def adoption(name: str, desired: DesiredSet, domains: list[DomainInfo], inventory: Inventory,
             policy: Policy) -> tuple[Adoption, OwnedDomain | None]:
    """Whether the running guest a desired file names may be adopted, and the inventory entry that
    makes it ours (pure). A guest that carries the file's uuid under another name is refused: the
    plan works by name, so it would be created twice."""
    want = desired.domains.get(name)
    if want is None:
        return Adoption(name, False, "no valid desired file declares this name"), None
    by_name = next((d for d in domains if d.name == name), None)
    by_uuid = next((d for d in domains if want.uuid and d.uuid.lower() == want.uuid), None)
    if by_name is None and by_uuid is not None:
        return Adoption(name, False, f"the running guest with its uuid is named {by_uuid.name!r}: rename "
                                     "one of them first (xl rename)"), None
    if by_name is None:
        return Adoption(name, False, "no guest of that name runs on the host"), None
    if by_name.domid == 0:
        return Adoption(name, False, "Domain-0 is never adopted"), None
    if is_owned(by_name, inventory, policy):
        return Adoption(name, False, "already owned by this agent"), None
    if by_name.state not in _LIVE:
        return Adoption(name, False, f"the guest is {by_name.state}"), None
    entry = OwnedDomain(name, by_name.uuid, str(want.file), want.content_hash, adopted=True)
    return Adoption(name, True, f"domid {by_name.domid} now owned; drift is reported as usual"), entry
