"""A tiny random LTX2AVPipeline built offline in about a second: for tests, docs and `ltx2-diffusers --model tiny`.

Same architecture and the SAME compression as the real model, only narrow: the video VAE compresses 8x in time and
32x in space (patch 4, then 2x3 spatial and 3 temporal halvings), the audio VAE 4x in time and mel (64 -> 16 bins),
the vocoder upsamples 240x to 24 kHz (LTX-2.3: 160x to 16 kHz, then bandwidth extension to 48 kHz), so real-looking sizes work: 17 frames at 128x128 are 3x4x4 = 48 video tokens
and 18 audio tokens. The transformer has 30 blocks (so the real defaults' STG blocks 29 / 28 exist) of width 16.
The text encoder is the tiny Gemma-3 of `utils/tiny_gemma.py`, with its processor. Weights are random: the output is noise with sound.

LTX-2.5 (`model_version="2.5"`) arranges its components as diffusers 0.42.1's LTX2Pipeline does: `vae` is the
convolutional video VAE (its encoder conditions on images and feeds the upsampler, as the reference builds the encoder
from the 2.5 VAE file), `diffusion_decoder` the diffusion video decoder that decodes the final latents, and
`duration_head` predicts the clip length when `num_frames` is None; the text encoder is a tiny Gemma-4 unified.
"""

import torch

from ..utils.tiny_gemma import (
    TINY_GEMMA_HIDDEN_SIZE,
    TINY_GEMMA_NUM_HIDDEN_STATES,
    build_tiny_gemma,
    build_tiny_gemma4,
    build_tiny_gemma_processor,
)
from .pipeline_ltx2_av import LTX2AVPipeline

TINY_NUM_LAYERS = 30
TINY_MODEL_VERSIONS = ("2.0", "2.3", "2.5")


