"""What every golden generator shares for its tiny ltx-core model (imported by the scripts beside it): the one weight
fill and the transformer config values ltx-core asserts (the tiny sizes are each generator's own)."""

import torch

# ltx-core's asserted transformer config values (its `LTXModelConfigurator` refuses others)
LTX_CORE_FIXED = {
    "dropout": 0.0, "attention_bias": True, "activation_fn": "gelu-approximate", "num_embeds_ada_norm": 1000,
    "use_linear_projection": False, "only_cross_attention": False, "cross_attention_norm": True,
    "double_self_attention": False, "upcast_attention": False, "standardization_norm": "rms_norm",
    "norm_elementwise_affine": False, "qk_norm": "rms_norm", "positional_embedding_type": "rope",
    "use_middle_indices_grid": True, "use_audio_video_cross_attention": True, "share_ff": False,
    "av_cross_ada_norm": True, "rope_type": "split", "frequencies_precision": "float64",
    "av_ca_timestep_scale_multiplier": 1000, "positional_embedding_max_pos": [20, 2048, 2048],
    "audio_positional_embedding_max_pos": [20], "timestep_scale_multiplier": 1000,
    "positional_embedding_theta": 10000.0, "norm_eps": 1e-6,
}  # fmt: skip


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
