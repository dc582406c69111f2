"""LTX2AVDFRPipeline: ltx-pipelines 1.2.0's `DFRPipeline` for LTX-2.5 (spec 1.2 §6.1 row `dfr_pipeline`, §6.3).

A clip is generated with extra "keyframe slots": one latent frame of tokens per slot, positioned at a single pixel
frame and marked with the model's keyframe embedding, generated with the video (spec 1.2 §6.3). Slots sit every S
pixel frames (S in {24, 32}, `dfr_layout.keyframe_canvas`), so the model lays sharp single frames along the clip.
1. Stage 1 at half size: text (and images) -> video, slots and audio; the 8 distilled sigmas, one positive pass per
   Euler step (the transformer with its LoRAs as loaded: the reference's full model + distilled LoRA).
2. The spatial x2 upsampler enlarges the video latent AND the slots (as a K-frame clip, as the reference does).
3. Stage 2 at full size from the upsampled video and slots, the stage-1 audio re-noised with them; with a detailing
   IC-LoRA (`detailing_adapter`) the half-size stage-1 video is appended as its reference. The shipped audio is stage
   1's: stage 2 runs the audio only because video attends to it.
4. Optional temporal rounds (1 or 2): the temporal x2 upsampler doubles the frame rate, the canvas is split into
   2^round tiles meeting at keyframes (anchors, strength 0.95, from the previous round's keyframes), each tile invents
   a new slot in the middle of every segment, is denoised video-only with Euler-ancestral (eta 0.5) over the last 4
   distilled steps from its own seed, and the tiles are stitched (`dfr_layout`). Its slots and anchors are the next
   round's anchors.
The caller gets (num_frames - 1) 2^rounds + 1 frames at frame_rate * 2^rounds: the canvas's padding is cut off.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial

import torch
from torch import Tensor

from ..loaders.lora import LoRAInput, LTX2LoRA, load_lora_adapter, read_lora
from ..models.autoencoder_kl_ltx2_audio import audio_latent_frames, unpack_audio_latents
from ..models.latent_upsampler import stage_1_size, upsample_latents
from ..schedulers.samplers import euler_ancestral_sample
from ..schedulers.scheduling_ltx2 import Sampler, euler_sample
from .condition_encoding import Keyframes, encode_conditions
from .conditioning import (
    Generators,
    LatentState,
    add_noise,
    audio_latent_state,
    generator_seed,
    grow_attention_mask,
    keyframe_positions,
    patchify_video,
    unpatchify_video,
    video_latent_state,
    video_positions_dtype,
)
from .decoding import decode_frames, decode_waveform
from .denoising import (
    ReferenceCondition,
    StepCallback,
    TextContexts,
    VideoCondition,
    apply_video_conditions,
    check_generator,
    denoise,
    denoise_video_only,
    latent_grid,
)
from .dfr_layout import (
    MAX_TEMPORAL_ROUNDS,
    TemporalTile,
    keyframe_canvas,
    latent_index,
    nearest_latent_frames,
    output_num_frames,
    stage_2_request_frames,
    stitch_tiles,
    temporal_tiles,
    tile_noise_seed,
)
from .guidance import GuidanceScales
from .inputs import ImageInput
from .ltx25 import auto_duration
from .pipeline_base import LTX2AVTwoStagePipelineBase
from .pipeline_output import LTX2PipelineOutput
from .pipeline_utils import (
    StepCallbacks,
    as_list,
    callback_tensor_names,
    maybe_enhance_prompt,
    pipeline_output,
    prompt_contexts,
)
from .presets import DEFAULT_REFERENCE, sampling_preset
from .refinement import StageAdapters, check_adapter, check_upsampler, encode_stage_1_conditions
from .temporal_upsampling import check_temporal_upsampler, check_temporal_upsampler_planned, upsample_in_time
from .text_encoding import PromptEmbeddings
from .validation import check_call_inputs, check_sigmas

ANCHOR_STRENGTH = 0.95  # carried keyframes stay just short of clean, so a tile can still settle its seam
TEMPORAL_ETA = 0.5  # Euler-ancestral eta of the temporal rounds
TEMPORAL_FIRST_STEP = 4  # the rounds denoise over DISTILLED_SIGMAS[4:]
MAX_CONDITIONING_FPS = 60.0  # RoPE time is frame / fps: above 60 fps a latent frame spans too little time
DETAILING_DOWNSCALE_FACTOR = 2  # the x2 pixel-spatial-upscaler IC-LoRA's reference_downscale_factor


# ----------------------------------------------------------------------------------------------------------------------
# Generated keyframe slots (ltx-core 1.2.0's `VideoGeneratedKeyframeSlots`, spec 1.2 §6.3)


@dataclass(frozen=True)
class KeyframeSlots:
    """Slots to generate at pixel frames `positions` (increasing), optionally started from `initial` (B or 1, C, K,
    H', W') latents (noised like the rest; zeros without)."""

    positions: tuple[int, ...]
    initial: Tensor | None = None


def append_keyframe_slots(
    state: LatentState, slots: KeyframeSlots, grid: tuple[int, int, int], fps: float
) -> tuple[LatentState, int]:
    """Append one latent frame of tokens per slot: latent = the initial content (or zeros), clean latent zeros, denoise
    mask 1, keyframe mark 1, positions the full spatial grid at time [k, k + 1) / fps. Returns (state, index of the
    first slot token)."""
    positions, (num_frames, height, width) = slots.positions, grid
    last_frame = 8 * (num_frames - 1)
    if not positions or any(b <= a for a, b in zip(positions, positions[1:])) or not 0 <= positions[0]:
        raise ValueError(f"keyframe slot positions must be non-empty and increasing from 0, got {positions}")
    if positions[-1] > last_frame:
        raise ValueError(
            f"a keyframe slot at pixel frame {positions[-1]} is outside the clip's {last_frame + 1} frames"
        )
    batch, _, channels = state.latent.shape
    if slots.initial is None:
        tokens = state.latent.new_zeros(batch, len(positions) * height * width, channels)
    else:
        if slots.initial.shape[1:] != (channels, len(positions), height, width):
            raise ValueError(
                f"initial slot latents of shape {tuple(slots.initial.shape)}; expected (B, {channels}, "
                f"{len(positions)}, {height}, {width})"
            )
        tokens = patchify_video(slots.initial).to(state.latent).expand(batch, -1, -1)
    slot_positions = torch.cat(
        [keyframe_positions(batch, 1, height, width, p, fps, "1.2") for p in positions], dim=2
    ).to(state.positions.device)
    marks = torch.ones(batch, tokens.shape[1], 1, dtype=torch.float32, device=tokens.device)
    unmarked = torch.zeros_like(state.denoise_mask) if state.keyframes_mask is None else state.keyframes_mask
    keyframes_mask = torch.cat([unmarked, marks], dim=1)
    appended = LatentState(
        latent=torch.cat([state.latent, tokens], dim=1),
        clean_latent=torch.cat([state.clean_latent, torch.zeros_like(tokens)], dim=1),
        denoise_mask=torch.cat([state.denoise_mask, marks], dim=1),
        positions=torch.cat([state.positions, slot_positions], dim=2),
        num_output_tokens=state.num_output_tokens,
        attention_mask=grow_attention_mask(state, tokens.shape[1], None, dtype=tokens.dtype),
        frozen=state.frozen,
        keyframes_mask=keyframes_mask,
    )
    return appended, state.latent.shape[1]


def generated_keyframes(state: LatentState, first_token: int, num_slots: int, grid: tuple[int, int, int]) -> Tensor:
    """The slots' denoised latents (B, C, K, H', W'): each an image latent of its own (decode one at a time)."""
    tokens = state.latent[:, first_token : first_token + num_slots * grid[1] * grid[2]]
    return unpatchify_video(tokens, num_slots, grid[1], grid[2])


