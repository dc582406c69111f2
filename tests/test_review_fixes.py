"""Defects found in the review of the DFR / temporal-upsampling / LTX-2.5 session (one test per fix)."""

from types import SimpleNamespace

import pytest
import torch

from ltx2_diffusers.loaders import split_files
from ltx2_diffusers.memory.placement import stream_for_training


class _Recorder:
    def __init__(self, calls: list):
        self.calls = calls

    def save_pretrained(self, folder):
        self.calls.append(folder)


def test_split_files_writer_refuses_an_existing_output_before_saving_the_pipeline(tmp_path):
    output = tmp_path / "split"
    output.mkdir()
    (output / "mine.txt").write_text("keep")
    calls = []
    transformer = _Recorder(calls)
    transformer.config = {"ff_bias": False}  # LTX-2.5
    pipe = SimpleNamespace(transformer=transformer, connectors=_Recorder(calls))
    with pytest.raises(ValueError, match="already exists; pass overwrite=True"):
        split_files.save_pipeline_as_split_files(pipe, output, classes={})
    assert calls == []  # nothing saved: the refusal comes before the expensive copy
    assert sorted(p.name for p in tmp_path.iterdir()) == ["split"]


def test_split_files_writer_refuses_a_pipeline_without_a_transformer_before_saving(tmp_path):
    calls = []
    pipe = SimpleNamespace(transformer=None, connectors=_Recorder(calls))
    with pytest.raises(ValueError, match="the pipeline has no transformer: the split transformer file"):
        split_files.save_pipeline_as_split_files(pipe, tmp_path / "split", classes={})
    assert calls == []


class _Blocks(torch.nn.Module):
    """Three blocks (frozen weight, trainable bias); `fail` raises in the backward right after block 0's begins."""

    def __init__(self):
        super().__init__()
        self.transformer_blocks = torch.nn.ModuleList(torch.nn.Linear(4, 4) for _ in range(3))
        for block in self.transformer_blocks:
            block.weight.requires_grad_(False)
        self.fail = False

    def forward(self, x):
        for index, block in enumerate(self.transformer_blocks):
            x = block(x)
            if index == 0 and self.fail:
                x.register_hook(self._raise)
        return x.square().sum()

    @staticmethod
    def _raise(gradient):
        raise RuntimeError("a backward that fails midway")


def _points_at_host(pack) -> bool:
    return all(t.data_ptr() == v.data_ptr() for t, v in zip(pack.tensors, pack.host_views))


def test_training_streamer_recovers_after_a_backward_that_raised():
    torch.manual_seed(0)
    model = _Blocks()
    streamer = stream_for_training(model, list(model.transformer_blocks), "cpu")
    x = torch.randn(2, 4)
    model.fail = True
    with pytest.raises(RuntimeError, match="fails midway"):
        model(x).backward()
    model.fail = False
    model(x).backward()  # a normal step after the failed one: the end of its backward hands every block back
    assert streamer.in_backward == set()
    assert all(_points_at_host(pack) for pack in streamer.packs)
    streamer.unpack(torch.device("cpu"))


def test_model_level_fuse_checks_adapter_names_given_by_position():
    """fuse_lora(lora_scale, safe_fusing, adapter_names): the names given by position are the ones checked, not the
    active adapters (which would let peft merge the plain layer, then fail on the FP8 one: half fused)."""
    from helpers.lora import tiny_models
    from peft import LoraConfig

    from ltx2_diffusers.models.fp8 import enable_fp8

    transformer, _ = tiny_models("2.0", num_layers=2)
    enable_fp8(transformer)
    plain, fp8_layer = "transformer_blocks.0.audio_attn1.to_v", "transformer_blocks.1.attn1.to_q"
    transformer.add_adapter(LoraConfig(r=2, target_modules=[plain, fp8_layer], init_lora_weights=False), "over_fp8")
    transformer.add_adapter(LoraConfig(r=2, target_modules=[plain], init_lora_weights=False), "plain_only")
    transformer.set_adapter("plain_only")
    plain_weight = transformer.get_submodule(plain).base_layer.weight.clone()
    with pytest.raises(ValueError, match=r"\['over_fp8'\] over an FP8 layer: merging a LoRA into an FP8 weight"):
        transformer.fuse_lora(1.0, False, ["over_fp8"])
    assert torch.equal(transformer.get_submodule(plain).base_layer.weight, plain_weight)  # nothing merged


