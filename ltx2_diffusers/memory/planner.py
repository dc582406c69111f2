"""The memory planner: a pure function (budget, component sizes, request) -> `MemoryPlan`, torch-free.

The plan decides, before anything moves, where every weight lives while a pipeline runs under a device-memory budget:
- FP8 storage of the transformer's block linears (about halves block bytes) or the model dtype;
- which transformer blocks stay resident on the device and which stream from pinned host memory, one block ahead, into
  two device slots (`placement.BlockStreamer`);
- Gemma resident, moved to the device whole for encoding ("onload"), or streamed layer by layer ("streamed");
- the smaller components (connectors, VAEs, vocoder, spatial and temporal upsamplers) present in the pipeline,
  resident or onloaded around their use;
- the video VAE's tile size.

Peak model (all estimates, in bytes; calibrate against measurements before trusting the last GiB):
    peak(stage) = persistent weights + the stage's transient weights + the stage's activations,
    persistent  = transformer non-block weights + resident blocks + resident components,
    transient   = 2 slots of the largest streamed block (denoising) / Gemma's onloaded part (text encoding) / the one
                  onloaded component a stage runs (one transient holder at a time: activating one evicts the last),
and the plan must keep every stage's peak under budget - headroom (allocator slack, kernel workspaces, other
processes: 1 GiB + budget / 32). Choice, in order of what costs time: most resident blocks first (streamed blocks
are re-sent on every transformer call), then Gemma resident > onloaded > streamed, then components resident, then the
largest VAE tile. An impossible request raises a ValueError that says what it needs and what to change.
"""

import math
import re
from dataclasses import dataclass, field

GIB = 1 << 30
MIB = 1 << 20

# Activation model. Hidden-size tensors (model dtype) alive per video/audio token at a block's peak: residual, AdaLN
# input and the per-token modulation rows, q/k/v and the attention output, RoPE tables, the 4x feed-forward
# intermediate and its activation. Deliberately generous: attention runs through SDPA (no T x T matrix).
TRANSFORMER_UNITS_PER_TOKEN = 24
WORKSPACE_BYTES = 256 * MIB  # cuBLAS / cuDNN workspaces and small temporaries, per stage
VAE_BYTES_PER_PIXEL_FRAME = 96  # conv activations of the video VAE per output pixel and frame of one tile
VOCODER_BYTES_PER_SAMPLE = 512  # vocoder activations per output sample (both channels)
AUDIO_LATENTS_PER_SECOND = 25  # 16 kHz mel with hop 160 (100 frames/s), 4x temporal compression
BYTES_PER_ELEMENT = 2  # bf16 activations

TEXT_ENCODER_MODES = ("resident", "onload", "streamed")
COMPONENT_MODES = ("resident", "onload")
SMALL_COMPONENTS = ("connectors", "vae", "audio_vae", "vocoder", "latent_upsampler", "temporal_upsampler")
# (tile_size_pixels, tile_size_frames), largest first; the overlaps stay the VAE's (64 px, 24 frames)
VAE_TILINGS: tuple[tuple[int, int], ...] = ((512, 64), (384, 48), (256, 32))


