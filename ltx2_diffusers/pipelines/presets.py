"""Sampling defaults per model version and kind: one frozen table, no torch (spec §6.1, §6.2, §7.6, §9).

Two vocabularies, each with one spelling per value:
- model versions `MODEL_VERSIONS` = ("2.0", "2.3", "2.5"): LTX-2 (19B), LTX-2.3 (22B), LTX-2.5 (the 1.2.0 reference's
  `LTX_2_4_PARAMS` row, which 2.5 checkpoints use; every pipeline runs it, docs/pipelines.md "LTX-2.5").
  `parse_model_version` maps user spellings ("2", 2.3, "ltx-2", "LTX-2.3", "ltx-2.3-22b-dev", "2.3.0") onto them.
- kinds `KINDS` = ("dev", "distilled"): the full model, guided over the shifted schedule, or the distilled one, one
  conditional pass per step over its 8 fixed sigmas. `parse_kind` maps "Dev", " distilled ", "distill" onto them.

`sampling_preset(version, kind, reference)` is what a pipeline uses for every argument the caller leaves at None;
`retake_preset` and `hq_preset` are the two pipelines whose reference call has other defaults. Guidance is stored as
`GuidancePreset` (the fields of `guidance.GuidanceScales`, which needs torch): `GuidanceScales(**preset.as_kwargs())`.
`REFERENCES` = ("1.2", "1.0") names the ltx-core / ltx-pipelines release whose numerics a call follows (the
`reference=` argument of every pipeline, the CLI's `--reference`); here it only picks the default negative prompt.
Importing this module imports neither torch nor diffusers (the CLI reads it before deciding to load anything).
"""

import math
import os
import re
from dataclasses import dataclass, fields, replace

MODEL_VERSIONS: tuple[str, ...] = ("2.0", "2.3", "2.5")
KINDS: tuple[str, ...] = ("dev", "distilled")
SAMPLERS: tuple[str, ...] = ("euler", "euler_ancestral", "res2s")

# ltx-pipelines 1.0.0's DEFAULT_NEGATIVE_PROMPT (spec §9), verbatim: results only match the reference's with the exact
# string. 1.2.0 puts five caption tags in front of it (delta spec §5.14); `default_negative_prompt(reference)` picks
# one.
NEGATIVE_PROMPT_1_0 = (
    "blurry, out of focus, overexposed, underexposed, low contrast, washed out colors, excessive noise, grainy "
    "texture, poor lighting, flickering, motion blur, distorted proportions, unnatural skin tones, deformed facial "
    "features, asymmetrical face, missing facial features, extra limbs, disfigured hands, wrong hand count, artifacts "
    "around text, inconsistent perspective, camera shake, incorrect depth of field, background too sharp, background "
    "clutter, distracting reflections, harsh shadows, inconsistent lighting direction, color banding, cartoonish "
    "rendering, 3D CGI look, unrealistic materials, uncanny valley effect, incorrect ethnicity, wrong gender, "
    "exaggerated expressions, wrong gaze direction, mismatched lip sync, silent or muted audio, distorted voice, "
    "robotic voice, echo, background noise, off-sync audio, incorrect dialogue, added dialogue, repetitive speech, "
    "jittery movement, awkward pauses, incorrect timing, unnatural transitions, inconsistent framing, tilted camera, "
    "flat lighting, inconsistent tone, cinematic oversaturation, stylized filters, or AI artifacts."
)
NEGATIVE_PROMPT_1_2 = (
    "has_subtitles, has_blurbox, transition from black, transition to black, speech_ending_short, "
    + NEGATIVE_PROMPT_1_0
)

# Which ltx-core / ltx-pipelines release the numerics follow (docs/pipelines.md, "Reference versions"): "1.2" (the
# default: its output-changing fixes, delta spec §5) or "1.0" (the PyPI release, bit for bit as before those fixes).
REFERENCES: tuple[str, ...] = ("1.2", "1.0")
DEFAULT_REFERENCE = "1.2"
DEFAULT_NEGATIVE_PROMPT = NEGATIVE_PROMPT_1_2  # the default reference's


