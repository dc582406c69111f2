"""The peers of `benchmarks/pipeline.py`: ltx-pipelines' two-stage pipelines and diffusers' documented two-stage
recipe, both holding OUR pipeline's tensors (no copy: every peer module is loaded with `assign=True` from our state
dicts, renamed through our key maps), so three implementations fit on one GPU and run the same weights.

- ltx-pipelines (1.0.0 API): `DistilledPipeline` (distilled workload) / `TI2VidTwoStagesPipeline` (dev workload)
  with a ledger of ltx-core modules built once (`PrebuiltLedger`); ltx-pipelines itself builds them from disk at
  every call, which is not counted here. Its stage 2 runs the same weights as stage 1 (no distilled LoRA file).
- diffusers 0.42.1: `LTX2Pipeline` at half size with `output_type="latent"`, `LTX2LatentUpsamplePipeline`, then
  `LTX2Pipeline` at full size from the upsampled latents with the stage-2 sigmas, `noise_scale` = their first value
  and guidance 1 (its documented recipe, run at the reference's stage sizes). Distilled: the 8 distilled sigmas,
  guidance 1 (every guidance term off). Dev: its default 4-pass guidance; VAE tiling on at 1024x1536 (its docs:
  without it the decode runs out of memory).
"""

import contextlib
import copy
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch

from ltx2_diffusers.loaders import metadata as md
from ltx2_diffusers.loaders import upsampler_keys
from ltx2_diffusers.loaders.plan import KEY_MAPS
from ltx2_diffusers.pipelines.presets import DISTILLED_SIGMAS, STAGE_2_DISTILLED_SIGMAS

COMPONENTS = ("transformer", "connectors", "vae", "audio_vae", "vocoder")


def build_on(device: torch.device, dtype: torch.dtype, build):
    """`build()` with new tensors allocated on `device` in `dtype` (no float32 copy on the host)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            return build()
    finally:
        torch.set_default_dtype(previous)


def load_shared(module: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> torch.nn.Module:
    """`module` holding `tensors` (assigned, not copied; names it does not have are left out, as ltx-core's builders
    leave out the other components of a file); every parameter and buffer must be covered."""
    own = set(module.state_dict())
    module.load_state_dict({k: v for k, v in tensors.items() if k in own}, strict=True, assign=True)
    left = [n for n, t in [*module.named_parameters(), *module.named_buffers()] if t.is_meta]
    if left:
        raise RuntimeError(f"{type(module).__name__}: no tensor for {left[:5]} (left on the meta device)")
    return module.eval()


# ----------------------------------------------------------------------------------------------------------------------
# ltx-pipelines


class PrebuiltLedger:
    """ltx-pipelines' `ModelLedger` interface over modules built once."""

    def __init__(self, modules: dict):
        self.modules = modules

    def transformer(self):
        return self.modules["transformer"]

    def text_encoder(self):
        return self.modules["text_encoder"]

    def gemma_embeddings_processor(self):
        return self.modules["embeddings_processor"]

    def video_encoder(self):
        return self.modules["video_encoder"]

    def video_decoder(self):
        return self.modules["video_decoder"]

    def audio_decoder(self):
        return self.modules["audio_decoder"]

    def vocoder(self):
        return self.modules["vocoder"]

    def spatial_upsampler(self):
        return self.modules["upsampler"]

    def with_additional_loras(self, loras):
        if loras:
            raise ValueError("the prebuilt ledger holds no LoRA: stage 2 runs the stage-1 weights")
        return self


def original_state_dict(pipe) -> dict[str, torch.Tensor]:
    """Our components' tensors under Lightricks' single-file names (the upsampler's file has its own names)."""
    tensors = {}
    for name in COMPONENTS:
        module = getattr(pipe, name)
        state = module.state_dict()
        mapping = KEY_MAPS[name].to_original(list(state), dict(module.config))
        tensors.update({mapping[key]: value for key, value in state.items()})
    return tensors


def renamed(tensors: dict[str, torch.Tensor], sd_ops) -> dict[str, torch.Tensor]:
    """`tensors` through an ltx-core SDOps (what its builders apply to a file's state dict)."""
    out = {}
    for key, value in tensors.items():
        new_key = sd_ops.apply_to_key(key)
        for result in () if new_key is None else sd_ops.apply_to_key_value(new_key, value):
            out[result.new_key] = result.new_value
    return out


