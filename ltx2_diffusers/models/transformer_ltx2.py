"""The LTX-2 / LTX-2.3 / LTX-2.5 asymmetric dual-stream (video + audio) diffusion transformer (spec §1).

Numerics follow ltx-core 1.2.0's `LTXModel` by default and 1.0.0's on request (`set_reference("1.0")`: the two differ
only in the audio<->video AdaLN, 1.2 spec §5.1); config keys, parameter names and `forward`'s keyword arguments follow
diffusers' in-tree `LTX2VideoTransformer3DModel`, so this class loads its folders and replaces it in its pipelines.
"""

import contextlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.loaders import PeftAdapterMixin
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput, apply_lora_scale
from torch import Tensor, nn

from ..hub import ModelCardMixin
from ..loaders.from_single_file import FromLTX2SingleFileMixin, load_component_from_single_file
from . import fp8
from . import fp8 as fp8_layers  # `fp8` is also from_single_file's argument
from .attention import Attention, resolve_sdpa_backend, sdpa_backend, self_attention_bias, text_bias
from .cache_support import LTX2CacheMixin as CacheMixin  # diffusers' CacheMixin + our block's step caches
from .embeddings import AdaLayerNormSingle, TwoLayerMLP
from .fp8_lora import refuse_merge_over_fp8
from .perturbations import Perturbations, perturbation_plan
from .rope import AudioCoordinates, VideoCoordinates, rope_cos_sin, video_positions
from .transformer_ltx2_block import (
    BlockPerturbation,
    FeedForward,
    LTX2VideoTransformerBlock,
    StreamInputs,
    av_adaln_timesteps,
)
from .transformer_ltx2_checks import (
    REFERENCES,
    check_config,
    check_coords,
    check_reference,
    check_streams,
    stream_timesteps,
)

# The block and its inputs live in transformer_ltx2_block.py; importing them from here keeps working.
__all__ = [
    "BlockPerturbation",
    "FeedForward",
    "LTX2TransformerOutput",
    "LTX2VideoTransformer3DModel",
    "LTX2VideoTransformerBlock",
    "StreamInputs",
]


@dataclass
class LTX2TransformerOutput(BaseOutput):
    """sample: (B, T_v, out_channels) video velocity or None; audio_sample: (B, T_a, audio_out_channels) or None."""

    sample: Tensor | None
    audio_sample: Tensor | None = None


