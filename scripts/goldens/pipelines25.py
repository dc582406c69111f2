"""Golden stage states of ltx-pipelines 1.2.0 on a tiny LTX-2.5 model, for tests/test_goldens_pipelines25.py.

Run with the 1.2.0 oracle's Python (ltx-core / ltx-pipelines 1.2.0 importable):

    ORACLE_PYTHON scripts/goldens/pipelines25.py [--out tests/goldens/pipelines25]

Two stage calls, each exactly as its pipeline makes it, on a tiny audio-video `LTXModel` of LTX-2.5's layout (2
blocks, video width 16, audio 8; bias-free video FFN, keyframe embedding, gated attention, AdaLN text cross-attention)
whose parameters are drawn from a seeded generator (bf16-exact), in float32 on the CPU:
  - distilled.safetensors: `DistilledPipeline`'s stage 1 for a 2.5 checkpoint: `SimpleDenoiser`, `DISTILLED_SIGMAS`,
    a `GaussianNoiser` seeded with the pipeline seed, and `EulerAncestralDiffusionStep(eta=1, s_noise=1)` with
    `euler_ancestral_denoising_loop(noise_seed=seed + 10000)` (spec 1.2 §6.1, trap 22);
    and its stage 2 at twice the size: the stage-1 video latent through a seeded tiny x2 `LatentUpsampler`
    (`upsample_video`, identity latent statistics; the upscaled latent is stored, not the upsampler), then
    `STAGE_2_DISTILLED_SIGMAS` with noise_scale 0.909375 from the upscaled video / stage-1 audio, `SimpleDenoiser`,
    Euler, the same noiser (its generator continues after stage 1's draws);
  - one_stage.safetensors: `TI2VidOneStagePipeline`'s stage: `FactoryGuidedDenoiser` with video and audio
    `MultiModalGuider`s (CFG, STG at block 1, modality isolation, rescale), `LTX2Scheduler` sigmas, Euler.
The Gemma + connectors half is replaced by seeded contexts (at the stream widths, LTX-2.3+'s text path), and the
stage is built around the tiny model instead of from a checkpoint file; `DiffusionStage.__call__` runs unchanged.
Each file holds the weights under the original names (`model.diffusion_model.*`, bf16) with the `config` metadata,
the inputs (`input.*`: contexts, sigmas, seed) and `output.video_latent` (1, 128, F', H', W') /
`output.audio_latent` (1, 8, T_a, 16). Only tensors are written; nothing of ltx-core / ltx-pipelines is copied.
"""

import argparse
import json
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import torch
from ltx_core.components.diffusion_steps import EulerAncestralDiffusionStep
from ltx_core.components.guiders import MultiModalGuiderParams, create_multimodal_guider_factory
from ltx_core.components.noisers import GaussianNoiser
from ltx_core.components.schedulers import LTX2Scheduler
from ltx_core.model.transformer import LTXModelConfigurator, X0Model
from ltx_core.model.upsampler import LatentUpsamplerConfigurator, upsample_video
from ltx_core.model.video_vae.ops import PerChannelStatistics
from ltx_core.types import VIDEO_SCALE_FACTORS
from ltx_pipelines.utils.blocks import DiffusionStage
from ltx_pipelines.utils.constants import DISTILLED_SIGMAS, STAGE_2_DISTILLED_SIGMAS
from ltx_pipelines.utils.denoisers import FactoryGuidedDenoiser, SimpleDenoiser
from ltx_pipelines.utils.samplers import euler_ancestral_denoising_loop
from ltx_pipelines.utils.types import ModalitySpec
from safetensors.torch import save_file
from seeded import LTX_CORE_FIXED, fill_seeded_  # scripts/goldens/seeded.py (the script's own folder is on sys.path)

