"""The desired set: every domain the desired-state directory declares, as model and libxl config.

Rules the prior art taught (see ../shared/notes/reconciler-prior-art.md):

- only known suffixes (``DESIRED_SUFFIXES``: domain XML and xl.cfg) are read; dotfiles and editor
  litter (``.swp``, ``~``, ``.#x``, vim's ``4913`` probe) never are, so a backup file never boots a
  second guest the way xendomains lets it;
- symlinks are followed and the directory is re-listed through its path on every scan, so a GitOps
  tool that swaps a symlinked directory is seen at once;
- two files that declare the same name or uuid are a *conflict*: neither is applied;
- a file that fails to parse is reported in ``invalid`` and the last good version of its domain
  stays in force (``last_good``), so a broken file never shuts a guest down (Flux keeps the last
  applied revision the same way);
- a file that anyone but the agent's user or root could have written, or that asks for what the
  security policy does not allow (``reconcilers.security``), is invalid in the same way;
- a ``*.cfg`` is read by the xl front end (``libxl.frontends.xl``: what ``xl create`` builds, with
  the host's xl.conf laid under it), a ``*.xml`` by the domain-XML parser and libvirt's libxl-driver
  choices (``libxl.frontends.libvirt``); both give the libxl JSON the rest of the reconciler works on;
- ``host`` (libxl.frontends.hostconf: the host's xl.conf and libxl.conf) fills each config's gaps the way
  ``xl create`` does, so one file gives the same guest under the agent as under xl;
- no candidate file at all sets ``empty_suspicious``: the caller prunes nothing on the strength of
  it unless the policy allows an empty source (Argo CD's allowEmpty).

Parsing is cached per file by (path, mtime_ns, size, inode), then by content hash, so a no-op rescan
of a large directory costs one ``O_PATH`` open and ``fstat`` per file (``libxl.domain.formats.readfile``:
each file is opened once, and owner, modes and cache key come from that descriptor).
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from libxl.domain.formats.domxml import MAX_XML_BYTES
from libxl.domain.formats.load import is_desired_name, located, parse_domain_bytes
from libxl.domain.formats.readfile import (
    Directory,
    Missing,
    NotADirectory,
    Trust,
    open_directory,
    open_regular,
)
from libxl.domain.formats.xlcfg import config_text
from libxl.domain.model import DEFAULT_RUN_STRATEGY, Domain
from libxl.errors import ConfigError
from libxl.frontends.hostconf import apply_host_settings
from libxl.frontends.hostsettings import HostSettings
from libxl.frontends.libvirt import build_config
from libxl.frontends.xl import read_xl_config
from libxl.hosts.backend import LibxlConfig
from reconcilers import security as sec
from reconcilers.securitypolicy import DEFAULT_SECURITY, SecurityPolicy

#: Names editors and tools leave next to the files they save.


@dataclass(frozen=True)
class DesiredDomain:
    """One domain as a desired file declares it (``domain``: the model of a domain XML file; an
    xl.cfg has none, its libxl ``config`` is all there is)."""
    name: str
    file: Path
    domain: Domain | None
    config: LibxlConfig
    #: sha256 of the file's bytes: the "revision" applied, recorded in the state inventory.
    content_hash: str
    #: What the file asks for that is taken with a caveat (xl.cfg: what xl would warn about).
    warnings: tuple[ConfigError, ...] = ()
    #: An xl.cfg's ``xenreconcile_run_strategy`` (a domain XML file's is in ``domain``).
    xl_run_strategy: str | None = None

    @property
    def uuid(self) -> str | None:
        uuid = (self.config.get("c_info") or {}).get("uuid") or (self.domain.uuid if self.domain else None)
        return uuid.lower() if uuid else None

    # The two below are cached (in the instance's ``__dict__``, past the frozen ``__setattr__``):
    # the plan asks them of every guest on every resync, and the fields they read never change.

    @functools.cached_property
    def power_state(self) -> str:
        """running (the default), paused or stopped, from the project's ``<metadata>`` (an xl.cfg is
        started running, as ``xl create`` starts it); a guest whose run strategy is ``Halted`` is
        stopped."""
        if self.run_strategy == "Halted":
            return "stopped"
        return (self.domain.power_state if self.domain else None) or "running"

    @functools.cached_property
    def run_strategy(self) -> str:
        """When a guest that is not running is (re)started: ``libxl.domain.model.RUN_STRATEGIES``."""
        chosen = self.domain.run_strategy if self.domain else self.xl_run_strategy
        return chosen or DEFAULT_RUN_STRATEGY


@dataclass(frozen=True)
class _Entry:
    """What the cache knows about one file."""
    stat_key: tuple[int, int, int, int]  # mtime_ns, size, inode, device
    content_hash: str
    result: DesiredDomain | ConfigError
    #: The most recent successful parse of this path, kept in force while ``result`` is an error.
    last_good: DesiredDomain | None


@dataclass
class DesiredSet:
    """The outcome of one scan. ``domains`` is what the reconciler applies."""
    directory: Path
    domains: dict[str, DesiredDomain] = field(default_factory=dict)
    invalid: dict[Path, ConfigError] = field(default_factory=dict)
    conflicts: dict[str, list[Path]] = field(default_factory=dict)
    #: Domains in force from an earlier good version of a file that is now invalid, by file.
    last_good: dict[Path, DesiredDomain] = field(default_factory=dict)
    empty_suspicious: bool = False
    #: The checks the files passed (None: none at all); a scan under another policy re-checks every file.
    security: SecurityPolicy | None = DEFAULT_SECURITY
    #: The host defaults every config was completed with (None: the files alone).
    host: HostSettings | None = None
    _cache: dict[Path, _Entry] = field(default_factory=dict, repr=False)

    def invalid_names(self) -> set[str]:
        """Names declared by a file that is invalid now and kept in force from ``last_good``.

        (A file that never parsed declares no name we know; the plan protects its guest through
        the inventory's record of which file created it.)"""
        return {d.name for d in self.last_good.values()}


@dataclass
class _Checks:
    """The checks of one scan, and the desired directory it reads (opened once per scan)."""
    policy: SecurityPolicy | None
    host: HostSettings | None = None
    uid: int = field(default_factory=os.geteuid)

    @functools.cached_property
    def trust(self) -> Trust | None:
        """The strict_modes judge, one per scan (``Directory.unchanged`` keeps its verdict on the
        directory for that one)."""
        if self.policy is None or not self.policy.strict_modes:
            return None
        return sec.file_trust(self.uid)


def parse_desired_file(path: Path, data: bytes, digest: str, policy: SecurityPolicy | None,
                       host: HostSettings | None = None) -> DesiredDomain | ConfigError:
    """Everything that decides whether one file's bytes are acceptable: parse, libxl config build
    (which refuses what libxl would), host defaults, security policy (its first violation)."""
    if path.suffix.lower() == ".cfg":
        return _parse_xl_file(path, data, digest, policy, host)
    try:
        domain = parse_domain_bytes(path, data)
        own = config = build_config(domain)
        if host is not None:
            config = apply_host_settings(domain, config, host)
    except ConfigError as err:
        return located(err, path, data)
    # The policy judges what the file asks for, not the host's own xl.conf defaults (a vif script
    # the operator chose there is not the file's to justify).
    errors = sec.policy_errors(own, policy, path, data) if policy is not None else []
    if errors:
        return sec.first_error(errors)
    return DesiredDomain(domain.name, path, domain, config, digest)


def _parse_xl_file(path: Path, data: bytes, digest: str, policy: SecurityPolicy | None,
                   host: HostSettings | None) -> DesiredDomain | ConfigError:
    """An xl.cfg through the xl front end: the config ``xl create`` would build on this host."""
    try:
        built = read_xl_config(config_text(data, str(path), MAX_XML_BYTES), str(path), host)
    except ConfigError as err:
        return err.located(str(path))
    # As for domain XML: the policy judges the file's own config, not the host's xl.conf defaults.
    errors = sec.policy_errors(built.own or built.config, policy, path, data) if policy is not None else []
    if errors:
        return sec.first_error(errors)
    return DesiredDomain(built.name, path, None, built.config, digest, tuple(built.warnings),
                         built.run_strategy)


def _evaluate(path: Path, old: _Entry | None, checks: _Checks, base: Directory) -> _Entry | None:
    """The cache entry for ``path`` (a name in ``base``) now; None when the file is gone.

    The file is opened once (``readfile``): the owner and mode checks, the cache key and the bytes
    all come from the descriptors opened, so a swap between check and read cannot happen. A file
    refused for its owner or modes is never read, so it can never become a last good version."""
    if old is not None and base.unchanged(path.name, old.stat_key, checks.trust):
        return old  # what the full resolution below would conclude, for one fstatat
    keep = old.last_good if old else None
    try:
        with open_regular(path.name, checks.trust, base) as opened:
            if old is not None and old.stat_key == opened.key:
                return old
            key = opened.key
            data = opened.read(MAX_XML_BYTES)
    except Missing as err:
        if not err.dangling:
            return None
        err.file = str(path)
        return _Entry((0, 0, 0, 0), "", err, keep)
    except ConfigError as err:
        err.file = str(path)
        return _Entry((0, 0, 0, 0), "", err, keep)
    digest = hashlib.sha256(data).hexdigest()
    if old is not None and old.content_hash == digest:
        return _Entry(key, digest, old.result, old.last_good)
    result = parse_desired_file(path, data, digest, checks.policy, checks.host)
    if isinstance(result, DesiredDomain):
        return _Entry(key, digest, result, result)
    return _Entry(key, digest, result, keep)


def _assemble(directory: Path, cache: dict[Path, _Entry], security: SecurityPolicy | None,
              host: HostSettings | None = None) -> DesiredSet:
    """Build the set from per-file entries: invalid files, last-good fallbacks, conflicts."""
    out = DesiredSet(directory=directory, _cache=cache, empty_suspicious=not cache, security=security,
                     host=host)
    in_force: list[DesiredDomain] = []
    # By name: the set is flat (one directory), where that is Path's order, without its Python-level
    # comparison (a tenth of a second per changed file at 10,000 files).
    for path in sorted(cache, key=lambda p: p.name):
        entry = cache[path]
        if isinstance(entry.result, ConfigError):
            out.invalid[path] = entry.result
            if entry.last_good is not None:
                out.last_good[path] = entry.last_good
                in_force.append(entry.last_good)
        else:
            in_force.append(entry.result)
    by_name: dict[str, list[DesiredDomain]] = {}
    by_uuid: dict[str, list[DesiredDomain]] = {}
    for dom in in_force:
        by_name.setdefault(dom.name, []).append(dom)
        if dom.uuid:
            by_uuid.setdefault(dom.uuid, []).append(dom)
    for group in [*by_name.values(), *by_uuid.values()]:
        if len(group) > 1:
            files = sorted({d.file for d in group})
            for dom in group:
                known = out.conflicts.setdefault(dom.name, [])
                out.conflicts[dom.name] = sorted(set(known) | set(files))
    out.domains = {d.name: d for d in in_force if d.name not in out.conflicts}
    return out


def _open_desired_dir(directory: Path, trust: Trust | None = None) -> Directory:
    """The desired directory, opened once per scan (``readfile``): a git-sync or ConfigMap swap of
    it mid-scan cannot mix two trees. Raises a located ``ConfigError`` when it cannot be opened."""
    try:
        return open_directory(str(directory), trust)
    except Missing:
        raise ConfigError("desired directory does not exist", file=str(directory)) from None
    except NotADirectory:
        raise ConfigError("desired path is not a directory", file=str(directory)) from None
    except ConfigError as err:
        raise ConfigError(f"cannot open desired directory: {err.message}", file=str(directory)) from None


def _listed(directory: Path, base: Directory, known: dict[str, Path] | None = None) -> list[Path]:
    """The desired files of ``base`` as paths under ``directory``; ``known``: the paths of the
    last scan by name, reused as they are (a rescan builds no Path per file it saw before)."""
    try:
        entries = base.names()
    except OSError as exc:
        raise ConfigError(f"cannot list desired directory: {exc.strerror}", file=str(directory)) from None
    known = known or {}
    out = []
    for name, is_dir in entries:
        if is_dir:
            continue
        path = known.get(name)  # a name of the last scan passed ``is_desired_name`` then
        if path is None and is_desired_name(name):
            path = directory / name
        if path is not None:
            out.append(path)
    return out


def desired_paths(directory: Path) -> list[Path]:
    """The files of ``directory`` a scan reads (known suffix, no litter, no subdirectory); raises a
    located ``ConfigError`` when the directory itself cannot be listed."""
    base = _open_desired_dir(directory)
    try:
        return _listed(directory, base)
    finally:
        base.close()


def _previous_cache(previous: DesiredSet | None, security: SecurityPolicy | None,
                    host: HostSettings | None = None) -> dict[Path, _Entry]:
    """The parse cache to start from; under a changed policy every file is re-checked (last good kept)."""
    if previous is None:
        return {}
    if previous.security == security and previous.host == host:
        return previous._cache
    return {p: _Entry((0, 0, 0, 0), "", e.result, e.last_good) for p, e in previous._cache.items()}


def load_desired(directory: Path, previous: DesiredSet | None = None, *,
                 security: SecurityPolicy | None = DEFAULT_SECURITY,
                 host: HostSettings | None = None) -> DesiredSet:
    """Scan ``directory`` and return the desired set.

    ``previous`` (the last result for the same directory) supplies the parse cache and the last good
    version of files that are now broken. ``security`` is the file-mode and content policy (the
    strict defaults unless the caller passes the configured one; None checks nothing). ``host`` are
    the host's xl.conf/libxl.conf defaults (changed ones re-parse every file, like a changed policy). Raises
    ``ConfigError`` only when the directory itself cannot be listed.
    """
    directory = Path(directory)
    old = _previous_cache(previous, security, host)
    checks = _Checks(security, host)
    base = _open_desired_dir(directory, checks.trust)
    cache = {}
    # The paths of the last scan of this directory, so a file seen before costs no new Path.
    same_directory = previous is not None and previous.directory == directory
    known = {path.name: path for path in old} if same_directory else {}
    try:
        for path in _listed(directory, base, known):
            entry = _evaluate(path, old.get(path), checks, base)
            if entry is not None:
                cache[path] = entry
    finally:
        base.close()
    if previous is not None and old is previous._cache and _same_entries(cache, old):
        # Nothing changed: assembling again would rebuild the same set. The new set shares the
        # previous one's dicts (no one changes a set once assembled), which also tells callers
        # comparing the two that nothing is affected without a comparison per domain.
        return replace(previous, _cache=cache)
    return _assemble(directory, cache, security, host)


def _same_entries(new: dict[Path, _Entry], old: dict[Path, _Entry]) -> bool:
    return len(new) == len(old) and all(old.get(path) is entry for path, entry in new.items())

