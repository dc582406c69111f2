"""The one weight fill every golden generator uses for its tiny ltx-core model (imported by the scripts beside it)."""

import torch


def fill_seeded_(model: torch.nn.Module, seed: int) -> None:
    """Materialise `model` on the CPU and draw every tensor from a seeded N(0, 1), scaled to keep O(1) activations:
    q/k RMSNorm weights 1 + 0.1 n, AdaLN tables and the keyframe embedding 0.3 n, linear weights n / sqrt(fan_in),
    the rest (biases) 0.1 n; then rounded to bf16-exact values, so the stored files can hold them in half the bytes.
    (ltx-core leaves caption projections on meta and zero-initialises the keyframe embedding: every tensor is drawn.)
    """
    generator = torch.Generator().manual_seed(seed)
    model.to_empty(device="cpu")
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if "_norm." in name:
                param.copy_(1 + 0.1 * noise)
            elif "table" in name or "keyframes_abs_pos_embedding" in name:
                param.copy_(0.3 * noise)
            elif param.ndim == 2:
                param.copy_(noise / param.shape[1] ** 0.5)
            else:
                param.copy_(0.1 * noise)
            param.copy_(param.bfloat16())
