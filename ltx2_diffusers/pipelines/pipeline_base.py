"""The base of every LTX-2 pipeline: components, loading, offloading and a few properties. No `__call__`.

Each pipeline (one file each) subclasses `LTX2AVPipelineBase` for its components and loading only, and writes its
own `__call__` as a story over the shared stage functions (text_encoding, condition_encoding, denoising, refinement,
decoding). Sampling defaults per model version and kind come from `presets.py`.
"""

import inspect
import os
import warnings
from dataclasses import replace

import torch
from diffusers import DiffusionPipeline
from torch import Tensor

from ..hub import PipelineCardMixin, local_or_snapshot_folder
from ..loaders.lora_pipeline import LTX2LoraLoaderMixin
from ..loaders.safetensors_io import read_json
from ..memory import (
    MemoryPlan,
    MemoryRequest,
    component_sizes,
    count_guidance_passes,
    parse_budget,
)
from ..memory import plan_memory as plan_placement
from ..memory.multidevice import MultiDevicePlan, check_any_request, check_any_transformer_call, plan_multi_device
from ..memory.placement import AppliedPlan, apply_plan
from ..memory.placement_multidevice import apply_multi_device_plan, budget_devices
from ..schedulers.scheduling_ltx2 import LTX2Scheduler, as_ltx2_scheduler
from .condition_encoding import encode_image
from .guidance import GuidanceScales, GuidanceSchedule
from .inputs import ImageInput
from .pipeline_utils import as_torch_dtype
from .presets import (
    DEFAULT_IMAGE_CRF,
    DEFAULT_REFERENCE,
    SamplingPreset,
    kind_from_name,
    model_version_from_config,
    parse_kind,
    sampling_preset,
)
from .speed import FastSettings, enable_fast
from .text_encoding import PromptEmbeddings, encode_prompts


def with_guidance_scales(preset: SamplingPreset) -> SamplingPreset:
    """A preset whose guidance is `GuidanceScales` (what the denoiser takes) instead of the torch-free
    `GuidancePreset` (same fields, same values)."""
    return replace(
        preset,
        video_guidance=GuidanceScales(**preset.video_guidance.as_kwargs()),
        audio_guidance=GuidanceScales(**preset.audio_guidance.as_kwargs()),
    )


COMPONENTS = ("scheduler", "vae", "audio_vae", "text_encoder", "tokenizer", "connectors", "transformer", "vocoder")
# processor: a Gemma3Processor, only image-to-video prompt enhancement needs it; the two LTX-2.5 models
OPTIONAL_COMPONENTS = ("processor", "diffusion_decoder", "duration_head")


def scheduler_for_kind(kind: str) -> LTX2Scheduler:
    """The reference's schedule for a kind in any spelling `presets.parse_kind` takes: "dev" (shifted, 40/30 steps by
    model version) or "distilled" (the 8 fixed sigmas)."""
    return LTX2Scheduler.distilled() if parse_kind(kind) == "distilled" else LTX2Scheduler()


def resolve_scheduler(folder: str, index: dict, name_or_path: str | os.PathLike, kind: str | None) -> LTX2Scheduler:
    """The scheduler for a pipeline folder: `kind` when given; else the folder's own LTX2Scheduler; else (diffusers'
    FlowMatchEulerDiscreteScheduler, which shifts by token count where the reference does not) the reference's
    schedule for the kind the repo id or folder name says."""
    if kind is not None:
        return scheduler_for_kind(kind)
    if index.get("scheduler", [None, None])[1] == "LTX2Scheduler":
        return LTX2Scheduler.from_pretrained(folder, subfolder="scheduler")
    # diffusers' converter writes the distilled scheduler as "no shift, no terminal", FlowMatchEulerDiscreteScheduler's
    # default, so only the repo id or folder name can tell
    return scheduler_for_kind(kind_from_name(name_or_path))


