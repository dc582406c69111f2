"""Golden values for the HDR colour math (ltx2_diffusers/utils/hdr.py): ltx-core / ltx-pipelines 1.2.0's HDR transfers,
primaries, HLG mapping and 10-bit Y'CbCr packing on fixed inputs, and one EXR frame written by its EXR writer.

Run with the 1.2.0 oracle venv (it imports ltx_core / ltx_pipelines 1.2.0 and OpenImageIO; the test does not):

    /work/oracle12/venv/bin/python scripts/goldens/hdr.py tests/goldens/hdr

Writes hdr.safetensors (inputs "in.<name>", outputs "out.<name>"; a few KB) and reference_frame.exr (4x6, half,
written by ltx-pipelines' `save_exr_tensor` with ACEScg tags; its pixels are "in.exr_frame").
"""

import sys
from pathlib import Path

import torch
from ltx_core.color.hlg import HlgGpuConverter
from ltx_core.color.primaries import Primaries
from ltx_core.hdr import HDRTransfer
from ltx_pipelines.utils.media_io.color_config import HDRColorSpace, decode_hdr_video
from ltx_pipelines.utils.media_io.exr import save_exr_tensor
from safetensors.torch import save_file


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
    converter = HlgGpuConverter.create(Primaries.REC709, device=torch.device("cpu"))
    tensors["out.hlg_signal"] = converter.to_hlg_signal_(chw).permute(0, 2, 3, 1)
    y, u, v = converter(rgb)
    tensors |= {"out.hlg_y": y.to(torch.int32), "out.hlg_u": u.to(torch.int32), "out.hlg_v": v.to(torch.int32)}
    tensors = {name: t.contiguous() for name, t in tensors.items()}
    tensors["in.exr_frame"] = rgb[1].clone()
    assert HDRColorSpace.ACESCG.exr_output_tags()[1] == "ACEScg"
    save_exr_tensor(rgb[1], out / "reference_frame.exr", True, Primaries.ACESCG, "ACEScg")
    save_file(tensors, str(out / "hdr.safetensors"), metadata={"source": "ltx-core / ltx-pipelines 1.2.0"})


if __name__ == "__main__":
    main(sys.argv[1])
