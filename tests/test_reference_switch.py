"""The `reference` switch ("1.2" default, "1.0"): what each setting changes, where it is checked, and that every
pipeline and the CLI take it (docs/pipelines.md, "Reference versions"). The numbers of each setting are tested against
the references themselves: 1.0.0 by the parity tests (reference="1.0"), 1.2.0 by tests/test_goldens_pipeline_math.py.
Also LTX-2.5's text encoder (Gemma-4 unified) through `encode_prompts`."""

import inspect

import pytest
import torch
from helpers.gemma4 import GEMMA4_HIDDEN_SIZE, GEMMA4_NUM_HIDDEN_STATES, build_tiny_gemma4

import ltx2_diffusers
from ltx2_diffusers import LTX2TextConnectors
from ltx2_diffusers.cli import main
from ltx2_diffusers.pipelines import pipeline_utils, presets
from ltx2_diffusers.pipelines.conditioning import (
    add_noise,
    append_keyframes,
    keyframe_positions,
    replace_frames,
    video_latent_state,
)
from ltx2_diffusers.pipelines.denoising import TextContexts, denoise, prepare_latents, transformer_x0
from ltx2_diffusers.pipelines.guidance import GuidanceScales, combine_guidance
from ltx2_diffusers.pipelines.text_encoding import encode_prompts, gemma_language_model, tokenize_prompts
from ltx2_diffusers.pipelines.tiny import build_tiny_pipeline
from ltx2_diffusers.utils.tiny_gemma import build_tiny_gemma_tokenizer

PIPELINES = [
    "LTX2AVPipeline",
    "LTX2AVTwoStagePipeline",
    "LTX2AVTwoStageHQPipeline",
    "LTX2AVAudioToVideoPipeline",
    "LTX2AVICLoRAPipeline",
    "LTX2AVKeyframeInterpolationPipeline",
    "LTX2AVRetakePipeline",
    "LTX2AVExtendPipeline",
    "LTX2TextToAudioPipeline",
    "LTX2VideoToAudioPipeline",
    "LTX2AVDubItPipeline",
    "LTX2AVHDRICLoraPipeline",
]
GRID = (2, 1, 2)  # latent frames, height, width


# ----------------------------------------------------------------------------------------------------------------------
# Presets and checks


def test_reference_values_and_errors():
    assert presets.REFERENCES == ("1.2", "1.0") and presets.DEFAULT_REFERENCE == "1.2"
    assert presets.default_negative_prompt() == presets.DEFAULT_NEGATIVE_PROMPT == presets.NEGATIVE_PROMPT_1_2
    assert presets.NEGATIVE_PROMPT_1_2 == (
        "has_subtitles, has_blurbox, transition from black, transition to black, speech_ending_short, "
        + presets.NEGATIVE_PROMPT_1_0
    )
    assert presets.sampling_preset("2.3", reference="1.0").negative_prompt == presets.NEGATIVE_PROMPT_1_0
    assert presets.hq_preset("2.3", reference="1.0").negative_prompt == presets.NEGATIVE_PROMPT_1_0
    assert presets.retake_preset("2.0", reference="1.0").negative_prompt == ""
    with pytest.raises(ValueError, match=r"reference='1\.1' is not a reference version: pass '1\.2' .* or '1\.0'"):
        presets.check_reference("1.1")
    with pytest.raises(ValueError, match="reference=1.0 is not a reference version"):
        presets.sampling_preset("2.0", reference=1.0)
    with pytest.raises(ValueError, match=r"cannot run LTX-2\.5 .* use reference='1\.2'"):
        presets.check_reference_for("2.5", "1.0")
    assert presets.check_reference_for("2.5", "1.2") == "1.2" and presets.check_reference_for("2.0", "1.0") == "1.0"


