"""Golden values for the HDR colour math (ltx2_diffusers/utils/hdr.py): ltx-core / ltx-pipelines 1.2.0's HDR transfers,
primaries, HLG mapping and 10-bit Y'CbCr packing on fixed inputs, and one EXR frame written by its EXR writer.

Run with the 1.2.0 oracle venv (it imports ltx_core / ltx_pipelines 1.2.0 and OpenImageIO; the test does not):

    ORACLE_PYTHON scripts/goldens/hdr.py tests/goldens/hdr

Writes hdr.safetensors (inputs "in.<name>", outputs "out.<name>"; a few KB), reference_frame.exr (4x6, half,
written by ltx-pipelines' `save_exr_tensor` with ACEScg tags; its pixels are "in.exr_frame"), and stage.safetensors:
`HDRICLoraPipeline`'s stage 1 (`DiffusionStage` called with `video=ModalitySpec(context, [VideoConditionByReferenceLatent
(latent, downscale_factor=2)])`, no audio, `SimpleDenoiser(video_context, None)`, a `GaussianNoiser` seeded by the
pipeline's seed, the 8 distilled sigmas) on a tiny seeded audio-video model (2 blocks, LTX-2 layout; the IC-LoRA is
weights, left out), in float32 on the CPU, then its stage 2 (`_run_stage2_phase`: the default 2x2x2 tiling clamped to
a 3x6x6 latent, each tile refined with the input cut to it and noise seeded seed + tile index, the tiles blended):
the weights under their original names (bf16-exact values), the inputs, both stages' video latents, and the default
tiling's tiles (bounds and blend weights) on several latent grids. Only tensors are written; nothing of ltx-core or ltx-pipelines is copied.
"""

import json
import sys
from contextlib import nullcontext
from pathlib import Path
from types import SimpleNamespace

import torch
from ltx_core.color.hlg import HlgGpuConverter
from ltx_core.color.primaries import Primaries
from ltx_core.components.noisers import GaussianNoiser
from ltx_core.conditioning import VideoConditionByReferenceLatent
from ltx_core.hdr import HDRTransfer
from ltx_core.model.transformer import LTXModelConfigurator, X0Model
from ltx_core.tiling import create_tiles, identity_mapping_operation
from ltx_core.types import VIDEO_SCALE_FACTORS
from ltx_pipelines.hdr_ic_lora import (
    STAGE2_SIGMAS,
    STAGE2_TILINGS,
    HDRICLoraPipeline,
    HdrLoraConfig,
    _clamp_tile_to_latent,
)
from ltx_pipelines.utils.blocks import DiffusionStage
from ltx_pipelines.utils.constants import DISTILLED_SIGMA_VALUES
from ltx_pipelines.utils.denoisers import SimpleDenoiser
from ltx_pipelines.utils.media_io.color_config import HDRColorSpace, decode_hdr_video
from ltx_pipelines.utils.media_io.exr import save_exr_tensor
from ltx_pipelines.utils.media_io.range_map import to_vae_range
from ltx_pipelines.utils.media_io.resize import resize_and_reflect_pad
from ltx_pipelines.utils.types import ModalitySpec
from safetensors.torch import save_file
from seeded import LTX_CORE_FIXED, fill_seeded_  # scripts/goldens/seeded.py (the script's own folder is on sys.path)

# The tiny audio-video transformer: ltx-core's required keys plus small sizes (LTX-2 layout, captions projected inside)
SECTION = {
    **LTX_CORE_FIXED,
    "num_attention_heads": 2, "attention_head_dim": 8, "in_channels": 128, "out_channels": 128, "num_layers": 2,
    "cross_attention_dim": 16, "audio_num_attention_heads": 2, "audio_attention_head_dim": 4,
    "audio_in_channels": 128, "audio_out_channels": 128, "audio_cross_attention_dim": 8, "caption_channels": 32,
}  # fmt: skip
STAGE = {"width": 128, "height": 128, "frames": 17, "fps": 24.0, "seed": 10, "factor": 2, "text_tokens": 6}
TILE_GRIDS = [(3, 8, 8), (3, 4, 4), (5, 9, 12), (2, 1, 5), (1, 2, 2), (10, 14, 9)]  # latent (F', H', W')