# ----------------------------------------------------------------------------------------------------------------------
# Stages


@dataclass(frozen=True)
class StageResult:
    """A denoised stage: video (B, C, F', H', W'), its slots (B, C, K, H', W'), audio (B, C_a, T_a, mel) or None."""

    video: Tensor
    keyframes: Tensor
    audio: Tensor | None


def keyframe_stage(
    transformer: torch.nn.Module,
    contexts: TextContexts,
    sigmas: Tensor,
    grid: tuple[int, int, int],
    fps: float,
    *,
    generator: Generators,
    conditions: Sequence[VideoCondition] = (),
    slots: KeyframeSlots,
    reference: ReferenceCondition | None = None,
    initial_video: Tensor | None = None,
    audio: Tensor | None = None,
    sampler: Sampler = euler_sample,
    progress_bar: Callable | None = None,
    callback: StepCallback | None = None,
) -> StageResult:
    """One denoising stage with keyframe slots (the reference's `DiffusionStage` call with `SimpleDenoiser`).

    The video state: `initial_video` (or zeros) on `grid`, then the conditions (frame 0 replaced, other frames appended
    as keyframe tokens), the slots, the IC `reference`, in the reference's order, noised to sigmas[0] from
    `generator`; then the audio state from `audio` (B, C_a, T_a, mel) (zeros for a first stage), noised from the same
    generator. `audio=None` runs the transformer video-only (no audio tokens, no audio noise drawn). One positive pass
    per step with `sampler`."""
    batch, device, dtype = contexts.video.shape[0], contexts.video.device, transformer.dtype
    video = video_latent_state(
        batch, *grid, fps, dtype=dtype, device=device, initial_latent=initial_video,
        positions_dtype=video_positions_dtype(dtype, DEFAULT_REFERENCE),
    )  # fmt: skip
    video = apply_video_conditions(video, conditions, grid=grid, fps=fps)
    video, first_slot = append_keyframe_slots(video, slots, grid, fps)
    if reference is not None:
        video = apply_video_conditions(video, [reference], grid=grid, fps=fps)
    noise_scale = float(sigmas[0])
    video = add_noise(video, generator, noise_scale)
    neutral = GuidanceScales()  # cfg 1, no STG, no modality guidance: the positive pass only
    if audio is None:
        video = denoise_video_only(
            transformer, video, contexts, sigmas, sampler=sampler, progress_bar=progress_bar, callback=callback
        )
        audio_latents = None
    else:
        channels, num_frames, mel_bins = audio.shape[1:]
        audio_state = audio_latent_state(
            batch, num_frames, num_channels=channels, num_mel_bins=mel_bins, dtype=dtype, device=device,
            initial_latent=audio.to(device, dtype).expand(batch, -1, -1, -1),
        )  # fmt: skip
        audio_state = add_noise(audio_state, generator, noise_scale)
        video, audio_state = denoise(
            transformer, video, audio_state, contexts, sigmas, neutral, neutral, sampler=sampler,
            progress_bar=progress_bar, callback=callback,
        )  # fmt: skip
        audio_latents = unpack_audio_latents(audio_state.output_tokens(), channels)
    return StageResult(
        unpatchify_video(video.output_tokens(), *grid),
        generated_keyframes(video, first_slot, len(slots.positions), grid),
        audio_latents,
    )


