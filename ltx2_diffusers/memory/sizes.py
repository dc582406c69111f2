"""`component_sizes(pipe)`: the planner's `ComponentSizes`, measured from a pipeline's modules (works on meta too)."""

import torch
from torch import nn

from ..models.fp8 import FP8_DTYPE, fp8_layer_names, is_fp8
from ..pipelines.text_encoding import gemma_language_model
from .planner import ComponentSizes


def tensor_bytes(module: nn.Module | None) -> int:
    """Bytes of a module's parameters and buffers (each shared tensor once); 0 for None."""
    if module is None:
        return 0
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def _fp8_savings(transformer: nn.Module) -> dict[int, int]:
    """Bytes each block would save with its policy linears in FP8 (1-byte weights plus a float32 scale per row)."""
    savings: dict[int, int] = {}
    for name in fp8_layer_names(transformer):
        parts = name.split(".")
        if parts[0] != "transformer_blocks":
            continue
        linear = transformer.get_submodule(name)
        weight = linear.weight
        saved = weight.numel() * (weight.element_size() - torch.finfo(FP8_DTYPE).bits // 8) - 4 * linear.out_features
        savings[int(parts[1])] = savings.get(int(parts[1]), 0) + saved
    return savings


def gemma_vision_modules(text_encoder: nn.Module) -> list[nn.Module]:
    """The parts of a Gemma-3 model that only image inputs run: vision tower and multimodal projector."""
    inner = getattr(text_encoder, "model", text_encoder)
    return [getattr(inner, name) for name in ("vision_tower", "multi_modal_projector") if hasattr(inner, name)]


def component_sizes(pipe) -> ComponentSizes:
    """Measure a pipeline's components for `plan_memory` (parameters and buffers, peft adapters included)."""
    transformer = pipe.transformer
    blocks = tuple(tensor_bytes(block) for block in transformer.transformer_blocks)
    savings = {} if is_fp8(transformer) else _fp8_savings(transformer)
    config = transformer.config
    text_encoder = getattr(pipe, "text_encoder", None)
    layers, other, vision, text_hidden_size, text_hidden_states = (), 0, 0, 3840, 49
    if text_encoder is not None:
        language_model = gemma_language_model(text_encoder)
        layers = tuple(tensor_bytes(layer) for layer in language_model.layers)
        vision = sum(tensor_bytes(module) for module in gemma_vision_modules(text_encoder))
        other = tensor_bytes(text_encoder) - sum(layers) - vision
        text_hidden_size = language_model.config.hidden_size
        text_hidden_states = language_model.config.num_hidden_layers + 1
    upsampler = getattr(pipe, "latent_upsampler", None)
    vocoder = getattr(pipe, "vocoder", None)
    return ComponentSizes(
        transformer_blocks=blocks,
        transformer_blocks_fp8=tuple(size - savings.get(i, 0) for i, size in enumerate(blocks)),
        transformer_other=tensor_bytes(transformer) - sum(blocks),
        text_encoder_layers=layers,
        text_encoder_other=other,
        text_encoder_vision=vision,
        connectors=tensor_bytes(getattr(pipe, "connectors", None)),
        vae=tensor_bytes(getattr(pipe, "vae", None)),
        audio_vae=tensor_bytes(getattr(pipe, "audio_vae", None)),
        vocoder=tensor_bytes(vocoder),
        latent_upsampler=tensor_bytes(upsampler),
        temporal_upsampler=tensor_bytes(getattr(pipe, "temporal_upsampler", None)),
        transformer_is_fp8=is_fp8(transformer),
        video_width=config.num_attention_heads * config.attention_head_dim,
        audio_width=config.audio_num_attention_heads * config.audio_attention_head_dim,
        text_hidden_size=text_hidden_size,
        text_hidden_states=text_hidden_states,
        audio_sample_rate=int(vocoder.config.output_sampling_rate) if vocoder is not None else 24000,
        upsampler_channels=upsampler.config.mid_channels if upsampler is not None else 1024,
    )
