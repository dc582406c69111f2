"""Lightricks' single-file metadata <-> our diffusers configs (spec §1.1, §2.1, §3, §4, §5.4, §8.1).

A Lightricks checkpoint carries its architecture in the safetensors `__metadata__`: `config` is a JSON string with the
sections `transformer` (which also holds the text connectors' keys), `vae`, `audio_vae` and `vocoder`, and
`model_version` says "2.3..." for LTX-2.3. Upsampler files carry a flat `config`. Each `*_config_from_original`
function below turns one section into the config dict of our (= diffusers') class, with ltx-core 1.0.0's defaults
where a key is absent and a ValueError where the reference would refuse the config or where our class cannot express
it. The `original_*` functions go back. Nothing here guesses from file names or tensor shapes, except
`text_proj_in_factor` (Gemma's layer count + 1), which no metadata key records: the converter reads it off the
projection's weight shape.

Round trip: `config_from_original(original_from_config(c)) == c` for every config these functions produce, and the
converter also stores the file's metadata verbatim (`ORIGINAL_METADATA_FILENAME`) so that the reverse conversion
writes back exactly what it read.
"""

import json
import os
from collections.abc import Mapping
from typing import Any

from .metadata_audio import (  # also part of this module's API (md.audio_vae_config_from_original, ...)
    audio_vae_config_from_original,
    original_audio_vae_section,
    original_vocoder_section,
    vocoder_config_from_original,
)
from .metadata_rules import _section
from .metadata_transformer import (  # also part of this module's API (md.transformer_config_from_original, ...)
    _V2_TEXT_KEYS,  # noqa: F401
    CONNECTOR_2_5_KEYS,  # noqa: F401
    CONNECTOR_NUM_REGISTERS,  # noqa: F401
    GEMMA_3_12B_HIDDEN_SIZE,  # noqa: F401
    GEMMA_3_12B_PROJ_IN_FACTOR,  # noqa: F401
    TRANSFORMER_2_5_KEYS,  # noqa: F401
    TRANSFORMER_ASSERTED,  # noqa: F401
    _uses_v2_text_path,  # noqa: F401
    connectors_config_from_original,
    original_transformer_section,
    transformer_config_from_original,
)

# Stored at the root of a converted folder: the source file's `__metadata__`, verbatim.
ORIGINAL_METADATA_FILENAME = "ltx2_original_metadata.json"

LTX2, LTX2_3, LTX2_5 = "2", "2.3", "2.5"

# ---------------------------------------------------------------------------------------------------------------------
# Reading


def parse_original_metadata(metadata: Mapping[str, str] | None, source: str = "the file") -> dict[str, Any]:
    """The parsed `config` JSON of a safetensors `__metadata__`. Raises if it is missing or not a JSON object."""
    if not metadata:
        raise ValueError(
            f"{source} has no safetensors metadata, so its architecture is unknown. Lightricks' LTX-2 checkpoints "
            "carry a `config` JSON in their `__metadata__`; use the original file as downloaded (a re-saved state dict "
            "loses it)."
        )
    if "config" not in metadata:
        raise ValueError(
            f"{source} has safetensors metadata without a `config` entry (it has: {sorted(metadata)}). Lightricks' "
            "LTX-2 checkpoints store their architecture there; use the original file as downloaded."
        )
    try:
        config = json.loads(metadata["config"])
    except (ValueError, RecursionError) as error:  # JSONDecodeError, too deeply nested, an integer of 5000 digits
        raise ValueError(f"{source}: the `config` metadata is not valid JSON ({error}).") from None
    if not isinstance(config, dict):
        raise ValueError(f"{source}: the `config` metadata is a JSON {type(config).__name__}, expected an object.")
    return config


def parse_version_tuple(version: str) -> tuple[int, ...]:
    """ltx-pipelines 1.2.0's reading of `model_version`: "-" counts as ".", each part keeps its leading digits and the
    first part without any ends the version ("2.4-rc2" -> (2, 4), "2.3.0" -> (2, 3, 0), "" -> ())."""
    parts = []
    for part in version.replace("-", ".").split("."):
        digits = part[: len(part) - len(part.lstrip("0123456789"))]
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def model_version_of_transformer(transformer: Mapping[str, Any]) -> str:
    """LTX2 / LTX2_3 / LTX2_5 of our transformer config (for metadata rebuilt from a folder): LTX-2.5's bias-free
    video FFN or keyframe embedding, else LTX-2.3's V2 text path (no caption projection), else LTX-2."""
    if transformer.get("ff_bias", True) is False or transformer.get("use_keyframes_abs_pos_embedding", False):
        return LTX2_5
    return LTX2 if transformer.get("use_prompt_embeddings", True) else LTX2_3


