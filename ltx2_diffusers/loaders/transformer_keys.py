"""Transformer keys: Lightricks' single file (`model.diffusion_model.*`) <-> diffusers' `LTX2VideoTransformer3DModel`.

Only names change; tensors are untouched (spec §1.2, diffusers-ltx2 §1.4). The text connectors share the
`model.diffusion_model.` prefix (`video_embeddings_connector.`, `audio_embeddings_connector.`) and the file's
`text_embedding_projection.` is theirs too: this map refuses them (see `connector_keys.py`).

Which names the transformer has depends on its config (LTX-2.3's gates, prompt AdaLN, ...), which is the model's
business: pass `expected` (the model's state-dict names, e.g. `set(model.state_dict())` of a meta-device instance) to
have every name checked, as the converter does.
"""

from collections.abc import Collection, Iterable

from .renames import rename_keys

ORIGINAL_PREFIXES: tuple[str, ...] = ("model.diffusion_model.",)
CONNECTOR_PREFIXES: tuple[str, ...] = (
    "model.diffusion_model.video_embeddings_connector.",
    "model.diffusion_model.audio_embeddings_connector.",
    "text_embedding_projection.",
)

# Original -> diffusers. Anchored so that no row fires inside another name (`adaln_single` is a suffix of five).
TRANSFORMER_RENAMES: tuple[tuple[str, str], ...] = (
    (r"^model\.diffusion_model\.", ""),
    (r"^patchify_proj\.", "proj_in."),
    (r"^audio_patchify_proj\.", "audio_proj_in."),
    (r"^adaln_single\.", "time_embed."),
    (r"^audio_adaln_single\.", "audio_time_embed."),
    (r"^prompt_adaln_single\.", "prompt_adaln."),
    (r"^audio_prompt_adaln_single\.", "audio_prompt_adaln."),
    (r"^av_ca_video_scale_shift_adaln_single\.", "av_cross_attn_video_scale_shift."),
    (r"^av_ca_audio_scale_shift_adaln_single\.", "av_cross_attn_audio_scale_shift."),
    (r"^av_ca_a2v_gate_adaln_single\.", "av_cross_attn_video_a2v_gate."),
    (r"^av_ca_v2a_gate_adaln_single\.", "av_cross_attn_audio_v2a_gate."),
    (r"\.scale_shift_table_a2v_ca_video$", ".video_a2v_cross_attn_scale_shift_table"),
    (r"\.scale_shift_table_a2v_ca_audio$", ".audio_a2v_cross_attn_scale_shift_table"),
    (r"\.q_norm\.", ".norm_q."),
    (r"\.k_norm\.", ".norm_k."),
)

# diffusers -> original: the rows above reversed, then the prefix put back.
TRANSFORMER_RENAMES_INVERSE: tuple[tuple[str, str], ...] = (
    (r"^proj_in\.", "patchify_proj."),
    (r"^audio_proj_in\.", "audio_patchify_proj."),
    (r"^time_embed\.", "adaln_single."),
    (r"^audio_time_embed\.", "audio_adaln_single."),
    (r"^prompt_adaln\.", "prompt_adaln_single."),
    (r"^audio_prompt_adaln\.", "audio_prompt_adaln_single."),
    (r"^av_cross_attn_video_scale_shift\.", "av_ca_video_scale_shift_adaln_single."),
    (r"^av_cross_attn_audio_scale_shift\.", "av_ca_audio_scale_shift_adaln_single."),
    (r"^av_cross_attn_video_a2v_gate\.", "av_ca_a2v_gate_adaln_single."),
    (r"^av_cross_attn_audio_v2a_gate\.", "av_ca_v2a_gate_adaln_single."),
    (r"\.video_a2v_cross_attn_scale_shift_table$", ".scale_shift_table_a2v_ca_video"),
    (r"\.audio_a2v_cross_attn_scale_shift_table$", ".scale_shift_table_a2v_ca_audio"),
    (r"\.norm_q\.", ".q_norm."),
    (r"\.norm_k\.", ".k_norm."),
    (r"^", "model.diffusion_model."),
)


def original_to_diffusers_keys(
    keys: Iterable[str], config: dict | None = None, expected: Collection[str] | None = None
) -> dict[str, str]:
    """{original key (with its `model.diffusion_model.` prefix) -> diffusers name}. Raises on connector keys and, with
    `expected`, on any key that is not one of those parameters (`config` only names the layout in that message)."""
    keys = list(keys)
    for key in keys:
        if key.startswith(CONNECTOR_PREFIXES):
            raise ValueError(f"{key!r} belongs to the text connectors (connector_keys.py), not to the transformer")
        if not key.startswith(ORIGINAL_PREFIXES):
            raise ValueError(f"{key!r} is not a transformer key: transformer keys start with {ORIGINAL_PREFIXES[0]!r}")
    mapping = rename_keys(keys, TRANSFORMER_RENAMES)
    _check_known(mapping, expected, config)
    return mapping


def diffusers_to_original_keys(
    keys: Iterable[str], config: dict | None = None, expected: Collection[str] | None = None
) -> dict[str, str]:
    """{diffusers name -> original key}: the exact inverse of `original_to_diffusers_keys`."""
    keys = list(keys)
    _check_known({key: key for key in keys}, expected, config)
    return rename_keys(keys, TRANSFORMER_RENAMES_INVERSE)


def _check_known(mapping: dict[str, str], expected: Collection[str] | None, config: dict | None) -> None:
    if expected is None:
        return
    for source, target in mapping.items():
        if target not in expected:
            layout = "the default (LTX-2) config" if not config else "the given config"
            raise ValueError(
                f"{source!r} (diffusers name {target!r}) is not a parameter of the transformer with {layout}; "
                "check the config (e.g. cross_attn_mod / gated_attn / use_prompt_embeddings for LTX-2.3)"
            )
