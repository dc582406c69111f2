"""The examples of diffusers' LTX-2 documentation (docs/source/en/api/pipelines/ltx2.md at huggingface/diffusers
58eb52c), run through `ltx2_diffusers.diffusers_compat` on tiny random models.

Each test re-types one example as the thing under test (the section is named in its comment) with only these changes:
the diffusers import lines -> ltx2_diffusers; Hub ids -> local folders saved from `build_tiny_pipeline()` (plus the
x2 upsampler and a random LoRA file where the example loads them); sizes, frame counts and step counts shrunk; device
"cpu"; image / video URLs -> local files. Each checks the output's shapes, dtypes and frame count, and that the mp4
it writes has a video and an audio stream.
"""

import pytest
import torch
from helpers.diffusers_examples import check_media, example_files, guidance_of, sigmas_of, spy_on_stages

from ltx2_diffusers import GuidanceScales
from ltx2_diffusers.models.autoencoder_kl_ltx2 import denormalize_latents

# The examples' dtype=torch.bfloat16 runs as float32: bf16 convolutions are slow on CPU (the tiny audio VAE's decode of a
# 65-frame clip takes 24 s in bf16), and these tests check the call surface, not bf16 numerics.
DTYPE = torch.float32
NEGATIVE_PROMPT = (  # the examples' literal
    "shaky, glitchy, low quality, worst quality, deformed, distorted, disfigured, motion smear, motion artifacts, "
    "fused fingers, bad anatomy, weird hand, ugly, transition, static."
)
# Offload calls on a CPU-only machine (device "cpu" stands for the examples' "cuda"), kept where they work:
# - `pipe.enable_sequential_cpu_offload(device=device)` is dropped: accelerate's hooks fail inside transformers' Gemma-3
#   (tiny here) in transformers 5.25 (`new() received an invalid combination of arguments - got (Tensor,
#   requires_grad=bool)`, accelerate/utils/modeling.py), before any ltx2_diffusers code runs.
# - `upsample_pipe.enable_model_cpu_offload(device=device)` works, except before `pipe.load_lora_weights` (two-stage
#   example): the upsample pipeline shares `pipe.vae`, so diffusers' LoRA loader sees an offload hook on `pipe` and
#   re-enables model offload on it without a device, which diffusers refuses without an accelerator
#   ("`enable_model_cpu_offload` requires accelerator, but not found"). Dropped there only.
OFFLOAD = "see above"


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, str]:
    return example_files(tmp_path_factory.mktemp("hub"), tmp_path_factory.mktemp("media"))


@pytest.fixture
def calls(monkeypatch) -> dict[str, list]:
    return spy_on_stages(monkeypatch)


