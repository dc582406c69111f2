"""Golden whole runs of ltx-pipelines 1.2.0 on tiny LTX-2 and LTX-2.3 models, for tests/test_goldens_runs12.py.

Run with the 1.2.0 oracle's Python (ltx-core / ltx-pipelines 1.2.0 importable):

    ORACLE_PYTHON scripts/goldens/runs12.py [--out tests/goldens/runs12]

One file per layout, ltx20.safetensors (LTX-2: caption projection in the transformer, contexts 32 wide) and
ltx23.safetensors (LTX-2.3: gated attention, AdaLN text cross-attention, contexts at the stream widths 16 / 8), each
with a tiny audio-video `LTXModel` (2 blocks, video width 16, audio 8) whose parameters come from the seeded fill of
seeded.py (bf16-exact), run in float32 on the CPU, with an image condition at latent frame 0 (strength 0.8, so its
tokens keep a per-token timestep 0.2 sigma: 1.2.0's own-timestep A<->V AdaLN, and in stage 2 its noiser lerps and
its latent-index conditioning that leaves the upscaled latent in place, spec 1.2 §5.1, 5.5, 5.6):
  - one_stage.*: `TI2VidOneStagePipeline`'s stage: `FactoryGuidedDenoiser` with video and audio `MultiModalGuider`s
    (CFG, STG at block 1, modality isolation, rescale), `LTX2Scheduler` sigmas, Euler, `VideoConditionByLatentIndex`;
    one_stage_bf16.*: the same in bfloat16 (model, contexts, image latent), as the pipelines run: it sees 1.2.0's
    float32 guidance and its float32 video positions (1.0.0 rounded them to the latent dtype);
  - distilled.*: `DistilledPipeline` (plain Euler before LTX-2.5): stage 1 at half size over `DISTILLED_SIGMAS` with
    `SimpleDenoiser` and the half-size image latent; the stage-1 video latent through a tiny x2 `LatentUpsampler`
    (`upsample_video`) with seeded per-channel statistics; stage 2 over `STAGE_2_DISTILLED_SIGMAS` from the upscaled
    video and the stage-1 audio (noise scale 0.909375) with the full-size image latent; one noiser (one generator
    seeded with the pipeline seed) through both stages.
The Gemma + connectors half is replaced by seeded contexts, the video encoder by seeded image latents (normalised, as
the encoder returns them), and the stage is built around the tiny model instead of from a checkpoint file;
`DiffusionStage.__call__` runs unchanged. The upsampler (about 440k parameters) is not stored: its weights follow
`formula_weight` (a closed form of each parameter's name, shape and index, no random generator), which the test
repeats. Only tensors are written; nothing of ltx-core / ltx-pipelines is copied.

Stored: the transformer weights under the original names (`model.diffusion_model.*`, bf16) with the `config` and
`model_version` metadata; `input.*` (contexts, image latents, latent statistics: bf16-exact, stored in bf16; seed, sigmas) and `output.*` (the
stage latents, unpatchified: video (1, 128, F', H', W'), audio (1, 8, T_a, 16)); and golden.json (versions,
settings, tolerance), which scripts/make_goldens.py folds into tests/goldens/MANIFEST.json.
"""

import argparse
import copy
import json
import math
import platform
import zlib
from contextlib import nullcontext
from importlib import metadata as package_metadata
from pathlib import Path
from types import SimpleNamespace

import torch
from ltx_core.components.guiders import MultiModalGuiderParams, create_multimodal_guider_factory
from ltx_core.components.noisers import GaussianNoiser
from ltx_core.components.schedulers import LTX2Scheduler
from ltx_core.conditioning.types.latent_cond import VideoConditionByLatentIndex
from ltx_core.model.transformer import LTXModelConfigurator, X0Model
from ltx_core.model.upsampler import LatentUpsamplerConfigurator, upsample_video
from ltx_core.model.video_vae.ops import PerChannelStatistics
from ltx_core.types import VIDEO_SCALE_FACTORS
from ltx_pipelines.utils.blocks import DiffusionStage
from ltx_pipelines.utils.constants import DISTILLED_SIGMAS, STAGE_2_DISTILLED_SIGMAS
from ltx_pipelines.utils.denoisers import FactoryGuidedDenoiser, SimpleDenoiser
from ltx_pipelines.utils.types import ModalitySpec
from safetensors.torch import save_file
from seeded import LTX_CORE_FIXED, fill_seeded_  # scripts/goldens/seeded.py (the script's own folder is on sys.path)

