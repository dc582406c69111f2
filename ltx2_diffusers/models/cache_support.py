"""diffusers' step caches on the LTX-2 transformer: `transformer.enable_cache(FirstBlockCacheConfig(...))`,
`MagCacheConfig(...)`, `TaylorSeerCacheConfig(...)`, and `disable_cache()`.

diffusers' cache hooks find a block's inputs and outputs through `TransformerBlockRegistry`. Our block is
`block(video, audio, video_inputs, audio_inputs, perturbation) -> (video, audio)`; it is registered with video as
diffusers' "hidden states" (index 0) and audio as its "encoder hidden states" (index 1), so every cache that skips
blocks keeps BOTH streams, audio included:
- FirstBlockCache: after block 0, the relative change of the video residual against the previous call decides
  whether blocks 1..N-1 run; when they don't, each stream gets its own cached tail residual (diffusers' hook keeps
  one per stream). The decision is joint: both streams skip or neither does.
- MagCache: diffusers' hook adds the cached residual to the hidden states only and passes the second stream
  through unchanged (right for Flux's text stream, wrong for our audio). `LTX2MagCacheHeadHook` /
  `LTX2MagCacheBlockHook` keep the audio residual of the last computed call too and add it when the step is skipped.
- TaylorSeer: hooks modules by name and predicts their outputs; it needs no block metadata. Its default patterns
  match the audio<->video attentions (`transformer_blocks.N.audio_to_video_attn` / `video_to_audio_attn`).
  `use_lite_mode` predicts only `proj_out`, so the audio head would read zeros: it is refused with its equivalent
  for both heads.

Cache state is kept per "cache context". diffusers' pipelines name one (`transformer.cache_context("cond_uncond")`);
our pipelines call the transformer without one, so while a cache is enabled every call without a context runs in a
context named after its token shapes: the stages of a two-stage pipeline (different token counts) never share a
cached residual. The pipelines reset the state at the end of each call (`maybe_free_model_hooks`).
"""

from diffusers.hooks import HookRegistry, MagCacheConfig, TaylorSeerCacheConfig
from diffusers.hooks._common import _ALL_TRANSFORMER_BLOCK_IDENTIFIERS
from diffusers.hooks._helpers import TransformerBlockMetadata, TransformerBlockRegistry
from diffusers.hooks.first_block_cache import FirstBlockCacheConfig
from diffusers.hooks.hooks import CacheContext, ModelHook, StateManager, _set_cache_context
from diffusers.hooks.mag_cache import (
    _MAG_CACHE_BLOCK_HOOK,
    _MAG_CACHE_LEADER_BLOCK_HOOK,
    MagCacheBlockHook,
    MagCacheHeadHook,
    MagCacheState,
)
from diffusers.models.cache_utils import CacheMixin
from torch import Tensor, nn

from .transformer_ltx2_block import LTX2VideoTransformerBlock

CONTEXT_HOOK = "ltx2_cache_context"
# Caches whose block hooks need both streams: a video-only call (audio None) cannot run under them.
JOINT_STREAM_CACHES = (FirstBlockCacheConfig, MagCacheConfig)


class LTX2BlockMetadata(TransformerBlockMetadata):
    """Block metadata under our argument names. Some diffusers hooks ask for "hidden_states" and
    "encoder_hidden_states" by those literal names, others by the metadata's argument names: both resolve here."""

    ALIASES = {"hidden_states": "video", "encoder_hidden_states": "audio"}

    def _get_parameter_from_args_kwargs(self, identifier: str, args=(), kwargs=None):
        return super()._get_parameter_from_args_kwargs(self.ALIASES.get(identifier, identifier), args, kwargs)


def register_block_metadata() -> None:
    """Register `LTX2VideoTransformerBlock` with diffusers' `TransformerBlockRegistry` (idempotent). Called by
    `enable_cache`, not at import: the registry's first use imports every diffusers transformer."""
    metadata = LTX2BlockMetadata(
        return_hidden_states_index=0,
        return_encoder_hidden_states_index=1,
        hidden_states_argument_name="video",
        encoder_hidden_states_argument_name="audio",
    )
    TransformerBlockRegistry.register(LTX2VideoTransformerBlock, metadata)


# ----------------------------------------------------------------------------------------------------------------------
# MagCache with the audio residual


class LTX2MagCacheState(MagCacheState):
    """diffusers' MagCache state plus the audio stream's: its input to the head block and its residual over all
    blocks at the last computed call."""

    def __init__(self) -> None:
        super().__init__()
        self.head_audio_input: Tensor | None = None
        self.audio_residual: Tensor | None = None

    def reset(self) -> None:
        super().reset()
        self.head_audio_input = self.audio_residual = None


class LTX2MagCacheHeadHook(MagCacheHeadHook):
    """diffusers' head hook; on a skipped call the audio gets its cached residual as the video does."""

    def new_forward(self, module: nn.Module, *args, **kwargs):
        output = super().new_forward(module, *args, **kwargs)
        audio = self._metadata._get_parameter_from_args_kwargs("audio", args, kwargs)
        state: LTX2MagCacheState = self.state_manager.get_state()
        if state.should_compute:
            state.head_audio_input = audio
            return output
        return output[0], audio + state.audio_residual


