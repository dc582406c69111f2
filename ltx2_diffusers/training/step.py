"""One training step's model call: cached samples -> batch -> noised transformer inputs by mode -> per-sample loss.

The transformer is called as the pipelines call it (token layout, positions in seconds and pixels, timesteps =
1000 x sigma), with ltx-trainer's training-time choices (spec §1.3, §3): float32 positions at the clip's own frame
rate, an independent sigma per modality drawn with that modality's token count, no text mask (the connectors'
registers make it all ones), and for a frozen modality sigma 0 as well as timesteps 0.
"""

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..models.autoencoder_kl_ltx2_audio import pack_audio_latents
from ..models.rope import audio_positions, video_positions
from ..pipelines.conditioning import patchify_video
from .data import CachedSample
from .metadata import DataError
from .objective import SigmaSampler, Stream, StreamInputs, TrainingMode, frozen_stream, generated_stream, masked_loss

TIMESTEP_SCALE = 1000.0  # the transformer takes timesteps = 1000 x sigma (diffusers' convention)


@dataclass(frozen=True)
class Batch:
    """Cached samples stacked: video_latents (B, 128, F', H', W') or None (a mode without video), audio_latents
    (B, 8, T_a, 16) or None, video_context (B, L, D_v), audio_context (B, L, D_a), fps of the clips (None without
    video), and for IC-LoRA reference_latents (B, 128, F', H'/s, W'/s)."""

    video_latents: Tensor | None
    audio_latents: Tensor | None
    video_context: Tensor
    audio_context: Tensor
    fps: float | None
    reference_latents: Tensor | None = None


def collate(samples: Sequence[CachedSample], mode: TrainingMode, device: torch.device | str = "cpu") -> Batch:
    """Stack samples of one shape into a Batch on `device`; a mode that needs audio refuses samples without it."""
    if mode.needs_audio:
        silent = [s.path for s in samples if s.audio_latents is None]
        if silent:
            raise DataError(
                f"{silent[0]}: cached without audio (its clip has no audio track), but --mode {mode.name} trains "
                "audio; give the clip a soundtrack or use a video-only mode (t2v)"
            )
    if mode.has_video:
        audio_only = [s.path for s in samples if s.video_latents is None]
        if audio_only:
            raise DataError(
                f"{audio_only[0]}: an audio-only sample (cached from an audio file), but --mode {mode.name} trains "
                "video; use --mode audio, or drop the file from metadata.jsonl"
            )
    if mode.reference:
        missing = [s.path for s in samples if s.reference_latents is None]
        if missing:
            raise DataError(
                f"{missing[0]}: cached without a reference video, but --mode {mode.name} needs one: add "
                '"reference_file_name" to its metadata.jsonl line and cache again'
            )
    keys = {s.shape_key(mode.needs_audio) for s in samples}
    if len(keys) != 1:
        raise DataError(
            f"a batch mixes sample shapes {sorted(map(str, keys))}; batches are drawn from one bucket at a time"
        )

    def stack(tensors: list[Tensor]) -> Tensor:
        return torch.stack(tensors).to(device)

    audio = stack([s.audio_latents for s in samples]) if mode.needs_audio else None
    video = stack([s.video_latents for s in samples]) if mode.has_video else None
    return Batch(
        video, audio, stack([s.video_context for s in samples]), stack([s.audio_context for s in samples]),
        samples[0].fps if mode.has_video else None,
        stack([s.reference_latents for s in samples]) if mode.reference else None,
    )  # fmt: skip


def sample_generator(seed: int, micro_step: int, slot: int) -> torch.Generator:
    """The CPU generator of one sample's random draws: a pure function of (seed, micro-step, the sample's slot in the
    global batch). So a run resumed from a checkpoint draws exactly what the uninterrupted run drew, and N processes
    with batches of B draw what one process with a batch of N x B draws."""
    digest = hashlib.sha256(f"ltx2-train:{seed}:{micro_step}:{slot}".encode()).digest()
    return torch.Generator(device="cpu").manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def _stream(x0: Tensor, role: Stream, sampler: SigmaSampler, generator, **first_frame) -> StreamInputs:
    if role is Stream.FROZEN:
        return frozen_stream(x0)
    return generated_stream(x0, sampler, generator, **first_frame)