@contextlib.contextmanager
def ltx_tiny_patches(device: torch.device, tiny: bool) -> Iterator[None]:
    """ltx-pipelines on the CPU (its `torch.cuda.synchronize` calls) and with the tiny Gemma (its feature extractor
    is sized from a hard-coded Gemma-3 12B config)."""
    from ltx_core.text_encoders.gemma.config import GEMMA3_CONFIG_FOR_LTX

    from ltx2_diffusers.utils.tiny_gemma import TINY_GEMMA_HIDDEN_SIZE, TINY_GEMMA_NUM_LAYERS

    text_config = GEMMA3_CONFIG_FOR_LTX.text_config
    saved = (torch.cuda.synchronize, text_config.hidden_size, text_config.num_hidden_layers)
    if device.type != "cuda":
        torch.cuda.synchronize = lambda *args, **kwargs: None
    if tiny:
        text_config.hidden_size, text_config.num_hidden_layers = TINY_GEMMA_HIDDEN_SIZE, TINY_GEMMA_NUM_LAYERS
    try:
        yield
    finally:
        torch.cuda.synchronize, text_config.hidden_size, text_config.num_hidden_layers = saved


def build_ltx(pipe, workload: str, device: torch.device, tiny: bool):
    """ltx-pipelines' two-stage pipeline for `workload`, its ledger holding our pipeline's tensors. It computes in
    bf16 only: a float32 pipeline (the tiny run) gives it bf16 copies instead."""
    from ltx_core.model.audio_vae import (
        AUDIO_VAE_DECODER_COMFY_KEYS_FILTER,
        VOCODER_COMFY_KEYS_FILTER,
        AudioDecoderConfigurator,
        VocoderConfigurator,
    )
    from ltx_core.model.transformer import LTXV_MODEL_COMFY_RENAMING_MAP, LTXModelConfigurator, X0Model
    from ltx_core.model.upsampler import LatentUpsamplerConfigurator
    from ltx_core.model.video_vae import (
        VAE_DECODER_COMFY_KEYS_FILTER,
        VAE_ENCODER_COMFY_KEYS_FILTER,
        VideoDecoderConfigurator,
        VideoEncoderConfigurator,
    )
    from ltx_core.text_encoders.gemma import (
        EMBEDDINGS_PROCESSOR_KEY_OPS,
        EmbeddingsProcessorConfigurator,
        GemmaTextEncoder,
    )
    from ltx_core.text_encoders.gemma.tokenizer import LTXVGemmaTokenizer
    from ltx_pipelines.distilled import DistilledPipeline
    from ltx_pipelines.ti2vid_two_stages import TI2VidTwoStagesPipeline
    from ltx_pipelines.utils.types import PipelineComponents

    config = md.original_config_from_components(
        {name: (type(getattr(pipe, name)).__name__, dict(getattr(pipe, name).config)) for name in COMPONENTS}
    )
    dtype = torch.bfloat16
    tensors = {name: tensor.to(dtype) for name, tensor in original_state_dict(pipe).items()}  # bf16: the same tensor
    with torch.device("meta"):
        transformer = LTXModelConfigurator.from_config(config)
    modules = {"transformer": X0Model(load_shared(transformer, renamed(tensors, LTXV_MODEL_COMFY_RENAMING_MAP)))}
    small = {
        "video_encoder": (VideoEncoderConfigurator, VAE_ENCODER_COMFY_KEYS_FILTER),
        "video_decoder": (VideoDecoderConfigurator, VAE_DECODER_COMFY_KEYS_FILTER),
        "audio_decoder": (AudioDecoderConfigurator, AUDIO_VAE_DECODER_COMFY_KEYS_FILTER),
        "vocoder": (VocoderConfigurator, VOCODER_COMFY_KEYS_FILTER),
    }
    with ltx_tiny_patches(device, tiny):
        small["embeddings_processor"] = (EmbeddingsProcessorConfigurator, EMBEDDINGS_PROCESSOR_KEY_OPS)
        for name, (configurator, sd_ops) in small.items():
            module = build_on(device, dtype, lambda c=configurator: c.from_config(config))
            modules[name] = load_shared(module, renamed(tensors, sd_ops))
    upsampler = pipe.latent_upsampler
    up_state = upsampler.state_dict()
    up_names = upsampler_keys.diffusers_to_original_keys(list(up_state), dict(upsampler.config))
    up_config = md.original_upsampler_config(dict(upsampler.config))
    module = build_on(device, dtype, lambda: LatentUpsamplerConfigurator.from_config(up_config))
    modules["upsampler"] = load_shared(module, {up_names[k]: v.to(dtype) for k, v in up_state.items()})
    tokenizer_dir = Path(tempfile.mkdtemp(prefix="ltx-tokenizer-"))
    pipe.tokenizer.save_pretrained(tokenizer_dir)
    gemma = pipe.text_encoder if pipe.text_encoder.dtype == dtype else copy.deepcopy(pipe.text_encoder).to(dtype)
    modules["text_encoder"] = GemmaTextEncoder(
        model=gemma, tokenizer=LTXVGemmaTokenizer(str(tokenizer_dir), 1024), dtype=dtype
    )
    ledger = PrebuiltLedger(modules)
    cls = DistilledPipeline if workload == "distilled" else TI2VidTwoStagesPipeline
    ltx = cls.__new__(cls)  # its __init__ only records file paths for the per-call loading replaced here
    ltx.device, ltx.dtype = device, dtype
    ltx.pipeline_components = PipelineComponents(dtype=dtype, device=device)
    if workload == "distilled":
        ltx.model_ledger = ledger
    else:
        ltx.stage_1_model_ledger = ltx.stage_2_model_ledger = ledger
    return ltx


