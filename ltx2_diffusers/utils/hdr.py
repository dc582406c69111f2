"""HDR colour math as pure functions: the curves and matrices of the HDR IC-LoRA pipeline and of EXR / HLG output.

Scene-linear light is float32 with 1.0 = diffuse white and no upper bound. Colour tensors are channel-last, (..., 3)
RGB, as the pipelines' (F, H, W, 3) frames. Every constant is a published one (cited where it is defined); the values
agree with ltx-core 1.2.0's `ltx_core.hdr` / `ltx_core.color` (tests/goldens/hdr/, scripts/goldens/hdr.py).

- ARRI LogC3 (EI 800): the working space the HDR IC-LoRA's VAE codes live in; decode = the pipeline's output curve.
- ACEScct (AMPAS S-2016-001): a log encoding of ACEScg, one of the EXR outputs.
- Primaries: linear Rec.709 (= linear sRGB) <-> ACEScg (AP1), and both -> Rec.2020 for an HLG master.
- HLG (ITU-R BT.2100 / ARIB STD-B67): the OETF, the diffuse-white mapping of scene light onto it, and BT.2020
  non-constant-luminance Y'CbCr in 10-bit limited range, 4:2:0, for a HEVC Main10 mp4.
"""

import enum
import math

import torch
from torch import Tensor

# ----------------------------------------------------------------------------------------------------------------------
# ARRI LogC3, exposure index 800 (ARRI, "ALEXA Log C Curve - Usage in VFX", 2017, table for EI 800):
#   t = c log10(a x + b) + d  for x >= cut,   t = e x + f  below.  18 % grey -> 0.391007.

LOGC3_CUT, LOGC3_A, LOGC3_B = 0.010591, 5.555556, 0.052272
LOGC3_C, LOGC3_D, LOGC3_E, LOGC3_F = 0.247190, 0.385537, 5.367655, 0.092809


def logc3_encode(linear: Tensor) -> Tensor:
    """Scene-linear [0, inf) -> LogC3 code [0, 1] (clamped at both ends; negative light counts as 0)."""
    x = linear.float().clamp(min=0.0)
    log_part = LOGC3_C * torch.log10(LOGC3_A * x + LOGC3_B) + LOGC3_D
    return torch.where(x >= LOGC3_CUT, log_part, LOGC3_E * x + LOGC3_F).clamp(0.0, 1.0)


def logc3_decode(code: Tensor) -> Tensor:
    """LogC3 code [0, 1] -> scene-linear: x = (10^((t - d) / c) - b) / a above the cut's code e*cut + f, else
    (t - f) / e. Codes are clamped to [0, 1] first, so the output lies in [-f/e, 55.08]."""
    t = code.float().clamp(0.0, 1.0)
    from_log = (torch.pow(10.0, (t - LOGC3_D) / LOGC3_C) - LOGC3_B) / LOGC3_A
    return torch.where(t >= LOGC3_E * LOGC3_CUT + LOGC3_F, from_log, (t - LOGC3_F) / LOGC3_E)


# ----------------------------------------------------------------------------------------------------------------------
# ACEScct (AMPAS S-2016-001, section 4.4): t = (log2 x + 9.72) / 17.52 above x = 2^-7, a straight line below that
# meets it there. 0.18 -> 0.4135884.

ACESCCT_X_BREAK, ACESCCT_Y_BREAK = 0.0078125, 0.155251141552511
ACESCCT_A, ACESCCT_B = 10.5402377416545, 0.0729055341958355


def acescct_encode(linear: Tensor) -> Tensor:
    """Linear ACEScg [0, inf) -> ACEScct code, clamped to [0, 1] (the VAE's working range)."""
    x = linear.float().clamp(min=0.0)
    log_part = (torch.log2(x.clamp(min=1e-12)) + 9.72) / 17.52
    return torch.where(x > ACESCCT_X_BREAK, log_part, ACESCCT_A * x + ACESCCT_B).clamp(0.0, 1.0)