def test_two_stages_generation(folders, calls, tmp_path, monkeypatch):
    # Section "Two-stages Generation" (text-to-video, stage 2 with the distilled LoRA and sigmas)
    monkeypatch.chdir(tmp_path)
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler  # diffusers' own scheduler: kept, converted on assignment

    from ltx2_diffusers.diffusers_compat import (
        STAGE_2_DISTILLED_SIGMA_VALUES,
        LTX2LatentUpsamplePipeline,
        LTX2LatentUpsamplerModel,
        LTX2Pipeline,
        encode_video,
    )

    device = "cpu"  # noqa: F841  (the example's offload calls that used it are dropped, see OFFLOAD)
    width = 64
    height = 64

    pipe = LTX2Pipeline.from_pretrained(folders["Lightricks/LTX-2"], dtype=DTYPE)
    # dropped: pipe.enable_sequential_cpu_offload(device=device), see OFFLOAD

    prompt = "A beautiful sunset over the ocean"
    negative_prompt = NEGATIVE_PROMPT

    # Stage 1 default (non-distilled) inference
    frame_rate = 24.0
    video_latent, audio_latent = pipe(
        prompt=prompt,
        negative_prompt=negative_prompt,
        width=width,
        height=height,
        num_frames=9,
        frame_rate=frame_rate,
        num_inference_steps=2,
        sigmas=None,
        guidance_scale=3.0,
        output_type="latent",
        return_dict=False,
    )

    latent_upsampler = LTX2LatentUpsamplerModel.from_pretrained(
        folders["Lightricks/LTX-2"],
        subfolder="latent_upsampler",
        dtype=DTYPE,
    )
    upsample_pipe = LTX2LatentUpsamplePipeline(vae=pipe.vae, latent_upsampler=latent_upsampler)
    # dropped: upsample_pipe.enable_model_cpu_offload(device=device), see OFFLOAD
    upscaled_video_latent = upsample_pipe(
        latents=video_latent,
        output_type="latent",
        return_dict=False,
    )[0]

    # Load Stage 2 distilled LoRA
    pipe.load_lora_weights(
        folders["Lightricks/LTX-2"],
        adapter_name="stage_2_distilled",
        weight_name="ltx-2-19b-distilled-lora-384.safetensors",
    )
    pipe.set_adapters("stage_2_distilled", 1.0)
    # VAE tiling is usually necessary to avoid OOM error when VAE decoding
    pipe.vae.enable_tiling()
    # Change scheduler to use Stage 2 distilled sigmas as is
    new_scheduler = FlowMatchEulerDiscreteScheduler.from_config(
        pipe.scheduler.config, use_dynamic_shifting=False, shift_terminal=None
    )
    pipe.scheduler = new_scheduler
    # Stage 2 inference with distilled LoRA and sigmas
    video, audio = pipe(
        latents=upscaled_video_latent,
        audio_latents=audio_latent,
        prompt=prompt,
        negative_prompt=negative_prompt,
        num_inference_steps=3,
        noise_scale=STAGE_2_DISTILLED_SIGMA_VALUES[0],  # renoise with first sigma value (ti2vid_two_stages.py)
        sigmas=STAGE_2_DISTILLED_SIGMA_VALUES,
        guidance_scale=1.0,
        output_type="np",
        return_dict=False,
    )

    encode_video(
        video[0],
        fps=frame_rate,
        audio=audio[0].float().cpu(),
        audio_sample_rate=pipe.vocoder.config.output_sampling_rate,
        output_path="ltx2_lora_distilled_sample.mp4",
    )

    # what the example produced
    assert video_latent.shape == (1, 128, 2, 2, 2) and audio_latent.shape == (1, 8, 9, 16)
    assert video_latent.dtype == torch.float32
    assert upscaled_video_latent.shape == (1, 128, 2, 4, 4)
    assert type(pipe.scheduler).__name__ == "LTX2Scheduler"
    assert "stage_2_distilled" in pipe.transformer.peft_config
    stage_1, stage_2 = calls["denoise"]
    assert len(sigmas_of(stage_1)) == 3 and sigmas_of(stage_2) == [0.909375, 0.725, 0.421875, 0.0]
    # omitted guidance keywords keep the LTX-2 defaults (the reference's, STG block 29); guidance_scale replaces cfg
    assert guidance_of(stage_1)[0] == GuidanceScales(cfg=3.0, stg=1.0, modality=3.0, rescale=0.7, stg_blocks=(29,))
    assert guidance_of(stage_2)[0] == GuidanceScales(cfg=1.0, stg=1.0, modality=3.0, rescale=0.7, stg_blocks=(29,))
    assert [c[1]["noise_scale"] for c in calls["prepare_latents"]] == pytest.approx([1.0, 0.909375])
    check_media(video, audio, 9, 128, 128, 24000, str(tmp_path / "ltx2_lora_distilled_sample.mp4"))