def check_reference(reference: str, name: str = "reference") -> str:
    """`reference` if it is one of `REFERENCES` ("1.2", "1.0"), else a ValueError that says what to pass."""
    if not isinstance(reference, str) or reference not in REFERENCES:
        raise ValueError(
            f"{name}={reference!r} is not a reference version: pass '1.2' (ltx-core / ltx-pipelines 1.2.0, the "
            "default) or '1.0' (1.0.0's numerics, bit for bit)"
        )
    return reference


def check_reference_for(model_version: str, reference: str) -> str:
    """`reference` checked for a model version: LTX-2.5 only exists in 1.2.0, so "1.0" is refused for it."""
    check_reference(reference)
    if reference == "1.0" and parse_model_version(model_version) == "2.5":
        raise ValueError(
            "reference='1.0' reproduces ltx-core 1.0.0, which cannot run LTX-2.5 (it came with 1.2.0): use "
            "reference='1.2' for LTX-2.5 checkpoints"
        )
    return reference


def default_negative_prompt(reference: str = DEFAULT_REFERENCE) -> str:
    """The reference's default negative prompt: 1.2.0's (five caption tags, then 1.0.0's) or 1.0.0's."""
    return NEGATIVE_PROMPT_1_0 if check_reference(reference) == "1.0" else NEGATIVE_PROMPT_1_2


# The distilled checkpoints were trained for these exact noise levels (spec §6.1): 8 steps, and the 3 steps of the
# two-stage pipelines' refinement stage, which starts from the upsampled stage-1 latent re-noised to its first value.
DISTILLED_SIGMAS: tuple[float, ...] = (1.0, 0.99375, 0.9875, 0.98125, 0.975, 0.909375, 0.725, 0.421875, 0.0)
STAGE_2_DISTILLED_SIGMAS: tuple[float, ...] = (0.909375, 0.725, 0.421875, 0.0)

# ltx-pipelines' H.264 quality for conditioning images (mimics the training data's compression): 33 up to LTX-2.3,
# 18 from the 2.4 row on (1.2.0 delta spec §1.4); 0 skips the round trip.
DEFAULT_IMAGE_CRF = 33
_IMAGE_CRF = {"2.0": DEFAULT_IMAGE_CRF, "2.3": DEFAULT_IMAGE_CRF, "2.5": 18}


@dataclass(frozen=True)
class GuidancePreset:
    """Guidance of one modality: the fields of `guidance.GuidanceScales` (ltx-core's `MultiModalGuiderParams`), as
    data. Neutral values (cfg 1, stg 0, modality 1, rescale 0) switch a term, and its transformer pass, off."""

    cfg: float = 1.0  # classifier-free guidance against the negative prompt
    stg: float = 0.0  # spatio-temporal guidance: self-attention skipped in `stg_blocks`
    modality: float = 1.0  # extra pass with audio<->video attention switched off
    rescale: float = 0.0  # pull the result's std back towards the conditional prediction's
    stg_blocks: tuple[int, ...] = ()

    def __post_init__(self):
        for name in ("cfg", "stg", "modality", "rescale"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"GuidancePreset.{name} must be a finite number >= 0, got {value!r}")
        if not isinstance(self.stg_blocks, tuple) or not all(
            isinstance(b, int) and not isinstance(b, bool) and b >= 0 for b in self.stg_blocks
        ):
            raise ValueError(
                f"GuidancePreset.stg_blocks must be a tuple of block indices >= 0, got {self.stg_blocks!r}"
            )

    @property
    def needs_negative(self) -> bool:
        """Whether this guidance runs the negative prompt (cfg != 1, decided with isclose as the reference does)."""
        return not math.isclose(self.cfg, 1.0)

    def as_kwargs(self) -> dict:
        """{cfg, stg, modality, rescale, stg_blocks}: `GuidanceScales(**preset.as_kwargs())`."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


NO_GUIDANCE = GuidancePreset()


def _reference_guidance(stg_block: int) -> tuple[GuidancePreset, GuidancePreset]:
    """ltx-pipelines' LTX_2_PARAMS / LTX_2_3_PARAMS guiders (spec §6.2): video cfg 3, audio cfg 7, the rest shared."""
    video = GuidancePreset(cfg=3.0, stg=1.0, modality=3.0, rescale=0.7, stg_blocks=(stg_block,))
    return video, replace(video, cfg=7.0)


