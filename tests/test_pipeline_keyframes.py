"""LTX2AVKeyframeInterpolationPipeline against ltx-pipelines 1.0.0's KeyframeInterpolationPipeline; the tiny call; errors.

(1) Parity: both pipelines run on the same tiny models in bf16 (ours; the reference's ledgers serve ltx-core twins with
    the same weights, see tests/helpers/keyframes.py), the same prompt, keyframe image files, seed and guidance (the
    reference's LTX-2 preset, our defaults). Stage by stage, bit for bit: the noised and conditioned states each
    denoising loop starts from (keyframe tokens appended at their pixel frames, frame 0 included, in both stages;
    positions, denoise masks, clean values, noise from one generator), the states each loop returns, the final latents.
(2) The tiny call: frames and waveform shapes, the running callback index across stages, the stage-2 adapter, the
    stage functions it is made of (`encode_keyframes`, `prepare_latents`, `denoise`, `refine_latents`).
(3) Bad keyframes and arguments fail before any model runs, naming the keyframe and the fix.
(The call conventions every pipeline shares are tests/test_pipeline_contract.py's, this pipeline included.)
"""

from dataclasses import replace

import numpy as np
import PIL.Image
import pytest
import torch
from helpers.keyframes import DTYPE, binary_image, run_reference, small_pipeline
from ltx_pipelines.utils.constants import DEFAULT_NEGATIVE_PROMPT, LTX_2_PARAMS
from peft.tuners.tuners_utils import BaseTunerLayer

from ltx2_diffusers import LTX2AVKeyframeInterpolationPipeline
from ltx2_diffusers.loaders.lora import LTX2LoRA, load_lora_adapter
from ltx2_diffusers.pipelines import pipeline_ltx2_av_keyframes as keyframes_module
from ltx2_diffusers.pipelines import pipeline_utils, refinement
from ltx2_diffusers.pipelines.condition_encoding import encode_conditions, encode_keyframes
from ltx2_diffusers.pipelines.conditioning import patchify_video
from ltx2_diffusers.pipelines.denoising import prepare_latents
from ltx2_diffusers.pipelines.guidance import GuidanceScales
from ltx2_diffusers.pipelines.presets import STAGE_2_DISTILLED_SIGMAS, sampling_preset
from ltx2_diffusers.pipelines.tiny import build_tiny_two_stage_pipeline

PROMPT, SEED = "a cat walks across the room", 10
SIZE = {"num_frames": 9, "height": 128, "width": 128, "frame_rate": 24.0}  # stage 1: 2 x 2 x 2 latents
STEPS, STG_BLOCK = 2, 3  # the parity model has 4 blocks
NEUTRAL = GuidanceScales()
FAST = {**SIZE, "num_inference_steps": 1}


def _keyframe_images(directory, count: int = 3) -> list[str]:
    """Random images of another aspect than the video's (so cover resize and centre crop act), saved as PNG."""
    paths = []
    for i in range(count):
        pixels = np.random.default_rng(i).integers(0, 256, size=(60, 80, 3), dtype=np.uint8)
        paths.append(str(directory / f"key{i}.png"))
        PIL.Image.fromarray(pixels).save(paths[-1])
    return paths


class _Stop(Exception):
    """Raised by a patched stage to end a call once what a test needs was seen."""


