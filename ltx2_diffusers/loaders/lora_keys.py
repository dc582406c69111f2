"""LoRA key spellings -> (component, diffusers module name, part). Pure data and string functions: no model is built.

A LoRA key is `<prefix><module path><part>`. The spellings read (docs/lora.md):
- dotted: `diffusion_model.` (ltx-trainer), `model.diffusion_model.` (ComfyUI), `transformer.` / `connectors.`
  (diffusers), `base_model.model.` (a raw peft state dict) or no prefix, then the original or diffusers module path;
  the connectors as `[model.]diffusion_model.{video,audio}_embeddings_connector.*` and `text_embedding_projection.*`;
- flattened (kohya / musubi-tuner): `lora_unet_` + the module path with every dot an underscore, after an optional
  `model_` (musubi's `lora_unet_model_*`); musubi's connectors as
  `lora_unet_[model_][video_|audio_]embeddings_connector_*`.
Parts: `.lora_A.weight` / `.lora_B.weight`, ComfyUI's / kohya's `.lora_down.weight` / `.lora_up.weight`, `.alpha`.
"""

import functools
import re

from .connector_keys import CONNECTOR_RENAMES
from .renames import rename_keys
from .transformer_keys import TRANSFORMER_RENAMES, TRANSFORMER_RENAMES_INVERSE

PARTS: tuple[tuple[str, str], ...] = (
    (".lora_A.weight", "A"),
    (".lora_B.weight", "B"),
    (".lora_down.weight", "A"),
    (".lora_up.weight", "B"),
    (".alpha", "alpha"),
)

# Every linear layer of LTX2VideoTransformer3DModel (LTX-2 and LTX-2.3 layouts), diffusers names;
# tests/test_lora_keys.py checks these tables against the models.
_EMBEDDERS = ("time_embed", "audio_time_embed", "prompt_adaln", "audio_prompt_adaln",
              "av_cross_attn_video_scale_shift", "av_cross_attn_audio_scale_shift", "av_cross_attn_video_a2v_gate",
              "av_cross_attn_audio_v2a_gate")  # fmt: skip
TRANSFORMER_TOP_LINEARS: tuple[str, ...] = (
    "proj_in", "audio_proj_in", "proj_out", "audio_proj_out",
    "caption_projection.linear_1", "caption_projection.linear_2",
    "audio_caption_projection.linear_1", "audio_caption_projection.linear_2",
    *(f"{e}.{layer}" for e in _EMBEDDERS
      for layer in ("emb.timestep_embedder.linear_1", "emb.timestep_embedder.linear_2", "linear")),
)  # fmt: skip
_ATTENTION_LINEARS = ("to_q", "to_k", "to_v", "to_out.0", "to_gate_logits")
TRANSFORMER_BLOCK_LINEARS: tuple[str, ...] = (
    *(f"{attn}.{layer}" for attn in ("attn1", "attn2", "audio_attn1", "audio_attn2", "audio_to_video_attn",
                                     "video_to_audio_attn") for layer in _ATTENTION_LINEARS),
    "ff.net.0.proj", "ff.net.2", "audio_ff.net.0.proj", "audio_ff.net.2",
)  # fmt: skip
# LTX2TextConnectors: the feature projection(s) and, in each connector block, one attention and one feed-forward.
CONNECTOR_PROJECTIONS: tuple[str, ...] = ("text_proj_in", "video_text_proj_in", "audio_text_proj_in")
CONNECTOR_BLOCK_LINEARS: tuple[str, ...] = (*(f"attn1.{layer}" for layer in _ATTENTION_LINEARS), "ff.net.0.proj",
                                            "ff.net.2")  # fmt: skip

_TRANSFORMER_NAME = re.compile(
    rf"^(?:{'|'.join(map(re.escape, TRANSFORMER_TOP_LINEARS))}"
    rf"|transformer_blocks\.\d+\.(?:{'|'.join(map(re.escape, TRANSFORMER_BLOCK_LINEARS))}))$"
)
_CONNECTOR_NAME = re.compile(
    rf"^(?:{'|'.join(CONNECTOR_PROJECTIONS)}"
    rf"|(?:video|audio)_connector\.transformer_blocks\.\d+\.(?:{'|'.join(map(re.escape, CONNECTOR_BLOCK_LINEARS))}))$"
)
# Stripped before the module path, first match wins.
_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "transformer.", "base_model.model.")
_ORIGINAL_CONNECTORS = ("video_embeddings_connector.", "audio_embeddings_connector.", "text_embedding_projection.")
KOHYA_PREFIX = "lora_unet_"


