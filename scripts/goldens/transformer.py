"""Golden tensors of ltx-core 1.2.0's transformer (1.2 spec §10, G1-G4), for tests/test_goldens_transformer.py.

Run with the 1.2.0 oracle's Python (ltx-core 1.2.0 importable, e.g. installed from Lightricks/LTX-2 at v1.2.0):

    ORACLE_PYTHON scripts/goldens/transformer.py [--out tests/goldens/transformer]

For each layout (LTX-2 "2.0", LTX-2.3 "2.3", LTX-2.5 "2.5") it builds a tiny `LTXModel` through ltx-core's own
configurator from a `config.transformer` metadata section, fills every parameter from a seeded generator, runs it on
seeded inputs in float32 on the CPU, and writes one safetensors file holding:
  - the weights under the original single-file names (`model.diffusion_model.*`), so the test loads them through our
    key map, and the metadata (`config` JSON, `model_version`) our metadata reader turns into the model config. The
    weights are drawn, rounded to bfloat16 and stored in bfloat16 (half the bytes); both models compute in float32;
  - the inputs (`input.*`: latents, contexts, sigmas, per-token timesteps, positions, keyframe mask);
  - the outputs (`output.<case>.video` / `.audio`).
Cases: "plain" (B = 2, unequal video/audio sigmas, the first latent frame conditioned: the A<->V rule of 1.2.0 differs
from 1.0.0 there), "perturbed" (per-sample STG in block 1 and audio<->video isolation), and for 2.5 "no_keyframes"
(keyframes_mask None) and "static_prompt" (use_prompt_adaln_single=False: the same weights minus the prompt AdaLN),
and for 2.3 "audio_only" (G3: ltx-core's audio-only model on the same weights, no video).
Also connectors25.safetensors: LTX-2.5's text connectors (1.2 spec §3.4-3.5, G8 without Gemma): a Gemma-4-like stack
of hidden states (width 8, 3 layers + embeddings) through ltx-core 1.2.0's V2 feature extractor and its batch-safe
embeddings processor (two prompts of different lengths, left padded), with `connector_ff_bias` false.
Only tensors are written; nothing of ltx-core is copied into this repository.
"""

import argparse
import json
from pathlib import Path

import torch
from ltx_core.components.patchifiers import AudioPatchifier, VideoLatentPatchifier
from ltx_core.guidance.perturbations import (
    BatchedPerturbationConfig,
    Perturbation,
    PerturbationConfig,
    PerturbationType,
)
from ltx_core.model.transformer.modality import Modality
from ltx_core.model.transformer.model_configurator import LTXAudioOnlyModelConfigurator, LTXModelConfigurator
from ltx_core.text_encoders.gemma.embeddings_connector import (
    AudioEmbeddings1DConnectorConfigurator,
    Embeddings1DConnectorConfigurator,
)
from ltx_core.text_encoders.gemma.embeddings_processor import EmbeddingsProcessor
from ltx_core.text_encoders.gemma.feature_extractor import FeatureExtractorV2
from ltx_core.tools import AudioLatentTools, VideoLatentTools
from ltx_core.types import AudioLatentShape, VideoLatentShape
from safetensors.torch import save_file
from seeded import LTX_CORE_FIXED, fill_seeded_  # scripts/goldens/seeded.py (the script's own folder is on sys.path)

FRAMES, HEIGHT, WIDTH, FPS = 2, 3, 4, 24.0  # video latent: 24 tokens, the first 12 are latent frame 0
AUDIO_FRAMES, AUDIO_CHANNELS, MEL_BINS = 5, 2, 4  # 5 audio tokens of 8 features
TEXT_TOKENS, CAPTION_CHANNELS = 7, 12
VIDEO_SIGMA, AUDIO_SIGMA = (0.9, 0.6), (0.2, 1.0)
SEED = {"2.0": 0, "2.3": 1, "2.5": 2}