def _cat(parts: list[StreamInputs]) -> StreamInputs:
    """Per-sample streams (batch 1 each) -> one batch."""

    def cat(name: str) -> Tensor | None:
        values = [getattr(part, name) for part in parts]
        return None if values[0] is None else torch.cat(values)

    return StreamInputs(*(cat(f.name) for f in dataclasses.fields(StreamInputs)))


def append_reference_tokens(
    tokens: Tensor, timesteps: Tensor, coords: Tensor, reference: Tensor, fps: float, height: int, width: int
) -> tuple[Tensor, Tensor, Tensor]:
    """IC-LoRA: the reference latents (B, C, F', h', w') as extra video tokens, clean, at timestep 0 (spec §1.3.6).

    Appended after the clip's tokens, as the IC-LoRA pipeline places them (`append_reference`); ltx-trainer prepends
    them, which is the same computation without an attention mask (trap T6). Positions: the reference's own grid at
    the clip's fps, space multiplied by s = H' / h' so it lines up with the clip (spec §1.3.6, core §7.3).
    tokens (B, T, C), timesteps (B, T), coords (B, 3, T, 2) of the clip, whose latent grid is height x width.
    """
    _, _, ref_frames, ref_height, ref_width = reference.shape
    scale = height // ref_height
    if scale * ref_height != height or scale * ref_width != width:
        raise ValueError(
            f"reference latents {ref_height}x{ref_width} are not the clip's {height}x{width} divided by one whole "
            "factor: cache the reference at the bucket's size divided by --reference_downscale_factor"
        )
    ref_coords = video_positions(tokens.shape[0], ref_frames, ref_height, ref_width, fps, dtype=torch.float32)
    ref_coords[:, 1:] *= scale
    ref_tokens = patchify_video(reference).to(tokens.dtype)
    return (
        torch.cat([tokens, ref_tokens], dim=1),
        torch.cat([timesteps, timesteps.new_zeros(ref_tokens.shape[:2])], dim=1),
        torch.cat([coords, ref_coords], dim=2),
    )


def video_in_channels(transformer: nn.Module) -> int:
    """The video token width a transformer takes (through a DDP wrapper's `module`)."""
    return getattr(transformer, "module", transformer).config.in_channels


def audio_only_inputs(video_context: Tensor, video_channels: int, device: torch.device, dtype: torch.dtype) -> dict:
    """The video keyword arguments of an audio-only transformer call (`--mode audio`, ltx-trainer's `video=None`).

    `LTX2VideoTransformer3DModel` always runs a video stream, so the call gets ONE placeholder video token per sample
    (zeros, timestep and sigma 0, a one-token context) and `isolate_modalities=True`, which skips both audio<->video
    attentions in every block: the audio stream then sees nothing of the video, and its output is exactly the
    audio-only model's (tested against ltx-core's `video=None` call). The placeholder's output is not used and its
    cost is one token. video_context: (B, L, D_v), of which the first token is kept; video_channels: the
    transformer's video input channels (`video_in_channels`).
    """
    batch = video_context.shape[0]
    return dict(
        hidden_states=torch.zeros(batch, 1, video_channels, device=device, dtype=dtype),
        encoder_hidden_states=video_context[:, :1].to(device),
        timestep=torch.zeros(batch, 1, device=device),
        sigma=torch.zeros(batch, device=device),
        video_coords=video_positions(batch, 1, 1, 1, 1.0, device=device, dtype=torch.float32),
        isolate_modalities=True,
    )


@dataclass(frozen=True)
class StepLoss:
    """loss: (B,) per-sample total; video / audio: (B,) per modality, None when not generated; video_sigma /
    audio_sigma: (B,) the noise levels drawn (for logging)."""

    loss: Tensor
    video: Tensor | None
    audio: Tensor | None
    video_sigma: Tensor | None
    audio_sigma: Tensor | None


