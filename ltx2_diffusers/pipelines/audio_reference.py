"""Audio reference tokens: a clean audio latent appended to the audio stream as context (Dub-It, delta spec §6.1, §6.4).

ltx-core 1.2.0's `AudioConditionByReferenceLatent` in our token layout. The reference's audio latent (B or 1, C_a,
T_ref, mel), normalised as the audio VAE encodes it, becomes T_ref tokens after the T_a generated ones:
- clean_latent = the tokens, denoise mask 1 - strength (0 at strength 1: timestep 0, never changed by the sampler);
- positions: the bounds (seconds) of a T_ref-frame track, shifted back so that its last token ends 0.04 s (one audio
  latent frame) before the generated audio starts: the reference lies in the past, its RoPE times are negative;
- no self-attention mask: the generated and reference tokens attend to each other fully.
The generated tokens stay in front (`LatentState.num_output_tokens`), so `output_tokens()` drops the reference.

`prepare_latents_with_audio_reference` is `denoising.prepare_latents` (its video state: `noised_video_state`) with
those tokens appended BEFORE the audio noise is drawn: the reference draws the noise over the whole audio sequence,
reference tokens included (masked out again), so the draw, and every draw after it, needs T_a + T_ref tokens.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from ..models.autoencoder_kl_ltx2_audio import audio_latent_frames, pack_audio_latents
from ..models.rope import audio_positions
from .conditioning import Generators, LatentState, add_noise, audio_latent_state, grow_attention_mask
from .denoising import ReferenceCondition, VideoCondition, latent_grid, noised_video_state
from .presets import DEFAULT_REFERENCE

REFERENCE_GAP_SECONDS = 0.04  # between the reference's last token and the generated audio's first (1 latent frame)


@dataclass(frozen=True)
class AudioReference:
    """A reference track for the audio stream: `latent` (B or 1, C_a, T_ref, mel), normalised audio VAE latent.

    strength: 1.0 keeps the reference tokens clean (the Dub-It pipeline's value in both stages); lower values let the
    model change them (their denoise mask is 1 - strength).
    """

    latent: Tensor
    strength: float = 1.0


def audio_reference_positions(batch_size: int, num_latent_frames: int, device: torch.device | str | None = None):
    """(B, 1, T_ref, 2) float32 [start, end) seconds of the reference tokens: `rope.audio_positions` of a T_ref-frame
    track minus (its last end + 0.04), so the last token ends at -0.04 s."""
    positions = audio_positions(batch_size, num_latent_frames, device=device)
    return positions - (positions[:, :, -1, 1].max() + REFERENCE_GAP_SECONDS)


def append_audio_reference(state: LatentState, latent: Tensor, strength: float = 1.0) -> LatentState:
    """The audio `state` (B, T_a, C_a * mel) with the reference `latent` (B or 1, C_a, T_ref, mel) appended as T_ref
    tokens (module docstring). The noisy latent holds the tokens too: at strength 1 both ltx-core releases' noisers then
    give the clean tokens (1.2.0 writes zero placeholders there and takes the clean value back by the mask)."""
    if not isinstance(strength, int | float) or isinstance(strength, bool) or not 0.0 <= strength <= 1.0:
        raise ValueError(f"the audio reference strength={strength!r} is outside [0, 1]: 1.0 keeps the reference clean")
    if latent.ndim != 4:
        raise ValueError(f"the audio reference latent must be (B, C_a, T_ref, mel_bins), got {tuple(latent.shape)}")
    batch, _, features = state.latent.shape
    if latent.shape[0] not in (1, batch) or latent.shape[1] * latent.shape[3] != features:
        raise ValueError(
            f"the audio reference latent {tuple(latent.shape)} does not fit the audio state (batch {batch}, "
            f"{features} features per token): encode it with this pipeline's audio VAE"
        )
    tokens = pack_audio_latents(latent).to(state.latent.device, state.latent.dtype).expand(batch, -1, -1)
    # 1 - strength in the tokens' dtype (bf16 in the pipelines), as ltx-core builds it, then promoted by the cat
    mask = torch.full((*tokens.shape[:2], 1), 1.0 - strength, dtype=tokens.dtype, device=tokens.device)
    positions = audio_reference_positions(batch, tokens.shape[1], device=state.positions.device)
    return LatentState(
        latent=torch.cat([state.latent, tokens], dim=1),
        clean_latent=torch.cat([state.clean_latent, tokens], dim=1),
        denoise_mask=torch.cat([state.denoise_mask, mask], dim=1),
        positions=torch.cat([state.positions, positions], dim=2),
        num_output_tokens=state.num_output_tokens,
        attention_mask=grow_attention_mask(state, tokens.shape[1], None, dtype=tokens.dtype),
    )


def prepare_latents_with_audio_reference(
    batch_size: int,
    height: int,
    width: int,
    num_frames: int,
    frame_rate: float,
    *,
    audio_reference: AudioReference,
    generator: Generators,
    device: torch.device,
    dtype: torch.dtype,
    conditions: Sequence[VideoCondition | ReferenceCondition] = (),
    video_channels: int = 128,
    audio_channels: int = 8,
    audio_mel_bins: int = 16,
    noise_scale: float = 1.0,
    initial_video_latent: Tensor | None = None,
    initial_audio_latent: Tensor | None = None,
    video_noise: Tensor | None = None,
    freeze_audio: bool = False,
    reference: str = DEFAULT_REFERENCE,
) -> tuple[LatentState, LatentState]:
    """Noised starting states as `prepare_latents` makes them, the audio with `audio_reference`'s tokens appended:
    video (B, T_v [+ condition tokens], 128), audio (B, T_a + T_ref, C_a * mel).

    Draw order (one generator, the reference's `DiffusionStage`): the video's noise, then the audio's over all
    T_a + T_ref tokens. freeze_audio (stage 2): the audio stays `initial_audio_latent` with denoise mask 0 everywhere;
    its noise is drawn all the same, at scale 0, as the reference's frozen stream draws it.
    reference: "1.2" or "1.0", the ltx-core release whose conditioning and noiser to follow (`prepare_latents`).
    """
    video = noised_video_state(
        batch_size, latent_grid(height, width, num_frames), frame_rate, generator=generator, device=device,
        dtype=dtype, conditions=conditions, num_channels=video_channels, noise_scale=noise_scale,
        initial_latent=initial_video_latent, noise=video_noise, reference=reference,
    )  # fmt: skip
    if freeze_audio and initial_audio_latent is None:
        raise ValueError("freeze_audio keeps the initial audio latent clean: pass initial_audio_latent")
    audio = audio_latent_state(
        batch_size,
        audio_latent_frames(num_frames, frame_rate),
        num_channels=audio_channels,
        num_mel_bins=audio_mel_bins,
        dtype=dtype,
        device=device,
        initial_latent=None
        if initial_audio_latent is None
        else initial_audio_latent.to(device, dtype).expand(batch_size, -1, -1, -1),
    )
    audio = append_audio_reference(audio, audio_reference.latent, audio_reference.strength)
    audio = add_noise(audio, generator, 0.0 if freeze_audio else noise_scale, reference=reference)
    if freeze_audio:
        audio = replace(audio, denoise_mask=torch.zeros_like(audio.denoise_mask), frozen=True)  # sigma 0 (1.2.0)
    return video, audio