@dataclass(frozen=True)
class CarriedKeyframes:
    """The keyframes a temporal round anchors its tiles on: pixel frames of the round before (increasing) and their
    latents (B, C, K, H', W')."""

    positions: tuple[int, ...]
    latents: Tensor

    def at(self, positions: Sequence[int]) -> Tensor:
        index = {p: i for i, p in enumerate(self.positions)}
        missing = [p for p in positions if p not in index]
        if missing:
            raise ValueError(f"no carried keyframe at pixel frames {missing}; carried: {list(self.positions)}")
        return torch.cat([self.latents[:, :, index[p] : index[p] + 1] for p in positions], dim=2)


def merge_keyframes(
    anchors: CarriedKeyframes, slot_positions: Sequence[int], slot_latents: Sequence[Tensor]
) -> CarriedKeyframes:
    """The next round's anchors: the round's seams and its new slots (B, C, 1, H', W') each, by position; a slot made
    by two tiles (in the later one's lead-in) keeps the earlier tile's latent."""
    by_position = {p: anchors.latents[:, :, i : i + 1] for i, p in enumerate(anchors.positions)}
    slots = torch.cat(list(slot_latents), dim=2)
    first = {}
    for i, p in enumerate(slot_positions):
        first.setdefault(p, i)
    by_position |= {p: slots[:, :, i : i + 1] for p, i in first.items()}
    positions = tuple(sorted(by_position))
    return CarriedKeyframes(positions, torch.cat([by_position[p] for p in positions], dim=2))