def tiny_transformer_config(model_version: str = "2.0") -> dict:
    """LTX2VideoTransformer3DModel config: video 2 heads x 8, audio 2 heads x 4, 30 blocks, 128 latent channels.
    LTX-2.5 is LTX-2.3's layout plus the keyframe embedding, bias-free video FFNs and the prompt AdaLN."""
    is_23 = model_version in ("2.3", "2.5")
    config = {
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
    if model_version == "2.5":
        config.update(ff_bias=False, use_keyframes_abs_pos_embedding=True, use_prompt_adaln_single=True)
    return config


def tiny_connectors_config(model_version: str = "2.0") -> dict:
    """LTX2TextConnectors config for the tiny Gemma (hidden 32, 3 hidden states): 1 block, 2 heads, 128 registers.
    LTX-2.5's connectors are LTX-2.3's (per-modality projections, gated attention) with the FFN biases ltx-core 1.2.0
    defaults to (`connector_ff_bias=True`; the released value is not known, spec §1.3)."""
    is_23 = model_version in ("2.3", "2.5")
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
    if model_version == "2.5":
        # the original format's V2 projections carry biases (what the converter reads a V2 file as); the tiny 2.3
        # keeps its bias-free ones so the weights its goldens were made with stay the same
        config.update(proj_bias=True)
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

# LTX-2.5's diffusion decoder, narrow: the real strides (x2 spatial, x2 temporal, x2x2x2, x2x2x2, patch 4) and the
# real stage-5 velocity model with 2 Euler steps; small kernels so 17 frames at 128 x 128 (3 x 4 x 4 latents) decode.
TINY_DIFFUSION_DECODER_CONFIG = {
    "latent_channels": 128,
    "decoder_head_dim": 8,
    "decoder_stage_channels": (32, 16, 16, 16, 8),
    "decoder_stage_depths": (1, 1, 1, 1, 1),
    "decoder_stage_kernels": ((3, 3, 3),) * 4,
    "decoder_upsample_channel_reductions": (2, 1, 1, 2),
    "decoder_stage5_kernel": (3, 3, 3),
    "decoder_t_emb_dim": 16,
    "decoder_num_inference_steps": 2,
    "decoder_model_output_type": "v",
}

# LTX-2.5's duration head over the tiny connectors' outputs (video 16, audio 8 wide).
TINY_DURATION_HEAD_CONFIG = {
    "video_cross_attention_dim": 16,
    "audio_cross_attention_dim": 8,
    "pooler_hidden_dim": 16,
    "num_queries": 1,
    "num_pooler_heads": 4,
    "mlp_hidden_dim": 16,
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


def build_tiny_pipeline(
    seed: int = 0, model_version: str = "2.0", duration_head: bool | None = None
) -> LTX2AVPipeline:
    """A random tiny LTX2AVPipeline in fp32 on the CPU; the same seed gives the same weights.

    model_version "2.0" (LTX-2), "2.3" (LTX-2.3 layout: gated attention, per-modality connector projections) or
    "2.5" (LTX-2.5: 2.3's layout plus keyframe embedding and bias-free video FFNs, a Gemma-4 unified text encoder,
    the diffusion video decoder as `diffusion_decoder` beside the convolutional `vae`, and, with `duration_head`, a
    duration head) picks the architecture and therefore the pipeline's default steps and guidance.
    duration_head: None -> one for LTX-2.5 only; False builds LTX-2.5 without it (num_frames then defaults to 121).
    """
    from .. import (
        AutoencoderKLLTX2Audio,
        AutoencoderKLLTX2Video,
        LTX2DurationHead,
        LTX2Scheduler,
        LTX2TextConnectors,
        LTX2VideoDiffusionDecoderModel,
        LTX2VideoTransformer3DModel,
        LTX2Vocoder,
        LTX2VocoderWithBWE,
    )

    if model_version not in TINY_MODEL_VERSIONS:
        raise ValueError(f"model_version must be one of {TINY_MODEL_VERSIONS}, got {model_version!r}")
    if duration_head and model_version != "2.5":
        raise ValueError(f"duration_head=True: only LTX-2.5 has a duration head, not {model_version!r}; drop it")
    duration_head = model_version == "2.5" if duration_head is None else duration_head
    is_25 = model_version == "2.5"
    extra = {}
    with torch.random.fork_rng(devices=[]):  # neither depend on nor disturb the caller's RNG
        torch.manual_seed(seed)
        text_encoder, tokenizer = build_tiny_gemma4(seed) if is_25 else build_tiny_gemma(seed)
        transformer = LTX2VideoTransformer3DModel(**tiny_transformer_config(model_version))
        connectors = LTX2TextConnectors(**tiny_connectors_config(model_version))
        vae = AutoencoderKLLTX2Video(**TINY_VAE_CONFIG)
        audio_vae = AutoencoderKLLTX2Audio(**TINY_AUDIO_VAE_CONFIG)
        if model_version in ("2.3", "2.5"):
            vocoder = LTX2VocoderWithBWE(**TINY_VOCODER_BWE_CONFIG)
        else:
            vocoder = LTX2Vocoder(**TINY_VOCODER_CONFIG)
        randomized = [transformer, connectors]
        if is_25:
            extra["diffusion_decoder"] = LTX2VideoDiffusionDecoderModel(**TINY_DIFFUSION_DECODER_CONFIG).eval()
            if duration_head:
                extra["duration_head"] = LTX2DurationHead(**TINY_DURATION_HEAD_CONFIG).eval()
                randomized.append(extra["duration_head"])
        # Several parameters start at zero (AdaLN tables, registers, the keyframe embedding, the duration head's
        # query): give every one small random values so each path carries signal and tests can see a wrong wire.
        for module in randomized:
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
        # image-to-video prompt enhancement (Gemma-3 only: the tiny Gemma-4 has no vision tower)
        processor=None if is_25 else build_tiny_gemma_processor(tokenizer),
        **extra,
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


def build_tiny_two_stage_pipeline(seed: int = 0, model_version: str = "2.0", duration_head: bool | None = None):
    """`build_tiny_pipeline`'s components plus a random tiny spatial x2 latent upsampler, as an
    LTX2AVTwoStagePipeline (fp32, CPU). Outputs must be multiples of 64 in height and width (e.g. 128x128)."""
    from ..models.latent_upsampler import LTX2LatentUpsamplerModel
    from .pipeline_ltx2_av_two_stage import LTX2AVTwoStagePipeline

    one_stage = build_tiny_pipeline(seed, model_version, duration_head)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        upsampler = LTX2LatentUpsamplerModel(**TINY_LATENT_UPSAMPLER_CONFIG).eval()
    pipe = LTX2AVTwoStagePipeline(**one_stage.components, latent_upsampler=upsampler)
    pipe.set_progress_bar_config(disable=True)
    return pipe
