"""``RealHost``: the Backend interface over the real libxenlight (``xen:///system``).

Everything crosses the C boundary as libxl's own JSON, so this module never depends on struct
layouts. Each libxl call is synchronous (``ao_how = NULL``; cffi releases the GIL meanwhile) and
runs with a per-thread capture of libxl's log lines: they go to structlog as they arrive and, when
the call fails, into the ``BackendError`` message, which is where an operator looks first.

libxl holds a context's lock through the compute-bound parts of an operation (a PV domain build
loads and copies the kernel under it), so calls made from several threads on one context run one
after the other, and a boot storm's creates side by side would gain nothing. Each call therefore
borrows a context from a pool that grows as calls overlap (each with libxl's selective SIGCHLD
reaping, which libxl requires of every context when a process has several): as many contexts as
calls in flight, as ``xl`` has one per process. The first context is the events' own and never lent.

Domain death/shutdown events come from a dedicated thread that waits in libxl's event loop (with a
wake-up pipe so ``close`` can stop it before freeing the context) and re-arms death watches for
domains that appeared since, every few seconds.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from libxl.errors import BackendError, BackendUnavailable
from libxl.hosts import saveimage
from libxl.hosts.backend import OWNER_KEY, DomainEvent, DomainInfo, HostInfo, IoStats, LibxlConfig
from libxl.hosts.iostats import read_io


@functools.cache
def _logger() -> Any:
    """structlog's logger for libxl's lines and the event thread, made at the first line: short
    CLI runs where libxl says nothing (``host-shutdown`` at power-off) never import structlog,
    0.6 s of that verb's 1.9 s of imports on the e2e dom0 under TCG."""
    import structlog

    return structlog.get_logger("xenreconcile").bind(component="libxl")


#: xentoollog levels (xentoollog.h): DEBUG=1 ... DETAIL=3, INFO=5, WARN=7, ERROR=8, CRITICAL=9.
_XTL_DETAIL, _XTL_WARN, _XTL_ERROR = 3, 7, 8
#: How a failed call on a domain that does not exist begins (``_rc_text`` of libxl's -21).
_NOT_FOUND = "ERROR_DOMAIN_NOTFOUND"
#: libxl errors after which retrying the same request cannot succeed.
_PERMANENT_ERRORS = {"INVAL", "NI", "VNUMA_CONFIG_INVALID", "FEATURE_REMOVED", "DEVICE_EXISTS",
                     "NOTFOUND", "DOMAIN_NOTFOUND"}
_SHUTDOWN_REASONS = {0: "poweroff", 1: "reboot", 2: "suspend", 3: "crash", 4: "watchdog",
                     5: "soft_reset"}
_T = TypeVar("_T")
_PRIVCMD = ("/dev/xen/privcmd", "/proc/xen/privcmd")
_NIL_UUID = "00000000-0000-0000-0000-000000000000"
#: How often the event thread looks for new domains to watch.
_REARM_MS = 5000
_SHUTDOWN_POLL_S = 0.2


def _load_native() -> Any:
    try:
        from libxl.hosts.binding import _libxl
    except ImportError as err:
        raise BackendUnavailable(
            "xen:///system is unavailable: the libxl binding was not built, because the libxl "
            "headers (Debian package libxen-dev) were missing when xenreconcile was installed; "
            f"install libxen-dev and reinstall xenreconcile ({err})"
        ) from None
    return _libxl


_native = None
#: RealHost instances by the id passed to the C logger, so log lines find their host.
_hosts: dict[int, RealHost] = {}


def _bind_logger(native: Any) -> None:
    """Define the ``extern "Python"`` log callback once per process."""
    global _native
    if _native is not None:
        return
    ffi = native.ffi

    @ffi.def_extern()
    def xr_log_line(user: Any, level: int, errnoval: int, context: Any, message: Any) -> None:
        host = _hosts.get(int(ffi.cast("uintptr_t", user)))
        text = ffi.string(message).decode(errors="replace")
        ctx = ffi.string(context).decode(errors="replace") if context != ffi.NULL else None
        if host is not None:
            host._log_line(level, errnoval, ctx, text)

    _native = native


def _borrowing(method: Callable[..., _T]) -> Callable[..., _T]:
    """Run the whole method on one borrowed context (``RealHost._borrowed``): the calls it makes
    directly on ``_ctx`` as well as through ``_call``."""
    @functools.wraps(method)
    def run(self: RealHost, *args: Any, **kwargs: Any) -> _T:
        with self._borrowed(method.__name__):
            return method(self, *args, **kwargs)
    return run