def run_ltx(ltx, workload: str, prompt: str, size: dict, steps: int | None, out: Path, device, tiny: bool) -> bool:
    """One prompt -> mp4 with ltx-pipelines; returns whether every pixel and sample was finite."""
    from ltx_core.model.video_vae import TilingConfig, get_video_chunks_number
    from ltx_pipelines.utils.constants import DEFAULT_NEGATIVE_PROMPT, LTX_2_PARAMS
    from ltx_pipelines.utils.media_io import encode_video

    tiling = TilingConfig.default()
    common = dict(seed=0, **size, images=[], tiling_config=tiling)
    with ltx_tiny_patches(device, tiny), torch.inference_mode():
        if workload == "distilled":
            video, audio = ltx(prompt=prompt, **common)
        else:
            video_params, audio_params = LTX_2_PARAMS.video_guider_params, LTX_2_PARAMS.audio_guider_params
            video, audio = ltx(
                prompt=prompt, negative_prompt=DEFAULT_NEGATIVE_PROMPT, num_inference_steps=steps,
                video_guider_params=video_params, audio_guider_params=audio_params, **common,
            )  # fmt: skip
        chunks = [chunk for chunk in video]  # the decoder runs while the chunks are drawn
        finite = all(torch.isfinite(c.float()).all() for c in chunks) and bool(torch.isfinite(audio.waveform).all())
        encode_video(iter(chunks), int(size["frame_rate"]), audio, str(out),
                     get_video_chunks_number(size["num_frames"], tiling))  # fmt: skip
    return finite


# ----------------------------------------------------------------------------------------------------------------------
# diffusers