@dataclass(frozen=True)
class SamplingPreset:
    """Everything a pipeline call defaults to for one model version and kind (ltx-pipelines' `*_PARAMS` + constants).

    sigmas: an explicit stage-1 schedule (the distilled 8 steps); None: the shifted LTX-2 schedule
        (`ltx2_sigmas(num_inference_steps)`). stage_2_sigmas: the refinement stage of the two-stage pipelines; its
        first value is also the re-noising level.
    height / width: the one-stage output, and stage 1 of the two-stage pipelines, whose output is twice that
        (`two_stage_height` / `two_stage_width`: 1024 x 1536, HQ 1088 x 1920).
    stage_1_adapter_scale / stage_2_adapter_scale: the distilled LoRA's strength per stage where the reference fixes
        one (HQ: 0.25 / 0.5); None: the strength it was loaded with.
    sampler: stage 1's sampler: "euler"; "res2s" (HQ); "euler_ancestral" (the 1.2.0 reference's 2.5 distilled
        stage 1, which no pipeline here runs yet). Stage 2 is always Euler ("res2s" in HQ).
    negative_prompt: used only where some guidance has cfg != 1 (never with the distilled presets' neutral guidance).
    seed: the reference CLI's seed (ltx-pipelines' presets), for the CLI's --seed default.
    """

    model_version: str
    kind: str
    num_inference_steps: int
    video_guidance: GuidancePreset
    audio_guidance: GuidancePreset
    sigmas: tuple[float, ...] | None = None
    stage_2_sigmas: tuple[float, ...] = STAGE_2_DISTILLED_SIGMAS
    sampler: str = "euler"
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT
    image_crf: int = DEFAULT_IMAGE_CRF
    height: int = 512
    width: int = 768
    num_frames: int = 121
    frame_rate: float = 24.0
    seed: int = 10
    stage_1_adapter_scale: float | None = None
    stage_2_adapter_scale: float | None = None

    def __post_init__(self):
        if self.model_version not in MODEL_VERSIONS or self.kind not in KINDS or self.sampler not in SAMPLERS:
            raise ValueError(
                f"SamplingPreset({self.model_version!r}, {self.kind!r}, sampler={self.sampler!r}): expected a version "
                f"in {MODEL_VERSIONS}, a kind in {KINDS} and a sampler in {SAMPLERS}"
            )
        for name in ("sigmas", "stage_2_sigmas"):
            values = getattr(self, name)
            if values is not None and (
                len(values) < 2 or values[-1] != 0.0 or any(a <= b for a, b in zip(values, values[1:]))
            ):
                raise ValueError(f"SamplingPreset.{name} must decrease strictly to 0.0, got {values}")
        if self.sigmas is not None and self.num_inference_steps != len(self.sigmas) - 1:
            raise ValueError(
                f"SamplingPreset: num_inference_steps={self.num_inference_steps} but sigmas has "
                f"{len(self.sigmas) - 1} steps"
            )

    @property
    def two_stage_height(self) -> int:
        return 2 * self.height

    @property
    def two_stage_width(self) -> int:
        return 2 * self.width

    @property
    def needs_negative(self) -> bool:
        return self.video_guidance.needs_negative or self.audio_guidance.needs_negative