NUM_FRAMES, FRAME_RATE, HEIGHT, WIDTH = 17, 24.0, 64, 64  # latents 3 x 2 x 2, 18 audio frames
SEED, TEXT_TOKENS, ONE_STAGE_STEPS = 42, 6, 3
VIDEO_GUIDER = dict(cfg_scale=3.0, stg_scale=1.0, rescale_scale=0.7, modality_scale=3.0, stg_blocks=[1])
AUDIO_GUIDER = dict(cfg_scale=7.0, stg_scale=1.0, rescale_scale=0.7, modality_scale=3.0, stg_blocks=[1])

# ltx-core's asserted values, the tiny sizes, LTX-2.3's text path and LTX-2.5's keys
SECTION = {
    **LTX_CORE_FIXED,
    "num_attention_heads": 2, "attention_head_dim": 8, "in_channels": 128, "out_channels": 128, "num_layers": 2,
    "cross_attention_dim": 16, "audio_num_attention_heads": 2, "audio_attention_head_dim": 4,
    "audio_in_channels": 128, "audio_out_channels": 128, "audio_cross_attention_dim": 8, "caption_channels": 32,
    "caption_proj_before_connector": True, "caption_projection_first_linear": False,
    "caption_proj_input_norm": False, "caption_projection_second_linear": False, "apply_gated_attention": True,
    "cross_attention_adaln": True, "ff_bias": False, "use_keyframes_abs_pos_embedding": True,
}  # fmt: skip


def build(seed: int) -> torch.nn.Module:
    """The AV model of `config.transformer` = SECTION, every tensor from a seeded N(0, 1), scaled to keep O(1)
    activations, rounded to bf16-exact values."""
    model = LTXModelConfigurator.from_metadata({"config": {"transformer": SECTION}})
    fill_seeded_(model, seed)
    return model.float().eval()


class TinyStage(DiffusionStage):
    """`DiffusionStage` around an already built model: only the transformer's construction differs."""

    def __init__(self, model: torch.nn.Module):  # noqa: D107 (the parent's fields that __call__ reads)
        self._model = X0Model(model).eval()
        self._dtype, self._device = torch.float32, torch.device("cpu")
        self._transformer_builder = SimpleNamespace(
            checkpoint="tiny seeded model", model_config=lambda: {"transformer": SECTION}
        )
        self.video_scale_factors = VIDEO_SCALE_FACTORS

    def _transformer_ctx(self, **kwargs: object):
        return nullcontext(self._model)


def contexts() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    video = torch.randn(2, 1, TEXT_TOKENS, SECTION["cross_attention_dim"], generator=generator)
    audio = torch.randn(2, 1, TEXT_TOKENS, SECTION["audio_cross_attention_dim"], generator=generator)
    return {"video": video[0], "negative_video": video[1], "audio": audio[0], "negative_audio": audio[1]}


def upscale(latent: torch.Tensor) -> torch.Tensor:
    """The reference's x2 upsampling of a video latent with a seeded tiny upsampler and identity statistics."""
    metadata = {"config": {"in_channels": 128, "mid_channels": 32, "num_blocks_per_stage": 1, "dims": 3}}
    upsampler = LatentUpsamplerConfigurator.from_metadata(metadata)
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for param in upsampler.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * (0.5 / max(param[0].numel(), 1) ** 0.5))
    encoder = SimpleNamespace(per_channel_statistics=PerChannelStatistics(128))
    with torch.inference_mode():
        return upsample_video(latent=latent, video_encoder=encoder, upsampler=upsampler.eval()).clone()


def stage_2(model, ctx: dict, noiser, video: torch.Tensor, audio: torch.Tensor):
    """`DistilledPipeline`'s stage 2 from the upscaled video and the stage-1 audio."""
    sigmas = STAGE_2_DISTILLED_SIGMAS.to(torch.float32)
    with torch.inference_mode():
        video_state, audio_state = TinyStage(model)(
            denoiser=SimpleDenoiser(ctx["video"], ctx["audio"]),
            sigmas=sigmas,
            noiser=noiser,
            width=2 * WIDTH,
            height=2 * HEIGHT,
            frames=NUM_FRAMES,
            fps=FRAME_RATE,
            video=ModalitySpec(context=ctx["video"], noise_scale=sigmas[0].item(), initial_latent=video),
            audio=ModalitySpec(context=ctx["audio"], noise_scale=sigmas[0].item(), initial_latent=audio),
        )
    return video_state.latent.clone(), audio_state.latent.clone()


