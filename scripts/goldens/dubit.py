"""Golden stage states of ltx-pipelines 1.2.0's Dub-It pipeline, for tests/test_pipeline_dubit.py.

Run with the 1.2.0 oracle's Python (ltx-core / ltx-pipelines 1.2.0 importable), from the repository root:

    ORACLE_PYTHON scripts/goldens/dubit.py [--out tests/goldens/dubit]

`DubItPipeline.__call__` after its encoders is two `DiffusionStage` calls with a `SimpleDenoiser` (no guidance) and
one `GaussianNoiser` over both:
  stage 1 (half size, DISTILLED_SIGMAS): video conditioned on the IC-LoRA reference video latent
    (`VideoConditionByReferenceLatent`, the LoRA's downscale factor, strength), audio conditioned on the reference
    audio latent (`AudioConditionByReferenceLatent` at strength 1, positions from `patchify_dubit_audio_reference_latent`
    with negative_positions=True);
  stage 2 (full size, STAGE_2_DISTILLED_SIGMAS): video re-noised to sigmas[0] from the upsampled stage-1 latent with the
    reference video latent at full size / factor; audio FROZEN (noise scale 0) at the stage-1 audio latent, whose own
    tokens are appended again as the audio reference.
This script runs exactly those two stage calls, with the pipeline's own `patchify_dubit_audio_reference_latent`, on a
tiny seeded audio-video model (2 blocks, LTX-2 layout, the tiny pipeline's widths) in float32 on the CPU. The VAEs,
Gemma and the upsampler are replaced by seeded latents and contexts (the video encoder's reference latents, the audio
encoder's reference latent, the upsampled stage-1 latent); the stages' own `__call__` runs unchanged, and each
stage's noised starting states are recorded through its `loop` argument.

Written to dubit.safetensors:
  - the model's weights under the original single-file names (`model.diffusion_model.*`), bf16-exact values stored
    in bfloat16, and its `config` metadata section;
  - input.*: contexts, sigmas, seed, reference latents, the upsampled latent, the reference strength;
  - stage{1,2}.{video,audio}.{latent,clean_latent,denoise_mask,positions}: the noised states handed to the loop
    (patchified, reference tokens appended);
  - stage1.video_latent / stage1.audio_latent / stage2.video_latent: the stages' denoised, unpatchified outputs.
Only tensors are written; nothing of ltx-core or ltx-pipelines is copied into this repository.
"""

import argparse
import json
import sys
from pathlib import Path

import torch
from ltx_core.components.noisers import GaussianNoiser
from ltx_core.conditioning import AudioConditionByReferenceLatent, VideoConditionByReferenceLatent
from ltx_core.model.transformer import LTXModelConfigurator
from ltx_core.types import VIDEO_SCALE_FACTORS
from ltx_pipelines.dubit import patchify_dubit_audio_reference_latent
from ltx_pipelines.utils.constants import DISTILLED_SIGMAS, STAGE_2_DISTILLED_SIGMAS
from ltx_pipelines.utils.denoisers import SimpleDenoiser
from ltx_pipelines.utils.samplers import euler_denoising_loop
from ltx_pipelines.utils.types import ModalitySpec
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).parent))
from pipelines12 import SECTION, TinyStage  # noqa: E402 (the tiny LTX-2 transformer section, the stage shell)
from seeded import fill_seeded_  # scripts/goldens/seeded.py (the script's own folder is on sys.path)

NUM_FRAMES, FRAME_RATE, HEIGHT, WIDTH = 9, 24.0, 128, 128  # stage 1 at 64x64: 2x2x2 video latents, 9 audio frames
DOWNSCALE, REFERENCE_STRENGTH, SEED, TEXT_TOKENS, REFERENCE_AUDIO_FRAMES = 2, 1.0, 42, 6, 7


def build(seed: int) -> torch.nn.Module:
    """The audio-video model of `config.transformer` = SECTION, every tensor from a seeded N(0, 1), scaled to O(1)
    activations and rounded to bf16-exact values."""
    model = LTXModelConfigurator.from_metadata({"config": {"transformer": SECTION}})
    fill_seeded_(model, seed)
    return model.float().eval()


