"""The converter and the single-file loaders with this package's classes: the entry points to call.

`ltx2_diffusers.loaders` never imports the model classes (models import the loaders' key tables, not the other way
round; tests/test_imports.py checks it), so its functions take the classes as an argument. This module, above both,
passes ours. Each function is the loaders' one with `classes=MODEL_CLASSES` bound; see `loaders/single_file.py`.
"""

from functools import partial

from .loaders import single_file, split_files
from .models.autoencoder_kl_ltx2 import AutoencoderKLLTX2Video
from .models.autoencoder_kl_ltx2_audio import AutoencoderKLLTX2Audio
from .models.connectors import LTX2TextConnectors
from .models.latent_upsampler import LTX2LatentUpsamplerModel
from .models.transformer_ltx2 import LTX2VideoTransformer3DModel
from .models.vocoder import LTX2Vocoder, LTX2VocoderWithBWE
from .schedulers.scheduling_ltx2 import LTX2Scheduler

MODEL_CLASSES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        LTX2VideoTransformer3DModel,
        LTX2TextConnectors,
        AutoencoderKLLTX2Video,
        AutoencoderKLLTX2Audio,
        LTX2Vocoder,
        LTX2VocoderWithBWE,
        LTX2LatentUpsamplerModel,
        LTX2Scheduler,
    )
}

convert_original_to_diffusers = partial(single_file.convert_original_to_diffusers, classes=MODEL_CLASSES)
convert_diffusers_to_original = partial(single_file.convert_diffusers_to_original, classes=MODEL_CLASSES)
# pass pipeline_class (the pipelines import this module, so it cannot name them)
pipeline_from_single_file = partial(single_file.pipeline_from_single_file, classes=MODEL_CLASSES)
convert_diffusers_to_split_files = partial(split_files.convert_diffusers_to_split_files, classes=MODEL_CLASSES)
save_pipeline_as_split_files = partial(split_files.save_pipeline_as_split_files, classes=MODEL_CLASSES)
