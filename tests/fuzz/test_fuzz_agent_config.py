"""Fuzzing the agent's TOML settings loader (``agent.config.load_config``).

Its typed error is ``AgentConfigError``, whose ``key`` is the location (the setting at fault, or
``--config`` for a file that cannot be read or is not TOML). Any file content gives a config or that
error; a config that loads holds only values its checks accept, and finite numbers.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

from fuzz_helpers import FUZZ, NASTY, watchdog
from hypothesis import given
from hypothesis import strategies as st

from agent.config import CHECKS, AgentConfig, AgentConfigError, load_config

_TOML_VALUES = st.one_of(
    st.integers(-2**70, 2**70).map(str), st.floats().map(repr),
    st.sampled_from(["nan", "inf", "-inf", "+nan", "true", "false", "0x10", "1e400", "1_000", '""',
                     '"127.0.0.1:9977"', '"[::1]:0"', '"x:99999"', '"none"', '"always"', "[]", "{}",
                     "[1, 2]", "{ a = 1 }", "1979-05-27T07:32:00Z"]),
    st.sampled_from(NASTY).map(lambda v: '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'),
)


def _settings_file() -> st.SearchStrategy[bytes]:
    line = st.builds(lambda k, v: f"{k} = {v}", st.sampled_from([*CHECKS, "bogus", "a.b", '"uri"']),
                     _TOML_VALUES)
    text = st.lists(st.one_of(line, st.sampled_from(["[table]", "# c", ""])), max_size=6).map("\n".join)
    return st.one_of(text.map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary(max_size=200))


def _load(content: bytes) -> AgentConfig | AgentConfigError:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "xenreconcile.toml"
        path.write_bytes(content)
        try:
            with watchdog():
                return load_config(path)
        except AgentConfigError as err:
            assert err.key, f"error without a setting name: {err}"
            return err


@FUZZ
@given(_settings_file())
def test_any_file_gives_a_config_or_a_keyed_error(content: bytes) -> None:
    result = _load(content)
    if isinstance(result, AgentConfig):
        for key in CHECKS:
            value = getattr(result, key)
            assert CHECKS[key](value) is None, f"{key}={value!r} loaded but fails its own check"
            if isinstance(value, float):  # nan passes every comparison; inf overflows timers
                assert math.isfinite(value), f"{key}={value} loaded: not a usable number"
