"""xl.cfg's device specs as libxl devices: ``disk`` (from the shared xl-disk-configuration(5)
reader), ``vfb``, ``p9``, ``vtpm``, ``pvcalls``, ``usbctrl``, ``usbdev`` and the paravirtual display,
keyboard and sound devices (``vdispl``, ``vkb``, ``vsnd``) that embedded and
automotive domUs (Xen on Arm with a display/input/sound backend domain) use.

Each spec is comma-separated ``key=value`` items (blanks before an item are skipped, as xl's
``strtok`` does) read into the libxl device of the same name. Every function takes the device's
number and its spec and raises ``ValueError`` with xl's reason where ``xl create`` refuses it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from libxl.domain.formats import diskspec
from libxl.domain.model import canonical_uuid

JSON = dict[str, Any]

_VKB_NUMBERS = {"feature-disable-keyboard": "feature_disable_keyboard",
                "feature-disable-pointer": "feature_disable_pointer",
                "feature-abs-pointer": "feature_abs_pointer", "feature-raw-pointer": "feature_raw_pointer",
                "feature-multi-touch": "feature_multi_touch", "multi-touch-width": "multi_touch_width",
                "multi-touch-height": "multi_touch_height",
                "multi-touch-num-contacts": "multi_touch_num_contacts", "width": "width", "height": "height"}
_VKB_FLAGS = ("feature_disable_keyboard", "feature_disable_pointer", "feature_abs_pointer",
              "feature_raw_pointer", "feature_multi_touch")
_PCM_FORMATS = ("s8", "u8", "s16_le", "s16_be", "u16_le", "u16_be", "s24_le", "s24_be", "u24_le", "u24_be",
                "s32_le", "s32_be", "u32_le", "u32_be", "a_law", "mu_law", "f32_le", "f32_be", "f64_le",
                "f64_be", "iec958_subframe_le", "iec958_subframe_be", "mu_law_adpcm", "mpeg", "gsm")


def put(out: JSON, key: str, value: Any) -> None:
    """Set ``key`` unless ``value`` is None (what libxl's JSON leaves out)."""
    if value is not None:
        out[key] = value


def tokens(text: str) -> list[str]:
    """strtok on ``,`` with leading blanks skipped: how xl splits a device spec."""
    return [t.lstrip(" ") for t in text.split(",") if t.lstrip(" ")]


def strtoul(text: str) -> int:
    """C ``strtoul(text, NULL, 0)``: the leading number, 0 when there is none."""
    text = text.strip()
    for base, prefix in ((16, ("0x", "0X")), (8, ("0",)), (10, ("",))):
        if text.startswith(prefix) and (base != 8 or len(text) > 1):
            body = text[len(prefix[0]) if base == 16 else 0:]
            digits = ""
            for ch in body:
                if ch.lower() not in "0123456789abcdef"[:base]:
                    break
                digits += ch
            return int(digits, base) if digits else 0
    return 0


def atoi(text: str) -> int:
    """C ``atoi``: the leading decimal number, 0 when there is none."""
    digits = ""
    for ch in text.strip():
        if not (ch.isdigit() or (not digits and ch in "+-")):
            break
        digits += ch
    try:
        return int(digits)
    except ValueError:
        return 0


def each_item(text: str, what: str, take: Callable[[str, str], bool]) -> None:
    """Hand each ``key=value`` item of a ``what`` spec to ``take``, in order; an item without ``=``,
    or one whose key ``take`` does not know (it returns False), is refused as xl refuses it."""
    for token in tokens(text):
        key, eq, value = token.partition("=")
        if not (eq and take(key, value)):
            raise ValueError(f"unknown string {token!r} in {what} spec")


def pairs(text: str, known: tuple[str, ...], what: str) -> dict[str, str]:
    """The ``key=value`` items of a spec whose keys must all be ``known`` (xl stops at an item
    without ``=``)."""
    out = {}
    for token in tokens(text):
        key, eq, value = token.partition("=")
        if not eq:
            break
        if key not in known:
            raise ValueError(f"unknown string {key!r} in {what} spec")
        out[key] = value
    return out


def p9(devid: int, text: str) -> JSON:
    opts = pairs(text, ("security_model", "path", "tag", "backend"), "9pfs")
    if not all(opts.get(k) for k in ("path", "security_model", "tag")):
        raise ValueError("9pfs spec missing required field (tag, path, security_model)")
    # xl initialises each p9 device again after numbering it: libxl numbers it at create.
    dev = {"tag": opts["tag"], "path": opts["path"], "security_model": opts["security_model"]}
    if "backend" in opts:
        dev["backend_domname"] = opts["backend"]
    return dev


def vtpm(devid: int, text: str) -> JSON:
    opts = pairs(text, ("backend", "uuid"), "vtpm")
    if "backend" not in opts:
        raise ValueError("vtpm spec missing required backend field")
    dev: JSON = {"devid": devid, "backend_domname": opts["backend"]}
    if "uuid" in opts:
        try:
            dev["uuid"] = canonical_uuid(opts["uuid"])
        except ValueError:
            raise ValueError(f"failed to parse vtpm UUID {opts['uuid']!r}") from None
    return dev


def pvcalls(devid: int, text: str) -> JSON:
    opts = pairs(text, ("backend",), "pvcalls")
    return {"devid": devid, **({"backend_domname": opts["backend"]} if "backend" in opts else {})}


def usbctrl(devid: int, text: str) -> JSON:
    ctrl: JSON = {"devid": devid}

    def take(key: str, value: str) -> bool:
        if key == "type":
            if value not in ("auto", "pv", "devicemodel", "qusb"):
                raise ValueError(f"invalid usb controller type {value!r}")
            ctrl["type"] = value
        elif key in ("version", "ports"):
            ctrl[key] = atoi(value)
        else:
            return False
        return True

    each_item(text, "usbctrl", take)
    return ctrl


def usbdev(devid: int, text: str) -> JSON:
    """A host USB device; xl leaves its number to libxl."""
    dev: JSON = {}
    host: JSON = {}

    def take(key: str, value: str) -> bool:
        if key == "type":
            if value != "hostdev":
                raise ValueError(f"invalid usb device type {value!r}")
        elif key in ("hostbus", "hostaddr"):
            host[key] = strtoul(value)
        elif key in ("controller", "port"):
            dev["ctrl" if key == "controller" else "port"] = atoi(value)
        else:
            return False
        return True

    each_item(text, "usbdev", take)
    dev["type.hostdev"] = host
    return dev


def vdispl(devid: int, text: str) -> JSON:
    dev: JSON = {"devid": devid}

    def take(key: str, value: str) -> bool:
        if key == "backend":
            dev["backend_domname"] = value
        elif key == "be-alloc":
            if strtoul(value):
                dev["be_alloc"] = True
        elif key == "connectors":
            dev["connectors"] = _connectors(value)
        else:
            return False
        return True

    each_item(text, "vdispl", take)
    if not dev.get("connectors"):
        raise ValueError("at least one connector should be specified")
    return dev


def _connectors(value: str) -> list[JSON]:
    """``id:WxH;...``: each connector of a ``vdispl`` spec and its resolution."""
    connectors = []
    for item in (c for c in value.split(";") if c):
        unique_id, _, size = item.partition(":")
        width, x, height = size.partition("x")
        if not (x and width.isdigit() and height.isdigit()):
            raise ValueError(f"cannot parse connector resolution {item!r}")
        connectors.append({"unique_id": unique_id, "width": int(width), "height": int(height)})
    return connectors


def vkb(devid: int, text: str) -> JSON:
    dev: JSON = {"devid": devid}

    def take(key: str, value: str) -> bool:
        if key == "backend":
            dev["backend_domname"] = value
        elif key == "backend-type":
            if value not in ("qemu", "linux"):
                raise ValueError(f"unknown backend-type {value!r} in vkb spec")
            dev["backend_type"] = value
        elif key == "unique-id":
            dev["unique_id"] = value
        elif key in _VKB_NUMBERS:
            dev[_VKB_NUMBERS[key]] = strtoul(value)
        else:
            return False
        return True

    each_item(text, "vkb", take)
    if "backend_type" not in dev:
        raise ValueError("backend-type should be set in vkb spec")
    touch = [dev.get(k) for k in ("multi_touch_width", "multi_touch_height", "multi_touch_num_contacts")]
    if any(touch):
        dev["feature_multi_touch"] = 1
    elif dev.get("feature_multi_touch"):
        raise ValueError("multi-touch-width, multi-touch-height, multi-touch-num-contacts should be set "
                         "for multi touch in vkb spec")
    for flag in _VKB_FLAGS:
        if flag in dev:
            if dev[flag]:
                dev[flag] = True
            else:
                del dev[flag]
    for key in [k for k, v in dev.items() if v == 0 and k != "devid"]:
        del dev[key]
    return dev


def _params(params: JSON, key: str, value: str) -> bool:
    """The stream parameters shared by card, pcm and stream; False when ``key`` is not one."""
    if key == "sample-rates":
        params["sample_rates"] = [strtoul(r) for r in value.split(";") if r]
    elif key == "sample-formats":
        formats = []
        for name in (f for f in value.split(";") if f):
            if name.lower() not in _PCM_FORMATS:
                raise ValueError(f"invalid pcm format {name!r}")
            formats.append(name.lower())
        params["sample_formats"] = formats
    elif key in ("channels-min", "channels-max", "buffer-size"):
        number = strtoul(value)
        if number:
            params[key.replace("-", "_")] = number
    else:
        return False
    return True


def vsnd(devid: int, items: list[str]) -> JSON:
    """One sound card: ``card, ...``, then ``pcm, ...`` devices each with ``stream, ...`` entries."""
    card: JSON = {"devid": devid, "params": {}, "pcms": []}
    for item in items:
        words = tokens(item)
        if not words:
            continue
        kind, rest = words[0].lower(), words[1:]
        if kind == "pcm" or (kind == "stream" and not card["pcms"]):
            card["pcms"].append({"params": {}, "streams": []})
        if kind == "stream":
            card["pcms"][-1]["streams"].append({"params": {}})
        elif kind not in ("card", "pcm"):
            raise ValueError(f"invalid key {words[0]!r}")
        for word in rest:
            key, _, value = word.partition("=")
            if kind == "card":
                target = card
                names = {"backend": "backend_domname", "short-name": "short_name", "long-name": "long_name"}
            elif kind == "pcm":
                target = card["pcms"][-1]
                names = {"name": "name"}
            else:
                target = card["pcms"][-1]["streams"][-1]
                names = {"unique-id": "unique_id", "type": "type"}
            if _params(target["params"], key, value):
                continue
            if key not in names:
                raise ValueError(f"invalid parameter {word!r}")
            if key == "type":
                if value.lower() not in ("p", "c"):
                    raise ValueError(f"invalid stream type {value!r}")
                value = value.lower()
            target[names[key]] = value
    if not card["pcms"]:
        del card["pcms"]
    return card


def vfb_json(devid: int, text: str) -> JSON:
    """One ``vfb=`` entry; xl stops at the first item without ``=`` and skips unknown keys."""
    vfb: JSON = {"devid": devid, "vnc": {}, "sdl": {}}
    for token in tokens(text):
        key, eq, value = token.partition("=")
        if not eq:
            break
        flag = "True" if atoi(value) else "False"
        target = {"vnc": (vfb["vnc"], "enable", flag), "vnclisten": (vfb["vnc"], "listen", value),
                  "vncpasswd": (vfb["vnc"], "passwd", value),
                  "vncdisplay": (vfb["vnc"], "display", atoi(value)),
                  "vncunused": (vfb["vnc"], "findunused", flag), "keymap": (vfb, "keymap", value),
                  "sdl": (vfb["sdl"], "enable", flag), "opengl": (vfb["sdl"], "opengl", flag),
                  "display": (vfb["sdl"], "display", value), "xauthority": (vfb["sdl"], "xauthority", value)}
        if key in target:
            out, name, parsed = target[key]
            out[name] = parsed
    return vfb


def disk_json(spec: diskspec.DiskSpec) -> JSON:
    """``libxl_device_disk`` as xlu_disk_parse fills it from one xl-disk-configuration(5) spec."""
    disk: JSON = {}
    put(disk, "pdev_path", spec.target)
    disk["vdev"] = spec.vdev
    backend = spec.backendtype
    if backend is not None:
        disk["backend"] = backend
    cdrom = spec.devtype == "cdrom"
    if not spec.target and not cdrom:
        raise ValueError("no target specified (and device not removable)")
    disk["format"] = "empty" if cdrom and not spec.target else (spec.format or "raw")
    put(disk, "script", spec.script)
    if cdrom:
        disk["removable"] = 1
        disk["is_cdrom"] = 1
    elif spec.access not in ("r", "ro"):
        disk["readwrite"] = 1
    if spec.discard is not None:
        disk["discard_enable"] = "True" if spec.discard == "unmap" else "False"
    put(disk, "backend_domname", spec.backend)
    extra = spec.extra or {}
    if extra.get("direct-io-safe"):
        disk["direct_io_safe"] = True
    if extra.get("colo"):
        disk["colo_enable"] = "True"
    for key in ("colo-host", "colo-port", "colo-export", "active-disk", "hidden-disk"):
        if key in extra:
            disk[key.replace("-", "_")] = int(extra[key]) if key == "colo-port" else extra[key]
    return disk



__all__ = ["disk_json", "vfb_json", "p9", "vtpm", "pvcalls", "usbctrl", "usbdev", "vdispl", "vkb", "vsnd",
           "tokens", "strtoul", "atoi", "pairs", "put"]
