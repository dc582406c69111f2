"""LTX2AVTwoStageHQPipeline: the two-stage pipeline with the res_2s sampler (spec §6.5-6.6, §9).

ltx-pipelines' `TI2VidTwoStagesHQPipeline` in diffusers' shape. Same structure as `LTX2AVTwoStagePipeline`, with:
1. Stage 1 at (H/2, W/2): res_2s (`res2s_sample`, two guided x0 predictions per step, SDE noise) over the LTX-2
   schedule shifted by the stage-1 latent's real token count F'·H'·W' (the other pipelines fix it at 4096), with
   constant guidance at the HQ defaults (`HQ_VIDEO_GUIDANCE` / `HQ_AUDIO_GUIDANCE`: 15 steps, no STG, rescale 0.45
   for video and 1.0 for audio) and the distilled LoRA at strength 0.25.
2. Stage 2: upsample x2, re-noise to `STAGE_2_DISTILLED_SIGMAS[0]`, then res_2s over those sigmas with one positive
   pass per prediction, the distilled LoRA at strength 0.5.
3. Decode as the other pipelines.

The res_2s SDE noise comes from fixed seeds (the reference never passes one), so it is the same for every user seed;
the generator draws the initial noise of both stages (stage-1 video, stage-1 audio, stage-2 video, stage-2 audio).
"""

from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import Tensor

from ..models.autoencoder_kl_ltx2_audio import unpack_audio_latents
from ..schedulers.scheduling_ltx2 import STAGE_2_DISTILLED_SIGMAS, Res2sLatents, ltx2_sigmas, res2s_sample
from .conditioning import DEFAULT_IMAGE_CRF, LatentState, unpatchify_video
from .denoising import TextContexts, VideoCondition, guided_x0, prepare_latents
from .guidance import GuidanceScales, GuidanceSchedule, guidance_at, plan_guidance
from .pipeline_ltx2_av import ImageInput, _repeat_contexts
from .pipeline_ltx2_av_two_stage import LTX2AVTwoStagePipeline, StageAdapters, upsample_and_renoise
from .pipeline_output import LTX2PipelineOutput

# ltx-pipelines' LTX_2_3_HQ_PARAMS (utils/constants.py)
HQ_NUM_INFERENCE_STEPS = 15
HQ_VIDEO_GUIDANCE = GuidanceScales(cfg=3.0, stg=0.0, modality=3.0, rescale=0.45)
HQ_AUDIO_GUIDANCE = GuidanceScales(cfg=7.0, stg=0.0, modality=3.0, rescale=1.0)
HQ_STAGE_1_ADAPTER_SCALE = 0.25
HQ_STAGE_2_ADAPTER_SCALE = 0.5


def _all_scales(guidance: GuidanceScales | GuidanceSchedule) -> tuple[GuidanceScales, ...]:
    return tuple(s for _, s in guidance.bins) if isinstance(guidance, GuidanceSchedule) else (guidance,)


def denoise_res2s(
    transformer: torch.nn.Module,
    video: LatentState,
    audio: LatentState,
    contexts: TextContexts,
    sigmas: Tensor,
    video_guidance: GuidanceScales | GuidanceSchedule,
    audio_guidance: GuidanceScales | GuidanceSchedule,
) -> tuple[LatentState, LatentState]:
    """res_2s from sigmas[0] to sigmas[-1] on guided x0 predictions: ltx-pipelines' `res2s_audio_video_denoising_loop`
    with `multi_modal_guider_denoising_func` (or, with neutral scales, `simple_denoising_func`), every guidance pass of
    a prediction in one batched transformer call (`guided_x0`).

    sigmas: (N + 1,) float32. Guidance is looked up by each prediction's sigma; `skip_step` is refused, since res_2s
    makes two predictions per step (the reference guides its mid-step prediction as a step 0).
    Samples go to the transformer in its dtype (the reference's `model_dtype`). Returns the final states.
    """
    for guidance in (video_guidance, audio_guidance):
        if any(s.skip_step for s in _all_scales(guidance)):
            raise ValueError(
                "skip_step is not supported with the res_2s sampler (two predictions per step, each guided): pass "
                "GuidanceScales with skip_step=0"
            )
    batch_size, device = video.latent.shape[0], video.latent.device

    def denoise(samples: tuple[Tensor, ...], sigma: float) -> tuple[Tensor, Tensor]:
        video_scales, audio_scales = guidance_at(video_guidance, sigma), guidance_at(audio_guidance, sigma)
        plan = plan_guidance(video_scales, audio_scales, 0, batch_size, device)
        step_video, step_audio = replace(video, latent=samples[0]), replace(audio, latent=samples[1])
        sigma_tensor = torch.tensor(sigma, dtype=torch.float32, device=device)
        return guided_x0(transformer, step_video, step_audio, contexts, sigma_tensor, plan, video_scales, audio_scales)

    streams = [Res2sLatents(s.latent, s.denoise_mask, s.clean_latent) for s in (video, audio)]
    video_out, audio_out = res2s_sample(
        denoise, streams, sigmas.to(torch.float32).cpu(), model_dtype=video.latent.dtype
    )
    return replace(video, latent=video_out), replace(audio, latent=audio_out)


