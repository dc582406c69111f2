"""Video VAE keys: Lightricks' single file (`vae.encoder.*`, `vae.decoder.*`, `vae.per_channel_statistics.*`) <->
diffusers' `AutoencoderKLLTX2Video` names. Only names change; tensors are untouched.

ltx-core numbers the encoder's and decoder's blocks flat (`res_x`, `compress_*`, `res_x`, ...); diffusers nests them
(spec §2.1, diffusers-ltx2 §1.4). With every block resampling (both released layouts):
  encoder  down_blocks.{2k}   -> down_blocks.{k}                 (res_blocks -> resnets)
           down_blocks.{2k+1} -> down_blocks.{k}.downsamplers.0
           down_blocks.{2n}   -> mid_block                       (n = number of down blocks)
  decoder  up_blocks.0        -> mid_block
           up_blocks.{2k+1}   -> up_blocks.{k}.upsamplers.0
           up_blocks.{2k+2}   -> up_blocks.{k}               (LTX-2: k < 3; LTX-2.3 adds up_blocks.7/8, k = 3)
           last_time_embedder / last_scale_shift_table -> time_embedder / scale_shift_table
  statistics  mean-of-means / std-of-means -> latents_mean / latents_std
A block that does not resample has no flat entry for its resampler, so the numbering is computed from the config.
The LTX-2 (19B) files also hold `vae.per_channel_statistics.channel`, `.mean-of-stds` and
`.mean-of-stds_over_std-of-means` (LTX-2.3 files do not): read by neither implementation, they are listed in
ORIGINAL_IGNORED_KEYS and left out of the mapping (a diffusers folder cannot hold them; the converter keeps them aside).

Every key must be renamed by one of the block rows: a key no row renames is an error. Which names exist inside a block
is the model's business: pass `expected` (the model's state-dict names) to check them too, as the converter does.
"""

from collections.abc import Collection, Iterable

from .renames import invert_renames, rename_keys

ORIGINAL_PREFIXES: tuple[str, ...] = ("vae.",)
ORIGINAL_IGNORED_KEYS: tuple[str, ...] = (
    "vae.per_channel_statistics.channel",
    "vae.per_channel_statistics.mean-of-stds",
    "vae.per_channel_statistics.mean-of-stds_over_std-of-means",
)
# AutoencoderKLLTX2Video's defaults (the LTX-2 layout) for the keys that fix the block numbering
LAYOUT_DEFAULTS = {
    "block_out_channels": (256, 512, 1024, 2048),
    "decoder_block_out_channels": (256, 512, 1024),
    "spatio_temporal_scaling": True,
    "decoder_spatio_temporal_scaling": True,
}


def _per_block(value, length: int) -> list[bool]:
    return list(value) if isinstance(value, (list, tuple)) else [value] * length


def _layout(config: dict | None) -> tuple[list[bool], list[bool]]:
    """Per encoder down block / decoder up block (decoder order): does it have a resampler?"""
    config = {**LAYOUT_DEFAULTS, **(config or {})}
    num_down, num_up = len(config["block_out_channels"]), len(config["decoder_block_out_channels"])
    down = _per_block(config["spatio_temporal_scaling"], num_down)
    up = list(reversed(_per_block(config["decoder_spatio_temporal_scaling"], num_up)))
    return down, up