def main(folder: str) -> None:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    # Light around both curves' breaks, 18 % grey, white and far highlights; codes over the whole [0, 1].
    linear = torch.cat(
        [torch.tensor([-0.5, 0.0, 0.0078125, 0.0105, 0.010591, 0.0107, 0.18, 1.0, 16.0, 55.0, 300.0]),
         torch.logspace(-4, 2, 53)]
    )  # fmt: skip
    codes = torch.linspace(0.0, 1.0, 65)
    rgb = torch.rand(2, 4, 6, 3, generator=generator) * 4.0  # (F, H, W, 3) linear Rec.709, some highlights
    rgb[0, 0, 0] = torch.tensor([-0.1, 0.5, 12.0])
    chw = rgb.permute(0, 3, 1, 2)  # the reference's primaries take (..., C, H, W)
    decoded = torch.rand(2, 4, 6, 3, generator=generator)  # a VAE decode in [0, 1], (F, H, W, C)

    tensors = {
        "in.linear": linear,
        "in.codes": codes,
        "in.rgb": rgb,
        "in.decoded": decoded,
        "out.logc3_encode": HDRTransfer.LOGC3.compress(linear),
        "out.logc3_decode": HDRTransfer.LOGC3.decompress(codes),
        "out.acescct_encode": HDRTransfer.ACESCCT.compress(linear),
        "out.acescct_decode": HDRTransfer.ACESCCT.decompress(codes),
        "out.rec709_to_acescg": Primaries.REC709.to(Primaries.ACESCG, chw).permute(0, 2, 3, 1),
        "out.acescg_to_rec709": Primaries.ACESCG.to(Primaries.REC709, chw).permute(0, 2, 3, 1),
        "out.rec709_to_rec2020": Primaries.REC709.to_rec2020(chw).permute(0, 2, 3, 1),
        "out.acescg_to_rec2020": Primaries.ACESCG.to_rec2020(chw).permute(0, 2, 3, 1),
        # The HDR IC-LoRA pipeline's output: LogC3 decode of the VAE's [0, 1] codes, Rec.709, clamped at 0
        "out.logc3_to_linear": decode_hdr_video(decoded, HDRTransfer.LOGC3),
        # retake --hdr: scene-linear sources into the ACEScct working space, and back
        "out.srgb_linear_to_working": HDRTransfer.ACESCCT.to_working_space(
            chw, source_primaries=Primaries.REC709
        ).permute(0, 2, 3, 1),
        "out.acescg_to_working": HDRTransfer.ACESCCT.to_working_space(chw, source_primaries=Primaries.ACESCG).permute(
            0, 2, 3, 1
        ),
        "out.acescct_to_acescg_linear": decode_hdr_video(decoded, HDRTransfer.ACESCCT, Primaries.ACESCG),
    }
    # The HDR IC-LoRA's input frames: `load_video_conditioning_hdr` per frame (shrink to fit, reflect / replicate pad
    # at the bottom and right, /255, clamp, to [-1, 1]), at target sizes that shrink, only pad, and need replication
    sdr = torch.randint(0, 256, (2, 20, 30, 3), generator=generator, dtype=torch.uint8)
    tensors["in.sdr_frames"] = sdr
    for height, width in ((16, 16), (32, 32), (24, 40), (48, 48)):
        frames = [to_vae_range((resize_and_reflect_pad(f.float(), height, width) / 255.0).clamp(0, 1)) for f in sdr]
        tensors[f"out.reflect_pad.{height}x{width}"] = torch.cat(frames, dim=2)
    converter = HlgGpuConverter.create(Primaries.REC709, device=torch.device("cpu"))
    tensors["out.hlg_signal"] = converter.to_hlg_signal_(chw).permute(0, 2, 3, 1)
    y, u, v = converter(rgb)
    tensors |= {"out.hlg_y": y.to(torch.int32), "out.hlg_u": u.to(torch.int32), "out.hlg_v": v.to(torch.int32)}
    tensors = {name: t.contiguous() for name, t in tensors.items()}
    tensors["in.exr_frame"] = rgb[1].clone()
    assert HDRColorSpace.ACESCG.exr_output_tags()[1] == "ACEScg"
    save_exr_tensor(rgb[1], out / "reference_frame.exr", True, Primaries.ACESCG, "ACEScg")
    save_file(tensors, str(out / "hdr.safetensors"), metadata={"source": "ltx-core / ltx-pipelines 1.2.0"})


def tiny_model() -> torch.nn.Module:
    """The audio-video model of SECTION, every tensor from a seeded N(0, 1), scaled for O(1) activations, bf16-exact."""
    model = LTXModelConfigurator.from_metadata({"config": {"transformer": SECTION}})
    fill_seeded_(model, 0)
    return model.float().eval()


class TinyStage(DiffusionStage):
    """`DiffusionStage` around an already built model: only the transformer's construction differs."""

    def __init__(self, model: torch.nn.Module):  # noqa: D107 (the parent's fields that __call__ reads)
        self._model = X0Model(model).eval()
        self._dtype, self._device = torch.float32, torch.device("cpu")
        self._transformer_builder = SimpleNamespace(checkpoint="tiny seeded model")
        self.video_scale_factors = VIDEO_SCALE_FACTORS  # 8x time, 32x space

    @property
    def supports_generated_keyframes(self) -> bool:
        return False

    def _transformer_ctx(self, **kwargs: object):
        return nullcontext(self._model)


