"""Builders for the LoRA tests: random LoRA pairs shaped for a model's linear layers, and the tiny pipeline's
transformer and connectors run on fixed inputs (no Gemma, no VAE), so tests compare what the LoRA changes."""

import torch
from torch import Tensor, nn

from ltx2_diffusers.models.connectors import LTX2TextConnectors
from ltx2_diffusers.models.transformer_ltx2 import LTX2VideoTransformer3DModel
from ltx2_diffusers.pipelines.tiny import tiny_connectors_config, tiny_transformer_config
from ltx2_diffusers.utils.tiny_gemma import TINY_GEMMA_HIDDEN_SIZE, TINY_GEMMA_NUM_HIDDEN_STATES


def tiny_models(model_version: str = "2.0", num_layers: int = 2, seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """The tiny pipeline's transformer (cut to `num_layers` blocks) and connectors, every parameter random."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = LTX2VideoTransformer3DModel(
            **{**tiny_transformer_config(model_version), "num_layers": num_layers}
        )
        connectors = LTX2TextConnectors(**tiny_connectors_config(model_version))
        for model in (transformer, connectors):
            for parameter in model.parameters():
                parameter.data.normal_(0.0, 0.1)
    return transformer.eval(), connectors.eval()


def random_pair(layer: nn.Linear, rank: int, seed: int, dtype=torch.float32) -> tuple[Tensor, Tensor]:
    """(A (rank, in), B (out, rank)) large enough to move outputs visibly."""
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(rank, layer.in_features, generator=generator) / layer.in_features**0.5
    b = torch.randn(layer.out_features, rank, generator=generator) / rank**0.5
    return a.to(dtype), b.to(dtype)


def connector_inputs(batch_size: int = 1, seed: int = 3) -> tuple[Tensor, Tensor]:
    """Packed Gemma hidden states (B, 128, 32 * 3) and a left-padded mask (128 tokens: the connectors' registers)."""
    generator = torch.Generator().manual_seed(seed)
    states = torch.randn(batch_size, 128, TINY_GEMMA_HIDDEN_SIZE * TINY_GEMMA_NUM_HIDDEN_STATES, generator=generator)
    mask = torch.zeros(batch_size, 128, dtype=torch.int64)
    mask[:, -20:] = 1
    return states, mask


@torch.no_grad()
def run_text_and_transformer(connectors: nn.Module, transformer: nn.Module) -> tuple[Tensor, ...]:
    """(video context, audio context, video velocity, audio velocity) of the tiny models on fixed inputs."""
    states, mask = connector_inputs()
    video_context, audio_context, _ = connectors(states, mask)
    generator = torch.Generator().manual_seed(4)
    video = torch.randn(1, 8, transformer.config.in_channels, generator=generator)
    audio = torch.randn(1, 4, transformer.config.audio_in_channels, generator=generator)
    video_out, audio_out = transformer(
        hidden_states=video, audio_hidden_states=audio, encoder_hidden_states=video_context,
        audio_encoder_hidden_states=audio_context, timestep=torch.tensor([600.0]), num_frames=2, height=2, width=2,
        fps=24.0, audio_num_frames=4, return_dict=False,
    )  # fmt: skip
    return video_context, audio_context, video_out, audio_out


def state_dicts(*models: nn.Module) -> list[dict[str, Tensor]]:
    return [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in models]


def assert_unchanged(models: tuple[nn.Module, ...], before: list[dict[str, Tensor]]) -> None:
    from peft.tuners.tuners_utils import BaseTunerLayer

    for model, expected in zip(models, before):
        assert not any(isinstance(m, BaseTunerLayer) for m in model.modules()), "an adapter was attached"
        got = model.state_dict()
        assert set(got) == set(expected)
        for key, value in expected.items():
            assert torch.equal(got[key], value), key
