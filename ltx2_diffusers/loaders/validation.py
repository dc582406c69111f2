"""Checks of a component's config against its tensors' header (names, shapes, dtypes), run before any model is built.

A checkpoint's metadata sets how many blocks a model has. Building a model whose metadata claims 2,000 transformer
blocks, even on the meta device, costs minutes and gigabytes before the tensor names reveal the lie, so the block
counts are compared with the numbered names in the header first (`check_block_counts`), after every config value has
been checked to be a JSON value of the kind its parameter takes (`check_config_values`). These run in the forward
conversion (original names, config from the file's metadata), in the reverse one (diffusers names, config.json) and in
`from_single_file`. The regexes accept both spellings: the original prefix is optional and both block names are listed.
"""

import functools
import inspect
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from . import metadata as md
from .safetensors_io import FLOAT_DTYPES, FP8_DTYPES, TensorEntry, read_json

MAX_CONFIG_NUMBER = 2**24  # far above any real width, count, sample rate or position (the largest are 48000, 4096)
MAX_CONFIG_LIST = 4096
# int parameters that released metadata writes as floats (av_ca_timestep_scale_multiplier: 1000.0)
_FLOAT_TOLERANT_INTS = ("timestep_scale_multiplier", "cross_attn_timestep_scale_multiplier")
# Parameters that size a tensor computed in __init__ (not a checkpoint tensor, so no shape check bounds it): a sample
# rate ratio of 2^24 would build a 235M-tap resampler filter. Ranges far wider than any real model's.
BOUNDED_VALUES: dict[str, tuple[int, int]] = {
    "input_sampling_rate": (1000, 384_000),
    "output_sampling_rate": (1000, 384_000),
    "audio_sampling_rate": (1000, 384_000),
    "sample_rate": (1000, 384_000),
    "antialias_ratio": (1, 16),
    "bwe_antialias_ratio": (1, 16),
    "antialias_kernel_size": (1, 1024),
    "bwe_antialias_kernel_size": (1, 1024),
}

# class -> ((what the config says, its value from the config, regex whose distinct matches are those blocks), ...)
_Rule = tuple[str, Callable[[Mapping[str, Any]], int], str]


def _flags_set(flags: bool | list[bool], count: int) -> int:
    """How many of `count` blocks a per-block flag (or one flag for all) switches on."""
    return count * flags if isinstance(flags, bool) else sum(bool(f) for f in flags[:count])


def _vocoder_rules(prefix: str, key: str = "") -> tuple[_Rule, ...]:
    blocks = rf"{prefix}(?:resblocks|resnets)\.\d+\."
    return (
        (
            f"len({key}upsample_factors)",
            lambda c: len(c[f"{key}upsample_factors"]),
            rf"{prefix}(?:ups|upsamplers)\.\d+\.",
        ),
        (
            f"len({key}upsample_factors) * len({key}resnet_kernel_sizes)",
            lambda c: len(c[f"{key}upsample_factors"]) * len(c[f"{key}resnet_kernel_sizes"]),
            blocks,
        ),
        (
            f"len({key}upsample_factors) * (total length of {key}resnet_dilations)",
            lambda c: len(c[f"{key}upsample_factors"]) * sum(len(d) for d in c[f"{key}resnet_dilations"]),
            rf"{blocks}convs1\.\d+\.",
        ),
    )


BLOCK_COUNT_RULES: dict[str, tuple[_Rule, ...]] = {
    "LTX2VideoTransformer3DModel": (
        ("num_layers", lambda c: c["num_layers"], r"^(?:model\.diffusion_model\.)?transformer_blocks\.\d+\."),
    ),
    "LTX2TextConnectors": tuple(
        (
            f"{m}_connector_num_layers",
            lambda c, m=m: c[f"{m}_connector_num_layers"],
            rf"^(?:model\.diffusion_model\.{m}_embeddings_connector\.transformer_1d_blocks|{m}_connector\.transformer_blocks)"
            r"\.\d+\.",
        )
        for m in ("video", "audio")
    ),
    "AutoencoderKLLTX2Video": (
        (
            "sum(layers_per_block)",
            lambda c: sum(c["layers_per_block"]),
            r"^(?:vae\.)?encoder\.(?:down_blocks\.\d+\.(?:res_blocks|resnets)|mid_block\.resnets)\.\d+\.",
        ),
        (
            "sum(decoder_layers_per_block)",
            lambda c: sum(c["decoder_layers_per_block"]),
            r"^(?:vae\.)?decoder\.(?:up_blocks\.\d+\.(?:res_blocks|resnets)|mid_block\.resnets)\.\d+\.",
        ),
        (
            "the resampling blocks among block_out_channels (spatio_temporal_scaling)",
            lambda c: _flags_set(c["spatio_temporal_scaling"], len(c["block_out_channels"])),
            r"^(?:vae\.)?encoder\.down_blocks\.\d+\.(?:conv\.|downsamplers\.)",
        ),
        (
            "the resampling blocks among decoder_block_out_channels (decoder_spatio_temporal_scaling)",
            lambda c: _flags_set(c["decoder_spatio_temporal_scaling"], len(c["decoder_block_out_channels"])),
            r"^(?:vae\.)?decoder\.up_blocks\.\d+\.(?:conv\.|upsamplers\.)",
        ),
    ),
    "AutoencoderKLLTX2Audio": (
        (
            "len(ch_mult) * num_res_blocks",
            lambda c: len(c["ch_mult"]) * c["num_res_blocks"],
            r"^(?:audio_vae\.)?encoder\.down\.\d+\.block\.\d+\.",
        ),
        (
            "len(ch_mult) * (num_res_blocks + 1)",
            lambda c: len(c["ch_mult"]) * (c["num_res_blocks"] + 1),
            r"^(?:audio_vae\.)?decoder\.up\.\d+\.block\.\d+\.",
        ),
    ),
    "LTX2Vocoder": _vocoder_rules(r"^(?:vocoder\.)?"),
    "LTX2VocoderWithBWE": _vocoder_rules(r"^(?:vocoder\.)?vocoder\.")
    + _vocoder_rules(r"^(?:vocoder\.)?bwe_generator\.", "bwe_"),
    "LTX2LatentUpsamplerModel": (
        ("num_blocks_per_stage", lambda c: c["num_blocks_per_stage"], r"^res_blocks\.\d+\."),
        ("num_blocks_per_stage", lambda c: c["num_blocks_per_stage"], r"^post_upsample_res_blocks\.\d+\."),
    ),
}