def run(model, case: str, ctx: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
    generator = torch.Generator(device="cpu").manual_seed(SEED)
    noiser = GaussianNoiser(generator=generator)
    if case == "distilled":
        sigmas = DISTILLED_SIGMAS.to(torch.float32)
        denoiser = SimpleDenoiser(ctx["video"], ctx["audio"])
        sampler = {
            "stepper": EulerAncestralDiffusionStep(eta=1.0, s_noise=1.0),
            "loop": partial(euler_ancestral_denoising_loop, noise_seed=SEED + 10000, model_dtype=torch.float32),
        }
    else:
        sigmas = LTX2Scheduler().execute(steps=ONE_STAGE_STEPS).to(torch.float32)
        denoiser = FactoryGuidedDenoiser(
            v_context=ctx["video"],
            a_context=ctx["audio"],
            video_guider_factory=create_multimodal_guider_factory(
                params=MultiModalGuiderParams(**VIDEO_GUIDER), negative_context=ctx["negative_video"]
            ),
            audio_guider_factory=create_multimodal_guider_factory(
                params=MultiModalGuiderParams(**AUDIO_GUIDER), negative_context=ctx["negative_audio"]
            ),
        )
        sampler = {}
    with torch.inference_mode():
        video_state, audio_state = TinyStage(model)(
            denoiser=denoiser,
            sigmas=sigmas,
            noiser=noiser,
            width=WIDTH,
            height=HEIGHT,
            frames=NUM_FRAMES,
            fps=FRAME_RATE,
            video=ModalitySpec(context=ctx["video"]),
            audio=ModalitySpec(context=ctx["audio"]),
            **sampler,
        )
    video, audio, extra = video_state.latent.clone(), audio_state.latent.clone(), {}
    if case == "distilled":
        upscaled = upscale(video)
        final_video, final_audio = stage_2(model, ctx, noiser, upscaled, audio)
        extra = {"input.upscaled_video_latent": upscaled, "output.stage_2.video_latent": final_video,
                 "output.stage_2.audio_latent": final_audio}  # fmt: skip
    return sigmas, video, audio, extra


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("tests/goldens/pipelines25"))
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    model, ctx = build(seed=5), contexts()
    weights = {f"model.diffusion_model.{k}": v.bfloat16().contiguous() for k, v in model.state_dict().items()}
    for case in ("distilled", "one_stage"):
        sigmas, video, audio, extra = run(model, case, ctx)
        print(case, "video", tuple(video.shape), video.abs().mean().item(), "audio", tuple(audio.shape))
        tensors = {} if case == "one_stage" else dict(weights)  # the weights once, in distilled.safetensors
        tensors.update({f"input.{k}_context": v.contiguous() for k, v in ctx.items()})
        tensors.update({"input.sigmas": sigmas.contiguous(), "input.seed": torch.tensor(SEED)})
        tensors.update({"output.video_latent": video.contiguous(), "output.audio_latent": audio.contiguous()})
        tensors.update({k: v.contiguous() for k, v in extra.items()})
        metadata = {
            "config": json.dumps({"transformer": SECTION}),
            "model_version": "2.5.0",
            "video_guider": json.dumps(VIDEO_GUIDER),
            "audio_guider": json.dumps(AUDIO_GUIDER),
            "num_frames": str(NUM_FRAMES),
            "frame_rate": str(FRAME_RATE),
            "height": str(HEIGHT),
            "width": str(WIDTH),
        }
        path = out / f"{case}.safetensors"
        save_file(tensors, str(path), metadata=metadata)
        print("wrote", path, path.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