def _privcmd_problem() -> str | None:
    """Why this process cannot talk to the hypervisor, or None when it should be able to."""
    present = [p for p in _PRIVCMD if os.path.exists(p)]
    if not present:
        return f"no Xen hypervisor here: cannot open {_PRIVCMD[0]} (nor {_PRIVCMD[1]})"
    if not any(os.access(p, os.R_OK | os.W_OK) for p in present):
        return f"cannot open {present[0]}: permission denied (libxl needs root in dom0)"
    return None


class RealHost:
    """A libxl context on this machine; implements ``libxl.hosts.backend.Backend``."""

    def __init__(self, uri: str = "xen:///system", *, log_level: int = _XTL_DETAIL) -> None:
        native = _load_native()
        _bind_logger(native)
        self.uri = uri
        self._ffi = native.ffi
        self._lib = native.lib
        self._tls = threading.local()
        self._key = id(self)
        self._armed: dict[int, Any] = {}
        self._names: dict[int, str] = {}
        self._arm_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._wake: tuple[int, int] | None = None
        self._callback: Callable[[DomainEvent], None] | None = None
        _hosts[self._key] = self
        lines = self._begin_capture()
        # A failed alloc is reported once, in the exception: its log lines are only debug noise.
        self._tls.quiet = True
        self._log_level = log_level
        rc, ctx, logger = self._alloc_context()
        self._tls.lines = self._tls.quiet = None
        if rc != 0:
            del _hosts[self._key]
            detail = "; ".join(lines) or self._rc_text(rc)
            problem = _privcmd_problem()
            if problem is not None:
                raise BackendUnavailable(f"{problem} (libxl_ctx_alloc failed: {detail})")
            raise BackendUnavailable(f"cannot open a libxl context: {detail}")
        #: The context death events are armed and waited on (never lent: a long call on it would hold
        #: the events back); calls borrow the others.
        self._main_ctx: Any = ctx
        self._contexts: list[tuple[Any, Any]] = [(ctx, logger)]
        self._free: list[Any] = []
        self._pool_lock = threading.Lock()
        # Our own xenstore connection (libxl keeps its handle private), for the owner marker.
        self._xsh = self._lib.xs_open(0)
        if self._xsh == self._ffi.NULL:
            err = os.strerror(self._ffi.errno)
            self._lib.libxl_ctx_free(ctx)
            self._lib.xr_logger_free(logger)
            del _hosts[self._key]
            raise BackendUnavailable(f"cannot connect to xenstored: {err}")

    def _alloc_context(self) -> tuple[int, Any, Any]:
        """(rc, ctx, logger): one more libxl context logging to this host, with libxl's selective
        SIGCHLD reaping (every context of the process must have it)."""
        pctx = self._ffi.new("libxl_ctx **")
        plogger = self._ffi.new("xentoollog_logger **")
        rc = self._lib.xr_ctx_alloc(pctx, self._ffi.cast("void *", self._key), self._log_level,
                                   plogger)
        if rc != 0:
            return rc, None, None
        self._lib.xr_childproc_setmode(pctx[0])
        return rc, pctx[0], plogger[0]

    @property
    def _ctx(self) -> Any:
        """The context this thread borrowed for the call it is in (``_borrowed``); outside one, the
        events' own (every public method that uses it directly borrows first: ``_borrowing``)."""
        return getattr(self._tls, "ctx", None) or self._main_ctx

    @contextlib.contextmanager
    def _borrowed(self, operation: str) -> Iterator[None]:
        """A context of its own for this thread while the block runs: a free one, or a new one
        when every context is in a call (module docstring)."""
        if getattr(self._tls, "ctx", None) is not None:
            yield  # nested in a call that already holds one
            return
        if self._main_ctx is None:
            raise BackendError(operation, "the libxl connection is closed", transient=False)
        with self._pool_lock:
            ctx = self._free.pop() if self._free else None
        if ctx is None:
            rc, ctx, logger = self._alloc_context()
            if rc != 0:
                raise BackendError(operation, f"cannot open another libxl context: {self._rc_text(rc)}")
            with self._pool_lock:
                self._contexts.append((ctx, logger))
        self._tls.ctx = ctx
        try:
            yield
        finally:
            self._tls.ctx = None
            with self._pool_lock:
                self._free.append(ctx)

    # -- plumbing ------------------------------------------------------------------------------

    def _begin_capture(self) -> list[str]:
        lines: list[str] = []
        self._tls.lines = lines
        return lines

    def _log_line(self, level: int, errnoval: int, context: str | None, text: str) -> None:
        lines = getattr(self._tls, "lines", None)
        if lines is not None and level >= _XTL_WARN:
            lines.append(text if errnoval <= 0 else f"{text}: {os.strerror(errnoval)}")
        log = _logger()
        method = log.error if level >= _XTL_ERROR else log.warning if level >= _XTL_WARN else (
            log.debug if level <= _XTL_DETAIL else log.info)
        if getattr(self._tls, "quiet", None):
            method = log.debug
        method(text, source=context or "libxl", errno=errnoval if errnoval > 0 else None)

    def _rc_name(self, rc: int) -> str:
        """``DOMAIN_NOTFOUND`` for -21: libxl's error name without the ERROR_ prefix."""
        name = self._lib.libxl_error_to_string(rc)
        return self._ffi.string(name).decode().upper() if name != self._ffi.NULL else str(rc)

    def _rc_text(self, rc: int) -> str:
        return f"ERROR_{self._rc_name(rc)} ({rc})"

    def _call(self, operation: str, func: Any, *args: Any, domain: str | None = None,
              transient: bool | None = None, main: bool = False) -> int:
        """Run one libxl call with log capture, on a borrowed context (``main``: on the one events
        are waited on); raise BackendError on a negative return."""
        lines = self._begin_capture()
        try:
            if main:
                rc = func(self._main_ctx, *args)
            else:
                with self._borrowed(operation):
                    rc = func(self._ctx, *args)
        finally:
            self._tls.lines = None
        if rc < 0:
            permanent = self._rc_name(rc) in _PERMANENT_ERRORS
            detail = self._rc_text(rc) + (": " + "; ".join(lines) if lines else "")
            raise BackendError(operation, detail, domain=domain,
                               transient=(not permanent) if transient is None else transient)
        return rc

    def _on_domain(self, operation: str, func: Any, domid: int, *args: Any) -> int:
        """One libxl call on domain ``domid`` (``_call``). libxl tells of a domain that is not there
        in many ways (ERROR_FAIL "unable to get domain type", ERROR_LOCK_FAIL from its userdata
        lock, a hypercall's ESRCH, ...): when the call fails and the domain does not exist, the
        error says so and is permanent, whichever path libxl took (as the simulated host does:
        tests/test_backend_contract.py)."""
        try:
            return self._call(operation, func, domid, *args, domain=str(domid))
        except BackendError as err:
            if not _is_not_found(err) and self._dominfo(domid) is None:
                raise _not_found(operation, domid, err.message) from None
            raise

    def _take_json(self, operation: str, raw: Any) -> Any:
        """Parse and free a malloc'ed JSON string returned by libxl."""
        if raw == self._ffi.NULL:
            raise BackendError(operation, "libxl returned no JSON")
        try:
            return json.loads(self._ffi.string(raw).decode())
        finally:
            self._lib.free(raw)

    @contextlib.contextmanager
    def _struct(self, kind: str, operation: str, data: LibxlConfig | None = None) -> Iterator[Any]:
        """A libxl struct (``domain_config``, ``device_disk``, ``device_nic``), filled from JSON,
        disposed on exit. A config libxl's parser refuses is a permanent error."""
        obj = self._ffi.new(f"libxl_{kind} *")
        getattr(self._lib, f"libxl_{kind}_init")(obj)
        try:
            if data is not None:
                self._call(operation, getattr(self._lib, f"libxl_{kind}_from_json"), obj,
                           json.dumps(data).encode(), transient=False)
            yield obj
        finally:
            getattr(self._lib, f"libxl_{kind}_dispose")(obj)

    # -- host and domains ----------------------------------------------------------------------

    @_borrowing
    def host_info(self) -> HostInfo:
        info = self._ffi.new("libxl_physinfo *")
        self._lib.libxl_physinfo_init(info)
        try:
            self._call("host_info", self._lib.libxl_get_physinfo, info)
            phys = self._take_json("host_info", self._lib.libxl_physinfo_to_json(self._ctx, info))
        finally:
            self._lib.libxl_physinfo_dispose(info)
        version = self._lib.libxl_get_version_info(self._ctx)
        xen_version = ""
        cmdline = ""  # Xen's boot command line: libxl.hosts.balloon reads dom0_mem= from it
        if version != self._ffi.NULL:
            ver = self._take_json("host_info", self._lib.libxl_version_info_to_json(
                self._ctx, self._ffi.cast("libxl_version_info *", version)))
            xen_version = (f"{ver.get('xen_version_major', 0)}.{ver.get('xen_version_minor', 0)}"
                           f"{ver.get('xen_version_extra', '')}")
            cmdline = ver.get("commandline") or ""
        return HostInfo(total_memory_kib=phys.get("total_pages", 0) * 4,
                        free_memory_kib=phys.get("free_pages", 0) * 4,
                        nr_cpus=phys.get("nr_cpus", 0), xen_version=xen_version,
                        extra={**phys, "xen_commandline": cmdline})

    def _name(self, domid: int) -> str:
        raw = self._lib.libxl_domid_to_name(self._ctx, domid)
        if raw == self._ffi.NULL:
            return ""
        try:
            return self._ffi.string(raw).decode()
        finally:
            self._lib.free(raw)

    def _owner(self, domid: int) -> str | None:
        """The owner marker, read where libxl writes ``c_info.xsdata``: ``/local/domain/DOMID/KEY``,
        in the transaction that also names the domain. One xenstore read, not a stored-config
        retrieval per guest (each ``list_domains`` would cost N of those), and it is there even
        when the config is not (an agent killed mid-create leaves such a guest: seen on real Xen)."""
        if domid == 0:
            return None
        size = self._ffi.new("unsigned int *")
        raw = self._lib.xs_read(self._xsh, 0, f"/local/domain/{domid}/{OWNER_KEY}".encode(), size)
        if raw == self._ffi.NULL:
            return None  # no such key (not ours, or a nameless domain) or the domain just went
        try:
            return self._ffi.unpack(self._ffi.cast("char *", raw), size[0]).decode(errors="replace") or None
        finally:
            self._lib.free(raw)

    @_borrowing
    def list_domains(self) -> list[DomainInfo]:
        count = self._ffi.new("int *")
        lines = self._begin_capture()
        try:
            infos = self._lib.libxl_list_domain(self._ctx, count)
        finally:
            self._tls.lines = None
        if infos == self._ffi.NULL:
            raise BackendError("list_domains", "libxl_list_domain failed: " + ("; ".join(lines) or "?"))
        try:
            raw = [self._take_json("list_domains", self._lib.libxl_dominfo_to_json(self._ctx, infos + i))
                   for i in range(count[0])]
        finally:
            self._lib.libxl_dominfo_list_free(infos, count[0])
        result = []
        for info in raw:
            domid = info.get("domid", 0)
            name = self._name(domid)
            self._names[domid] = name
            result.append(dominfo_from_json(info, name, self._owner(domid)))
        return result

    def io_stats(self) -> dict[int, IoStats]:
        """Block and network counters from dom0's sysfs, where xentop reads them."""
        return read_io()

    @_borrowing
    def _dominfo(self, domid: int) -> dict[str, Any] | None:
        """libxl's dominfo JSON for one domain, or None when it no longer exists."""
        info = self._ffi.new("libxl_dominfo *")
        self._lib.libxl_dominfo_init(info)
        try:
            try:
                self._call("domain_info", self._lib.libxl_domain_info, info, domid)
            except BackendError as err:
                if _is_not_found(err):
                    return None
                raise
            return self._take_json("domain_info", self._lib.libxl_dominfo_to_json(self._ctx, info))
        finally:
            self._lib.libxl_dominfo_dispose(info)

    @_borrowing
    def domain_config(self, domid: int) -> LibxlConfig:
        with self._struct("domain_config", "domain_config") as cfg:
            self._on_domain("domain_config", self._lib.libxl_retrieve_domain_configuration, domid, cfg,
                            self._ffi.NULL)
            config = self._take_json("domain_config", self._lib.libxl_domain_config_to_json(self._ctx, cfg))
        self._live_tuning(domid, config.setdefault("b_info", {}))
        return config

    @_borrowing
    def json_roundtrip(self, config: LibxlConfig) -> LibxlConfig:
        """``libxl_domain_config_from_json`` then ``_to_json``: what libxl keeps of ``config``."""
        with self._struct("domain_config", "json_roundtrip", config) as cfg:
            return self._take_json("json_roundtrip", self._lib.libxl_domain_config_to_json(self._ctx, cfg))

    # -- lifecycle -----------------------------------------------------------------------------

    @_borrowing
    def create(self, config: LibxlConfig, *, paused: bool = False) -> int:
        c_info = config.get("c_info") if isinstance(config, dict) else None
        name = c_info.get("name") if isinstance(c_info, dict) else None  # libxl's parser judges the rest
        domid = self._ffi.new("uint32_t *")
        with self._struct("domain_config", "create", config) as cfg:
            self._call("create", self._lib.libxl_domain_create_new, cfg, domid, self._ffi.NULL,
                       self._ffi.NULL, domain=name)
        return self._started(int(domid[0]), name, paused)

    def _started(self, new: int, name: str | None, paused: bool) -> int:
        """After libxl made ``new`` (create or restore): unpause it unless ``paused`` (a domain
        that will not run is destroyed again) and watch its death."""
        if name:
            self._names[new] = name
        if not paused:
            try:
                self.unpause(new)
            except BackendError:
                self.destroy(new)
                raise
        if self._thread is not None:
            self._arm(new)
        return new

    def unpause(self, domid: int) -> None:
        self._on_domain("unpause", self._lib.libxl_domain_unpause, domid, self._ffi.NULL)

    def pause(self, domid: int) -> None:
        self._on_domain("pause", self._lib.libxl_domain_pause, domid, self._ffi.NULL)

    def shutdown(self, domid: int, timeout: float) -> bool:
        """Ask the guest to power off; when it has, destroy the husk as xl's daemon would. A guest
        that ``xl create`` started still has that daemon (xendomains' guests after a hand-over): it
        may destroy the husk first, and the guest is just as gone. libxl's lines of that destroy go
        to debug: a lost race is no error, and any other failure carries them in its message.

        A request that fails while the guest is on its way down anyway is no failure either:
        someone asked first (an operator's ``xl shutdown``, a racing xendomains), the guest took
        that request, and libxl timed out waiting for it to take ours (seen on the e2e host)."""
        try:
            self._on_domain("shutdown", self._lib.libxl_domain_shutdown, domid, self._ffi.NULL)
        except BackendError as err:
            if _is_not_found(err):  # it was never there: the caller's not-found, as for any call
                raise
            info = self._dominfo(domid)
            if info is not None and not info.get("shutdown"):
                raise
        deadline = time.monotonic() + timeout
        while True:
            info = self._dominfo(domid)
            if info is None:
                return True
            if info.get("shutdown") and info.get("shutdown_reason") != "suspend":
                self._tls.quiet = True
                try:
                    self.destroy(domid)
                except BackendError as err:
                    if not _is_not_found(err):
                        raise
                finally:
                    self._tls.quiet = None
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(_SHUTDOWN_POLL_S)

    def destroy(self, domid: int) -> None:
        self._on_domain("destroy", self._lib.libxl_domain_destroy, domid, self._ffi.NULL)

    # -- host lifecycle: save images, restore, core dumps ---------------------------------------

    def save(self, domid: int, path: str) -> None:
        """Like ``xl save``: header with the config, libxl's stream, then destroy; a failed suspend
        resumes the guest (``libxl_domain_resume`` with suspend_cancel, as xl does)."""
        config = self.domain_config(domid)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            with os.fdopen(fd, "wb", buffering=0, closefd=False) as out:
                saveimage.write_header(out, config)
            try:
                self._call("save", self._lib.libxl_domain_suspend, domid, fd, 0, self._ffi.NULL,
                           domain=str(domid))
            except BackendError:
                with contextlib.suppress(BackendError):
                    self._call("save", self._lib.libxl_domain_resume, domid, 1, self._ffi.NULL,
                               domain=str(domid))
                raise
            os.fsync(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        finally:
            os.close(fd)
        self.destroy(domid)

    @_borrowing
    def restore(self, path: str, config: LibxlConfig, *, paused: bool = False) -> int:
        name = config.get("c_info", {}).get("name")
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as err:
            raise BackendError("restore", f"{path}: {err.strerror}", domain=name, transient=False) from err
        domid = self._ffi.new("uint32_t *")
        params = self._ffi.new("libxl_domain_restore_params *")
        self._lib.libxl_domain_restore_params_init(params)
        params.stream_version = 2  # libxl_domain_suspend writes a v2 stream (LIBXL_HAVE_STREAM_V2)
        try:
            with os.fdopen(fd, "rb", buffering=0, closefd=False) as source:
                saveimage.read_header(source, path)  # leaves fd at the start of libxl's stream
            with self._struct("domain_config", "restore", config) as cfg:
                self._call("restore", self._lib.libxl_domain_create_restore, cfg, domid, fd, -1, params,
                           self._ffi.NULL, self._ffi.NULL, domain=name)
        finally:
            self._lib.libxl_domain_restore_params_dispose(params)
            os.close(fd)
        return self._started(int(domid[0]), name, paused)

    def core_dump(self, domid: int, path: str) -> None:
        self._call("core_dump", self._lib.libxl_domain_core_dump, domid, path.encode(), self._ffi.NULL,
                   domain=str(domid))

    # -- devices and resources -----------------------------------------------------------------

    def _device_op(self, operation: str, kind: str, func: Any, domid: int, data: LibxlConfig) -> None:
        with self._struct(kind, operation, data) as dev:
            self._on_domain(operation, func, domid, dev, self._ffi.NULL)

    def disk_add(self, domid: int, disk: LibxlConfig) -> None:
        self._device_op("disk_add", "device_disk", self._lib.libxl_device_disk_add, domid, disk)

    def disk_remove(self, domid: int, disk: LibxlConfig) -> None:
        self._device_op("disk_remove", "device_disk", self._lib.libxl_device_disk_remove, domid, disk)

    def nic_add(self, domid: int, nic: LibxlConfig) -> None:
        self._device_op("nic_add", "device_nic", self._lib.libxl_device_nic_add, domid, nic)

    def nic_remove(self, domid: int, nic: LibxlConfig) -> None:
        self._device_op("nic_remove", "device_nic", self._lib.libxl_device_nic_remove, domid, nic)

    def cdrom_insert(self, domid: int, disk: LibxlConfig) -> None:
        self._device_op("cdrom_insert", "device_disk", self._lib.libxl_cdrom_insert, domid, disk)

    def set_memory_target(self, domid: int, target_kib: int) -> None:
        self._on_domain("set_memory_target", self._lib.libxl_set_memory_target, domid, target_kib, 0, 1)

    def set_vcpus_online(self, domid: int, count: int) -> None:
        info = self._dominfo(domid)
        if info is None:
            raise _not_found("set_vcpus_online", domid, "libxl_domain_info")
        maximum = info.get("vcpu_max_id", 0) + 1
        if not 1 <= count <= maximum:
            raise BackendError("set_vcpus_online", f"{count} vcpus requested, the domain has at most "
                               f"{maximum}", domain=str(domid), transient=False)
        with self._bitmap("set_vcpus_online", range(count), maximum) as bitmap:
            self._on_domain("set_vcpus_online", self._lib.libxl_set_vcpuonline, domid, bitmap, self._ffi.NULL)

    @contextlib.contextmanager
    def _bitmap(self, operation: str, bits: Iterable[int] | None, size: int = 0) -> Iterator[Any]:
        """A ``libxl_bitmap`` with ``bits`` set (NULL for None: "leave as it is"), disposed on exit."""
        if bits is None:
            yield self._ffi.NULL
            return
        bits = list(bits)
        bitmap = self._ffi.new("libxl_bitmap *")
        self._lib.libxl_bitmap_init(bitmap)
        try:
            self._call(operation, self._lib.libxl_bitmap_alloc, bitmap, max([size, *(b + 1 for b in bits)]))
            for bit in bits:
                self._lib.libxl_bitmap_set(bitmap, bit)
            yield bitmap
        finally:
            self._lib.libxl_bitmap_dispose(bitmap)

    # -- live tuning: xl vcpu-pin, xl sched-credit2, xl mem-max ---------------------------------

    def set_vcpu_affinity(self, domid: int, vcpu: int, hard: list[int] | None,
                          soft: list[int] | None) -> None:
        op = "set_vcpu_affinity"
        if any(cpus is not None and (not cpus or min(cpus) < 0) for cpus in (hard, soft)):
            raise BackendError(op, f"vcpu {vcpu}: an affinity needs at least one cpu, none negative",
                               domain=str(domid), transient=False)
        # libxl would cut a map at the host's last cpu and report the shorter one back: the same
        # pinning would be asked for on every resync. Refused instead, as the simulated host does.
        last = int(self.host_info().extra.get("max_cpu_id", 0))
        beyond = sorted(c for cpus in (hard or [], soft or []) for c in cpus if c > last)
        if beyond:
            raise BackendError(op, f"vcpu {vcpu}: affinity names cpu {beyond[0]}, the host has 0..{last}",
                               domain=str(domid), transient=False)
        with self._bitmap(op, hard) as hard_map, self._bitmap(op, soft) as soft_map:
            self._call(op, self._lib.libxl_set_vcpuaffinity, domid, vcpu, hard_map, soft_map,
                       domain=str(domid))

    def set_sched_params(self, domid: int, params: dict[str, int]) -> None:
        op = "set_sched_params"
        unknown = sorted(set(params) - {"weight", "cap"})
        if unknown:
            raise BackendError(op, f"scheduler parameter {unknown[0]!r} is not set live",
                               domain=str(domid), transient=False)
        sched = self._ffi.new("libxl_domain_sched_params *")
        self._lib.libxl_domain_sched_params_init(sched)  # every field "default": left unchanged
        try:
            if "weight" in params:
                sched.weight = params["weight"]
            if "cap" in params:
                sched.cap = params["cap"]
            self._call(op, self._lib.libxl_domain_sched_params_set, domid, sched, domain=str(domid))
        finally:
            self._lib.libxl_domain_sched_params_dispose(sched)

    def set_max_memory(self, domid: int, max_kib: int) -> None:
        self._call("set_max_memory", self._lib.libxl_domain_setmaxmem, domid, max_kib, domain=str(domid))

    def _live_tuning(self, domid: int, b_info: dict[str, Any]) -> None:
        """Lay the live affinity and scheduler weight/cap over a retrieved config: libxl's stored
        config keeps what the domain was created with, and ``xl vcpu-pin``/``xl sched-credit2``
        (or this agent) change only the hypervisor's copy."""
        count, nr_cpus = self._ffi.new("int *"), self._ffi.new("int *")
        infos = self._lib.libxl_list_vcpu(self._ctx, domid, count, nr_cpus)
        if infos != self._ffi.NULL:
            try:
                to_json = self._lib.libxl_vcpuinfo_to_json
                vcpus = [self._take_json("domain_config", to_json(self._ctx, infos + i))
                         for i in range(count[0])]
            finally:
                self._lib.libxl_vcpuinfo_list_free(infos, count[0])
            b_info.pop("cpumap", None)
            b_info["vcpu_hard_affinity"] = [v.get("cpumap") or [] for v in vcpus]
            b_info["vcpu_soft_affinity"] = [v.get("cpumap_soft") or [] for v in vcpus]
        sched = self._ffi.new("libxl_domain_sched_params *")
        self._lib.libxl_domain_sched_params_init(sched)
        try:
            if self._lib.libxl_domain_sched_params_get(self._ctx, domid, sched) == 0:
                live = self._take_json("domain_config",
                                       self._lib.libxl_domain_sched_params_to_json(self._ctx, sched))
                b_info["sched_params"] = {**(b_info.get("sched_params") or {}), **live}
        finally:
            self._lib.libxl_domain_sched_params_dispose(sched)

    # -- events --------------------------------------------------------------------------------

    def _arm(self, domid: int) -> None:
        with self._arm_lock:
            if domid in self._armed:
                return
            evgen = self._ffi.new("libxl_evgen_domain_death **")
            try:
                self._call("watch_events", self._lib.libxl_evenable_domain_death, domid, domid, evgen,
                           main=True)
            except BackendError as err:
                _logger().warning("cannot watch domain", domid=domid, error=str(err))
                return
            self._armed[domid] = evgen[0]

    def _disarm(self, domid: int) -> None:
        with self._arm_lock:
            evgen = self._armed.pop(domid, None)
        if evgen is not None:
            self._lib.libxl_evdisable_domain_death(self._main_ctx, evgen)

    def _arm_all(self) -> None:
        for info in self.list_domains():
            if info.domid != 0:
                self._arm(info.domid)

    def watch_events(self, callback: Callable[[DomainEvent], None]) -> None:
        if self._thread is not None:
            raise BackendError("watch_events", "already watching", transient=False)
        self._callback = callback
        self._wake = os.pipe()
        self._arm_all()
        self._thread = threading.Thread(target=self._event_loop, name="libxl-events", daemon=True)
        self._thread.start()

    def _event_loop(self) -> None:
        assert self._wake is not None
        out = self._ffi.new("libxl_event **")
        while True:
            rc = self._lib.xr_wait_event(self._main_ctx, self._wake[0], _REARM_MS, out)
            if rc == 1:
                return
            if rc == 2:
                self._safely(self._arm_all)
                continue
            if rc < 0:
                _logger().error("libxl event wait failed", error=self._rc_text(rc))
                time.sleep(1)
                continue
            event = self._translate(out[0])
            self._lib.libxl_event_free(self._main_ctx, out[0])
            if event is not None and self._callback is not None:
                self._safely(self._callback, event)

    def _translate(self, raw: Any) -> DomainEvent | None:
        domid = int(raw.domid)
        name = self._names.get(domid)
        if raw.type == self._lib.LIBXL_EVENT_TYPE_DOMAIN_DEATH:
            self._disarm(domid)
            return DomainEvent(kind="death", domid=domid, name=name)
        if raw.type == self._lib.LIBXL_EVENT_TYPE_DOMAIN_SHUTDOWN:
            reason = _SHUTDOWN_REASONS.get(self._lib.xr_event_shutdown_reason(raw), "unknown")
            return DomainEvent(kind="crash" if reason == "crash" else "shutdown", domid=domid, name=name,
                               reason=reason)
        return None

    @staticmethod
    def _safely(func: Callable[..., Any], *args: Any) -> None:
        try:
            func(*args)
        except Exception as err:  # the event thread must survive a failing callback
            _logger().error("libxl event handling failed", error=repr(err))

    def close(self) -> None:
        """Stop the event thread, drop the watches, free every context (idempotent)."""
        if self._main_ctx is None:
            return
        if self._thread is not None and self._wake is not None:
            os.write(self._wake[1], b"x")
            self._thread.join()
            for fd in self._wake:
                os.close(fd)
            self._thread = self._wake = None
        for domid in list(self._armed):
            self._disarm(domid)
        self._lib.xs_close(self._xsh)
        with self._pool_lock:
            contexts, self._contexts, self._free = self._contexts, [], []
        for ctx, logger in contexts:
            self._lib.libxl_ctx_free(ctx)
            self._lib.xr_logger_free(logger)
        self._main_ctx = None
        _hosts.pop(self._key, None)


def _not_found(operation: str, domid: int, detail: str) -> BackendError:
    return BackendError(operation, f"{_NOT_FOUND}: domain {domid} does not exist ({detail})",
                        domain=str(domid), transient=False)


def _is_not_found(err: BackendError) -> bool:
    """Whether ``err`` says the domain does not exist (libxl's own error name, or ``_not_found``)."""
    return err.message.startswith(_NOT_FOUND)


def dominfo_from_json(info: dict[str, Any], name: str, owner: str | None) -> DomainInfo:
    """One ``libxl_dominfo`` (as JSON: false flags, zeros, the nil uuid and the ``unknown`` shutdown
    reason are omitted) as a DomainInfo."""
    reason = info.get("shutdown_reason", "unknown") if info.get("shutdown") else None
    if info.get("dying"):
        state = "dying"
    elif reason == "crash":
        state = "crashed"
    elif info.get("shutdown"):
        state = "shutdown"
    elif info.get("paused"):
        state = "paused"
    elif info.get("blocked") and not info.get("running"):
        state = "blocked"
    else:
        state = "running"
    return DomainInfo(
        name=name, domid=info.get("domid", 0), uuid=info.get("uuid", _NIL_UUID), state=state,
        memory_kib=info.get("current_memkb", 0), max_memory_kib=info.get("max_memkb", 0),
        vcpus_online=info.get("vcpu_online", 0), vcpus_max=info.get("vcpu_max_id", 0) + 1,
        shutdown_reason=reason,
        owner=owner, cpu_time_ns=info.get("cpu_time", 0),
    )


def open_real_host(uri: str = "xen:///system") -> RealHost:
    """The backend for ``xen:///system``; raises BackendUnavailable with the reason when there is
    no usable Xen here (no binding built, no hypervisor, not root)."""
    return RealHost(uri)