def test_ltx25_configs_read_as_2_5_with_its_defaults():
    base = {"gated_attn": True, "use_prompt_embeddings": False}
    assert presets.model_version_from_config(base) == "2.3"
    assert presets.model_version_from_config({**base, "use_keyframes_abs_pos_embedding": True}) == "2.5"
    assert presets.model_version_from_config({**base, "ff_bias": False}) == "2.5"
    dev, distilled = presets.sampling_preset("2.5", "dev"), presets.sampling_preset("2.5", "distilled")
    assert (dev.num_inference_steps, dev.image_crf, dev.video_guidance.stg_blocks) == (30, 18, (28,))
    assert distilled.sampler == "euler_ancestral" and distilled.image_crf == 18


def test_every_pipeline_takes_reference_defaulting_to_1_2():
    for name in PIPELINES:
        parameter = inspect.signature(getattr(ltx2_diffusers, name).__call__).parameters["reference"]
        assert parameter.default == "1.2" and parameter.kind is inspect.Parameter.KEYWORD_ONLY, name


class _Stop(Exception):
    pass


@pytest.fixture(scope="module")
def tiny_pipe():
    pipe = build_tiny_pipeline(0)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize("reference", ["1.2", "1.0"])
def test_pipeline_encodes_with_the_references_rule_and_negative_prompt(tiny_pipe, monkeypatch, reference):
    seen = {}

    def spy(text_encoder, tokenizer, connectors, texts, **kwargs):
        seen.update(texts=list(texts), reference=kwargs["reference"])
        raise _Stop

    monkeypatch.setattr(pipeline_utils, "encode_prompts", spy)
    with pytest.raises(_Stop):
        tiny_pipe("a cat", height=64, width=64, num_frames=9, num_inference_steps=2, reference=reference)
    assert seen == {"texts": ["a cat", presets.default_negative_prompt(reference)], "reference": reference}


def test_pipeline_refuses_an_unknown_reference_before_encoding(tiny_pipe, monkeypatch):
    monkeypatch.setattr(pipeline_utils, "encode_prompts", lambda *a, **k: pytest.fail("encoded"))
    with pytest.raises(ValueError, match=r"reference='1\.3' is not a reference version"):
        tiny_pipe("a cat", height=64, width=64, num_frames=9, reference="1.3")


def test_cli_reference_version_reaches_the_pipeline(tmp_path, monkeypatch):
    seen = {}

    def spy(self, **kwargs):
        seen.update(kwargs)
        raise ValueError("stop here")

    monkeypatch.setattr(ltx2_diffusers.LTX2AVPipeline, "__call__", spy)
    small = ["--model", "tiny", "--frames", "9", "--height", "64", "--width", "64"]
    assert main(["generate", "a cat", "-o", str(tmp_path / "a.mp4"), *small, "--reference-version", "1.0"]) == 2
    assert seen["reference"] == "1.0"  # left out, it is not passed: the pipeline's default applies
    with pytest.raises(SystemExit):
        main(["generate", "a cat", "-o", str(tmp_path / "c.mp4"), *small, "--reference-version", "1.1"])


# ----------------------------------------------------------------------------------------------------------------------
# What each setting changes


def test_guidance_arithmetic_float32_versus_bf16():
    generator = torch.Generator().manual_seed(0)
    cond, uncond = (torch.randn(1, 64, 8, generator=generator).bfloat16() for _ in range(2))
    scales = GuidanceScales(cfg=3.0, rescale=0.7)
    exact = cond.float() + 2.0 * (cond.float() - uncond.float())
    exact = exact * (0.7 * cond.float().std() / exact.std() + 0.3)
    new, old = (
        combine_guidance(cond, uncond, None, None, scales),
        combine_guidance(cond, uncond, None, None, scales, "1.0"),
    )
    assert new.dtype == old.dtype == torch.bfloat16
    assert torch.equal(new, exact.bfloat16()) and not torch.equal(old, new)
    with pytest.raises(ValueError, match="reference='2' is not a reference version"):
        combine_guidance(cond, uncond, None, None, scales, "2")


