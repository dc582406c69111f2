"""Golden stage state of ltx-pipelines 1.2.0's text-to-audio pipeline, for tests/test_pipeline_text_to_audio.py.

Run with the 1.2.0 oracle's Python (ltx-core / ltx-pipelines 1.2.0 importable):

    ORACLE_PYTHON scripts/goldens/pipelines12.py [--out tests/goldens/pipelines12]

`T2AOneStagePipeline.__call__` is: prompts -> audio contexts, sigmas, then ONE `DiffusionStage` call with
`video=None` on an audio-only transformer (`LTXAudioOnlyModelConfigurator`), a `FactoryGuidedDenoiser` with the
audio guider only, and a `GaussianNoiser` seeded by the pipeline's seed; then the audio decoder. This script runs
that stage as the pipeline does, on a tiny audio-only model (2 blocks, audio width 8, LTX-2 layout with the caption
projection inside the transformer) whose parameters are drawn from a seeded generator, in float32 on the CPU. The
Gemma + connectors half is replaced by seeded contexts, and the stage is built around the tiny model instead of
from a checkpoint file (`DiffusionStage.from_checkpoint` needs one); the stage's own `__call__` runs unchanged.

One safetensors file per layout, t2a.safetensors (LTX-2: caption projection in the transformer, contexts 32 wide)
and t2a23.safetensors (LTX-2.3: gated attention, AdaLN text cross-attention, contexts at the stream width 8):
  - the weights under the original single-file names (`model.diffusion_model.*`: only the audio model's), stored in
    bfloat16 (the values are bf16-exact; both sides compute in float32), and the `config` metadata section;
  - input.audio_context / input.negative_audio_context (1, L, 32 or 8), input.sigmas, input.seed (the noiser's);
  - output.audio_latent: the stage's denoised audio latent (1, 8, T_a, 16), unpatchified.
Only tensors are written; nothing of ltx-core or ltx-pipelines is copied into this repository.
"""

import argparse
import json
from contextlib import nullcontext
from pathlib import Path
from types import SimpleNamespace

import torch
from ltx_core.components.guiders import MultiModalGuiderParams, create_multimodal_guider_factory
from ltx_core.components.noisers import GaussianNoiser
from ltx_core.components.schedulers import LTX2Scheduler
from ltx_core.model.transformer import LTXAudioOnlyModelConfigurator, X0Model
from ltx_pipelines.utils.blocks import DiffusionStage
from ltx_pipelines.utils.denoisers import FactoryGuidedDenoiser
from ltx_pipelines.utils.types import ModalitySpec
from safetensors.torch import save_file
from seeded import LTX_CORE_FIXED, fill_seeded_  # scripts/goldens/seeded.py (the script's own folder is on sys.path)

NUM_FRAMES, FRAME_RATE = 17, 24.0  # 17 / 24 s of audio: 18 audio latent frames
NUM_STEPS, SEED, TEXT_TOKENS, CAPTION_CHANNELS = 4, 42, 6, 32
GUIDER = dict(cfg_scale=7.0, stg_scale=1.0, rescale_scale=0.7, modality_scale=1.0, stg_blocks=[1])

# ltx-core's asserted values plus the tiny sizes; the video keys are what an AV checkpoint's section also holds
SECTION = {
    **LTX_CORE_FIXED,
    "num_attention_heads": 2, "attention_head_dim": 8, "in_channels": 128, "out_channels": 128, "num_layers": 2,
    "cross_attention_dim": 16, "audio_num_attention_heads": 2, "audio_attention_head_dim": 4,
    "audio_in_channels": 128, "audio_out_channels": 128, "audio_cross_attention_dim": 8,
    "caption_channels": CAPTION_CHANNELS,
}  # fmt: skip
# LTX-2.3's layout: text projected before the connectors (contexts at the stream width), gated attention, AdaLN on
# the text cross-attention (whose prompt AdaLN reads the audio sigma)
SECTION_23 = {
    **SECTION, "caption_proj_before_connector": True, "caption_projection_first_linear": False,
    "caption_proj_input_norm": False, "caption_projection_second_linear": False, "apply_gated_attention": True,
    "cross_attention_adaln": True,
}  # fmt: skip
LAYOUTS = {"t2a": (SECTION, CAPTION_CHANNELS), "t2a23": (SECTION_23, SECTION["audio_cross_attention_dim"])}


def build(section: dict, seed: int) -> torch.nn.Module:
    """The audio-only model of `config.transformer` = section, every tensor drawn from a seeded N(0, 1) and scaled to
    keep O(1) activations, rounded to bf16-exact values."""
    model = LTXAudioOnlyModelConfigurator.from_metadata({"config": {"transformer": section}})
    fill_seeded_(model, seed)
    return model.float().eval()


class TinyStage(DiffusionStage):
    """`DiffusionStage` around an already built model: only the transformer's construction differs."""

    def __init__(self, model: torch.nn.Module):  # noqa: D107 (the parent's fields that __call__ reads)
        self._model = X0Model(model).eval()
        self._dtype, self._device = torch.float32, torch.device("cpu")
        self._transformer_builder = SimpleNamespace(checkpoint="tiny seeded model")
        self.video_scale_factors = None

    def _transformer_ctx(self, **kwargs: object):
        return nullcontext(self._model)


def write(out: Path, name: str, section: dict, context_width: int) -> None:
    model = build(section, seed=0)
    contexts = torch.randn(2, 1, TEXT_TOKENS, context_width, generator=torch.Generator().manual_seed(1))
    context, negative_context = contexts[0], contexts[1]
    sigmas = LTX2Scheduler().execute(steps=NUM_STEPS).to(torch.float32)
    # T2AOneStagePipeline.__call__ from its sigmas on, with the tiny stage
    generator = torch.Generator(device="cpu").manual_seed(SEED)
    guider = create_multimodal_guider_factory(
        params=MultiModalGuiderParams(**GUIDER), negative_context=negative_context
    )
    with torch.inference_mode():
        _, audio_state = TinyStage(model)(
            denoiser=FactoryGuidedDenoiser(
                v_context=None, a_context=context, video_guider_factory=None, audio_guider_factory=guider
            ),
            sigmas=sigmas,
            noiser=GaussianNoiser(generator=generator),
            width=512,
            height=512,
            frames=NUM_FRAMES,
            fps=FRAME_RATE,
            video=None,
            audio=ModalitySpec(context=context),
        )
    latent = audio_state.latent.clone()
    print(name, "audio latent", tuple(latent.shape), "mean |x|", latent.abs().mean().item())

    tensors = {f"model.diffusion_model.{k}": v.bfloat16().contiguous() for k, v in model.state_dict().items()}
    tensors.update(
        {
            "input.audio_context": context.contiguous(),
            "input.negative_audio_context": negative_context.contiguous(),
            "input.sigmas": sigmas.contiguous(),
            "input.seed": torch.tensor(SEED),
            "output.audio_latent": latent.contiguous(),
        }
    )
    metadata = {
        "config": json.dumps({"transformer": section}),
        "guider": json.dumps(GUIDER),
        "num_frames": str(NUM_FRAMES),
        "frame_rate": str(FRAME_RATE),
    }
    path = out / f"{name}.safetensors"
    save_file(tensors, str(path), metadata=metadata)
    print("wrote", path, path.stat().st_size, "bytes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("tests/goldens/pipelines12"))
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    for name, (section, context_width) in LAYOUTS.items():
        write(out, name, section, context_width)


if __name__ == "__main__":
    main()
