"""Builders for the memory tests: the full-size LTX-2 19B pipeline (random weights, built on the meta device and then
allocated directly on the target device in the target dtype: never an fp32 copy on the host), and a tiny two-stage
pipeline whose transformer carries a peft adapter."""

import zlib

import torch
from transformers import Gemma3Config, Gemma3ForConditionalGeneration

from ltx2_diffusers import (
    AutoencoderKLLTX2Audio,
    AutoencoderKLLTX2Video,
    LTX2LatentUpsamplerModel,
    LTX2Scheduler,
    LTX2TextConnectors,
    LTX2VideoTransformer3DModel,
)
from ltx2_diffusers.loaders import metadata as md
from ltx2_diffusers.utils.tiny_gemma import build_tiny_gemma_tokenizer

from .released_configs import released

# Gemma-3 12B (google/gemma-3-12b-it's config.json): 48 layers of width 3840, a 262k vocabulary, a SigLIP vision tower
GEMMA3_12B_TEXT = {
    "vocab_size": 262208,
    "hidden_size": 3840,
    "intermediate_size": 15360,
    "num_hidden_layers": 48,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 256,
    "query_pre_attn_scalar": 256,
    "sliding_window": 1024,
    "max_position_embeddings": 131072,
    "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
}
SIGLIP_VISION = {
    "model_type": "siglip_vision_model",
    "hidden_size": 1152,
    "intermediate_size": 4304,
    "num_hidden_layers": 27,
    "num_attention_heads": 16,
    "image_size": 896,
    "patch_size": 14,
    "vision_use_head": False,
}
FULL_UPSAMPLER = {
    "in_channels": 128,
    "mid_channels": 1024,
    "num_blocks_per_stage": 4,
    "dims": 3,
    "spatial_upsample": True,
    "temporal_upsample": False,
    "use_rational_resampler": False,
}


def full_size_components(version: str = md.LTX2) -> dict[str, torch.nn.Module]:
    """The full-size models of a released two-stage pipeline on the META device (no memory): transformer, connectors,
    video VAE, audio VAE, vocoder, x2 latent upsampler and Gemma-3 12B as `text_encoder`."""
    configs = md.component_configs_from_original(released(version), text_proj_in_factor=49)
    import ltx2_diffusers

    with torch.device("meta"):
        models = {name: getattr(ltx2_diffusers, cls)(**config) for name, (cls, config) in configs.items()}
        models["latent_upsampler"] = LTX2LatentUpsamplerModel(**FULL_UPSAMPLER)
        gemma = Gemma3Config(text_config=GEMMA3_12B_TEXT, vision_config=SIGLIP_VISION, mm_tokens_per_image=256)
        models["text_encoder"] = Gemma3ForConditionalGeneration(gemma)
    return models


def materialise(models: dict[str, torch.nn.Module], device: torch.device, dtype: torch.dtype) -> None:
    """Allocate meta models in place on `device` in `dtype`: parameters seeded small random values (per parameter name,
    so the same name always gets the same values), buffers their real values (latent statistics: mean 0, std 1;
    Gemma's embedding scale, RoPE frequencies and vision position ids as its constructors make them)."""
    for component, model in models.items():
        float_dtype = dtype if component != "vocoder" else torch.float32  # the vocoder runs in float32
        torch.nn.Module.to(model, float_dtype).to_empty(device=device).eval()
        for name, parameter in model.named_parameters():
            generator = torch.Generator(device=device).manual_seed(zlib.crc32(f"{component}.{name}".encode()))
            parameter.data.normal_(0.0, 0.02, generator=generator)
    for component in ("vae", "audio_vae"):
        models[component].latents_mean.data.zero_()
        models[component].latents_std.data.fill_(1.0)
    gemma = models["text_encoder"].model
    language_model = gemma.language_model
    language_model.embed_tokens.embed_scale.fill_(language_model.config.hidden_size**0.5)
    language_model.rotary_emb = type(language_model.rotary_emb)(language_model.config, device=device)
    position_ids = gemma.vision_tower.embeddings.position_ids
    position_ids.copy_(torch.arange(position_ids.shape[-1], device=device).expand_as(position_ids))


def build_full_size_two_stage_pipeline(device: str = "cuda", dtype: torch.dtype = torch.bfloat16):
    """LTX2AVTwoStagePipeline at full LTX-2 19B size with random weights, allocated directly on `device` (about 62 GB
    in bf16 with Gemma-3 12B), distilled scheduler."""
    from ltx2_diffusers.pipelines.pipeline_ltx2_av_two_stage import LTX2AVTwoStagePipeline

    models = full_size_components()
    materialise(models, torch.device(device), dtype)
    tokenizer = build_tiny_gemma_tokenizer()  # any Gemma-style tokenizer: the ids stay below the 262k vocabulary
    pipe = LTX2AVTwoStagePipeline(scheduler=LTX2Scheduler.distilled(), tokenizer=tokenizer, **models)
    pipe.set_progress_bar_config(disable=True)
    return pipe


__all__ = [
    "AutoencoderKLLTX2Audio",
    "AutoencoderKLLTX2Video",
    "LTX2TextConnectors",
    "LTX2VideoTransformer3DModel",
    "build_full_size_two_stage_pipeline",
    "full_size_components",
    "materialise",
]