def _state_with_image(reference: str, strength: float):
    """A 2x1x2 video state whose initial latent is 2 (a refinement stage's upsampled latent), frame 0 an image of 5."""
    initial = torch.full((1, 4, *GRID), 2.0)
    state = video_latent_state(1, *GRID, 24.0, num_channels=4, dtype=torch.float32, initial_latent=initial)
    image = torch.full((1, 4, 1, 1, 2), 5.0)
    return replace_frames(state, image, strength=strength, grid=GRID, reference=reference)


def test_image_conditioning_and_noiser_rules():
    """Strength 0.6 (mask m = 0.4), noise scale s = 0.5, noise 1: 1.2.0 gives (1-m) c + m (1-s) z + m s n =
    0.6*5 + 0.4*0.5*2 + 0.4*0.5 = 3.6 on the image tokens; 1.0.0 gives m s n + (1 - m s) c = 0.2 + 0.8*5 = 4.2."""
    noise = torch.ones(1, 4, 4)
    new, old = _state_with_image("1.2", 0.6), _state_with_image("1.0", 0.6)
    assert torch.equal(new.latent[:, :2], torch.full((1, 2, 4), 2.0))  # 1.2.0 keeps the noisy latent's value
    assert torch.equal(old.latent[:, :2], torch.full((1, 2, 4), 5.0)) and torch.equal(
        new.clean_latent, old.clean_latent
    )
    noised_new = add_noise(new, None, 0.5, noise, reference="1.2").latent
    noised_old = add_noise(old, None, 0.5, noise, reference="1.0").latent
    torch.testing.assert_close(noised_new[:, :2], torch.full((1, 2, 4), 3.6))
    torch.testing.assert_close(noised_old[:, :2], torch.full((1, 2, 4), 4.2))
    torch.testing.assert_close(noised_new[:, 2:], noised_old[:, 2:])  # unconditioned tokens: 0.5 * 2 + 0.5 * 1
    full_new = add_noise(_state_with_image("1.2", 1.0), None, 1.0, noise, "1.2").latent
    assert torch.equal(full_new, add_noise(_state_with_image("1.0", 1.0), None, 1.0, noise, "1.0").latent)
    with pytest.raises(ValueError, match="reference='x' is not a reference version"):
        add_noise(new, None, 0.5, noise, reference="x")
    with pytest.raises(ValueError, match="reference='1.O' is not a reference version"):
        _state_with_image("1.O", 0.6)


def test_appended_keyframe_placeholders_and_time_extent():
    state = video_latent_state(1, *GRID, 24.0, num_channels=4, dtype=torch.float32)
    keyframe = torch.full((1, 4, 1, 1, 2), 3.0)
    new = append_keyframes(state, keyframe, frame_index=8, strength=0.5, fps=24.0, grid=GRID, reference="1.2")
    old = append_keyframes(state, keyframe, frame_index=8, strength=0.5, fps=24.0, grid=GRID, reference="1.0")
    assert torch.equal(new.latent[:, 4:], torch.zeros(1, 2, 4)) and torch.equal(
        old.latent[:, 4:], old.clean_latent[:, 4:]
    )
    torch.testing.assert_close(new.positions[0, 0, 4:], torch.tensor([[8 / 24, 9 / 24]] * 2))  # one pixel frame
    torch.testing.assert_close(old.positions[0, 0, 4:], torch.tensor([[8 / 24, 16 / 24]] * 2))  # 1.0.0: eight
    # frame 0 (causal first frame) is [0, 1) either way; a 2-latent-frame clip keeps its 8-frame extent
    assert torch.equal(keyframe_positions(1, 1, 1, 2, 0, 24.0, "1.2"), keyframe_positions(1, 1, 1, 2, 0, 24.0, "1.0"))
    assert torch.equal(keyframe_positions(1, 2, 1, 2, 8, 24.0, "1.2"), keyframe_positions(1, 2, 1, 2, 8, 24.0, "1.0"))


