"""A simulated Xen host that behaves like libxl (libvirt's ``test:///default`` idea).

It lets the reconciler, the CLI and the end-to-end tests run anywhere: same ``Backend`` interface
as the real binding, same JSON configs, and the refusals libxl would make (duplicate names,
out-of-memory, bad enums, a vdev already in use, ...), with libxl-like error text.

``test:///default`` keeps the host in memory. ``test:///ABS/PATH.json`` keeps it in a file so that
separate processes (the agent and a CLI, two agents) see one host: every operation takes an
exclusive ``fcntl`` lock on ``PATH.lock``, loads the state, changes it and replaces the file
atomically (temp file + ``os.replace``), so a reader never sees half a write.

One job per module:

- ``host``: ``SimHost``, the operations, time, events and test hooks;
- ``checks``: what libxl refuses in a config and how it holds a config it takes;
- ``state``: the state document, its shape check and its cheap copies;
- ``store``: where the state lives, in memory or in a shared file;
- ``census``: the names, uuids and memory a create checks against, kept between creates;
- ``faults``: injected latency and failures.
"""

from libxl.hosts.sim.checks import NIL_UUID
from libxl.hosts.sim.host import GIB_KIB, POLL_INTERVAL, SIM_DISK_IO, SIM_NIC_IO, SimHost

__all__ = ["GIB_KIB", "NIL_UUID", "POLL_INTERVAL", "SIM_DISK_IO", "SIM_NIC_IO", "SimHost"]
