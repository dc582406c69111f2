"""Builders shared by the pipeline tests: latent states, contexts and guidance in ltx-core's form, the tiny
upsampler pair, adapter state. (Test modules import these; no test module imports another.)"""

import torch
from _transformer_helpers import AUDIO_TOKENS, CAPTION_CHANNELS, FPS, FRAMES, HEIGHT, OUR_CONFIGS, TEXT_TOKENS, WIDTH
from ltx_core.components.guiders import MultiModalGuiderParams
from ltx_core.model.upsampler import LatentUpsamplerConfigurator
from ltx_core.types import LatentState as CoreLatentState
from peft.tuners.tuners_utils import BaseTunerLayer

from ltx2_diffusers import LTX2LatentUpsamplerModel
from ltx2_diffusers.loaders.metadata import upsampler_config_from_original
from ltx2_diffusers.loaders.upsampler_keys import original_to_diffusers_keys
from ltx2_diffusers.pipelines.conditioning import (
    add_noise,
    append_keyframes,
    audio_latent_state,
    replace_frames,
    video_latent_state,
)
from ltx2_diffusers.pipelines.denoising import TextContexts
from ltx2_diffusers.pipelines.guidance import GuidanceScales

CHANNELS = 8  # the helper transformer's latent channels
GRID = (FRAMES, HEIGHT, WIDTH)  # 2 x 3 x 4 latent = 9 pixel frames

# ltx-pipelines' stage 2 hard-codes 128 video channels and 8 x 16 audio features: the helper transformer at that width
OUR_CONFIGS.setdefault(
    "ltx2_c128",
    dict(OUR_CONFIGS["ltx2"], in_channels=128, out_channels=128, audio_in_channels=128, audio_out_channels=128),
)
UPSAMPLER_ORIGINAL = {
    "in_channels": 128,
    "mid_channels": 32,
    "num_blocks_per_stage": 1,
    "dims": 3,
    "spatial_upsample": True,
    "temporal_upsample": False,
    "spatial_scale": 2.0,
    "rational_resampler": False,
}


def core_params(scales: GuidanceScales) -> MultiModalGuiderParams:
    return MultiModalGuiderParams(
        cfg_scale=scales.cfg,
        stg_scale=scales.stg,
        stg_blocks=list(scales.stg_blocks),
        rescale_scale=scales.rescale,
        modality_scale=scales.modality,
    )


def to_core(state) -> CoreLatentState:
    return CoreLatentState(
        latent=state.latent.clone(),
        denoise_mask=state.denoise_mask.clone(),
        positions=state.positions.clone(),
        clean_latent=state.clean_latent.clone(),
        attention_mask=state.attention_mask,
    )


def make_states(batch_size: int, conditioning: str, seed: int = 3):
    generator = torch.Generator().manual_seed(seed)
    video = video_latent_state(batch_size, *GRID, FPS, num_channels=CHANNELS, dtype=torch.float32)
    image = torch.randn(1, CHANNELS, 1, HEIGHT, WIDTH, generator=generator)
    if conditioning in ("image", "image+keyframe"):
        strength = 1.0 if conditioning == "image" else 0.6  # 0.6: the tokens' sigma is 0.4 sigma, per token
        video = replace_frames(video, image, strength=strength, grid=GRID, reference="1.0")
    if conditioning == "image+keyframe":
        keyframe = torch.randn(1, CHANNELS, 1, HEIGHT, WIDTH, generator=generator)
        video = append_keyframes(video, keyframe, frame_index=8, strength=0.8, fps=FPS, grid=GRID, reference="1.0")
    video = add_noise(video, generator, reference="1.0")
    audio = add_noise(
        audio_latent_state(batch_size, AUDIO_TOKENS, num_channels=2, num_mel_bins=4, dtype=torch.float32),
        generator,
        reference="1.0",
    )
    return video, audio


def make_contexts(batch_size: int, seed: int = 4) -> TextContexts:
    generator = torch.Generator().manual_seed(seed)
    return TextContexts(
        *(torch.randn(batch_size, TEXT_TOKENS, CAPTION_CHANNELS, generator=generator) for _ in range(4))
    )


def upsampler_pair(seed: int = 1):
    reference = LatentUpsamplerConfigurator.from_config(UPSAMPLER_ORIGINAL).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in reference.named_parameters():
            base = 1.0 if "norm" in name and name.endswith("weight") else 0.0
            param.copy_(base + 0.1 * torch.randn(param.shape, generator=generator))
    config = upsampler_config_from_original(UPSAMPLER_ORIGINAL)
    ours = LTX2LatentUpsamplerModel(**config).eval()
    names = original_to_diffusers_keys(reference.state_dict(), config=config)
    ours.load_state_dict({names[k]: v for k, v in reference.state_dict().items()}, strict=True)
    return reference, ours


def adapters_enabled(transformer) -> bool:
    return any(not m.disable_adapters for m in transformer.modules() if isinstance(m, BaseTunerLayer))