class RecordingStage(TinyStage):
    """The tiny stage, with the noised states of each call recorded (its loop wrapped) and the video scale factors
    of the real stage (the video modality is present here)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__(model)
        self.video_scale_factors = VIDEO_SCALE_FACTORS
        # the builder's config answers the stage's keyframe-slot check (no slots here; LTX-2 has no embedding)
        self._transformer_builder.model_config = lambda: {"transformer": SECTION}
        self.starts: list[tuple] = []

    def loop(self, **kwargs):
        self.starts.append((kwargs["video_state"], kwargs["audio_state"]))
        return euler_denoising_loop(**kwargs)


def state_tensors(prefix: str, state) -> dict[str, torch.Tensor]:
    return {
        f"{prefix}.{field}": getattr(state, field).float().contiguous()
        for field in ("latent", "clean_latent", "denoise_mask", "positions")
    }


def audio_reference(latent: torch.Tensor) -> AudioConditionByReferenceLatent:
    """`DubItPipeline.__call__`'s `build_audio_ref_conditioning`."""
    tokens, positions = patchify_dubit_audio_reference_latent(latent, negative_positions=True, device=latent.device)
    return AudioConditionByReferenceLatent(tokens, positions, strength=1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("tests/goldens/dubit"))
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)

    model = build(seed=0)
    g = torch.Generator().manual_seed(1)
    width = SECTION["caption_channels"]
    video_context = torch.randn(1, TEXT_TOKENS, width, generator=g)
    audio_context = torch.randn(1, TEXT_TOKENS, width, generator=g)
    half, full = (HEIGHT // 2 // 32, WIDTH // 2 // 32), (HEIGHT // 32, WIDTH // 32)
    frames = (NUM_FRAMES - 1) // 8 + 1
    reference_1 = torch.randn(1, 128, frames, half[0] // DOWNSCALE, half[1] // DOWNSCALE, generator=g)
    reference_2 = torch.randn(1, 128, frames, full[0] // DOWNSCALE, full[1] // DOWNSCALE, generator=g)
    reference_audio = torch.randn(1, 8, REFERENCE_AUDIO_FRAMES, 16, generator=g)
    upsampled = torch.randn(1, 128, frames, *full, generator=g)

    stage = RecordingStage(model)
    noiser = GaussianNoiser(generator=torch.Generator(device="cpu").manual_seed(SEED))
    sigmas_1, sigmas_2 = DISTILLED_SIGMAS.float(), STAGE_2_DISTILLED_SIGMAS.float()
    with torch.inference_mode():
        video_1, audio_1 = stage(
            denoiser=SimpleDenoiser(video_context, audio_context), sigmas=sigmas_1, noiser=noiser,
            width=WIDTH // 2, height=HEIGHT // 2, frames=NUM_FRAMES, fps=FRAME_RATE,
            video=ModalitySpec(context=video_context, conditionings=[
                VideoConditionByReferenceLatent(reference_1, downscale_factor=DOWNSCALE, strength=REFERENCE_STRENGTH)
            ]),
            audio=ModalitySpec(context=audio_context, conditionings=[audio_reference(reference_audio)]),
            loop=stage.loop,
        )  # fmt: skip
        stage_1_audio = audio_1.latent.clone()
        video_2, _ = stage(
            denoiser=SimpleDenoiser(video_context, audio_context), sigmas=sigmas_2, noiser=noiser,
            width=WIDTH, height=HEIGHT, frames=NUM_FRAMES, fps=FRAME_RATE,
            video=ModalitySpec(
                context=video_context,
                conditionings=[
                    VideoConditionByReferenceLatent(reference_2, downscale_factor=DOWNSCALE, strength=REFERENCE_STRENGTH)
                ],
                noise_scale=sigmas_2[0].item(),
                initial_latent=upsampled,
            ),
            audio=ModalitySpec(
                context=audio_context, conditionings=[audio_reference(stage_1_audio)], frozen=True, noise_scale=0.0,
                initial_latent=stage_1_audio,
            ),
            loop=stage.loop,
        )  # fmt: skip

    tensors = {f"model.diffusion_model.{k}": v.bfloat16().contiguous() for k, v in model.state_dict().items()}
    tensors.update(
        {
            "input.video_context": video_context,
            "input.audio_context": audio_context,
            "input.stage_1_sigmas": sigmas_1,
            "input.stage_2_sigmas": sigmas_2,
            "input.seed": torch.tensor(SEED),
            "input.stage_1_reference_video": reference_1,
            "input.stage_2_reference_video": reference_2,
            "input.reference_audio": reference_audio,
            "input.upsampled_video": upsampled,
            "stage1.video_latent": video_1.latent.contiguous(),
            "stage1.audio_latent": stage_1_audio.contiguous(),
            "stage2.video_latent": video_2.latent.contiguous(),
        }
    )
    for index, (video_state, audio_state) in enumerate(stage.starts, start=1):
        tensors.update(state_tensors(f"stage{index}.video", video_state))
        tensors.update(state_tensors(f"stage{index}.audio", audio_state))
    for name, value in tensors.items():
        if not name.startswith("model."):
            print(f"{name:40s} {tuple(value.shape)}")
    metadata = {
        "config": json.dumps({"transformer": SECTION}),
        "num_frames": str(NUM_FRAMES),
        "frame_rate": str(FRAME_RATE),
        "height": str(HEIGHT),
        "width": str(WIDTH),
        "reference_downscale_factor": str(DOWNSCALE),
        "reference_strength": str(REFERENCE_STRENGTH),
    }
    path = out / "dubit.safetensors"
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)
    print("wrote", path, path.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
