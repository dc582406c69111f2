"""Whole tiny runs of the LTX-2 and LTX-2.3 pipelines against ltx-pipelines 1.2.0, without the oracle.

tests/goldens/runs12/ltx{20,23}.safetensors (scripts/goldens/runs12.py) hold a tiny seeded audio-video transformer of
the layout (original names, bf16-exact), seeded contexts and image latents, latent statistics, sigmas, the seed and
1.2.0's stage latents, all with an image at frame 0 at strength 0.8:
  - one_stage.*: `TI2VidOneStagePipeline`'s guided stage (CFG, STG at block 1, modality isolation, rescale; Euler),
    and one_stage_bf16.*: the same in bfloat16, compared bit for bit where the kernels are the generator's;
  - distilled.*: `DistilledPipeline`: stage 1 at half size, the x2 upsampler's latent, stage 2 at full size.
Our pipelines run from the same weights, contexts (`prompt_embeds`), sigmas and seed, with the image latents put in
for the video encoder's (`encode_conditions`), and the upsampler's weights from the generator's closed form
(`formula_weight`). Tolerance: the 1.0.0 parity tests' (atol 5e-5 on O(1) latents in float32, bit for bit in bf16).
The distilled runs have no bf16 golden: ltx-core's unguided pass hands `patchify_proj` the latent as a channels-first
strided view, and a bf16 GEMM on that layout rounds 1 ulp away from one on a contiguous tensor (ours), which 11 steps
carry to about 0.04 - a memory-layout artifact, not a rule of 1.2.0 (the guided pass's concatenation is contiguous).
"""

import copy
import json
import math
import zlib
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from ltx2_diffusers.loaders import metadata as md
from ltx2_diffusers.loaders.transformer_keys import original_to_diffusers_keys
from ltx2_diffusers.models.latent_upsampler import LTX2LatentUpsamplerModel
from ltx2_diffusers.models.transformer_ltx2 import LTX2VideoTransformer3DModel
from ltx2_diffusers.pipelines import denoising, pipeline_ltx2_av, pipeline_ltx2_av_two_stage, refinement
from ltx2_diffusers.pipelines.denoising import VideoCondition, prepare_latents
from ltx2_diffusers.pipelines.guidance import GuidanceScales
from ltx2_diffusers.pipelines.pipeline_base import scheduler_for_kind
from ltx2_diffusers.pipelines.pipeline_ltx2_av import LTX2AVPipeline
from ltx2_diffusers.pipelines.pipeline_ltx2_av_two_stage import LTX2AVTwoStagePipeline
from ltx2_diffusers.pipelines.text_encoding import PromptEmbeddings
from ltx2_diffusers.pipelines.tiny import build_tiny_pipeline

GOLDENS = Path(__file__).parent / "goldens" / "runs12"
TOLERANCE = dict(rtol=0, atol=5e-5)
VERSIONS = {"20": "2.0", "23": "2.3"}


def formula_weight(name: str, shape: tuple[int, ...]) -> torch.Tensor:
    """The generator's upsampler weights (scripts/goldens/runs12.py, `formula_weight`), repeated here: a closed form
    of the parameter's name, shape and flat index."""
    index = torch.arange(math.prod(shape), dtype=torch.float64)
    wave = torch.sin(0.7 * index + (zlib.crc32(name.encode()) % 1000) / 100)
    if "norm" in name and name.endswith("weight"):
        values = 1 + 0.1 * wave
    elif name.endswith("bias"):
        values = 0.1 * wave
    else:
        values = 0.5 / math.prod(shape[1:]) ** 0.5 * wave
    return values.reshape(shape).float()