class _SpyTransformer(torch.nn.Module):
    """Records the keyword arguments and returns zero velocities; `set_reference` records the switch."""

    def __init__(self, with_switch: bool):
        super().__init__()
        self.config = type("Config", (), {"timestep_scale_multiplier": 1000})()
        self.calls, self.references = [], []
        if with_switch:
            self.set_reference = self.references.append

    def forward(self, hidden_states, audio_hidden_states, **kwargs):
        self.calls.append(kwargs)
        return torch.zeros_like(hidden_states), torch.zeros_like(audio_hidden_states)


def _frozen_states():
    generator = torch.Generator().manual_seed(0)
    audio = torch.randn(1, 8, 9, 16, generator=generator)  # 9 frames at 24 fps: 9 audio latent frames
    return prepare_latents(
        1, 64, 64, 9, 24.0, generator=generator, device=torch.device("cpu"), dtype=torch.float32,
        initial_audio_latent=audio, freeze_audio=True,
    )  # fmt: skip


@pytest.mark.parametrize("reference", ["1.2", "1.0"])
def test_frozen_audio_gets_sigma_0_in_1_2(reference):
    video, audio = _frozen_states()
    assert audio.frozen and not video.frozen and torch.equal(audio.denoise_mask, torch.zeros_like(audio.denoise_mask))
    spy = _SpyTransformer(with_switch=False)
    contexts = torch.zeros(1, 4, 8)
    transformer_x0(spy, video, audio, contexts, contexts, torch.tensor(0.5), reference=reference)
    (kwargs,) = spy.calls
    assert kwargs["sigma"].tolist() == [500.0]
    assert kwargs["audio_sigma"].tolist() == ([0.0] if reference == "1.2" else [500.0])
    assert not kwargs["audio_timestep"].any()  # per-token timesteps are 0 either way (mask 0)


@pytest.mark.parametrize("embedding", [True, False], ids=["ltx2.5", "ltx2"])
def test_keyframe_marks_reach_an_ltx25_transformer_only(embedding):
    """The first latent frame is marked (always, as 1.2.0 does), appended keyframes are not; only a transformer with
    `use_keyframes_abs_pos_embedding` gets them (diffusers' `video_keyframes_mask`)."""
    state = video_latent_state(1, *GRID, 24.0, num_channels=8, dtype=torch.float32)
    state = append_keyframes(state, torch.ones(1, 8, 1, 1, 2), frame_index=8, strength=1.0, fps=24.0, grid=GRID)
    assert state.keyframes_mask.flatten().tolist() == [1, 1, 0, 0, 0, 0]
    _, audio = _frozen_states()
    spy = _SpyTransformer(with_switch=False)
    spy.config.use_keyframes_abs_pos_embedding = embedding
    contexts = torch.zeros(1, 4, 8)
    transformer_x0(spy, state, audio, contexts, contexts, torch.tensor(0.5))
    if embedding:
        assert torch.equal(spy.calls[0]["video_keyframes_mask"], state.keyframes_mask)
    else:
        assert "video_keyframes_mask" not in spy.calls[0]


@pytest.mark.parametrize("with_switch", [True, False], ids=["set_reference", "no_switch"])
def test_denoise_switches_a_transformer_that_has_set_reference(with_switch):
    video, audio = _frozen_states()
    contexts = TextContexts(torch.zeros(1, 4, 8), torch.zeros(1, 4, 8))
    spy = _SpyTransformer(with_switch)
    denoise(spy, video, audio, contexts, [1.0, 0.0], GuidanceScales(), GuidanceScales(), reference="1.0")
    assert spy.references == (["1.0"] if with_switch else []) and len(spy.calls) == 1
    with pytest.raises(ValueError, match="reference='1' is not a reference version"):
        denoise(spy, video, audio, contexts, [1.0, 0.0], GuidanceScales(), GuidanceScales(), reference="1")


# ----------------------------------------------------------------------------------------------------------------------
# Tokenization and LTX-2.5's Gemma-4