def video_only_denoise(
    transformer, audio_latents, contexts, sigmas, video_guidance, *, height, width, num_frames, frame_rate, generator,
    conditions=(), noise_scale=1.0, initial_video_latent=None,
):  # fmt: skip
    """The audio-to-video pipeline's stage as its stage functions compose it (ltx-pipelines' `denoise_video_only`):
    frozen audio (`prepare_latents(freeze_audio=True)`), guided video, neutral audio guidance. Returns the video
    latents (B, C, F', H', W') and the audio latents as they come out (B, C_a, T_a, mel)."""
    from ltx2_diffusers.models.autoencoder_kl_ltx2_audio import unpack_audio_latents
    from ltx2_diffusers.pipelines.conditioning import unpatchify_video
    from ltx2_diffusers.pipelines.denoising import denoise, latent_grid, prepare_latents
    from ltx2_diffusers.pipelines.pipeline_ltx2_av_audio_to_video import frozen_audio_contexts

    video, audio = prepare_latents(
        contexts.video.shape[0], height, width, num_frames, frame_rate, generator=generator,
        device=contexts.video.device, dtype=transformer.dtype, conditions=conditions,
        video_channels=transformer.config.in_channels, audio_channels=audio_latents.shape[1],
        audio_mel_bins=audio_latents.shape[3], noise_scale=noise_scale, initial_video_latent=initial_video_latent,
        initial_audio_latent=audio_latents, freeze_audio=True,
        reference="1.0",
    )  # fmt: skip
    video, audio = denoise(
        transformer, video, audio, frozen_audio_contexts(contexts), torch.as_tensor(sigmas), video_guidance,
        GuidanceScales(),
        reference="1.0",
    )  # fmt: skip
    grid = latent_grid(height, width, num_frames)
    return unpatchify_video(video.output_tokens(), *grid), unpack_audio_latents(
        audio.output_tokens(), audio_latents.shape[1]
    )


# ----------------------------------------------------------------------------------------------------------------------
# The contract suite's cases: every pipeline class on the tiny model at its smallest size, 1 step per stage, neutral
# guidance (one pass per step). Each case: the pipeline, its call's fixed keyword arguments, the steps of each stage,
# and the output shapes (frames as np (F, H, W), latent grid (F', H', W')).


class ContractCase:
    def __init__(self, name, build, inputs, stage_steps, frames, grid):
        self.name, self.build, self.inputs = name, build, inputs
        self.stage_steps, self.frames, self.grid = stage_steps, frames, grid

    def __repr__(self) -> str:
        return self.name


def _contract_pipeline(cls_name: str):
    import ltx2_diffusers
    from ltx2_diffusers.pipelines.tiny import build_tiny_pipeline, build_tiny_two_stage_pipeline

    cls = getattr(ltx2_diffusers, cls_name)
    one_stage = cls_name in ("LTX2AVPipeline", "LTX2AVRetakePipeline")
    components = (build_tiny_pipeline if one_stage else build_tiny_two_stage_pipeline)(seed=0).components
    pipe = cls(**components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _contract_cases() -> list[ContractCase]:
    import numpy as np

    neutral = {"video_guidance": GuidanceScales(), "audio_guidance": GuidanceScales()}
    stage_2 = {"stage_2_sigmas": (0.909375, 0.0)}
    two_stage = {"num_frames": 9, "height": 128, "width": 128, "sigmas": (1.0, 0.0), **stage_2}
    reference = np.random.default_rng(0).integers(0, 256, (9, 40, 48, 3), dtype=np.uint8)
    clip = np.random.default_rng(1).integers(0, 256, (9, 64, 64, 3), dtype=np.uint8)
    waveform = 0.2 * torch.randn(2, 24000, generator=torch.Generator().manual_seed(0))
    full = ((9, 128, 128), (2, 4, 4))
    return [
        ContractCase(
            "LTX2AVPipeline",
            lambda: _contract_pipeline("LTX2AVPipeline"),
            {"prompt": "a cat", "num_frames": 9, "height": 64, "width": 64, "sigmas": (1.0, 0.0), **neutral},
            [1],
            (9, 64, 64),
            (2, 2, 2),
        ),
        ContractCase(
            "LTX2AVTwoStagePipeline",
            lambda: _contract_pipeline("LTX2AVTwoStagePipeline"),
            {"prompt": "a cat", **two_stage, **neutral},
            [1, 1],
            *full,
        ),
        ContractCase(
            "LTX2AVTwoStageHQPipeline",
            lambda: _contract_pipeline("LTX2AVTwoStageHQPipeline"),
            {"prompt": "a cat", **two_stage, **neutral},
            [1, 1],
            *full,
        ),
        ContractCase(
            "LTX2AVICLoRAPipeline",
            lambda: _contract_pipeline("LTX2AVICLoRAPipeline"),
            {"prompt": "a cat", "reference_videos": [(reference, 1.0)], **two_stage, **neutral},
            [1, 1],
            *full,
        ),
        ContractCase(
            "LTX2AVAudioToVideoPipeline",
            lambda: _contract_pipeline("LTX2AVAudioToVideoPipeline"),
            {
                "prompt": "a cat",
                "audio": waveform,
                "audio_sample_rate": 48000,
                **two_stage,
                "video_guidance": GuidanceScales(),
            },
            [1, 1],
            *full,
        ),  # fmt: skip
        ContractCase(
            "LTX2AVRetakePipeline",
            lambda: _contract_pipeline("LTX2AVRetakePipeline"),
            {
                "video": clip,
                "prompt": "a cat",
                "start_time": 0.0,
                "end_time": 0.2,
                "frame_rate": 24.0,
                "sigmas": (1.0, 0.0),
                **neutral,
            },
            [1],
            (9, 64, 64),
            (2, 2, 2),
        ),  # fmt: skip
    ]


CONTRACT_CASES = _contract_cases()