def refine_latents_res2s(
    transformer: torch.nn.Module,
    latent_upsampler: torch.nn.Module,
    video_latents: Tensor,
    audio_latents: Tensor,
    contexts: TextContexts,
    *,
    latents_mean: Tensor,
    latents_std: Tensor,
    frame_rate: float,
    sigmas: Tensor,
    generator: torch.Generator | None,
    conditions: Sequence[VideoCondition] = (),
) -> tuple[Tensor, Tensor]:
    """Stage 2 of the HQ pipeline: `refine_latents` (x2 upsample, re-noise to sigmas[0]) with res_2s instead of Euler,
    one positive pass per prediction (the negative contexts are not used).

    video_latents: (B, C, F', H', W'), audio_latents: (B, C_a, T_a, mel), normalised. conditions: encoded at the FULL
    size. Returns video (B, C, F', 2H', 2W') and audio (B, C_a, T_a, mel) latents, normalised.
    """
    sigmas = torch.as_tensor(sigmas, dtype=torch.float32).cpu()
    video, audio, grid = upsample_and_renoise(
        latent_upsampler,
        video_latents,
        audio_latents,
        latents_mean=latents_mean,
        latents_std=latents_std,
        frame_rate=frame_rate,
        noise_scale=float(sigmas[0]),
        generator=generator,
        dtype=transformer.dtype,
        conditions=conditions,
    )
    neutral = GuidanceScales()  # the plan runs the positive pass only (`simple_denoising_func`)
    video, audio = denoise_res2s(
        transformer, video, audio, TextContexts(contexts.video, contexts.audio), sigmas, neutral, neutral
    )
    audio_channels = audio_latents.shape[1]
    return unpatchify_video(video.output_tokens(), *grid), unpack_audio_latents(audio.output_tokens(), audio_channels)


class HQStageAdapters(StageAdapters):
    """`StageAdapters` with the adapter active in BOTH stages, at `stage_1_scale` in stage 1 and `scale` in stage 2."""

    def __init__(self, transformer: torch.nn.Module, name: str, stage_1_scale: float, stage_2_scale: float):
        super().__init__(transformer, name, stage_2_scale)
        self.stage_1_scale = stage_1_scale

    def stage_1(self) -> None:
        self.transformer.set_adapter([*self.others, self.name])
        for layer in self.layers:
            layer.set_scale(self.name, self.stage_1_scale)
        self.transformer.enable_adapters()