def _prefix_renames(config: dict | None) -> list[tuple[str, str]]:
    """(original prefix, diffusers prefix) for every block, most specific first."""
    down, up = _layout(config)
    rows = [("vae.per_channel_statistics.mean-of-means", "latents_mean")]
    rows.append(("vae.per_channel_statistics.std-of-means", "latents_std"))
    flat = 0
    for k, resamples in enumerate(down):
        rows.append((f"vae.encoder.down_blocks.{flat}.res_blocks.", f"encoder.down_blocks.{k}.resnets."))
        flat += 1
        if resamples:
            rows.append((f"vae.encoder.down_blocks.{flat}.", f"encoder.down_blocks.{k}.downsamplers.0."))
            flat += 1
    rows.append((f"vae.encoder.down_blocks.{flat}.res_blocks.", "encoder.mid_block.resnets."))
    rows.append(("vae.decoder.up_blocks.0.res_blocks.", "decoder.mid_block.resnets."))
    rows.append(("vae.decoder.up_blocks.0.time_embedder.", "decoder.mid_block.time_embedder."))
    flat = 1
    for k, resamples in enumerate(up):
        if resamples:
            rows.append((f"vae.decoder.up_blocks.{flat}.", f"decoder.up_blocks.{k}.upsamplers.0."))
            flat += 1
        rows.append((f"vae.decoder.up_blocks.{flat}.res_blocks.", f"decoder.up_blocks.{k}.resnets."))
        rows.append((f"vae.decoder.up_blocks.{flat}.time_embedder.", f"decoder.up_blocks.{k}.time_embedder."))
        flat += 1
    rows.append(("vae.decoder.last_time_embedder.", "decoder.time_embedder."))
    rows.append(("vae.decoder.last_scale_shift_table", "decoder.scale_shift_table"))
    for name in ("conv_in.", "conv_out.", "timestep_scale_multiplier"):
        rows.append((f"vae.encoder.{name}", f"encoder.{name}"))
        rows.append((f"vae.decoder.{name}", f"decoder.{name}"))
    return rows


def _as_regex(rows: list[tuple[str, str]]) -> list[tuple[str, str]]:
    # Anchored literal prefixes: once a row has fired, the key no longer starts like any other row's source.
    return [("^" + source.replace(".", r"\."), target) for source, target in rows]


def _unplaced(mapping: dict[str, str], expected: Collection[str] | None) -> list[str]:
    """Sources that no row renamed, or (with `expected`) whose new name the model does not have."""
    return [s for s, t in mapping.items() if s == t or (expected is not None and t not in expected)]


def original_to_diffusers_keys(
    keys: Iterable[str], config: dict | None = None, expected: Collection[str] | None = None
) -> dict[str, str]:
    """{original key (with its `vae.` prefix) -> diffusers name}; ORIGINAL_IGNORED_KEYS are left out.

    `config` is the diffusers config dict (None: the LTX-2 defaults); it fixes the flat block numbering. A key that
    does not belong to the VAE the config describes raises ValueError naming it; `expected`: the model's state-dict
    names, to check the names inside each block as well.
    """
    keys = [k for k in keys if k not in ORIGINAL_IGNORED_KEYS]
    foreign = [k for k in keys if not k.startswith(ORIGINAL_PREFIXES)]
    if foreign:
        raise ValueError(f"not video VAE keys (expected the prefix 'vae.'): {foreign[:5]}")
    mapping = rename_keys(keys, _as_regex(_prefix_renames(config)))
    unknown = _unplaced(mapping, expected)
    if unknown:
        raise ValueError(
            f"{len(unknown)} video VAE keys have no place in a model with this config, e.g. {unknown[:5]} -> "
            f"{[mapping[k] for k in unknown[:5]]}; check the config (block counts, timestep_conditioning, inject_noise)"
        )
    return mapping


def diffusers_to_original_keys(
    keys: Iterable[str], config: dict | None = None, expected: Collection[str] | None = None
) -> dict[str, str]:
    """{diffusers name -> original key}, the exact inverse of `original_to_diffusers_keys`."""
    keys = list(keys)
    inverse = [(target, source) for source, target in _prefix_renames(config)]
    mapping = rename_keys(keys, _as_regex(inverse))
    unknown = _unplaced(mapping, expected)
    if unknown:
        raise ValueError(f"not parameters of AutoencoderKLLTX2Video with this config: {unknown[:5]}")
    roundtrip = invert_renames(original_to_diffusers_keys(mapping.values(), config))
    bad = [k for k in keys if roundtrip.get(k) != mapping[k]]
    if bad:
        raise ValueError(f"these keys do not round-trip through the video VAE key map: {bad[:5]}")
    return mapping