def test_distilled_checkpoint_generation(folders, calls, tmp_path, monkeypatch):
    # Section "Distilled checkpoint generation"
    monkeypatch.chdir(tmp_path)
    import torch

    from ltx2_diffusers.diffusers_compat import (
        DISTILLED_SIGMA_VALUES,
        STAGE_2_DISTILLED_SIGMA_VALUES,
        LTX2LatentUpsamplePipeline,
        LTX2LatentUpsamplerModel,
        LTX2Pipeline,
        encode_video,
    )

    device = "cpu"
    width = 64
    height = 64
    random_seed = 42
    generator = torch.Generator(device).manual_seed(random_seed)
    model_path = folders["rootonchair/LTX-2-19b-distilled"]

    pipe = LTX2Pipeline.from_pretrained(model_path, dtype=DTYPE)
    # dropped: pipe.enable_sequential_cpu_offload(device=device), see OFFLOAD

    prompt = "A beautiful sunset over the ocean"
    negative_prompt = NEGATIVE_PROMPT

    frame_rate = 24.0
    video_latent, audio_latent = pipe(
        prompt=prompt,
        negative_prompt=negative_prompt,
        width=width,
        height=height,
        num_frames=9,
        frame_rate=frame_rate,
        num_inference_steps=8,
        sigmas=DISTILLED_SIGMA_VALUES,
        guidance_scale=1.0,
        generator=generator,
        output_type="latent",
        return_dict=False,
    )

    latent_upsampler = LTX2LatentUpsamplerModel.from_pretrained(
        model_path,
        subfolder="latent_upsampler",
        dtype=DTYPE,
    )
    upsample_pipe = LTX2LatentUpsamplePipeline(vae=pipe.vae, latent_upsampler=latent_upsampler)
    upsample_pipe.enable_model_cpu_offload(device=device)
    upscaled_video_latent = upsample_pipe(
        latents=video_latent,
        output_type="latent",
        return_dict=False,
    )[0]

    video, audio = pipe(
        latents=upscaled_video_latent,
        audio_latents=audio_latent,
        prompt=prompt,
        negative_prompt=negative_prompt,
        num_inference_steps=3,
        noise_scale=STAGE_2_DISTILLED_SIGMA_VALUES[0],  # renoise with first sigma value (distilled.py)
        sigmas=STAGE_2_DISTILLED_SIGMA_VALUES,
        generator=generator,
        guidance_scale=1.0,
        output_type="np",
        return_dict=False,
    )

    encode_video(
        video[0],
        fps=frame_rate,
        audio=audio[0].float().cpu(),
        audio_sample_rate=pipe.vocoder.config.output_sampling_rate,
        output_path="ltx2_distilled_sample.mp4",
    )

    assert pipe.scheduler.config.fixed_sigmas is not None  # the folder's distilled scheduler
    stage_1, stage_2 = calls["denoise"]
    assert sigmas_of(stage_1) == [1.0, 0.99375, 0.9875, 0.98125, 0.975, 0.909375, 0.725, 0.421875, 0.0]
    assert sigmas_of(stage_2) == [0.909375, 0.725, 0.421875, 0.0]
    assert guidance_of(stage_1) == guidance_of(stage_2) == (GuidanceScales(), GuidanceScales())  # distilled: one pass
    assert [c[1]["noise_scale"] for c in calls["prepare_latents"]] == pytest.approx([1.0, 0.909375])
    assert video_latent.shape == (1, 128, 2, 2, 2) and audio_latent.shape == (1, 8, 9, 16)
    assert upscaled_video_latent.shape == (1, 128, 2, 4, 4)
    check_media(video, audio, 9, 128, 128, 24000, str(tmp_path / "ltx2_distilled_sample.mp4"))


