"""Timestep embeddings, AdaLN modulation and the caption projection of the LTX-2 transformer (spec §1.10, §1.5).

Module and parameter names follow diffusers' `LTX2AdaLayerNormSingle` / `PixArtAlphaTextProjection` (the caption
projection is a `TwoLayerMLP` with tanh-GELU), so state dicts load unchanged: `emb.timestep_embedder.linear_1`,
`emb.timestep_embedder.linear_2`, `linear`; `linear_1`, `linear_2`.
"""

import math
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def timestep_sinusoids(timestep: Tensor, channels: int = 256, max_period: float = 10000.0) -> Tensor:
    """(N,) timesteps (1000 * sigma) -> (N, channels) float32 [cos(t f_k), sin(t f_k)], f_k = max_period^(-k / half)."""
    half = channels // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timestep.device) / half
    angles = timestep[:, None].float() * torch.exp(exponent)[None, :]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


class TwoLayerMLP(nn.Module):
    """in_features -> dim -> dim with an activation in between (diffusers' names linear_1, linear_2): the timestep
    MLP ("silu") and LTX-2's caption projection of the Gemma features ("gelu-tanh")."""

    ACTIVATIONS = {"silu": F.silu, "gelu-tanh": partial(F.gelu, approximate="tanh")}

    def __init__(self, in_features: int, dim: int, activation: str):
        super().__init__()
        if activation not in self.ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(self.ACTIVATIONS)}, got {activation!r}")
        self.activation = activation
        self.linear_1 = nn.Linear(in_features, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear_2(self.ACTIVATIONS[self.activation](self.linear_1(x)))


class CombinedTimestepEmbedding(nn.Module):
    """Holds the MLP under the name diffusers uses (`emb.timestep_embedder`)."""

    def __init__(self, dim: int):
        super().__init__()
        self.timestep_embedder = TwoLayerMLP(256, dim, "silu")

    def forward(self, timestep: Tensor, dtype: torch.dtype) -> Tensor:
        # Sinusoids in float32, cast to the hidden dtype before the MLP, as the reference does.
        return self.timestep_embedder(timestep_sinusoids(timestep).to(dtype))


class AdaLayerNormSingle(nn.Module):
    """adaLN-single (PixArt-alpha): timestep -> `num_mod_params` modulation rows of width `dim`, plus the embedding.

    forward: timestep (B, N) or (B,) in timestep units (1000 * sigma) -> (modulation (B, N, R*dim), embedded (B, N, dim));
    N = 1 for a per-sample timestep, N = T for per-token timesteps.
    """

    def __init__(self, dim: int, num_mod_params: int):
        super().__init__()
        self.num_mod_params = num_mod_params
        self.emb = CombinedTimestepEmbedding(dim)
        self.linear = nn.Linear(dim, num_mod_params * dim)

    def forward(self, timestep: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        batch_size = timestep.shape[0]
        embedded = self.emb(timestep.flatten(), dtype)
        modulation = self.linear(F.silu(embedded))
        return modulation.view(batch_size, -1, modulation.shape[-1]), embedded.view(batch_size, -1, embedded.shape[-1])


def modulation_rows(table: Tensor, modulation: Tensor, rows: slice) -> tuple[Tensor, ...]:
    """table (R, D) + modulation (B, N, R*D), rows selected -> one (B, N, D) tensor per row.

    The per-block table is added to the per-forward modulation in the modulation's dtype, as the reference does.
    """
    selected = modulation.unflatten(-1, (table.shape[0], -1))[:, :, rows]
    return (table[rows].to(modulation.dtype) + selected).unbind(2)


def rms_norm(x: Tensor, eps: float) -> Tensor:
    """Weightless RMSNorm over the last dim (every in-block norm of LTX-2)."""
    return F.rms_norm(x, x.shape[-1:], eps=eps)


def modulate(x: Tensor, shift: Tensor, scale: Tensor, eps: float) -> Tensor:
    """RMS(x) * (1 + scale) + shift."""
    return rms_norm(x, eps) * (1 + scale) + shift