def test_tokenization_rules_for_gemma3_and_gemma4():
    gemma3 = build_tiny_gemma_tokenizer()
    for reference in ("1.2", "1.0"):  # Gemma-3's tokenizer already starts with <bos>: one rule, the same ids
        ids, mask = tokenize_prompts(gemma3, ["  a cat  ", "rain"], 16, reference)
        assert (ids == gemma3.bos_token_id).sum(dim=1).tolist() == [1, 1]
    assert torch.equal(
        tokenize_prompts(gemma3, ["a cat"], 16, "1.2")[0], tokenize_prompts(gemma3, ["a cat"], 16, "1.0")[0]
    )

    _, gemma4 = build_tiny_gemma4()
    ids, mask = tokenize_prompts(gemma4, ["  a cat "], 8, "1.2")
    assert ids[0].tolist() == [0, 0, 0, 0, 0, 2, *gemma4("a cat").input_ids] and mask[0].tolist() == [0] * 5 + [1] * 3
    no_pad = _without_pad_token(gemma4)
    ids, _ = tokenize_prompts(no_pad, ["a"], 4, "1.2")
    assert ids[0].tolist() == [1, 1, 2, no_pad("a").input_ids[0]]  # padded with <eos>, as the reference does
    no_pad.bos_token = None
    with pytest.raises(ValueError, match="The tokenizer has no bos token"):
        tokenize_prompts(no_pad, ["a"], 4, "1.2")


def _without_pad_token(tokenizer):
    tokenizer.pad_token = None
    return tokenizer


def _gemma4_connectors() -> LTX2TextConnectors:
    torch.manual_seed(0)
    return LTX2TextConnectors(
        caption_channels=GEMMA4_HIDDEN_SIZE, text_proj_in_factor=GEMMA4_NUM_HIDDEN_STATES,
        video_connector_num_attention_heads=2, video_connector_attention_head_dim=16, video_connector_num_layers=1,
        audio_connector_num_attention_heads=2, audio_connector_attention_head_dim=8, audio_connector_num_layers=1,
        rope_type="split", per_modality_projections=True, video_hidden_dim=32, audio_hidden_dim=16, proj_bias=True,
        video_gated_attn=True, audio_gated_attn=True,
    ).eval()  # fmt: skip


def test_encode_prompts_runs_gemma4_unified():
    gemma, tokenizer = build_tiny_gemma4()
    connectors = _gemma4_connectors()
    assert gemma_language_model(gemma) is gemma.model.language_model
    assert gemma_language_model(gemma.model) is gemma.model.language_model
    assert gemma_language_model(gemma.model.language_model) is gemma.model.language_model
    with torch.no_grad():
        embeds = encode_prompts(gemma, tokenizer, connectors, ["a cat plays piano", "rain"], max_sequence_length=128)
        ids, mask = tokenize_prompts(tokenizer, ["a cat plays piano", "rain"], 128)
        states = gemma.model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        video, audio, _ = connectors(states, mask)
    assert embeds.video_context.shape == (2, 128, 32) and embeds.audio_context.shape == (2, 128, 16)
    torch.testing.assert_close(embeds.video_context, video, rtol=0, atol=0)
    torch.testing.assert_close(embeds.audio_context, audio, rtol=0, atol=0)
    assert (ids == tokenizer.bos_token_id).sum(dim=1).tolist() == [1, 1]  # prepended: Gemma-4's tokenizer adds none
    with pytest.raises(ValueError, match="returns 3 hidden states .* text_proj_in_factor=49"):
        encode_prompts(gemma, tokenizer, _with_49_hidden_states(connectors), ["a"], max_sequence_length=128)


def _with_49_hidden_states(connectors: LTX2TextConnectors) -> LTX2TextConnectors:
    config = {**connectors.config, "text_proj_in_factor": 49}
    return LTX2TextConnectors(**{k: v for k, v in config.items() if not k.startswith("_")})