def detect_model_version(metadata: Mapping[str, str], config: Mapping[str, Any]) -> str:
    """LTX2 ("2"), LTX2_3 ("2.3") or LTX2_5 ("2.5"), from `model_version` (as ltx-pipelines reads it: 2.4 and newer
    count as 2.5, the newest family) checked against the config; without `model_version`, from the config alone
    (the V2 text path or a BWE vocoder: 2.3; also a bias-free video FFN or the keyframe embedding: 2.5)."""
    transformer = config.get("transformer", {})
    vocoder = config.get("vocoder", {})
    config_says_2_3 = bool(transformer.get("caption_proj_before_connector", False)) or "bwe" in vocoder
    config_says_2_5 = transformer.get("ff_bias", True) is False or bool(
        transformer.get("use_keyframes_abs_pos_embedding", False)
    )
    version = metadata.get("model_version")
    if version is None:
        return LTX2_5 if config_says_2_5 else LTX2_3 if config_says_2_3 else LTX2
    number = parse_version_tuple(version)
    says_2_3 = number >= (2, 3)
    if "transformer" in config and says_2_3 != (config_says_2_3 or config_says_2_5):
        raise ValueError(
            f"model_version={version!r} contradicts the config, which describes an LTX-{LTX2_3 if config_says_2_3 else LTX2}"
            " model (caption_proj_before_connector / vocoder 'bwe'). The file's metadata is inconsistent."
        )
    if number >= (2, 4):
        return LTX2_5
    if config_says_2_5:
        raise ValueError(
            f"model_version={version!r} contradicts the config, which has LTX-2.5's ff_bias=false or "
            "use_keyframes_abs_pos_embedding=true. The file's metadata is inconsistent."
        )
    return LTX2_3 if says_2_3 else LTX2


# ---------------------------------------------------------------------------------------------------------------------
# Video VAE (spec §2.1). The original lists blocks flat, alternating res_x and compress_* blocks (the decoder's list
# written encoder-side first); diffusers groups each (res_x, compress) pair into one down/up block.

_ENCODER_COMPRESS = {
    "compress_space_res": "spatial",
    "compress_time_res": "temporal",
    "compress_all_res": "spatiotemporal",
}
_DECODER_COMPRESS = {"compress_space": "spatial", "compress_time": "temporal", "compress_all": "spatiotemporal"}


def _block_list(blocks: Any, where: str) -> list[tuple[str, dict]]:
    if not isinstance(blocks, list) or not blocks:
        raise ValueError(f"config.vae.{where} is {blocks!r}; expected a non-empty list of [name, params] pairs.")
    out = []
    for entry in blocks:
        if not (isinstance(entry, list | tuple) and len(entry) == 2 and isinstance(entry[0], str)):
            raise ValueError(f"config.vae.{where} has the entry {entry!r}; expected [name, params].")
        name, params = entry
        out.append((name, {"num_layers": params} if isinstance(params, int) else dict(params)))
    return out


def _alternating(blocks: list[tuple[str, dict]], where: str) -> None:
    names = [name for name, _ in blocks]
    if len(names) % 2 == 0 or any(n != "res_x" for n in names[::2]) or any(n == "res_x" for n in names[1::2]):
        raise ValueError(
            f"config.vae.{where} is {names}; this converter (like diffusers' AutoencoderKLLTX2Video) supports "
            "res_x blocks alternating with compress blocks, starting and ending with res_x."
        )