def build_diffusers(pipe, workload: str, device: torch.device, dtype: torch.dtype):
    """diffusers' (stage pipeline, stage-2 pipeline, upsample pipeline), holding our pipeline's tensors."""
    import diffusers
    from diffusers.pipelines.ltx2 import LTX2LatentUpsamplePipeline, LTX2TextConnectors, LTX2Vocoder
    from diffusers.pipelines.ltx2.latent_upsampler import LTX2LatentUpsamplerModel

    def shared(cls, ours, on_meta: bool = False, **overrides):
        config = {k: v for k, v in dict(ours.config).items() if not k.startswith("_")} | overrides
        if on_meta:
            with torch.device("meta"):
                theirs = cls.from_config(config)
        else:
            theirs = build_on(device, dtype, lambda: cls.from_config(config))
        return load_shared(theirs, ours.state_dict())

    components = dict(
        # the real compression (8x in time, 32x in space): from four resampling blocks diffusers would derive 16 / 64
        vae=shared(
            diffusers.AutoencoderKLLTX2Video, pipe.vae, spatial_compression_ratio=32, temporal_compression_ratio=8
        ),
        audio_vae=shared(diffusers.AutoencoderKLLTX2Audio, pipe.audio_vae),
        text_encoder=pipe.text_encoder,
        tokenizer=pipe.tokenizer,
        connectors=shared(LTX2TextConnectors, pipe.connectors),
        transformer=shared(diffusers.LTX2VideoTransformer3DModel, pipe.transformer, on_meta=True),
        vocoder=shared(LTX2Vocoder, pipe.vocoder),
    )
    if workload == "dev":
        components["vae"].enable_tiling()
    stage_1_scheduler = diffusers.FlowMatchEulerDiscreteScheduler(
        use_dynamic_shifting=workload == "dev", base_shift=0.95, max_shift=2.05, base_image_seq_len=1024,
        max_image_seq_len=4096, shift_terminal=0.1 if workload == "dev" else None,
    )  # fmt: skip
    stage_2_scheduler = diffusers.FlowMatchEulerDiscreteScheduler.from_config(
        stage_1_scheduler.config, use_dynamic_shifting=False, shift_terminal=None
    )
    stage_1 = diffusers.LTX2Pipeline(scheduler=stage_1_scheduler, **components)
    stage_2 = diffusers.LTX2Pipeline(scheduler=stage_2_scheduler, **components)
    upsampler = shared(LTX2LatentUpsamplerModel, pipe.latent_upsampler)
    upsample = LTX2LatentUpsamplePipeline(vae=components["vae"], latent_upsampler=upsampler)
    for p in (stage_1, stage_2, upsample):
        p.set_progress_bar_config(disable=True)
    return stage_1, stage_2, upsample


def run_diffusers(peers, workload: str, prompt: str, size: dict, steps: int | None, out: Path, device) -> bool:
    """diffusers' documented two-stage recipe, prompt -> mp4; returns whether the output was finite."""
    from diffusers.utils import encode_video

    stage_1, stage_2, upsample = peers
    height, width, num_frames, frame_rate = size["height"], size["width"], size["num_frames"], size["frame_rate"]
    generator = torch.Generator(device).manual_seed(0)
    unguided = dict(guidance_scale=1.0, stg_scale=0.0, modality_scale=1.0, guidance_rescale=0.0,
                    audio_guidance_scale=1.0, audio_stg_scale=0.0, audio_modality_scale=1.0,
                    audio_guidance_rescale=0.0)  # fmt: skip
    if workload == "distilled":
        sigmas = list(DISTILLED_SIGMAS[:-1])  # diffusers' scheduler appends the final 0 itself
        first = dict(sigmas=sigmas, num_inference_steps=len(sigmas), **unguided)
    else:
        first = dict(num_inference_steps=steps)  # its defaults: the reference's 4-pass guidance
    with torch.inference_mode():
        video_latents, audio_latents = stage_1(
            prompt=prompt, height=height // 2, width=width // 2, num_frames=num_frames, frame_rate=frame_rate,
            generator=generator, output_type="latent", return_dict=False, **first,
        )  # fmt: skip
        upsampled = upsample(
            latents=video_latents, height=height // 2, width=width // 2, num_frames=num_frames,
            output_type="latent", return_dict=False,
        )[0]  # fmt: skip
        sigmas = list(STAGE_2_DISTILLED_SIGMAS[:-1])
        video, audio = stage_2(
            prompt=prompt, height=height, width=width, num_frames=num_frames, frame_rate=frame_rate,
            latents=upsampled, audio_latents=audio_latents, sigmas=sigmas, num_inference_steps=len(sigmas),
            noise_scale=sigmas[0], generator=generator, output_type="np", return_dict=False, **unguided,
        )  # fmt: skip
    finite = bool(torch.isfinite(torch.as_tensor(video)).all()) and bool(torch.isfinite(audio).all())
    rate = stage_2.vocoder.config.output_sampling_rate
    encode_video(video[0], fps=frame_rate, audio=audio[0].float().cpu(), audio_sample_rate=rate, output_path=str(out))
    return finite
