"""ltx2_diffusers: Diffusers-native LTX-2 (19B) and LTX-2.3 (22B) audio-video generation.

Public names are imported on first use (the table below), so a component's import cost is paid only by code that
touches it; importing the package imports neither torch nor diffusers. `DiffusionPipeline.from_pretrained` resolves a
model_index.json's `_class_name` on the `diffusers` module, so our pipelines are entered in its class table as soon as
diffusers is imported, before or after this package (see the end).
"""

import importlib.abc
import importlib.util
import sys
from importlib import import_module
from typing import TYPE_CHECKING

__version__ = "0.1.0.dev0"

# public name -> module (relative to this package) that defines it
_PUBLIC: dict[str, str] = {
    # models
    "LTX2VideoTransformer3DModel": ".models.transformer_ltx2",
    "AutoencoderKLLTX2Video": ".models.autoencoder_kl_ltx2",
    "AutoencoderKLLTX2Audio": ".models.autoencoder_kl_ltx2_audio",
    "LTX2Vocoder": ".models.vocoder",
    "LTX2VocoderWithBWE": ".models.vocoder",
    "LTX2LatentUpsamplerModel": ".models.latent_upsampler",
    "LTX2VideoDiffusionDecoderModel": ".models.diffusion_video_decoder",
    "LTX2DurationHead": ".models.duration_head",
    "LTX2TextConnectors": ".models.connectors",
    # schedulers
    "LTX2Scheduler": ".schedulers.scheduling_ltx2",
    # pipelines
    "LTX2AVPipeline": ".pipelines.pipeline_ltx2_av",
    "LTX2AVTwoStagePipeline": ".pipelines.pipeline_ltx2_av_two_stage",
    "LTX2AVTwoStageHQPipeline": ".pipelines.pipeline_ltx2_av_two_stage_hq",
    "LTX2AVRetakePipeline": ".pipelines.pipeline_ltx2_av_retake",
    "LTX2AVExtendPipeline": ".pipelines.pipeline_ltx2_av_extend",
    "LTX2AVAudioToVideoPipeline": ".pipelines.pipeline_ltx2_av_audio_to_video",
    "LTX2AVICLoRAPipeline": ".pipelines.pipeline_ltx2_av_ic_lora",
    "LTX2AVDubItPipeline": ".pipelines.pipeline_ltx2_av_dubit",
    "LTX2AVHDRICLoraPipeline": ".pipelines.pipeline_ltx2_av_hdr_ic_lora",
    "LTX2AVDFRPipeline": ".pipelines.pipeline_ltx2_av_dfr",
    "LTX2AVKeyframeInterpolationPipeline": ".pipelines.pipeline_ltx2_av_keyframes",
    "LTX2TextToAudioPipeline": ".pipelines.pipeline_ltx2_text_to_audio",
    "LTX2VideoToAudioPipeline": ".pipelines.pipeline_ltx2_video_to_audio",
    "LTX2PipelineOutput": ".pipelines.pipeline_output",
    "GuidanceScales": ".pipelines.guidance",
    "PromptEmbeddings": ".pipelines.text_encoding",
    # diffusers' LTX-2 names, for code written for diffusers' pipelines (docs/diffusers_compat.md)
    "LTX2Pipeline": ".diffusers_compat",
    "LTX2ImageToVideoPipeline": ".diffusers_compat",
    "LTX2ConditionPipeline": ".diffusers_compat",
    "LTX2LatentUpsamplePipeline": ".diffusers_compat",
    "LTX2VideoCondition": ".diffusers_compat",
    "DISTILLED_SIGMA_VALUES": ".diffusers_compat",
    "STAGE_2_DISTILLED_SIGMA_VALUES": ".diffusers_compat",
    "encode_video": ".diffusers_compat",
    # media
    "export_to_video_with_audio": ".utils.media",
    # diffusers' base classes, re-exported: for a component recorded as ["ltx2_diffusers", class] in model_index.json,
    # DiffusionPipeline.from_pretrained picks the load/save methods by looking these names up on the library module.
    "ModelMixin": "diffusers",
    "SchedulerMixin": "diffusers",
}

__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'ltx2_diffusers' has no attribute {name!r}")
    value = getattr(import_module(_PUBLIC[name], __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


# DiffusionPipeline.from_pretrained looks model_index.json's `_class_name` up as an attribute of the `diffusers`
# module, whose lazy module imports a name's submodule from its class -> submodule table on first access. Entering our
# pipelines there, under an alias of this package, keeps them lazy: `DiffusionPipeline.from_pretrained(folder saved by
# LTX2AVPipeline)` returns LTX2AVPipeline whether diffusers or ltx2_diffusers was imported first.
_PIPELINES = (
    "LTX2AVPipeline",
    "LTX2AVTwoStagePipeline",
    "LTX2AVTwoStageHQPipeline",
    "LTX2AVRetakePipeline",
    "LTX2AVExtendPipeline",
    "LTX2AVAudioToVideoPipeline",
    "LTX2AVICLoRAPipeline",
    "LTX2AVDubItPipeline",
    "LTX2AVHDRICLoraPipeline",
    "LTX2AVDFRPipeline",
    "LTX2AVKeyframeInterpolationPipeline",
    "LTX2TextToAudioPipeline",
    "LTX2VideoToAudioPipeline",
)


def _register_with(diffusers_module) -> None:
    sys.modules.setdefault("diffusers._ltx2_diffusers", sys.modules[__name__])
    for name in _PIPELINES:
        if hasattr(diffusers_module, "_class_to_module"):
            diffusers_module._class_to_module.setdefault(name, "_ltx2_diffusers")
        else:  # a diffusers whose top-level module is not lazy: the class itself (imports the pipeline now)
            setattr(diffusers_module, name, __getattr__(name))


class _RegisterWhenDiffusersLoads(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports diffusers' top-level module as usual, then registers our pipelines in it. Installed only while
    diffusers is not imported yet, and removed at its first import."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "diffusers":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("diffusers")
        if spec is None or spec.loader is None:
            return spec
        self._loader, spec.loader = spec.loader, self
        return spec

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        self._loader.exec_module(module)
        _register_with(sys.modules["diffusers"])  # diffusers swaps in its lazy module while executing


if "diffusers" in sys.modules:
    _register_with(sys.modules["diffusers"])
else:
    sys.meta_path.insert(0, _RegisterWhenDiffusersLoads())


if TYPE_CHECKING:  # static analysers see the real names
    from .models.autoencoder_kl_ltx2 import AutoencoderKLLTX2Video
    from .models.autoencoder_kl_ltx2_audio import AutoencoderKLLTX2Audio
    from .models.connectors import LTX2TextConnectors
    from .models.latent_upsampler import LTX2LatentUpsamplerModel
    from .models.transformer_ltx2 import LTX2VideoTransformer3DModel
    from .models.vocoder import LTX2Vocoder, LTX2VocoderWithBWE
    from .pipelines.guidance import GuidanceScales
    from .pipelines.pipeline_ltx2_av import LTX2AVPipeline
    from .pipelines.pipeline_output import LTX2PipelineOutput
    from .pipelines.text_encoding import PromptEmbeddings
    from .schedulers.scheduling_ltx2 import LTX2Scheduler
    from .utils.media import export_to_video_with_audio