def video_vae_config_from_original(config: Mapping[str, Any]) -> dict:
    """`config.vae` -> AutoencoderKLLTX2Video config."""
    v = _section(config, "vae")
    _require_default(v, "dims", 3)
    _require_default(v, "norm_layer", "pixel_norm")  # diffusers' class has only the pixel (RMS) norm
    _require_default(v, "latent_log_var", "uniform")  # conv_out with latent + 1 channels
    latent_channels = v.get("latent_channels", 128)
    patch_size = v.get("patch_size", 4)

    encoder = _block_list(v.get("encoder_blocks", []), "encoder_blocks")
    _alternating(encoder, "encoder_blocks")
    width, block_out, downsample = latent_channels, [], []
    for name, params in encoder[1::2]:
        if name not in _ENCODER_COMPRESS:
            raise ValueError(
                f"config.vae.encoder_blocks: {name!r} unsupported; expected one of {list(_ENCODER_COMPRESS)}."
            )
        width *= params.get("multiplier", 2)
        block_out.append(width)
        downsample.append(_ENCODER_COMPRESS[name])

    decoder = _block_list(v.get("decoder_blocks", []), "decoder_blocks")
    _alternating(decoder, "decoder_blocks")
    # ltx-core builds the decoder from the reversed list, starting at decoder_base_channels * 8 channels
    width = v.get("decoder_base_channels", 128) * 8
    widths_reversed = []
    for name, params in reversed(decoder[1::2]):
        if name not in _DECODER_COMPRESS:
            raise ValueError(
                f"config.vae.decoder_blocks: {name!r} unsupported; expected one of {list(_DECODER_COMPRESS)}."
            )
        widths_reversed.append(width)
        width //= params.get("multiplier", 1)

    padding = v.get("spatial_padding_mode")  # one key for both halves; absent, their defaults differ
    n_space = sum(t in ("spatial", "spatiotemporal") for t in downsample)
    n_time = sum(t in ("temporal", "spatiotemporal") for t in downsample)
    return {
        "in_channels": v.get("in_channels", 3),
        "out_channels": v.get("out_channels", 3),
        "latent_channels": latent_channels,
        "block_out_channels": block_out,
        "down_block_types": ["LTX2VideoDownBlock3D"] * len(block_out),
        "decoder_block_out_channels": list(reversed(widths_reversed)),
        "layers_per_block": [p["num_layers"] for _, p in encoder[::2]],
        "decoder_layers_per_block": [p["num_layers"] for _, p in decoder[::2]],
        "spatio_temporal_scaling": [True] * len(block_out),
        "decoder_spatio_temporal_scaling": [True] * len(widths_reversed),
        "decoder_inject_noise": [bool(p.get("inject_noise", False)) for _, p in decoder[::2]],
        "downsample_type": downsample,
        # diffusers' decoder reverses every per-block list except this one, which is in decoding order
        "upsample_type": [_DECODER_COMPRESS[n] for n, _ in reversed(decoder[1::2])],
        # ltx-core reads `residual` only on compress_all blocks (exactly the keys it reads are read here)
        "upsample_residual": [n == "compress_all" and bool(p.get("residual", False)) for n, p in decoder[1::2]],
        "upsample_factor": [p.get("multiplier", 1) for _, p in decoder[1::2]],
        "timestep_conditioning": bool(v.get("timestep_conditioning", True)),  # ltx-core's default is True
        "patch_size": patch_size,
        "patch_size_t": 1,
        "resnet_norm_eps": 1e-6,
        "scaling_factor": v.get("scaling_factor", 1.0),
        "encoder_causal": True,  # ltx-core's encoder convs are always causal
        "decoder_causal": bool(v.get("causal_decoder", False)),
        "encoder_spatial_padding_mode": padding or "zeros",
        "decoder_spatial_padding_mode": padding or "reflect",
        "spatial_compression_ratio": patch_size * 2**n_space,
        "temporal_compression_ratio": 2**n_time,
    }


def _require_default(section: Mapping[str, Any], name: str, default: Any) -> None:
    if section.get(name, default) != default:
        raise ValueError(f"config.vae.{name}={section[name]!r} is not supported; only {default!r} is.")