def _dev(version: str, steps: int, stg_block: int) -> SamplingPreset:
    video, audio = _reference_guidance(stg_block)
    return SamplingPreset(version, "dev", steps, video, audio, image_crf=_IMAGE_CRF[version])


def _distilled(version: str) -> SamplingPreset:
    # ltx-pipelines' DistilledPipeline: only the prompt is encoded and each step is one conditional pass
    # (`simple_denoising_func`): no CFG, STG, modality guidance or rescale for either modality. The 1.2.0 reference
    # samples the 2.5 distilled stage 1 with Euler-ancestral (eta 1); earlier versions with Euler.
    sampler = "euler_ancestral" if version == "2.5" else "euler"
    return SamplingPreset(
        version,
        "distilled",
        len(DISTILLED_SIGMAS) - 1,
        NO_GUIDANCE,
        NO_GUIDANCE,
        sigmas=DISTILLED_SIGMAS,
        sampler=sampler,
        image_crf=_IMAGE_CRF[version],
    )


# (model version, kind) -> preset. LTX-2: 40 steps, STG block 29; LTX-2.3 and the 2.4 row 2.5 uses: 30 steps, block 28.
PRESETS: dict[tuple[str, str], SamplingPreset] = {
    ("2.0", "dev"): _dev("2.0", 40, 29),
    ("2.3", "dev"): _dev("2.3", 30, 28),
    ("2.5", "dev"): _dev("2.5", 30, 28),
    **{(version, "distilled"): _distilled(version) for version in MODEL_VERSIONS},
}

# ltx-pipelines' RetakePipeline call defaults (40 steps, negative prompt ""), which its CLI does not override: it takes
# only the guidance scales from the checkpoint's model version.
RETAKE_NUM_INFERENCE_STEPS = 40
RETAKE_NEGATIVE_PROMPT = ""

# ltx-pipelines' LTX_2_3_HQ_PARAMS (TI2VidTwoStagesHQPipeline): res_2s, no STG, its own rescales, 544 x 960 stage 1
# (1088 x 1920 out), the distilled LoRA at 0.25 in stage 1 and 0.5 in stage 2. The same for every model version.
HQ_PRESET = SamplingPreset(
    "2.3",
    "dev",
    15,
    GuidancePreset(cfg=3.0, stg=0.0, modality=3.0, rescale=0.45),
    GuidancePreset(cfg=7.0, stg=0.0, modality=3.0, rescale=1.0),
    sampler="res2s",
    height=544,
    width=960,
    stage_1_adapter_scale=0.25,
    stage_2_adapter_scale=0.5,
)


# ----------------------------------------------------------------------------------------------------------------------
# User spellings -> the vocabularies

# "2", "2.3", "2.3.1", "ltx-2", "LTX 2.3", "ltxv2.3", "ltx-2.3-22b-dev", "2.4-rc2": an optional "ltx" prefix, the
# version, then optionally a tail after "-", "_" or "+" that is not a bare number ("2-3" is refused as ambiguous).
_VERSION = re.compile(r"^(?:ltx[-_ ]?v?)?(\d+)(?:\.(\d+))?(?:\.\d+)*(?:[-_+](?!\d+$).*)?$")


