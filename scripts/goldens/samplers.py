"""Golden tensors for the samplers (spec 1.2 §10 G6): ltx-pipelines 1.2.0's denoising loops on a toy denoiser.

Run with the 1.2.0 oracle venv (it imports ltx_core / ltx_pipelines 1.2.0; the test that reads the file does not):

    ORACLE_PYTHON scripts/goldens/samplers.py tests/goldens/samplers/samplers.safetensors

Toy denoiser: guided x0 = 0.5 x, unconditional x0 = 0.3 x (the CFG++ direction), for a video (1, 24, 8) and an audio
(1, 10, 8) stream with frozen tokens (denoise mask 0), one partly conditioned token (0.4) and random clean latents,
over DISTILLED_SIGMAS, in float32 and bfloat16 (the loops' model_dtype). Stored: the inputs, the sigmas and the final
video / audio samples of each loop, as "<dtype>.<name>" tensors; the settings in the file's metadata.
"""

import json
import sys

import torch
from ltx_core.components.diffusion_steps import (
    EulerAncestralDiffusionStep,
    EulerCfgPpDiffusionStep,
    EulerDiffusionStep,
    Res2sDiffusionStep,
)
from ltx_core.types import LatentState
from ltx_pipelines.utils.constants import DISTILLED_SIGMA_VALUES
from ltx_pipelines.utils.samplers import (
    euler_ancestral_denoising_loop,
    euler_cfg_pp_denoising_loop,
    euler_denoising_loop,
    res2s_audio_video_denoising_loop,
)
from ltx_pipelines.utils.types import DenoisedLatentResult
from safetensors.torch import save_file

GUIDED, UNCOND = 0.5, 0.3
# name -> (loop, stepper, loop keyword arguments)
LOOPS = {
    "euler": (euler_denoising_loop, EulerDiffusionStep(), {}),
    "euler_ancestral": (euler_ancestral_denoising_loop, EulerAncestralDiffusionStep(1.0, 1.0), {"noise_seed": 10010}),
    "euler_ancestral_eta0.5_snoise0.8": (
        euler_ancestral_denoising_loop,
        EulerAncestralDiffusionStep(0.5, 0.8),
        {"noise_seed": 3},
    ),
    "euler_ancestral_eta0": (euler_ancestral_denoising_loop, EulerAncestralDiffusionStep(0.0, 1.0), {}),
    "cfg_pp": (euler_cfg_pp_denoising_loop, EulerCfgPpDiffusionStep(1.0, 1.0), {"noise_seed": 10010}),
    "cfg_pp_eta0": (euler_cfg_pp_denoising_loop, EulerCfgPpDiffusionStep(0.0, 1.0), {}),
    "res2s": (res2s_audio_video_denoising_loop, Res2sDiffusionStep(), {"noise_seed": -1}),
}


def toy_denoiser(transformer, video_state, audio_state, sigmas, step_index):
    def result(state):
        return DenoisedLatentResult(denoised=state.latent * GUIDED, uncond=state.latent * UNCOND)

    return result(video_state), result(audio_state)


def stream(num_tokens: int, frozen: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    mask = torch.ones(1, num_tokens, 1)
    mask[:, :frozen] = 0.0
    mask[:, frozen] = 0.4  # a partly conditioned token (strength 0.6)
    clean = torch.randn(1, num_tokens, 8, generator=generator)
    noise = torch.randn(1, num_tokens, 8, generator=generator)
    return {"latent": noise * mask + clean * (1 - mask), "denoise_mask": mask, "clean_latent": clean}


def main(path: str) -> None:
    generator = torch.Generator().manual_seed(12)
    inputs = {"video": stream(24, 8, generator), "audio": stream(10, 2, generator)}
    tensors = {"sigmas": torch.tensor(DISTILLED_SIGMA_VALUES, dtype=torch.float32)}
    for modality, parts in inputs.items():
        tensors.update({f"{modality}.{name}": value for name, value in parts.items()})
    for dtype in (torch.float32, torch.bfloat16):
        dtype_name = str(dtype).removeprefix("torch.")
        for name, (loop, stepper, kwargs) in LOOPS.items():
            states = [
                LatentState(
                    latent=parts["latent"].to(dtype),
                    denoise_mask=parts["denoise_mask"],
                    positions=torch.zeros(1, 1, parts["latent"].shape[1], 2),
                    clean_latent=parts["clean_latent"].to(dtype),
                )
                for parts in inputs.values()
            ]
            extra = {} if loop is euler_denoising_loop else {"model_dtype": dtype}
            video, audio = loop(
                tensors["sigmas"], *states, stepper=stepper, transformer=None, denoiser=toy_denoiser, **kwargs, **extra
            )
            tensors[f"{dtype_name}.{name}.video"] = video.latent.float()
            tensors[f"{dtype_name}.{name}.audio"] = audio.latent.float()
    settings = {
        name: {"loop": loop.__name__, "stepper": repr(vars(stepper)), **kwargs}
        for name, (loop, stepper, kwargs) in LOOPS.items()
    }
    metadata = {
        "reference": "ltx-core / ltx-pipelines 1.2.0",
        "guided": str(GUIDED),
        "uncond": str(UNCOND),
        "loops": json.dumps(settings),
    }
    save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata=metadata)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/goldens/samplers/samplers.safetensors")