class LTX2VideoTransformer3DModel(FromLTX2SingleFileMixin, ModelCardMixin, ModelMixin, ConfigMixin, PeftAdapterMixin, CacheMixin):
    r"""LTX-2 (19B) / LTX-2.3 (22B) / LTX-2.5 (22B) audio-video transformer: velocity for video and audio tokens.

    Config keys and defaults are those of diffusers' `LTX2VideoTransformer3DModel`, so a config dict builds the same
    model in both; the defaults are the released LTX-2 values except `rope_type`, whose default is diffusers'
    "interleaved" (released configs set "split").
    Video stream: `num_attention_heads` x `attention_head_dim`; audio stream: `audio_num_attention_heads` x
    `audio_attention_head_dim`; `num_layers` shared blocks. LTX-2.3 = `gated_attn`, `audio_gated_attn`,
    `cross_attn_mod`, `audio_cross_attn_mod` True and `use_prompt_embeddings` False (no caption projection).
    LTX-2.5 = LTX-2.3 with `ff_bias` False (no video FFN biases) and `use_keyframes_abs_pos_embedding` True (a learned
    vector added to the video tokens that `video_keyframes_mask` marks, right after `proj_in`; 1.2 spec §2.3).
    `audio_ff_bias` and `use_prompt_adaln_single` (False: text K/V modulated by the static per-block table only) are
    the other two options ltx-core 1.2.0 and diffusers share.

    Reference behaviour (not a config key): `reference` is "1.2" (ltx-core 1.2.0, the default) or "1.0" (1.0.0); see
    `set_reference` and `forward(reference=...)`.

    Keys kept only for format compatibility: `patch_size`, `patch_size_t`, `audio_patch_size`, `audio_patch_size_t`
    (must be 1), `activation_fn` ("gelu-approximate"), `qk_norm` ("rms_norm_across_heads"), `norm_elementwise_affine`
    (False). `perturbed_attn` is ignored: spatio-temporal guidance always works here (in diffusers it is a silent no-op
    unless this key is True, which the released LTX-2 config does not set).
    """

    _supports_gradient_checkpointing = True
    _skip_layerwise_casting_patterns = ["norm"]
    _repeated_blocks = ["LTX2VideoTransformerBlock"]
    _no_split_modules = ["LTX2VideoTransformerBlock"]

    @register_to_config
    def __init__(
        self,
        in_channels: int = 128,
        out_channels: int | None = 128,
        patch_size: int = 1,
        patch_size_t: int = 1,
        num_attention_heads: int = 32,
        attention_head_dim: int = 128,
        cross_attention_dim: int = 4096,
        vae_scale_factors: tuple[int, int, int] = (8, 32, 32),
        pos_embed_max_pos: int = 20,
        base_height: int = 2048,
        base_width: int = 2048,
        gated_attn: bool = False,
        cross_attn_mod: bool = False,
        audio_in_channels: int = 128,
        audio_out_channels: int | None = 128,
        audio_patch_size: int = 1,
        audio_patch_size_t: int = 1,
        audio_num_attention_heads: int = 32,
        audio_attention_head_dim: int = 64,
        audio_cross_attention_dim: int = 2048,
        audio_scale_factor: int = 4,
        audio_pos_embed_max_pos: int = 20,
        audio_sampling_rate: int = 16000,
        audio_hop_length: int = 160,
        audio_gated_attn: bool = False,
        audio_cross_attn_mod: bool = False,
        num_layers: int = 48,
        activation_fn: str = "gelu-approximate",
        qk_norm: str = "rms_norm_across_heads",
        norm_elementwise_affine: bool = False,
        norm_eps: float = 1e-6,
        caption_channels: int = 3840,
        attention_bias: bool = True,
        attention_out_bias: bool = True,
        rope_theta: float = 10000.0,
        rope_double_precision: bool = True,
        causal_offset: int = 1,
        timestep_scale_multiplier: int = 1000,
        cross_attn_timestep_scale_multiplier: int = 1000,
        rope_type: str = "interleaved",
        use_prompt_embeddings: bool = True,
        perturbed_attn: bool = False,
        ff_bias: bool = True,
        audio_ff_bias: bool = True,
        use_prompt_adaln_single: bool = True,
        use_keyframes_abs_pos_embedding: bool = False,
    ) -> None:
        super().__init__()
        check_config(locals())
        out_channels = out_channels or in_channels
        audio_out_channels = audio_out_channels or audio_in_channels
        dim = num_attention_heads * attention_head_dim
        audio_dim = audio_num_attention_heads * audio_attention_head_dim
        rows = 9 if cross_attn_mod else 6

        # 1. Inputs: token projections, LTX-2's caption projections, LTX-2.5's keyframe marker
        self.proj_in = nn.Linear(in_channels, dim)
        self.audio_proj_in = nn.Linear(audio_in_channels, audio_dim)
        if use_keyframes_abs_pos_embedding:
            self.keyframes_abs_pos_embedding = nn.Parameter(torch.zeros(1, dim))
        if use_prompt_embeddings:
            self.caption_projection = TwoLayerMLP(caption_channels, dim, "gelu-tanh")
            self.audio_caption_projection = TwoLayerMLP(caption_channels, audio_dim, "gelu-tanh")

        # 2. Timestep embeddings: per-token AdaLN rows, audio<->video AdaLN (partner's sigma), LTX-2.3 prompt AdaLN
        self.time_embed = AdaLayerNormSingle(dim, rows)
        self.audio_time_embed = AdaLayerNormSingle(audio_dim, rows)
        self.av_cross_attn_video_scale_shift = AdaLayerNormSingle(dim, 4)
        self.av_cross_attn_audio_scale_shift = AdaLayerNormSingle(audio_dim, 4)
        self.av_cross_attn_video_a2v_gate = AdaLayerNormSingle(dim, 1)
        self.av_cross_attn_audio_v2a_gate = AdaLayerNormSingle(audio_dim, 1)
        if cross_attn_mod and use_prompt_adaln_single:
            self.prompt_adaln = AdaLayerNormSingle(dim, 2)
            self.audio_prompt_adaln = AdaLayerNormSingle(audio_dim, 2)

        # 3. Blocks
        self.transformer_blocks = nn.ModuleList(
            LTX2VideoTransformerBlock(
                dim,
                num_attention_heads,
                attention_head_dim,
                cross_attention_dim,
                audio_dim,
                audio_num_attention_heads,
                audio_attention_head_dim,
                audio_cross_attention_dim,
                gated_attn,
                audio_gated_attn,
                cross_attn_mod,
                attention_bias,
                attention_out_bias,
                ff_bias,
                audio_ff_bias,
                norm_eps,
                rope_type,
            )  # fmt: skip
            for _ in range(num_layers)
        )

        # 4. Output heads: LayerNorm (not RMS) modulated by [shift, scale] rows, then projection
        self.scale_shift_table = nn.Parameter(torch.randn(2, dim) / dim**0.5)
        self.audio_scale_shift_table = nn.Parameter(torch.randn(2, audio_dim) / audio_dim**0.5)
        self.proj_out = nn.Linear(dim, out_channels)
        self.audio_proj_out = nn.Linear(audio_dim, audio_out_channels)

        self.gradient_checkpointing = False
        self.sdpa_backend: str | None = None
        self.reference = REFERENCES[0]  # "1.2"; runtime state like sdpa_backend, never saved in the config

    def set_reference(self, version: str) -> None:
        """Which ltx-core release the audio<->video AdaLN follows (1.2 spec §5.1), for every later forward:
        "1.2" (default): scale/shift from each stream's own per-token timestep, gate from the partner's sigma;
        "1.0": scale/shift and gate both from the partner's sigma (ltx-core 1.0.0, bit for bit).
        The two agree when both streams share one sigma and no token is conditioned (plain text-to-video)."""
        self.reference = check_reference(version)

    @property
    def rope(self) -> VideoCoordinates:
        """Video positions under the name diffusers' pipelines call (`transformer.rope.prepare_video_coords`), in
        this model's dtype, as the reference does (spec §13.2)."""
        cfg = self.config
        return VideoCoordinates(tuple(cfg.vae_scale_factors), cfg.causal_offset, dtype=self.dtype)

    @property
    def audio_rope(self) -> AudioCoordinates:
        """Audio positions (float32) under diffusers' name (`transformer.audio_rope.prepare_audio_coords`)."""
        cfg = self.config
        return AudioCoordinates(
            cfg.audio_sampling_rate, cfg.audio_hop_length, cfg.audio_scale_factor, cfg.causal_offset
        )

    def fuse_qkv_projections(self) -> None:
        """One GEMM for each self-attention's q/k/v and each cross-attention's k/v, for inference speed
        (docs/performance.md). Parameter names change while fused: `unfuse_qkv_projections()` before saving."""
        if getattr(self, "peft_config", None):
            raise ValueError("LoRA adapters target to_q/to_k/to_v: fuse before adding adapters, or not at all")
        self._refuse_if_fp8("fuse_qkv_projections")
        for block in self.transformer_blocks:
            block.attn1.fuse_projections(self_attention=True)
            block.audio_attn1.fuse_projections(self_attention=True)
            for attn in (block.attn2, block.audio_attn2, block.audio_to_video_attn, block.video_to_audio_attn):
                attn.fuse_projections(self_attention=False)

    def unfuse_qkv_projections(self) -> None:
        self._refuse_if_fp8("unfuse_qkv_projections")
        for module in self.modules():
            if isinstance(module, Attention):
                module.unfuse_projections()

    @classmethod
    def from_single_file(
        cls, path, *, torch_dtype: torch.dtype | None = None, device: str | torch.device | None = None,
        device_map: Any = None, fp8: str = "dequantize",
    ) -> "LTX2VideoTransformer3DModel":
        """The transformer of a Lightricks single file, loaded straight onto `device` (loaders/from_single_file.py).
        A scaled-fp8 file (`ltx-2.3-22b-*-fp8`, ComfyUI's scaled fp8): fp8="dequantize" gives weight * scale in
        `torch_dtype` (bf16 when None); fp8="keep" keeps each scaled weight in e4m3 with its per-tensor scale, as a
        "tensorwise" FP8Linear (models/fp8.py: `torch._scaled_mm` on Hopper, emulated on CPU)."""

        model = load_component_from_single_file(
            cls, path, torch_dtype=torch_dtype, device=device, device_map=device_map, fp8=fp8, fp8_layer=fp8_layers.place_scaled_fp8_linear
        )
        count = sum(isinstance(m, fp8_layers.FP8Linear) for m in model.modules())
        if count:
            model.fp8_config = fp8_layers.FP8Config("tensorwise", False, (), count)
        return model

    def enable_fp8(
        self, granularity: str = "rowwise", fast_accum: bool = False, bf16_blocks: Iterable[int] = ()
    ) -> "fp8.FP8Config":
        """FP8 block linears through `torch._scaled_mm` on Hopper (models/fp8.py; docs/performance.md, "FP8").
        Call after `fuse_qkv_projections()` and before compiling blocks; `disable_fp8()` undoes it."""
        return fp8.enable_fp8(self, granularity, fast_accum, bf16_blocks)

    def disable_fp8(self) -> None:
        fp8.disable_fp8(self)

    def fuse_lora(self, lora_scale: float = 1.0, safe_fusing: bool = False, adapter_names=None) -> None:
        """diffusers' model-level fuse, refused whole over FP8 layers (`refuse_merge_over_fp8`)."""
        refuse_merge_over_fp8(self, adapter_names)
        super().fuse_lora(lora_scale, safe_fusing=safe_fusing, adapter_names=adapter_names)

    @property
    def is_fp8(self) -> bool:
        return fp8.is_fp8(self)

    def _refuse_if_fp8(self, action: str) -> None:
        if fp8.is_fp8(self):
            raise ValueError(
                f"{action}() on an FP8 model: FP8 layers cannot be concatenated, split or saved. Call disable_fp8(), "
                f"then {action}(), then enable_fp8() again if needed."
            )

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        is_main_process: bool = True,
        save_function: Callable | None = None,
        safe_serialization: bool = True,
        variant: str | None = None,
        max_shard_size: int | str = "10GB",
        push_to_hub: bool = False,
        use_flashpack: bool = False,
        **kwargs,
    ) -> None:
        """`ModelMixin.save_pretrained`, refusing FP8 and fused q/k/v layers (not diffusers' format). The signature is
        spelled out because `DiffusionPipeline.save_pretrained` only passes `safe_serialization`, `variant`,
        `max_shard_size` and `use_flashpack` to components whose signature names them."""
        self._refuse_if_fp8("save_pretrained")
        if any(isinstance(m, Attention) and (m.to_qkv is not None or m.to_kv is not None) for m in self.modules()):
            raise ValueError(
                "call unfuse_qkv_projections() before saving: fused q/k/v layers are not diffusers' format"
            )
        super().save_pretrained(
            save_directory,
            is_main_process=is_main_process,
            save_function=save_function,
            safe_serialization=safe_serialization,
            variant=variant,
            max_shard_size=max_shard_size,
            push_to_hub=push_to_hub,
            use_flashpack=use_flashpack,
            **kwargs,
        )

    def fuse_ltx2_lora(self, lora, strength: float = 1.0) -> None:
        """Fuse an LTX-2 LoRA (path, state dict read by `read_lora`, or `LTX2LoRA`): W += (B * strength * alpha / rank) @ A,
        where the file gives an alpha (the reference's rule, no alpha, otherwise). See `loaders/lora.py`, docs/lora.md."""
        from ..loaders.lora import fuse_lora

        fuse_lora(self, lora, strength)

    def load_ltx2_lora(self, lora, adapter_name: str = "default", strength: float = 1.0) -> str:
        """The same LoRA as a switchable peft adapter (`disable_adapters()` / `enable_adapters()`), numerically equal
        to `fuse_ltx2_lora`. See `loaders/lora.py` and docs/lora.md."""
        from ..loaders.lora import load_lora_adapter

        return load_lora_adapter(self, lora, adapter_name, strength)

    def set_attention_backend(self, backend: str | None) -> None:
        """Pick the SDPA kernel for every attention: "cudnn", "flash", "efficient", "math" (or diffusers' native
        names "_native_cudnn", ...); None lets PyTorch choose. Set it before compiling blocks."""
        self.sdpa_backend = resolve_sdpa_backend(backend)

    def reset_attention_backend(self) -> None:
        self.sdpa_backend = None

    @apply_lora_scale("attention_kwargs")
    def forward(
        self,
        hidden_states: Tensor | None,
        audio_hidden_states: Tensor | None = None,
        encoder_hidden_states: Tensor | None = None,
        audio_encoder_hidden_states: Tensor | None = None,
        timestep: Tensor | None = None,
        audio_timestep: Tensor | None = None,
        sigma: Tensor | None = None,
        audio_sigma: Tensor | None = None,
        encoder_attention_mask: Tensor | None = None,
        audio_encoder_attention_mask: Tensor | None = None,
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        fps: float = 24.0,
        audio_num_frames: int | None = None,
        video_coords: Tensor | None = None,
        audio_coords: Tensor | None = None,
        isolate_modalities: bool = False,
        spatio_temporal_guidance_blocks: list[int] | tuple[int, ...] | None = None,
        perturbation_mask: Tensor | None = None,
        use_cross_timestep: bool = True,
        attention_kwargs: dict[str, Any] | None = None,
        video_self_attention_mask: Tensor | None = None,
        video_keyframes_mask: Tensor | None = None,
        return_dict: bool = True,
        audio_self_attention_mask: Tensor | None = None,
        perturbations: Perturbations | None = None,
        reference: str | None = None,
    ) -> LTX2TransformerOutput | tuple[Tensor | None, Tensor | None]:
        """Velocities for the video tokens and/or the audio tokens (one stream may be None).

        Units follow diffusers: `timestep`, `audio_timestep`, `sigma` and `audio_sigma` are all timesteps, i.e.
        1000 x the noise level (diffusers' pipelines pass `sigma=timestep`).

        Args:
            hidden_states: (B, T_v, in_channels) video tokens, (f, h, w) order, appended conditioning tokens last; or
                None for an audio-only call (ltx-core 1.2.0's audio-only model: `sample` is None).
            audio_hidden_states: (B, T_a, audio_in_channels), or None for a video-only call. A one-stream call skips
                the other stream's and the audio<->video sub-layers.
            encoder_hidden_states / audio_encoder_hidden_states: (B, L, C) text contexts from the connectors
                (C = caption_channels with the LTX-2 caption projection, the stream width on LTX-2.3).
            timestep: (B,) per sample or (B, T_v) per token (conditioning tokens at their own noise level).
            audio_timestep: (B,) or (B, T_a); defaults to `timestep` when that is per sample (or audio-only).
            sigma / audio_sigma: (B,) the step's timestep per modality (spec §1.7), read by the audio<->video gate
                (the partner's) and LTX-2.3's prompt AdaLN (the own). Default: the per-sample timestep; `audio_sigma`
                defaults to `sigma`.
            encoder_attention_mask / audio_encoder_attention_mask: (B, L) 1 = attend, or an additive (B, 1, L) bias.
                Leave None (the fast path): the connectors' registers make the mask all ones.
            num_frames, height, width, fps: latent video size, used to build positions when `video_coords` is None
                (then in the latent dtype, as the reference does; spec §13.2).
            audio_num_frames: audio latent frames when `audio_coords` is None (default: T_a).
            video_coords / audio_coords: (B, 3, T_v, 2) / (B, 1, T_a, 2) [start, end) bounds (see `rope.py`), used as
                given: pass bf16 video positions (`video_positions(..., dtype=torch.bfloat16)`) for the reference's
                numerics.
            isolate_modalities: skip audio<->video attention in every block for the whole batch.
            spatio_temporal_guidance_blocks, perturbation_mask: diffusers' STG, with diffusers' meaning: blocks whose
                video and audio self-attention is replaced by its value path, for the samples where `perturbation_mask`
                (B,) or (B, 1, 1) is 0 (1 = untouched). Blocks without a mask perturb EVERY sample, as documented by
                diffusers and relied on by its `LTX2Pipeline` (its STG pass sends `perturbation_mask=None`). Block
                indices outside [0, num_layers) are ignored, as diffusers ignores them (its pipelines pass [28] by
                default, whatever the model's depth). Unlike diffusers, STG works whatever `perturbed_attn` says. A
                mask without blocks raises (it would do nothing).
            use_cross_timestep: True (the reference): cross-modal AdaLN as `reference` says. False is diffusers'
                legacy path (scale/shift and gate from each stream's own timestep), whatever `reference` is.
            attention_kwargs: only {"scale": LoRA strength} (peft); other keys raise.
            video_self_attention_mask / audio_self_attention_mask: (B, T, T) weights in [0, 1] on self-attention,
                applied as a log-bias (log w; w <= 0 masks), as the reference does (diffusers uses (1 - w) * -1e4).
            video_keyframes_mask: (B, T_v, 1) marks tokens that get `keyframes_abs_pos_embedding` (LTX-2.5 configs).
            perturbations: per-sample STG (separate video/audio block lists) and modality isolation for batched
                guidance; exclusive with the two diffusers STG arguments. Here a mask left as None means "no sample
                perturbed" (never "all samples"), whatever block lists are given, and a block index outside
                [0, num_layers) raises: our own API names blocks of this model, so a wrong index is a bug to report.
            reference: "1.2" or "1.0" for this call only; None uses the model's (`set_reference`, default "1.2"):
                the audio<->video AdaLN rule (`av_adaln_timesteps`; 1.2 spec §5.1, trap 5).

        Returns:
            `LTX2TransformerOutput(sample (B, T_v, out_channels) | None, audio_sample (B, T_a, audio_out_channels) |
            None)`, or that pair as a tuple when `return_dict` is False.
        """
        cfg = self.config
        reference = self.reference if reference is None else check_reference(reference)
        if attention_kwargs:
            raise ValueError(f"attention_kwargs keys {sorted(attention_kwargs)} are not used; only 'scale' (LoRA) is")
        has_video, has_audio = hidden_states is not None, audio_hidden_states is not None
        check_streams(hidden_states, encoder_hidden_states, audio_hidden_states, audio_encoder_hidden_states, timestep)
        first = hidden_states if has_video else audio_hidden_states
        batch_size, device, dtype = first.shape[0], first.device, first.dtype
        num_tokens = hidden_states.shape[1] if has_video else None

        # 1. Timesteps and sigmas, all in timestep units
        needs_sigma = (has_video and has_audio) or (cfg.cross_attn_mod and cfg.use_prompt_adaln_single)
        timestep, audio_timestep, sigma, audio_sigma = stream_timesteps(
            timestep, audio_timestep, sigma, audio_sigma, batch_size, num_tokens,
            audio_hidden_states.shape[1] if has_audio else None, needs_sigma, device,
        )  # fmt: skip

        # 2. Positions and RoPE tables, once per forward
        if has_video and video_coords is None:
            if None in (num_frames, height, width) or num_frames * height * width != num_tokens:
                raise ValueError(
                    f"Pass video_coords (B, 3, T_v, 2), or latent num_frames, height, width whose product is "
                    f"T_v={num_tokens}; got num_frames={num_frames}, height={height}, width={width}"
                )
            video_coords = video_positions(
                batch_size, num_frames, height, width, fps, device=device, dtype=dtype,
                scale_factors=tuple(cfg.vae_scale_factors), causal_offset=cfg.causal_offset,
            )  # fmt: skip
        if has_video:
            check_coords(video_coords, (batch_size, 3, num_tokens), "video_coords")
            video_max_pos = (cfg.pos_embed_max_pos, cfg.base_height, cfg.base_width)
            video_rope = self._rope(video_coords, self.inner_dim, cfg.num_attention_heads, video_max_pos, dtype)
        if has_audio:
            num_audio_tokens = audio_hidden_states.shape[1]
            if audio_coords is None:
                if audio_num_frames not in (None, num_audio_tokens):
                    raise ValueError(f"audio_num_frames={audio_num_frames} but there are {num_audio_tokens} tokens")
                audio_coords = self.audio_rope.prepare_audio_coords(batch_size, num_audio_tokens, device)
            check_coords(audio_coords, (batch_size, 1, num_audio_tokens), "audio_coords")
            audio_rope = self._rope(
                audio_coords, self.audio_inner_dim, cfg.audio_num_attention_heads, (cfg.audio_pos_embed_max_pos,), dtype
            )
        if has_video and has_audio:  # cross-modal RoPE: time axis only, at the audio width, on a shared normaliser
            cross_max_pos = (max(cfg.pos_embed_max_pos, cfg.audio_pos_embed_max_pos),)
            heads, width_ = cfg.audio_num_attention_heads, cfg.audio_cross_attention_dim
            video_cross_rope = self._rope(video_coords[:, 0:1], width_, heads, cross_max_pos, dtype)
            audio_cross_rope = self._rope(audio_coords[:, 0:1], width_, heads, cross_max_pos, dtype)

        # 3. Per-stream inputs: token projection (LTX-2.5: + keyframe marker), AdaLN, text context, masks; then the
        # audio<->video AdaLN, whose timesteps depend on the reference (1.2 spec §5.1)
        video, video_inputs, video_embedded = None, None, None
        if has_video:
            video, video_inputs, video_embedded = self._prepare_stream(
                hidden_states, encoder_hidden_states, encoder_attention_mask, timestep, sigma, video_rope,
                video_self_attention_mask, self.proj_in, self.time_embed, getattr(self, "caption_projection", None),
                getattr(self, "prompt_adaln", None),
            )  # fmt: skip
            if cfg.use_keyframes_abs_pos_embedding and video_keyframes_mask is not None:
                video = video + (video_keyframes_mask > 0).to(dtype) * self.keyframes_abs_pos_embedding.to(dtype)
        audio, audio_inputs, audio_embedded = None, None, None
        if has_audio:
            audio, audio_inputs, audio_embedded = self._prepare_stream(
                audio_hidden_states, audio_encoder_hidden_states, audio_encoder_attention_mask, audio_timestep,
                audio_sigma, audio_rope, audio_self_attention_mask, self.audio_proj_in, self.audio_time_embed,
                getattr(self, "audio_caption_projection", None), getattr(self, "audio_prompt_adaln", None),
            )  # fmt: skip
        if has_video and has_audio:
            rule = "diffusers" if not use_cross_timestep else reference
            video_av, audio_av = av_adaln_timesteps(rule, timestep, audio_timestep, sigma, audio_sigma)
            video_inputs = self._with_cross_modal(
                video_inputs, *video_av, video_cross_rope, self.av_cross_attn_video_scale_shift,
                self.av_cross_attn_video_a2v_gate,
            )  # fmt: skip
            audio_inputs = self._with_cross_modal(
                audio_inputs, *audio_av, audio_cross_rope, self.av_cross_attn_audio_scale_shift,
                self.av_cross_attn_audio_v2a_gate,
            )  # fmt: skip

        # 4. Blocks, with the perturbation plan settled on the host
        plan = perturbation_plan(
            cfg.num_layers, batch_size, dtype, device, has_audio, perturbations, spatio_temporal_guidance_blocks,
            perturbation_mask, isolate_modalities,
        )  # fmt: skip
        backend = sdpa_backend(self.sdpa_backend) if self.sdpa_backend else contextlib.nullcontext()
        with backend:
            for block, block_plan in zip(self.transformer_blocks, plan, strict=True):
                if torch.is_grad_enabled() and self.gradient_checkpointing:
                    video, audio = self._gradient_checkpointing_func(
                        block, video, audio, video_inputs, audio_inputs, block_plan
                    )
                else:
                    video, audio = block(video, audio, video_inputs, audio_inputs, block_plan)

        # 5. Output heads
        video_out, audio_out = None, None
        if has_video:
            video_out = self._output(video, video_embedded, self.scale_shift_table, self.proj_out)
        if has_audio:
            audio_out = self._output(audio, audio_embedded, self.audio_scale_shift_table, self.audio_proj_out)
        if not return_dict:
            return video_out, audio_out
        return LTX2TransformerOutput(sample=video_out, audio_sample=audio_out)

    @property
    def inner_dim(self) -> int:
        return self.config.num_attention_heads * self.config.attention_head_dim

    @property
    def audio_inner_dim(self) -> int:
        return self.config.audio_num_attention_heads * self.config.audio_attention_head_dim

    def _rope(self, coords: Tensor, dim: int, heads: int, max_pos: tuple, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        cfg = self.config
        return rope_cos_sin(
            coords, dim, heads, max_pos, theta=cfg.rope_theta, rope_type=cfg.rope_type,
            double_precision=cfg.rope_double_precision, dtype=dtype,
        )  # fmt: skip

    @staticmethod
    def _prepare_stream(
        tokens: Tensor,
        context: Tensor,
        context_mask: Tensor | None,
        timestep: Tensor,
        sigma: Tensor | None,
        rope: tuple[Tensor, Tensor],
        attention_weights: Tensor | None,
        proj_in: nn.Linear,
        time_embed: AdaLayerNormSingle,
        caption_projection: nn.Module | None,
        prompt_adaln: AdaLayerNormSingle | None,
    ) -> tuple[Tensor, StreamInputs, Tensor]:
        """(projected tokens, the stream's per-forward block inputs, embedded timestep for the output head)."""
        x = proj_in(tokens)
        temb, embedded = time_embed(timestep, x.dtype)
        if caption_projection is not None:  # LTX-2: Gemma features -> stream width inside the transformer
            context = caption_projection(context)
        if context.shape[-1] != x.shape[-1]:
            raise ValueError(f"text context has width {context.shape[-1]}, the stream expects {x.shape[-1]}")
        inputs = StreamInputs(
            temb=temb,
            context=context,
            context_bias=text_bias(context_mask, x.dtype),
            rope=rope,
            self_attn_bias=self_attention_bias(attention_weights, x.dtype, x.shape[1]),
            prompt_temb=None if prompt_adaln is None else prompt_adaln(sigma, x.dtype)[0],  # LTX-2.3
        )
        return x, inputs, embedded

    def _with_cross_modal(
        self,
        inputs: StreamInputs,
        scale_shift_timestep: Tensor,
        gate_timestep: Tensor,
        cross_rope: tuple[Tensor, Tensor],
        scale_shift_adaln: AdaLayerNormSingle,
        gate_adaln: AdaLayerNormSingle,
    ) -> StreamInputs:
        """scale_shift_timestep: (B,) or (B, N); gate_timestep: (B,) or (B, N), scaled here by
        cross_attn_timestep_scale_multiplier / timestep_scale_multiplier (1 for released checkpoints)."""
        cfg = self.config
        gate_factor = cfg.cross_attn_timestep_scale_multiplier / cfg.timestep_scale_multiplier
        dtype = inputs.temb.dtype
        return replace(
            inputs,
            cross_temb=scale_shift_adaln(scale_shift_timestep, dtype)[0],
            cross_gate_temb=gate_adaln(gate_timestep * gate_factor, dtype)[0],
            cross_rope=cross_rope,
        )

    def _output(self, x: Tensor, embedded: Tensor, table: Tensor, proj: nn.Linear) -> Tensor:
        shift, scale = (table[None, None].to(x.dtype) + embedded[:, :, None]).unbind(2)
        return proj(F.layer_norm(x, x.shape[-1:], eps=self.config.norm_eps) * (1 + scale) + shift)

