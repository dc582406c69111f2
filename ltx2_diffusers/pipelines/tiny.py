"""A tiny random LTX2AVPipeline built offline in about a second: for tests, docs and `ltx2-diffusers --model tiny`.

Same architecture and the SAME compression as the real model, only narrow: the video VAE compresses 8x in time and
32x in space (patch 4, then 2x3 spatial and 3 temporal halvings), the audio VAE 4x in time and mel (64 -> 16 bins),
the vocoder upsamples 240x to 24 kHz (LTX-2.3: 160x to 16 kHz, then bandwidth extension to 48 kHz), so real-looking sizes work: 17 frames at 128x128 are 3x4x4 = 48 video tokens
and 18 audio tokens. The transformer has 30 blocks (so the real defaults' STG blocks 29 / 28 exist) of width 16.
The text encoder is the tiny Gemma-3 of `utils/tiny_gemma.py`, with its processor. Weights are random: the output is noise with sound.
"""

import torch

from ..utils.tiny_gemma import (
    TINY_GEMMA_HIDDEN_SIZE,
    TINY_GEMMA_NUM_HIDDEN_STATES,
    build_tiny_gemma,
    build_tiny_gemma_processor,
)
from .pipeline_ltx2_av import LTX2AVPipeline

TINY_NUM_LAYERS = 30


def tiny_transformer_config(model_version: str = "2.0") -> dict:
    """LTX2VideoTransformer3DModel config: video 2 heads x 8, audio 2 heads x 4, 30 blocks, 128 latent channels."""
    is_23 = model_version == "2.3"
    return {
        "in_channels": 128,
        "out_channels": 128,
        "num_attention_heads": 2,
        "attention_head_dim": 8,
        "cross_attention_dim": 16,
        "audio_in_channels": 128,
        "audio_out_channels": 128,
        "audio_num_attention_heads": 2,
        "audio_attention_head_dim": 4,
        "audio_cross_attention_dim": 8,
        "num_layers": TINY_NUM_LAYERS,
        "caption_channels": TINY_GEMMA_HIDDEN_SIZE,
        "rope_type": "split",
        "cross_attn_timestep_scale_multiplier": 1000,
        "gated_attn": is_23,
        "audio_gated_attn": is_23,
        "cross_attn_mod": is_23,
        "audio_cross_attn_mod": is_23,
        "use_prompt_embeddings": not is_23,
        "perturbed_attn": True,
    }


def tiny_connectors_config(model_version: str = "2.0") -> dict:
    """LTX2TextConnectors config for the tiny Gemma (hidden 32, 3 hidden states): 1 block, 2 heads, 128 registers."""
    is_23 = model_version == "2.3"
    config = {
        "caption_channels": TINY_GEMMA_HIDDEN_SIZE,
        "text_proj_in_factor": TINY_GEMMA_NUM_HIDDEN_STATES,
        "video_connector_num_attention_heads": 2,
        "video_connector_attention_head_dim": 16 if not is_23 else 8,
        "video_connector_num_layers": 1,
        "video_connector_num_learnable_registers": 128,
        "audio_connector_num_attention_heads": 2,
        "audio_connector_attention_head_dim": 16 if not is_23 else 4,
        "audio_connector_num_layers": 1,
        "audio_connector_num_learnable_registers": 128,
        "rope_type": "split",
    }
    if is_23:
        config.update(
            per_modality_projections=True,
            video_hidden_dim=16,
            audio_hidden_dim=8,
            video_gated_attn=True,
            audio_gated_attn=True,
        )
    return config


TINY_VAE_CONFIG = {
    "latent_channels": 128,
    "decoder_causal": False,  # the released decoder (diffusers' class defaults to causal)
    "block_out_channels": (128, 128, 128, 128),  # the original format grows the encoder from latent_channels
    "decoder_block_out_channels": (8, 16, 32),
    "layers_per_block": (1, 1, 1, 1, 1),
    "decoder_layers_per_block": (1, 1, 1, 1),
    "spatio_temporal_scaling": (True, True, True, True),
    "decoder_spatio_temporal_scaling": (True, True, True),
    "decoder_inject_noise": (False, False, False, False),
    "upsample_residual": (True, True, True),
    "upsample_factor": (2, 2, 2),
    "patch_size": 4,
    "patch_size_t": 1,
}

# base_channels sizes the latent statistics (one per token feature, 8 channels x 16 mel bins): it must stay 128.
TINY_AUDIO_VAE_CONFIG = {"base_channels": 128, "ch_mult": (1, 1, 1), "num_res_blocks": 1, "latent_channels": 8}

