"""Key map of the latent upsampler files (`ltx-2-spatial-upscaler-x2-1.0.safetensors`, LTX-2.3's x1.5, x2 and
temporal x2 files) <-> diffusers' `LTX2LatentUpsamplerModel`.

The files have no key prefix and already use diffusers' parameter names, so the map is the identity; it still checks
every key, so a file of some other model fails loudly. Their safetensors metadata `config` (a flat JSON in ltx-core's
names, spec §4) is translated by `metadata.upsampler_config_from_original`.
"""

import re
from collections.abc import Iterable

from .renames import rename_keys

ORIGINAL_PREFIXES: tuple[str, ...] = ()  # the whole file is the upsampler

UPSAMPLER_RENAMES: tuple[tuple[str, str], ...] = ()  # same names on both sides

_KEY = re.compile(
    r"^(?:"
    r"(?:initial_conv|initial_norm|final_conv)\.(?:weight|bias)"
    r"|(?:res_blocks|post_upsample_res_blocks)\.\d+\.(?:conv1|conv2|norm1|norm2)\.(?:weight|bias)"
    r"|upsampler\.0\.(?:weight|bias)"  # plain x2 pixel shuffle, temporal and joint variants
    r"|upsampler\.conv\.(?:weight|bias)|upsampler\.blur_down\.kernel"  # rational resampler
    r")$"
)


def _uses_rational_resampler(config: dict) -> bool:
    return (
        bool(config.get("spatial_upsample", True))
        and not config.get("temporal_upsample", False)
        and bool(config.get("use_rational_resampler", True))
    )


def _check(keys: list[str], config: dict | None) -> None:
    for key in keys:
        if not _KEY.match(key):
            raise ValueError(f"Unknown latent-upsampler key {key!r}: not a parameter of LTX2LatentUpsamplerModel")
    if config is None:
        return
    rational = _uses_rational_resampler(config)
    for key in keys:
        if key.startswith("upsampler.") and key.startswith(("upsampler.conv.", "upsampler.blur_down.")) != rational:
            raise ValueError(
                f"{key!r} does not fit the config: use_rational_resampler={config.get('use_rational_resampler')} "
                f"(with spatial_upsample={config.get('spatial_upsample')}, temporal_upsample="
                f"{config.get('temporal_upsample')}) names the upsampling conv "
                f"{'upsampler.conv' if rational else 'upsampler.0'}."
            )


def original_to_diffusers_keys(keys: Iterable[str], config: dict | None = None) -> dict[str, str]:
    """{key in the upsampler file -> diffusers name} (the identity, after checking every key and, with a diffusers
    `config`, that the upsampling conv's name matches its variant)."""
    keys = list(keys)
    _check(keys, config)
    return rename_keys(keys, UPSAMPLER_RENAMES)


def diffusers_to_original_keys(keys: Iterable[str], config: dict | None = None) -> dict[str, str]:
    """{diffusers name -> key in the upsampler file}: the exact inverse (also the identity)."""
    keys = list(keys)
    _check(keys, config)
    return rename_keys(keys, UPSAMPLER_RENAMES)