def parse_budget(budget: "int | float | str") -> int:
    """A memory budget in bytes. "24GB", "24 GiB", "24G", "24" and 24 (numbers below 1024) mean 24 GiB (cards sold as
    "24 GB" hold 24 GiB); "512MB" / "512MiB" mean MiB; an int of 2**20 or more is a number of bytes."""
    if isinstance(budget, bool):
        raise TypeError(f"budget must be a size such as '24GB' or a number of bytes, got {budget!r}")
    if isinstance(budget, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(gib|gb|g|mib|mb|m|tib|tb|t)?\s*", budget.lower())
        if match is None:
            raise ValueError(
                f"budget={budget!r} is not a memory size: write e.g. '24GB' / '24GiB' (GiB), '512MB' (MiB) or a "
                f"number of GiB such as '24'"
            )
        number, unit = float(match.group(1)), (match.group(2) or "g")[0]
        size = int(number * {"g": GIB, "m": MIB, "t": 1024 * GIB}[unit])
    elif isinstance(budget, int | float):
        if 0 < budget < 1024:
            size = int(budget * GIB)
        elif isinstance(budget, int) and budget >= MIB:
            size = budget
        else:
            raise ValueError(
                f"budget={budget!r} is ambiguous or not positive: numbers below 1024 are GiB (24 -> 24 GiB), ints of "
                f"2**20 or more are bytes; pass a string such as '24GB' to be explicit"
            )
    else:
        raise TypeError(f"budget must be a size such as '24GB' or a number of bytes, got {type(budget).__name__}")
    if size < GIB:
        raise ValueError(f"budget={budget!r} is {size / MIB:.0f} MiB: the smallest budget planned for is 1 GiB")
    return size


def count_guidance_passes(*guidance) -> int:
    """Transformer passes per step (cond, uncond, perturbed, isolated) that any step may run, for `GuidanceScales` or
    `GuidanceSchedule`s (every bin counted) per modality: what the plan sizes activations for. None: no guidance."""
    scales = [s for g in guidance if g is not None for s in ([s for _, s in g.bins] if hasattr(g, "bins") else [g])]
    needs = ("needs_uncond", "needs_perturbed", "needs_isolated")
    return 1 + sum(any(getattr(s, need) for s in scales) for need in needs)


def gib(size: int) -> str:
    return f"{size / GIB:.1f} GiB"


@dataclass(frozen=True)
class ComponentSizes:
    """Parameter (and buffer) bytes of a pipeline's components, as stored now; 0 for a component that is absent.

    transformer_blocks: bytes per block in the stored dtype; transformer_blocks_fp8: the same blocks with their block
    linears in FP8 (equal to transformer_blocks when FP8 is on already or impossible); text_encoder_layers: Gemma's
    decoder layers; text_encoder_other: the rest of its language model and LM head (embedding, final norm);
    text_encoder_vision: its vision tower and projector (only image prompt enhancement runs them: onloaded on use,
    outside the plan).
    video_width / audio_width: the transformer's inner widths (activation estimate); text_hidden_size and
    text_hidden_states: Gemma's width and its number of hidden states (49 for Gemma-3 12B).
    temporal_upsampler: the two-stage pipelines' optional temporal x2 upsampler (a request for the doubled clip
    plans its output: 2(N - 1) + 1 frames at twice the frame rate).
    """

    transformer_blocks: tuple[int, ...]
    transformer_blocks_fp8: tuple[int, ...]
    transformer_other: int
    text_encoder_layers: tuple[int, ...] = ()
    text_encoder_other: int = 0
    text_encoder_vision: int = 0
    connectors: int = 0
    vae: int = 0
    audio_vae: int = 0
    vocoder: int = 0
    latent_upsampler: int = 0
    temporal_upsampler: int = 0
    transformer_is_fp8: bool = False
    video_width: int = 4096
    audio_width: int = 2048
    text_hidden_size: int = 3840
    text_hidden_states: int = 49
    audio_sample_rate: int = 24000
    upsampler_channels: int = 1024

    def __post_init__(self):
        if len(self.transformer_blocks_fp8) != len(self.transformer_blocks) or not self.transformer_blocks:
            raise ValueError(
                f"transformer_blocks ({len(self.transformer_blocks)}) and transformer_blocks_fp8 "
                f"({len(self.transformer_blocks_fp8)}) must list the same, non-zero number of blocks"
            )

    @property
    def text_encoder(self) -> int:
        return sum(self.text_encoder_layers) + self.text_encoder_other + self.text_encoder_vision


# LTX-2 19B (bf16) with Gemma-3 12B, measured with `component_sizes` on the full-size models (tests/helpers/memory.py);
# the vocoder is float32. For planning without loading, and for the table in docs/memory.md.
LTX2_19B_SIZES = ComponentSizes(
    transformer_blocks=(772_149_248,) * 48,
    transformer_blocks_fp8=(386_666_496,) * 48,
    transformer_other=689_185_280,
    text_encoder_layers=(448_297_984,) * 48,
    text_encoder_other=2_013_766_146,
    text_encoder_vision=842_614_496,
    connectors=2_862_950_400,
    vae=2_444_959_714,
    audio_vae=106_496_804,
    vocoder=222_371_208,
    latent_upsampler=995_735_808,
)


@dataclass(frozen=True)
class MemoryRequest:
    """What a call will generate. batch_size: videos per call (prompts x num_videos_per_prompt); guidance_passes:
    transformer passes per step, batched into one call (1 distilled, up to 4 with CFG + STG + modality guidance);
    two_stage: half-size generation, x2 upsampling and a full-size refinement (one pass per step);
    encode_frames: pixel frames the VAE encoder sees at full size (1 for an image condition, the clip for IC-LoRA /
    retake references)."""

    height: int
    width: int
    num_frames: int
    frame_rate: float = 24.0
    batch_size: int = 1
    guidance_passes: int = 1
    two_stage: bool = False
    encode_frames: int = 1
    text_tokens: int = 1024

    def __post_init__(self):
        multiple = 64 if self.two_stage else 32
        for name in ("height", "width"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < multiple or value % multiple:
                raise ValueError(f"{name}={value!r}: expected a positive multiple of {multiple}")
        if not isinstance(self.num_frames, int) or self.num_frames < 1 or (self.num_frames - 1) % 8:
            raise ValueError(f"num_frames={self.num_frames!r}: expected 8*k + 1 frames")
        for name in ("batch_size", "guidance_passes", "encode_frames", "text_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r}: expected a positive int")
        if not self.frame_rate > 0:
            raise ValueError(f"frame_rate={self.frame_rate!r}: expected a positive number")

    def video_tokens(self, height: int, width: int) -> int:
        return ((self.num_frames - 1) // 8 + 1) * (height // 32) * (width // 32)

    @property
    def audio_tokens(self) -> int:
        return math.ceil(self.num_frames / self.frame_rate * AUDIO_LATENTS_PER_SECOND)

    def describe(self) -> str:
        kind = ", two-stage" if self.two_stage else ""
        return (
            f"{self.height}x{self.width}x{self.num_frames}, {self.batch_size} video(s), "
            f"{self.guidance_passes} guidance pass(es){kind}"
        )


# The workloads and card sizes of the "which settings for my card" tables in docs/memory.md (`plan_table`)
DOCS_WORKLOADS = {
    "distilled two-stage 512×768×121": MemoryRequest(512, 768, 121, two_stage=True),
    "dev two-stage 1024×1536×121, 4 passes": MemoryRequest(1024, 1536, 121, two_stage=True, guidance_passes=4),
}
DOCS_CARDS_GIB = (80, 48, 32, 24, 16)


@dataclass(frozen=True)
class Placement:
    """Where weights live: the part of a plan that `placement.apply_plan` carries out."""

    fp8: bool
    resident_blocks: int  # blocks 0 .. resident_blocks-1 stay on the device, the rest stream
    text_encoder: str  # one of TEXT_ENCODER_MODES
    components: tuple[tuple[str, str], ...]  # (name, "resident" | "onload") for the SMALL_COMPONENTS present
    vae_tiling: tuple[int, int]  # (tile_size_pixels, tile_size_frames)


@dataclass(frozen=True)
class MemoryPlan:
    """A placement with its predicted per-stage peaks for one request. `summary()` reads it out."""

    budget_bytes: int
    headroom_bytes: int
    request: MemoryRequest
    sizes: ComponentSizes
    placement: Placement
    stage_peaks: tuple[tuple[str, int], ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def fp8(self) -> bool:
        return self.placement.fp8

    @property
    def resident_blocks(self) -> tuple[int, ...]:
        return tuple(range(self.placement.resident_blocks))

    @property
    def streamed_blocks(self) -> tuple[int, ...]:
        return tuple(range(self.placement.resident_blocks, len(self.sizes.transformer_blocks)))

    @property
    def text_encoder(self) -> str:
        return self.placement.text_encoder

    @property
    def vae_tiling(self) -> tuple[int, int]:
        return self.placement.vae_tiling

    @property
    def predicted_peak(self) -> int:
        return max(peak for _, peak in self.stage_peaks)

    @property
    def max_video_tokens_per_call(self) -> int:
        """The most (batch rows x video tokens) one transformer call may take: what the activations were sized for."""
        return max(rows * tokens for _, rows, tokens in _transformer_stages(self.request))

    def for_request(self, request: MemoryRequest) -> "MemoryPlan":
        """This placement's predicted peaks for another request (it may exceed the budget: see `check_request`)."""
        peaks = stage_peaks(self.sizes, request, self.placement)
        return MemoryPlan(self.budget_bytes, self.headroom_bytes, request, self.sizes, self.placement, peaks, self.notes)

    def summary(self) -> str:
        p, s = self.placement, self.sizes
        blocks = s.transformer_blocks_fp8 if p.fp8 else s.transformer_blocks
        n = len(blocks)
        stream = n - p.resident_blocks
        lines = [
            f"Memory plan for {self.request.describe()} under {gib(self.budget_bytes)} "
            f"({gib(self.headroom_bytes)} kept free):",
            f"  transformer blocks: {'FP8' if p.fp8 else 'model dtype'} storage, {p.resident_blocks}/{n} resident"
            + (f", {stream} streamed from pinned host memory ({gib(sum(blocks[p.resident_blocks:]))})" if stream else ""),
            f"  text encoder: {p.text_encoder}",
            "  components: " + ", ".join(f"{name} {mode}" for name, mode in p.components),
            f"  VAE tiles: {p.vae_tiling[0]} px, {p.vae_tiling[1]} frames",
            f"  predicted peak: {gib(self.predicted_peak)} ("
            + ", ".join(f"{name} {gib(peak)}" for name, peak in self.stage_peaks)
            + ")",
        ]
        return "\n".join(lines + [f"  note: {note}" for note in self.notes])


# ----------------------------------------------------------------------------------------------------------------------
# Peak model


def _transformer_stages(request: MemoryRequest) -> list[tuple[str, int, int]]:
    """(stage name, batch rows per transformer call, video tokens per row)."""
    r = request
    if r.two_stage:
        return [
            ("stage 1", r.batch_size * r.guidance_passes, r.video_tokens(r.height // 2, r.width // 2)),
            ("stage 2", r.batch_size, r.video_tokens(r.height, r.width)),
        ]
    return [("denoise", r.batch_size * r.guidance_passes, r.video_tokens(r.height, r.width))]


def transformer_activations(sizes: ComponentSizes, rows: int, video_tokens: int, request: MemoryRequest) -> int:
    """One transformer call on `rows` batch rows: per row, TRANSFORMER_UNITS_PER_TOKEN hidden-size tensors per video
    and audio token, plus the text contexts' key/value projections."""
    per_row = (
        video_tokens * sizes.video_width + request.audio_tokens * sizes.audio_width
    ) * TRANSFORMER_UNITS_PER_TOKEN + 4 * request.text_tokens * (sizes.video_width + sizes.audio_width)
    return rows * per_row * BYTES_PER_ELEMENT + WORKSPACE_BYTES


def text_activations(sizes: ComponentSizes, request: MemoryRequest) -> int:
    """Gemma's hidden states (all kept for the connectors) and their normalised copy, per prompt."""
    prompts = request.batch_size * (2 if request.guidance_passes > 1 else 1)
    states = sizes.text_hidden_states * request.text_tokens * sizes.text_hidden_size * BYTES_PER_ELEMENT
    return prompts * (2 * states + WORKSPACE_BYTES) + WORKSPACE_BYTES


def decode_activations(request: MemoryRequest, tiling: tuple[int, int], frames: int) -> int:
    """Video VAE over `frames` pixel frames at full size in `tiling` tiles: one tile's convolutions, two float32
    temporal groups of the output being blended, and the decoded clip."""
    r, (tile_px, tile_frames) = request, tiling
    tile = min(tile_px, r.height) * min(tile_px, r.width) * min(tile_frames, frames)
    blend = 2 * 3 * min(tile_frames, frames) * r.height * r.width * 4 if frames > 1 else 0
    clip = 3 * frames * r.height * r.width * BYTES_PER_ELEMENT
    return r.batch_size * (VAE_BYTES_PER_PIXEL_FRAME * tile + blend + clip) + WORKSPACE_BYTES


def _persistent_and_slots(sizes: ComponentSizes, placement: Placement) -> tuple[int, int]:
    """(bytes resident through every stage, bytes of the transformer's two streaming slots)."""
    p = placement
    blocks = sizes.transformer_blocks_fp8 if p.fp8 else sizes.transformer_blocks
    persistent = sizes.transformer_other + sum(blocks[: p.resident_blocks])
    persistent += sum(getattr(sizes, name) for name, mode in p.components if mode == "resident")
    if p.text_encoder == "resident":
        persistent += sizes.text_encoder
    return persistent, 2 * max(blocks[p.resident_blocks :], default=0)


def stage_peaks(sizes: ComponentSizes, request: MemoryRequest, placement: Placement) -> tuple[tuple[str, int], ...]:
    """Predicted device bytes at each stage's peak for `placement` (see the module docstring for the model)."""
    p = placement
    persistent, slots = _persistent_and_slots(sizes, p)
    onload = dict.fromkeys(SMALL_COMPONENTS, 0) | {name: getattr(sizes, name) for name, m in p.components if m == "onload"}
    gemma = {
        "resident": 0,
        "onload": sizes.text_encoder - sizes.text_encoder_vision,
        "streamed": sizes.text_encoder_other + 2 * max(sizes.text_encoder_layers, default=0),
    }[p.text_encoder]

    r = request
    peaks = [("text encoding", gemma + onload["connectors"] + text_activations(sizes, r))]
    peaks.append(("condition encoding", onload["vae"] + decode_activations(r, p.vae_tiling, r.encode_frames)))
    for name, rows, tokens in _transformer_stages(r):
        peaks.append((name, slots + transformer_activations(sizes, rows, tokens, r)))
        if name == "stage 1":
            upsample = r.batch_size * r.video_tokens(r.height, r.width) * sizes.upsampler_channels * 6
            upsamplers = max(onload["latent_upsampler"], onload["temporal_upsampler"])  # one after the other
            peaks.append(("upsample", upsamplers + upsample * BYTES_PER_ELEMENT + WORKSPACE_BYTES))
    peaks.append(("video decode", onload["vae"] + decode_activations(r, p.vae_tiling, r.num_frames)))
    samples = math.ceil(r.num_frames / r.frame_rate * sizes.audio_sample_rate)
    audio = r.batch_size * samples * VOCODER_BYTES_PER_SAMPLE + WORKSPACE_BYTES
    peaks.append(("audio decode", max(onload["audio_vae"], onload["vocoder"]) + audio))
    return tuple((name, persistent + extra) for name, extra in peaks)


def headroom(budget_bytes: int) -> int:
    """Bytes of the budget the plan leaves free: allocator slack, kernel workspaces, other processes."""
    return GIB + budget_bytes // 32


# ----------------------------------------------------------------------------------------------------------------------
# Search


def present_components(sizes: ComponentSizes) -> tuple[str, ...]:
    """The SMALL_COMPONENTS the pipeline has (non-zero bytes), in SMALL_COMPONENTS' order."""
    return tuple(name for name in SMALL_COMPONENTS if getattr(sizes, name) > 0)


def _placements(num_blocks: int, fp8: bool, has_text_encoder: bool, has_components: tuple[str, ...]):
    """Every placement, in preference order for equal resident blocks."""
    modes = TEXT_ENCODER_MODES if has_text_encoder else ("resident",)
    for text_encoder in modes:
        for components_mode in COMPONENT_MODES:
            components = tuple((name, components_mode) for name in has_components)
            for tiling in VAE_TILINGS:
                yield Placement(fp8, num_blocks, text_encoder, components, tiling)


def _best(sizes: ComponentSizes, request: MemoryRequest, fp8: bool, usable: int) -> Placement | None:
    """The placement with the most resident blocks whose every stage fits in `usable`; ties: earliest in
    `_placements`' order. None when nothing fits even with every block streamed."""
    num_blocks = len(sizes.transformer_blocks)
    present = present_components(sizes)
    best, best_blocks = None, -1
    for candidate in _placements(num_blocks, fp8, sizes.text_encoder > 0, present):
        lo, hi = 0, num_blocks  # peaks grow with resident blocks: bisect for the most that fit
        if max(peak for _, peak in stage_peaks(sizes, request, _with_blocks(candidate, 0))) > usable:
            continue
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if max(peak for _, peak in stage_peaks(sizes, request, _with_blocks(candidate, mid))) <= usable:
                lo = mid
            else:
                hi = mid - 1
        if lo > best_blocks:
            best, best_blocks = _with_blocks(candidate, lo), lo
    return best


def _with_blocks(placement: Placement, resident_blocks: int) -> Placement:
    return Placement(placement.fp8, resident_blocks, placement.text_encoder, placement.components,
                     placement.vae_tiling)  # fmt: skip


def _lean_placement(sizes: ComponentSizes, fp8: bool) -> Placement:
    """Everything streamed or onloaded, the smallest tiles: the least a request can need."""
    components = tuple((name, "onload") for name in present_components(sizes))
    text_encoder = "streamed" if sizes.text_encoder > 0 else "resident"
    return Placement(fp8, 0, text_encoder, components, VAE_TILINGS[-1])


def plan_memory(
    budget_bytes: int,
    sizes: ComponentSizes,
    request: MemoryRequest,
    *,
    fp8: "bool | str" = "auto",
    fp8_supported: bool = False,
) -> MemoryPlan:
    """The fastest placement of `sizes` whose predicted peak stays under `budget_bytes` for `request`.

    fp8: "auto" (FP8 block storage when the blocks would not all stay resident otherwise, and `fp8_supported`),
        True (always; needs `fp8_supported`) or False (the model dtype).
    fp8_supported: whether the device computes FP8 matmuls (CUDA capability 8.9+); the caller decides.
    Raises ValueError when no placement fits, saying what the request needs and what to change.
    """
    if fp8 not in ("auto", True, False):
        raise ValueError(f"fp8={fp8!r}: expected 'auto', True or False")
    if fp8 is True and not fp8_supported and not sizes.transformer_is_fp8:
        raise ValueError(
            "fp8=True, but this device has no FP8 matmuls (CUDA capability 8.9+, e.g. Ada or Hopper): pass "
            "fp8=False or fp8='auto'"
        )
    if fp8 is False and sizes.transformer_is_fp8:
        raise ValueError("fp8=False, but the transformer is in FP8 already: call transformer.disable_fp8() first")
    usable = budget_bytes - headroom(budget_bytes)
    if sizes.transformer_is_fp8:
        choices = [True]
    elif fp8 == "auto":
        choices = [False, True] if fp8_supported else [False]
    else:
        choices = [fp8]

    placement = None
    for use_fp8 in choices:  # model dtype first: FP8 only where it keeps more blocks resident
        found = _best(sizes, request, use_fp8, usable)
        placement = found if found is not None else placement
        if found is not None and found.resident_blocks == len(sizes.transformer_blocks):
            break
    if placement is None:
        raise ValueError(_refusal(budget_bytes, usable, sizes, request, choices[-1], fp8, fp8_supported))
    notes = ()
    if placement.fp8 and not sizes.transformer_is_fp8:
        notes = ("FP8 changes the output within FP8's rounding; pass fp8=False for the model dtype's exact output",)
    return MemoryPlan(
        budget_bytes, budget_bytes - usable, request, sizes, placement, stage_peaks(sizes, request, placement), notes
    )


def _refusal(
    budget_bytes: int, usable: int, sizes: ComponentSizes, request: MemoryRequest, fp8: bool, fp8_arg, supported: bool
) -> str:
    peaks = stage_peaks(sizes, request, _lean_placement(sizes, fp8))
    stage, need = max(peaks, key=lambda item: item[1])
    fixes = "a smaller height/width, fewer frames, a smaller batch or fewer guidance passes, or a larger budget"
    if not fp8 and fp8_arg is not True and not sizes.transformer_is_fp8:
        fixes += ", or FP8 block storage (fp8=True" + (")" if supported else "; needs CUDA capability 8.9+)")
    return (
        f"The request ({request.describe()}) needs at least {gib(need)} on the device at its largest stage "
        f"({stage}, with every transformer block streamed and every component onloaded), plus "
        f"{gib(budget_bytes - usable)} kept free, but the budget is {gib(budget_bytes)}. Use {fixes}."
    )


def check_request(plan: MemoryPlan, request: MemoryRequest) -> int:
    """The predicted peak of `request` under `plan`'s placement (the weights already placed); a ValueError when it
    exceeds the budget, naming what to change. Pipelines call this before any work."""
    peaks = stage_peaks(plan.sizes, request, plan.placement)
    stage, peak = max(peaks, key=lambda item: item[1])
    usable = plan.budget_bytes - plan.headroom_bytes
    if peak > usable:
        raise ValueError(
            f"The request ({request.describe()}) would peak at {gib(peak)} ({stage}) with the weights placed for "
            f"{plan.request.describe()}, over the {gib(plan.budget_bytes)} budget less {gib(plan.headroom_bytes)} "
            f"kept free. Use a smaller size, fewer frames or a smaller batch, or plan for this request: "
            f"pipe.disable_memory_budget(to='cpu'), then pipe.enable_memory_budget(budget, height={request.height}, "
            f"width={request.width}, num_frames={request.num_frames})."
        )
    return peak


def check_transformer_call(plan: MemoryPlan, rows: int, video_tokens: int) -> int:
    """The predicted peak of one transformer call on `rows` x `video_tokens` (conditioning tokens included) under
    `plan`'s placement; a ValueError before the call when it exceeds the budget (the last guard for callers that skip
    `check_request`)."""
    persistent, slots = _persistent_and_slots(plan.sizes, plan.placement)
    peak = persistent + slots + transformer_activations(plan.sizes, rows, video_tokens, plan.request)
    if peak > plan.budget_bytes - plan.headroom_bytes:
        raise ValueError(
            f"A transformer call on {rows} x {video_tokens} video tokens would peak at {gib(peak)}, over the "
            f"{gib(plan.budget_bytes)} budget less {gib(plan.headroom_bytes)} kept free (the weights were placed for "
            f"{plan.request.describe()}). Use a smaller size, fewer frames or a smaller batch, or plan for this "
            f"request (pipe.disable_memory_budget(to='cpu'), then pipe.enable_memory_budget(budget, height=..., "
            f"width=..., num_frames=...))."
        )
    return peak


# ----------------------------------------------------------------------------------------------------------------------
# The "which settings for my card" table of docs/memory.md


def plan_table(
    sizes: ComponentSizes, requests: dict[str, MemoryRequest], budgets_gib: tuple[int, ...], fp8_supported: bool
) -> str:
    """A markdown table of the planner's choices, one row per (budget, request); docs/memory.md embeds it."""
    rows = [
        "| card | workload | FP8 | resident blocks | Gemma | components | VAE tiles | predicted peak |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for budget in budgets_gib:
        for name, request in requests.items():
            try:
                plan = plan_memory(budget * GIB, sizes, request, fp8_supported=fp8_supported)
            except ValueError:
                rows.append(f"| {budget} GB | {name} | – | does not fit | – | – | – | – |")
                continue
            modes = {mode for _, mode in plan.placement.components}
            components = modes.pop() if len(modes) == 1 else "mixed"
            tiles = f"{plan.vae_tiling[0]} px / {plan.vae_tiling[1]} fr"
            rows.append(
                f"| {budget} GB | {name} | {'yes' if plan.fp8 else 'no'} | {len(plan.resident_blocks)}/"
                f"{len(sizes.transformer_blocks)} | {plan.text_encoder} | {components} | {tiles} | "
                f"{plan.predicted_peak / GIB:.1f} GiB |"
            )
    return "\n".join(rows)
