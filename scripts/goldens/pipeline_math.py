"""Golden tensors for the pipeline maths that ltx-core / ltx-pipelines 1.2.0 changed (delta spec §10: G5, G7, G8, G9,
G16), written by the 1.2.0 oracle for `tests/test_goldens_pipeline_math.py`, which compares ours without importing it.

Run by `scripts/make_goldens.py` with the oracle's interpreter (ltx_core / ltx_pipelines 1.2.0 importable, this
repository's `tests/` on the path for the tiny Gemma-4 builder); stand-alone:
    PYTHONPATH=tests /path/to/oracle/python scripts/goldens/pipeline_math.py --out tests/goldens/pipeline_math
Only tensors and numbers the reference computed are written (never its code):
- g5_guidance.safetensors    G5: `MultiModalGuider.calculate` on random bf16 predictions, three guider settings.
- g7_conditioning.safetensors G7: `VideoLatentTools` states (latent, clean latent, masks, positions, keyframe marks)
                             after latent-index, keyframe-index and reference-latent conditioning, and `GaussianNoiser`,
                             at noise scale 1 and 0.909375 (with an initial latent).
- g8_text.safetensors        G8/G9: `LTXGemmaTokenizer` ids and mask (tiny Gemma-4, 64 tokens), the Gemma hidden states
                             of `LTXGemmaTextEncoder.encode`, and V2 / V1 features with the projections' weights.
- g16_metadata.json          G16: `detect_params` / `detect_model_version` for synthetic headers.
- golden.json                what was run: versions, settings, tolerances (make_goldens.py folds it into MANIFEST.json).
"""

import argparse
import json
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import torch
from safetensors.torch import save_file

MAX_LENGTH = 64  # tokens per prompt here (the pipelines use 1024): keeps the hidden states a few tens of KB
PROMPTS = ["  hello world ", "a cat plays piano on the street at night " * 8]  # the second: over 64 tokens
VERSIONS = ["", "2.0", "2.3", "2.3.rc1", "2.4-rc2", "2.5", "2.5.1", "3.0"]


def guidance() -> tuple[dict, dict]:
    from ltx_core.components.guiders import MultiModalGuider
    from ltx_pipelines.utils.constants import LTX_2_3_HQ_PARAMS, LTX_2_3_PARAMS

    generator = torch.Generator().manual_seed(0)
    passes = {name: torch.randn(1, 40, 16, generator=generator).bfloat16() for name in ("cond", "uncond", "ptb", "mod")}
    settings = {
        "video": LTX_2_3_PARAMS.video_guider_params,
        "audio": LTX_2_3_PARAMS.audio_guider_params,
        "hq_video": LTX_2_3_HQ_PARAMS.video_guider_params,
    }
    tensors = dict(passes)
    params = {}
    for name, p in settings.items():
        tensors[f"out_{name}"] = MultiModalGuider(p).calculate(*passes.values())
        params[name] = {
            "cfg": p.cfg_scale,
            "stg": p.stg_scale,
            "modality": p.modality_scale,
            "rescale": p.rescale_scale,
            "stg_blocks": list(p.stg_blocks),
        }
    return tensors, params


def conditioning() -> tuple[dict, dict]:
    from ltx_core.components.noisers import GaussianNoiser
    from ltx_core.components.patchifiers import VideoLatentPatchifier
    from ltx_core.conditioning import (
        VideoConditionByKeyframeIndex,
        VideoConditionByLatentIndex,
        VideoConditionByReferenceLatent,
    )
    from ltx_core.tools import VideoLatentTools
    from ltx_core.types import VideoLatentShape

    channels, frames, height, width, fps = 8, 3, 2, 3, 24.0
    generator = torch.Generator().manual_seed(1)
    image = torch.randn(1, channels, 1, height, width, generator=generator)
    keyframe = torch.randn(1, channels, 1, height, width, generator=generator)
    reference = torch.randn(1, channels, 2, 1, 2, generator=generator)
    initial = torch.randn(1, channels, frames, height, width, generator=generator)
    tensors = {"image": image, "keyframe": keyframe, "reference": reference, "initial": initial}
    tools = VideoLatentTools(VideoLatentPatchifier(1), VideoLatentShape(1, channels, frames, height, width), fps)
    cases = {"s1": (None, 1.0), "s0909": (initial, 0.909375)}
    for case, (initial_latent, noise_scale) in cases.items():
        for dtype_name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            state = tools.create_initial_state(
                "cpu", dtype, None if initial_latent is None else initial_latent.to(dtype)
            )
            items = [
                VideoConditionByLatentIndex(image.to(dtype), strength=0.6, latent_idx=0),
                VideoConditionByKeyframeIndex(keyframe.to(dtype), frame_idx=9, strength=0.6),
                VideoConditionByReferenceLatent(reference.to(dtype), downscale_factor=2, strength=0.7),
            ]
            for item in items:
                state = item.apply_to(state, tools)
            noised = GaussianNoiser(torch.Generator().manual_seed(3))(state, noise_scale)
            for name in ("latent", "clean_latent", "denoise_mask", "positions", "keyframes_mask"):
                tensors[f"{case}_{dtype_name}_conditioned_{name}"] = getattr(state, name)
            tensors[f"{case}_{dtype_name}_noised_latent"] = noised.latent
    settings = {
        "grid": [frames, height, width],
        "channels": channels,
        "fps": fps,
        "image": {"strength": 0.6, "latent_index": 0},
        "keyframe": {"strength": 0.6, "frame_index": 9},
        "reference": {"strength": 0.7, "downscale_factor": 2},
        "noise_seed": 3,
        "noise_scales": {case: scale for case, (_, scale) in cases.items()},
    }
    return tensors, settings


