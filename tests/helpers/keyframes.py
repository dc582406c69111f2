"""ltx-pipelines 1.0.0's `KeyframeInterpolationPipeline`, run on the modules of one of OUR tiny pipelines.

The reference pipeline normally builds its models from a checkpoint through `ModelLedger`s. Here its ledgers hand out
ltx-core twins of our tiny pipeline's models, holding the same weights through our key maps (the transformer as
ltx-core's `X0Model(LTXModel)`, the upsampler as its `LatentUpsampler`), in bf16 as the reference fixes. Its image
encoder is OUR video VAE behind ltx-core's encoder interface (normalised latents out, `per_channel_statistics` for the
upsampler): the encoders' own parity is the end-to-end test's subject, this harness compares what the keyframe
pipeline does with the latents. Prompt encoding returns our contexts for the same texts (their parity is tested end to
end too). Everything else (keyframe conditioning items, noiser, schedules, guiders, Euler loop, upsampling, the stage
order and the one generator) is the reference's own code.

`run_reference` returns what the reference's denoising loops saw and returned, per stage, and its final latents.
"""

from dataclasses import dataclass
from types import SimpleNamespace
from unittest import mock

import numpy as np
import PIL.Image
import pytest
import torch
from _transformer_helpers import OUR_CONFIGS, init_every_parameter, ltx_core_config
from ltx_core.model.transformer.model import X0Model
from ltx_core.model.transformer.model_configurator import LTXModelConfigurator
from ltx_core.model.upsampler import LatentUpsamplerConfigurator
from ltx_core.model.video_vae.ops import PerChannelStatistics

from helpers.pipelines import ContractCase
from ltx2_diffusers import LTX2AVKeyframeInterpolationPipeline
from ltx2_diffusers.loaders import transformer_keys, upsampler_keys
from ltx2_diffusers.models.autoencoder_kl_ltx2 import normalize_latents
from ltx2_diffusers.pipelines.guidance import GuidanceScales
from ltx2_diffusers.pipelines.text_encoding import encode_prompts
from ltx2_diffusers.pipelines.tiny import build_tiny_two_stage_pipeline, tiny_transformer_config

DTYPE = torch.bfloat16  # KeyframeInterpolationPipeline's, fixed in its __init__ and __call__

# The ltx-core upsampler config that our tiny pipeline's upsampler (TINY_LATENT_UPSAMPLER_CONFIG) converts from
TINY_UPSAMPLER_ORIGINAL = {
    "in_channels": 128,
    "mid_channels": 32,
    "num_blocks_per_stage": 1,
    "dims": 3,
    "spatial_upsample": True,
    "temporal_upsample": False,
    "spatial_scale": 2.0,
    "rational_resampler": False,
}


def ltx_core_transformer(transformer: torch.nn.Module) -> torch.nn.Module:
    """ltx-core's `LTXModel` for our transformer's config, holding its weights (our key map, inverted), eval."""
    with mock.patch.dict(OUR_CONFIGS, {"keyframes_tiny": dict(transformer.config)}):
        config = ltx_core_config("keyframes_tiny")
    reference = LTXModelConfigurator.from_config({"transformer": config})
    init_every_parameter(reference, 0)  # materialises the meta tensors; every value is overwritten below
    original = {"model.diffusion_model." + k: v for k, v in reference.state_dict().items()}
    names = transformer_keys.original_to_diffusers_keys(original, dict(transformer.config))
    ours = transformer.state_dict()
    reference.load_state_dict({k[len("model.diffusion_model.") :]: ours[names[k]] for k in original}, strict=True)
    return reference.eval()


def ltx_core_upsampler(upsampler: torch.nn.Module) -> torch.nn.Module:
    """ltx-core's `LatentUpsampler` holding our upsampler's weights (our key map, inverted), eval."""
    reference = LatentUpsamplerConfigurator.from_config(TINY_UPSAMPLER_ORIGINAL)
    names = upsampler_keys.original_to_diffusers_keys(reference.state_dict(), config=dict(upsampler.config))
    ours = upsampler.state_dict()
    reference.load_state_dict({k: ours[names[k]] for k in reference.state_dict()}, strict=True)
    return reference.eval()


class OurVideoEncoder(torch.nn.Module):
    """Our video VAE behind ltx-core's `VideoEncoder` interface: pixels (B, 3, F, H, W) -> normalised latents, in the
    reference's dtype (the VAE itself may run in float32: bf16 3-D convolutions are slow on the CPU)."""

    def __init__(self, vae: torch.nn.Module):
        super().__init__()
        self.vae = vae
        self.per_channel_statistics = PerChannelStatistics(vae.latents_mean.shape[0])
        self.per_channel_statistics.get_buffer("mean-of-means").copy_(vae.latents_mean)
        self.per_channel_statistics.get_buffer("std-of-means").copy_(vae.latents_std)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        latent = self.vae.encode(pixels.to(self.vae.dtype)).latent_dist.mode()
        return normalize_latents(latent, self.vae.latents_mean, self.vae.latents_std).to(DTYPE)