def _value_problem(value: Any, default: Any, name: str, depth: int = 0) -> str | None:
    """Why `value` cannot be the parameter whose default is `default`; None when it can."""
    if depth > 4:
        return "is nested too deeply"
    if isinstance(value, bool):
        ok = isinstance(default, bool) or default is None or isinstance(default, tuple | list)
        return None if ok else f"is a bool, expected {type(default).__name__}"
    if isinstance(value, int | float):
        if isinstance(default, bool | str):
            return f"is a number, expected {type(default).__name__}"
        if isinstance(value, float) and not math.isfinite(value):
            return "is not a finite number"
        if abs(value) > MAX_CONFIG_NUMBER:
            return f"is beyond {MAX_CONFIG_NUMBER}, more than any LTX-2 model uses"
        if isinstance(default, int) and name not in _FLOAT_TOLERANT_INTS and not isinstance(value, int):
            return "is not an integer"
        if isinstance(default, int) and value < 0:
            return "is negative"
        return None
    if isinstance(value, str):
        return None if default is None or isinstance(default, str | tuple | list) else "is a string"
    if value is None:
        return None if default is None or isinstance(default, str) else f"is null, expected {type(default).__name__}"
    if isinstance(value, list | tuple):
        if not (default is None or isinstance(default, tuple | list)):
            return f"is a list, expected {type(default).__name__}"
        if len(value) > MAX_CONFIG_LIST:
            return f"has {len(value)} entries, more than any LTX-2 model uses"
        inner = default[0] if isinstance(default, tuple | list) and default else None
        for item in value:
            problem = _value_problem(item, inner, name, depth + 1)
            if problem is not None:
                return f"has an entry {str(item)[:40]} that {problem}"
        return None
    return f"is a {type(value).__name__}"


def check_config_values(cls: type, config: Mapping[str, Any], source: str) -> None:
    """Every config value is a JSON value of the kind the class's parameter takes (by its default: a bool, a number
    within bounds, a string, a short list), so that nothing odd reaches a constructor. Unknown keys are left to the
    caller (from_config ignores them)."""
    parameters = inspect.signature(cls.__init__).parameters
    for name, value in config.items():
        if name not in parameters or parameters[name].default is inspect.Parameter.empty:
            continue
        problem = _value_problem(value, parameters[name].default, name)
        low, high = BOUNDED_VALUES.get(name, (None, None))
        if problem is None and low is not None and not low <= value <= high:
            problem = f"is outside [{low}, {high}], the range this converter accepts for it"
        if problem is not None:
            raise ValueError(
                f"{source}: the {cls.__name__} config value {name}={repr(value)[:80]} {problem}; the file or folder is "
                "malformed or not an LTX-2 export."
            )


def check_block_counts(class_name: str, config: Mapping[str, Any], names: Iterable[str], source: str) -> None:
    """The block counts the config implies equal the numbered blocks among `names` (a header's tensor names, original
    or diffusers spelling). Cheap: nothing is built, so a config claiming 100,000 blocks is refused at once."""
    names = list(names)
    for what, count_of, pattern in BLOCK_COUNT_RULES.get(class_name, ()):
        try:
            expected = count_of(config)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{source}: the {class_name} config cannot give {what} ({error!r}).") from None
        regex = re.compile(pattern)
        found = len({m.group(0) for m in map(regex.match, names) if m is not None})
        if expected != found:
            raise ValueError(
                f"{source}: the {class_name} config says {what} = {expected}, but the weights hold {found} such blocks "
                f"(tensor names matching {pattern}). The config does not describe these weights (metadata of another "
                "model, an edited config, or a partial export); refused before building anything."
            )


