"""LTX2VideoToAudioPipeline: a video (and a prompt) -> a new soundtrack for it (Foley), the video kept as it is.

ltx-pipelines reaches this only through its `RetakePipeline` (video kept, audio regenerated over the whole clip);
here it is its own entry point over the retake's stages:
1. The clip (a file: its frames and fps, its own audio stream ignored; or frames with `frame_rate`; 8k + 1 frames,
   height and width multiples of 32) is encoded by the video VAE. The video tokens keep that latent through every
   step (denoise mask 0: the transformer sees them at sigma 0 and the sampler never changes them).
2. The audio starts from noise over the whole clip, round(num_frames / frame_rate * 25) latent frames.
3. Euler over the LTX-2 schedule (40 steps), guided with the model version's defaults for both modalities, as the
   reference's retake guides (the video guider's passes shape what the audio sees through video->audio attention);
   with a distilled scheduler its 8 sigmas and one unguided pass per step.
4. The audio VAE and the vocoder decode the soundtrack; the frames returned are the INPUT frames, untouched (no VAE
   round trip), so writing them with the new audio gives the input video with a new soundtrack.
The result equals `LTX2AVRetakePipeline(regenerate_video=False)` over [0, duration) on the clip without its audio.
"""

from collections.abc import Callable, Sequence

import numpy as np
import PIL.Image
import torch
from torch import Tensor

from ..models.autoencoder_kl_ltx2_audio import audio_latent_frames, unpack_audio_latents
from .condition_encoding import encode_pixels
from .conditioning import Generators, unpatchify_video
from .decoding import decode_waveform
from .denoising import denoise
from .guidance import GuidanceScales, GuidanceSchedule
from .inputs import VideoInput, video_frames, video_to_pixels
from .pipeline_base import LTX2AVPipelineBase
from .pipeline_ltx2_av_retake import SOURCE_NAMES, prepare_retake_latents
from .pipeline_output import LTX2PipelineOutput
from .pipeline_utils import (
    StepCallbacks,
    callback_tensor_names,
    guidance_keywords,
    maybe_enhance_prompt,
    needs_uncond,
    pipeline_output,
    prompt_contexts,
    resolve_guidance,
    resolve_sigmas,
)
from .presets import DEFAULT_REFERENCE, check_reference_for, retake_preset
from .text_encoding import PromptEmbeddings
from .validation import check_call_inputs


def input_frames(frames: np.ndarray, batch_size: int, output_type: str):
    """The input (F, H, W, 3) uint8 frames, exactly, in the form of `output_type`, once per sample: "pil" lists of
    images, "np" (B, F, H, W, 3) / "pt" (B, F, 3, H, W) float32 in [0, 1] (value / 255)."""
    if output_type == "pil":
        return [[PIL.Image.fromarray(frame) for frame in frames] for _ in range(batch_size)]
    scaled = np.repeat(frames[None].astype(np.float32) / 255.0, batch_size, axis=0)
    return scaled if output_type == "np" else torch.from_numpy(scaled).permute(0, 1, 4, 2, 3)


