"""Tiny LTX-2 / LTX-2.3 transformers for the transformer tests: ltx-core's oracle, ours with the same weights, inputs.

Sizes: video 2 heads x 8 (width 16), audio 2 heads x 4 (width 8), 3 blocks, 24 video tokens (2 x 3 x 4 latent),
5 audio tokens, 7 text tokens. ltx-core needs equal head counts and audio_cross_attention_dim == audio width.
"""

from dataclasses import dataclass

import torch
from ltx_core.guidance.perturbations import (
    BatchedPerturbationConfig,
    Perturbation,
    PerturbationConfig,
    PerturbationType,
)
from ltx_core.model.transformer.modality import Modality
from ltx_core.model.transformer.model_configurator import LTXModelConfigurator, LTXVideoOnlyModelConfigurator

from ltx2_diffusers.loaders.transformer_keys import original_to_diffusers_keys
from ltx2_diffusers.models.rope import audio_positions, video_positions
from ltx2_diffusers.models.transformer_ltx2 import LTX2VideoTransformer3DModel

FRAMES, HEIGHT, WIDTH, FPS = 2, 3, 4, 24.0
VIDEO_TOKENS, AUDIO_TOKENS, TEXT_TOKENS = FRAMES * HEIGHT * WIDTH, 5, 7
CAPTION_CHANNELS = 12

# ours (diffusers' keys) per layout
OUR_CONFIGS = {
    "ltx2": dict(
        in_channels=8, out_channels=8, num_attention_heads=2, attention_head_dim=8, cross_attention_dim=16,
        audio_in_channels=8, audio_out_channels=8, audio_num_attention_heads=2, audio_attention_head_dim=4,
        audio_cross_attention_dim=8, num_layers=3, caption_channels=CAPTION_CHANNELS,
        rope_type="split",  # the released value (diffusers' and our default is "interleaved")
    ),
}  # fmt: skip
OUR_CONFIGS["ltx23"] = dict(
    OUR_CONFIGS["ltx2"],
    gated_attn=True,
    audio_gated_attn=True,
    cross_attn_mod=True,
    audio_cross_attn_mod=True,
    use_prompt_embeddings=False,
    perturbed_attn=True,
)


# ltx-core's code defaults instead of the released values: interleaved RoPE, float32 frequency grid, A<->V gate
# timestep multiplier 1 (spec §13.1)
OUR_CONFIGS["ltx2_legacy"] = dict(
    OUR_CONFIGS["ltx2"], rope_type="interleaved", rope_double_precision=False, cross_attn_timestep_scale_multiplier=1
)


def ltx_core_config(layout: str) -> dict:
    ours = OUR_CONFIGS[layout]
    config = {
        # values check_config_value asserts (spec §1.1)
        "dropout": 0.0, "attention_bias": True, "num_vector_embeds": None, "activation_fn": "gelu-approximate",
        "num_embeds_ada_norm": 1000, "use_linear_projection": False, "only_cross_attention": False,
        "cross_attention_norm": True, "double_self_attention": False, "upcast_attention": False,
        "standardization_norm": "rms_norm", "norm_elementwise_affine": False, "qk_norm": "rms_norm",
        "positional_embedding_type": "rope", "use_audio_video_cross_attention": True, "share_ff": False,
        "av_cross_ada_norm": True, "use_middle_indices_grid": True,
        # released values of the fields whose code defaults differ (spec §13.1)
        "attention_type": "pytorch", "rope_type": "split", "frequencies_precision": "float64",
        "av_ca_timestep_scale_multiplier": 1000.0, "positional_embedding_max_pos": [20, 2048, 2048],
        "audio_positional_embedding_max_pos": [20], "timestep_scale_multiplier": 1000,
        "positional_embedding_theta": 10000.0, "norm_eps": 1e-6,
    }  # fmt: skip
    for ours_key, core_key in [
        ("in_channels", "in_channels"), ("out_channels", "out_channels"),
        ("num_attention_heads", "num_attention_heads"), ("attention_head_dim", "attention_head_dim"),
        ("cross_attention_dim", "cross_attention_dim"), ("audio_in_channels", "audio_in_channels"),
        ("audio_out_channels", "audio_out_channels"), ("audio_num_attention_heads", "audio_num_attention_heads"),
        ("audio_attention_head_dim", "audio_attention_head_dim"),
        ("audio_cross_attention_dim", "audio_cross_attention_dim"), ("num_layers", "num_layers"),
        ("caption_channels", "caption_channels"),
    ]:  # fmt: skip
        config[core_key] = ours[ours_key]
    config["rope_type"] = ours.get("rope_type", "split")
    if not ours.get("rope_double_precision", True):
        del config["frequencies_precision"]
    config["av_ca_timestep_scale_multiplier"] = ours.get("cross_attn_timestep_scale_multiplier", 1000)
    config["apply_gated_attention"] = ours.get("gated_attn", False)
    config["cross_attention_adaln"] = ours.get("cross_attn_mod", False)
    config["caption_proj_before_connector"] = not ours.get("use_prompt_embeddings", True)
    return config


