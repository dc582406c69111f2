"""LTX2AVExtendPipeline: continue a clip with sound by N frames, forwards or backwards, as many times as asked.

No LTX-2 system extends video AND audio (ltx-pipelines: "pad and mask by hand"; ComfyUI's loop drops the audio;
diffusers conditions the video only). An extension is a retake (spec §7.5) of a short segment at the clip's edge:
1. The segment is the context (the clip's last `context_frames` frames, or its first ones backwards, 8m + 1) plus
   room for `num_frames` new frames (a multiple of 8) after it (before it, backwards), held by placeholders: the
   context's edge frame repeated, and silence. Only this segment is encoded, by the video VAE and (its waveform over
   the same seconds) the audio VAE; the rest of the clip stays on the CPU as uint8 frames and a waveform, so memory
   does not grow with the number of extensions.
2. Denoise masks are data (`context_masks`): 0 for every token whose span lies inside the known context (frozen: the
   transformer sees it at sigma 0, the sampler keeps its clean latent), 1 elsewhere. A latent frame that holds a new
   frame and a context frame (the first context frame, backwards) is generated whole, as retake does. Audio missing
   at the end of the input's soundtrack (a pipeline's decoded audio ends up to ~50 ms before its video) is generated
   too, so no silence is frozen into a join.
3. Noise (video, then audio, from the one generator), then the shared guided denoising (`denoising.denoise`).
4. The segment is decoded, its context part dropped, and the new frames and samples are stitched to the clip: the
   clip's own frames and samples are kept exactly (not their VAE reconstruction), so the joins have no duplicated
   or missing frame or sample. The soundtrack is then exactly round(F / fps * R) samples long after an extension
   (F frames, R the vocoder's rate); the input's audio past its video's end is dropped.
Repeated (`num_extensions`, or calls with the previous output), voices and music carry over through the audio context.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import av
import numpy as np
import PIL.Image
import torch
from torch import Tensor

from ..models.autoencoder_kl_ltx2_audio import audio_latent_frames, fit_audio_latent_frames, unpack_audio_latents
from ..models.mel import resample_waveform
from ..models.rope import audio_positions
from .condition_encoding import encode_pixels
from .conditioning import (
    VIDEO_TIME_SCALE,
    Generators,
    add_noise,
    audio_latent_state,
    unpatchify_video,
    video_latent_state,
    video_positions_dtype,
)
from .decoding import decode_audio, postprocess_frames
from .denoising import TextContexts, check_generator, decode_video, denoise, latent_grid
from .diffusion_decoding import diffusion_decode_video
from .guidance import GuidanceScales, GuidanceSchedule
from .inputs import AudioInput, VideoInput, audio_waveform, video_frames, video_to_pixels
from .pipeline_base import LTX2AVPipelineBase
from .pipeline_output import LTX2PipelineOutput
from .pipeline_utils import (
    StepCallbacks,
    as_list,
    callback_tensor_names,
    needs_uncond,
    pipeline_output,
    prompt_contexts,
    resolve_guidance,
    resolve_sigmas,
)
from .presets import DEFAULT_REFERENCE, check_reference_for, sampling_preset
from .text_encoding import PromptEmbeddings
from .validation import check_call_inputs, check_frame_count, check_int

AUDIO_TIME_SCALE = 4  # mel frames per audio latent frame (after the first, which holds one)
MISSING_AUDIO_TOLERANCE = 0.1  # s: how much of the context window a soundtrack may leave uncovered (decoded audio
# is (4 T_a - 3) mel frames, up to ~50 ms shorter than its video)
SILENCE = 1e-4  # peak amplitude (-80 dBFS) under which an audio context counts as silent

# ----------------------------------------------------------------------------------------------------------------------
# The clip, kept on the CPU between extensions


@dataclass(frozen=True)
class Clip:
    """frames (F, H, W, 3) uint8 at `frame_rate`; audio (2, S) float32 at `sample_rate`, or None (no soundtrack)."""

    frames: np.ndarray
    frame_rate: float
    audio: Tensor | None
    sample_rate: int | None

    @property
    def num_frames(self) -> int:
        return self.frames.shape[0]


def read_clip(
    video: "VideoInput | LTX2PipelineOutput",
    frame_rate: float | None,
    audio: AudioInput | None,
    audio_sample_rate: int | None,
    name: str = "video",
) -> Clip:
    """The clip to extend, from a file (frames, fps and its first audio stream), frames with `audio` at
    `audio_sample_rate`, or a pipeline's output (its first video and soundtrack; `frame_rate` is needed). A given
    `frame_rate` must equal a file's own: the new frames are generated at the clip's rate. `name`: the argument's
    name in errors."""
    if isinstance(video, LTX2PipelineOutput):
        if audio is not None or audio_sample_rate is not None:
            raise ValueError("pass audio / audio_sample_rate only with frames; a pipeline output holds its own audio")
        frames = video.frames[0]
        if isinstance(frames, Tensor):  # "pt": (F, 3, H, W) in [0, 1]
            frames = frames.permute(0, 2, 3, 1).cpu().numpy()
        if not isinstance(frames, list | np.ndarray) or video.audio_sample_rate is None:
            raise ValueError("a pipeline output to extend must be decoded: output_type 'pil', 'np' or 'pt'")
        video, audio, audio_sample_rate = frames, video.audio[0], video.audio_sample_rate
    pixels, file_fps = video_frames(video, name=name)
    if file_fps is not None:
        if frame_rate is not None and not math.isclose(frame_rate, file_fps, rel_tol=1e-6):
            raise ValueError(
                f"frame_rate={frame_rate:g} does not match the file's {file_fps:g} fps: the new frames are generated "
                f"at the clip's own rate. Drop frame_rate, or re-encode the file at {frame_rate:g} fps first"
            )
        if audio is not None or audio_sample_rate is not None:
            raise ValueError("pass audio / audio_sample_rate only with frames; a file's own audio stream is read")
        frame_rate = file_fps
        with av.open(str(video)) as container:
            if container.streams.audio:
                audio, audio_sample_rate = audio_waveform(video, name=name)
    elif frame_rate is None:
        raise ValueError("frame_rate is needed with frames or a pipeline output (a file says its own)")
    if audio is None:
        if audio_sample_rate is not None:
            raise ValueError("audio_sample_rate was given without audio")
        return Clip(pixels, float(frame_rate), None, None)
    if audio_sample_rate is None:
        raise ValueError("audio_sample_rate is needed with audio")
    waveform, rate = audio_waveform(audio, audio_sample_rate, name="audio")
    return Clip(pixels, float(frame_rate), waveform.float().cpu().expand(2, -1).clone(), rate)


def with_sample_rate(clip: Clip, sample_rate: int) -> Clip:
    """The clip's soundtrack at `sample_rate` (the vocoder's: new samples are decoded at it), resampled when it
    differs; a clip without sound gets silence of its video's length, so the output has one soundtrack."""
    if clip.audio is None:
        samples = round(clip.num_frames / clip.frame_rate * sample_rate)
        return replace(clip, audio=torch.zeros(2, samples), sample_rate=sample_rate)
    if clip.sample_rate == sample_rate:
        return clip
    return replace(clip, audio=resample_waveform(clip.audio, clip.sample_rate, sample_rate), sample_rate=sample_rate)