@pytest.mark.parametrize(
    "flag", [["--upsampler", "up.safetensors"], ["--text-encoder", "gemma"], ["--upcast-fp8"], ["--allow-unknown"],
             ["--max-shard-size", "2"], ["--link-text-encoder"]],
)  # fmt: skip
def test_convert_script_refuses_forward_only_flags_with_split(flag, tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "scripts" / "convert_checkpoint.py"
    spec = importlib.util.spec_from_file_location("convert_checkpoint", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit) as stop:
        module.parse_args(["--reverse", "--split", str(tmp_path / "folder"), str(tmp_path / "out"), *flag])
    assert stop.value.code == 2
    assert f"{flag[0]} only applies to the forward conversion; --reverse --split ignores it" in capsys.readouterr().err


def test_split_files_writer_checks_every_file_dtype_before_writing_any(tmp_path, monkeypatch):
    """A float32 vocoder beside a bf16 transformer: refused before the transformer file (the largest) is written."""
    import json

    from ltx2_diffusers import LTX2VideoTransformer3DModel
    from ltx2_diffusers.conversion import MODEL_CLASSES
    from ltx2_diffusers.pipelines.tiny import build_tiny_pipeline, tiny_transformer_config

    pipe = build_tiny_pipeline(seed=3, model_version="2.5")
    pipe.register_modules(transformer=LTX2VideoTransformer3DModel(**{**tiny_transformer_config("2.5"), "num_layers": 1}))
    pipe = pipe.to(torch.bfloat16)
    pipe.vocoder.to(torch.float32)
    folder = tmp_path / "folder"
    for name in ("transformer", "connectors", "scheduler", "audio_vae", "vocoder"):
        getattr(pipe, name).save_pretrained(folder / name)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "LTX2AVPipeline"}))
    written = []
    monkeypatch.setattr(split_files, "write_safetensors", lambda path, *args: written.append(path))
    with pytest.raises(ValueError, match=r"The audio file would hold floating tensors of \[.*\] dtype"):
        split_files.convert_diffusers_to_split_files(folder, tmp_path / "split", classes={**MODEL_CLASSES})
    assert written == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]


def test_dfr_refuses_a_temporal_upsampler_added_after_the_memory_budget(monkeypatch):
    """As the two-stage pipeline: the budget's plan does not place it (on a GPU it would stay on the host and the first
    temporal round fail after stages 1 and 2); refused before any model runs."""
    from ltx2_diffusers import LTX2AVDFRPipeline, LTX2LatentUpsamplerModel
    from ltx2_diffusers.pipelines import pipeline_ltx2_av_dfr
    from ltx2_diffusers.pipelines.tiny import TINY_LATENT_UPSAMPLER_CONFIG, build_tiny_two_stage_pipeline

    pipe = LTX2AVDFRPipeline(**build_tiny_two_stage_pipeline(seed=0, model_version="2.5", duration_head=False).components)
    pipe.enable_memory_budget("2GB", device="cpu", height=128, width=128, num_frames=17, frame_rate=24.0)
    temporal = {**TINY_LATENT_UPSAMPLER_CONFIG, "spatial_upsample": False, "temporal_upsample": True}
    pipe.register_modules(temporal_upsampler=LTX2LatentUpsamplerModel(**temporal).eval())

    def refuse(*args, **kwargs):
        raise AssertionError("the text encoder ran before the arguments were checked")

    monkeypatch.setattr(pipeline_ltx2_av_dfr, "prompt_contexts", refuse)
    with pytest.raises(ValueError, match=r"temporal_upsampler was added after enable_memory_budget, so the memory plan "
                                         r"does not place it"):  # fmt: skip
        pipe("a cat", height=128, width=128, num_frames=9, temporal_upsample_rounds=1)