def stage_golden(out: Path) -> None:
    """HDRICLoraPipeline.__call__'s stage 1, from its conditionings on, with the tiny stage."""
    model, s = tiny_model(), STAGE
    generator = torch.Generator().manual_seed(1)
    context = torch.randn(1, s["text_tokens"], SECTION["caption_channels"], generator=generator)
    latent_frames = (s["frames"] - 1) // 8 + 1
    size = (s["height"] // 32 // s["factor"], s["width"] // 32 // s["factor"])
    reference = torch.randn(1, 128, latent_frames, *size, generator=generator)  # an encoded input video
    sigmas = torch.tensor(DISTILLED_SIGMA_VALUES, dtype=torch.float32)
    with torch.inference_mode():
        video_state, audio_state = TinyStage(model)(
            denoiser=SimpleDenoiser(context, None),
            sigmas=sigmas,
            noiser=GaussianNoiser(generator=torch.Generator(device="cpu").manual_seed(s["seed"])),
            width=s["width"],
            height=s["height"],
            frames=s["frames"],
            fps=s["fps"],
            video=ModalitySpec(
                context=context,
                conditionings=[VideoConditionByReferenceLatent(latent=reference, downscale_factor=s["factor"])],
            ),
        )
    assert audio_state is None
    tensors = {f"model.diffusion_model.{k}": v.bfloat16().contiguous() for k, v in model.state_dict().items()}
    tensors |= {
        "input.video_context": context,
        "input.reference_latent": reference,
        "input.sigmas": sigmas,
        "output.video_latent": video_state.latent.clone().contiguous(),
    }
    # Stage 2 (`_run_stage2_phase`, the default tiling clamped to the latent) on a 3x6x6 latent, input at 1/2 size
    pipeline = HDRICLoraPipeline.__new__(HDRICLoraPipeline)  # only the fields _run_stage2_phase reads
    pipeline.stage_2, pipeline.device, pipeline.dtype = TinyStage(model), torch.device("cpu"), torch.float32
    pipeline._hdr_config = HdrLoraConfig(reference_downscale_factor=s["factor"])
    upsampled = torch.randn(1, 128, latent_frames, 6, 6, generator=generator)
    full_reference = torch.randn(1, 128, latent_frames, 3, 3, generator=generator)
    stage_2_sigmas = torch.tensor(STAGE2_SIGMAS[0], dtype=torch.float32)
    with torch.inference_mode():
        refined = pipeline._run_stage2_phase(
            latent=upsampled,
            conditionings=[VideoConditionByReferenceLatent(latent=full_reference, downscale_factor=s["factor"])],
            tiling=_clamp_tile_to_latent(STAGE2_TILINGS[0], tuple(upsampled.shape[2:])),
            sigmas=stage_2_sigmas,
            v_ctx=context,
            frame_rate=s["fps"],
            seed=s["seed"],
        )
    tensors |= {
        "input.upsampled_latent": upsampled,
        "input.full_reference_latent": full_reference,
        "input.stage_2_sigmas": stage_2_sigmas,
        "output.refined_latent": refined.clone().contiguous(),
    }
    # The tiles of the default stage-2 tiling on several latent grids: bounds (N, 6) and blend weights, flattened
    for grid in TILE_GRIDS:
        tiling = _clamp_tile_to_latent(STAGE2_TILINGS[0], grid)
        splitters = list(tiling.to_splitters(VIDEO_SCALE_FACTORS, causal_temporal=False))
        tiles = create_tiles(torch.Size(grid), splitters=splitters, mappers=[identity_mapping_operation] * 3)
        name = "x".join(map(str, grid))
        tensors[f"tiles.{name}.bounds"] = torch.tensor(
            [[c for s_ in t.in_coords for c in (s_.start, s_.stop)] for t in tiles]
        )
        tensors[f"tiles.{name}.weights"] = torch.cat([t.blend_mask.reshape(-1) for t in tiles])
    metadata = {"config": json.dumps({"transformer": SECTION}), "stage": json.dumps(STAGE)}
    save_file(tensors, str(out / "stage.safetensors"), metadata=metadata)
    print("stage video latent", tuple(video_state.latent.shape), "mean |x|", video_state.latent.abs().mean().item())
    print("refined latent", tuple(refined.shape), "mean |x|", refined.abs().mean().item())


if __name__ == "__main__":
    main(sys.argv[1])
    stage_golden(Path(sys.argv[1]))