# 9 frames: 2 latent frames, 9 audio frames; one stage at 64 x 64 (2 x 2 latents), the two-stage run at 128 x 128
NUM_FRAMES, FRAME_RATE, HEIGHT, WIDTH, TWO_STAGE_HEIGHT, TWO_STAGE_WIDTH = 9, 24.0, 64, 64, 128, 128
SEED, TEXT_TOKENS, ONE_STAGE_STEPS, IMAGE_STRENGTH = 42, 6, 3, 0.8
VIDEO_GUIDER = dict(cfg_scale=3.0, stg_scale=1.0, rescale_scale=0.7, modality_scale=3.0, stg_blocks=[1])
AUDIO_GUIDER = dict(cfg_scale=7.0, stg_scale=1.0, rescale_scale=0.7, modality_scale=3.0, stg_blocks=[1])
UPSAMPLER = {"in_channels": 128, "mid_channels": 32, "num_blocks_per_stage": 1, "dims": 3, "spatial_upsample": True,
             "temporal_upsample": False, "spatial_scale": 2.0, "rational_resampler": False}  # fmt: skip

# ltx-core's asserted values plus the tiny sizes (LTX-2's layout: the caption projection inside the transformer)
SECTION_20 = {
    **LTX_CORE_FIXED,
    "num_attention_heads": 2, "attention_head_dim": 8, "in_channels": 128, "out_channels": 128, "num_layers": 2,
    "cross_attention_dim": 16, "audio_num_attention_heads": 2, "audio_attention_head_dim": 4,
    "audio_in_channels": 128, "audio_out_channels": 128, "audio_cross_attention_dim": 8, "caption_channels": 32,
}  # fmt: skip
# LTX-2.3: text projected before the connectors (contexts at the stream widths), gated attention, AdaLN text
# cross-attention
SECTION_23 = {
    **SECTION_20, "caption_proj_before_connector": True, "caption_projection_first_linear": False,
    "caption_proj_input_norm": False, "caption_projection_second_linear": False, "apply_gated_attention": True,
    "cross_attention_adaln": True,
}  # fmt: skip
LAYOUTS = {"ltx20": (SECTION_20, "2.0.0", (32, 32)), "ltx23": (SECTION_23, "2.3.0", (16, 8))}


def formula_weight(name: str, shape: tuple[int, ...]) -> torch.Tensor:
    """A parameter without a random generator: 0.5 / sqrt(fan_in) * sin(0.7 i + phase(name)) over its flat index i
    (norm weights 1 + 0.1 sin, biases 0.1 sin), phase = crc32(name) mod 1000 / 100; float64 maths, float32 result."""
    index = torch.arange(math.prod(shape), dtype=torch.float64)
    wave = torch.sin(0.7 * index + (zlib.crc32(name.encode()) % 1000) / 100)
    if "norm" in name and name.endswith("weight"):
        values = 1 + 0.1 * wave
    elif name.endswith("bias"):
        values = 0.1 * wave
    else:
        values = 0.5 / math.prod(shape[1:]) ** 0.5 * wave
    return values.reshape(shape).float()


def build(section: dict, seed: int) -> torch.nn.Module:
    model = LTXModelConfigurator.from_metadata({"config": {"transformer": section}})
    fill_seeded_(model, seed)
    return model.float().eval()


class TinyStage(DiffusionStage):
    """`DiffusionStage` around an already built model: only the transformer's construction differs."""

    def __init__(self, model: torch.nn.Module, section: dict, dtype: torch.dtype = torch.float32):  # noqa: D107
        self._model = X0Model(model).eval()  # the parent's fields that __call__ reads
        self._dtype, self._device = dtype, torch.device("cpu")
        self._transformer_builder = SimpleNamespace(
            checkpoint="tiny seeded model", model_config=lambda: {"transformer": section}
        )
        self.video_scale_factors = VIDEO_SCALE_FACTORS

    def _transformer_ctx(self, **kwargs: object):
        return nullcontext(self._model)