# ----------------------------------------------------------------------------------------------------------------------
# One extension's numbers and masks (pure functions)


@dataclass(frozen=True)
class Segment:
    """Where one extension's segment sits. Frames: the context is clip frames [clip_start, clip_start + context)
    and segment frames [context_start, context_start + context); new frames fill the rest of the segment. Audio:
    the segment starts at clip sample `audio_start` (negative backwards: before the clip) and its known context is
    [known_start, known_end) seconds of segment time (empty: no audio context)."""

    context_frames: int
    new_frames: int
    backwards: bool
    clip_start: int
    audio_start: int
    known_start: float
    known_end: float

    @property
    def num_frames(self) -> int:
        return self.context_frames + self.new_frames

    @property
    def context_start(self) -> int:
        return self.new_frames if self.backwards else 0


def plan_segment(
    clip: Clip, context_frames: int, new_frames: int, backwards: bool, audio_context: bool, sample_rate: int
) -> Segment:
    """The segment of the next extension of `clip` (whose audio is at `sample_rate`)."""
    fps, num_audio = clip.frame_rate, clip.audio.shape[1]
    clip_start = 0 if backwards else clip.num_frames - context_frames
    audio_start = -round(new_frames / fps * sample_rate) if backwards else round(clip_start / fps * sample_rate)
    known = 0.0
    if audio_context:  # seconds of the context window the input's soundtrack covers
        known = min(context_frames / fps, max(num_audio - max(audio_start, 0), 0) / sample_rate)
    offset = -audio_start / sample_rate if backwards else 0.0
    return Segment(context_frames, new_frames, backwards, clip_start, audio_start, offset, offset + known)