class LTX2AVTwoStageHQPipeline(LTX2AVTwoStagePipeline):
    """Text/image -> video + stereo audio in two res_2s stages (ltx-pipelines' `TI2VidTwoStagesHQPipeline`).

    Components: those of `LTX2AVTwoStagePipeline`. Build with
    `LTX2AVTwoStageHQPipeline(**two_stage_pipe.components)`; load the distilled LoRA as a peft adapter
    (`load_lora_adapter(pipe.transformer, path, adapter_name="distilled")`) and pass `distilled_adapter="distilled"`.
    """

    def check_hq_inputs(
        self, num_inference_steps: int, stage_1_scale: float, stage_2_scale: float, adapter: str | None
    ) -> None:
        if adapter is not None:
            loaded = list(getattr(self.transformer, "peft_config", None) or {})
            if adapter not in loaded:
                raise ValueError(
                    f"distilled_adapter={adapter!r} is not an adapter of the transformer (loaded: {loaded}). Load the "
                    "distilled LoRA first, e.g. load_lora_adapter(pipe.transformer, path, adapter_name='distilled')."
                )
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be a positive int, got {num_inference_steps!r}")
        for name, value in (("stage_1_adapter_scale", stage_1_scale), ("stage_2_adapter_scale", stage_2_scale)):
            if not isinstance(value, int | float):
                raise TypeError(f"{name} must be a number (the distilled LoRA's strength), got {value!r}")

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        negative_prompt: str | list[str] | None = None,
        *,
        image: ImageInput | None = None,
        image_strength: float = 1.0,
        image_crf: int = DEFAULT_IMAGE_CRF,
        keyframes: Sequence[tuple[ImageInput, int, float]] = (),
        height: int = 1088,
        width: int = 1920,
        num_frames: int = 121,
        frame_rate: float = 24.0,
        num_inference_steps: int = HQ_NUM_INFERENCE_STEPS,
        sigmas: Sequence[float] | None = None,
        video_guidance: GuidanceScales | GuidanceSchedule = HQ_VIDEO_GUIDANCE,
        audio_guidance: GuidanceScales | GuidanceSchedule = HQ_AUDIO_GUIDANCE,
        distilled_adapter: str | None = None,
        stage_1_adapter_scale: float = HQ_STAGE_1_ADAPTER_SCALE,
        stage_2_adapter_scale: float = HQ_STAGE_2_ADAPTER_SCALE,
        stage_2_sigmas: Sequence[float] = STAGE_2_DISTILLED_SIGMAS,
        num_videos_per_prompt: int = 1,
        generator: torch.Generator | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ) -> LTX2PipelineOutput | tuple:
        """Generate `num_frames` frames of `height` x `width` video (multiples of 64) with a stereo soundtrack.

        num_inference_steps: stage-1 res_2s steps; the schedule is shifted by the stage-1 token count
            F'·(H/64)·(W/64) (`ltx2_sigmas(steps, num_tokens)` with the scheduler's shifts). sigmas: explicit instead.
        video_guidance / audio_guidance: stage-1 guidance (default: the reference's HQ parameters).
        distilled_adapter: a peft adapter of the transformer (the distilled LoRA, `load_lora_adapter`), active at
            `stage_1_adapter_scale` in stage 1 and `stage_2_adapter_scale` in stage 2, on top of the other active
            adapters; adapters, their enabled state and scales are restored afterwards. None: the transformer as is.
        stage_2_sigmas: the refinement schedule; its first value is also the re-noising level.
        Returns `LTX2PipelineOutput(frames, audio, audio_sample_rate)` or `(frames, audio)`; with
        output_type="latent" the full-resolution video (B, 128, F', H/32, W/32) and audio (B, 8, T_a, 16) latents.
        """
        self.check_two_stage_inputs(height, width, num_frames, output_type, None)
        self.check_hq_inputs(num_inference_steps, stage_1_adapter_scale, stage_2_adapter_scale, distilled_adapter)
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        if negative_prompt is None:
            negative_prompt = self.sampling_defaults.negative_prompt
        negative_prompts = [negative_prompt] if isinstance(negative_prompt, str) else list(negative_prompt)
        strengths = [image_strength] * (image is not None) + [k[2] for k in keyframes]
        half_height, half_width = height // 2, width // 2
        self.check_inputs(
            prompts, negative_prompts, half_height, half_width, num_frames, frame_rate, strengths, output_type
        )
        if len(negative_prompts) == 1:
            negative_prompts = negative_prompts * len(prompts)
        device, dtype, transformer = self._execution_device, self.transformer.dtype, self.transformer
        adapters = (
            None
            if distilled_adapter is None
            else HQStageAdapters(transformer, distilled_adapter, stage_1_adapter_scale, stage_2_adapter_scale)
        )
        try:
            # 1. Stage 1 at half size: prompts (positive and negative), conditions, noise, guided res_2s
            if adapters is not None:
                adapters.stage_1()
            needs_negative = any(s.needs_uncond for g in (video_guidance, audio_guidance) for s in _all_scales(g))
            contexts = self.encode_prompts(prompts, negative_prompts if needs_negative else None, device, dtype)
            contexts = _repeat_contexts(contexts, num_videos_per_prompt)
            self._stage_1_contexts = None
            batch_size = len(prompts) * num_videos_per_prompt
            conditions = self._encode_conditions(image, image_strength, keyframes, half_height, half_width, image_crf)
            video, audio = prepare_latents(
                batch_size,
                half_height,
                half_width,
                num_frames,
                frame_rate,
                generator=generator,
                device=device,
                dtype=dtype,
                conditions=conditions,
                video_channels=transformer.config.in_channels,
                audio_channels=self.audio_vae.config.latent_channels,
                audio_mel_bins=transformer.config.audio_in_channels // self.audio_vae.config.latent_channels,
            )
            grid = ((num_frames - 1) // 8 + 1, half_height // 32, half_width // 32)
            if sigmas is None:
                cfg = self.scheduler.config
                num_tokens = grid[0] * grid[1] * grid[2]
                sigmas = ltx2_sigmas(num_inference_steps, num_tokens, cfg.base_shift, cfg.max_shift, cfg.shift_terminal)
            self.scheduler.set_timesteps(sigmas=sigmas)
            video, audio = denoise_res2s(
                transformer, video, audio, contexts, self.scheduler.sigmas, video_guidance, audio_guidance
            )
            video_latents = unpatchify_video(video.output_tokens(), *grid)
            audio_latents = unpack_audio_latents(audio.output_tokens(), self.audio_vae.config.latent_channels)

            # 2. Stage 2: upsample x2, re-noise, res_2s with one positive pass per prediction
            if adapters is not None:
                adapters.stage_2()
            conditions = self._encode_conditions(image, image_strength, keyframes, height, width, image_crf)
            self.scheduler.set_timesteps(sigmas=stage_2_sigmas)
            video_latents, audio_latents = refine_latents_res2s(
                transformer,
                self.latent_upsampler,
                video_latents,
                audio_latents,
                contexts,
                latents_mean=self.vae.latents_mean,
                latents_std=self.vae.latents_std,
                frame_rate=frame_rate,
                sigmas=self.scheduler.sigmas,
                generator=generator,
                conditions=conditions,
            )
        finally:
            if adapters is not None:
                adapters.restore()

        # 3. Latents -> frames and waveform
        return self._decode_outputs(video_latents, audio_latents, output_type, generator, return_dict)
