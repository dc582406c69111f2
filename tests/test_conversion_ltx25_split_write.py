"""Writing LTX-2.5's split per-component files back (`loaders/split_files.py`): the released folders and names, the
monolith's key layout and `config` sections per file, a byte-identical round trip files -> pipeline -> files, and an
existing output left whole when a write fails."""

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from ltx2_diffusers import LTX2AVPipeline, LTX2VideoTransformer3DModel, LTX2VocoderWithBWE
from ltx2_diffusers.conversion import MODEL_CLASSES, convert_diffusers_to_original
from ltx2_diffusers.loaders import split_files
from ltx2_diffusers.pipelines.tiny import build_tiny_pipeline, tiny_transformer_config

CLASSES = {**MODEL_CLASSES}
SMALL_VOCODER = dict(
    hidden_channels=16, upsample_kernel_sizes=[7, 4], upsample_factors=[3, 2], resnet_kernel_sizes=[3],
    resnet_dilations=[[1, 3]], final_act_fn="clamp", bwe_hidden_channels=16, bwe_upsample_kernel_sizes=[7, 4],
    bwe_upsample_factors=[3, 2], bwe_resnet_kernel_sizes=[3], bwe_resnet_dilations=[[1, 3]],
)  # fmt: skip
EXPECTED_FILES = {
    "transformer": "diffusion_models/ltx-2.5-22b-dev-transformer-bf16.safetensors",
    "projection": "text_encoders/ltx-2.5-text-projection-bf16.safetensors",
    "vae": "vae/ltx-2.5-video-vae-conv-bf16.safetensors",
    "diffusion_vae": "vae/ltx-2.5-video-vae-bf16.safetensors",
    "audio": "vae/ltx-2.5-audio-vae-bf16.safetensors",
    "duration_head": "model_patches/ltx-2.5-duration-head-bf16.safetensors",
}