@pytest.fixture(scope="module", params=list(VERSIONS))
def golden(request) -> dict:
    """{tensors, metadata, version, pipe (one stage, the golden's transformer), upsampler}."""
    with safe_open(GOLDENS / f"ltx{request.param}.safetensors", "pt") as f:
        metadata = f.metadata()
        tensors = {k: f.get_tensor(k).float() for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    config = md.transformer_config_from_original(md.parse_original_metadata(metadata))
    weights = {k: v for k, v in tensors.items() if k.startswith("model.diffusion_model.")}
    transformer = LTX2VideoTransformer3DModel(**config).eval()
    mapping = original_to_diffusers_keys(weights, config, set(transformer.state_dict()))
    transformer.load_state_dict({mapping[k]: v for k, v in weights.items()}, strict=True)
    components = build_tiny_pipeline(seed=0, model_version=VERSIONS[request.param]).components
    pipe = LTX2AVPipeline(**{**components, "transformer": transformer})
    pipe.set_progress_bar_config(disable=True)
    assert pipe.model_version == VERSIONS[request.param]
    pipe.vae.latents_mean.copy_(tensors["input.latents_mean"])
    pipe.vae.latents_std.copy_(tensors["input.latents_std"])
    upsampler = LTX2LatentUpsamplerModel(**md.upsampler_config_from_original(json.loads(metadata["upsampler"])))
    with torch.no_grad():
        for name, param in upsampler.named_parameters():
            param.copy_(formula_weight(name, tuple(param.shape)))
    return dict(tensors=tensors, metadata=metadata, pipe=pipe, upsampler=upsampler.eval())


def embeds(tensors: dict, prefix: str = "") -> PromptEmbeddings:
    video, audio = tensors[f"input.{prefix}video_context"], tensors[f"input.{prefix}audio_context"]
    return PromptEmbeddings(video, audio, torch.ones(1, video.shape[1], dtype=torch.int64))


def scales(metadata: dict, key: str) -> GuidanceScales:
    guider = json.loads(metadata[key])
    return GuidanceScales(cfg=guider["cfg_scale"], stg=guider["stg_scale"], rescale=guider["rescale_scale"],
                          modality=guider["modality_scale"], stg_blocks=tuple(guider["stg_blocks"]))  # fmt: skip


def put_image(monkeypatch, module, golden: dict, latents: dict[int, str]) -> None:
    """The module's `encode_conditions` gives the golden's image latent for the asked height (a KeyError for any
    other), at frame 0 with the golden's strength: the video encoder is not part of these goldens."""
    tensors, strength = golden["tensors"], float(golden["metadata"]["image_strength"])

    def encode_conditions(vae, image, image_strength, keyframes, height, width, crf, device):
        return [VideoCondition(tensors[f"input.{latents[height]}"], 0, strength)]

    monkeypatch.setattr(module, "encode_conditions", encode_conditions)


def common(golden: dict) -> dict:
    tensors, metadata = golden["tensors"], golden["metadata"]
    return dict(
        prompt_embeds=embeds(tensors),
        num_frames=int(metadata["num_frames"]),
        frame_rate=float(metadata["frame_rate"]),
        generator=torch.Generator().manual_seed(int(tensors["input.seed"])),
        output_type="latent",
    )


def run_one_stage(golden: dict, monkeypatch, **kwargs):
    tensors, metadata, pipe = golden["tensors"], golden["metadata"], golden["pipe"]
    height, width = int(metadata["height"]), int(metadata["width"])
    put_image(monkeypatch, pipeline_ltx2_av, golden, {height: "one_stage.image_latent"})
    pipe.scheduler = scheduler_for_kind("dev")
    return pipe(
        negative_prompt_embeds=embeds(tensors, "negative_"),
        video_guidance=scales(metadata, "video_guider"),
        audio_guidance=scales(metadata, "audio_guider"),
        height=height,
        width=width,
        sigmas=tensors["input.one_stage.sigmas"].tolist(),
        **common(golden),
        **kwargs,
    )


def assert_golden(got: torch.Tensor, tensors: dict, key: str) -> None:
    expected = tensors[f"output.{key}"]
    assert expected.abs().mean() > 0.5  # O(1) values: the tolerance means something
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, **TOLERANCE, msg=lambda m: f"{key}: {m}")


def test_one_stage_image_to_video_equals_ltx_pipelines_1_2(golden, monkeypatch):
    out = run_one_stage(golden, monkeypatch)
    assert_golden(out.frames, golden["tensors"], "one_stage.video_latent")
    assert_golden(out.audio, golden["tensors"], "one_stage.audio_latent")


def test_reference_1_0_differs_on_the_image_conditioned_run(golden, monkeypatch):
    """The golden sees 1.2.0's changes: 1.0.0's rules (partner-sigma A<->V AdaLN, ...) land far from it."""
    out = run_one_stage(golden, monkeypatch, reference="1.0")
    expected = golden["tensors"]
    assert (out.frames - expected["output.one_stage.video_latent"]).abs().max() > 1e-2
    assert (out.audio - expected["output.one_stage.audio_latent"]).abs().max() > 1e-2