def acescct_decode(code: Tensor) -> Tensor:
    """ACEScct code [0, 1] (clamped) -> linear ACEScg: 2^(17.52 t - 9.72) above the break, else (t - B) / A."""
    t = code.float().clamp(0.0, 1.0)
    return torch.where(t > ACESCCT_Y_BREAK, torch.pow(2.0, t * 17.52 - 9.72), (t - ACESCCT_B) / ACESCCT_A)


# ----------------------------------------------------------------------------------------------------------------------
# Primaries. Rows give output channels: out = M @ rgb.

# ACEScg (AP1, ACES white) -> linear Rec.709 / sRGB (D65), Bradford-adapted: the matrix OpenColorIO's ACES configs
# publish to 5 decimals. Its inverse is computed in float64 so that a round trip returns the input.
ACESCG_TO_REC709 = torch.tensor(
    [[1.70505, -0.62179, -0.08326], [-0.13026, 1.14080, -0.01055], [-0.02400, -0.12897, 1.15297]],
    dtype=torch.float64,
)
REC709_TO_ACESCG = torch.linalg.inv(ACESCG_TO_REC709)
# Rec.709 -> Rec.2020, both D65 (ITU-R BT.2087-0, section 2, to 8 decimals).
REC709_TO_REC2020 = torch.tensor(
    [[0.62740389, 0.32928304, 0.04331307], [0.06909729, 0.91954040, 0.01136232], [0.01639144, 0.08801331, 0.89559525]],
    dtype=torch.float64,
)
# ACEScg (ACES white) -> Rec.2020 (D65), Bradford-adapted (AMPAS ACES output transforms).
ACESCG_TO_REC2020 = torch.tensor(
    [
        [1.02582475, -0.02005319, -0.00577156],
        [-0.00223437, 1.00458650, -0.00235213],
        [-0.00501335, -0.02529007, 1.03030342],
    ],
    dtype=torch.float64,
)

# CIE 1931 xy of the red, green and blue primaries and of the white point (EXR `chromaticities` order).
REC709_CHROMATICITIES = (0.64, 0.33, 0.30, 0.60, 0.15, 0.06, 0.3127, 0.3290)  # ITU-R BT.709-6; = sRGB
ACESCG_CHROMATICITIES = (0.713, 0.293, 0.165, 0.830, 0.128, 0.044, 0.32168, 0.33767)  # AP1, ACES white (S-2014-004)
REC2020_CHROMATICITIES = (0.708, 0.292, 0.170, 0.797, 0.131, 0.046, 0.3127, 0.3290)  # ITU-R BT.2020-2


def apply_matrix(rgb: Tensor, matrix: Tensor) -> Tensor:
    """(..., 3) linear RGB -> (..., 3): out_i = sum_j M_ij rgb_j, in float32."""
    if rgb.shape[-1] != 3:
        raise ValueError(f"colour tensors are channel-last (..., 3), got shape {tuple(rgb.shape)}")
    return rgb.float() @ matrix.to(device=rgb.device, dtype=torch.float32).T


def rec709_to_acescg(rgb: Tensor) -> Tensor:
    """Linear Rec.709 / sRGB -> linear ACEScg, (..., 3)."""
    return apply_matrix(rgb, REC709_TO_ACESCG)


def acescg_to_rec709(rgb: Tensor) -> Tensor:
    """Linear ACEScg -> linear Rec.709 / sRGB, (..., 3)."""
    return apply_matrix(rgb, ACESCG_TO_REC709)


def rgb_to_xyz_matrix(chromaticities: tuple[float, ...]) -> Tensor:
    """The 3x3 linear RGB -> CIE XYZ matrix (Y of white = 1) of primaries given as (xr, yr, xg, yg, xb, yb, xw, yw),
    in float64 (SMPTE RP 177): columns are the primaries' XYZ scaled so that RGB = (1, 1, 1) gives the white."""
    xy = torch.tensor(chromaticities, dtype=torch.float64).view(4, 2)
    xyz = torch.stack([xy[:, 0] / xy[:, 1], torch.ones(4, dtype=torch.float64), (1 - xy.sum(1)) / xy[:, 1]], dim=1)
    primaries, white = xyz[:3].T, xyz[3]
    return primaries * torch.linalg.solve(primaries, white)