def parse_model_version(value: "str | int | float", name: str = "model_version") -> str:
    """A user's spelling of a model version -> one of `MODEL_VERSIONS` ("2.0", "2.3", "2.5").

    Accepts numbers (2, 2.3), version strings ("2", "2.0", "2.3.1", "2.5-rc1") and model names ("ltx-2", "LTX-2.3",
    "ltx-2.3-22b-dev"), case-insensitively. Raises ValueError naming `name` for anything else, and for versions no
    preset exists for (e.g. "2.4", "3").
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError(f"{name} must be a version string such as '2.3' (or a number), got {type(value).__name__}")
    text = str(value).strip().lower() if isinstance(value, str) else repr(float(value))
    match = _VERSION.match(text)
    if match is None:
        raise ValueError(
            f"{name}={value!r} is not a model version: use one of {', '.join(map(repr, MODEL_VERSIONS))} (spellings "
            "such as 2, '2.3', 'ltx-2', 'LTX-2.3' and 'ltx-2.3-22b-dev' are accepted too)"
        )
    version = f"{int(match.group(1))}.{int(match.group(2) or 0)}"
    if version not in MODEL_VERSIONS:
        raise ValueError(
            f"{name}={value!r} reads as LTX-{version}, which has no preset: the known versions are "
            f"{', '.join(map(repr, MODEL_VERSIONS))}"
        )
    return version


def checkpoint_model_version(model_version: str | None) -> str:
    """A checkpoint's `model_version` metadata -> the preset version the 1.2.0 reference uses for it (delta spec §1.4,
    trap 27): "-" read as ".", parsing stops at the first non-numeric component ("2.3.rc1" -> 2.3), and the newest
    row at or below the version wins, so absent or unparsable metadata is LTX-2 ("2.0") and versions above 2.5 get
    2.5's defaults. A 2.4.x file has defaults of its own in the reference (2.5's without the ancestral distilled
    sampler), which no preset here holds: refused."""
    if model_version is not None and not isinstance(model_version, str):
        raise TypeError(f"model_version metadata must be a string or None, got {type(model_version).__name__}")
    parsed = []
    for part in (model_version or "").replace("-", ".").split("."):
        if not part.isdigit():
            break
        parsed.append(int(part))
    version = tuple(parsed)
    if version >= (2, 5):
        return "2.5"
    if version >= (2, 4):
        raise ValueError(
            f"model_version={model_version!r} is an LTX-2.4 build, for which this package has no preset (the 1.2.0 "
            "reference gives it LTX-2.5's defaults with the plain Euler distilled sampler); the supported versions "
            f"are {', '.join(MODEL_VERSIONS)}"
        )
    return "2.3" if version >= (2, 3) else "2.0"


_KIND_SPELLINGS = {"dev": "dev", "distilled": "distilled", "distill": "distilled"}


def parse_kind(value: str, name: str = "kind") -> str:
    """A user's spelling of a checkpoint kind -> "dev" or "distilled" (case and surrounding spaces ignored)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be 'dev' or 'distilled', got {type(value).__name__} {value!r}")
    kind = _KIND_SPELLINGS.get(value.strip().lower())
    if kind is None:
        raise ValueError(
            f"{name}={value!r} is not a checkpoint kind: use 'dev' (the full model, guided, 30-40 steps) or "
            "'distilled' (8 fixed steps, no guidance)"
        )
    return kind


def kind_from_name(name_or_path: "str | os.PathLike") -> str:
    """ "distilled" when a repo id, folder or file name says so (`Lightricks/LTX-2.3-Distilled`,
    `ltx-2.3-22b-distilled.safetensors`), else "dev". Only the last path component is read."""
    base = os.path.basename(os.path.normpath(os.fspath(name_or_path))).lower()
    return "distilled" if "distilled" in base else "dev"


def model_version_from_config(config) -> str:
    """The model version of a transformer config (attributes or a mapping): "2.5" when it has LTX-2.5's keyframe
    embedding (`use_keyframes_abs_pos_embedding`) or bias-free video FFNs (`ff_bias=False`), keys older configs leave
    out (read as diffusers' defaults, False and True); else "2.3" when it has gated attention or no prompt embeddings
    in the transformer (LTX-2.3 moved the prompt projection into the connectors); else "2.0"."""

    def read(key: str):
        if isinstance(config, dict):
            if key not in config:
                raise ValueError(f"the transformer config has no {key!r}, which tells LTX-2 from LTX-2.3")
            return config[key]
        if not hasattr(config, key):
            raise ValueError(f"the transformer config has no {key!r}, which tells LTX-2 from LTX-2.3")
        return getattr(config, key)

    def read_optional(key: str, default: bool) -> bool:
        return config.get(key, default) if isinstance(config, dict) else getattr(config, key, default)

    if read_optional("use_keyframes_abs_pos_embedding", False) or not read_optional("ff_bias", True):
        return "2.5"
    return "2.3" if read("gated_attn") or not read("use_prompt_embeddings") else "2.0"


