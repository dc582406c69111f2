"""LTX2AVDubItPipeline: new speech for a given video, the lips kept in motion with it (Dub-It, delta spec §6.1).

ltx-pipelines 1.2.0's `DubItPipeline` (formerly LipDub) in diffusers' shape, on the distilled checkpoint with exactly
one Dub-It IC-LoRA, active in both stages, and no guidance (one positive pass per step):
1. The reference clip gives everything but the words: its frame count (snapped down to 8k + 1) and frame rate are the
   output's; its frames are the IC-LoRA's reference video; its soundtrack, encoded whole by the audio VAE, is appended
   to the audio stream as frozen reference tokens in the past (`audio_reference.py`): the voice to keep.
2. Stage 1 at (H/2, W/2) (2/3 of the output with the x1.5 upsampler), 8 distilled steps: video + the reference
   video's tokens at 1/`reference_downscale_factor` of the stage size (strength `reference_strength`); audio + the
   reference audio tokens. Both streams are generated.
3. Stage 2: the video latent upsampled (x2 or x1.5), re-noised to 0.909375 and refined in 3 steps with the reference
   video encoded at full size / factor. The audio is FROZEN at its stage-1 latent, and that latent itself is appended
   again as the audio reference (the reference pipeline's choice).
4. The stage-2 video and the stage-1 audio are decoded: the output has the reference's frames count and fps, and the
   new sound.
One generator draws all noise in the reference's order: stage-1 video, stage-1 audio (reference tokens included),
stage-2 video, stage-2 audio (drawn at scale 0).
"""

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..loaders.lora import LoRAInput, LTX2LoRA, load_lora_adapter, read_lora
from ..models.autoencoder_kl_ltx2_audio import audio_latent_frames, unpack_audio_latents
from ..models.latent_upsampler import upsample_latents
from .audio_reference import AudioReference, prepare_latents_with_audio_reference
from .condition_encoding import check_reference_size, encode_references
from .conditioning import Generators, unpatchify_video
from .decoding import decode_frames, decode_waveform
from .denoising import TextContexts, denoise, latent_grid
from .guidance import GuidanceScales
from .inputs import AudioInput, VideoInput, audio_waveform, video_frames
from .pipeline_base import LTX2AVTwoStagePipelineBase
from .pipeline_output import LTX2PipelineOutput
from .pipeline_utils import (
    StepCallbacks,
    as_list,
    callback_tensor_names,
    maybe_enhance_prompt,
    pipeline_output,
    prompt_contexts,
    resolve_sigmas,
)
from .presets import DEFAULT_REFERENCE, check_reference_for, sampling_preset
from .refinement import stage_1_pixel_size, two_stage_size_multiple
from .text_encoding import PromptEmbeddings
from .validation import check_call_inputs, check_frame_rate, check_sigmas, check_strength

SILENCE_PEAK = 1e-4  # -80 dBFS: a reference whose loudest sample is quieter than this carries no voice to keep


@dataclass(frozen=True)
class DubItReference:
    """The reference clip as Dub-It uses it: `frames` (F, H, W, 3) uint8 with F = 8k + 1 (the clip's frames snapped
    down), `frame_rate` (fps), and its soundtrack `waveform` (C, S) float at `sample_rate`."""

    frames: np.ndarray
    frame_rate: float
    waveform: Tensor
    sample_rate: int

    @property
    def num_frames(self) -> int:
        return self.frames.shape[0]