class LTX2VideoToAudioPipeline(LTX2AVPipelineBase):
    """Video (+ prompt) -> a new synchronized soundtrack, the video unchanged (Foley; the reference's retake with the
    video kept). Components: those of `LTX2AVPipeline`; a folder saved by either loads into the other."""

    @torch.no_grad()
    def encode_source_video(self, frames: np.ndarray, device: torch.device) -> Tensor:
        """(F, H, W, 3) uint8 -> normalised video latent (1, 128, F', H/32, W/32), as the retake encodes its source."""
        return encode_pixels(self.vae, video_to_pixels(frames, name="video").to(device))

    @torch.no_grad()
    def __call__(
        self,
        video: VideoInput,
        prompt: str | None = None,
        *,
        negative_prompt: str | None = None,
        frame_rate: float | None = None,
        enhance_prompt: bool = False,
        enhance_prompt_seed: int | None = None,
        num_inference_steps: int | None = None,
        sigmas: Sequence[float] | None = None,
        timesteps: Sequence[float] | None = None,
        video_guidance: GuidanceScales | GuidanceSchedule | None = None,
        audio_guidance: GuidanceScales | GuidanceSchedule | None = None,
        audio_guidance_scale: float | None = None,
        audio_stg_scale: float | None = None,
        audio_modality_scale: float | None = None,
        audio_guidance_rescale: float | None = None,
        num_videos_per_prompt: int = 1,
        generator: Generators = None,
        audio_latents: Tensor | None = None,
        prompt_embeds: PromptEmbeddings | None = None,
        negative_prompt_embeds: PromptEmbeddings | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("audio_latents",),
        allow_large: bool = False,
        reference: str = DEFAULT_REFERENCE,
    ) -> LTX2PipelineOutput | tuple:
        """Generate a soundtrack for `video` that matches `prompt`.

        video: a file path (frames and fps are read from it; its audio stream, if any, is ignored) or (F, H, W, 3)
            uint8 frames (array, tensor or PIL images) with `frame_rate`. F must be 8k + 1, H and W multiples of 32.
        prompt: one string describing the sound, or `prompt_embeds` of one prompt; `num_videos_per_prompt`
            soundtracks for the same clip come back as a batch.
        negative_prompt: None -> "" (the reference's retake default); guided runs only.
        num_inference_steps / sigmas / video_guidance / audio_guidance: None -> 40 steps and the model version's
            guidance (the video's shapes the guidance passes the audio sees, as in the reference's retake); with a
            distilled scheduler its 8 sigmas and no guidance. The audio scalar keywords change single audio terms.
        audio_latents: the audio noise (B or 1, 8, T_a, 16) instead of a draw.
        reference: "1.2" (default) or "1.0", the ltx-pipelines release to follow (`LTX2AVPipeline.__call__`), as
            `LTX2AVRetakePipeline`: with "1.2" the frozen video is seen at sigma 0 (its AdaLN and the audio's
            audio<->video gate), with "1.0" at the step's sigma; also the tokenization and the guidance arithmetic.
        Returns `LTX2PipelineOutput(frames, audio, audio_sample_rate)` or `(frames, audio)`: frames are the input
        frames unchanged (by `output_type`; "latent": the encoded video latent), audio (B, 2, samples) float32 at the
        vocoder's rate ("latent": normalised audio latents (B, 8, T_a, 16)).
        """
        # 1. The clip read, the retake's defaults, every argument checked before any encoder runs
        check_reference_for(self.model_version, reference)
        frames, file_fps = video_frames(video, name="video")
        if file_fps is not None:
            frame_rate = file_fps if frame_rate is None else frame_rate
        elif frame_rate is None:
            raise ValueError("frame_rate is needed with frames (token times and the audio length are in seconds)")
        if prompt is not None and not isinstance(prompt, str):
            raise TypeError(f"prompt must be one string (one clip gets a soundtrack), got {type(prompt).__name__}")
        num_frames, height, width = frames.shape[:3]
        keywords = guidance_keywords(
            audio_guidance_scale=audio_guidance_scale, audio_stg_scale=audio_stg_scale,
            audio_modality_scale=audio_modality_scale, audio_guidance_rescale=audio_guidance_rescale,
        )  # fmt: skip
        batch_size = check_call_inputs(
            prompt=prompt, negative_prompt=negative_prompt, prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds, num_videos_per_prompt=num_videos_per_prompt,
            enhance_prompt=enhance_prompt, height=height, width=width, num_frames=num_frames, frame_rate=frame_rate,
            size_multiple=32, num_inference_steps=num_inference_steps, sigmas=sigmas, video_guidance=video_guidance,
            audio_guidance=audio_guidance, guidance_keywords=keywords, output_type=output_type,
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs, generator=generator,
            return_dict=return_dict, allow_large=allow_large, names=SOURCE_NAMES,
        )  # fmt: skip
        if batch_size != num_videos_per_prompt:
            raise ValueError("video-to-audio scores one clip: pass prompt_embeds of one prompt")
        num_audio_frames = audio_latent_frames(num_frames, frame_rate)
        layout = self.latent_layout
        expected = (layout["audio_channels"], num_audio_frames, layout["audio_mel_bins"])
        if audio_latents is not None and (
            audio_latents.ndim != 4
            or audio_latents.shape[0] not in (1, batch_size)
            or audio_latents.shape[1:] != expected
        ):
            raise ValueError(
                f"audio_latents must be noise of shape (1 or {batch_size}, {', '.join(map(str, expected))}) for this "
                f"clip, got {tuple(audio_latents.shape)}"
            )
        preset = retake_preset(self.model_version, self.kind, reference)
        negative_prompt = preset.negative_prompt if negative_prompt is None else negative_prompt
        video_guidance, audio_guidance = resolve_guidance(video_guidance, audio_guidance, preset, keywords)
        sigmas = resolve_sigmas(self.scheduler, num_inference_steps, sigmas, timesteps, preset.num_inference_steps)
        names = callback_tensor_names(callback_on_step_end, callback_on_step_end_tensor_inputs)
        device, dtype = self._execution_device, self.transformer.dtype

        # 2. The clip -> its normalised video latent, frozen (one clip, repeated for num_videos_per_prompt)
        video_latent = self.encode_source_video(frames, device).expand(batch_size, -1, -1, -1, -1)

        # 3. Prompt (optionally enhanced first) -> contexts (the negative one only when a guidance scale needs it)
        prompts = None if prompt is None else [prompt]
        if prompts is not None:
            prompts = maybe_enhance_prompt(self, prompts, enhance_prompt, None, enhance_prompt_seed, generator, device)
        contexts = prompt_contexts(
            self,
            prompts,
            [negative_prompt],
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
            needs_negative=needs_uncond(video_guidance, audio_guidance),
            num_videos_per_prompt=num_videos_per_prompt,
            device=device,
            dtype=dtype,
            reference=reference,
        )

        # 4. Video tokens at the clip's latent with mask 0; audio from noise over the whole clip
        video_state, audio_state = prepare_retake_latents(
            video_latent,
            None,
            frame_rate=frame_rate,
            start_time=0.0,
            end_time=num_frames / frame_rate,
            regenerate_video=False,
            num_audio_frames=num_audio_frames,
            audio_channels=layout["audio_channels"],
            audio_mel_bins=layout["audio_mel_bins"],
            generator=generator,
            dtype=dtype,
            audio_noise=audio_latents,
            reference=reference,
        )

        # 5. Denoise: only the audio changes
        video_state, audio_state = denoise(
            self.transformer,
            video_state,
            audio_state,
            contexts,
            sigmas,
            video_guidance,
            audio_guidance,
            progress_bar=self.progress_bar,
            callback=StepCallbacks(self, callback_on_step_end, names),
            reference=reference,
        )

        # 6. The input frames as they are, the new soundtrack decoded
        audio_latents = unpack_audio_latents(audio_state.output_tokens(), layout["audio_channels"])
        waveform, sample_rate = decode_waveform(self.audio_vae, self.vocoder, audio_latents, output_type, reference)
        if output_type == "latent":
            output = unpatchify_video(video_state.output_tokens(), *video_latent.shape[2:])
        else:
            output = input_frames(frames, batch_size, output_type)
        return pipeline_output(self, output, waveform, sample_rate, return_dict)
