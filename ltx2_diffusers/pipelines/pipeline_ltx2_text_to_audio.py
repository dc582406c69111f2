"""LTX2TextToAudioPipeline: a prompt -> a stereo soundtrack, with no video at all (ltx-pipelines 1.2.0's
`T2AOneStagePipeline`).

The reference builds the audio-video checkpoint as an audio-only model (`LTXAudioOnlyModelConfigurator`: the audio
stream's weights only) and runs one stage with `video=None`. Its blocks then run the audio half of every block and
skip audio<->video attention, which needs video tokens. Here the same weights run in the audio-video transformer,
called through `AudioOnlyTransformer` with an EMPTY video stream (0 tokens) and audio<->video attention switched off
for the whole batch (`isolate_modalities`): the audio stream then computes exactly what the audio-only model does,
whatever the video weights are, and the empty video stream costs nothing.

1. Prompts -> contexts (the audio context is used; the negative prompt only when audio cfg != 1).
2. Noise for round(num_frames / frame_rate * 25) audio latent frames, drawn from the generator first and alone (the
   reference draws no video noise here).
3. Euler over the model version's schedule, guided on audio only: cfg, STG and rescale from the version's audio
   guider, modality guidance off (1.0, as the reference's CLI sets it: there is no video to isolate from).
4. The audio VAE and the vocoder decode the latent: (B, 2, samples) at the vocoder's rate.
"""

from collections.abc import Callable, Sequence
from dataclasses import replace

import torch
from torch import Tensor

from ..models.autoencoder_kl_ltx2_audio import audio_latent_frames, pack_audio_latents, unpack_audio_latents
from .conditioning import Generators, LatentState, add_noise, audio_latent_state, empty_video_state
from .decoding import decode_waveform
from .denoising import denoise
from .guidance import GuidanceScales, GuidanceSchedule
from .ltx25 import auto_duration
from .pipeline_base import LTX2AVPipelineBase
from .pipeline_output import LTX2PipelineOutput
from .pipeline_utils import (
    StepCallbacks,
    as_list,
    callback_tensor_names,
    guidance_keywords,
    maybe_enhance_prompt,
    needs_uncond,
    pipeline_output,
    prompt_contexts,
    resolve_guidance,
    resolve_sigmas,
)
from .presets import DEFAULT_REFERENCE, check_reference_for, sampling_preset
from .text_encoding import PromptEmbeddings
from .validation import (
    check_callback,
    check_frame_count,
    check_frame_rate,
    check_generator,
    check_guidance,
    check_guidance_keywords,
    check_num_inference_steps,
    check_output_type,
    check_prompts,
    check_sigmas,
)

AUDIO_OUTPUT_TYPES = ("pt", "np", "latent")


class AudioOnlyTransformer:
    """The audio-video transformer as the reference's audio-only model, for `denoise`.

    Called with an empty video stream (hidden_states (B, 0, C)), it runs with audio<->video attention off in every
    block, so each block is self-attention, text cross-attention and feed-forward of the audio stream only
    (ltx-core's `LTXModelType.AudioOnly`). `config` is the transformer's.
    """

    def __init__(self, transformer: torch.nn.Module):
        self.transformer = transformer
        self.config = transformer.config

    def __call__(self, *, hidden_states: Tensor, **transformer_kwargs) -> tuple[Tensor, Tensor]:
        if hidden_states.shape[1] != 0:
            raise ValueError(
                f"AudioOnlyTransformer runs without video, but got {hidden_states.shape[1]} video tokens: pass an "
                "empty video state (`empty_video_state`)"
            )
        return self.transformer(hidden_states=hidden_states, isolate_modalities=True, **transformer_kwargs)


def check_audio_only_guidance(guidance: GuidanceScales | GuidanceSchedule) -> None:
    """Modality guidance compares against a pass without audio<->video attention, which audio alone never has."""
    scales = [s for _, s in guidance.bins] if isinstance(guidance, GuidanceSchedule) else [guidance]
    if any(s.needs_isolated for s in scales):
        raise ValueError(
            "audio_guidance has modality != 1, but text-to-audio has no video to isolate the audio from: use "
            "modality=1.0 (the reference's text-to-audio sets it so)"
        )


