"""Decoding, the last stage of every LTX-2 pipeline: normalised latents -> frames (by output type) and waveform."""

import PIL.Image
import torch
from torch import Tensor

from ..models.diffusion_video_decoder import LTX2VideoDiffusionDecoderModel
from .conditioning import Generators
from .denoising import decode_audio, decode_video
from .diffusion_decoding import diffusion_decode_video


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


def decode_waveform(
    audio_vae: torch.nn.Module, vocoder: torch.nn.Module, audio_latents: Tensor, output_type: str
) -> tuple[Tensor, int | None]:
    """Normalised audio latents (B, 8, T_a, 16) -> (stereo waveform (B, 2, samples) float32, its sample rate); for
    output_type "latent" the latents as they are and None."""
    if output_type == "latent":
        return audio_latents, None
    return decode_audio(audio_vae, vocoder, audio_latents), int(vocoder.config.output_sampling_rate)
