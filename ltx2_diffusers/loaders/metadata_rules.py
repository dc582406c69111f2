"""The checks every metadata -> config function shares (metadata.py, metadata_audio.py)."""

from collections.abc import Mapping
from typing import Any


def _section(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    if name not in config:
        raise ValueError(f"The checkpoint's `config` metadata has no {name!r} section (it has: {sorted(config)}).")
    section = config[name]
    if not isinstance(section, dict):
        raise ValueError(f"The `config.{name}` metadata is a {type(section).__name__}, expected a JSON object.")
    return section


def _require(section: Mapping[str, Any], name: str, expected: Any, where: str) -> None:
    if section.get(name) != expected:
        value = section[name] if name in section else "missing"
        raise ValueError(
            f"config.{where}.{name} is {value!r}; ltx-core 1.0.0 only builds this model with {name}={expected!r}, and "
            "so does this converter."
        )


def _one_of(value: Any, allowed: tuple, name: str) -> Any:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not supported; expected one of {list(allowed)}.")
    return value