def init_every_parameter(model: torch.nn.Module, seed: int) -> None:
    """ltx-core leaves caption projections on meta and tables uninitialised: set every tensor, O(1) activations."""
    generator = torch.Generator().manual_seed(seed)
    model.to_empty(device="cpu")
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if name.endswith("norm.weight") or "_norm." in name:  # q/k RMSNorm weights
                param.copy_(1 + 0.1 * noise)
            elif param.ndim == 2 and "table" not in name:  # linear weights
                param.copy_(noise / param.shape[1] ** 0.5)
            elif "table" in name:
                param.copy_(0.3 * noise)
            else:  # biases
                param.copy_(0.1 * noise)


def build_pair(layout: str, seed: int = 0, video_only: bool = False):
    """(ltx-core LTXModel, our model) holding the same weights, loaded through our key map, eval, fp32."""
    configurator = LTXVideoOnlyModelConfigurator if video_only else LTXModelConfigurator
    reference = configurator.from_config({"transformer": ltx_core_config(layout)})
    init_every_parameter(reference, seed)
    reference.eval()
    ours = LTX2VideoTransformer3DModel(**OUR_CONFIGS[layout]).eval()
    ours.set_reference("1.0")  # the oracle here is ltx-core 1.0.0
    original = {"model.diffusion_model." + k: v for k, v in reference.state_dict().items()}
    mapping = original_to_diffusers_keys(original, OUR_CONFIGS[layout])
    converted = {mapping[k]: v for k, v in original.items()}
    if video_only:  # the reference's video-only model has no audio weights: give ours random ones (never used)
        converted = {**{k: v for k, v in ours.state_dict().items() if k not in converted}, **converted}
    ours.load_state_dict(converted, strict=True)
    return reference, ours


@dataclass
class Inputs:
    """One batch of inputs, in ltx-core's form (sigmas) and convertible to our kwargs (timesteps = 1000 sigma)."""

    video: torch.Tensor  # (B, T_v, 8)
    audio: torch.Tensor | None  # (B, T_a, 8)
    video_context: torch.Tensor
    audio_context: torch.Tensor
    video_sigma: torch.Tensor  # (B,)
    audio_sigma: torch.Tensor  # (B,)
    video_timesteps: torch.Tensor  # (B, T_v) sigma * denoise mask
    audio_timesteps: torch.Tensor  # (B, T_a)
    video_positions: torch.Tensor
    audio_positions: torch.Tensor
    video_attention_mask: torch.Tensor | None = None  # (B, T_v, T_v) in [0, 1]
    audio_attention_mask: torch.Tensor | None = None

    def ltx_core(self) -> tuple[Modality, Modality | None]:
        video = Modality(
            latent=self.video, sigma=self.video_sigma, timesteps=self.video_timesteps, positions=self.video_positions,
            context=self.video_context, attention_mask=self.video_attention_mask,
        )  # fmt: skip
        if self.audio is None:
            return video, None
        audio = Modality(
            latent=self.audio, sigma=self.audio_sigma, timesteps=self.audio_timesteps, positions=self.audio_positions,
            context=self.audio_context, attention_mask=self.audio_attention_mask,
        )  # fmt: skip
        return video, audio

    def ours(self) -> dict:
        kwargs = dict(
            hidden_states=self.video,
            encoder_hidden_states=self.video_context,
            timestep=self.video_timesteps * 1000,
            sigma=self.video_sigma * 1000,
            video_coords=self.video_positions,
            video_self_attention_mask=self.video_attention_mask,
            return_dict=False,
        )
        if self.audio is not None:
            kwargs.update(
                audio_hidden_states=self.audio,
                audio_encoder_hidden_states=self.audio_context,
                audio_timestep=self.audio_timesteps * 1000,
                audio_sigma=self.audio_sigma * 1000,
                audio_coords=self.audio_positions,
                audio_self_attention_mask=self.audio_attention_mask,
            )
        return kwargs

    def select(self, index: list[int]) -> "Inputs":
        def pick(x):
            return None if x is None else x[index]

        return Inputs(**{name: pick(value) for name, value in self.__dict__.items()})