# ltx-core's asserted values plus the released values of the keys whose code defaults differ (spec §1.1, §13.1)
BASE_SECTION = {
    **LTX_CORE_FIXED,
    "num_attention_heads": 2, "attention_head_dim": 8, "in_channels": 8, "out_channels": 8, "num_layers": 2,
    "cross_attention_dim": 16, "audio_num_attention_heads": 2, "audio_attention_head_dim": 4,
    "audio_in_channels": 8, "audio_out_channels": 8, "audio_cross_attention_dim": 8,
    "caption_channels": CAPTION_CHANNELS,
}  # fmt: skip
V2_TEXT = {
    "caption_proj_before_connector": True, "caption_projection_first_linear": False,
    "caption_proj_input_norm": False, "caption_projection_second_linear": False,
}  # fmt: skip
SECTIONS = {
    "2.0": BASE_SECTION,
    "2.3": {**BASE_SECTION, **V2_TEXT, "apply_gated_attention": True, "cross_attention_adaln": True},
}
SECTIONS["2.5"] = {**SECTIONS["2.3"], "ff_bias": False, "use_keyframes_abs_pos_embedding": True}
MODEL_VERSIONS = {"2.0": "2.0.0", "2.3": "2.3.0", "2.5": "2.5.0"}


def build(section: dict, seed: int) -> torch.nn.Module:
    """ltx-core's model for `config.transformer` = section, every tensor drawn from N(0, 1) and scaled to keep O(1)
    activations (ltx-core leaves caption projections on meta and zero-initialises the keyframe embedding)."""
    model = LTXModelConfigurator.from_metadata({"config": {"transformer": section}})
    fill_seeded_(model, seed)
    return model.eval()