def bradford_adaptation(source_white: tuple[float, float], target_white: tuple[float, float]) -> Tensor:
    """The 3x3 XYZ -> XYZ von Kries adaptation between two white points (xy) in the Bradford cone space, float64."""
    bradford = torch.tensor(
        [[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]], dtype=torch.float64
    )

    def cone(white: tuple[float, float]) -> Tensor:
        x, y = white
        return bradford @ torch.tensor([x / y, 1.0, (1 - x - y) / y], dtype=torch.float64)

    return torch.linalg.inv(bradford) @ torch.diag(cone(target_white) / cone(source_white)) @ bradford


# ----------------------------------------------------------------------------------------------------------------------
# The colour spaces an EXR is written in (ltx-pipelines' `--hdr` names)


class HDRColorSpace(enum.Enum):
    """Where EXR pixels live: linear Rec.709 (tagged "sRGB"), linear ACEScg, or ACEScct log codes of ACEScg."""

    SRGB_LINEAR = "srgb_linear"
    ACESCG = "acescg"
    ACESCCT = "acescct"

    @property
    def chromaticities(self) -> tuple[float, ...]:
        return REC709_CHROMATICITIES if self is HDRColorSpace.SRGB_LINEAR else ACESCG_CHROMATICITIES

    @property
    def exr_tag(self) -> str:
        """The EXR `colorSpace` attribute, as ltx-pipelines writes it."""
        return {"srgb_linear": "sRGB", "acescg": "ACEScg", "acescct": "ACEScct"}[self.value]


def from_rec709_linear(rgb: Tensor, space: HDRColorSpace) -> Tensor:
    """Linear Rec.709 (..., 3) -> the pixels of `space`: unchanged, ACEScg, or ACEScct codes of ACEScg (negative
    light, which the gamut change can give, is clamped to 0 before the log)."""
    if space is HDRColorSpace.SRGB_LINEAR:
        return rgb.float()
    acescg = rec709_to_acescg(rgb)
    return acescg if space is HDRColorSpace.ACESCG else acescct_encode(acescg)


def to_rec709_linear(pixels: Tensor, space: HDRColorSpace) -> Tensor:
    """The inverse of `from_rec709_linear`: the pixels of `space` (..., 3) -> linear Rec.709."""
    if space is HDRColorSpace.SRGB_LINEAR:
        return pixels.float()
    acescg = pixels.float() if space is HDRColorSpace.ACESCG else acescct_decode(pixels)
    return acescg_to_rec709(acescg)


# ----------------------------------------------------------------------------------------------------------------------
# HLG (ITU-R BT.2100-2, table 5): E' = sqrt(3 E) for E <= 1/12, a ln(12 E - b) + c above; E' = 0.5 at E = 1/12.

HLG_A = 0.17883277
HLG_B = 1.0 - 4.0 * HLG_A  # 0.28466892
HLG_C = 0.5 - HLG_A * math.log(4.0 * HLG_A)  # 0.55991073


def hlg_oetf(scene: Tensor) -> Tensor:
    """HLG scene light E in [0, 1] -> signal E' in [0, 1] (clamped)."""
    e = scene.float().clamp(min=0.0)
    log_part = HLG_A * torch.log((12.0 * e - HLG_B).clamp(min=1e-12)) + HLG_C
    return torch.where(e <= 1.0 / 12.0, torch.sqrt(3.0 * e), log_part).clamp(0.0, 1.0)


def hlg_inverse_oetf(signal: Tensor) -> Tensor:
    """HLG signal E' [0, 1] -> scene light E: E'^2 / 3 up to 0.5, (exp((E' - c) / a) + b) / 12 above."""
    s = signal.float().clamp(0.0, 1.0)
    return torch.where(s <= 0.5, s * s / 3.0, (torch.exp((s - HLG_C) / HLG_A) + HLG_B) / 12.0)