def text() -> tuple[dict, dict]:
    from helpers.gemma4 import GEMMA4_HIDDEN_SIZE, GEMMA4_NUM_HIDDEN_STATES, build_tiny_gemma4
    from ltx_core.text_encoders.gemma.encoders.base_encoder import LTXGemmaTextEncoder
    from ltx_core.text_encoders.gemma.feature_extractor import FeatureExtractorV1, FeatureExtractorV2
    from ltx_core.text_encoders.gemma.tokenizer import LTXGemmaTokenizer

    gemma, hf_tokenizer = build_tiny_gemma4(seed=0)
    tokenizer = LTXGemmaTokenizer(hf_tokenizer, MAX_LENGTH)
    tokens = [tokenizer.tokenize_with_weights(prompt)["gemma"] for prompt in PROMPTS]
    tensors = {
        "input_ids": torch.tensor([[t for t, _ in pairs] for pairs in tokens]),
        "attention_mask": torch.tensor([[int(w) for _, w in pairs] for pairs in tokens]),
    }
    encoder = LTXGemmaTextEncoder(model=gemma, tokenizer=tokenizer, dtype=torch.float32)
    with torch.no_grad():
        encoded = encoder.encode(PROMPTS)  # one Gemma forward, sliced per prompt
        tensors["hidden_states"] = torch.cat([torch.stack(states, dim=-1) for states, _ in encoded])  # (B, T, D, L)
        flat = GEMMA4_HIDDEN_SIZE * GEMMA4_NUM_HIDDEN_STATES
        generator = torch.Generator().manual_seed(5)
        video_proj, audio_proj, v1_proj = (
            torch.nn.Linear(flat, 32),
            torch.nn.Linear(flat, 16),
            torch.nn.Linear(flat, GEMMA4_HIDDEN_SIZE, bias=False),
        )
        for module in (video_proj, audio_proj, v1_proj):
            for param in module.parameters():
                param.copy_(0.1 * torch.randn(param.shape, generator=generator))
        v2 = FeatureExtractorV2(video_proj, GEMMA4_HIDDEN_SIZE, audio_proj)
        v1 = FeatureExtractorV1(v1_proj, is_av=True)
        for row, (states, mask) in enumerate(encoded):  # the embeddings processor runs per prompt (trap 11)
            video, audio = v2(states, mask)
            tensors[f"v2_video_{row}"], tensors[f"v2_audio_{row}"] = video, audio
            tensors[f"v1_{row}"] = v1(states, mask)[0]
    tensors.update(
        {
            "v2_video_proj.weight": video_proj.weight.detach(),
            "v2_video_proj.bias": video_proj.bias.detach(),
            "v2_audio_proj.weight": audio_proj.weight.detach(),
            "v2_audio_proj.bias": audio_proj.bias.detach(),
            "v1_proj.weight": v1_proj.weight.detach(),
        }
    )
    return {k: v.contiguous() for k, v in tensors.items()}, {"prompts": PROMPTS, "max_length": MAX_LENGTH}


def metadata_logic() -> dict:
    from ltx_pipelines.distilled import ANCESTRAL_SAMPLER_SINCE_VERSION
    from ltx_pipelines.utils.constants import detect_model_version, detect_params

    rows = {}
    with tempfile.TemporaryDirectory() as directory:
        for version in VERSIONS:
            path = Path(directory) / f"v{version or 'none'}.safetensors"
            header = {"model_version": version} if version else {}
            save_file({"x": torch.zeros(1)}, str(path), metadata=header)
            params = detect_params(str(path))
            rows[version] = {
                "parsed": list(detect_model_version(str(path))),
                "num_inference_steps": params.num_inference_steps,
                "default_image_crf": params.default_image_crf,
                "video_stg_blocks": list(params.video_guider_params.stg_blocks),
                "distilled_ancestral": detect_model_version(str(path)) >= ANCESTRAL_SAMPLER_SINCE_VERSION,
            }
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write (tests/goldens/pipeline_math)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)

    guidance_tensors, guidance_params = guidance()
    save_file(guidance_tensors, str(args.out / "g5_guidance.safetensors"))
    conditioning_tensors, conditioning_settings = conditioning()
    save_file(conditioning_tensors, str(args.out / "g7_conditioning.safetensors"))
    text_tensors, text_settings = text()
    save_file(text_tensors, str(args.out / "g8_text.safetensors"))
    (args.out / "g16_metadata.json").write_text(json.dumps(metadata_logic(), indent=1) + "\n")
    import transformers

    golden = {
        "generator": "scripts/goldens/pipeline_math.py",
        "oracle": {
            "ltx-core": metadata.version("ltx-core"),
            "ltx-pipelines": metadata.version("ltx-pipelines"),
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "python": sys.version.split()[0],
        },
        "files": {
            "g5_guidance.safetensors": {"spec": "G5", "settings": guidance_params, "tolerance": "exact (bf16)"},
            "g7_conditioning.safetensors": {
                "spec": "G7",
                "settings": conditioning_settings,
                "tolerance": "exact (rtol 0, atol 0)",
            },
            "g8_text.safetensors": {
                "spec": "G8, G9",
                "settings": text_settings,
                "tolerance": "ids/mask exact; hidden states and features fp32 atol 1e-5",
            },
            "g16_metadata.json": {"spec": "G16", "settings": {"model_versions": VERSIONS}, "tolerance": "exact"},
        },
    }
    (args.out / "golden.json").write_text(json.dumps(golden, indent=1) + "\n")


if __name__ == "__main__":
    main()
