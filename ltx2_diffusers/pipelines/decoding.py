"""Decoding, the last stage of every LTX-2 pipeline: normalised latents -> frames (by output type) and waveform.

`reference` ("1.2" default, "1.0"): ltx-core 1.2.0 runs the LTX-2.3 / LTX-2.5 vocoder + bandwidth extension with
float32 arithmetic over its bf16 weights and rounds the waveform back to the mel's dtype ("bf16 accumulation
degrades spectral metrics 40-90%", delta spec §4.7, table row 5.12); 1.0.0 runs it in the weights' dtype. LTX-2's
HiFi-GAN vocoder runs in its dtype under both.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from itertools import chain

import PIL.Image
import torch
from torch import Tensor

from ..models.diffusion_video_decoder import LTX2VideoDiffusionDecoderModel
from ..models.vocoder import LTX2VocoderWithBWE
from .conditioning import Generators
from .denoising import decode_video
from .diffusion_decoding import diffusion_decode_video
from .presets import DEFAULT_REFERENCE, check_reference


def postprocess_frames(video: Tensor, output_type: str):
    """(B, 3, F, H, W) in [-1, 1] -> "pt" (B, F, 3, H, W) / "np" (B, F, H, W, 3) float32 in [0, 1] / "pil" lists."""
    if output_type == "pil":
        # ltx-core's decode_video converts in the decoder's output dtype (bf16 in the reference's runs) and truncates
        # (spec §13.11): the same expression in the same dtype gives the reference's uint8 frames exactly
        uint8 = (((video + 1.0) / 2.0).clamp(0.0, 1.0) * 255.0).to(torch.uint8)
        return [[PIL.Image.fromarray(frame) for frame in clip] for clip in uint8.permute(0, 2, 3, 4, 1).cpu().numpy()]
    frames = ((video.float() + 1.0) / 2.0).clamp(0.0, 1.0)
    if output_type == "pt":
        return frames.permute(0, 2, 1, 3, 4)
    return frames.permute(0, 2, 3, 4, 1).cpu().numpy()


def decode_frames(vae: torch.nn.Module, video_latents: Tensor, output_type: str, generator: Generators = None):
    """Normalised video latents (B, 128, F', H', W') -> frames by `output_type` ("latent": the latents as they are)."""
    if output_type == "latent":
        return video_latents
    first = generator[0] if isinstance(generator, list) else generator  # only noise-injecting decoders draw
    if isinstance(vae, LTX2VideoDiffusionDecoderModel):  # LTX-2.5: decoding is a short diffusion of its own
        return postprocess_frames(diffusion_decode_video(vae, video_latents, first), output_type)
    return postprocess_frames(decode_video(vae, video_latents, first), output_type)


@contextmanager
def float32_weights(module: torch.nn.Module) -> Iterator[None]:
    """Within the block, `module`'s floating-point parameters and buffers are float32 copies; the original tensors are
    put back afterwards (no cast back, so nothing is rounded twice)."""
    tensors = [t for t in chain(module.parameters(), module.buffers()) if t.is_floating_point()]
    originals = [t.data for t in tensors]
    try:
        for tensor in tensors:
            tensor.data = tensor.data.float()
        yield
    finally:
        for tensor, original in zip(tensors, originals):
            tensor.data = original


def vocode(vocoder: torch.nn.Module, mel: Tensor, reference: str = DEFAULT_REFERENCE) -> Tensor:
    """Log-mel (B, 2, T, 64) -> stereo waveform (B, 2, samples).

    Reference "1.0", and LTX-2's HiFi-GAN under either: the mel cast to the vocoder's dtype, the waveform in that dtype.
    Reference "1.2" with a vocoder + BWE (LTX-2.3 / 2.5): every operation in float32 on a float32 copy of the mel, the
    waveform cast back to the mel's dtype. On CUDA through float32 autocast, which casts the weights per operation (the
    reference's choice: a few MB instead of a float32 copy of the weights); elsewhere autocast has no float32 mode, so
    the weights are float32 copies for the call (what the reference does on MPS; the same numbers).
    """
    if check_reference(reference) == "1.0" or not isinstance(vocoder, LTX2VocoderWithBWE):
        return vocoder(mel.to(vocoder.dtype))
    if mel.device.type == "cuda":
        with torch.autocast("cuda", dtype=torch.float32):
            return vocoder(mel.float()).to(mel.dtype)
    with float32_weights(vocoder):
        return vocoder(mel.float()).to(mel.dtype)


def decode_audio(
    audio_vae: torch.nn.Module, vocoder: torch.nn.Module, latents: Tensor, reference: str = DEFAULT_REFERENCE
) -> Tensor:
    """Normalised audio latents (B, 8, T_a, 16) -> stereo waveform (B, 2, samples) float32 at the vocoder's rate. The
    audio VAE decodes in its own dtype under both references; the vocoder as `vocode` says."""
    latents = audio_vae.denormalize_latents(latents.to(audio_vae.dtype))
    mel = audio_vae.decode(latents, return_dict=False)[0]  # (B, 2, 4 T_a - 3, 64)
    return vocode(vocoder, mel, reference).float()


def decode_waveform(
    audio_vae: torch.nn.Module,
    vocoder: torch.nn.Module,
    audio_latents: Tensor,
    output_type: str,
    reference: str = DEFAULT_REFERENCE,
) -> tuple[Tensor, int | None]:
    """Normalised audio latents (B, 8, T_a, 16) -> (stereo waveform (B, 2, samples) float32, its sample rate); for
    output_type "latent" the latents as they are and None. reference: "1.2" or "1.0" (module docstring)."""
    if output_type == "latent":
        return audio_latents, None
    waveform = decode_audio(audio_vae, vocoder, audio_latents, reference)
    return waveform, int(vocoder.config.output_sampling_rate)