def video_context_mask(grid: tuple[int, int, int], first: int, last: int) -> Tensor:
    """(1, F'H'W', 1) float32 denoise mask: 0 for the tokens of latent frames whose pixel frames [max(0, 8f - 7), 8f]
    all lie in [first, last] (the frozen context), 1 for the rest. Integers, so no float rounding of frame times."""
    latent_frames, height, width = grid
    f = torch.arange(latent_frames)
    inside = ((f * VIDEO_TIME_SCALE - (VIDEO_TIME_SCALE - 1)).clamp(min=0) >= first) & (f * VIDEO_TIME_SCALE <= last)
    mask = (~inside).to(torch.float32)
    return mask[:, None].expand(-1, height * width).reshape(1, -1, 1)


def audio_context_mask(num_audio_frames: int, known_start: float, known_end: float) -> Tensor:
    """(1, T_a, 1) float32 denoise mask: 0 for the audio latent frames whose span [0.04 i - 0.03, 0.04 i + 0.01) s
    (clamped at 0; `rope.audio_positions`) lies in the known context [known_start, known_end), 1 elsewhere."""
    bounds = audio_positions(1, num_audio_frames)[0, 0]  # (T_a, 2) seconds
    eps = 1e-6  # a span that ends on the context's end is inside it
    inside = (bounds[:, 0] >= known_start - eps) & (bounds[:, 1] <= known_end + eps) & (known_end > known_start)
    return (~inside).to(torch.float32).reshape(1, -1, 1)


def segment_audio_frames(segment: Segment, fps: float, sample_rate: int, mel_rate: float) -> tuple[int, int]:
    """(audio latent frames of the segment, decoded samples the stitch needs). T_a latent frames decode to
    (4 T_a - 3) mel frames at `mel_rate` (100 per second), so T_a is raised above the clip rule round(s * 25) until
    they cover the new audio: the join then needs no padding."""
    clip_frames_after = segment.clip_start + segment.num_frames  # forward: the clip's end after this extension
    if segment.backwards:
        needed = -segment.audio_start
    else:
        needed = round(clip_frames_after / fps * sample_rate) - segment.audio_start
    covering = math.ceil((needed / sample_rate * mel_rate + AUDIO_TIME_SCALE - 1) / AUDIO_TIME_SCALE)
    return max(audio_latent_frames(segment.num_frames, fps), covering), needed


def segment_pixels(clip: Clip, segment: Segment) -> Tensor:
    """(1, 3, F_seg, H, W) in [-1, 1]: the context frames and, for the new ones, the context's edge frame repeated."""
    context = clip.frames[segment.clip_start : segment.clip_start + segment.context_frames]
    edge = context[:1] if segment.backwards else context[-1:]
    filler = np.repeat(edge, segment.new_frames, axis=0)
    frames = np.concatenate([filler, context] if segment.backwards else [context, filler])
    return video_to_pixels(frames, name="video")


def segment_waveform(clip: Clip, segment: Segment, sample_rate: int) -> Tensor:
    """(1, 2, S) the clip's samples over the segment's seconds, silence where there are none (the new part)."""
    num_samples = round(segment.num_frames / clip.frame_rate * sample_rate)
    waveform = torch.zeros(2, num_samples)
    start, stop = max(segment.audio_start, 0), min(segment.audio_start + num_samples, clip.audio.shape[1])
    if stop > start:
        waveform[:, start - segment.audio_start : stop - segment.audio_start] = clip.audio[:, start:stop]
    return waveform[None]


def stitch(clip: Clip, segment: Segment, new_frames: np.ndarray, decoded_audio: Tensor) -> Clip:
    """The clip with the segment's new frames (N, H, W, 3) uint8 and the new part of its decoded audio (2, S_seg)
    joined on: the clip's own frames and samples are kept as they are."""
    fps, rate = clip.frame_rate, clip.sample_rate
    kept = clip.audio[:, : round(clip.num_frames / fps * rate)]  # sound past the video's end is dropped
    if segment.backwards:
        frames = np.concatenate([new_frames, clip.frames])
        audio = torch.cat([decoded_audio[:, : -segment.audio_start], kept], dim=1)
    else:
        frames = np.concatenate([clip.frames, new_frames])
        if kept.shape[1] < segment.audio_start:  # a soundtrack that stops early (audio_context=False): silence
            kept = torch.cat([kept, kept.new_zeros(2, segment.audio_start - kept.shape[1])], dim=1)
        end = round((clip.num_frames + segment.new_frames) / fps * rate)
        audio = torch.cat([kept, decoded_audio[:, kept.shape[1] - segment.audio_start : end - segment.audio_start]], 1)
    return Clip(frames, fps, audio, rate)