def test_condition_pipeline_first_last_frame(folders, calls, tmp_path, monkeypatch):
    # Section "Condition Pipeline Generation", first example (first-last-frame-to-video, two stages)
    monkeypatch.chdir(tmp_path)
    import torch

    from ltx2_diffusers.diffusers_compat import (
        DISTILLED_SIGMA_VALUES,
        STAGE_2_DISTILLED_SIGMA_VALUES,
        LTX2ConditionPipeline,
        LTX2LatentUpsamplePipeline,
        LTX2LatentUpsamplerModel,
        LTX2VideoCondition,
        encode_video,
        load_image,
    )

    device = "cpu"
    width = 64
    height = 64
    random_seed = 42
    generator = torch.Generator(device).manual_seed(random_seed)
    model_path = folders["rootonchair/LTX-2-19b-distilled"]

    pipe = LTX2ConditionPipeline.from_pretrained(model_path, dtype=DTYPE)
    # dropped: pipe.enable_sequential_cpu_offload(device=device), see OFFLOAD
    pipe.vae.enable_tiling()

    prompt = (
        "CG animation style, a small blue bird takes off from the ground, flapping its wings. The bird's feathers are "
        "delicate, with a unique pattern on its chest."
    )

    first_image = load_image(
        folders["image"],
    )
    last_image = load_image(
        folders["last_image"],
    )
    first_cond = LTX2VideoCondition(frames=first_image, index=0, strength=1.0)
    last_cond = LTX2VideoCondition(frames=last_image, index=-1, strength=1.0)
    conditions = [first_cond, last_cond]

    frame_rate = 24.0
    video_latent, audio_latent = pipe(
        conditions=conditions,
        prompt=prompt,
        width=width,
        height=height,
        num_frames=9,
        frame_rate=frame_rate,
        num_inference_steps=8,
        sigmas=DISTILLED_SIGMA_VALUES,
        guidance_scale=1.0,
        generator=generator,
        output_type="latent",
        return_dict=False,
    )

    latent_upsampler = LTX2LatentUpsamplerModel.from_pretrained(
        model_path,
        subfolder="latent_upsampler",
        dtype=DTYPE,
    )
    upsample_pipe = LTX2LatentUpsamplePipeline(vae=pipe.vae, latent_upsampler=latent_upsampler)
    upsample_pipe.enable_model_cpu_offload(device=device)
    upscaled_video_latent = upsample_pipe(
        latents=video_latent,
        output_type="latent",
        return_dict=False,
    )[0]

    video, audio = pipe(
        latents=upscaled_video_latent,
        audio_latents=audio_latent,
        prompt=prompt,
        width=width * 2,
        height=height * 2,
        num_inference_steps=3,
        sigmas=STAGE_2_DISTILLED_SIGMA_VALUES,
        generator=generator,
        guidance_scale=1.0,
        output_type="np",
        return_dict=False,
    )

    encode_video(
        video[0],
        fps=frame_rate,
        audio=audio[0].float().cpu(),
        audio_sample_rate=pipe.vocoder.config.output_sampling_rate,
        output_path="ltx2_distilled_flf2v.mp4",
    )

    # the appended last-frame keyframe tokens are dropped from the output: the latents keep the clip's grid
    assert video_latent.shape == (1, 128, 2, 2, 2) and audio_latent.shape == (1, 8, 9, 16)
    stage_1_conditions = calls["prepare_latents"][0][1]["conditions"]
    assert [(c.frame_index, c.strength) for c in stage_1_conditions] == [(0, 1.0), (1, 1.0)]  # latent 1 = pixel 1
    first = denormalize_latents(
        pipe.encode_image(first_image, 64, 64, "cpu"), pipe.vae.latents_mean, pipe.vae.latents_std
    )
    torch.testing.assert_close(video_latent[:, :, :1], first, atol=1e-5, rtol=0)  # strength 1: frame 0 kept
    assert not torch.allclose(video_latent[:, :, 1:], first, atol=1e-2)
    # the condition pipeline re-noises given latents to sigmas[0] when noise_scale is not passed, as diffusers'
    assert [c[1]["noise_scale"] for c in calls["prepare_latents"]] == pytest.approx([1.0, 0.909375])
    check_media(video, audio, 9, 128, 128, 24000, str(tmp_path / "ltx2_distilled_flf2v.mp4"))