def parse_lora_key(key: str) -> tuple[str, str, str] | None:
    """`diffusion_model.patchify_proj.lora_A.weight` -> ("transformer", "proj_in", "A"); connector keys give
    ("connectors", "video_connector.transformer_blocks.0.attn1.to_q", ...). None when the key names no linear layer
    of the transformer or the connectors in any spelling read here."""
    found = next(((suffix, part) for suffix, part in PARTS if key.endswith(suffix)), None)
    if found is None:
        return None
    path, part = key[: -len(found[0])], found[1]
    if path.startswith(KOHYA_PREFIX):
        located = _kohya_module(path[len(KOHYA_PREFIX) :])
    elif path.startswith("connectors."):
        located = "connectors", path[len("connectors.") :]
    else:
        located = _dotted_module(path)
    if located is None:
        return None
    component, name = located
    pattern = _TRANSFORMER_NAME if component == "transformer" else _CONNECTOR_NAME
    return (component, name, part) if pattern.match(name) else None


def _dotted_module(path: str) -> tuple[str, str] | None:
    for prefix in _PREFIXES:
        if path.startswith(prefix):
            path = path[len(prefix) :]
            break
    if not re.fullmatch(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*", path):
        return None
    # the original layout's names, renamed through the full-checkpoint tables (`.weight` makes them parameter names)
    if path.startswith(_ORIGINAL_CONNECTORS):
        full = path if path.startswith("text_embedding_projection.") else f"model.diffusion_model.{path}"
        return "connectors", rename_keys([f"{full}.weight"], CONNECTOR_RENAMES)[f"{full}.weight"][: -len(".weight")]
    full = f"model.diffusion_model.{path}.weight"
    return "transformer", rename_keys([full], TRANSFORMER_RENAMES)[full][: -len(".weight")]


def _kohya_module(flat: str) -> tuple[str, str] | None:
    """`transformer_blocks_3_audio_attn1_to_out_0` -> ("transformer", "transformer_blocks.3.audio_attn1.to_out.0").
    Names with their dots made underscores are ambiguous on their own, so they are looked up among the known linear
    layers (original and diffusers spellings); musubi-tuner roots its names at `model_`."""
    top, block, connector_block = _kohya_tables()
    for candidate in (flat, flat.removeprefix("model_")) if flat.startswith("model_") else (flat,):
        connector = re.fullmatch(
            r"(video_|audio_)?embeddings_connector_transformer(?:_1d)?_blocks_(\d+)_(.+)", candidate
        )
        if connector:
            inner = connector_block.get(connector.group(3))
            modality = (connector.group(1) or "video_")[:-1]
            if inner is not None:
                return "connectors", f"{modality}_connector.transformer_blocks.{connector.group(2)}.{inner}"
            continue
        projection = re.fullmatch(
            r"text_embedding_projection_(aggregate_embed|video_aggregate_embed|audio_aggregate_embed)", candidate
        )
        if projection:
            return "connectors", projection.group(1).replace("aggregate_embed", "text_proj_in")
        blocks = re.fullmatch(r"transformer_blocks_(\d+)_(.+)", candidate)
        if blocks and blocks.group(2) in block:
            return "transformer", f"transformer_blocks.{blocks.group(1)}.{block[blocks.group(2)]}"
        if candidate in top:
            return "transformer", top[candidate]
    return None


@functools.cache
def _kohya_tables() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """{flattened name: diffusers name} for top-level transformer linears, in-block transformer linears and in-block
    connector linears, each by its diffusers and its original spelling. Raises if two names flatten alike."""
    tables: tuple[dict[str, str], dict[str, str], dict[str, str]] = ({}, {}, {})
    groups = (TRANSFORMER_TOP_LINEARS, tuple(f"transformer_blocks.0.{n}" for n in TRANSFORMER_BLOCK_LINEARS))
    for table, names in zip(tables, groups):
        originals = rename_keys([f"{n}.weight" for n in names], TRANSFORMER_RENAMES_INVERSE)
        for name in names:
            original = originals[f"{name}.weight"].removeprefix("model.diffusion_model.")[: -len(".weight")]
            for spelling in {name, original}:
                flat, target = spelling.removeprefix("transformer_blocks.0.").replace(".", "_"), name
                target = target.removeprefix("transformer_blocks.0.")
                if table.setdefault(flat, target) != target:
                    raise ValueError(f"kohya name {flat!r} is ambiguous: {table[flat]!r} and {target!r}")
    for name in CONNECTOR_BLOCK_LINEARS:
        tables[2][name.replace(".", "_")] = name
    return tables
