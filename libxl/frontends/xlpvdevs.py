"""xl.cfg's paravirtual display, keyboard and sound devices (``vdispl``, ``vkb``, ``vsnd``).

Embedded and automotive domUs (Xen on Arm with a display/input/sound backend domain) use these;
each spec is comma-separated ``key=value`` items (blanks before an item are skipped, as xl's
``strtok`` does) read into the libxl device of the same name. Every function raises ``ValueError``
with xl's reason where ``xl create`` refuses the spec.
"""

from __future__ import annotations

from typing import Any

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


def vdispl(devid: int, text: str) -> JSON:
    dev: JSON = {"devid": devid}
    for token in tokens(text):
        key, eq, value = token.partition("=")
        if key == "backend" and eq:
            dev["backend_domname"] = value
        elif key == "be-alloc" and eq:
            if strtoul(value):
                dev["be_alloc"] = True
        elif key == "connectors" and eq:
            connectors = []
            for item in (c for c in value.split(";") if c):
                unique_id, _, size = item.partition(":")
                width, x, height = size.partition("x")
                if not (x and width.isdigit() and height.isdigit()):
                    raise ValueError(f"cannot parse connector resolution {item!r}")
                connectors.append({"unique_id": unique_id, "width": int(width), "height": int(height)})
            dev["connectors"] = connectors
        else:
            raise ValueError(f"unknown string {token!r} in vdispl spec")
    if not dev.get("connectors"):
        raise ValueError("at least one connector should be specified")
    return dev


def vkb(devid: int, text: str) -> JSON:
    dev: JSON = {"devid": devid}
    for token in tokens(text):
        key, eq, value = token.partition("=")
        if key == "backend" and eq:
            dev["backend_domname"] = value
        elif key == "backend-type" and eq:
            if value not in ("qemu", "linux"):
                raise ValueError(f"unknown backend-type {value!r} in vkb spec")
            dev["backend_type"] = value
        elif key == "unique-id" and eq:
            dev["unique_id"] = value
        elif key in _VKB_NUMBERS and eq:
            dev[_VKB_NUMBERS[key]] = strtoul(value)
        else:
            raise ValueError(f"unknown string {token!r} in vkb spec")
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


__all__ = ["vdispl", "vkb", "vsnd", "tokens", "strtoul"]