def test_condition_pipeline_image_and_video(folders, calls, tmp_path, monkeypatch):
    # Section "Condition Pipeline Generation", second example (a video at latent index 0, an image at latent index 8)
    monkeypatch.chdir(tmp_path)
    import torch

    from ltx2_diffusers.diffusers_compat import (
        DEFAULT_NEGATIVE_PROMPT,
        LTX2ConditionPipeline,
        LTX2VideoCondition,
        encode_video,
        load_image,
        load_video,
    )

    device = "cpu"
    width = 64
    height = 64
    random_seed = 42
    generator = torch.Generator(device).manual_seed(random_seed)
    model_path = folders["rootonchair/LTX-2-19b-distilled"]

    pipe = LTX2ConditionPipeline.from_pretrained(model_path, dtype=DTYPE)
    # dropped: pipe.enable_sequential_cpu_offload(device=device), see OFFLOAD
    pipe.vae.enable_tiling()

    prompt = "The video depicts a long, straight highway stretching into the distance, flanked by metal guardrails."

    cond_video = load_video(folders["video"])
    cond_image = load_image(folders["image"])
    video_cond = LTX2VideoCondition(frames=cond_video, index=0, strength=1.0)
    image_cond = LTX2VideoCondition(frames=cond_image, index=8, strength=1.0)
    conditions = [video_cond, image_cond]

    frame_rate = 24.0
    video, audio = pipe(
        conditions=conditions,
        prompt=prompt,
        negative_prompt=DEFAULT_NEGATIVE_PROMPT,
        width=width,
        height=height,
        num_frames=65,  # latent index 8 needs at least 9 latent frames (65 pixel frames)
        frame_rate=frame_rate,
        num_inference_steps=2,
        guidance_scale=3.0,
        generator=generator,
        output_type="np",
        return_dict=False,
    )

    encode_video(
        video[0],
        fps=frame_rate,
        audio=audio[0].float().cpu(),
        audio_sample_rate=pipe.vocoder.config.output_sampling_rate,
        output_path="ltx2_cond_video.mp4",
    )

    assert len(cond_video) == 9
    (conditioned,) = calls["prepare_latents"]
    assert [(c.frame_index, tuple(c.latent.shape)) for c in conditioned[1]["conditions"]] == [
        (0, (1, 128, 2, 2, 2)),  # the 9-frame video replaces latent frames 0-1
        (57, (1, 128, 1, 2, 2)),  # latent index 8 -> pixel frame 8 * 7 + 1, appended
    ]
    (denoised,) = calls["denoise"]
    assert sigmas_of(denoised) == [1.0, 0.5, 0.0]  # 2 steps on a distilled scheduler: diffusers' linear sigmas
    assert guidance_of(denoised)[0] == GuidanceScales(cfg=3.0)  # cfg only: the distilled defaults are neutral
    check_media(video, audio, 65, 64, 64, 24000, str(tmp_path / "ltx2_cond_video.mp4"))


def test_multimodalguidance_of(folders, calls, tmp_path, monkeypatch):
    # Section "Multimodal Guidance" (LTX-2.3 image-to-video with every guidance keyword)
    monkeypatch.chdir(tmp_path)
    import torch

    from ltx2_diffusers.diffusers_compat import (
        DEFAULT_NEGATIVE_PROMPT,
        LTX2ImageToVideoPipeline,
        encode_video,
        load_image,
    )

    device = "cpu"
    width = 64
    height = 64
    random_seed = 42
    frame_rate = 24.0
    generator = torch.Generator(device).manual_seed(random_seed)
    model_path = folders["diffusers/LTX-2.3-Diffusers"]

    pipe = LTX2ImageToVideoPipeline.from_pretrained(model_path, dtype=DTYPE)
    # dropped: pipe.enable_sequential_cpu_offload(device=device), see OFFLOAD
    pipe.vae.enable_tiling()

    prompt = "An astronaut hatches from a fragile egg on the surface of the Moon, the shell cracking and peeling apart."

    image = load_image(
        folders["image"],
    )

    video, audio = pipe(
        image=image,
        prompt=prompt,
        negative_prompt=DEFAULT_NEGATIVE_PROMPT,
        width=width,
        height=height,
        num_frames=9,
        frame_rate=frame_rate,
        num_inference_steps=2,
        guidance_scale=3.0,  # Recommended LTX-2.3 guidance parameters
        stg_scale=1.0,  # Note that 0.0 (not 1.0) means that STG is disabled (all other guidance is disabled at 1.0)
        modality_scale=3.0,
        guidance_rescale=0.7,
        audio_guidance_scale=7.0,  # Note that a higher CFG guidance scale is recommended for audio
        audio_stg_scale=1.0,
        audio_modality_scale=3.0,
        audio_guidance_rescale=0.7,
        spatio_temporal_guidance_blocks=[28],
        use_cross_timestep=True,
        generator=generator,
        output_type="np",
        return_dict=False,
    )

    encode_video(
        video[0],
        fps=frame_rate,
        audio=audio[0].float().cpu(),
        audio_sample_rate=pipe.vocoder.config.output_sampling_rate,
        output_path="ltx2_3_i2v_stage_1.mp4",
    )

    assert pipe.model_version == "2.3"
    (denoised,) = calls["denoise"]
    video_guidance, audio_guidance = guidance_of(denoised)
    assert video_guidance == GuidanceScales(cfg=3.0, stg=1.0, modality=3.0, rescale=0.7, stg_blocks=(28,))
    assert audio_guidance == GuidanceScales(cfg=7.0, stg=1.0, modality=3.0, rescale=0.7, stg_blocks=(28,))
    (conditioned,) = calls["prepare_latents"]
    assert [(c.frame_index, c.strength) for c in conditioned[1]["conditions"]] == [(0, 1.0)]
    check_media(video, audio, 9, 64, 64, 48000, str(tmp_path / "ltx2_3_i2v_stage_1.mp4"))