def _pipe(seed: int = 0) -> LTX2AVKeyframeInterpolationPipeline:
    pipe = LTX2AVKeyframeInterpolationPipeline(**build_tiny_two_stage_pipeline(seed).components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def pipe() -> LTX2AVKeyframeInterpolationPipeline:
    return _pipe(0)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[str]:
    return _keyframe_images(tmp_path_factory.mktemp("keyframes"))


# ----------------------------------------------------------------------------------------------------------------------
# (1) Parity with ltx-pipelines 1.0.0


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(reference run, our stage states, our final latents) for keyframes at pixel frames 0, 4 and 8 (strengths 1,
    0.7, 0.9), 2 guided stage-1 steps with every guidance term on (the LTX-2 preset, STG on the tiny model's last
    block), the 3 distilled refinement steps."""
    pipe = small_pipeline(LTX2AVKeyframeInterpolationPipeline)
    pipe.transformer.set_reference("1.0")  # the oracle is ltx-pipelines 1.0.0
    directory = tmp_path_factory.mktemp("binary")
    paths = [binary_image(directory / f"key{i}.png", SIZE["height"], seed=i) for i in range(3)]
    keyframes = [(paths[0], 0, 1.0), (paths[1], 4, 0.7), (paths[2], 8, 0.9)]
    video_params, audio_params = (
        replace(params, stg_blocks=[STG_BLOCK])
        for params in (LTX_2_PARAMS.video_guider_params, LTX_2_PARAMS.audio_guider_params)
    )
    reference = run_reference(
        pipe, prompt=PROMPT, negative_prompt=DEFAULT_NEGATIVE_PROMPT, keyframes=[(*k, 0) for k in keyframes],
        seed=SEED, num_inference_steps=STEPS, video_guider_params=video_params, audio_guider_params=audio_params,
        **SIZE,
    )  # fmt: skip
    stages = []

    def recording(transformer, video, audio, *args, **kwargs):
        video_out, audio_out = original(transformer, video, audio, *args, **kwargs)
        stages.append((video, audio, video_out, audio_out))
        return video_out, audio_out

    original = keyframes_module.denoise  # stage 1's; stage 2's runs inside refinement.refine_latents
    assert refinement.denoise is original
    defaults = sampling_preset("2.0")  # the LTX-2 preset, as the reference's
    assert pipe.model_version == "2.0"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keyframes_module, "denoise", recording)
        patch.setattr(refinement, "denoise", recording)
        video, audio = pipe(
            PROMPT, keyframes=keyframes, image_crf=0, num_inference_steps=STEPS,
            spatio_temporal_guidance_blocks=[STG_BLOCK],  # the preset's guidance otherwise (diffusers' keyword)
            generator=torch.Generator().manual_seed(SEED), output_type="latent", return_dict=False, **SIZE,
            reference="1.0",
        )  # fmt: skip
    assert defaults.video_guidance.stg_blocks == (29,)  # the reference's LTX-2 STG block, not in the 4-block model
    return reference, stages, (video, audio)


@pytest.mark.parametrize("stage", [0, 1], ids=["stage_1", "stage_2"])
def test_stage_states_equal_keyframe_interpolation_pipeline(runs, stage):
    reference, stages, _ = runs
    assert len(reference.stages) == len(stages) == 2
    expected, (video, audio, video_out, audio_out) = reference.stages[stage], stages[stage]
    side = 2 * (stage + 1)  # latent height = width: 2 in stage 1, 4 in stage 2
    grid_tokens, key_tokens = 2 * side * side, 3 * side * side  # 2 latent frames; 3 keyframes of one latent frame
    assert video.latent.shape == (1, grid_tokens + key_tokens, 128) and video.num_output_tokens == grid_tokens
    assert video.latent.dtype == DTYPE and video.attention_mask is None and expected.video_in.attention_mask is None
    for name in ("latent", "clean_latent", "denoise_mask", "positions"):
        ours, theirs = getattr(video, name), getattr(expected.video_in, name)
        assert ours.dtype == theirs.dtype, name
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0, msg=f"video {name}")
    for name in ("latent", "denoise_mask", "positions"):
        torch.testing.assert_close(getattr(audio, name), getattr(expected.audio_in, name), rtol=0, atol=0, msg=name)
    # keyframe tokens at strengths 1, 0.7, 0.9 (masks in bf16, as the reference builds them), noised by their masks
    masks = video.denoise_mask[0, grid_tokens:, 0].unflatten(0, (3, -1))[:, 0].tolist()
    assert masks == [0.0, float(torch.tensor(0.3, dtype=DTYPE)), float(torch.tensor(0.1, dtype=DTYPE))]
    # their positions: frame 0 with the causal shift ([0, 1) frames), frames 4 and 8 without it ([k, k + 8))
    times = video.positions[0, 0, grid_tokens:].unflatten(0, (3, -1))[:, 0].float() * 24.0
    torch.testing.assert_close(times, torch.tensor([[0.0, 1.0], [4.0, 12.0], [8.0, 16.0]]), rtol=0, atol=1e-4)
    # the loops' results, bit for bit, and not trivially (denoising moved them)
    torch.testing.assert_close(video_out.latent, expected.video_out.latent, rtol=0, atol=0)
    torch.testing.assert_close(audio_out.latent, expected.audio_out.latent, rtol=0, atol=0)
    assert (video_out.latent - video.latent).abs().max() > 0.1 and (audio_out.latent - audio.latent).abs().max() > 0.1


def test_final_latents_equal_keyframe_interpolation_pipeline(runs):
    reference, _, (video, audio) = runs
    assert video.shape == reference.video_latent.shape == (1, 128, 2, 4, 4)
    assert audio.shape == reference.audio_latent.shape == (1, 8, round(9 / 24 * 25), 16)
    torch.testing.assert_close(video, reference.video_latent, rtol=0, atol=0)
    torch.testing.assert_close(audio, reference.audio_latent, rtol=0, atol=0)
    assert reference.video_latent.abs().max() > 0.5 and reference.audio_latent.abs().max() > 0.5


def test_the_comparison_can_fail(runs):
    """Every keyframe appended (not frame 0 replaced in place, as image-to-video does): the first keyframe's clean
    tokens are appended, so the output grid's frame 0 is generated, not copied from the keyframe."""
    reference, stages, _ = runs
    video = stages[0][0]
    grid_tokens = video.num_output_tokens
    first_key = video.clean_latent[:, grid_tokens : grid_tokens + 4]
    assert (video.latent[:, :4] - first_key).abs().max() > 0.1  # frame 0 of the grid is noise, not the keyframe
    assert (reference.stages[0].video_in.latent[:, :4] - first_key).abs().max() > 0.1


# ----------------------------------------------------------------------------------------------------------------------
# (2) The tiny call


def test_tiny_call_gives_video_and_audio_with_a_running_callback_index(pipe, images):
    seen = []

    def callback(p, step_index, timestep, tensors):
        seen.append((step_index, round(timestep, 3), tuple(tensors["video_latents"].shape)))
        assert set(tensors) == {"video_latents", "audio_latents"}

    out = pipe(
        "a cat", keyframes=[(images[0], 0, 1.0), (PIL.Image.open(images[1]), 8, 1.0)], **{**FAST, "width": 192},
        generator=torch.Generator().manual_seed(0), output_type="pt", callback_on_step_end=callback,
        callback_on_step_end_tensor_inputs=["video_latents", "audio_latents"],
    )  # fmt: skip
    assert out.frames.shape == (1, 9, 3, 128, 192) and 0.0 <= out.frames.min() and out.frames.max() <= 1.0
    assert out.frames.std() > 0.01
    assert out.audio.shape[:2] == (1, 2) and out.audio.shape[2] > 1000 and out.audio_sample_rate == 24000
    assert torch.isfinite(out.audio).all() and out.audio.abs().max() > 0
    # stage 1: 2 x 2 x 3 latents + 2 keyframes of 2 x 3 tokens; stage 2: 2 x 4 x 6 + 2 x 24, the 3 refinement sigmas
    assert [s[0] for s in seen] == [0, 1, 2, 3]
    assert [s[2] for s in seen] == [(1, 24, 128)] + [(1, 96, 128)] * 3
    assert [s[1] for s in seen][1:] == [round(1000 * s, 3) for s in STAGE_2_DISTILLED_SIGMAS[:-1]]


def _random_lora(transformer, seed: int) -> LTX2LoRA:
    generator = torch.Generator().manual_seed(seed)
    layers = {}
    for name, module in transformer.named_modules():
        if name.startswith("transformer_blocks.") and name.split(".", 2)[-1] in ("attn1.to_q", "attn1.to_v"):
            a = torch.randn(2, module.in_features, generator=generator) / module.in_features**0.5
            layers[name] = (a, 0.5 * torch.randn(module.out_features, 2, generator=generator))
    return LTX2LoRA(layers)


def test_stage_2_adapter_applies_in_stage_2_only(images):
    pipe = small_pipeline(LTX2AVKeyframeInterpolationPipeline, seed=2, dtype=torch.float32)

    def run(**kwargs):
        stage_1 = {}

        def callback(p, step_index, timestep, tensors):
            stage_1.setdefault(step_index, tensors["video_latents"].clone())

        video, _ = pipe(
            "a cat", keyframes=[(images[0], 0, 1.0)], **FAST, video_guidance=NEUTRAL, audio_guidance=NEUTRAL,
            generator=torch.Generator().manual_seed(3), output_type="latent", return_dict=False,
            callback_on_step_end=callback, **kwargs,
        )  # fmt: skip
        return stage_1[0], video

    base_stage_1, base = run()
    load_lora_adapter(pipe.transformer, _random_lora(pipe.transformer, 0), adapter_name="distilled")
    pipe.transformer.disable_adapters()
    stage_1, refined = run(stage_2_adapter="distilled")
    torch.testing.assert_close(stage_1, base_stage_1, rtol=0, atol=0)
    assert (refined - base).abs().max() > 1e-3
    assert all(m.disable_adapters for m in pipe.transformer.modules() if isinstance(m, BaseTunerLayer))
    with pytest.raises(ValueError, match="stage_2_adapter='nope' is not an adapter"):
        pipe("a cat", keyframes=[(images[0], 0, 1.0)], **FAST, stage_2_adapter="nope")


def test_stage_1_equals_the_stage_functions(pipe, images):
    """The call's stage 1 is encode_keyframes at half size + prepare_latents + denoise: checked by rebuilding the first
    stage-1 state from the stage functions (the frame-0 keyframe appended, not replaced as encode_conditions' is)."""
    captured = {}

    def capture(transformer, video, audio, *args, **kwargs):
        captured.setdefault("video", video)
        raise _Stop

    key, cpu = [(images[0], 0, 0.8)], torch.device("cpu")
    with pytest.MonkeyPatch.context() as patch, pytest.raises(_Stop):
        patch.setattr(keyframes_module, "denoise", capture)
        pipe("a cat", keyframes=key, **FAST, generator=torch.Generator().manual_seed(5))
    conditions = encode_keyframes(pipe.vae, key, 64, 64, 33, cpu)
    assert [(c.frame_index, c.strength, c.append) for c in conditions] == [(0, 0.8, True)]
    video, _ = prepare_latents(
        1, 64, 64, 9, 24.0, generator=torch.Generator().manual_seed(5), device=cpu, dtype=torch.float32,
        conditions=conditions,
    )  # fmt: skip
    torch.testing.assert_close(captured["video"].latent, video.latent, rtol=0, atol=0)
    assert video.num_output_tokens == 8 and video.latent.shape[1] == 8 + 4  # 2 x 2 x 2 grid + one appended frame
    torch.testing.assert_close(video.clean_latent[:, 8:], patchify_video(conditions[0].latent), rtol=0, atol=0)
    # encode_conditions' frame-0 image (image-to-video) is the same latent, written into the grid instead
    image_condition = encode_conditions(pipe.vae, None, 1.0, key, 64, 64, 33, cpu)
    torch.testing.assert_close(image_condition[0].latent, conditions[0].latent, rtol=0, atol=0)
    replaced, _ = prepare_latents(
        1, 64, 64, 9, 24.0, generator=torch.Generator().manual_seed(5), device=cpu, dtype=torch.float32,
        conditions=image_condition,
    )  # fmt: skip
    assert replaced.latent.shape[1] == 8


@pytest.mark.parametrize("guided", [True, False], ids=["guided", "unguided"])
def test_enhance_prompt_sees_the_first_keyframe_and_negatives_only_when_guided(pipe, images, guided):
    calls = {}

    def enhance(text_encoder, tokenizer, prompt, *, image, processor, seed, device):
        calls["enhance"] = (prompt, image, seed)
        return "an enhanced prompt"

    def encode(text_encoder, tokenizer, connectors, texts, **kwargs):
        calls["texts"] = texts
        raise _Stop

    guidance = {} if guided else {"video_guidance": NEUTRAL, "audio_guidance": NEUTRAL}
    with pytest.MonkeyPatch.context() as patch, pytest.raises(_Stop):
        patch.setattr(pipeline_utils, "enhance_prompt_with_gemma", enhance)
        patch.setattr(pipeline_utils, "encode_prompts", encode)
        pipe(
            "a cat", "ugly", keyframes=[(images[1], 4, 1.0), (images[0], 0, 1.0)], **FAST, enhance_prompt=True,
            generator=torch.Generator().manual_seed(7), **guidance,
        )  # fmt: skip
    assert calls["enhance"] == ("a cat", images[1], 7)  # the first keyframe given, the generator's seed
    assert calls["texts"] == (["an enhanced prompt", "ugly"] if guided else ["an enhanced prompt"])


def test_save_and_load_round_trip(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    assert '"_class_name": "LTX2AVKeyframeInterpolationPipeline"' in (tmp_path / "model_index.json").read_text()
    loaded = LTX2AVKeyframeInterpolationPipeline.from_pretrained(tmp_path)
    assert type(loaded) is LTX2AVKeyframeInterpolationPipeline
    for name in ("transformer", "latent_upsampler", "vae"):
        state, expected = getattr(loaded, name).state_dict(), getattr(pipe, name).state_dict()
        assert state.keys() == expected.keys() and all(torch.equal(state[k], expected[k]) for k in state), name


# ----------------------------------------------------------------------------------------------------------------------
# (3) Errors


@pytest.mark.parametrize(
    "keyframes, error, message",
    [
        ([], ValueError, r"keyframes is empty: pass at least one .*\(last, 8, 1.0\)"),
        ([("IMAGE", 9, 1.0)], ValueError, r"keyframes\[0\] frame_index=9 is past the clip's last frame \(8 for num_"),
        ([("IMAGE", -1, 1.0)], ValueError, r"keyframes\[0\] frame_index=-1 must be >= 0"),
        ([("IMAGE", 0, 1.0), ("IMAGE", 4, 1.5)], ValueError, r"keyframes\[1\] strength=1.5 is outside \[0, 1\]"),
        ([("IMAGE", 0, -0.1)], ValueError, r"keyframes\[0\] strength=-0.1 is outside \[0, 1\]"),
        ([(42, 0, 1.0)], TypeError, r"keyframes\[0\] image must be a file path, a PIL image, .* got int"),
        ([("missing.png", 0, 1.0)], ValueError, r"keyframes\[0\] image='missing.png': no such file"),
        ([("IMAGE", 2.0, 1.0)], TypeError, r"keyframes\[0\] frame_index=2.0 is float, not an int"),
        ([("IMAGE", 0)], ValueError, r"keyframes\[0\] must be an \(image, frame_index, strength\) tuple"),
        (("IMAGE", 0, 1.0), TypeError, r"keyframes looks like one \(image, frame_index, strength\) tuple: wrap it"),
    ],
)
def test_bad_keyframes_fail_before_any_model_runs(pipe, images, keyframes, error, message):
    if isinstance(keyframes, tuple):
        keyframes = tuple(images[0] if v == "IMAGE" else v for v in keyframes)
    else:
        keyframes = [tuple(images[0] if v == "IMAGE" else v for v in k) for k in keyframes]
    calls = []
    hooks = [m.register_forward_pre_hook(lambda *args: calls.append(1)) for m in (pipe.text_encoder, pipe.vae)]
    try:
        with pytest.raises(error, match=message):
            pipe("a cat", keyframes=keyframes, **FAST)
    finally:
        for hook in hooks:
            hook.remove()
    assert calls == []


def test_other_bad_arguments(pipe, images):
    key = [(images[0], 0, 1.0)]
    with pytest.raises(ValueError, match="height=96 is not a positive multiple of 64"):
        pipe("a cat", keyframes=key, **{**FAST, "height": 96})
    with pytest.raises(ValueError, match="generator is a list of 2 generators for a batch of 1"):
        pipe("a cat", keyframes=key, **FAST, generator=[torch.Generator(), torch.Generator()])
    with pytest.raises(ValueError, match=r"callback_on_step_end_tensor_inputs has \['latents'\], which this pipeline"):
        pipe(
            "a cat",
            keyframes=key,
            **FAST,
            callback_on_step_end=lambda *a: {},
            callback_on_step_end_tensor_inputs=["latents"],
        )
    with pytest.raises(ValueError, match=r"stage_2_sigmas=\[0.5, 0.7, 0.0\] must decrease strictly"):
        pipe("a cat", keyframes=key, **FAST, stage_2_sigmas=(0.5, 0.7, 0.0))
    with pytest.raises(ValueError, match=r"sigmas=\[0.5, 0.2\] must end at 0.0"):
        pipe("a cat", keyframes=key, **{**FAST, "num_inference_steps": None}, sigmas=(0.5, 0.2))
    with pytest.raises(ValueError, match="image_crf=60 is above 51"):
        pipe("a cat", keyframes=key, **FAST, image_crf=60)
    with pytest.raises(ValueError, match="output_type='mp4' is not one of 'pil', 'np', 'pt', 'latent'"):
        pipe("a cat", keyframes=key, **FAST, output_type="mp4")
    with pytest.raises(ValueError, match="video_guidance and guidance_scale were both given for one modality"):
        pipe("a cat", keyframes=key, **FAST, video_guidance=NEUTRAL, guidance_scale=2.0)
    with pytest.raises(TypeError, match="negative_prompt_embeds must be the PromptEmbeddings"):
        pipe("a cat", keyframes=key, **FAST, negative_prompt_embeds=torch.zeros(1, 4, 8))
    no_upsampler = LTX2AVKeyframeInterpolationPipeline(**{**pipe.components, "latent_upsampler": None})
    with pytest.raises(ValueError, match="this pipeline has no latent_upsampler"):
        no_upsampler("a cat", keyframes=key, **FAST)
