import torch

from ltx2_diffusers.utils.tiny_gemma import (
    TINY_GEMMA_HIDDEN_SIZE,
    TINY_GEMMA_NUM_HIDDEN_STATES,
    build_tiny_gemma,
)


def test_tiny_gemma_is_seeded_and_left_pads_with_bos():
    model, tokenizer = build_tiny_gemma(seed=0)
    same, _ = build_tiny_gemma(seed=0)
    other, _ = build_tiny_gemma(seed=1)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, same.state_dict()[name], rtol=0, atol=0)
    assert not torch.equal(model.lm_head.weight, other.lm_head.weight)

    encoded = tokenizer(["a cat"], padding="max_length", max_length=8, truncation=True, return_tensors="pt")
    bos = tokenizer.bos_token_id
    assert encoded.input_ids[0, :2].tolist() == [tokenizer.pad_token_id] * 2
    assert encoded.input_ids[0, 2].item() == bos
    assert encoded.attention_mask[0].tolist() == [0, 0, 1, 1, 1, 1, 1, 1]

    with torch.no_grad():
        out = model.model(**encoded, output_hidden_states=True)
    assert len(out.hidden_states) == TINY_GEMMA_NUM_HIDDEN_STATES
    assert out.hidden_states[-1].shape == (1, 8, TINY_GEMMA_HIDDEN_SIZE)