# ----------------------------------------------------------------------------------------------------------------------
# Lookups


def sampling_preset(
    model_version: "str | int | float", kind: str = "dev", reference: str = DEFAULT_REFERENCE
) -> SamplingPreset:
    """The defaults for a model version and kind, both in any spelling `parse_model_version` / `parse_kind` take, with
    the `reference` release's default negative prompt ("1.2" or "1.0", `default_negative_prompt`)."""
    preset = PRESETS[parse_model_version(model_version), parse_kind(kind)]  # holds the default reference's prompt
    if check_reference(reference) == DEFAULT_REFERENCE:
        return preset
    return replace(preset, negative_prompt=default_negative_prompt(reference))


def retake_preset(
    model_version: "str | int | float", kind: str = "dev", reference: str = DEFAULT_REFERENCE
) -> SamplingPreset:
    """The retake pipeline's defaults: the version's guidance, but 40 steps (dev) and an empty negative prompt (in
    both references)."""
    preset = sampling_preset(model_version, kind, reference)
    steps = preset.num_inference_steps if preset.sigmas is not None else RETAKE_NUM_INFERENCE_STEPS
    return replace(preset, num_inference_steps=steps, negative_prompt=RETAKE_NEGATIVE_PROMPT)


def hq_preset(model_version: "str | int | float" = "2.3", reference: str = DEFAULT_REFERENCE) -> SamplingPreset:
    """The HQ two-stage pipeline's defaults (`HQ_PRESET`), with the model version's image CRF and the reference's
    default negative prompt."""
    version = parse_model_version(model_version)
    return replace(
        HQ_PRESET,
        model_version=version,
        image_crf=_IMAGE_CRF[version],
        negative_prompt=default_negative_prompt(reference),
    )


_GUIDANCE_NAMES = {
    "cfg": "guidance_scale",
    "stg": "stg_scale",
    "modality": "modality_scale",
    "rescale": "guidance_rescale",
}


def guidance_with_scalars(
    base: GuidancePreset,
    *,
    guidance_scale: float | None = None,
    stg_scale: float | None = None,
    modality_scale: float | None = None,
    guidance_rescale: float | None = None,
    stg_blocks: "tuple[int, ...] | list[int] | None" = None,
    prefix: str = "",
) -> GuidancePreset:
    """`base` with diffusers' scalar guidance keywords applied (None keeps base's value): guidance_scale -> cfg,
    stg_scale -> stg, modality_scale -> modality, guidance_rescale -> rescale, spatio_temporal_guidance_blocks ->
    stg_blocks. `prefix` ("audio_") only names the arguments in errors. Bad values raise ValueError naming them."""
    given = {"cfg": guidance_scale, "stg": stg_scale, "modality": modality_scale, "rescale": guidance_rescale}
    changes = {}
    for key, value in given.items():
        if value is None:
            continue
        arg = prefix + _GUIDANCE_NAMES[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{arg}={value!r} must be a finite number >= 0 (1.0 switches guidance off for cfg)")
        changes[key] = float(value)
    if stg_blocks is not None:
        if not isinstance(stg_blocks, list | tuple) or not all(
            isinstance(b, int) and not isinstance(b, bool) and b >= 0 for b in stg_blocks
        ):
            raise ValueError(
                f"spatio_temporal_guidance_blocks={stg_blocks!r} must be a list of transformer block indices >= 0"
            )
        changes["stg_blocks"] = tuple(stg_blocks)
    return replace(base, **changes)