def read(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    with safe_open(str(path), "pt") as handle:
        return handle.metadata(), {k: handle.get_tensor(k) for k in handle.keys()}


def write_split(folder: Path, output: Path, **kwargs) -> split_files.ConversionReport:
    return split_files.convert_diffusers_to_split_files(folder, output, classes=CLASSES, **kwargs)


def load_split(paths: dict[str, Path], pipe: LTX2AVPipeline) -> LTX2AVPipeline:
    return LTX2AVPipeline.from_split_files(
        transformer=paths["transformer"], text_encoder_file=paths["projection"], video_vae=paths["vae"],
        audio_vae=paths["audio"], diffusion_vae=paths["diffusion_vae"], duration_head=paths["duration_head"],
        text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer, torch_dtype=torch.bfloat16,
    )  # fmt: skip


def text_only_folder(root: Path, target: Path) -> Path:
    """The pipeline folder with only the two components the transformer and text-encoder files hold (faster)."""
    keep = {"transformer", "connectors", "scheduler"}
    for name in keep:
        shutil.copytree(root / "folder" / name, target / name)
    (target / "model_index.json").write_text(json.dumps({"_class_name": "LTX2AVPipeline"}))
    return target


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The tiny LTX-2.5 (duration head and diffusion decoder included) in bf16, saved, and written as split files."""
    root = tmp_path_factory.mktemp("split-write")
    pipe = build_tiny_pipeline(seed=3, model_version="2.5")
    torch.manual_seed(3)
    # fewer blocks and generator stages than the tiny pipeline's (the converter builds each model to check the files)
    transformer = LTX2VideoTransformer3DModel(**{**tiny_transformer_config("2.5"), "num_layers": 2})
    for parameter in transformer.parameters():
        parameter.data.normal_(0.0, 0.05)
    # the released files' first vocoder stage ends in a clamp (use_tanh_at_final false); diffusers' configs say None,
    # which the original metadata cannot state (it reads back as tanh): the tiny model takes the file's form
    vocoder = LTX2VocoderWithBWE(**SMALL_VOCODER)
    pipe.register_modules(transformer=transformer.eval(), vocoder=vocoder.eval())
    pipe = pipe.to(torch.bfloat16)
    pipe.save_pretrained(root / "folder")
    report = write_split(root / "folder", root / "split")
    return pipe, root, report


def test_files_have_the_released_names_and_the_monolith_layout(written):
    pipe, root, report = written
    assert split_files.split_file_paths(root / "split") == {k: root / "split" / v for k, v in EXPECTED_FILES.items()}
    assert set(report.components) == {"transformer", "connectors", "vae", "audio_vae", "vocoder", "diffusion_decoder",
                                      "duration_head"}  # fmt: skip
    # the monolith writer's names and config sections, cut per file (spec 1.2 §1.2)
    convert_diffusers_to_original(root / "folder", root / "mono.safetensors")  # LTX-2.5's own two models left out
    mono_metadata, mono = read(root / "mono.safetensors")
    mono_config = json.loads(mono_metadata["config"])
    expected = {
        "transformer": ({k: v for k, v in mono.items() if k.startswith("model.diffusion_model.")}, ["transformer"]),
        "projection": ({k: v for k, v in mono.items() if k.startswith("text_embedding_projection.")}, None),
        "vae": ({k[4:]: v for k, v in mono.items() if k.startswith("vae.")}, ["vae"]),
        "audio": ({k: v for k, v in mono.items() if k.startswith(("audio_vae.", "vocoder."))}, ["audio_vae", "vocoder"]),
    }
    for name, (tensors, sections) in expected.items():
        metadata, actual = read(root / "split" / EXPECTED_FILES[name])
        assert actual.keys() == tensors.keys() and all(torch.equal(actual[k], tensors[k]) for k in tensors), name
        assert metadata["model_version"] == mono_metadata["model_version"] == "2.5.0"
        if sections is not None:
            assert json.loads(metadata["config"]) == {s: mono_config[s] for s in sections}, name
    assert len(expected["projection"][0]) == 4  # video and audio aggregate embeds: the text-encoder file's part


def test_round_trip_files_pipeline_files_is_byte_identical(written):
    pipe, root, _ = written
    paths = split_files.split_file_paths(root / "split")
    loaded = load_split(paths, pipe)  # (the diffusion decoder's loader builds in float32 unless told the dtype)
    for name in ("transformer", "connectors", "vae", "audio_vae", "vocoder", "diffusion_decoder", "duration_head"):
        ours, theirs = getattr(loaded, name).state_dict(), getattr(pipe, name).state_dict()
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours), name
    split_files.save_pipeline_as_split_files(loaded, root / "again", classes=CLASSES)
    for relative in EXPECTED_FILES.values():
        assert (root / "again" / relative).read_bytes() == (root / "split" / relative).read_bytes(), relative
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == []  # no staging or temporary folder left


def test_text_encoder_file_is_copied_around_the_projection(written, tmp_path):
    from safetensors.torch import save_file

    pipe, root, _ = written
    _, projection = read(root / "split" / EXPECTED_FILES["projection"])
    gemma = {"language_model.model.embed_tokens.weight": torch.arange(8, dtype=torch.bfloat16).reshape(4, 2)}
    source = tmp_path / "gemma4-12b-with-proj-ltx-2.5-bf16.safetensors"
    save_file({**projection, **gemma}, source, metadata={"gemma_config": '{"model_type": "gemma4_unified"}'})
    folder = text_only_folder(root, tmp_path / "folder")
    report = write_split(folder, tmp_path / "out", text_encoder_file=source)
    assert set(report.components) == {"transformer", "connectors"}
    metadata, tensors = read(tmp_path / "out" / "text_encoders" / source.name)
    assert metadata == {"gemma_config": '{"model_type": "gemma4_unified"}'}
    assert tensors.keys() == {*projection, *gemma} and torch.equal(tensors["language_model.model.embed_tokens.weight"],
                                                                   gemma["language_model.model.embed_tokens.weight"])  # fmt: skip
    save_file(gemma, tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match=r"holds the projection tensors \[\], the folder's connectors"):
        write_split(folder, tmp_path / "out2", text_encoder_file=tmp_path / "other.safetensors")


def test_an_existing_output_is_kept_whole_when_writing_fails(written, tmp_path, monkeypatch):
    _, root, _ = written
    folder = text_only_folder(root, tmp_path / "folder")
    output = tmp_path / "split"
    shutil.copytree(root / "split", output)  # a previous output of this converter (its manifest included)
    before = {p: p.read_bytes() for p in output.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match=r"already exists; pass overwrite=True"):
        write_split(folder, output)
    calls = []

    def failing_write(path, tensors, metadata):  # the second file fails, after the first was written in full
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        original_write(path, tensors, metadata)

    original_write = split_files.write_safetensors
    monkeypatch.setattr(split_files, "write_safetensors", failing_write)
    with pytest.raises(OSError, match="No space left"):
        write_split(folder, output, overwrite=True)
    assert {p: p.read_bytes() for p in output.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "split"]  # the staging folder is gone
    assert all(not Path(p).is_relative_to(output) for p in calls)  # nothing was written inside the output itself


def test_foreign_outputs_and_wrong_folders_are_refused(written, tmp_path):
    _, root, _ = written
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match=r"overwrite replaces only a previous output of this converter"):
        write_split(root / "folder", tmp_path / "mine", overwrite=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match=r"is not a pipeline folder \(no model_index.json\)"):
        write_split(root / "folder" / "transformer", tmp_path / "a")
    with pytest.raises(ValueError, match=r"kind='turbo'; expected one of \('dev', 'distilled'\)"):
        write_split(root / "folder", tmp_path / "b", kind="turbo")
    ltx23 = tmp_path / "ltx23"
    shutil.copytree(root / "folder", ltx23, ignore=lambda _, names: [n for n in names if n.endswith(".safetensors")])
    config = json.loads((ltx23 / "transformer" / "config.json").read_text())
    config.update(ff_bias=True, use_keyframes_abs_pos_embedding=False)  # LTX-2.3's video FFN, no keyframe embedding
    (ltx23 / "transformer" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"not an LTX-2.5 transformer .* convert_diffusers_to_original"):
        write_split(ltx23, tmp_path / "c")
    assert not (tmp_path / "c").exists()
    for kind in ("dev", "distilled"):  # two transformer files in one set: from_split_files would have to guess
        (tmp_path / "two" / "diffusion_models").mkdir(parents=True, exist_ok=True)
        (tmp_path / "two" / "diffusion_models" / f"ltx-2.5-22b-{kind}-transformer-bf16.safetensors").touch()
    with pytest.raises(ValueError, match=r"diffusion_models holds 2 transformer files .*; keep one"):
        split_files.split_file_paths(tmp_path / "two")


def run_script(*args) -> int:
    """scripts/convert_checkpoint.py's main(), in this process."""
    path = Path(__file__).parents[1] / "scripts" / "convert_checkpoint.py"
    spec = importlib.util.spec_from_file_location("convert_checkpoint", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main([str(a) for a in args])


def test_convert_checkpoint_script_writes_split_files(written, tmp_path, capsys):
    _, root, _ = written
    folder = text_only_folder(root, tmp_path / "folder")
    assert run_script("--reverse", "--split", folder, tmp_path / "out", "--kind", "distilled") == 0
    assert "ltx-2.5-22b-distilled-transformer-bf16.safetensors" in capsys.readouterr().out
    transformer = tmp_path / "out" / "diffusion_models" / "ltx-2.5-22b-distilled-transformer-bf16.safetensors"
    assert transformer.read_bytes() == (root / "split" / EXPECTED_FILES["transformer"]).read_bytes()
    for bad, message in [
        (["--split", folder, tmp_path / "x"], "--split writes split files from a diffusers folder: add --reverse"),
        (["--reverse", "--split", "--dtype", "fp32", folder, tmp_path / "x"], "drop --dtype"),
        (["--reverse", "--text-encoder-file", "te.safetensors", folder, tmp_path / "x.safetensors"],
         "only applies to --split"),
    ]:  # fmt: skip
        with pytest.raises(SystemExit) as stop:
            run_script(*bad)
        assert stop.value.code == 2 and message in capsys.readouterr().err