def tile_conditions(conditions: Sequence[VideoCondition], tile: TemporalTile, scale: int) -> list[VideoCondition]:
    """The image conditions inside a tile, at frames of its own clip: a condition at frame k of the requested clip
    sits at k * scale (scale = 2^round) in the round's canvas."""
    inside = [c for c in conditions if tile.pixel_start <= c.frame_index * scale <= tile.pixel_end]
    return [replace(c, frame_index=c.frame_index * scale - tile.pixel_start) for c in inside]


def temporal_round(
    transformer: torch.nn.Module,
    temporal_upsampler: torch.nn.Module,
    video: Tensor,
    carried: CarriedKeyframes,
    contexts: TextContexts,
    sigmas: Tensor,
    *,
    round_index: int,
    fps: float,
    seed: int,
    generator: Generators,
    latents_mean: Tensor,
    latents_std: Tensor,
    conditions: Sequence[VideoCondition] = (),
    progress_bar: Callable | None = None,
    callback: StepCallback | None = None,
) -> tuple[Tensor, CarriedKeyframes]:
    """One temporal x2 round: video (B, C, F', H', W') normalised -> (B, C, 2F' - 1, H', W'), and the next anchors.

    The latent is upsampled in time, the canvas (8 (2F' - 2) + 1 frames at `fps`, the doubled rate) is split into
    2^round_index tiles at the carried keyframes (their positions doubled), and each tile is denoised video-only:
    its piece of the upsampled latent re-noised to sigmas[0] from `generator`, its anchors (strength 0.95), new slots
    mid-segment started from the nearest latent frames, Euler-ancestral with eta 0.5 and noise seeded
    `tile_noise_seed(seed, round_index, tile)`; the tiles are stitched. conditions: image latents at full size with
    frame indices of the requested clip."""
    upsampled = upsample_in_time(temporal_upsampler, video, latents_mean, latents_std)
    num_frames = 8 * (upsampled.shape[2] - 1) + 1
    anchors = CarriedKeyframes(tuple(2 * p for p in carried.positions), carried.latents)
    tiles = temporal_tiles(anchors.positions, num_frames, 2**round_index)
    condition_fps = min(fps, MAX_CONDITIONING_FPS)
    tile_latents, slot_positions, slot_latents = [], [], []
    for index, tile in enumerate(tiles):
        piece = upsampled[:, :, tile.latent_start : tile.latent_stop]
        grid = (piece.shape[2], *piece.shape[3:])
        anchor_conditions = [
            VideoCondition(anchors.at([p]), p - tile.pixel_start, ANCHOR_STRENGTH, append=True) for p in tile.anchors
        ]
        local_slots = tuple(tile.local(tile.slots))
        starts = nearest_latent_frames(local_slots, piece.shape[2])
        initial = torch.cat([piece[:, :, i : i + 1] for i in starts], dim=2)
        sampler = partial(
            euler_ancestral_sample, eta=TEMPORAL_ETA, s_noise=1.0, noise_seed=tile_noise_seed(seed, round_index, index)
        )
        result = keyframe_stage(
            transformer, contexts, sigmas, grid, condition_fps, generator=generator,
            conditions=[*tile_conditions(conditions, tile, 2**round_index), *anchor_conditions],
            slots=KeyframeSlots(local_slots, initial), initial_video=piece, sampler=sampler,
            progress_bar=progress_bar, callback=callback,
        )  # fmt: skip
        tile_latents.append(result.video)
        slot_positions.extend(tile.slots)
        slot_latents.append(result.keyframes)
    return stitch_tiles(tile_latents, tiles), merge_keyframes(anchors, slot_positions, slot_latents)


def check_dfr_inputs(transformer, latent_upsampler, temporal_upsampler, rounds: object) -> None:
    """What a DFR call needs before any work: a transformer with the keyframe embedding (LTX-2.5), a spatial
    upsampler, and for temporal rounds (0, 1 or 2) the temporal one."""
    if not getattr(transformer.config, "use_keyframes_abs_pos_embedding", False):
        raise ValueError(
            "the DFR pipeline generates keyframe slots, which need a transformer trained with the keyframe embedding "
            "(config use_keyframes_abs_pos_embedding=True: LTX-2.5); this transformer has none. Load an LTX-2.5 "
            "checkpoint."
        )
    check_upsampler(latent_upsampler)
    if latent_upsampler.spatial_ratio != (2, 1):
        raise ValueError(
            f"DFR needs the spatial x2 latent upsampler (its stage 1 runs at half size, and the detailing reference's "
            f"positions are scaled for that), got a x{latent_upsampler.spatial_scale:g} one: load "
            "ltx-2-spatial-upscaler-x2 as latent_upsampler"
        )
    if isinstance(rounds, bool) or not isinstance(rounds, int) or not 0 <= rounds <= MAX_TEMPORAL_ROUNDS:
        raise ValueError(f"temporal_upsample_rounds must be 0, 1 or 2 (x1, x2, x4 the frame rate), got {rounds!r}")
    if rounds > 0:
        check_temporal_upsampler(temporal_upsampler)