# ----------------------------------------------------------------------------------------------------------------------
# Checks (before any model runs)


def check_extension(
    clip: Clip, context_frames: int, num_frames: int, backwards: bool, audio_context: bool, output_type: str
) -> None:
    """The clip against the extension's numbers: context 8m + 1 frames that the clip holds, new frames a multiple
    of 8, a soundtrack that covers the context and is not silent when `audio_context`, a decodable output type."""
    check_frame_count(context_frames, "context_frames")
    new = check_int(num_frames, "num_frames")
    if new % VIDEO_TIME_SCALE:
        below = max(VIDEO_TIME_SCALE, new // VIDEO_TIME_SCALE * VIDEO_TIME_SCALE)
        raise ValueError(
            f"num_frames={new} new frames is not a multiple of 8: the context (8m + 1 frames) and the new frames "
            f"together must make 8k + 1 frames for the video VAE. Use {below} or {below + VIDEO_TIME_SCALE}."
        )
    if clip.num_frames < context_frames:
        raise ValueError(
            f"the clip has {clip.num_frames} frames, fewer than context_frames={context_frames}: pass "
            f"context_frames <= {max(1, (clip.num_frames - 1) // 8 * 8 + 1)} (8m + 1), or a longer clip"
        )
    if output_type not in ("pil", "np", "pt"):
        raise ValueError(f"output_type={output_type!r}: an extension returns the whole clip, 'pil', 'np' or 'pt'")
    if not audio_context:
        return
    if clip.audio is None:
        raise ValueError(
            "audio_context=True, but the clip has no soundtrack: pass one (audio= with frames, or a file with an "
            "audio stream), or audio_context=False to generate the new sound without context"
        )
    window, rate, where = context_frames / clip.frame_rate, clip.sample_rate, "first" if backwards else "last"
    first = 0 if backwards else round((clip.num_frames - context_frames) / clip.frame_rate * rate)
    part = clip.audio[:, first : first + round(window * rate)]
    if part.shape[1] == 0 or part.shape[1] / rate < window - MISSING_AUDIO_TOLERANCE:
        raise ValueError(
            f"the clip's soundtrack covers {part.shape[1] / rate:.3f} s of the {where} {window:.3f} s of its video "
            f"(the audio context, context_frames={context_frames}): it ends before its video. Pass a clip whose "
            "audio lasts as long as its video, or audio_context=False"
        )
    if float(part.abs().max()) < SILENCE:
        raise ValueError(
            f"the clip's soundtrack is silent over the {where} {window:.3f} s (the audio context): there is no voice "
            "or music to carry over. Pass audio_context=False to generate the new sound without context"
        )


# ----------------------------------------------------------------------------------------------------------------------


class LTX2AVExtendPipeline(LTX2AVPipelineBase):
    """Continue a clip with sound by `num_frames` frames at a time, forwards or backwards (no reference pipeline).

    Same components as `LTX2AVPipeline` (and the same saving / loading); only `__call__` differs.
    """

    @torch.no_grad()
    def extend_once(
        self,
        clip: Clip,
        segment: Segment,
        contexts: TextContexts,
        sigmas: Tensor,
        video_guidance: GuidanceScales | GuidanceSchedule,
        audio_guidance: GuidanceScales | GuidanceSchedule,
        generator: Generators,
        callback: StepCallbacks,
        reference: str = DEFAULT_REFERENCE,
    ) -> Clip:
        """One extension of `clip` (audio at the vocoder's rate) over `segment`: the new clip. `reference`: the
        noiser's and the denoising's rules ("1.2" or "1.0", `denoising` module docstring)."""
        device, dtype, layout = self._execution_device, self.transformer.dtype, self.latent_layout
        fps, rate = clip.frame_rate, clip.sample_rate
        height, width = clip.frames.shape[1:3]
        grid = latent_grid(height, width, segment.num_frames)
        mel_rate = self.audio_vae.config.sample_rate / self.audio_vae.config.mel_hop_length
        num_audio, needed = segment_audio_frames(segment, fps, rate, mel_rate)

        # a. The segment (context + placeholders) -> latents; the context's span as denoise masks
        video_latent = encode_pixels(self.vae, segment_pixels(clip, segment).to(device))
        audio_latent = None
        if segment.known_end > segment.known_start:
            waveform = segment_waveform(clip, segment, rate).to(device)  # float32 mel, as audio-to-video
            audio_latent = fit_audio_latent_frames(self.audio_vae.encode_waveform(waveform, rate), num_audio)
        video_mask = video_context_mask(grid, segment.context_start, segment.context_start + segment.context_frames - 1)
        audio_mask = audio_context_mask(num_audio, segment.known_start, segment.known_end)

        # b. Noise by the masks (video, then audio), then the shared guided denoising
        video = video_latent_state(
            1, *grid, fps, num_channels=layout["video_channels"], dtype=dtype, device=device,
            initial_latent=video_latent.to(dtype), positions_dtype=video_positions_dtype(dtype, reference),
        )  # fmt: skip
        video = add_noise(replace(video, denoise_mask=video_mask.to(device)), generator, reference=reference)
        audio = audio_latent_state(
            1, num_audio, num_channels=layout["audio_channels"], num_mel_bins=layout["audio_mel_bins"], dtype=dtype,
            device=device, initial_latent=None if audio_latent is None else audio_latent.to(dtype),
        )  # fmt: skip
        audio = add_noise(replace(audio, denoise_mask=audio_mask.to(device)), generator, reference=reference)
        video, audio = denoise(
            self.transformer, video, audio, contexts, sigmas, video_guidance, audio_guidance,
            progress_bar=self.progress_bar, callback=callback, reference=reference,
        )  # fmt: skip

        # c. Decode the segment, keep its new part, join it to the clip
        latents = unpatchify_video(video.output_tokens(), *grid)
        if getattr(self, "diffusion_decoder", None) is None:
            pixels = decode_video(self.vae, latents, generator)
        else:  # LTX-2.5's diffusion decoder
            pixels = diffusion_decode_video(self.diffusion_decoder, latents, generator)
        new = slice(0, segment.new_frames) if segment.backwards else slice(segment.context_frames, None)
        new_frames = np.stack([np.asarray(image) for image in postprocess_frames(pixels[:, :, new], "pil")[0]])
        audio_latents = unpack_audio_latents(audio.output_tokens(), layout["audio_channels"])
        decoded_audio = decode_audio(self.audio_vae, self.vocoder, audio_latents, reference)[0].cpu()
        if decoded_audio.shape[1] < needed:
            raise RuntimeError(f"the segment's audio decoded to {decoded_audio.shape[1]} samples, {needed} needed")
        return stitch(clip, segment, new_frames, decoded_audio)

    @torch.no_grad()
    def __call__(
        self,
        video: "VideoInput | LTX2PipelineOutput",
        prompt: str | list[str] | None = None,
        negative_prompt: str | None = None,
        *,
        num_frames: int = 96,
        context_frames: int = 25,
        num_extensions: int = 1,
        backwards: bool = False,
        audio_context: bool = True,
        frame_rate: float | None = None,
        audio: AudioInput | None = None,
        audio_sample_rate: int | None = None,
        num_inference_steps: int | None = None,
        sigmas: Sequence[float] | None = None,
        video_guidance: GuidanceScales | GuidanceSchedule | None = None,
        audio_guidance: GuidanceScales | GuidanceSchedule | None = None,
        generator: torch.Generator | None = None,
        prompt_embeds: PromptEmbeddings | None = None,
        negative_prompt_embeds: PromptEmbeddings | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("video_latents",),
        allow_large: bool = False,
        reference: str = DEFAULT_REFERENCE,
    ) -> LTX2PipelineOutput | tuple:
        """Extend `video` by `num_extensions` x `num_frames` frames (after it, or before it with `backwards`).

        video: a file path (frames, fps and the first audio stream are read from it), (F, H, W, 3) frames (array,
            tensor or PIL images) with `frame_rate` and optionally `audio` (C, S) at `audio_sample_rate`, or a
            previous pipeline output (its first clip; pass `frame_rate`). H and W multiples of 32; any F >= context.
        prompt: what happens in the new frames: one string, or one per extension. `prompt_embeds` likewise.
        num_frames: new frames per extension, a multiple of 8. context_frames: the frames (8m + 1) at the clip's end
            (start, backwards) the new ones continue, and with them the same seconds of sound.
        audio_context: True (default) continues the soundtrack, which must then exist and not be silent in the
            context window; False generates the new sound without context (a clip without sound gets silence
            under its own frames).
        num_inference_steps / sigmas / video_guidance / audio_guidance: None -> the model version's one-stage
            defaults (with a distilled scheduler: its 8 sigmas, no guidance).
        reference: "1.2" (default) or "1.0", the ltx-pipelines release whose shared numerics to follow
            (`LTX2AVPipeline.__call__`): the default negative prompt, tokenization, noiser, guidance arithmetic and
            the transformer's audio<->video AdaLN on the frozen context tokens.
        Returns `LTX2PipelineOutput(frames, audio, audio_sample_rate)` of the WHOLE clip (batch of one): frames by
        `output_type` ("pil", "np", "pt"; kept as uint8 between extensions, so the input's frames come back
        exactly), audio (1, 2, S) at the vocoder's rate (the input's samples exactly when they were at that rate,
        else resampled).
        """
        # 1. The clip read (`inputs`), then every argument checked before any model runs
        check_reference_for(self.model_version, reference)
        clip = read_clip(video, frame_rate, audio, audio_sample_rate)
        num_extensions = check_int(num_extensions, "num_extensions")
        check_extension(clip, context_frames, num_frames, backwards, audio_context, output_type)
        prompts = as_list(prompt)
        if isinstance(generator, list | tuple):
            raise ValueError("an extension continues one clip: pass one torch.Generator, not a list")
        height, width = clip.frames.shape[1:3]
        count = check_call_inputs(
            prompt=prompts, negative_prompt=negative_prompt, prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds, height=height, width=width,
            num_frames=context_frames + num_frames, frame_rate=clip.frame_rate, num_inference_steps=num_inference_steps,
            sigmas=sigmas, video_guidance=video_guidance, audio_guidance=audio_guidance, output_type=output_type,
            output_types=("pil", "np", "pt"), callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs, generator=generator,
            return_dict=return_dict, allow_large=allow_large,
            names={"num_frames": "context_frames + num_frames", "height": "the clip's height",
                   "width": "the clip's width", "frame_rate": "the clip's frame rate"},
        )  # fmt: skip
        if count not in (1, num_extensions):
            raise ValueError(f"got {count} prompts for num_extensions={num_extensions}: pass one, or one per extension")
        preset = sampling_preset(self.model_version, self.kind, reference)
        negative_prompt = preset.negative_prompt if negative_prompt is None else negative_prompt
        video_guidance, audio_guidance = resolve_guidance(video_guidance, audio_guidance, preset, {})
        sigmas = resolve_sigmas(self.scheduler, num_inference_steps, sigmas, None, preset.num_inference_steps)
        names = callback_tensor_names(callback_on_step_end, callback_on_step_end_tensor_inputs)
        device, dtype = self._execution_device, self.transformer.dtype
        check_generator(generator, 1, device)

        # 2. Prompts -> contexts, one per extension (the negative ones only when a guidance scale needs them)
        contexts = prompt_contexts(
            self, prompts, [negative_prompt], prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds, needs_negative=needs_uncond(video_guidance, audio_guidance),
            num_videos_per_prompt=1, device=device, dtype=dtype, reference=reference,
        )  # fmt: skip

        # 3. Extend, one segment at a time: encode the context, denoise the new part, decode, join
        clip = with_sample_rate(clip, self.audio_sample_rate)
        callback = StepCallbacks(self, callback_on_step_end, names)
        for i in range(num_extensions):
            segment = plan_segment(clip, context_frames, num_frames, backwards, audio_context, clip.sample_rate)
            k = i if count > 1 else 0
            step_contexts = TextContexts(*(None if c is None else c[k : k + 1] for c in astuple_shallow(contexts)))
            clip = self.extend_once(
                clip, segment, step_contexts, sigmas, video_guidance, audio_guidance, generator, callback, reference
            )

        # 4. The whole clip by output type
        return pipeline_output(self, clip_frames(clip, output_type), clip.audio[None], clip.sample_rate, return_dict)


def astuple_shallow(contexts: TextContexts) -> tuple[Tensor | None, ...]:
    return contexts.video, contexts.audio, contexts.negative_video, contexts.negative_audio


def clip_frames(clip: Clip, output_type: str):
    """The clip's uint8 frames as one video of `output_type`: "pil" lists, "np" (1, F, H, W, 3) / "pt"
    (1, F, 3, H, W) float32 in [0, 1]."""
    if output_type == "pil":
        return [[PIL.Image.fromarray(frame) for frame in clip.frames]]
    frames = torch.from_numpy(clip.frames).float() / 255.0
    return frames.permute(0, 3, 1, 2)[None] if output_type == "pt" else frames[None].numpy()
