"""LTX-2.5 duration head: Lightricks' file (`model_patches/ltx-2.5-duration-head-bf16.safetensors`, keys under
`duration_head.`) <-> diffusers' `LTX2DurationHead` (spec §4.5).

The file stores the pooler as a `torch.nn.MultiheadAttention`: `attention_pooler.cross_attn.in_proj_weight`
[3P, P] / `in_proj_bias` [3P] (q, k, v stacked in that order) and `out_proj`; diffusers has separate `to_q`, `to_k`,
`to_v`, `to_out`. Every other name is the same. Both directions are exact (a split and a concatenation).

Config: metadata `config.duration_head` holds the head's own sizes (ltx-core reads them with its defaults, "no
finalized schema yet"); the input widths are the transformer's `cross_attention_dim` / `audio_cross_attention_dim`.
`config_from_original` checks every size against the tensors, so a wrong or missing entry fails loudly.
"""

import re
from collections.abc import Mapping

import torch
from torch import Tensor

PREFIX = "duration_head."
ORIGINAL_DEFAULTS = {"pooler_hidden_dim": 256, "num_queries": 1, "num_pooler_heads": 4, "mlp_hidden": 256}
_POOLER = "attention_pooler.cross_attn."
DIFFUSERS_KEY = re.compile(
    r"^(?:(?:video|audio)_input_proj\.(?:weight|bias)|(?:video|audio)_modality_emb|attention_pooler\.query_tokens"
    r"|attention_pooler\.to_(?:q|k|v|out)\.(?:weight|bias)|mlp_(?:hidden|out)\.(?:weight|bias))$"
)


def original_to_diffusers(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """`duration_head.*` tensors of a Lightricks file -> diffusers' state dict (the pooler's in_proj split)."""
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if not key.startswith(PREFIX):
            raise ValueError(f"{key!r} is not a duration-head key (expected the prefix {PREFIX!r}).")
        name = key.removeprefix(PREFIX)
        if name in (_POOLER + "in_proj_weight", _POOLER + "in_proj_bias"):
            if value.shape[0] % 3:
                raise ValueError(f"{key!r} has {value.shape[0]} rows, not 3 x hidden: not a stacked q, k, v.")
            leaf = "weight" if name.endswith("weight") else "bias"
            for part, tensor in zip("qkv", value.chunk(3, dim=0), strict=True):
                out[f"attention_pooler.to_{part}.{leaf}"] = tensor.clone()
        else:
            name = name.replace(_POOLER + "out_proj.", "attention_pooler.to_out.")
            if not DIFFUSERS_KEY.match(name):
                raise ValueError(f"Unknown duration-head key {key!r}; not a parameter of LTX2DurationHead.")
            out[name] = value
    return out


def diffusers_to_original(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """diffusers' state dict -> the file's `duration_head.*` layout (to_q, to_k, to_v stacked into in_proj)."""
    out: dict[str, Tensor] = {}
    for name, value in state_dict.items():
        if not DIFFUSERS_KEY.match(name):
            raise ValueError(f"{name!r} is not a parameter of LTX2DurationHead.")
        match = re.fullmatch(r"attention_pooler\.to_([qkv])\.(weight|bias)", name)
        if match is None:
            out[PREFIX + name.replace("attention_pooler.to_out.", _POOLER + "out_proj.")] = value
        elif match.group(1) == "q":
            leaf = match.group(2)
            parts = [state_dict[f"attention_pooler.to_{p}.{leaf}"] for p in "qkv"]
            out[f"{PREFIX}{_POOLER}in_proj_{leaf}"] = torch.cat(parts, dim=0)
    return out


def config_from_original(metadata_config: Mapping, state_dict: Mapping[str, Tensor]) -> dict:
    """Metadata `config` (its `transformer` and `duration_head` entries) and the file's tensors -> diffusers' config.

    Sizes the tensors show are read from them and must agree with the metadata where it states them; the number of
    pooler heads is not visible in the tensors and comes from `config.duration_head.num_pooler_heads` (default 4)."""
    head = {**ORIGINAL_DEFAULTS, **metadata_config.get("duration_head", {})}
    unknown = sorted(set(head) - set(ORIGINAL_DEFAULTS))
    if unknown:
        raise ValueError(f"config.duration_head has keys this converter does not know: {unknown}; known: "
                         f"{sorted(ORIGINAL_DEFAULTS)}.")
    transformer = metadata_config.get("transformer", {})
    shapes = {k.removeprefix(PREFIX): tuple(v.shape) for k, v in state_dict.items()}
    try:
        hidden, video_dim = shapes["video_input_proj.weight"]
        audio_dim = shapes["audio_input_proj.weight"][1]
        num_queries = shapes["attention_pooler.query_tokens"][0]
        mlp_hidden = shapes["mlp_hidden.weight"][0]
    except KeyError as missing:
        raise ValueError(f"The duration-head tensors lack {PREFIX}{missing.args[0]}; is this a duration-head file?") \
            from None
    found = {"pooler_hidden_dim": hidden, "num_queries": num_queries, "mlp_hidden": mlp_hidden,
             "cross_attention_dim": video_dim, "audio_cross_attention_dim": audio_dim}
    stated = {**{k: head[k] for k in ("pooler_hidden_dim", "num_queries", "mlp_hidden")
                 if k in metadata_config.get("duration_head", {})},
              **{k: transformer[k] for k in ("cross_attention_dim", "audio_cross_attention_dim") if k in transformer}}
    wrong = {k: (v, found[k]) for k, v in stated.items() if v != found[k]}
    if wrong:
        raise ValueError(f"Metadata and tensors disagree (metadata, tensors): {wrong}.")
    return {"video_cross_attention_dim": video_dim, "audio_cross_attention_dim": audio_dim,
            "pooler_hidden_dim": hidden, "num_queries": num_queries, "num_pooler_heads": head["num_pooler_heads"],
            "mlp_hidden_dim": mlp_hidden}


def config_to_original(config: Mapping) -> dict:
    """diffusers' config -> the metadata entries `duration_head` and the transformer widths it reads."""
    return {
        "duration_head": {"pooler_hidden_dim": config["pooler_hidden_dim"], "num_queries": config["num_queries"],
                          "num_pooler_heads": config["num_pooler_heads"], "mlp_hidden": config["mlp_hidden_dim"]},
        "transformer": {"cross_attention_dim": config["video_cross_attention_dim"],
                        "audio_cross_attention_dim": config["audio_cross_attention_dim"]},
    }