def small_pipeline(pipeline_class, seed: int = 0, num_layers: int = 4, dtype: torch.dtype = DTYPE):
    """The tiny two-stage components with a `num_layers`-block transformer (random, seeded; the STG block of the
    guidance presets, 29, does not exist in it), the transformer and upsampler in `dtype` (the VAE stays float32: bf16
    3-D convolutions are slow on the CPU), as `pipeline_class`."""
    components = build_tiny_two_stage_pipeline(seed).components
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = type(components["transformer"])(**{**tiny_transformer_config(), "num_layers": num_layers})
        for parameter in transformer.parameters():
            parameter.data.normal_(0.0, 0.05)
    pipe = pipeline_class(**{**components, "transformer": transformer.eval().to(dtype)})
    pipe.latent_upsampler.to(dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def binary_image(path, size: int, seed: int) -> str:
    """A random black-and-white size x size PNG. Its prepared pixels are -1 / 1 at full size and multiples of 1/2 after
    the exact 2x bilinear downscale of stage 1: exact in bf16, so the reference's bf16 pixels and our float32 ones
    are equal (the H.264 round trip must be off, crf 0)."""
    pixels = np.random.default_rng(seed).integers(0, 2, size=(size, size, 1), dtype=np.uint8) * 255
    PIL.Image.fromarray(np.repeat(pixels, 3, axis=2)).save(path)
    return str(path)


@dataclass
class StageStates:
    """What a denoising loop got (patchified, noised, conditioned) and returned, video and audio."""

    video_in: object
    audio_in: object
    video_out: object
    audio_out: object


@dataclass
class ReferenceRun:
    stages: list[StageStates]  # stage 1, stage 2
    video_latent: torch.Tensor  # (B, 128, F', H/32, W/32), what the reference decodes
    audio_latent: torch.Tensor  # (B, 8, T_a, 16)


def run_reference(pipe, *, prompt: str, negative_prompt: str, keyframes, seed: int, **call) -> ReferenceRun:
    """`KeyframeInterpolationPipeline.__call__` with its ledgers serving ltx-core twins of `pipe`'s models (bf16).

    pipe: our keyframe pipeline with its transformer and upsampler in bf16. keyframes: (path, frame, strength, crf).
    call: height, width, num_frames, frame_rate, num_inference_steps, video_guider_params, audio_guider_params.
    """
    from ltx_pipelines import keyframe_interpolation
    from ltx_pipelines.utils.args import ImageConditioningInput
    from ltx_pipelines.utils.types import PipelineComponents

    transformer = X0Model(ltx_core_transformer(pipe.transformer)).to(DTYPE)
    upsampler = ltx_core_upsampler(pipe.latent_upsampler).to(DTYPE)
    encoder = OurVideoEncoder(pipe.vae)
    ledger = SimpleNamespace(
        transformer=lambda: transformer,
        video_encoder=lambda: encoder,
        spatial_upsampler=lambda: upsampler,
        video_decoder=lambda: None,  # decoding is replaced by capturing the final latents
        audio_decoder=lambda: None,
        vocoder=lambda: None,
    )
    seen: dict = {"stages": []}

    def encode(prompts, model_ledger, **kwargs):
        embeds = encode_prompts(pipe.text_encoder, pipe.tokenizer, pipe.connectors, prompts, dtype=DTYPE)
        return [
            SimpleNamespace(video_encoding=v[None], audio_encoding=a[None])
            for v, a in zip(embeds.video_context, embeds.audio_context)
        ]

    def loop(sigmas, video_state, audio_state, stepper, denoise_fn):
        video_out, audio_out = original_loop(sigmas, video_state, audio_state, stepper, denoise_fn)
        seen["stages"].append(StageStates(video_state, audio_state, video_out, audio_out))
        return video_out, audio_out

    original_loop = keyframe_interpolation.euler_denoising_loop
    # Built without __init__, which would build the ledgers from a checkpoint file
    reference = keyframe_interpolation.KeyframeInterpolationPipeline.__new__(
        keyframe_interpolation.KeyframeInterpolationPipeline
    )
    reference.device, reference.dtype = torch.device("cpu"), DTYPE
    reference.stage_1_model_ledger = reference.stage_2_model_ledger = ledger
    reference.pipeline_components = PipelineComponents(dtype=DTYPE, device=torch.device("cpu"))
    with pytest.MonkeyPatch.context() as patch, torch.inference_mode():
        patch.setattr(torch.cuda, "synchronize", lambda *args, **kwargs: None)
        patch.setattr(keyframe_interpolation, "cleanup_memory", lambda: None)
        patch.setattr(keyframe_interpolation, "encode_prompts", encode)
        patch.setattr(keyframe_interpolation, "euler_denoising_loop", loop)
        patch.setattr(keyframe_interpolation, "vae_decode_video", lambda latent, *a: seen.setdefault("video", latent))
        patch.setattr(keyframe_interpolation, "vae_decode_audio", lambda latent, *a: seen.setdefault("audio", latent))
        reference(
            prompt=prompt,
            negative_prompt=negative_prompt,
            seed=seed,
            images=[ImageConditioningInput(str(path), *rest) for path, *rest in keyframes],
            **call,
        )
    return ReferenceRun(seen["stages"], seen["video"], seen["audio"])


def keyframes_contract_case():
    """The contract suite's case for `LTX2AVKeyframeInterpolationPipeline` (tests/helpers/pipelines.py's form): the
    tiny two-stage components, keyframes (uint8 arrays of another aspect, so cover resize and crop act) at pixel
    frames 0 and 8, 1 step per stage, neutral guidance."""

    def build():
        pipe = LTX2AVKeyframeInterpolationPipeline(**build_tiny_two_stage_pipeline(seed=0).components)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    first, last = (np.random.default_rng(seed).integers(0, 256, (40, 48, 3), dtype=np.uint8) for seed in (2, 3))
    inputs = {
        "prompt": "a cat",
        "keyframes": [(first, 0, 1.0), (last, 8, 0.9)],
        "num_frames": 9,
        "height": 128,
        "width": 128,
        "sigmas": (1.0, 0.0),
        "stage_2_sigmas": (0.909375, 0.0),
        "video_guidance": GuidanceScales(),
        "audio_guidance": GuidanceScales(),
    }
    return ContractCase("LTX2AVKeyframeInterpolationPipeline", build, inputs, [1, 1], (9, 128, 128), (2, 4, 4))