TINY_VOCODER_CONFIG = {
    "in_channels": 128,  # 2 channels x 64 mel bins
    "hidden_channels": 32,
    "upsample_kernel_sizes": [16, 15, 8, 4, 4],
    "upsample_factors": [6, 5, 2, 2, 2],  # 240 samples per 10 ms mel frame: 24 kHz
    "resnet_kernel_sizes": [3],
    "resnet_dilations": [[1, 3]],
    "output_sampling_rate": 24000,
}

# LTX-2.3: BigVGAN-v2 at 16 kHz (160x per mel frame), then bandwidth extension to 48 kHz, the real factors.
TINY_VOCODER_BWE_CONFIG = {
    "in_channels": 128,
    "hidden_channels": 64,
    "upsample_kernel_sizes": [11, 4, 4, 4, 4, 4],
    "upsample_factors": [5, 2, 2, 2, 2, 2],
    "resnet_kernel_sizes": [3],
    "resnet_dilations": [[1, 3]],
    "bwe_hidden_channels": 32,
    "bwe_upsample_kernel_sizes": [12, 11, 4, 4, 4],
    "bwe_upsample_factors": [6, 5, 2, 2, 2],
    "bwe_resnet_kernel_sizes": [3],
    "bwe_resnet_dilations": [[1, 3]],
    "output_sampling_rate": 48000,
}


def build_tiny_pipeline(seed: int = 0, model_version: str = "2.0") -> LTX2AVPipeline:
    """A random tiny LTX2AVPipeline in fp32 on the CPU; the same seed gives the same weights.

    model_version "2.0" (LTX-2) or "2.3" (LTX-2.3 layout: gated attention, per-modality connector projections) picks
    the architecture and therefore the pipeline's default steps and guidance.
    """
    from .. import (
        AutoencoderKLLTX2Audio,
        AutoencoderKLLTX2Video,
        LTX2Scheduler,
        LTX2TextConnectors,
        LTX2VideoTransformer3DModel,
        LTX2Vocoder,
        LTX2VocoderWithBWE,
    )

    if model_version not in ("2.0", "2.3"):
        raise ValueError(f"model_version must be '2.0' or '2.3', got {model_version!r}")
    with torch.random.fork_rng(devices=[]):  # neither depend on nor disturb the caller's RNG
        torch.manual_seed(seed)
        text_encoder, tokenizer = build_tiny_gemma(seed)
        transformer = LTX2VideoTransformer3DModel(**tiny_transformer_config(model_version))
        connectors = LTX2TextConnectors(**tiny_connectors_config(model_version))
        vae = AutoencoderKLLTX2Video(**TINY_VAE_CONFIG)
        audio_vae = AutoencoderKLLTX2Audio(**TINY_AUDIO_VAE_CONFIG)
        if model_version == "2.3":
            vocoder = LTX2VocoderWithBWE(**TINY_VOCODER_BWE_CONFIG)
        else:
            vocoder = LTX2Vocoder(**TINY_VOCODER_CONFIG)
        # Several parameters start at zero (AdaLN tables, registers): give every one small random values so each
        # path carries signal and tests can see a wrong wire.
        for module in (transformer, connectors):
            for parameter in module.parameters():
                parameter.data.normal_(0.0, 0.05)
    pipe = LTX2AVPipeline(
        scheduler=LTX2Scheduler(),
        vae=vae.eval(),
        audio_vae=audio_vae.eval(),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        connectors=connectors.eval(),
        transformer=transformer.eval(),
        vocoder=vocoder.eval(),
        processor=build_tiny_gemma_processor(tokenizer),  # image-to-video prompt enhancement
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


# A spatial x2 upsampler of the released kind (Conv3d network, pixel-shuffle upsampling), only narrow.
TINY_LATENT_UPSAMPLER_CONFIG = {
    "in_channels": 128,
    "mid_channels": 32,
    "num_blocks_per_stage": 1,
    "dims": 3,
    "spatial_upsample": True,
    "temporal_upsample": False,
    "use_rational_resampler": False,
}


def build_tiny_two_stage_pipeline(seed: int = 0, model_version: str = "2.0"):
    """`build_tiny_pipeline`'s components plus a random tiny spatial x2 latent upsampler, as an
    LTX2AVTwoStagePipeline (fp32, CPU). Outputs must be multiples of 64 in height and width (e.g. 128x128)."""
    from ..models.latent_upsampler import LTX2LatentUpsamplerModel
    from .pipeline_ltx2_av_two_stage import LTX2AVTwoStagePipeline

    one_stage = build_tiny_pipeline(seed, model_version)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        upsampler = LTX2LatentUpsamplerModel(**TINY_LATENT_UPSAMPLER_CONFIG).eval()
    pipe = LTX2AVTwoStagePipeline(**one_stage.components, latent_upsampler=upsampler)
    pipe.set_progress_bar_config(disable=True)
    return pipe
