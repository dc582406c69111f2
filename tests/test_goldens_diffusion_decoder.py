"""ltx-core 1.2.0 goldens G10-G12 (scripts/goldens/diffusion_decoder.py): the duration head, the diffusion video
decoder (weights in the original checkpoint layout, gates and fused qkv included, loaded through our key maps) and
the reference's neighbourhood attention. The tensors are committed; ltx-core is not needed."""

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from ltx2_diffusers.loaders import diffusion_decoder_keys, duration_head_keys
from ltx2_diffusers.models.diffusion_video_decoder import LTX2VideoDiffusionDecoderModel
from ltx2_diffusers.models.duration_head import LTX2DurationHead, frames_for_seconds
from ltx2_diffusers.models.neighborhood_attention import neighborhood_attention_torch
from ltx2_diffusers.pipelines.diffusion_decoding import DiffusionDecodeTiling, diffusion_decode_video

GOLDENS = Path(__file__).parent / "goldens" / "diffusion_decoder"
TILING = DiffusionDecodeTiling(frames=16, frames_overlap=8, width=64, width_overlap=32)  # the generator's tiling


def _load(name: str) -> tuple[dict[str, torch.Tensor], dict]:
    path = GOLDENS / f"{name}.safetensors"
    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
    return load_file(str(path)), json.loads(metadata["config"])


@pytest.fixture(scope="module")
def g11():
    tensors, config = _load("g11_decoder")
    weights = {k.removeprefix("weights."): v.float() for k, v in tensors.items() if k.startswith("weights.")}
    state_dict = diffusion_decoder_keys.original_to_diffusers(weights)

    def model(output_type: str, steps: int) -> LTX2VideoDiffusionDecoderModel:
        vae = {"_class_name": "CausalDiffusionVAE", "model_output_type": output_type,
               "decoder": {**config["decoder"], "default_num_inference_steps": steps}}
        decoder = LTX2VideoDiffusionDecoderModel(**diffusion_decoder_keys.config_from_original(vae))
        decoder.load_state_dict(state_dict, strict=True)
        return decoder.eval()

    return tensors, model


def _check_video(golden: dict[str, torch.Tensor], name: str, pixels: torch.Tensor) -> None:
    """Ours (B=1, 3, F, H, W) in [-1, 1] against the reference's decode_video [F, H, W, 3] in [0, 1]."""
    video = ((pixels[0].permute(1, 2, 3, 0) + 1) / 2).clamp(0, 1)
    assert list(video.shape) == golden[f"{name}.shape"].tolist()
    torch.testing.assert_close(video[:, ::8, ::16], golden[f"{name}.subsample"], atol=2e-5, rtol=0)
    flat = video.double().flatten()
    weights = torch.arange(flat.numel(), dtype=torch.float64) / flat.numel()
    sums = torch.stack([flat.sum(), (flat**2).sum(), (flat * weights).sum()])
    torch.testing.assert_close(sums, golden[f"{name}.sums"], atol=2e-3, rtol=0)


@pytest.mark.parametrize(("name", "latent", "output_type", "steps", "tiled", "border"), [
    ("v2.small", "small", "v", 2, False, "replicate"),
    ("v2.large", "large", "v", 2, False, "replicate"),
    ("v2.large_tiled", "large", "v", 2, True, "replicate"),
    ("x0_1.small", "small", "x0", 1, False, "replicate"),
    ("x0_1.large_tiled", "large", "x0", 1, True, "replicate"),
    ("combined.v2.small", "small", "v", 2, False, "shift"),
    ("combined.v2.large_tiled", "large", "v", 2, True, "shift"),
])
@torch.no_grad()
def test_diffusion_decoder_matches_ltx_core(g11, name, latent, output_type, steps, tiled, border):
    """G11: small latents padded to the kernels' minimum, N=2 (v) and N=1 (x0), untiled and tiled in time and width;
    "replicate" = ltx-pipelines' default decode mode (chunked_eager), "shift" = its combined pathway."""
    golden, model = g11
    pixels = diffusion_decode_video(model(output_type, steps), golden[f"latent.{latent}"],
                                    torch.Generator().manual_seed(4), tiling=TILING if tiled else None,
                                    width_border=border)
    _check_video(golden, name, pixels)


@torch.no_grad()
def test_diffusion_decoder_stage4_input_matches_ltx_core(g11):
    golden, model = g11
    decoder = model("v", 2)
    small = golden["latent.small"]  # (1, 16, 2, 2, 2): padded to 3x3x3 (H, W after), then 2 ghost frames
    padded = torch.cat([small, small[:, :, -1:]], 2)
    padded = torch.cat([padded, padded[:, :, :, -1:]], 3)
    padded = torch.cat([padded, padded[:, :, :, :, -1:]], 4)
    padded = torch.cat([padded, padded[:, :, -1:].expand(-1, -1, 2, -1, -1)], 2)
    latents = padded * decoder.latents_std.view(1, -1, 1, 1, 1) + decoder.latents_mean.view(1, -1, 1, 1, 1)
    features = decoder.decoder.stages_1_to_3(latents)
    assert features.shape == (1, 17, 12, 12, 16)
    torch.testing.assert_close(features[:, :, :2, :2], golden["v2.small_padded.stage4_input"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("kernel", [(3, 3, 3), (3, 5, 5)])
def test_neighborhood_attention_matches_ltx_core(kernel):
    """G12: the reference's eager na3d (NATTEN semantics) on (1, 5, 6, 7, 2 heads, 8)."""
    golden, _ = _load("g12_neighborhood_attention")
    out = neighborhood_attention_torch(golden["q"] * 8**-0.5, golden["k"], golden["v"], kernel)
    torch.testing.assert_close(out, golden["out." + "x".join(map(str, kernel))], atol=1e-6, rtol=0)


@torch.no_grad()
def test_duration_head_matches_ltx_core():
    """G10: seconds from both, video-only and audio-only contexts; frame counts per fps and range."""
    golden, _ = _load("g10_duration_head")
    original = {k.removeprefix("weights."): v for k, v in golden.items() if k.startswith("weights.")}
    config = duration_head_keys.config_from_original({"duration_head": {"num_pooler_heads": 4}}, original)
    assert config == {"video_cross_attention_dim": 64, "audio_cross_attention_dim": 32, "pooler_hidden_dim": 32,
                      "num_queries": 2, "num_pooler_heads": 4, "mlp_hidden_dim": 16}
    head = LTX2DurationHead(**config).eval()
    head.load_state_dict(duration_head_keys.original_to_diffusers(original), strict=True)
    video, audio = golden["video_context"], golden["audio_context"]
    for name, args in (("both", (video, audio)), ("video", (video, None)), ("audio", (None, audio))):
        torch.testing.assert_close(head(*args), golden[f"seconds.{name}"], atol=1e-6, rtol=1e-6)
    seconds = golden["seconds.both"].item()
    for fps, low, high, frames in golden["frames.fps_min_max_frames"].tolist():
        assert frames_for_seconds(seconds, fps, round(low * fps), round(high * fps)) == int(frames)