def make_inputs(
    layout: str, batch_size: int, seed: int = 1, video_sigma=0.7, audio_sigma=None, condition_first_frame=False
) -> Inputs:
    generator = torch.Generator().manual_seed(seed)
    config = OUR_CONFIGS[layout]
    video_width = config["num_attention_heads"] * config["attention_head_dim"]
    audio_width = config["audio_num_attention_heads"] * config["audio_attention_head_dim"]
    ltx2 = config.get("use_prompt_embeddings", True)

    def randn(*shape):
        return torch.randn(*shape, generator=generator)

    video_sigma = torch.as_tensor(video_sigma, dtype=torch.float32).expand(batch_size).clone()
    audio_sigma = (
        video_sigma.clone() if audio_sigma is None else torch.as_tensor(audio_sigma).float().expand(batch_size)
    )
    video_mask = torch.ones(batch_size, VIDEO_TOKENS)
    if condition_first_frame:  # image conditioning: frame 0's tokens are clean (timestep 0)
        video_mask[:, : HEIGHT * WIDTH] = 0.0
    return Inputs(
        video=randn(batch_size, VIDEO_TOKENS, config["in_channels"]),
        audio=randn(batch_size, AUDIO_TOKENS, config["audio_in_channels"]),
        video_context=randn(batch_size, TEXT_TOKENS, CAPTION_CHANNELS if ltx2 else video_width),
        audio_context=randn(batch_size, TEXT_TOKENS, CAPTION_CHANNELS if ltx2 else audio_width),
        video_sigma=video_sigma,
        audio_sigma=audio_sigma.clone(),
        video_timesteps=video_sigma[:, None] * video_mask,
        audio_timesteps=audio_sigma[:, None].expand(batch_size, AUDIO_TOKENS).clone(),
        video_positions=video_positions(batch_size, FRAMES, HEIGHT, WIDTH, FPS),
        audio_positions=audio_positions(batch_size, AUDIO_TOKENS),
    )


def ltx_core_perturbations(per_sample: list[list[tuple[str, list[int] | None]]]) -> BatchedPerturbationConfig:
    """[[("video_stg", [1]), ("a2v", None)], [], ...] -> ltx-core's per-sample perturbation config."""
    kinds = {
        "video_stg": PerturbationType.SKIP_VIDEO_SELF_ATTN,
        "audio_stg": PerturbationType.SKIP_AUDIO_SELF_ATTN,
        "a2v": PerturbationType.SKIP_A2V_CROSS_ATTN,
        "v2a": PerturbationType.SKIP_V2A_CROSS_ATTN,
    }
    return BatchedPerturbationConfig(
        [PerturbationConfig([Perturbation(kinds[kind], blocks) for kind, blocks in sample]) for sample in per_sample]
    )


def empty_perturbations(batch_size: int) -> BatchedPerturbationConfig:
    return BatchedPerturbationConfig.empty(batch_size)
