"""Key map of the text connectors: Lightricks' single file <-> diffusers' `LTX2TextConnectors` names.

In the original file the connectors sit beside the transformer (`model.diffusion_model.video_embeddings_connector.*`,
`model.diffusion_model.audio_embeddings_connector.*`) and the feature projection(s) at the top level
(`text_embedding_projection.aggregate_embed.*` on LTX-2, `...video_aggregate_embed.*`/`...audio_aggregate_embed.*` on
LTX-2.3). Only names change; tensors are never touched.
"""

import re
from collections.abc import Iterable

from .renames import rename_keys

ORIGINAL_PREFIXES: tuple[str, ...] = (
    "model.diffusion_model.video_embeddings_connector.",
    "model.diffusion_model.audio_embeddings_connector.",
    "text_embedding_projection.",
)

# Original -> diffusers. Each row is anchored so that it cannot hit a name another row produced.
CONNECTOR_RENAMES: tuple[tuple[str, str], ...] = (
    (r"^model\.diffusion_model\.video_embeddings_connector\.", "video_connector."),
    (r"^model\.diffusion_model\.audio_embeddings_connector\.", "audio_connector."),
    (r"^text_embedding_projection\.aggregate_embed\.", "text_proj_in."),
    (r"^text_embedding_projection\.video_aggregate_embed\.", "video_text_proj_in."),
    (r"^text_embedding_projection\.audio_aggregate_embed\.", "audio_text_proj_in."),
    (r"^(video|audio)_connector\.transformer_1d_blocks\.", r"\1_connector.transformer_blocks."),
    (r"\.attn1\.q_norm\.weight$", ".attn1.norm_q.weight"),
    (r"\.attn1\.k_norm\.weight$", ".attn1.norm_k.weight"),
)

# Diffusers -> original: the same rows, reversed and read the other way.
CONNECTOR_RENAMES_INVERSE: tuple[tuple[str, str], ...] = (
    (r"\.attn1\.norm_q\.weight$", ".attn1.q_norm.weight"),
    (r"\.attn1\.norm_k\.weight$", ".attn1.k_norm.weight"),
    (r"^(video|audio)_connector\.transformer_blocks\.", r"\1_connector.transformer_1d_blocks."),
    (r"^audio_text_proj_in\.", "text_embedding_projection.audio_aggregate_embed."),
    (r"^video_text_proj_in\.", "text_embedding_projection.video_aggregate_embed."),
    (r"^text_proj_in\.", "text_embedding_projection.aggregate_embed."),
    (r"^audio_connector\.", "model.diffusion_model.audio_embeddings_connector."),
    (r"^video_connector\.", "model.diffusion_model.video_embeddings_connector."),
)

# Every parameter name of diffusers' LTX2TextConnectors (both layouts).
_DIFFUSERS_KEY = re.compile(
    r"^(?:"
    r"(?:text_proj_in|video_text_proj_in|audio_text_proj_in)\.(?:weight|bias)"
    r"|(?:video|audio)_connector\.learnable_registers"
    r"|(?:video|audio)_connector\.transformer_blocks\.\d+\.(?:"
    r"attn1\.(?:norm_q\.weight|norm_k\.weight|(?:to_q|to_k|to_v|to_out\.0|to_gate_logits)\.(?:weight|bias))"
    r"|ff\.net\.(?:0\.proj|2)\.(?:weight|bias))"
    r")$"
)


def _check_config(mapping: dict[str, str], config: dict | None) -> None:
    """With a config, the projection names must match its layout (V1 `text_proj_in`, V2 per modality)."""
    if config is None:
        return
    per_modality = bool(config.get("per_modality_projections", False))
    for original, diffusers_key in mapping.items():
        is_v2 = diffusers_key.startswith(("video_text_proj_in.", "audio_text_proj_in."))
        is_v1 = diffusers_key.startswith("text_proj_in.")
        if (is_v1 and per_modality) or (is_v2 and not per_modality):
            raise ValueError(
                f"{original!r} belongs to the {'LTX-2.3 (V2)' if is_v2 else 'LTX-2 (V1)'} feature projection, but "
                f"the config says per_modality_projections={per_modality}."
            )


def original_to_diffusers_keys(keys: Iterable[str], config: dict | None = None) -> dict[str, str]:
    """{original key (with its prefix) -> diffusers name} for the connector keys of a single file.

    Raises ValueError on a key outside ORIGINAL_PREFIXES or one that is not a connector parameter.
    """
    keys = list(keys)
    for key in keys:
        if not key.startswith(ORIGINAL_PREFIXES):
            raise ValueError(f"{key!r} is not a text-connector key: those start with one of {ORIGINAL_PREFIXES}")
    mapping = rename_keys(keys, CONNECTOR_RENAMES)
    for original, target in mapping.items():
        if not _DIFFUSERS_KEY.match(target):
            raise ValueError(f"Unknown text-connector key {original!r} (renamed to {target!r}, which no parameter has)")
    _check_config(mapping, config)
    return mapping


def diffusers_to_original_keys(keys: Iterable[str], config: dict | None = None) -> dict[str, str]:
    """{diffusers name -> original key}: the exact inverse of `original_to_diffusers_keys`."""
    keys = list(keys)
    for key in keys:
        if not _DIFFUSERS_KEY.match(key):
            raise ValueError(f"{key!r} is not a parameter of LTX2TextConnectors")
    mapping = rename_keys(keys, CONNECTOR_RENAMES_INVERSE)
    _check_config({original: key for key, original in mapping.items()}, config)
    return mapping
