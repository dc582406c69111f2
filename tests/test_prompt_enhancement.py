"""Prompt enhancement against ltx-core 1.0.0's GemmaTextEncoder.enhance_t2v / enhance_i2v on the tiny Gemma."""

import numpy as np
import PIL.Image
import pytest
import torch
from ltx_core.text_encoders.gemma import GemmaTextEncoder
from ltx_pipelines.utils.helpers import clean_response as reference_clean_response
from ltx_pipelines.utils.media_io import resize_aspect_ratio_preserving
from torch import nn

from ltx2_diffusers.pipelines.prompt_enhancement import (
    I2V_SYSTEM_PROMPT,
    T2V_SYSTEM_PROMPT,
    clean_response,
    enhance_prompt,
    prepare_enhancement_image,
)
from ltx2_diffusers.utils.tiny_gemma import build_tiny_gemma, build_tiny_gemma_processor

NEW_TOKENS = 12


@pytest.fixture(scope="module")
def tiny():
    model, tokenizer = build_tiny_gemma(seed=0)
    return model, tokenizer, build_tiny_gemma_processor(tokenizer)


@pytest.fixture
def reference(tiny, monkeypatch):
    model, _, processor = tiny
    # ltx-core forks the RNG of `model.device` as a CUDA device, which fails on a CPU-only torch; fork the CPU only.
    real_fork_rng = torch.random.fork_rng
    monkeypatch.setattr(torch.random, "fork_rng", lambda devices=None, **kwargs: real_fork_rng(devices=[], **kwargs))
    return GemmaTextEncoder(model=model, tokenizer=None, processor=processor)


def test_text_to_video_enhancement_matches_ltx_core(tiny, reference):
    model, tokenizer, _ = tiny
    ours = enhance_prompt(model, tokenizer, "a cat plays piano", seed=3, max_new_tokens=NEW_TOKENS)
    expected = reference.enhance_t2v(
        "a cat plays piano", max_new_tokens=NEW_TOKENS, system_prompt=T2V_SYSTEM_PROMPT, seed=3
    )
    assert ours == reference_clean_response(expected)
    assert isinstance(ours, str) and len(ours) > 0


def test_image_to_video_enhancement_matches_ltx_core(tiny, reference):
    model, tokenizer, processor = tiny
    image = torch.randint(0, 256, (40, 60, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    ours = enhance_prompt(
        model, tokenizer, "the cat jumps", image=image.numpy(), processor=processor, seed=5, max_new_tokens=NEW_TOKENS
    )
    resized = resize_aspect_ratio_preserving(image, 896).to(torch.uint8)  # what ltx-pipelines hands to enhance_i2v
    expected = reference.enhance_i2v(
        "the cat jumps", resized, max_new_tokens=NEW_TOKENS, system_prompt=I2V_SYSTEM_PROMPT, seed=5
    )
    assert ours == reference_clean_response(expected)


def test_seeded_sampling_is_repeatable_and_leaves_the_global_rng_alone(tiny):
    model, tokenizer, _ = tiny
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    first = enhance_prompt(model, tokenizer, "rain", seed=7, max_new_tokens=NEW_TOKENS)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert enhance_prompt(model, tokenizer, "rain", seed=7, max_new_tokens=NEW_TOKENS) == first
    others = {enhance_prompt(model, tokenizer, "rain", seed=s, max_new_tokens=NEW_TOKENS) for s in (8, 9, 10)}
    assert others != {first}


def test_prepare_enhancement_image_matches_the_reference_resize(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (50, 30, 3), dtype=np.uint8)
    expected = resize_aspect_ratio_preserving(torch.from_numpy(array), 896).to(torch.uint8)
    got = prepare_enhancement_image(array)
    assert got.shape == (896, 537, 3) and got.dtype == torch.uint8
    assert torch.equal(got, expected)
    PIL.Image.fromarray(array).save(tmp_path / "frame.png")
    assert torch.equal(prepare_enhancement_image(tmp_path / "frame.png"), expected)
    grey = prepare_enhancement_image(array[..., 0])  # grey is repeated to RGB (inputs.image_to_uint8)
    assert grey.shape == (896, 537, 3) and torch.equal(grey[..., 0], grey[..., 2])
    sixteen = (array[..., 0].astype(np.uint16) * 257)  # a 16-bit grey PNG keeps its levels, not clipped to white
    PIL.Image.fromarray(sixteen).save(tmp_path / "grey16.png")
    assert torch.equal(prepare_enhancement_image(tmp_path / "grey16.png"), grey)
    prepared = torch.from_numpy(array).permute(2, 0, 1).float() / 127.5 - 1  # a pipeline's prepared image tensor
    assert torch.equal(prepare_enhancement_image(prepared), expected)
    with pytest.raises(ValueError, match=r"image has 2 channels \(shape \(50, 30, 2\)\)"):
        prepare_enhancement_image(array[..., :2])
    with pytest.raises(TypeError, match="image must be a file path, a PIL image"):
        prepare_enhancement_image(3)


def test_clean_response_matches_the_reference():
    for text in ["\u201cHello\u201d \u2014 it\u2019s\u00a0fine", "  \n- 1. A cat", "123", "\u2212x\u2032"]:
        assert clean_response(text) == reference_clean_response(text)
    assert clean_response("\u201c\u2014 A \u2018b\u2019") == "A 'b'"


def test_system_prompts_are_our_own_text():
    from ltx_core.text_encoders.gemma.encoders.base_encoder import _load_system_prompt

    for ours, name in (
        (T2V_SYSTEM_PROMPT, "gemma_t2v_system_prompt.txt"),
        (I2V_SYSTEM_PROMPT, "gemma_i2v_system_prompt.txt"),
    ):
        theirs = _load_system_prompt(name)
        their_lines = {line.strip() for line in theirs.splitlines() if len(line.strip()) > 30}
        assert not their_lines & {line.strip() for line in ours.splitlines()}


def test_bad_inputs_fail_with_clear_messages(tiny):
    model, tokenizer, _ = tiny
    with pytest.raises(ValueError, match="needs a Gemma3Processor"):
        enhance_prompt(model, tokenizer, "a cat", image=np.zeros((8, 8, 3), dtype=np.uint8))
    with pytest.raises(TypeError, match="needs Gemma3ForConditionalGeneration"):
        enhance_prompt(nn.Linear(2, 2), tokenizer, "a cat")
    with pytest.raises(TypeError, match="prompt must be a string"):
        enhance_prompt(model, tokenizer, ["a cat"])
    with pytest.raises(ValueError, match="max_new_tokens must be at least 1"):
        enhance_prompt(model, tokenizer, "a cat", max_new_tokens=0)