def check_floating(tensors: Mapping[str, TensorEntry], class_name: str, source: str) -> None:
    """Every tensor a model class loads is floating point (fp8 included); an integer or bool tensor would be cast to a
    float silently by load_state_dict."""
    wrong = [(name, e.dtype) for name, e in tensors.items() if e.dtype not in FLOAT_DTYPES + FP8_DTYPES]
    if wrong:
        name, dtype = wrong[0]
        raise ValueError(
            f"{source}: {len(wrong)} {class_name} tensors are not floating point, e.g. {name!r} is {dtype}. The model's "
            "weights are floats (or float8); an integer-quantised or bool tensor here would load as meaningless "
            "floats. Convert a float checkpoint."
        )


@contextmanager
def malformed_config_errors(source: str, where: str) -> Iterator[None]:
    """Turn the TypeError / AttributeError / KeyError / IndexError a config of the wrong shape raises in the
    metadata -> config translation (e.g. a section that is a list) into a ValueError naming the file, and put the
    file's name in front of the translation's own ValueErrors."""
    try:
        yield
    except ValueError as error:  # the translation's own messages say what is wrong; add which file
        if source in str(error):
            raise
        raise ValueError(f"{source}: {error}") from None
    except (TypeError, AttributeError, KeyError, IndexError) as error:
        raise ValueError(
            f"{source}: {where} has a value of the wrong type or shape ({type(error).__name__}: {error}); the file is "
            "malformed or not an LTX-2 export."
        ) from None


def names_the_file_on_malformed_config(plan: Callable) -> Callable:
    """For `plan(path, ...)` functions: a metadata value of the wrong type or shape (e.g. a section that is a list,
    a block entry that is a number) raises ValueError naming the file instead of a bare TypeError / AttributeError."""

    @functools.wraps(plan)
    def wrapper(path: str | os.PathLike, *args: Any, **kwargs: Any) -> Any:
        with malformed_config_errors(os.fspath(path), "its `config` metadata"):
            return plan(path, *args, **kwargs)

    return wrapper


# ---------------------------------------------------------------------------------------------------------------------
# Folders (the reverse conversion)


def check_folder_tensors(
    expected: Mapping[str, tuple[int, ...]], entries: Mapping[str, TensorEntry], class_name: str, folder: str
) -> None:
    """A model folder's tensors are exactly `expected` ({name: shape} of `class_name` built from its config.json):
    none missing, none extra, each of its shape and floating point. An export that passes this loads back strictly."""
    missing, extra = sorted(expected.keys() - entries.keys()), sorted(entries.keys() - expected.keys())
    if missing:
        raise ValueError(
            f"{folder}: the {class_name} its config.json describes has {len(missing)} tensors the folder lacks, e.g. "
            f"{missing[:5]}; an export would be incomplete. Re-save the model, or fix config.json."
        )
    if extra:
        raise ValueError(
            f"{folder}: {len(extra)} tensors are not parameters of the {class_name} its config.json describes, e.g. "
            f"{extra[:5]}. The config and the weights describe different models."
        )
    wrong = [(n, e.shape, tuple(expected[n])) for n, e in sorted(entries.items()) if e.shape != tuple(expected[n])]
    if wrong:
        name, shape, want = wrong[0]
        raise ValueError(
            f"{folder}: {len(wrong)} tensors do not have the shapes its config.json implies, e.g. {name!r} is "
            f"{list(shape)}, expected {list(want)}. The config and the weights describe different models."
        )
    check_floating(entries, class_name, folder)


def stored_original_metadata(root: Path) -> dict:
    """The source files' metadata the forward conversion kept (`ORIGINAL_METADATA_FILENAME`), checked; {} if absent."""
    path = root / md.ORIGINAL_METADATA_FILENAME
    if not os.path.lexists(path):
        return {}
    stored = read_json(path, "the source files' metadata this converter keeps")
    for key in ("checkpoint", "upsampler"):
        value = stored.get(key)
        if value is not None and not (isinstance(value, dict) and all(isinstance(v, str) for v in value.values())):
            raise ValueError(
                f"{path}: `{key}` is not a safetensors metadata map of strings; the file was edited or damaged. Delete "
                "it to have the metadata rebuilt from the configs."
            )
    return stored


def check_model_index(root: Path, components: Iterable[str]) -> None:
    """Every model component model_index.json lists has its folder (a missing one is named, not blamed on the root)."""
    path = root / "model_index.json"
    index = read_json(path, "a diffusers pipeline index")
    for component in components:
        entry = index.get(component)
        if entry is None or entry == [None, None]:
            continue
        if not (isinstance(entry, list) and len(entry) == 2 and all(isinstance(x, str) for x in entry)):
            raise ValueError(f"{path}: `{component}` is {str(entry)[:80]}; expected [library, class name].")
        if not (root / component / "config.json").is_file():
            raise ValueError(
                f"{path} lists the {component} ({entry[1]}), but {root / component / 'config.json'} is missing: the "
                f"folder is incomplete. Copy its {component}/ folder too, or, to export the other components alone, "
                f'set "{component}": [null, null] in model_index.json.'
            )