def original_video_vae_section(vae: Mapping[str, Any]) -> dict:
    """AutoencoderKLLTX2Video config -> `config.vae`."""
    v = vae
    inverse_down = {t: n for n, t in _ENCODER_COMPRESS.items()}
    inverse_up = {t: n for n, t in _DECODER_COMPRESS.items()}
    encoder: list = []
    width = v["latent_channels"]
    for layers, out, kind in zip(v["layers_per_block"], v["block_out_channels"], v["downsample_type"]):
        if out % width:
            raise ValueError(f"block_out_channels {v['block_out_channels']} is not a chain of integer multiples.")
        encoder += [["res_x", {"num_layers": layers}], [inverse_down[kind], {"multiplier": out // width}]]
        width = out
    encoder.append(["res_x", {"num_layers": v["layers_per_block"][-1]}])
    decoder: list = []
    layers, noise = v["decoder_layers_per_block"], v["decoder_inject_noise"]
    kinds = list(reversed(v["upsample_type"]))  # stored in decoding order, unlike the other decoder lists
    for i, (kind, residual, factor) in enumerate(zip(kinds, v["upsample_residual"], v["upsample_factor"])):
        if residual and kind != "spatiotemporal":
            raise ValueError(
                f"upsample_residual with a {kind} upsampler has no original form: ltx-core reads `residual` only on "
                "compress_all (spatiotemporal) blocks."
            )
        decoder += [
            ["res_x", {"num_layers": layers[i], "inject_noise": noise[i]}],
            [inverse_up[kind], {"residual": residual, "multiplier": factor}],
        ]
    decoder.append(["res_x", {"num_layers": layers[-1], "inject_noise": noise[-1]}])
    if v["encoder_spatial_padding_mode"] != v["decoder_spatial_padding_mode"]:
        if (v["encoder_spatial_padding_mode"], v["decoder_spatial_padding_mode"]) != ("zeros", "reflect"):
            raise ValueError("ltx-core has one spatial_padding_mode; only zeros/reflect may differ (key absent).")
        padding = {}
    else:
        padding = {"spatial_padding_mode": v["encoder_spatial_padding_mode"]}
    top = v["decoder_block_out_channels"][-1]
    if top % 8:
        raise ValueError(f"decoder_block_out_channels[-1]={top} is not 8 * decoder_base_channels.")
    return {
        "_class_name": "CausalVideoAutoencoder",
        "dims": 3,
        "in_channels": v["in_channels"],
        "out_channels": v["out_channels"],
        "latent_channels": v["latent_channels"],
        "encoder_blocks": encoder,
        "decoder_blocks": decoder,
        "decoder_base_channels": top // 8,
        "patch_size": v["patch_size"],
        "norm_layer": "pixel_norm",
        "latent_log_var": "uniform",
        "causal_decoder": v["decoder_causal"],
        "timestep_conditioning": v["timestep_conditioning"],
        "scaling_factor": v["scaling_factor"],
        **padding,
    }


# ---------------------------------------------------------------------------------------------------------------------
# Latent upsampler (spec §4): its own file, flat config, no key prefix


def upsampler_config_from_original(config: Mapping[str, Any]) -> dict:
    """Flat upsampler `config` -> LTX2LatentUpsamplerModel config."""
    if "transformer" in config or "vae" in config:
        raise ValueError(
            "This file's config has transformer/vae sections: it is a model checkpoint, not a latent upsampler. "
            "Pass it as the main checkpoint, and the upscaler file as --upsampler."
        )
    class_name = config.get("_class_name", "LatentUpsampler")
    if class_name != "LatentUpsampler":
        raise ValueError(f"config._class_name={class_name!r}; a latent upsampler file says 'LatentUpsampler'.")
    return {
        "in_channels": config.get("in_channels", 128),
        "mid_channels": config.get("mid_channels", 512),
        "num_blocks_per_stage": config.get("num_blocks_per_stage", 4),
        "dims": config.get("dims", 3),
        "spatial_upsample": bool(config.get("spatial_upsample", True)),
        "temporal_upsample": bool(config.get("temporal_upsample", False)),
        "rational_spatial_scale": float(config.get("spatial_scale", 2.0)),
        "use_rational_resampler": bool(config.get("rational_resampler", False)),
    }


def original_upsampler_config(upsampler: Mapping[str, Any]) -> dict:
    u = upsampler
    return {
        "_class_name": "LatentUpsampler",
        "in_channels": u["in_channels"],
        "mid_channels": u["mid_channels"],
        "num_blocks_per_stage": u["num_blocks_per_stage"],
        "dims": u["dims"],
        "spatial_upsample": u["spatial_upsample"],
        "temporal_upsample": u["temporal_upsample"],
        "spatial_scale": u["rational_spatial_scale"],
        "rational_resampler": u["use_rational_resampler"],
    }


# ---------------------------------------------------------------------------------------------------------------------
# Scheduler (spec §6.1)

SCHEDULER_KINDS = ("dev", "distilled")


def scheduler_config(kind: str) -> dict:
    """LTX2Scheduler config: "dev" -> the shifted schedule (class defaults), "distilled" -> the explicit 8-step list."""
    if kind == "dev":
        return {}
    if kind == "distilled":
        from ..schedulers.scheduling_ltx2 import DISTILLED_SIGMAS  # lazy: written beside this module

        return {"fixed_sigmas": [float(s) for s in DISTILLED_SIGMAS]}
    raise ValueError(f"kind={kind!r}; expected one of {SCHEDULER_KINDS}.")


def model_kind_from_name(path: str | os.PathLike) -> str:
    """ "distilled" or "dev" from a released file name (the metadata does not say); raises when the name says neither."""
    name = os.path.basename(os.fspath(path)).lower()
    if "distilled" in name:
        return "distilled"
    if "dev" in name:
        return "dev"
    raise ValueError(
        f"Cannot tell from the name {name!r} whether this is a dev or a distilled checkpoint (its metadata does not "
        "say). Pass kind='dev' or kind='distilled' (--kind on the command line)."
    )


# ---------------------------------------------------------------------------------------------------------------------
# Whole files


def component_configs_from_original(
    config: Mapping[str, Any], text_proj_in_factor: int | None = None, components: tuple[str, ...] | None = None
) -> dict[str, tuple[str, dict]]:
    """{component: (our class name, config)} for the sections of a combined file's `config` (those in `components`,
    default: every section present; the connectors come with the transformer section)."""
    wanted = components
    out: dict[str, tuple[str, dict]] = {}
    audio = audio_vae_config_from_original(config) if "audio_vae" in config else None
    if "transformer" in config:
        if wanted is None or "transformer" in wanted:
            out["transformer"] = ("LTX2VideoTransformer3DModel", transformer_config_from_original(config, audio))
        if wanted is None or "connectors" in wanted:
            out["connectors"] = ("LTX2TextConnectors", connectors_config_from_original(config, text_proj_in_factor))
    if "vae" in config and (wanted is None or "vae" in wanted):
        out["vae"] = ("AutoencoderKLLTX2Video", video_vae_config_from_original(config))
    if audio is not None and (wanted is None or "audio_vae" in wanted):
        out["audio_vae"] = ("AutoencoderKLLTX2Audio", audio)
    if "vocoder" in config and (wanted is None or "vocoder" in wanted):
        out["vocoder"] = vocoder_config_from_original(config)
    if wanted is not None:
        missing = set(wanted) - set(out)
        if missing:
            raise ValueError(
                f"The file holds weights of {sorted(missing)} but its `config` metadata has no section for them "
                f"(sections: {sorted(config)})."
            )
    return out


def original_config_from_components(components: Mapping[str, tuple[str, Mapping[str, Any]]]) -> dict:
    """{component: (class name, config)} -> the `config` JSON object of a combined single file."""
    out: dict[str, Any] = {}
    if "transformer" in components:
        connectors = components["connectors"][1] if "connectors" in components else None
        out["transformer"] = original_transformer_section(components["transformer"][1], connectors)
    elif "connectors" in components:
        raise ValueError("The connectors' config lives in config.transformer: export them with the transformer.")
    if "vae" in components:
        out["vae"] = original_video_vae_section(components["vae"][1])
    if "audio_vae" in components:
        out["audio_vae"] = original_audio_vae_section(components["audio_vae"][1])
    if "vocoder" in components:
        out["vocoder"] = original_vocoder_section(*components["vocoder"])
    return out


def original_metadata(config: Mapping[str, Any], model_version: str | None) -> dict[str, str]:
    """A safetensors `__metadata__` as Lightricks writes it: the `config` JSON string and `model_version`."""
    metadata = {"config": json.dumps(config)}
    if model_version is not None:
        metadata["model_version"] = model_version
    return metadata