class LTX2AVDFRPipeline(LTX2AVTwoStagePipelineBase):
    """Text/image -> video + stereo audio with generated keyframe slots, a detailing stage and optional temporal x2
    rounds (ltx-pipelines 1.2.0's `DFRPipeline`; see the module docstring).

    Components: those of `LTX2AVTwoStagePipeline` (an LTX-2.5 transformer: the full model with the distilled LoRA
    loaded as an adapter, or a distilled one; `latent_upsampler` the spatial x2 one) plus `temporal_upsampler`, the
    temporal x2 `LTX2LatentUpsamplerModel`, needed only for temporal rounds.
    """

    model_cpu_offload_seq = (
        "text_encoder->connectors->duration_head->transformer->latent_upsampler->temporal_upsampler->vae->"
        "diffusion_decoder->audio_vae->vocoder"
    )
    _optional_components = [*LTX2AVTwoStagePipelineBase._optional_components, "temporal_upsampler"]
    _callback_tensor_inputs = ["video_latents"]

    def __init__(
        self, scheduler, vae, audio_vae, text_encoder, tokenizer, connectors, transformer, vocoder,
        latent_upsampler=None, temporal_upsampler=None, processor=None, diffusion_decoder=None, duration_head=None,
    ):  # fmt: skip
        super().__init__(
            scheduler, vae, audio_vae, text_encoder, tokenizer, connectors, transformer, vocoder, latent_upsampler,
            processor, diffusion_decoder, duration_head,
        )  # fmt: skip
        self.register_modules(temporal_upsampler=temporal_upsampler)

    def load_detailing_lora(self, lora: LoRAInput, adapter_name: str = "detailing", strength: float = 1.0) -> str:
        """Load the detailing IC-LoRA (ltx-2.5-22b-ic-lora-pixel-spatial-upscaler-x2) as a peft adapter of the
        transformer and record its `reference_downscale_factor` (metadata; 2 when absent or 1, as the reference).
        Pass the returned name as `detailing_adapter=`; it is off except in stage 2."""
        lora = lora if isinstance(lora, LTX2LoRA) else read_lora(lora)
        factor = lora.reference_downscale_factor
        name = load_lora_adapter(self.transformer, lora, adapter_name, strength, connectors=self.connectors)
        self._detailing_factors = {**getattr(self, "_detailing_factors", {}), name: factor if factor != 1 else 2}
        return name

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        *,
        image: ImageInput | None = None,
        image_strength: float = 1.0,
        image_crf: int | None = None,
        keyframes: Keyframes = (),
        enhance_prompt: bool = False,
        enhance_prompt_seed: int | None = None,
        height: int | None = None,
        width: int | None = None,
        num_frames: int | None = None,
        frame_rate: float | None = None,
        min_seconds: float | None = None,
        max_seconds: float | None = None,
        temporal_upsample_rounds: int = 0,
        detailing_adapter: str | None = None,
        detailing_downscale_factor: int | None = None,
        sigmas: Sequence[float] | None = None,
        stage_2_sigmas: Sequence[float] | None = None,
        num_videos_per_prompt: int = 1,
        generator: Generators = None,
        prompt_embeds: PromptEmbeddings | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("video_latents",),
        allow_large: bool = False,
    ) -> LTX2PipelineOutput | tuple:
        """Generate (num_frames - 1) 2^temporal_upsample_rounds + 1 frames of `height` x `width` (multiples of 64) at
        frame_rate * 2^temporal_upsample_rounds, with stage 1's stereo soundtrack cut to the clip's length.

        image / keyframes / image_strength / image_crf / prompt arguments: as `LTX2AVTwoStagePipeline`.
        temporal_upsample_rounds: 0, 1 or 2 temporal x2 rounds (2 and 4 tiles); > 0 needs `temporal_upsampler`.
        detailing_adapter: a peft adapter of the transformer (the x2 pixel-spatial-upscaler IC-LoRA), on in stage 2
            only, with the half-size stage-1 video as its reference at 1/`detailing_downscale_factor` (None: the
            factor `load_detailing_lora` read, else 2). None: stage 2 runs without a reference, as the reference's.
        sigmas / stage_2_sigmas: None -> the 8 distilled sigmas / `STAGE_2_DISTILLED_SIGMAS`; the temporal rounds
            always use the distilled sigmas from the 5th on.
        Returns `LTX2PipelineOutput(frames, audio, audio_sample_rate)` or `(frames, audio)`; output_type="latent":
        the video latent (B, 128, F', H/32, W/32) of the returned frames and stage 1's audio latent (B, 8, T_a, 16).
        """
        # 1. Check everything before any encoder runs
        rounds = temporal_upsample_rounds
        check_dfr_inputs(self.transformer, self.latent_upsampler, self.temporal_upsampler, rounds)
        budget = self._memory_placement
        check_temporal_upsampler_planned(
            rounds > 0 and budget is not None and budget.plan.sizes.temporal_upsampler == 0
        )
        check_adapter(self.transformer, detailing_adapter, "detailing_adapter")
        if detailing_downscale_factor is None:
            factors = getattr(self, "_detailing_factors", {})
            detailing_downscale_factor = factors.get(detailing_adapter, DETAILING_DOWNSCALE_FACTOR)
        factor = detailing_downscale_factor
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
            raise ValueError(
                f"detailing_downscale_factor must be a positive int (the detailing LoRA's reference_downscale_factor, "
                f"2 for the released one), got {factor!r}"
            )
        preset = sampling_preset(self.model_version, "distilled")
        height = preset.two_stage_height if height is None else height
        width = preset.two_stage_width if width is None else width
        frame_rate = preset.frame_rate if frame_rate is None else frame_rate
        duration = auto_duration(self, num_frames, frame_rate, min_seconds, max_seconds)
        num_frames = (preset.num_frames if duration is None else duration.longest) if num_frames is None else num_frames
        batch_size = check_call_inputs(
            prompt=prompt, prompt_embeds=prompt_embeds, num_videos_per_prompt=num_videos_per_prompt,
            enhance_prompt=enhance_prompt, height=height, width=width, num_frames=num_frames, frame_rate=frame_rate,
            size_multiple=64, image=image, image_strength=image_strength, image_crf=image_crf, keyframes=keyframes,
            sigmas=sigmas, output_type=output_type, callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
            callback_tensor_inputs=self._callback_tensor_inputs, generator=generator, return_dict=return_dict,
            allow_large=allow_large,
        )  # fmt: skip
        check_sigmas(stage_2_sigmas, name="stage_2_sigmas")
        canvas = keyframe_canvas(num_frames)  # at least 9 frames (one segment of slots)
        reference_factor = None if detailing_adapter is None else factor
        self.check_memory_budget(  # stage 2 is the largest call: the canvas, its slots and the detailing reference
            height, width, stage_2_request_frames(canvas, reference_factor), batch_size, frame_rate=frame_rate
        )
        check_generator(generator, batch_size, self._execution_device)  # noise is drawn where the latents live
        image_crf = preset.image_crf if image_crf is None else image_crf
        sigmas = torch.tensor(preset.sigmas if sigmas is None else sigmas, dtype=torch.float32)
        stage_2_sigmas = torch.tensor(preset.stage_2_sigmas if stage_2_sigmas is None else stage_2_sigmas)
        temporal_sigmas = torch.tensor(preset.sigmas[TEMPORAL_FIRST_STEP:], dtype=torch.float32)
        device, transformer = self._execution_device, self.transformer
        half = stage_1_size(height, width, self.latent_upsampler.spatial_ratio)
        names = callback_tensor_names(callback_on_step_end, callback_on_step_end_tensor_inputs)
        callback = StepCallbacks(self, callback_on_step_end, names)
        stats = {"latents_mean": self.vae.latents_mean, "latents_std": self.vae.latents_std}

        # 2. Prompts (optionally enhanced) -> contexts; the clip length (LTX-2.5 may predict it) -> the keyframe canvas
        prompts = as_list(prompt)
        if prompts is not None:
            first_image = image if image is not None else (keyframes[0][0] if keyframes else None)
            prompts = maybe_enhance_prompt(
                self, prompts, enhance_prompt, first_image, enhance_prompt_seed, generator, device
            )
        contexts = prompt_contexts(
            self, prompts, None, prompt_embeds=prompt_embeds, negative_prompt_embeds=None, needs_negative=False,
            num_videos_per_prompt=num_videos_per_prompt, device=device, dtype=transformer.dtype,
        )  # fmt: skip
        if duration is not None:
            num_frames = duration.predict(self, contexts.video, contexts.audio)
        canvas = keyframe_canvas(num_frames)
        slots = canvas.slot_positions
        layout = self.latent_layout  # the first stage's audio starts from zeros, as the reference's
        silence = torch.zeros(
            1, layout["audio_channels"], audio_latent_frames(canvas.num_frames, frame_rate), layout["audio_mel_bins"],
            device=device, dtype=transformer.dtype,
        )  # fmt: skip

        with StageAdapters(transformer) as adapters:
            # 3. Stage 1 at half size: video, keyframe slots and audio (without the detailing adapter)
            adapters.use(adapters.others(detailing_adapter))
            conditions = encode_stage_1_conditions(
                self.vae, image, image_strength, keyframes, height, width, half, image_crf, device
            )
            stage_1 = keyframe_stage(
                transformer, contexts, sigmas, latent_grid(*half, canvas.num_frames), frame_rate, generator=generator,
                conditions=conditions, slots=KeyframeSlots(slots),
                audio=silence, progress_bar=self.progress_bar, callback=callback,
            )  # fmt: skip

            # 4. Spatial x2 of the video and of the slots; stage 2 at full size (the detailing adapter on)
            upsampled_video, upsampled_slots = (
                upsample_latents(self.latent_upsampler, x, **stats).to(x.dtype)
                for x in (stage_1.video, stage_1.keyframes)
            )
            if detailing_adapter is not None:
                adapters.use([*adapters.others(detailing_adapter), detailing_adapter])
            conditions = encode_conditions(self.vae, image, image_strength, keyframes, height, width, image_crf, device)
            detailing = (
                None
                if detailing_adapter is None
                else ReferenceCondition(stage_1.video, 1.0, detailing_downscale_factor)
            )
            stage_2 = keyframe_stage(
                transformer, contexts, stage_2_sigmas, latent_grid(height, width, canvas.num_frames), frame_rate,
                generator=generator, conditions=conditions, slots=KeyframeSlots(slots, upsampled_slots),
                reference=detailing, initial_video=upsampled_video, audio=stage_1.audio,
                progress_bar=self.progress_bar, callback=callback,
            )  # fmt: skip

            # 5. Temporal rounds (without the detailing adapter): x2 in time, tiles meeting at keyframes, stitched
            adapters.use(adapters.others(detailing_adapter))
            video, carried = stage_2.video, CarriedKeyframes(slots, stage_2.keyframes)
            for round_index in range(1, rounds + 1):
                video, carried = temporal_round(
                    transformer, self.temporal_upsampler, video, carried, contexts, temporal_sigmas,
                    round_index=round_index, fps=frame_rate * 2**round_index, seed=generator_seed(generator),
                    generator=generator, conditions=conditions, progress_bar=self.progress_bar, callback=callback,
                    **stats,
                )  # fmt: skip

        # 6. The requested length (the canvas may have padded it), then frames and the stage-1 waveform cut to it
        out_frames = output_num_frames(num_frames, rounds)
        video = video[:, :, : latent_index(out_frames - 1) + 1]
        frames = decode_frames(self.video_decoder, video, output_type, generator)
        waveform, sample_rate = decode_waveform(
            self.audio_vae, self.vocoder, stage_1.audio, output_type, DEFAULT_REFERENCE
        )
        if sample_rate is not None:
            waveform = waveform[..., : round(out_frames / (frame_rate * 2**rounds) * sample_rate)]
        return pipeline_output(self, frames, waveform, sample_rate, return_dict)