def hlg_signal(rec2020: Tensor, white_signal: float = 0.75) -> Tensor:
    """Linear Rec.2020 scene light (..., 3), 1.0 = diffuse white -> HLG signal (..., 3) in [0, 1].

    Diffuse white lands at signal `white_signal` (BT.2408's 75 %): E = w x below x = 1 with w = OETF^-1(white_signal);
    above, E = 1 - (1 - w) exp(-k (x - 1)) with k = w / (1 - w), which meets the line with the same slope and rolls
    highlights off towards E = 1 (ltx-core's choice for its HLG masters). NaN and negative light become 0."""
    w = float(hlg_inverse_oetf(torch.tensor(white_signal)))
    k = w / (1.0 - w)
    x = torch.nan_to_num(rec2020.float().clamp(min=0.0), nan=0.0)
    scene = torch.where(x <= 1.0, x * w, 1.0 - (1.0 - w) * torch.exp(-k * (x - 1.0)))
    return hlg_oetf(scene)


BT2020_KR, BT2020_KB = 0.2627, 0.0593  # ITU-R BT.2020-2, table 4 (non-constant luminance)


def ycbcr420_10bit(signal: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Non-linear R'G'B' (F, H, W, 3) in [0, 1] -> BT.2020 NCL Y'CbCr 4:2:0 as 10-bit limited-range codes (uint16
    planes Y (F, H, W), Cb and Cr (F, H/2, W/2)). Y' = Kr R' + Kg G' + Kb B', Cb = (B' - Y') / (2 - 2 Kb),
    Cr = (R' - Y') / (2 - 2 Kr); codes 4 (219 Y' + 16) and 4 (224 C + 128) (BT.2020 table 5); chroma is the mean of
    each 2x2 block. H and W must be even."""
    if signal.ndim != 4 or signal.shape[-1] != 3 or signal.shape[1] % 2 or signal.shape[2] % 2:
        raise ValueError(f"ycbcr420_10bit takes (F, H, W, 3) with even H and W, got shape {tuple(signal.shape)}")
    r, g, b = signal.float().unbind(-1)
    y = BT2020_KR * r + (1.0 - BT2020_KR - BT2020_KB) * g + BT2020_KB * b
    chroma = torch.stack([(b - y) / (2.0 - 2.0 * BT2020_KB), (r - y) / (2.0 - 2.0 * BT2020_KR)], dim=1)
    cb, cr = torch.nn.functional.avg_pool2d(chroma, 2).unbind(1)

    def codes(values: Tensor, scale: float, offset: float) -> Tensor:
        return (4.0 * (scale * values + offset)).round().clamp(0, 1023).to(torch.int32).to(torch.uint16)

    return codes(y, 219.0, 16.0), codes(cb, 224.0, 128.0), codes(cr, 224.0, 128.0)


# ----------------------------------------------------------------------------------------------------------------------
# The HDR IC-LoRA's working spaces: what its VAE codes in [0, 1] mean

HDR_TRANSFERS = ("logc3", "acescct")  # an HDR LoRA file's `hdr_transform` metadata names one; LogC3 by default


def linear_from_codes(codes: Tensor, transfer: str = "logc3") -> Tensor:
    """Working-space codes in [0, 1] (..., 3), as the VAE decodes them -> scene-linear Rec.709, clamped at 0
    (ltx-core's `to_hdr_linear`): LogC3 is defined on Rec.709 primaries, ACEScct on ACEScg (converted to Rec.709)."""
    if transfer == "logc3":
        return logc3_decode(codes).clamp(min=0.0)
    if transfer == "acescct":
        return acescg_to_rec709(acescct_decode(codes)).clamp(min=0.0)
    raise ValueError(f"transfer={transfer!r} is not one of {HDR_TRANSFERS}")