class LTX2MagCacheBlockHook(MagCacheBlockHook):
    """diffusers' block hook; the tail block also stores the audio residual of a computed call."""

    def new_forward(self, module: nn.Module, *args, **kwargs):
        output = super().new_forward(module, *args, **kwargs)
        state: LTX2MagCacheState = self.state_manager.get_state()
        if self.is_tail and state.should_compute and state.head_audio_input is not None:
            state.audio_residual = output[1] - state.head_audio_input
        return output


def apply_mag_cache(transformer: nn.Module, config: MagCacheConfig) -> None:
    """diffusers' `apply_mag_cache` with the audio-aware hooks, under diffusers' hook names (so `disable_cache`
    removes them)."""
    blocks = [
        block
        for name, child in transformer.named_children()
        if name in _ALL_TRANSFORMER_BLOCK_IDENTIFIERS and isinstance(child, nn.ModuleList)
        for block in child
    ]
    if len(blocks) < 2:
        raise ValueError(f"MagCache needs a head and a tail block; this transformer has {len(blocks)} block(s)")
    state_manager = StateManager(LTX2MagCacheState, (), {})
    HookRegistry.check_if_exists_or_initialize(blocks[0]).register_hook(
        LTX2MagCacheHeadHook(state_manager, config), _MAG_CACHE_LEADER_BLOCK_HOOK
    )
    for index, block in enumerate(blocks[1:], start=1):
        hook = LTX2MagCacheBlockHook(state_manager, is_tail=index == len(blocks) - 1, config=config)
        HookRegistry.check_if_exists_or_initialize(block).register_hook(hook, _MAG_CACHE_BLOCK_HOOK)


# ----------------------------------------------------------------------------------------------------------------------
# A cache context per token shape


def current_cache_context(module: nn.Module) -> CacheContext | None:
    """The context the stateful hooks under `module` run in now (the first one found), or None."""
    registry = HookRegistry.check_if_exists_or_initialize(module)
    for child in (registry, *registry._get_child_registries()):
        for hook in child.hooks.values():
            for attr in vars(hook).values():
                if isinstance(attr, StateManager):
                    return attr._context
    return None


class ShapeContextHook(ModelHook):
    """On the transformer: a call made outside any `cache_context` runs in one named after its token shapes."""

    def __init__(self, cache_name: str, needs_audio: bool):
        super().__init__()
        self.cache_name = cache_name
        self.needs_audio = needs_audio

    def new_forward(self, module: nn.Module, *args, **kwargs):
        video = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
        audio = kwargs["audio_hidden_states"] if "audio_hidden_states" in kwargs else (args[1:2] or [None])[0]
        if audio is None and self.needs_audio:
            raise ValueError(
                f"{self.cache_name} caches the video and audio streams together, so it cannot run a video-only call "
                "(audio_hidden_states=None). Pass audio tokens, or call transformer.disable_cache() first."
            )
        if current_cache_context(module) is not None:  # the caller named one (diffusers' pipelines do)
            return self.fn_ref.original_forward(*args, **kwargs)
        shapes = f"video{tuple(video.shape)}+audio{None if audio is None else tuple(audio.shape)}"
        _set_cache_context(module, CacheContext(shapes))
        try:
            return self.fn_ref.original_forward(*args, **kwargs)
        finally:
            _set_cache_context(module, None)


class LTX2CacheMixin(CacheMixin):
    """diffusers' `CacheMixin` for the LTX-2 transformer: registers the block, keeps audio in MagCache, refuses
    TaylorSeer's lite mode, and gives calls without a cache context one per token shape (module docstring)."""

    def enable_cache(self, config) -> None:
        register_block_metadata()
        if isinstance(config, TaylorSeerCacheConfig) and config.use_lite_mode:
            raise ValueError(
                "TaylorSeerCacheConfig(use_lite_mode=True) predicts only `proj_out`, so this transformer's audio head "
                "would read zeroed blocks. Use the same scheme for both heads: TaylorSeerCacheConfig("
                "cache_identifiers=['proj_out', 'audio_proj_out'], "
                r"skip_predict_identifiers=['transformer_blocks\.\d+'], ...)."
            )
        if isinstance(config, MagCacheConfig):
            if self.is_cache_enabled:
                raise ValueError(
                    f"Caching is already enabled with {type(self._cache_config).__name__}: call disable_cache() first"
                )
            apply_mag_cache(self, config)
            self._cache_config = config
        else:
            super().enable_cache(config)
        registry = HookRegistry.check_if_exists_or_initialize(self)
        registry.register_hook(
            ShapeContextHook(type(config).__name__, isinstance(config, JOINT_STREAM_CACHES)), CONTEXT_HOOK
        )
        registry.invalidate_child_registries_cache()

    def disable_cache(self) -> None:
        super().disable_cache()
        HookRegistry.check_if_exists_or_initialize(self).remove_hook(CONTEXT_HOOK, recurse=False)
