"""ltx2_diffusers: Diffusers-native LTX-2 (19B) and LTX-2.3 (22B) audio-video generation.

Public names are imported on first use, so `import ltx2_diffusers` stays cheap and a component's import cost is paid
only by code that touches it. `DiffusionPipeline.from_pretrained` resolves the classes a `model_index.json` names under
the library "ltx2_diffusers" through this table.
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
    "LTX2TextConnectors": ".models.connectors",
    # schedulers
    "LTX2Scheduler": ".schedulers.scheduling_ltx2",
    # pipelines
    "LTX2AVPipeline": ".pipelines.pipeline_ltx2_av",
    "LTX2PipelineOutput": ".pipelines.pipeline_output",
    "GuidanceScales": ".pipelines.guidance",
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


# DiffusionPipeline.from_pretrained resolves model_index.json's `_class_name` as an attribute of the `diffusers` module
# (its lazy module's class -> submodule table). Our pipelines are entered there under an alias of this package, so
# `DiffusionPipeline.from_pretrained(folder saved by LTX2AVPipeline)` returns LTX2AVPipeline. Done when diffusers is
# imported (now, or later through a one-shot import hook), so `import ltx2_diffusers` does not import diffusers itself.
_PIPELINES = ("LTX2AVPipeline",)


def _expose_pipelines_to(diffusers_module) -> None:
    sys.modules.setdefault("diffusers._ltx2_diffusers", sys.modules[__name__])
    class_to_module = getattr(diffusers_module, "_class_to_module", None)
    if class_to_module is None:  # a diffusers whose top-level module is not lazy: set the attribute directly
        for name in _PIPELINES:
            setattr(diffusers_module, name, __getattr__(name))
        return
    for name in _PIPELINES:
        class_to_module.setdefault(name, "_ltx2_diffusers")


class _ExposeWhenDiffusersImported(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname != "diffusers":
            return None
        sys.meta_path.remove(self)  # one shot: find the real spec without coming back here
        spec = importlib.util.find_spec("diffusers")
        if spec is None or spec.loader is None:
            return spec
        run_module = spec.loader.exec_module

        def exec_module(module):
            run_module(module)
            _expose_pipelines_to(sys.modules["diffusers"])  # diffusers swaps in its lazy module while executing

        spec.loader.exec_module = exec_module
        return spec


if "diffusers" in sys.modules:
    _expose_pipelines_to(sys.modules["diffusers"])
else:
    sys.meta_path.insert(0, _ExposeWhenDiffusersImported())


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
    from .schedulers.scheduling_ltx2 import LTX2Scheduler
    from .utils.media import export_to_video_with_audio
