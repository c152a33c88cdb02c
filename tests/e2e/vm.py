"""Boots the e2e Xen host under QEMU and talks to its dom0 over the virtio-serial control channel.

The machine has no network device: the checkout and the freshly built Debian package reach dom0 as
read-only 9p shares (mounted by dom0's fstab), results come back through a writable ``out`` share,
and commands run through ``dom0_control.py`` (a unit in dom0, whose PID 1 is systemd; see its
docstring for the protocol). The flags that matter are the ones the
shared recipe found: TCG (the KVM here is a slow software one), SMAP/SMEP/RDTSCP off for Xen 4.17's
PV dom0 under TCG, and dom0's command line free of commas (QEMU splits multiboot modules on them).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

#: The CPU model for the main run; the libvirt run uses Westmere (libvirtd rejects ``max``).
#: Besides SMAP/SMEP/RDTSCP (see the shared recipe), XSAVE/AVX and PCID/INVPCID are off: with them,
#: dom0 processes (bash in the hotplug scripts, python3, oxenstored, the agent) died now and then
#: in glibc or the interpreter under load, the signature of register or TLB state lost across
#: Xen's context switches under TCG. Westmere, which the libvirt run uses, lacks them all too.
DEFAULT_CPU = "max,-smap,-smep,-rdtscp,-avx,-avx2,-fma,-f16c,-xsave,-pcid,-invpcid"
PORT_NAME = "org.xenreconcile.e2e.ctl"
XEN_ARGS = ("console=com1 com1=115200,8n1 dom0_mem=1024M,max:1024M dom0_max_vcpus=2 "
            "loglvl=all guest_loglvl=all noreboot")
DOM0_ARGS = "console=hvc0 earlyprintk=xen root=/dev/vda rw rootwait"


class VMError(RuntimeError):
    """The VM or its control channel failed (not a scenario failure)."""


@dataclass
class Result:
    rc: int
    out: str
    err: str
    secs: float

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def text(self) -> str:
        return (self.out + self.err).strip()


@dataclass
class Shares:
    src: Path
    #: The directory holding the .deb built from ``src`` (``make deb``).
    deb: Path
    out: Path


class Dom0:
    """One boot of the Xen host. Use as a context manager: leaving it always powers the VM off."""

    def __init__(self, image_dir: Path, shares: Shares, run_dir: Path, cpu: str = DEFAULT_CPU,
                 memory_mib: int = 3072) -> None:
        self.image_dir = image_dir
        self.shares = shares
        self.run_dir = run_dir
        self.cpu = cpu
        self.memory_mib = memory_mib
        self.console_log = run_dir / "console.log"
        #: dom0's disk: a qcow2 overlay on the cached image, so what dom0 writes survives a reboot
        #: inside the run (``snapshot=on`` would drop it) and never reaches the cache.
        self.overlay = run_dir / "dom0.qcow2"
        self.boots = 0
        self.sock_path = run_dir / "ctl.sock"
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None
        self._buffer = b""
        self._next_id = 0

    def qemu_command(self) -> list[str]:
        img = self.image_dir
        accel, cpu = ("kvm", "host") if kvm_is_hardware() else ("tcg,thread=multi,tb-size=512", self.cpu)
        cmd = [
            "qemu-system-x86_64", "-machine", "pc", "-accel", accel, "-cpu", cpu,
            "-smp", "2", "-m", str(self.memory_mib),
            "-display", "none", "-monitor", "none", "-serial", f"file:{self.console_log}",
            "-no-reboot", "-nic", "none",
            "-kernel", str(img / "xen.elf"), "-append", XEN_ARGS,
            "-initrd", f"{img / 'vmlinuz'} {DOM0_ARGS},{img / 'initrd.img'}",
            "-drive", f"file={self.overlay},format=qcow2,if=virtio,cache=unsafe",
            "-device", "virtio-serial-pci",
            "-chardev", f"socket,id=ctl,path={self.sock_path},server=on,wait=off",
            "-device", f"virtserialport,chardev=ctl,name={PORT_NAME}",
        ]
        for tag, path in (("src", self.shares.src), ("deb", self.shares.deb),
                          ("out", self.shares.out)):
            readonly = "" if tag == "out" else ",readonly=on"
            cmd += ["-virtfs", f"local,path={path},mount_tag={tag},security_model=none{readonly}"]
        return cmd

    def __enter__(self) -> Dom0:
        return self

    def __exit__(self, *exc: object) -> None:
        self.poweroff()

    def boot(self, timeout: float) -> float:
        """Start QEMU and wait until dom0's control agent answers; returns the seconds it took."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.sock_path.unlink(missing_ok=True)
        if self.boots and self.console_log.exists():
            self.console_log.rename(self.run_dir / f"console-boot{self.boots}.log")
        if not self.overlay.exists():
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                            str(self.image_dir / "dom0.ext4"), str(self.overlay)], check=True)
        self.boots += 1
        self._buffer = b""
        start = time.monotonic()
        with open(self.run_dir / "qemu.out", "wb") as qemu_out:
            self.proc = subprocess.Popen(self.qemu_command(), stdin=subprocess.DEVNULL, stdout=qemu_out,
                                         stderr=subprocess.STDOUT)
        deadline = start + timeout
        while self.sock is None:
            self._check_alive()
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(str(self.sock_path))
                self.sock = sock
            except OSError:
                sock.close()
                if time.monotonic() > deadline:
                    raise VMError("QEMU's control socket never appeared") from None
                time.sleep(0.2)
        while True:
            self._check_alive()
            try:
                self.request({"op": "ping"}, timeout=3)
                return time.monotonic() - start
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise VMError(f"dom0 did not answer within {timeout:.0f} s") from None

    def reboot(self, timeout: float) -> float:
        """``systemctl reboot`` in dom0, then boot again on the same disk; returns the seconds from
        the request to the control agent answering again.

        The reboot is scheduled (systemd-run) so the control agent can answer first; Xen reboots
        the machine, and QEMU, started with ``-no-reboot``, exits instead: start it again.
        """
        start = time.monotonic()
        self.check("systemd-run --on-active=1 --unit=xr-e2e-reboot /bin/systemctl reboot", 60)
        assert self.proc is not None
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise VMError(f"dom0 did not reboot within {timeout:.0f} s of `systemctl reboot`") from None
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.proc = None
        self.boot(timeout)
        return time.monotonic() - start

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            out = (self.run_dir / "qemu.out").read_text(errors="replace").strip()
            raise VMError(f"QEMU exited with status {self.proc.returncode}: {out[-500:]}")

    def request(self, message: dict, timeout: float) -> dict:
        if self.sock is None:
            raise VMError("the VM is not running")
        self._next_id += 1
        ident = self._next_id
        self.sock.sendall((json.dumps({**message, "id": ident}) + "\n").encode())
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                try:
                    reply = json.loads(line)
                except ValueError:
                    continue
                if reply.get("id") == ident:
                    return reply
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no reply to {message.get('op')} within {timeout:.0f} s")
            self.sock.settimeout(min(remaining, 1.0))
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                self._check_alive()
                continue
            if not chunk:
                raise VMError("the control channel closed")
            self._buffer += chunk

    def sh(self, cmd: str, timeout: float = 120) -> Result:
        """Run a bash command line in dom0 (channel time on top of ``timeout`` is allowed for)."""
        reply = self.request({"op": "sh", "cmd": cmd, "timeout": timeout}, timeout=timeout + 30)
        return Result(int(reply.get("rc", 2)), reply.get("out", ""), reply.get("err", ""),
                      float(reply.get("secs", 0.0)))

    def write(self, path: str, data: str) -> None:
        reply = self.request({"op": "write", "path": path, "data": data}, timeout=30)
        if reply.get("rc") != 0:
            raise VMError(f"writing {path} in dom0 failed: {reply.get('err')}")

    def check(self, cmd: str, timeout: float = 120) -> str:
        """Run ``cmd``; raise AssertionError with its output when it fails, else return stdout."""
        res = self.sh(cmd, timeout)
        if not res.ok:
            raise AssertionError(f"`{cmd}` failed (rc {res.rc}): {res.text()[-1500:]}")
        return res.out

    def poweroff(self, timeout: float = 60) -> None:
        """Ask dom0 to power off; kill QEMU when it does not exit in time. Safe to call twice."""
        if self.proc is None:
            return
        if self.sock is not None and self.proc.poll() is None:
            with contextlib.suppress(OSError, TimeoutError, VMError):
                self.request({"op": "poweroff"}, timeout=15)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.proc = None

    def console_tail(self, lines: int = 60) -> str:
        if not self.console_log.exists():
            return "(no console log)"
        return "\n".join(self.console_log.read_text(errors="replace").splitlines()[-lines:])


def quote(text: str) -> str:
    return shlex.quote(text)


def kvm_is_hardware() -> bool:
    """KVM only pays off with real vmx/svm; the software KVM here is ~100x slower than TCG."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return os.path.exists("/dev/kvm") and (" vmx" in flags or " svm" in flags)
