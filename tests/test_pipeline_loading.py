"""save_pretrained / from_pretrained: our folders, diffusers' LTX2Pipeline folders, and DiffusionPipeline.from_pretrained."""

import json
import os

import pytest
import torch
from helpers.fresh_python import python

from ltx2_diffusers.pipelines.guidance import GuidanceScales
from ltx2_diffusers.pipelines.pipeline_ltx2_av import LTX2AVPipeline
from ltx2_diffusers.pipelines.tiny import build_tiny_pipeline
from ltx2_diffusers.schedulers.scheduling_ltx2 import LTX2Scheduler

OURS = {
    "transformer": "ltx2_diffusers.models.transformer_ltx2.LTX2VideoTransformer3DModel",
    "vae": "ltx2_diffusers.models.autoencoder_kl_ltx2.AutoencoderKLLTX2Video",
    "audio_vae": "ltx2_diffusers.models.autoencoder_kl_ltx2_audio.AutoencoderKLLTX2Audio",
    "connectors": "ltx2_diffusers.models.connectors.LTX2TextConnectors",
    "vocoder": "ltx2_diffusers.models.vocoder.LTX2Vocoder",
    "scheduler": "ltx2_diffusers.schedulers.scheduling_ltx2.LTX2Scheduler",
}
GUIDED = GuidanceScales(cfg=3.0, stg=1.0, modality=3.0, rescale=0.7, stg_blocks=(29,))


def generate(pipe):
    kwargs = {"num_frames": 9, "height": 64, "width": 64, "num_inference_steps": 1, "output_type": "latent"}
    out = pipe(
        "a cat", generator=torch.Generator().manual_seed(0), video_guidance=GUIDED, audio_guidance=GUIDED, **kwargs
    )
    return out.frames, out.audio


def class_paths(pipe) -> dict[str, str]:
    return {name: f"{type(c).__module__}.{type(c).__name__}" for name, c in pipe.components.items() if name in OURS}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    pipe = build_tiny_pipeline(seed=1)
    folder = tmp_path_factory.mktemp("tiny_ltx2")
    pipe.save_pretrained(folder)
    return pipe, folder, generate(pipe)


IMPORT_ORDERS = (
    "import ltx2_diffusers; from diffusers import DiffusionPipeline",
    "from diffusers import DiffusionPipeline; import ltx2_diffusers",
)


@pytest.fixture(scope="module")
def fresh_loads(saved):
    """`DiffusionPipeline.from_pretrained(folder)` after each import order, in fresh interpreters started as soon as
    the folder is saved (every test uses this fixture): they run beside the in-process tests, and the last test of the
    module reads them."""
    _, folder, _ = saved
    children = {}
    for imports in IMPORT_ORDERS:
        code = (
            f"{imports}\n"
            f"pipe = DiffusionPipeline.from_pretrained({str(folder)!r})\n"
            "print(type(pipe).__module__ + '.' + type(pipe).__name__)\n"
            "print(type(pipe.transformer).__module__, type(pipe.scheduler).__name__)\n"
        )
        children[imports] = python(code, env=os.environ | {"HF_HUB_OFFLINE": "1"})
    yield children
    for child in children.values():
        child.stop()


pytestmark = pytest.mark.usefixtures("fresh_loads")


def test_save_pretrained_records_our_library_and_round_trips(saved):
    pipe, folder, expected = saved
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "LTX2AVPipeline"
    for name in OURS:
        assert index[name][0] == "ltx2_diffusers", (name, index[name])
    assert index["text_encoder"] == ["transformers", "Gemma3ForConditionalGeneration"]

    loaded = LTX2AVPipeline.from_pretrained(folder)
    assert class_paths(loaded) == OURS
    for name in ("transformer", "vae", "audio_vae", "connectors", "vocoder"):
        ours, theirs = pipe.components[name].state_dict(), loaded.components[name].state_dict()
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours), name
    frames, audio = generate(loaded)
    torch.testing.assert_close(frames, expected[0], rtol=0, atol=0)
    torch.testing.assert_close(audio, expected[1], rtol=0, atol=0)


