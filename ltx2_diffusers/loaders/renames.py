"""Applying rename tables. Key maps themselves are data in the `*_keys.py` modules beside this one."""

import re
from collections.abc import Iterable, Sequence


def rename_keys(keys: Iterable[str], renames: Sequence[tuple[str, str]]) -> dict[str, str]:
    """{source: target} for every key, each row of `renames` applied in order as `re.sub(pattern, replacement)`.

    Nothing is dropped; two sources landing on one target is an error, so a table cannot silently merge weights.
    """
    mapping: dict[str, str] = {}
    source_of: dict[str, str] = {}
    for key in keys:
        target = key
        for pattern, replacement in renames:
            target = re.sub(pattern, replacement, target)
        if target in source_of:
            raise ValueError(f"{source_of[target]!r} and {key!r} both map to {target!r}: two rename rows overlap")
        mapping[key] = target
        source_of[target] = key
    return mapping


def invert_renames(mapping: dict[str, str]) -> dict[str, str]:
    """{target: source} of a mapping made by `rename_keys` (which guarantees it is one to one)."""
    return {target: source for source, target in mapping.items()}
