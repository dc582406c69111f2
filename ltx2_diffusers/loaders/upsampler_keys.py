"""Key map and config of the latent upsampler files (`ltx-2-spatial-upscaler-x2-1.0.safetensors`, LTX-2.3's x1.5,
x2 and temporal x2 files) <-> diffusers' `LTX2LatentUpsamplerModel`.

The files have no key prefix and already use diffusers' parameter names, so the map is the identity; it still checks
every key, so a file of some other model fails loudly. Their safetensors metadata `config` is a flat JSON in
ltx-core's names (spec §4), translated by `original_config_to_diffusers`.
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

# ltx-core's config names and its code defaults (LatentUpsamplerConfigurator), which apply to keys a file omits.
_ORIGINAL_DEFAULTS = {
    "in_channels": 128,
    "mid_channels": 512,
    "num_blocks_per_stage": 4,
    "dims": 3,
    "spatial_upsample": True,
    "temporal_upsample": False,
    "spatial_scale": 2.0,
    "rational_resampler": False,
}
_TO_DIFFUSERS_CONFIG = {"spatial_scale": "rational_spatial_scale", "rational_resampler": "use_rational_resampler"}


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


def original_config_to_diffusers(original: dict) -> dict:
    """The upsampler file's metadata `config` (ltx-core names) -> LTX2LatentUpsamplerModel's config.

    Missing keys take ltx-core's code defaults, which is what the reference does with them (note
    `rational_resampler` defaults to False there, True in diffusers' class). Unknown keys raise.
    """
    unknown = set(original) - set(_ORIGINAL_DEFAULTS) - {"_class_name"}
    if unknown:
        raise ValueError(
            f"Unknown latent-upsampler config keys {sorted(unknown)}; expected a subset of {sorted(_ORIGINAL_DEFAULTS)}"
        )
    if original.get("_class_name", "LatentUpsampler") != "LatentUpsampler":
        raise ValueError(f"Config names class {original['_class_name']!r}, expected 'LatentUpsampler'")
    merged = {**_ORIGINAL_DEFAULTS, **{k: v for k, v in original.items() if k != "_class_name"}}
    config = {_TO_DIFFUSERS_CONFIG.get(key, key): value for key, value in merged.items()}
    config["rational_spatial_scale"] = float(config["rational_spatial_scale"])
    return config


def diffusers_config_to_original(config: dict) -> dict:
    """LTX2LatentUpsamplerModel's config -> the file's metadata `config` (for export)."""
    back = {value: key for key, value in _TO_DIFFUSERS_CONFIG.items()}
    original = {"_class_name": "LatentUpsampler"}
    for key in ("in_channels", "mid_channels", "num_blocks_per_stage", "dims", "spatial_upsample", "temporal_upsample"):
        original[key] = config[key]
    for key in ("rational_spatial_scale", "use_rational_resampler"):
        original[back[key]] = config[key]
    return original