def training_loss(
    transformer: nn.Module,
    batch: Batch,
    mode: TrainingMode,
    sampler: SigmaSampler,
    generators: Sequence[torch.Generator],
    dtype: torch.dtype = torch.float32,
) -> StepLoss:
    """Noise the batch as `mode` says, run the transformer, return the per-sample losses (spec §3.3).

    transformer: an `LTX2VideoTransformer3DModel` (possibly wrapped by accelerate / DDP); generators: one per sample
    (`sample_generator`); dtype: the base weights' dtype, which the tokens and contexts are cast to (autocast handles
    the rest under mixed precision).
    """
    device, b = batch.video_context.device, batch.video_context.shape[0]
    if mode.has_video:
        _, _, frames, height, width = batch.video_latents.shape
    if len(generators) != b:
        raise ValueError(f"got {len(generators)} generators for a batch of {b}: pass one per sample")

    # 1. Clean tokens (float32 on the CPU, where the generators draw; moved after)
    video_x0 = patchify_video(batch.video_latents.float().cpu()) if mode.has_video else None  # (B, F'H'W', 128)
    has_audio = batch.audio_latents is not None and mode.audio is not Stream.ABSENT
    audio_x0 = pack_audio_latents(batch.audio_latents.float().cpu()) if has_audio else None

    # 2. Noise by mode, per sample from its own generator: video first, then audio (ltx-trainer's order, spec §3.5).
    # A 1-frame clip (an image) has no later frame to generate from its first: it is not first-frame conditioned.
    if mode.has_video:
        first_frame = dict(first_frame_tokens=height * width, first_frame_p=mode.first_frame_p if frames > 1 else 0.0)
    video_parts, audio_parts = [], []
    for i, generator in enumerate(generators):
        if video_x0 is not None:
            video_parts.append(_stream(video_x0[i : i + 1], mode.video, sampler, generator, **first_frame))
        if audio_x0 is not None:
            audio_parts.append(_stream(audio_x0[i : i + 1], mode.audio, sampler, generator))
    video = _cat(video_parts) if video_parts else None
    audio = _cat(audio_parts) if audio_parts else None

    # 3. The transformer call
    kwargs = {}
    if audio is not None:
        kwargs = dict(
            audio_hidden_states=audio.latent.to(device, dtype),
            audio_encoder_hidden_states=batch.audio_context.to(dtype),
            audio_timestep=(audio.timesteps * TIMESTEP_SCALE).to(device),
            audio_sigma=(audio.sigma * TIMESTEP_SCALE).to(device),
            audio_coords=audio_positions(b, audio.latent.shape[1], device=device),
        )
    if video is None:  # audio-only: a placeholder video token, cut off from the audio (see `audio_only_inputs`)
        kwargs.update(audio_only_inputs(batch.video_context.to(dtype), video_in_channels(transformer), device, dtype))
    else:
        video_tokens, video_timesteps = video.latent, video.timesteps
        video_coords = video_positions(b, frames, height, width, batch.fps, dtype=torch.float32)
        if mode.reference:
            video_tokens, video_timesteps, video_coords = append_reference_tokens(
                video_tokens, video_timesteps, video_coords, batch.reference_latents.float().cpu(), batch.fps, height,
                width,
            )  # fmt: skip
        kwargs.update(
            hidden_states=video_tokens.to(device, dtype),
            encoder_hidden_states=batch.video_context.to(dtype),
            timestep=(video_timesteps * TIMESTEP_SCALE).to(device),
            sigma=(video.sigma * TIMESTEP_SCALE).to(device),
            video_coords=video_coords.to(device),
        )
    video_prediction, audio_prediction = transformer(return_dict=False, **kwargs)

    # 4. Masked losses of the generated modalities, summed with weight 1
    total = torch.zeros(b, dtype=torch.float32, device=device)
    video_loss = audio_loss = None
    if mode.video is Stream.GENERATED:
        video_prediction = video_prediction[:, : video.latent.shape[1]]  # the clip's tokens; reference tokens follow
        video_loss = masked_loss(video_prediction, video.target.to(device), video.loss_mask.to(device))
        total = total + video_loss
    if audio is not None and mode.audio is Stream.GENERATED:
        audio_loss = masked_loss(audio_prediction, audio.target.to(device), audio.loss_mask.to(device))
        total = total + audio_loss
    return StepLoss(
        total, video_loss, audio_loss,
        video.sigma if mode.video is Stream.GENERATED else None,
        audio.sigma if audio is not None and mode.audio is Stream.GENERATED else None,
    )  # fmt: skip