def make_inputs(section: dict, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(100 + seed)
    batch = 2
    video_tools = VideoLatentTools(
        VideoLatentPatchifier(patch_size=1), VideoLatentShape(batch, section["in_channels"], FRAMES, HEIGHT, WIDTH), FPS
    )
    video_state = video_tools.create_initial_state("cpu", torch.float32)
    audio_tools = AudioLatentTools(AudioPatchifier(patch_size=1), AudioLatentShape(batch, AUDIO_CHANNELS, AUDIO_FRAMES, MEL_BINS))
    audio_state = audio_tools.create_initial_state("cpu", torch.float32)
    v2 = section.get("caption_proj_before_connector", False)
    video_width = section["num_attention_heads"] * section["attention_head_dim"]
    audio_width = section["audio_num_attention_heads"] * section["audio_attention_head_dim"]
    video_sigma, audio_sigma = torch.tensor(VIDEO_SIGMA), torch.tensor(AUDIO_SIGMA)
    video_mask = torch.ones(batch, FRAMES * HEIGHT * WIDTH)
    video_mask[:, : HEIGHT * WIDTH] = 0.0  # image conditioning: latent frame 0 is clean (1.2 spec §5.1)

    def randn(*shape):
        return torch.randn(*shape, generator=generator)

    return {
        "video": randn(batch, FRAMES * HEIGHT * WIDTH, section["in_channels"]),
        "audio": randn(batch, AUDIO_FRAMES, section["audio_in_channels"]),
        "video_context": randn(batch, TEXT_TOKENS, video_width if v2 else CAPTION_CHANNELS),
        "audio_context": randn(batch, TEXT_TOKENS, audio_width if v2 else CAPTION_CHANNELS),
        "video_sigma": video_sigma,
        "audio_sigma": audio_sigma,
        "video_timesteps": video_sigma[:, None] * video_mask,
        "audio_timesteps": audio_sigma[:, None].expand(batch, AUDIO_FRAMES).contiguous(),
        "video_positions": video_state.positions.float().contiguous(),
        "audio_positions": audio_state.positions.float().contiguous(),
        "keyframes_mask": video_state.keyframes_mask.reshape(batch, -1, 1).float().contiguous(),
    }


def run(model, inputs: dict, perturbations=None, keyframes=True, with_video=True) -> tuple[torch.Tensor, torch.Tensor]:
    video = None if not with_video else Modality(
        latent=inputs["video"], sigma=inputs["video_sigma"], timesteps=inputs["video_timesteps"],
        positions=inputs["video_positions"], context=inputs["video_context"],
        keyframes_mask=inputs["keyframes_mask"] if keyframes else None,
    )  # fmt: skip
    audio = Modality(
        latent=inputs["audio"], sigma=inputs["audio_sigma"], timesteps=inputs["audio_timesteps"],
        positions=inputs["audio_positions"], context=inputs["audio_context"],
    )  # fmt: skip
    with torch.no_grad():
        return model(video, audio, perturbations)


def perturbations(num_blocks: int) -> BatchedPerturbationConfig:
    """Sample 0: STG on video block 1 and audio block 0; sample 1: no A2V and no V2A (modality isolation)."""
    per_sample = [
        PerturbationConfig(
            [
                Perturbation(PerturbationType.SKIP_VIDEO_SELF_ATTN, [1]),
                Perturbation(PerturbationType.SKIP_AUDIO_SELF_ATTN, [0]),
            ]
        ),
        PerturbationConfig(
            [
                Perturbation(PerturbationType.SKIP_A2V_CROSS_ATTN, None),
                Perturbation(PerturbationType.SKIP_V2A_CROSS_ATTN, None),
            ]
        ),
    ]
    return BatchedPerturbationConfig(per_sample, num_blocks, torch.device("cpu"), torch.float32)


def golden(version: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    section = SECTIONS[version]
    model = build(section, SEED[version])
    tensors = {"model.diffusion_model." + k: v.bfloat16().contiguous() for k, v in model.state_dict().items()}
    inputs = make_inputs(section, SEED[version])
    tensors.update({f"input.{k}": v for k, v in inputs.items()})
    cases = {"plain": run(model, inputs), "perturbed": run(model, inputs, perturbations(section["num_layers"]))}
    if version == "2.3":  # G3: ltx-core's audio-only model (T2A) on the same weights, video=None
        audio_only = LTXAudioOnlyModelConfigurator.from_metadata({"config": {"transformer": section}})
        audio_only.to_empty(device="cpu")
        wanted = audio_only.state_dict().keys()
        audio_only.load_state_dict({k: v for k, v in model.state_dict().items() if k in wanted}, strict=True)
        tensors["output.audio_only.audio"] = run(audio_only.eval(), inputs, with_video=False)[1].contiguous()
    if version == "2.5":
        cases["no_keyframes"] = run(model, inputs, keyframes=False)
        static = LTXModelConfigurator.from_metadata(
            {"config": {"transformer": {**section, "use_prompt_adaln_single": False}}}
        )
        static.to_empty(device="cpu")
        static.load_state_dict(
            {k: v for k, v in model.state_dict().items() if "prompt_adaln_single" not in k}, strict=True
        )
        cases["static_prompt"] = run(static.eval(), inputs)
    for case, (video, audio) in cases.items():
        tensors[f"output.{case}.video"] = video.contiguous()
        tensors[f"output.{case}.audio"] = audio.contiguous()
    metadata = {
        "config": json.dumps({"transformer": section}),
        "model_version": MODEL_VERSIONS[version],
        "generator": "scripts/goldens/transformer.py",
        "reference": "ltx-core 1.2.0 (Lightricks/LTX-2 v1.2.0)",
    }
    return tensors, metadata


# A Gemma-4-like text encoder in miniature: hidden size 8, 3 layers (4 hidden states); 128 tokens (ltx-core's 128
# registers need a multiple of 128); the connectors at small stream widths (video 2 x 4, audio 2 x 2)
GEMMA_WIDTH, GEMMA_STATES, TEXT_LENGTH, PROMPT_LENGTHS = 8, 4, 128, (5, 100)
CONNECTOR_SECTION = {
    **SECTIONS["2.5"], "num_attention_heads": 2, "attention_head_dim": 4, "audio_num_attention_heads": 2,
    "audio_attention_head_dim": 2, "cross_attention_dim": 8, "audio_cross_attention_dim": 4,
    "caption_channels": GEMMA_WIDTH, "connector_num_attention_heads": 2, "connector_attention_head_dim": 4,
    "audio_connector_num_attention_heads": 2, "audio_connector_attention_head_dim": 2, "connector_num_layers": 2,
    "connector_positional_embedding_max_pos": [4096], "connector_apply_gated_attention": True,
    "connector_ff_bias": False,
}  # fmt: skip


def connectors_golden() -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    metadata = {"config": {"transformer": CONNECTOR_SECTION}}
    flat = GEMMA_WIDTH * GEMMA_STATES
    processor = EmbeddingsProcessor(
        feature_extractor=FeatureExtractorV2(
            torch.nn.Linear(flat, 8), GEMMA_WIDTH, audio_aggregate_embed=torch.nn.Linear(flat, 4)
        ),
        video_connector=Embeddings1DConnectorConfigurator.from_metadata(metadata),
        audio_connector=AudioEmbeddings1DConnectorConfigurator.from_metadata(metadata),
    )
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for param in processor.parameters():
            scale = 1.0 if param.ndim < 2 else param.shape[1] ** -0.5
            param.copy_((torch.randn(param.shape, generator=generator) * scale).to(param.dtype).bfloat16())
    processor = processor.float().eval()
    # Gemma-like layers: different offsets and scales per layer, so the per-token RMS norm matters
    hidden = tuple(
        (torch.randn(2, TEXT_LENGTH, GEMMA_WIDTH, generator=generator) * (1 + 2 * i) + i).bfloat16().float()
        for i in range(GEMMA_STATES)
    )
    mask = torch.zeros(2, TEXT_LENGTH, dtype=torch.int64)
    for row, length in enumerate(PROMPT_LENGTHS):
        mask[row, TEXT_LENGTH - length :] = 1
    with torch.no_grad():
        out = processor.process_hidden_states(hidden, mask, padding_side="left")
    names = {
        "feature_extractor.": "text_embedding_projection.",
        "video_connector.": "model.diffusion_model.video_embeddings_connector.",
        "audio_connector.": "model.diffusion_model.audio_embeddings_connector.",
    }
    tensors = {}
    for key, value in processor.state_dict().items():
        prefix = next(p for p in names if key.startswith(p))
        tensors[names[prefix] + key.removeprefix(prefix)] = value.bfloat16().contiguous()
    tensors.update({f"input.hidden_states.{i}": h.bfloat16().contiguous() for i, h in enumerate(hidden)})
    tensors["input.attention_mask"] = mask
    tensors["output.video"], tensors["output.audio"] = out.video_encoding.contiguous(), out.audio_encoding.contiguous()
    tensors["output.attention_mask"] = out.attention_mask.contiguous()
    header = {
        "config": json.dumps({"transformer": CONNECTOR_SECTION}),
        "model_version": MODEL_VERSIONS["2.5"],
        "generator": "scripts/goldens/transformer.py",
        "reference": "ltx-core 1.2.0 (Lightricks/LTX-2 v1.2.0)",
    }
    return tensors, header


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[2] / "tests/goldens/transformer"))
    out = Path(parser.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    torch.use_deterministic_algorithms(True)
    for version in SECTIONS:
        tensors, metadata = golden(version)
        path = out / f"ltx{version.replace('.', '')}.safetensors"
        save_file(tensors, str(path), metadata=metadata)
        print(f"{path}: {len(tensors)} tensors, {path.stat().st_size} bytes")
    tensors, metadata = connectors_golden()
    save_file(tensors, str(out / "connectors25.safetensors"), metadata=metadata)
    print(f"{out / 'connectors25.safetensors'}: {(out / 'connectors25.safetensors').stat().st_size} bytes")


if __name__ == "__main__":
    main()