def test_prompt_enhancement(folders, calls, tmp_path, monkeypatch):
    # Section "Prompt Enhancement" (LTX-2.3 text-to-video with Gemma rewriting the prompt first)
    monkeypatch.chdir(tmp_path)
    import torch
    from transformers import Gemma3Processor

    from ltx2_diffusers.diffusers_compat import (
        DEFAULT_NEGATIVE_PROMPT,
        T2V_DEFAULT_SYSTEM_PROMPT,
        LTX2Pipeline,
        encode_video,
    )

    device = "cpu"
    width = 64
    height = 64
    random_seed = 42
    frame_rate = 24.0
    generator = torch.Generator(device).manual_seed(random_seed)
    model_path = folders["diffusers/LTX-2.3-Diffusers"]

    pipe = LTX2Pipeline.from_pretrained(model_path, dtype=DTYPE)
    pipe.enable_model_cpu_offload(device=device)
    pipe.vae.enable_tiling()
    if getattr(pipe, "processor", None) is None:
        processor = Gemma3Processor.from_pretrained(model_path, subfolder="processor")
        pipe.processor = processor

    prompt = "An astronaut hatches from a fragile egg on the surface of the Moon."

    video, audio = pipe(
        prompt=prompt,
        negative_prompt=DEFAULT_NEGATIVE_PROMPT,
        width=width,
        height=height,
        num_frames=9,
        frame_rate=frame_rate,
        num_inference_steps=2,
        guidance_scale=3.0,
        stg_scale=1.0,
        modality_scale=3.0,
        guidance_rescale=0.7,
        audio_guidance_scale=7.0,
        audio_stg_scale=1.0,
        audio_modality_scale=3.0,
        audio_guidance_rescale=0.7,
        spatio_temporal_guidance_blocks=[28],
        use_cross_timestep=True,
        enable_prompt_enhancement=True,
        system_prompt=T2V_DEFAULT_SYSTEM_PROMPT,
        generator=generator,
        output_type="np",
        return_dict=False,
    )

    encode_video(
        video[0],
        fps=frame_rate,
        audio=audio[0].float().cpu(),
        audio_sample_rate=pipe.vocoder.config.output_sampling_rate,
        output_path="ltx2_3_t2v_stage_1.mp4",
    )

    check_media(video, audio, 9, 64, 64, 48000, str(tmp_path / "ltx2_3_t2v_stage_1.mp4"))
    ((args, kwargs, enhanced),) = calls["enhance_prompt_with_gemma"]
    assert args[2] == prompt and kwargs["system_prompt"] == T2V_DEFAULT_SYSTEM_PROMPT and kwargs["seed"] == 10
    assert isinstance(enhanced, str) and enhanced != prompt