def read_dub_it_reference(
    reference_video: VideoInput,
    reference_audio: AudioInput | None = None,
    reference_audio_sample_rate: int | None = None,
    frame_rate: float | None = None,
) -> DubItReference:
    """The reference clip read and checked: a file gives its frames, fps and first audio stream; frames in memory
    need `frame_rate` and `reference_audio` (+ its sample rate for a waveform). `reference_audio` given with a file
    replaces the file's sound. Raises ValueError for no frames, a missing or unusable fps, missing or silent audio."""
    frames, file_fps = video_frames(reference_video, name="reference_video")
    is_file = isinstance(reference_video, str | os.PathLike)
    if is_file and frame_rate is not None and not math.isclose(frame_rate, file_fps, rel_tol=1e-6):
        raise ValueError(
            f"frame_rate={frame_rate:g} was given with reference_video, a file at {file_fps:g} fps: the output keeps "
            "the reference's timing (its lips move at its own rate), so drop frame_rate"
        )
    fps = file_fps if is_file else frame_rate
    if fps is None:
        raise ValueError("reference_video is frames in memory: pass their frame_rate (the output's fps)")
    if not math.isfinite(fps):
        raise ValueError("reference_video has no frame rate in its container: re-encode it with one (e.g. -r 24)")
    fps = check_frame_rate(fps, "the reference video's frame rate")
    num_frames = (frames.shape[0] - 1) // 8 * 8 + 1  # the reference's `snap_frames_to_grid`: down to 8k + 1
    if audio_latent_frames(num_frames, fps) < 1:
        raise ValueError(
            f"{num_frames} reference frames at {fps:g} fps last {num_frames / fps:.3g} s, less than the 40 ms of one "
            "audio latent frame: the clip is too short (or its frame rate wrong)"
        )
    if reference_audio is None and not is_file:
        raise ValueError(
            "reference_video is frames in memory, so it brings no sound: pass reference_audio (the voice to keep) "
            "with reference_audio_sample_rate"
        )
    source = reference_video if reference_audio is None else reference_audio
    name = "reference_video's sound" if reference_audio is None else "reference_audio"
    try:
        waveform, sample_rate = audio_waveform(
            source, reference_audio_sample_rate, name=name, sample_rate_name="reference_audio_sample_rate"
        )
    except ValueError as error:
        if reference_audio is None and "no audio stream" in str(error):
            raise ValueError(
                f"reference_video={os.fspath(reference_video)!r} has no audio stream: Dub-It keeps the voice of the "
                "reference's sound, so pass a clip with sound, or the voice as reference_audio"
            ) from None
        raise
    peak = float(waveform.abs().max())
    if peak < SILENCE_PEAK:
        raise ValueError(
            f"the {name} is silent (peak {peak:.2g}, below {SILENCE_PEAK:g}): Dub-It keeps the voice of the "
            "reference's sound, so pass a reference with audible speech"
        )
    return DubItReference(frames[:num_frames], fps, waveform, sample_rate)