class LTX2AVPipelineBase(PipelineCardMixin, DiffusionPipeline, LTX2LoraLoaderMixin):
    """Components, loading and offloading shared by the LTX-2 pipelines; each subclass writes its own `__call__`.

    Components keep diffusers' LTX2Pipeline names: `transformer`, `vae`, `audio_vae`, `vocoder`, `connectors`,
    `text_encoder` (Gemma-3; None when every call passes `prompt_embeds`), `tokenizer`, `scheduler` (`LTX2Scheduler`;
    diffusers' `FlowMatchEulerDiscreteScheduler` is converted), the optional `processor` (`Gemma3Processor`, for
    image-to-video prompt enhancement) and, in the two-stage pipelines, `latent_upsampler`. LTX-2.5 adds, as
    diffusers' LTX2Pipeline does, the optional `diffusion_decoder` (`LTX2VideoDiffusionDecoderModel`: decodes the
    video when present; `vae` keeps encoding images) and `duration_head` (`LTX2DurationHead`: `num_frames=None`
    predicts the clip length).
    """

    model_cpu_offload_seq = (
        "text_encoder->connectors->duration_head->transformer->vae->diffusion_decoder->audio_vae->vocoder"
    )
    _callback_tensor_inputs = ["video_latents", "audio_latents"]
    _optional_components = ["processor", "text_encoder", "tokenizer", "diffusion_decoder", "duration_head"]

    def __init__(
        self,
        scheduler,
        vae,
        audio_vae,
        text_encoder,
        tokenizer,
        connectors,
        transformer,
        vocoder,
        processor=None,
        diffusion_decoder=None,
        duration_head=None,
    ):
        super().__init__()
        self.register_modules(
            scheduler=as_ltx2_scheduler(scheduler),
            vae=vae,
            audio_vae=audio_vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            connectors=connectors,
            transformer=transformer,
            vocoder=vocoder,
            processor=processor,
            diffusion_decoder=diffusion_decoder,
            duration_head=duration_head,
        )

    def register_modules(self, **kwargs):
        super().register_modules(**kwargs)
        # diffusers records a component from an outside package under its module path; record our package name, which
        # `DiffusionPipeline.from_pretrained` resolves through ltx2_diffusers' public table.
        for name in kwargs:
            library, class_name = self.config[name] if name in self.config else (None, None)
            if library is not None and library.startswith("ltx2_diffusers."):
                self.register_to_config(**{name: ("ltx2_diffusers", class_name)})

    @classmethod
    def _takes_upsampler(cls) -> bool:
        return "latent_upsampler" in inspect.signature(cls.__init__).parameters

    # ------------------------------------------------------------------------------------------------------------------
    # Loading

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *, kind: str | None = None, **kwargs):
        """Load a diffusers-layout folder or Hub repo, building OUR classes for the LTX-2 components whether its
        model_index.json names diffusers' classes (e.g. `Lightricks/LTX-2`) or ours. A diffusers scheduler is replaced
        by `LTX2Scheduler` with the reference's schedule for `kind` ("dev" or "distilled"; None: the folder's own
        LTX2Scheduler, else "distilled" when the repo id or folder name says so, else "dev"); an explicit `kind`
        overrides a saved scheduler. Two-stage pipelines also load `latent_upsampler/` into our
        `LTX2LatentUpsamplerModel`, whether model_index.json names it or not (diffusers' LTX-2 repos hold the folder
        without listing it). Other kwargs go to `DiffusionPipeline.from_pretrained`."""
        import ltx2_diffusers

        from ..models.latent_upsampler import LTX2LatentUpsamplerModel

        folder, takes_upsampler = str(pretrained_model_name_or_path), cls._takes_upsampler()
        # Only this pipeline's folders: Hub repos such as Lightricks/LTX-2 also hold the original single files.
        extra = ("latent_upsampler", "temporal_upsampler") if takes_upsampler else ()
        names = (*COMPONENTS, *OPTIONAL_COMPONENTS, *(n for n in extra if n in inspect.signature(cls.__init__).parameters))
        folder = local_or_snapshot_folder(
            folder,
            ["model_index.json", "README.md", *(f"{name}/*" for name in names)],
            revision=kwargs.get("revision"),
            cache_dir=kwargs.get("cache_dir"),
            token=kwargs.get("token"),
            local_files_only=kwargs.get("local_files_only", False),
        )
        index = read_json(os.path.join(folder, "model_index.json"), "a diffusers pipeline index (model_index.json)")
        # diffusers 0.42 renamed torch_dtype to dtype and warns on the old name; both are accepted here, without the
        # warning, and handed on as dtype
        dtype, torch_dtype = kwargs.pop("dtype", None), kwargs.pop("torch_dtype", None)
        if dtype is not None and torch_dtype is not None:
            raise ValueError("pass dtype or torch_dtype (its older name), not both")
        dtype = as_torch_dtype(torch_dtype if dtype is None else dtype)
        if dtype is not None:
            kwargs["dtype"] = dtype
        for name in ("transformer", "vae", "audio_vae", "connectors", "vocoder", "diffusion_decoder", "duration_head"):
            if name in kwargs or name not in index or index[name][1] is None:
                continue
            class_name = index[name][1]
            if class_name not in ltx2_diffusers.__all__:
                raise ValueError(
                    f"model_index.json names {index[name]} for {name!r}; {cls.__name__} loads {name} into one of "
                    f"ltx2_diffusers' classes, and {class_name!r} is not one of them. Pass {name}= explicitly."
                )
            if not os.path.isdir(os.path.join(folder, name)):
                raise ValueError(
                    f"{os.path.join(folder, 'model_index.json')} lists the component {name!r}, but {folder} has no "
                    f"{name}/ folder: the folder is incomplete. Copy or download {name}/, or pass {name}= explicitly."
                )
            component_class = getattr(ltx2_diffusers, class_name)
            kwargs[name] = component_class.from_pretrained(
                folder, subfolder=name, dtype=dtype, variant=kwargs.get("variant")
            )
        if takes_upsampler and "latent_upsampler" not in kwargs:
            in_index = index.get("latent_upsampler", [None, None])[1] is not None
            in_folder = os.path.isfile(os.path.join(folder, "latent_upsampler", "config.json"))
            if in_index or in_folder:
                kwargs["latent_upsampler"] = LTX2LatentUpsamplerModel.from_pretrained(
                    folder, subfolder="latent_upsampler", dtype=dtype
                )
        if "scheduler" not in kwargs:  # resolved here: the repo id, which may name the kind, is gone after download
            kwargs["scheduler"] = resolve_scheduler(folder, index, pretrained_model_name_or_path, kind)
        return super().from_pretrained(folder, **kwargs)

    @classmethod
    def from_single_file(
        cls,
        path: str | os.PathLike,
        *,
        text_encoder=None,
        tokenizer=None,
        processor=None,
        latent_upsampler: "str | os.PathLike | torch.nn.Module | None" = None,
        kind: str | None = None,
        torch_dtype: torch.dtype | None = None,
    ):
        """The pipeline from a Lightricks single file (`ltx-2-19b-dev.safetensors`, `ltx-2.3-22b-*.safetensors`):
        every model it holds, through the converter's key maps and the file's metadata configs, loaded strictly.
        The file holds no Gemma: pass `text_encoder` / `tokenizer` (and `processor` for image prompt enhancement)
        objects. `kind` ("dev" or "distilled") picks the scheduler when the file name does not say. Two-stage
        pipelines take the upsampler as a model or the path of its own single file
        (e.g. `ltx-2-spatial-upscaler-x2-1.0.safetensors`)."""
        from ..conversion import pipeline_from_single_file
        from ..models.latent_upsampler import LTX2LatentUpsamplerModel

        if latent_upsampler is not None and not cls._takes_upsampler():
            raise ValueError(f"{cls.__name__} has no latent_upsampler: drop latent_upsampler=")
        pipe = pipeline_from_single_file(
            path,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            processor=processor,
            kind=kind,
            torch_dtype=torch_dtype,
            pipeline_class=cls,
        )
        if isinstance(latent_upsampler, str | os.PathLike):
            latent_upsampler = LTX2LatentUpsamplerModel.from_single_file(latent_upsampler, torch_dtype=torch_dtype)
        if latent_upsampler is not None:
            pipe.register_modules(latent_upsampler=latent_upsampler)
        return pipe

    @classmethod
    def from_split_files(
        cls,
        *,
        transformer: str | os.PathLike,
        text_encoder_file: str | os.PathLike,
        video_vae: str | os.PathLike,
        audio_vae: str | os.PathLike,
        diffusion_vae: str | os.PathLike | None = None,
        duration_head: str | os.PathLike | None = None,
        text_encoder=None,
        tokenizer=None,
        latent_upsampler: "str | os.PathLike | torch.nn.Module | None" = None,
        kind: str | None = None,
        torch_dtype: torch.dtype | None = None,
    ):
        """The pipeline from LTX-2.5's split per-component files (`loaders.from_single_file.pipeline_from_split_files`:
        transformer file + the text-encoder file's projection, conv video VAE file, optional diffusion VAE and
        duration-head files, audio file); Gemma-4 as objects; two-stage pipelines take the upsampler as a model or the
        path of its file."""
        from ..conversion import MODEL_CLASSES
        from ..loaders.from_single_file import pipeline_from_split_files
        from ..models.diffusion_video_decoder import LTX2VideoDiffusionDecoderModel
        from ..models.duration_head import LTX2DurationHead
        from ..models.latent_upsampler import LTX2LatentUpsamplerModel

        if latent_upsampler is not None and not cls._takes_upsampler():
            raise ValueError(f"{cls.__name__} has no latent_upsampler: drop latent_upsampler=")
        classes = {**MODEL_CLASSES, "LTX2VideoDiffusionDecoderModel": LTX2VideoDiffusionDecoderModel,
                   "LTX2DurationHead": LTX2DurationHead}  # fmt: skip
        pipe = pipeline_from_split_files(
            transformer=transformer, text_encoder_file=text_encoder_file, video_vae=video_vae, audio_vae=audio_vae,
            diffusion_vae=diffusion_vae, duration_head=duration_head, classes=classes, text_encoder=text_encoder,
            tokenizer=tokenizer, kind=kind, torch_dtype=torch_dtype, pipeline_class=cls,
        )  # fmt: skip
        if isinstance(latent_upsampler, str | os.PathLike):
            latent_upsampler = LTX2LatentUpsamplerModel.from_single_file(latent_upsampler, torch_dtype=torch_dtype)
        if latent_upsampler is not None:
            pipe.register_modules(latent_upsampler=latent_upsampler)
        return pipe

    # ------------------------------------------------------------------------------------------------------------------
    # Switches and properties

    def enable_xformers_memory_efficient_attention(self, attention_op=None) -> None:
        """Not used here: attention is PyTorch's SDPA, whose kernel `transformer.set_attention_backend` picks
        ("cudnn", "flash", "efficient", "math"). Says so instead of doing nothing silently."""
        warnings.warn(
            "enable_xformers_memory_efficient_attention() does nothing in ltx2_diffusers: attention runs through "
            'PyTorch SDPA; pick its kernel with pipe.transformer.set_attention_backend("cudnn" | "flash" | '
            '"efficient" | "math") (the fastest measured on Hopper is "cudnn").',
            UserWarning,
            stacklevel=2,
        )

    def enable_attention_slicing(self, slice_size="auto") -> None:
        """Not used here: SDPA's memory-efficient kernels never hold the full attention matrix. Says so."""
        warnings.warn(
            "enable_attention_slicing() does nothing in ltx2_diffusers: PyTorch SDPA never materialises the attention "
            "matrix. To use less memory: enable_model_cpu_offload(), pipe.vae.enable_tiling(), or smaller sizes.",
            UserWarning,
            stacklevel=2,
        )

    def enable_vae_tiling(self) -> None:
        """Decode the video in overlapping tiles (less memory for long or large clips)."""
        self.vae.enable_tiling()

    def disable_vae_tiling(self) -> None:
        self.vae.disable_tiling()

    # ------------------------------------------------------------------------------------------------------------------
    # Memory budget (memory/planner.py decides, memory/placement.py places; docs/memory.md)

    def enable_memory_budget(
        self,
        budget: "int | float | str | list[int | float | str]",
        device: "torch.device | str | list[torch.device | str]" = "cuda",
        fp8: bool | str = "auto",
        *,
        height: int | None = None,
        width: int | None = None,
        num_frames: int | None = None,
        frame_rate: float | None = None,
        batch_size: int = 1,
        guidance_passes: int | None = None,
        encode_frames: int = 1,
    ) -> MemoryPlan:
        """Run within `budget` of device memory ("24GB", "24GiB", 24 -> GiB; an int of 2**20+ -> bytes).

        Plans first (`memory_plan`), then places: FP8 block storage (fp8="auto": when the blocks would not all stay
        resident otherwise, on CUDA capability 8.9+; True / False to force), resident and streamed transformer blocks,
        Gemma resident / onloaded / streamed by layer, components resident or onloaded around their use, VAE tiles.
        The plan is made for the largest call you will make (height / width / num_frames / batch_size: prompts x
        videos per prompt / guidance_passes: 1-4 / encode_frames: frames the VAE encodes at full size, 1 for an image,
        the clip for IC-LoRA or retake references; default: this pipeline's preset, one image); a larger call is
        refused before any work. An impossible
        budget raises a ValueError before any weight moves. Load the pipeline on the CPU (the default) and do not
        call `.to(device)`: weights go where the plan says. `disable_memory_budget()` undoes it. Inference only.

        Several devices in one process: a list of budgets and the same number of devices (`budget=["24GB", "24GB"],
        device=["cuda:0", "cuda:1"]`) splits the transformer's blocks into one contiguous range per device (the first
        device also holds everything else and runs the pipeline); every block stays resident (no block streaming).
        Returns a `MultiDevicePlan` then.
        """
        if self._memory_placement is not None:
            raise ValueError(
                "a memory budget is already enabled: call pipe.disable_memory_budget(to='cpu') first (to='cpu' keeps the "
                "weights off the GPU until the new plan places them)"
            )
        if getattr(self, "_all_hooks", None):
            raise ValueError(
                "model CPU offload is enabled and would move the weights behind the budget's back: call "
                "pipe.remove_all_hooks() first (the budget places every component itself)"
            )
        plan = self.memory_plan(
            height, width, num_frames, budget=budget, device=device, fp8=fp8, frame_rate=frame_rate,
            batch_size=batch_size, guidance_passes=guidance_passes, encode_frames=encode_frames,
        )  # fmt: skip
        if isinstance(plan, MultiDevicePlan):
            self._memory_placement = apply_multi_device_plan(self, plan, device, check_call=self._check_transformer_call)
        else:
            self._memory_placement = apply_plan(self, plan, device, check_call=self._check_transformer_call)
        return plan

    def memory_plan(
        self,
        height: int | None = None,
        width: int | None = None,
        num_frames: int | None = None,
        *,
        budget: "int | float | str | list[int | float | str] | None" = None,
        device: "torch.device | str | list[torch.device | str] | None" = None,
        fp8: bool | str = "auto",
        frame_rate: float | None = None,
        batch_size: int = 1,
        guidance_passes: int | None = None,
        encode_frames: int = 1,
    ) -> "MemoryPlan | MultiDevicePlan":
        """The plan for one request (None: the preset's size, frames and guidance), with its predicted peak per stage
        (`plan.summary()`). With a budget enabled (and no `budget=`): the placement in use, checked against this
        request (a ValueError if it would not fit). Otherwise `budget` is required and nothing moves. A list of
        budgets with a list of as many devices plans over several devices (`plan_multi_device`)."""
        preset = self.sampling_defaults
        two_stage = self._takes_upsampler()
        if guidance_passes is None:
            guidance_passes = count_guidance_passes(preset.video_guidance, preset.audio_guidance)
        request = MemoryRequest(
            height=height if height is not None else (preset.two_stage_height if two_stage else preset.height),
            width=width if width is not None else (preset.two_stage_width if two_stage else preset.width),
            num_frames=preset.num_frames if num_frames is None else num_frames,
            frame_rate=preset.frame_rate if frame_rate is None else frame_rate,
            batch_size=batch_size,
            guidance_passes=guidance_passes,
            two_stage=two_stage,
            encode_frames=encode_frames,
        )
        applied = self._memory_placement
        if budget is None:
            if applied is None:
                raise ValueError("no memory budget is enabled: pass budget= (e.g. '24GB') to plan for one")
            check_any_request(applied.plan, request)
            return applied.plan.for_request(request)
        if isinstance(budget, list | tuple) or isinstance(device, list | tuple):
            devices = budget_devices(budget, device)
            supported = all(d.type == "cuda" and torch.cuda.get_device_capability(d) >= (8, 9) for d in devices)
            return plan_multi_device(
                [parse_budget(b) for b in budget], component_sizes(self), request, devices=[str(d) for d in devices],
                fp8=fp8, fp8_supported=supported,
            )  # fmt: skip
        device = torch.device(device if device is not None else "cuda")
        supported = device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 9)
        return plan_placement(parse_budget(budget), component_sizes(self), request, fp8=fp8, fp8_supported=supported)

    def disable_memory_budget(self, to: torch.device | str | None = None) -> None:
        """Undo `enable_memory_budget`: hooks removed, every weight in its own storage on `to` (default: the budget's
        device, i.e. fully resident; "cpu" to free the GPU, e.g. before planning again), FP8 kept
        (`transformer.disable_fp8()` undoes it), VAE tiling as before."""
        if self._memory_placement is None:
            raise ValueError("no memory budget is enabled")
        self._memory_placement.remove(self, None if to is None else torch.device(to))
        self._memory_placement = None

    def check_memory_budget(
        self,
        height: int,
        width: int,
        num_frames: int,
        batch_size: int = 1,
        video_guidance: GuidanceScales | GuidanceSchedule | None = None,
        audio_guidance: GuidanceScales | GuidanceSchedule | None = None,
        frame_rate: float = 24.0,
        encode_frames: int = 1,
    ) -> None:
        """Refuse a call that would not fit the enabled budget, before any work (no-op without a budget). Pipelines
        call it with their resolved size, batch (prompts x videos per prompt) and guidance."""
        if self._memory_placement is None:
            return
        passes = count_guidance_passes(video_guidance, audio_guidance)
        request = MemoryRequest(height, width, num_frames, frame_rate, batch_size, passes, self._takes_upsampler(),
                                encode_frames)  # fmt: skip
        check_any_request(self._memory_placement.plan, request)

    def _check_transformer_call(self, transformer, args, kwargs) -> None:
        hidden_states = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
        check_any_transformer_call(self._memory_placement.plan, hidden_states.shape[0], hidden_states.shape[1])

    @property
    def _memory_placement(self) -> AppliedPlan | None:
        return self.__dict__.get("_applied_memory_plan")

    @_memory_placement.setter
    def _memory_placement(self, applied: AppliedPlan | None) -> None:
        self.__dict__["_applied_memory_plan"] = applied

    @property
    def _execution_device(self) -> torch.device:
        """With a memory budget: its device (weights may live on the host); else diffusers' answer."""
        applied = self._memory_placement
        return applied.device if applied is not None else super()._execution_device

    @property
    def video_decoder(self) -> torch.nn.Module:
        """What decodes the video latents: LTX-2.5's `diffusion_decoder` when the pipeline has one, else `vae`."""
        return self.vae if getattr(self, "diffusion_decoder", None) is None else self.diffusion_decoder

    @property
    def model_version(self) -> str:
        """ "2.0", "2.3" or "2.5", from the transformer's config (`presets.model_version_from_config`)."""
        return model_version_from_config(self.transformer.config)

    @property
    def kind(self) -> str:
        """ "distilled" with a distilled scheduler (fixed sigmas), else "dev"."""
        return "distilled" if self.scheduler.config.fixed_sigmas is not None else "dev"

    @property
    def sampling_defaults(self) -> SamplingPreset:
        """The one-stage and two-stage calls' defaults: `presets.sampling_preset(model_version, kind)`, its guidance as
        `GuidanceScales` (with a distilled scheduler: no guidance, the 8 fixed sigmas). The HQ and retake pipelines
        use `presets.hq_preset` / `retake_preset`."""
        return with_guidance_scales(sampling_preset(self.model_version, self.kind))

    @property
    def latent_layout(self) -> dict[str, int]:
        """`prepare_latents`' channel arguments, derived from the components: the transformer's video latent
        channels, the audio VAE's latent channels and the mel bins each audio token packs."""
        audio_channels = self.audio_vae.config.latent_channels
        return {
            "video_channels": self.transformer.config.in_channels,
            "audio_channels": audio_channels,
            "audio_mel_bins": self.transformer.config.audio_in_channels // audio_channels,
        }

    @property
    def audio_sample_rate(self) -> int:
        return int(self.vocoder.config.output_sampling_rate)

    def enable_parallelism(
        self,
        context_degree: int | None = None,
        guidance_degree: int = 1,
        mode: str = "ulysses",
        config=None,
        decode: bool = True,
        shard_weights: bool = False,
    ):
        """Split each generation over the processes of `torchrun --nproc_per_node N` (torch.distributed initialised):
        video and audio tokens over `context_degree` ranks ("ulysses": exact; "ring"), the passes of a guided step
        over `guidance_degree` ranks, the video VAE's tiles over all ranks, and with `shard_weights` the
        transformer's blocks and Gemma's layers sharded over all ranks (FSDP2) so that the model fits on cards too
        small for it. `config` takes diffusers' `ContextParallelConfig` instead of context_degree / mode. Every rank
        returns the whole output. Returns the handle; `.remove()` switches it off (sharding stays). docs/parallel.md.
        """
        from ..parallel import enable_parallelism

        text_encoder = getattr(self, "text_encoder", None) if shard_weights else None
        self._parallelism = enable_parallelism(
            self.transformer, getattr(self, "vae", None), text_encoder=text_encoder, context_degree=context_degree,
            guidance_degree=guidance_degree, mode=mode, config=config, decode=decode, shard_weights=shard_weights,
        )  # fmt: skip
        return self._parallelism

    # Convenience wrappers over the stage functions, for callers that hold a pipeline

    @torch.no_grad()
    def encode_prompt(
        self, prompt: str | list[str], device: torch.device | None = None, reference: str = DEFAULT_REFERENCE
    ) -> PromptEmbeddings:
        """Prompts -> `PromptEmbeddings` (video and audio contexts), to pass later as `prompt_embeds=` /
        `negative_prompt_embeds=` so Gemma can be freed (`pipe.text_encoder = None`) or skipped. `reference`: the
        tokenisation rule of the reference version the call will use ("1.2": one BOS, stripped; "1.0")."""
        device = self._execution_device if device is None else device
        return encode_prompts(
            self.text_encoder, self.tokenizer, self.connectors, prompt, device=device, dtype=self.transformer.dtype,
            reference=reference,
        )  # fmt: skip

    @torch.no_grad()
    def encode_image(
        self, image: ImageInput, height: int, width: int, device: torch.device, crf: int = DEFAULT_IMAGE_CRF
    ) -> Tensor:
        """An image -> normalised video latent (1, 128, 1, H/32, W/32), as the transformer sees latents."""
        return encode_image(self.vae, image, height, width, device, crf)

    def enable_fast(
        self, attention_backend: str = "auto", compile: bool = False, fp8: str | None = None
    ) -> FastSettings:
        """The fastest attention kernel for the transformer's device ("auto", or a backend name: "cudnn", "flash",
        "flash_attn_2", "flash_attn_4", "sageattention", ...), opt-in compiled blocks (the first call at each shape
        compiles) and opt-in FP8 block linears ("rowwise" / "tensorwise", CUDA 8.9+). Call after moving the pipeline
        to its device. On CPU it changes nothing. Returns what it chose and why (pipelines/speed.py)."""
        return enable_fast(self, attention_backend=attention_backend, compile=compile, fp8=fp8)


class LTX2AVTwoStagePipelineBase(LTX2AVPipelineBase):
    """`LTX2AVPipelineBase` plus `latent_upsampler` (`LTX2LatentUpsamplerModel`, the spatial x2 one), for the
    pipelines with a refinement stage. Build from a one-stage pipeline with
    `Pipeline(**pipe.components, latent_upsampler=upsampler)`."""

    model_cpu_offload_seq = (
        "text_encoder->connectors->duration_head->transformer->latent_upsampler->vae->diffusion_decoder->audio_vae->"
        "vocoder"
    )
    _optional_components = [*LTX2AVPipelineBase._optional_components, "latent_upsampler"]  # None: refused at call

    def __init__(
        self,
        scheduler,
        vae,
        audio_vae,
        text_encoder,
        tokenizer,
        connectors,
        transformer,
        vocoder,
        latent_upsampler=None,
        processor=None,
        diffusion_decoder=None,
        duration_head=None,
    ):
        super().__init__(
            scheduler, vae, audio_vae, text_encoder, tokenizer, connectors, transformer, vocoder, processor,
            diffusion_decoder, duration_head,
        )  # fmt: skip
        self.register_modules(latent_upsampler=latent_upsampler)