def test_a_diffusers_ltx2_pipeline_folder_loads_into_our_classes(saved, tmp_path):
    """A folder saved by diffusers' own LTX2Pipeline (diffusers' classes, FlowMatch scheduler) builds OUR pipeline."""
    import diffusers
    from diffusers.pipelines.ltx2 import LTX2TextConnectors, LTX2Vocoder

    pipe, folder, expected = saved
    theirs = diffusers.LTX2Pipeline(
        scheduler=diffusers.FlowMatchEulerDiscreteScheduler(),
        vae=diffusers.AutoencoderKLLTX2Video.from_pretrained(folder, subfolder="vae"),
        audio_vae=diffusers.AutoencoderKLLTX2Audio.from_pretrained(folder, subfolder="audio_vae"),
        text_encoder=pipe.text_encoder,
        tokenizer=pipe.tokenizer,
        connectors=LTX2TextConnectors.from_pretrained(folder, subfolder="connectors"),
        transformer=diffusers.LTX2VideoTransformer3DModel.from_pretrained(folder, subfolder="transformer"),
        vocoder=LTX2Vocoder.from_pretrained(folder, subfolder="vocoder"),
    )
    theirs.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["_class_name"] == "LTX2Pipeline" and index["transformer"][0] == "diffusers"

    loaded = LTX2AVPipeline.from_pretrained(tmp_path)
    assert class_paths(loaded) == OURS
    assert isinstance(loaded.scheduler, LTX2Scheduler)  # the reference's schedule, not diffusers' token-count shift
    frames, audio = generate(loaded)
    torch.testing.assert_close(frames, expected[0], rtol=0, atol=0)
    torch.testing.assert_close(audio, expected[1], rtol=0, atol=0)


def test_scheduler_kind_for_diffusers_layout_folders(tmp_path):
    """diffusers' scheduler config cannot tell dev from distilled, so the repo id / folder name decides unless `kind`
    is given; a folder's own LTX2Scheduler wins over the name, an explicit kind over both."""
    from ltx2_diffusers.pipelines.pipeline_base import resolve_scheduler
    from ltx2_diffusers.schedulers.scheduling_ltx2 import DISTILLED_SIGMAS

    diffusers_index = {"scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"]}
    dev = resolve_scheduler(str(tmp_path), diffusers_index, "Lightricks/LTX-2", None)
    distilled = resolve_scheduler(str(tmp_path), diffusers_index, "diffusers/LTX-2.3-Distilled-Diffusers", None)
    assert dev.config.fixed_sigmas is None
    assert distilled.config.fixed_sigmas == pytest.approx(list(DISTILLED_SIGMAS))
    forced = resolve_scheduler(str(tmp_path), diffusers_index, "diffusers/LTX-2.3-Distilled-Diffusers", "dev")
    assert forced.config.fixed_sigmas is None

    LTX2Scheduler.distilled().save_pretrained(tmp_path / "scheduler")
    ours_index = {"scheduler": ["ltx2_diffusers", "LTX2Scheduler"]}
    saved = resolve_scheduler(str(tmp_path), ours_index, str(tmp_path / "my-dev-copy"), None)
    assert saved.config.fixed_sigmas == pytest.approx(list(DISTILLED_SIGMAS))
    assert resolve_scheduler(str(tmp_path), ours_index, str(tmp_path), "dev").config.fixed_sigmas is None
    with pytest.raises(ValueError, match="kind='fast'"):
        resolve_scheduler(str(tmp_path), diffusers_index, "x", "fast")


@pytest.mark.parametrize(("given", "expected"), [("bf16", torch.bfloat16), ("torch.float16", torch.float16),
                                                 ("float32", torch.float32), (torch.bfloat16, torch.bfloat16)])
def test_torch_dtype_names_load_in_that_dtype(saved, given, expected):
    pipe = LTX2AVPipeline.from_pretrained(saved[1], torch_dtype=given)
    assert pipe.transformer.dtype == expected and pipe.vae.dtype == expected


def test_unknown_torch_dtype_is_an_error_before_loading(saved):
    with pytest.raises(ValueError, match=r"torch_dtype='bfloat' is not a dtype: pass torch.bfloat16"):
        LTX2AVPipeline.from_pretrained(saved[1], torch_dtype="bfloat")


def test_attention_switches_that_do_not_apply_say_so(saved):
    pipe = LTX2AVPipeline.from_pretrained(saved[1])
    with pytest.warns(UserWarning, match="enable_xformers_memory_efficient_attention\\(\\) does nothing.*set_attention_backend"):
        pipe.enable_xformers_memory_efficient_attention()
    with pytest.warns(UserWarning, match="enable_attention_slicing\\(\\) does nothing"):
        pipe.enable_attention_slicing()


@pytest.mark.parametrize("imports", IMPORT_ORDERS)
def test_diffusion_pipeline_from_pretrained_returns_ours_after_import(fresh_loads, imports):
    lines = fresh_loads[imports].stdout().splitlines()
    assert lines[-2] == "ltx2_diffusers.pipelines.pipeline_ltx2_av.LTX2AVPipeline"
    assert lines[-1] == "ltx2_diffusers.models.transformer_ltx2 LTX2Scheduler"