class LTX2AVDubItPipeline(LTX2AVTwoStagePipelineBase):
    """Reference clip + prompt (the new words) -> the clip's video with new speech, in two stages (ltx-pipelines'
    `DubItPipeline`).

    Components: those of `LTX2AVTwoStagePipeline`. Use the distilled checkpoint and scheduler, and load the Dub-It
    IC-LoRA with `load_ic_lora` (exactly one adapter; its `reference_downscale_factor` is read from the file).
    """

    def load_ic_lora(self, lora: LoRAInput, adapter_name: str = "dub_it", strength: float = 1.0) -> str:
        """Load the Dub-It IC-LoRA (a path, a state dict or an `LTX2LoRA`) as a peft adapter of the transformer and
        record its metadata's `reference_downscale_factor`. Returns the adapter name."""
        lora = lora if isinstance(lora, LTX2LoRA) else read_lora(lora)
        name = load_lora_adapter(self.transformer, lora, adapter_name, strength, connectors=self.connectors)
        self._ic_lora_factors = {**getattr(self, "_ic_lora_factors", {}), name: lora.reference_downscale_factor}
        return name

    @property
    def reference_downscale_factor(self) -> int:
        """The loaded IC-LoRA's `reference_downscale_factor` (1 when it was loaded without `load_ic_lora`)."""
        loaded = list(getattr(self.transformer, "peft_config", None) or {})
        return getattr(self, "_ic_lora_factors", {}).get(loaded[0], 1) if len(loaded) == 1 else 1

    def check_ic_lora(self) -> None:
        """Exactly one adapter, the Dub-It IC-LoRA, must be loaded: the base model alone does not dub."""
        loaded = list(getattr(self.transformer, "peft_config", None) or {})
        if not loaded:
            raise ValueError(
                "no LoRA is loaded: Dub-It runs the distilled model with its Dub-It IC-LoRA in both stages. Load it "
                "with pipe.load_ic_lora(path)"
            )
        if len(loaded) > 1:
            raise ValueError(
                f"{len(loaded)} LoRA adapters are loaded ({loaded}), Dub-It takes exactly one, its IC-LoRA: remove "
                "the others with pipe.transformer.delete_adapters(name)"
            )

    @torch.no_grad()
    def encode_reference_audio(self, waveform: Tensor, sample_rate: int, device: torch.device) -> Tensor:
        """(C, S) waveform -> the whole track's normalised audio latent (1, 8, T_ref, 16), as the reference encodes
        the reference clip's sound (no trimming)."""
        return self.audio_vae.encode_waveform(waveform[None].to(device, torch.float32), sample_rate)

    @torch.no_grad()
    def __call__(
        self,
        reference_video: VideoInput,
        prompt: str | list[str] | None = None,
        *,
        reference_audio: AudioInput | None = None,
        reference_audio_sample_rate: int | None = None,
        reference_strength: float = 1.0,
        frame_rate: float | None = None,
        height: int | None = None,
        width: int | None = None,
        enhance_prompt: bool = False,
        enhance_prompt_seed: int | None = None,
        sigmas: Sequence[float] | None = None,
        stage_2_sigmas: Sequence[float] | None = None,
        num_videos_per_prompt: int = 1,
        generator: Generators = None,
        latents: Tensor | None = None,
        prompt_embeds: PromptEmbeddings | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("video_latents",),
        allow_large: bool = False,
        reference: str = DEFAULT_REFERENCE,
    ) -> LTX2PipelineOutput | tuple:
        """Dub `reference_video`: its frames and voice, new speech and lip movement following `prompt`.

        reference_video: a file with sound (frames, fps and soundtrack are read from it), or (F, H, W, 3) frames with
            `frame_rate` and `reference_audio`. Its frame count is snapped DOWN to 8k + 1 (e.g. 100 -> 97); the output
            has that many frames at its fps. Its frames are resized and centre-cropped to the stage sizes.
        reference_audio: the voice, instead of the file's sound: a path, or a waveform with
            `reference_audio_sample_rate`. The whole track is used. Missing or silent audio is refused.
        reference_strength: in [0, 1], how clean the IC-LoRA's reference video tokens stay (1: exactly).
        height, width: the output size, multiples of 64 (96 with the x1.5 upsampler, whose stage 1 runs at 2/3 of
            it; None: the model version's two-stage default).
        sigmas / stage_2_sigmas: None -> the distilled 8 + 3 steps.
        latents: the stage-1 video noise (B or 1, 128, F', H/64, W/64; H/48, W/48 with x1.5) instead of a draw.
        reference: "1.2" (default) or "1.0", the ltx-pipelines RELEASE whose shared numerics to follow
            (`LTX2AVPipeline.__call__`; not the clip, which is `reference_video`): with "1.2" the frozen reference
            tokens and the frozen stage-2 audio are seen at sigma 0 and the audio<->video AdaLN follows each
            stream's own timestep; also the noiser and the tokenization.
        Returns `LTX2PipelineOutput(frames, audio, audio_sample_rate)` or `(frames, audio)`; write the frames at the
        reference's fps (`read_dub_it_reference(...).frame_rate`).
        """
        # 1. The reference clip read, the model version's defaults, every argument checked before any model runs
        preset = sampling_preset(self.model_version, self.kind, check_reference_for(self.model_version, reference))
        clip = read_dub_it_reference(reference_video, reference_audio, reference_audio_sample_rate, frame_rate)
        height = preset.two_stage_height if height is None else height
        width = preset.two_stage_width if width is None else width
        num_frames, frame_rate = clip.num_frames, clip.frame_rate
        size_multiple = two_stage_size_multiple(self.latent_upsampler, height, width)
        batch_size = check_call_inputs(
            prompt=prompt, prompt_embeds=prompt_embeds, num_videos_per_prompt=num_videos_per_prompt,
            enhance_prompt=enhance_prompt, height=height, width=width, num_frames=num_frames, frame_rate=frame_rate,
            size_multiple=size_multiple, sigmas=sigmas, output_type=output_type,
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs, generator=generator,
            return_dict=return_dict, allow_large=allow_large,
        )  # fmt: skip
        check_sigmas(stage_2_sigmas, name="stage_2_sigmas")
        check_strength(reference_strength, "reference_strength")
        if self.kind != "distilled":
            raise ValueError(
                "Dub-It runs the distilled checkpoint (8 + 3 fixed steps, no guidance), but this pipeline's scheduler "
                "is the dev one: load the distilled model, or pass kind='distilled' to from_pretrained"
            )
        self.check_ic_lora()
        factor = self.reference_downscale_factor
        sigmas = resolve_sigmas(self.scheduler, None, sigmas, None, preset.num_inference_steps)
        stage_2_sigmas = self.scheduler.get_sigmas(
            sigmas=preset.stage_2_sigmas if stage_2_sigmas is None else stage_2_sigmas
        )
        names = callback_tensor_names(callback_on_step_end, callback_on_step_end_tensor_inputs)
        device, dtype, transformer = self._execution_device, self.transformer.dtype, self.transformer
        layout = self.latent_layout
        half = stage_1_pixel_size(self.latent_upsampler, height, width)
        check_reference_size(*half, factor)  # both stages' reference sizes, before the text encoder runs
        check_reference_size(height, width, factor, stage="stage-2")
        callback = StepCallbacks(self, callback_on_step_end, names)
        no_guidance = GuidanceScales()  # one positive pass per step: the reference's SimpleDenoiser

        # 2. Prompts (optionally enhanced first, seeing the reference's first frame) -> contexts, once for both stages
        prompts = as_list(prompt)
        if prompts is not None:
            first_frame = clip.frames[0]
            prompts = maybe_enhance_prompt(
                self, prompts, enhance_prompt, first_frame, enhance_prompt_seed, generator, device
            )
        contexts = prompt_contexts(
            self, prompts, None, prompt_embeds=prompt_embeds, negative_prompt_embeds=None, needs_negative=False,
            num_videos_per_prompt=num_videos_per_prompt, device=device, dtype=dtype, reference=reference,
        )  # fmt: skip
        contexts = TextContexts(contexts.video, contexts.audio)

        # 3. The reference: its frames at the stage-1 size / factor, its whole soundtrack as audio reference tokens
        video_reference = [(clip.frames, reference_strength)]
        conditions = encode_references(self.vae, video_reference, *half, num_frames, factor, 1.0, None, device)
        audio_reference = AudioReference(self.encode_reference_audio(clip.waveform, clip.sample_rate, device))

        # 4. Stage 1 at half size with the IC-LoRA: noise (video, then audio with its reference tokens), then Euler
        video, audio = prepare_latents_with_audio_reference(
            batch_size, *half, num_frames, frame_rate, audio_reference=audio_reference, generator=generator,
            device=device, dtype=dtype, conditions=conditions, **layout, video_noise=latents, reference=reference,
        )  # fmt: skip
        video, audio = denoise(
            transformer, video, audio, contexts, sigmas, no_guidance, no_guidance,
            progress_bar=self.progress_bar, callback=callback, reference=reference,
        )  # fmt: skip
        video_latents = unpatchify_video(video.output_tokens(), *latent_grid(*half, num_frames))
        audio_latents = unpack_audio_latents(audio.output_tokens(), layout["audio_channels"])

        # 5. Stage 2 with the IC-LoRA: upsampling (x2 or x1.5), re-noise, refine the video next to the frozen stage-1
        #    audio, which is also its own audio reference
        upsampled = upsample_latents(self.latent_upsampler, video_latents, self.vae.latents_mean, self.vae.latents_std)
        conditions = encode_references(self.vae, video_reference, height, width, num_frames, factor, 1.0, None, device)
        video, audio = prepare_latents_with_audio_reference(
            batch_size, height, width, num_frames, frame_rate, audio_reference=AudioReference(audio_latents),
            generator=generator, device=device, dtype=dtype, conditions=conditions, **layout,
            noise_scale=float(stage_2_sigmas[0]), initial_video_latent=upsampled, initial_audio_latent=audio_latents,
            freeze_audio=True, reference=reference,
        )  # fmt: skip
        video, _ = denoise(
            transformer, video, audio, contexts, stage_2_sigmas, no_guidance, no_guidance,
            progress_bar=self.progress_bar, callback=callback, reference=reference,
        )  # fmt: skip
        video_latents = unpatchify_video(video.output_tokens(), *latent_grid(height, width, num_frames))

        # 6. Latents -> frames (stage 2) and waveform (stage 1: stage 2 keeps the audio as it is)
        frames = decode_frames(self.video_decoder, video_latents, output_type, generator)
        waveform, sample_rate = decode_waveform(self.audio_vae, self.vocoder, audio_latents, output_type, reference)
        return pipeline_output(self, frames, waveform, sample_rate, return_dict)