def no_video_guidance(audio_guidance: GuidanceScales | GuidanceSchedule) -> GuidanceScales | GuidanceSchedule:
    """Neutral guidance for the empty video stream that skips the same steps as the audio's (`skip_step`): the
    batched guidance call skips both streams or neither."""
    if isinstance(audio_guidance, GuidanceSchedule):
        return GuidanceSchedule(tuple((b, GuidanceScales(skip_step=s.skip_step)) for b, s in audio_guidance.bins))
    return GuidanceScales(skip_step=audio_guidance.skip_step)


class LTX2TextToAudioPipeline(LTX2AVPipelineBase):
    """Text -> stereo audio with an LTX-2 / LTX-2.3 audio-video checkpoint, no video (ltx-pipelines'
    `T2AOneStagePipeline`).

    Components: those of `LTX2AVPipeline`; `vae` (the video VAE) is not used. A folder saved by either pipeline loads
    into the other.
    """

    _callback_tensor_inputs = ["audio_latents"]

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        negative_prompt: str | list[str] | None = None,
        *,
        num_frames: int | None = None,
        frame_rate: float | None = None,
        min_seconds: float | None = None,
        max_seconds: float | None = None,
        enhance_prompt: bool = False,
        enhance_prompt_seed: int | None = None,
        num_inference_steps: int | None = None,
        sigmas: Sequence[float] | None = None,
        timesteps: Sequence[float] | None = None,
        audio_guidance: GuidanceScales | GuidanceSchedule | None = None,
        audio_guidance_scale: float | None = None,
        audio_stg_scale: float | None = None,
        audio_guidance_rescale: float | None = None,
        spatio_temporal_guidance_blocks: Sequence[int] | None = None,
        num_waveforms_per_prompt: int = 1,
        generator: Generators = None,
        audio_latents: Tensor | None = None,
        prompt_embeds: PromptEmbeddings | None = None,
        negative_prompt_embeds: PromptEmbeddings | None = None,
        output_type: str = "pt",
        return_dict: bool = True,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("audio_latents",),
        reference: str = DEFAULT_REFERENCE,
    ) -> LTX2PipelineOutput | tuple:
        """Generate num_frames / frame_rate seconds of stereo audio that match `prompt`.

        num_frames / frame_rate: the duration, as the reference's text-to-audio takes it (num_frames = 8k + 1; None:
            the model version's 121 frames at 24 fps, 5.04 s); the audio has round(num_frames / frame_rate * 25)
            latent frames of 40 ms. With a `duration_head` (LTX-2.5) num_frames=None predicts the length from the
            prompt's audio context, within [min_seconds, max_seconds] (None: 1 and 20 s), as the reference's T2A.
        negative_prompt: None -> the model version's default negative prompt; used only when audio cfg != 1.
        audio_guidance: None -> the model version's audio guider (LTX-2 / 2.3: cfg 7, STG 1 in its STG block,
            rescale 0.7) with modality guidance off; the scalar keywords change single terms of it. With a distilled
            scheduler: its 8 sigmas and no guidance.
        audio_latents: the noise (B or 1, 8, T_a, 16) instead of a draw.
        output_type: "pt" (float32 tensor), "np" (array) or "latent" (normalised audio latents (B, 8, T_a, 16)).
        reference: "1.2" (default) or "1.0", the ltx-pipelines release whose shared numerics to follow
            (`LTX2AVPipeline.__call__`): here the default negative prompt (1.2.0's starts with five caption tags),
            the tokenization, the noiser and the guidance arithmetic (float32 in 1.2.0). Audio alone has no
            audio<->video AdaLN, the other difference between the two.
        Returns `LTX2PipelineOutput(frames=None, audio (B, 2, samples) in [-1, 1], audio_sample_rate)` or
        `(None, audio)`.
        """
        # 1. Defaults of the model version and kind, then every argument checked before any encoder runs
        preset = sampling_preset(self.model_version, self.kind, check_reference_for(self.model_version, reference))
        preset = replace(preset, audio_guidance=replace(preset.audio_guidance, modality=1.0))
        frame_rate = preset.frame_rate if frame_rate is None else frame_rate
        check_frame_rate(frame_rate)
        duration = auto_duration(self, num_frames, frame_rate, min_seconds, max_seconds, audio_latents=audio_latents)
        num_frames = (preset.num_frames if duration is None else duration.longest) if num_frames is None else num_frames
        keywords = guidance_keywords(
            audio_guidance_scale=audio_guidance_scale, audio_stg_scale=audio_stg_scale,
            audio_guidance_rescale=audio_guidance_rescale, spatio_temporal_guidance_blocks=spatio_temporal_guidance_blocks,
        )  # fmt: skip
        batch_size = check_prompts(
            prompt, negative_prompt, prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_prompt_embeds,
            num_videos_per_prompt=num_waveforms_per_prompt, enhance_prompt=enhance_prompt,
            names={"num_videos_per_prompt": "num_waveforms_per_prompt"},
        )  # fmt: skip
        check_frame_count(num_frames)
        check_frame_rate(frame_rate)
        if num_inference_steps is not None:
            check_num_inference_steps(num_inference_steps)
        check_sigmas(sigmas, num_inference_steps)
        check_guidance(audio_guidance, "audio_guidance")
        check_guidance_keywords(keywords, None, audio_guidance)
        check_output_type(output_type, AUDIO_OUTPUT_TYPES)
        check_callback(callback_on_step_end, callback_on_step_end_tensor_inputs, ("audio_latents",))
        check_generator(generator, batch_size)
        if not isinstance(return_dict, bool):
            raise TypeError(f"return_dict must be True or False, got {return_dict!r}")
        _, audio_guidance = resolve_guidance(None, audio_guidance, preset, keywords)
        check_audio_only_guidance(audio_guidance)
        negative_prompt = preset.negative_prompt if negative_prompt is None else negative_prompt
        prompts, negative_prompts = as_list(prompt), as_list(negative_prompt)
        sigmas = resolve_sigmas(self.scheduler, num_inference_steps, sigmas, timesteps, preset.num_inference_steps)
        names = callback_tensor_names(callback_on_step_end, callback_on_step_end_tensor_inputs)
        device, dtype = self._execution_device, self.transformer.dtype
        layout = self.latent_layout

        # 2. Prompts (optionally enhanced first) -> contexts
        if prompts is not None:
            prompts = maybe_enhance_prompt(self, prompts, enhance_prompt, None, enhance_prompt_seed, generator, device)
        contexts = prompt_contexts(
            self,
            prompts,
            negative_prompts,
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
            needs_negative=needs_uncond(audio_guidance),
            num_videos_per_prompt=num_waveforms_per_prompt,
            device=device,
            dtype=dtype,
            reference=reference,
        )
        if duration is not None:  # LTX-2.5: the length from the prompt's audio context (video_encoding=None there)
            num_frames = duration.predict(self, None, contexts.audio)

        # 3. Audio noise (the only draw) and an empty video stream
        audio = audio_latent_state(
            batch_size,
            audio_latent_frames(num_frames, frame_rate),
            num_channels=layout["audio_channels"],
            num_mel_bins=layout["audio_mel_bins"],
            dtype=dtype,
            device=device,
        )
        noise = None if audio_latents is None else pack_audio_latents(_checked_noise(audio_latents, audio))
        audio = add_noise(audio, generator, 1.0, noise, reference)
        video = empty_video_state(batch_size, layout["video_channels"], dtype, device)

        # 4. Denoise the audio alone, guided on audio
        callbacks = StepCallbacks(self, callback_on_step_end, names)
        _, audio = denoise(
            AudioOnlyTransformer(self.transformer),
            video,
            audio,
            contexts,
            sigmas,
            no_video_guidance(audio_guidance),
            audio_guidance,
            progress_bar=self.progress_bar,
            callback=lambda i, sigma, tensors: callbacks(i, sigma, {"audio_latents": tensors["audio_latents"]}),
            reference=reference,
        )

        # 5. Latent -> waveform at the vocoder's rate
        audio_latents = unpack_audio_latents(audio.output_tokens(), layout["audio_channels"])
        waveform, sample_rate = decode_waveform(self.audio_vae, self.vocoder, audio_latents, output_type, reference)
        if output_type == "np":
            waveform = waveform.cpu().numpy()
        return pipeline_output(self, None, waveform, sample_rate, return_dict)


def _checked_noise(noise: Tensor, audio: LatentState) -> Tensor:
    """User noise (B or 1, C, T_a, mel) against the state's tokens (B, T_a, C * mel)."""
    batch, tokens, features = audio.latent.shape
    if noise.ndim != 4 or noise.shape[0] not in (1, batch) or noise.shape[2] != tokens:
        raise ValueError(
            f"audio_latents must be noise of shape (B or 1, C, {tokens}, mel) with C * mel = {features}, got "
            f"{tuple(noise.shape)}"
        )
    return noise.expand(batch, -1, -1, -1)