def test_dfr_refuses_the_x1_5_upsampler_before_any_work(monkeypatch):
    """DFR's stage 1 is the reference's half size (the detailing reference's positions are scaled for it): with the
    x1.5 upsampler stage 1 ran at 2/3 and the detailing reference was laid over 4/3 of the frame, silently."""
    from ltx2_diffusers import LTX2AVDFRPipeline, LTX2LatentUpsamplerModel
    from ltx2_diffusers.pipelines import pipeline_ltx2_av_dfr
    from ltx2_diffusers.pipelines.tiny import TINY_LATENT_UPSAMPLER_CONFIG, build_tiny_pipeline

    components = build_tiny_pipeline(seed=0, model_version="2.5", duration_head=False).components
    x1_5 = LTX2LatentUpsamplerModel(**{**TINY_LATENT_UPSAMPLER_CONFIG, "use_rational_resampler": True, "rational_spatial_scale": 1.5})
    pipe = LTX2AVDFRPipeline(**components, latent_upsampler=x1_5.eval())

    def refuse(*args, **kwargs):
        raise AssertionError("the text encoder ran before the arguments were checked")

    monkeypatch.setattr(pipeline_ltx2_av_dfr, "prompt_contexts", refuse)
    with pytest.raises(ValueError, match=r"DFR needs the spatial x2 latent upsampler .* got a x1\.5 one"):
        pipe("a cat", height=192, width=192, num_frames=9)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "fast"}, r"kind='fast'; expected one of"),
        ({"text_encoder_file": "missing.safetensors"}, r"text_encoder_file .*missing\.safetensors is not a file"),
    ],
)
def test_split_files_writer_checks_kind_and_text_encoder_file_before_saving(tmp_path, kwargs, message):
    calls = []
    transformer = _Recorder(calls)
    transformer.config = {"ff_bias": False}  # LTX-2.5
    pipe = SimpleNamespace(transformer=transformer, connectors=_Recorder(calls))
    kwargs = {k: str(tmp_path / v) if k == "text_encoder_file" else v for k, v in kwargs.items()}
    with pytest.raises(ValueError, match=message):
        split_files.save_pipeline_as_split_files(pipe, tmp_path / "split", classes={}, **kwargs)
    assert calls == []


def test_validation_seeds_its_generator_on_the_training_device(monkeypatch, tmp_path):
    """The pipelines draw noise where the latents live and refuse a generator on another device: validation on a GPU
    must not hand them a CPU generator (`check_generator` raised on every CUDA run)."""
    from ltx2_diffusers.training import validation

    seen = []

    class Generator:
        def __init__(self, device="cpu"):
            self.device = torch.device(device)

        def manual_seed(self, seed):
            return self

    class Pipe:
        def __call__(self, **kwargs):
            seen.append(kwargs["generator"].device)
            return SimpleNamespace(frames=[None], audio=[None], audio_sample_rate=48000)

    monkeypatch.setattr(validation, "validation_pipeline", lambda *args: Pipe())
    monkeypatch.setattr(validation, "export_to_video_with_audio", lambda *args: None)
    monkeypatch.setattr(validation.torch, "Generator", Generator)
    settings = validation.ValidationSettings(prompts=("a cat",), every_steps=1, width=64, height=64, num_frames=9)
    validation.run_validation(torch.nn.Linear(1, 1), None, [None], None, settings, 1, tmp_path, torch.device("cuda", 0),
                              torch.float32)  # fmt: skip
    assert seen == [torch.device("cuda", 0)]