def seeded_inputs(widths: tuple[int, int]) -> dict[str, torch.Tensor]:
    """Contexts (1, 6, width), the per-channel latent statistics and the image latents at both sizes."""
    generator = torch.Generator().manual_seed(1)  # every value rounded to bf16 below: stored in half the bytes
    video = torch.randn(2, 1, TEXT_TOKENS, widths[0], generator=generator)
    audio = torch.randn(2, 1, TEXT_TOKENS, widths[1], generator=generator)
    inputs = {
        "video_context": video[0], "negative_video_context": video[1],
        "audio_context": audio[0], "negative_audio_context": audio[1],
        "latents_mean": 0.5 * torch.randn(128, generator=generator),
        "latents_std": 0.5 + torch.rand(128, generator=generator),
        "one_stage.image_latent": torch.randn(1, 128, 1, HEIGHT // 32, WIDTH // 32, generator=generator),
        "distilled.stage_1_image_latent": torch.randn(1, 128, 1, HEIGHT // 32, WIDTH // 32, generator=generator),
        "distilled.stage_2_image_latent": torch.randn(
            1, 128, 1, TWO_STAGE_HEIGHT // 32, TWO_STAGE_WIDTH // 32, generator=generator
        ),
    }  # fmt: skip
    return {k: v.bfloat16().float() for k, v in inputs.items()}


def image(latent: torch.Tensor) -> list:
    return [VideoConditionByLatentIndex(latent=latent, strength=IMAGE_STRENGTH, latent_idx=0)]


def one_stage(stage: TinyStage, x: dict, name: str = "one_stage") -> dict[str, torch.Tensor]:
    """`TI2VidOneStagePipeline`'s stage with the image at frame 0 (contexts and image in the stage's dtype)."""
    x = {k: v.to(stage._dtype) for k, v in x.items()}
    sigmas = LTX2Scheduler().execute(steps=ONE_STAGE_STEPS).to(torch.float32)
    guider = {
        f"{m}_guider_factory": create_multimodal_guider_factory(
            params=MultiModalGuiderParams(**params), negative_context=x[f"negative_{m}_context"]
        )
        for m, params in (("video", VIDEO_GUIDER), ("audio", AUDIO_GUIDER))
    }
    noiser = GaussianNoiser(generator=torch.Generator(device="cpu").manual_seed(SEED))
    with torch.inference_mode():
        video, audio = stage(
            denoiser=FactoryGuidedDenoiser(v_context=x["video_context"], a_context=x["audio_context"], **guider),
            sigmas=sigmas,
            noiser=noiser,
            width=WIDTH,
            height=HEIGHT,
            frames=NUM_FRAMES,
            fps=FRAME_RATE,
            video=ModalitySpec(context=x["video_context"], conditionings=image(x["one_stage.image_latent"])),
            audio=ModalitySpec(context=x["audio_context"]),
        )
    return {f"input.{name}.sigmas": sigmas, f"output.{name}.video_latent": video.latent.clone(),
            f"output.{name}.audio_latent": audio.latent.clone()}  # fmt: skip


def upscale(latent: torch.Tensor, x: dict) -> torch.Tensor:
    upsampler = LatentUpsamplerConfigurator.from_metadata({"config": UPSAMPLER})
    with torch.no_grad():
        for name, param in upsampler.named_parameters():
            param.copy_(formula_weight(name, tuple(param.shape)))
    statistics = PerChannelStatistics(128)
    statistics.get_buffer("mean-of-means").copy_(x["latents_mean"])
    statistics.get_buffer("std-of-means").copy_(x["latents_std"])
    encoder = SimpleNamespace(per_channel_statistics=statistics)
    with torch.inference_mode():
        return upsample_video(latent=latent, video_encoder=encoder, upsampler=upsampler.eval()).clone()


def distilled(stage: TinyStage, x: dict) -> dict[str, torch.Tensor]:
    """`DistilledPipeline.__call__` from its contexts on, before decoding (LTX-2 / LTX-2.3: plain Euler)."""
    noiser = GaussianNoiser(generator=torch.Generator(device="cpu").manual_seed(SEED))
    denoiser = SimpleDenoiser(x["video_context"], x["audio_context"])
    with torch.inference_mode():
        video_1, audio_1 = stage(
            denoiser=denoiser,
            sigmas=DISTILLED_SIGMAS.to(torch.float32),
            noiser=noiser,
            width=TWO_STAGE_WIDTH // 2,
            height=TWO_STAGE_HEIGHT // 2,
            frames=NUM_FRAMES,
            fps=FRAME_RATE,
            video=ModalitySpec(context=x["video_context"], conditionings=image(x["distilled.stage_1_image_latent"])),
            audio=ModalitySpec(context=x["audio_context"]),
        )
    upscaled = upscale(video_1.latent[:1], x)
    sigmas = STAGE_2_DISTILLED_SIGMAS.to(torch.float32)
    with torch.inference_mode():
        video_2, audio_2 = stage(
            denoiser=denoiser,
            sigmas=sigmas,
            noiser=noiser,
            width=TWO_STAGE_WIDTH,
            height=TWO_STAGE_HEIGHT,
            frames=NUM_FRAMES,
            fps=FRAME_RATE,
            video=ModalitySpec(
                context=x["video_context"],
                conditionings=image(x["distilled.stage_2_image_latent"]),
                noise_scale=sigmas[0].item(),
                initial_latent=upscaled,
            ),
            audio=ModalitySpec(context=x["audio_context"], noise_scale=sigmas[0].item(), initial_latent=audio_1.latent),
        )
    return {
        "output.distilled.stage_1.video_latent": video_1.latent.clone(),
        "output.distilled.stage_1.audio_latent": audio_1.latent.clone(),
        "output.distilled.upscaled_video_latent": upscaled,
        "output.distilled.stage_2.video_latent": video_2.latent.clone(),
        "output.distilled.stage_2.audio_latent": audio_2.latent.clone(),
    }


def write(out: Path, name: str, section: dict, model_version: str, widths: tuple[int, int]) -> int:
    model = build(section, seed=5)
    stage = TinyStage(model, section)
    x = seeded_inputs(widths)
    tensors = {f"model.diffusion_model.{k}": v.bfloat16() for k, v in model.state_dict().items()}
    tensors.update({f"input.{k}": v.bfloat16() for k, v in x.items()})  # bf16-exact (seeded_inputs)
    tensors["input.seed"] = torch.tensor(SEED)
    tensors.update(one_stage(stage, x))
    bf16_stage = TinyStage(copy.deepcopy(model).bfloat16(), section, torch.bfloat16)
    tensors.update(one_stage(bf16_stage, x, "one_stage_bf16"))
    del tensors["input.one_stage_bf16.sigmas"]  # the same sigmas
    tensors.update(distilled(stage, x))
    for key, value in tensors.items():
        if key.startswith("output."):
            print(name, key, tuple(value.shape), "mean |x|", round(value.abs().mean().item(), 4))
    metadata = {
        "config": json.dumps({"transformer": section}),
        "model_version": model_version,
        "video_guider": json.dumps(VIDEO_GUIDER),
        "audio_guider": json.dumps(AUDIO_GUIDER),
        "upsampler": json.dumps(UPSAMPLER),
        "num_frames": str(NUM_FRAMES),
        "frame_rate": str(FRAME_RATE),
        "height": str(HEIGHT),
        "width": str(WIDTH),
        "two_stage_height": str(TWO_STAGE_HEIGHT),
        "two_stage_width": str(TWO_STAGE_WIDTH),
        "image_strength": str(IMAGE_STRENGTH),
        # bf16 runs are compared bit for bit, which needs the same kernels: the test skips that run elsewhere
        "bf16_kernels": json.dumps(
            {"torch": torch.__version__.split("+")[0], "cpu_capability": torch.backends.cpu.get_cpu_capability()}
        ),
    }
    path = out / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)
    print("wrote", path, path.stat().st_size, "bytes")
    return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("tests/goldens/runs12"))
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    total = sum(write(out, name, *layout) for name, layout in LAYOUTS.items())
    print("total", total, "bytes")
    settings = {
        "num_frames": NUM_FRAMES, "frame_rate": FRAME_RATE, "one_stage_size": [HEIGHT, WIDTH],
        "two_stage_size": [TWO_STAGE_HEIGHT, TWO_STAGE_WIDTH], "seed": SEED, "one_stage_steps": ONE_STAGE_STEPS,
        "image_strength": IMAGE_STRENGTH, "video_guider": VIDEO_GUIDER, "audio_guider": AUDIO_GUIDER,
        "upsampler": UPSAMPLER,
    }  # fmt: skip
    golden = {
        "generator": "scripts/goldens/runs12.py",
        "oracle": {
            **{name: package_metadata.version(name) for name in ("ltx-core", "ltx-pipelines", "transformers")},
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "files": {
            f"{name}.safetensors": {
                "spec": "1.2 spec §10 (optional end-to-end runs), §5.1, 5.5, 5.6",
                "settings": {**settings, "model_version": layout[1]},
                "tolerance": "fp32: atol 5e-5; bf16 one stage: bit for bit with the same kernels (bf16_kernels metadata)",
            }
            for name, layout in LAYOUTS.items()
        },
    }
    (out / "golden.json").write_text(json.dumps(golden, indent=1) + "\n")


if __name__ == "__main__":
    main()