def bf16_golden(golden: dict) -> dict:
    """The golden with a bf16 copy of the pipeline and bf16 inputs (the encoders' dtype in a bf16 pipeline), after
    checking that this machine has the generator's bf16 kernels (else a skip: bf16 rounding is kernel-specific, and
    these 3 guided steps carry one changed rounding to differences of about 0.3)."""
    kernels = json.loads(golden["metadata"]["bf16_kernels"])
    here = {"torch": torch.__version__.split("+")[0], "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    if here != kernels:
        pytest.skip(f"the bf16 golden is bit for bit with {kernels}; this machine has {here}")
    pipe = LTX2AVPipeline(**{**golden["pipe"].components, "transformer": copy.deepcopy(golden["pipe"].transformer)})
    pipe.transformer.to(torch.bfloat16)
    pipe.set_progress_bar_config(disable=True)
    inputs = {k: v.bfloat16() if k.startswith("input.") and "sigmas" not in k else v
              for k, v in golden["tensors"].items()}  # fmt: skip
    return {**golden, "pipe": pipe, "tensors": inputs}


def test_one_stage_in_bf16_equals_ltx_pipelines_1_2_bit_for_bit(golden, monkeypatch):
    """1.2.0 in bf16: guidance combined in float32, video positions kept float32 (1.0.0 rounded them to bf16, which
    moves every video RoPE angle: with that rounding the run lands about 1 away)."""
    bf16 = bf16_golden(golden)
    out = run_one_stage(bf16, monkeypatch)
    expected = golden["tensors"]
    for got, key in ((out.frames, "video"), (out.audio, "audio")):
        assert got.dtype == torch.bfloat16
        torch.testing.assert_close(got.float(), expected[f"output.one_stage_bf16.{key}_latent"], rtol=0, atol=0)
    monkeypatch.setattr(denoising, "video_positions_dtype", lambda dtype, reference: dtype)  # 1.0.0's rounding
    rounded = run_one_stage(bf16, monkeypatch)
    assert (rounded.frames.float() - expected["output.one_stage_bf16.video_latent"]).abs().max() > 0.1


def test_video_positions_stay_float32_in_a_bf16_state_under_1_2():
    """Kernel-free check of the bf16 golden's finding: ltx-core 1.2.0's `create_initial_state` no longer rounds the
    video positions to the latent dtype; under reference="1.0" they are rounded as 1.0.0 did."""
    kwargs = dict(generator=torch.Generator().manual_seed(0), dtype=torch.bfloat16, device=torch.device("cpu"),
                  video_channels=128, audio_channels=8, audio_mel_bins=16)  # fmt: skip
    video, _ = prepare_latents(1, 64, 96, 17, 24.0, **kwargs)
    old, _ = prepare_latents(
        1, 64, 96, 17, 24.0, **{**kwargs, "generator": torch.Generator().manual_seed(0)}, reference="1.0"
    )
    assert video.positions.dtype == torch.float32 and video.latent.dtype == torch.bfloat16
    assert torch.equal(old.positions.float(), video.positions.bfloat16().float())
    assert not torch.equal(old.positions.float(), video.positions)  # times like 1/24 s are not bf16 values
    assert video.positions[0, 0, 6:, 0].unique().tolist() == pytest.approx([1 / 24, 9 / 24], abs=1e-7)


def test_distilled_two_stage_equals_ltx_pipelines_1_2(golden, monkeypatch):
    """`DistilledPipeline` as our two-stage pipeline with a distilled scheduler: stage 1 at half size, the x2
    upsampler around the VAE's latent statistics, stage 2 at full size; each stage's latents compared."""
    tensors, metadata = golden["tensors"], golden["metadata"]
    height, width = int(metadata["two_stage_height"]), int(metadata["two_stage_width"])
    put_image(monkeypatch, pipeline_ltx2_av_two_stage, golden,
              {height // 2: "distilled.stage_1_image_latent", height: "distilled.stage_2_image_latent"})  # fmt: skip
    seen = {}

    def upsample_latents(upsampler, latents, mean, std):
        seen["stage_1"] = latents.clone()
        seen["upscaled"] = real_upsample(upsampler, latents, mean, std)
        return seen["upscaled"]

    real_upsample = refinement.upsample_latents
    monkeypatch.setattr(refinement, "upsample_latents", upsample_latents)
    captured = {}
    real_refine = refinement.refine_latents

    def refine_latents(transformer, upsampler, video_latents, audio_latents, *args, **kwargs):
        captured["stage_1_audio"] = audio_latents.clone()
        return real_refine(transformer, upsampler, video_latents, audio_latents, *args, **kwargs)

    monkeypatch.setattr(pipeline_ltx2_av_two_stage, "refine_latents", refine_latents)
    two = LTX2AVTwoStagePipeline(**{**golden["pipe"].components, "latent_upsampler": golden["upsampler"]})
    two.set_progress_bar_config(disable=True)
    two.scheduler = scheduler_for_kind("distilled")
    out = two(height=height, width=width, **common(golden))
    assert_golden(seen["stage_1"], tensors, "distilled.stage_1.video_latent")
    assert_golden(captured["stage_1_audio"], tensors, "distilled.stage_1.audio_latent")
    expected_upscaled = tensors["output.distilled.upscaled_video_latent"]
    assert expected_upscaled.abs().mean() > 0.3 and seen["upscaled"].shape == expected_upscaled.shape
    torch.testing.assert_close(seen["upscaled"], expected_upscaled, **TOLERANCE)
    assert_golden(out.frames, tensors, "distilled.stage_2.video_latent")
    assert_golden(out.audio, tensors, "distilled.stage_2.audio_latent")
