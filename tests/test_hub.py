"""The Hub round trip: model cards on every save, push against a local Hub stand-in, pull from a real HF cache layout
offline. No network: the push goes to a server on 127.0.0.1 (tests/helpers/fake_hub.py)."""

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from helpers.fake_hub import running_fake_hub
from huggingface_hub import ModelCard, constants

from ltx2_diffusers.hub import (
    CARD_MARKER,
    LICENSE_NAME,
    CardInfo,
    CardSource,
    build_model_card,
    inspect_folder,
    push_folder,
    upload_plan,
    write_model_card,
)
from ltx2_diffusers.pipelines.tiny import build_tiny_pipeline


@pytest.fixture(scope="module")
def saved_pipeline(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hub") / "tiny-ltx2"
    build_tiny_pipeline(seed=3).save_pretrained(folder)
    return folder


def _card_data(folder: Path) -> dict:
    return ModelCard.load(folder / "README.md").data.to_dict()


# ----------------------------------------------------------------------------------------------------------------------
# Cards


def test_card_metadata_fields():
    source = CardSource("ltx-2-19b-dev.safetensors", "ab" * 32)
    card = build_model_card(CardInfo("pipeline", "LTX2AVTwoStagePipeline", "2.0", repo_id="me/ltx", sources=(source,)))
    data = ModelCard(str(card)).data.to_dict()
    assert data["library_name"] == "diffusers"
    assert data["pipeline_tag"] == "text-to-video"
    assert data["base_model"] == "Lightricks/LTX-2"
    assert (data["license"], data["license_name"]) == ("other", LICENSE_NAME)
    assert {"ltx-2", "audio-video", CARD_MARKER} <= set(data["tags"])
    assert data["ltx2_source_files"] == [{"file_name": "ltx-2-19b-dev.safetensors", "sha256": "ab" * 32}]
    assert 'DiffusionPipeline.from_pretrained("me/ltx"' in card.text and "import ltx2_diffusers" in card.text


@pytest.mark.parametrize(
    ("info", "base", "tags"),
    [
        (CardInfo("model", "LTX2VideoTransformer3DModel", "2.3"), "Lightricks/LTX-2.3", {"ltx-2.3"}),
        (CardInfo("lora", "LoRA", "2.0"), "Lightricks/LTX-2", {"ltx-2", "lora"}),
        (CardInfo("pipeline", "LTX2AVAudioToVideoPipeline", "2.5"), "Lightricks/LTX-2.5", {"ltx-2.5", "audio-to-video"}),
    ],
)
def test_card_base_model_and_tags_per_kind(info, base, tags):
    data = ModelCard(str(build_model_card(info))).data.to_dict()
    assert data["base_model"] == base
    assert tags <= set(data["tags"])


def test_card_info_refuses_unknown_values():
    with pytest.raises(ValueError, match=r"what='checkpoint'.*'pipeline', 'model' or 'lora'"):
        CardInfo("checkpoint", "X")
    with pytest.raises(ValueError, match=r"model_version='3\.0'"):
        CardInfo("model", "X", "3.0")


def test_pipeline_save_writes_card(saved_pipeline):
    data = _card_data(saved_pipeline)
    assert data["library_name"] == "diffusers" and data["base_model"] == "Lightricks/LTX-2"
    assert data["license_name"] == LICENSE_NAME and CARD_MARKER in data["tags"]
    assert "import ltx2_diffusers" in (saved_pipeline / "README.md").read_text()


def test_model_save_writes_card(tmp_path):
    pipe = build_tiny_pipeline(seed=3)
    pipe.transformer.save_pretrained(tmp_path / "transformer")
    data = _card_data(tmp_path / "transformer")
    assert data["base_model"] == "Lightricks/LTX-2" and "ltx-2" in data["tags"]
    assert "LTX2VideoTransformer3DModel.from_pretrained" in (tmp_path / "transformer" / "README.md").read_text()


def test_users_readme_is_kept(tmp_path, saved_pipeline):
    folder = tmp_path / "mine"
    shutil.copytree(saved_pipeline, folder)
    (folder / "README.md").write_text("# my notes\n")
    assert write_model_card(folder, CardInfo("pipeline", "LTX2AVPipeline", "2.0")) is None
    assert (folder / "README.md").read_text() == "# my notes\n"
    build_tiny_pipeline(seed=3).save_pretrained(folder)  # a save over the folder keeps it too
    assert (folder / "README.md").read_text() == "# my notes\n"


def test_our_card_is_replaced(tmp_path):
    write_model_card(tmp_path, CardInfo("model", "LTX2Vocoder"))
    write_model_card(tmp_path, CardInfo("model", "LTX2Vocoder", "2.3"))
    assert _card_data(tmp_path)["base_model"] == "Lightricks/LTX-2.3"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md"]  # no partial file left


# ----------------------------------------------------------------------------------------------------------------------
# Push


@pytest.fixture
def online(monkeypatch):
    """huggingface_hub's offline switch off and its endpoint on the local stand-in (the suite runs offline)."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)

    def point_at(hub):
        monkeypatch.setattr(constants, "ENDPOINT", hub.url)

    return point_at


def test_push_uploads_the_folder_byte_for_byte(saved_pipeline, online):
    with running_fake_hub() as hub:
        online(hub)
        url = push_folder(saved_pipeline, "me/tiny-ltx2", private=True, token="hf_test")
        assert hub.unexpected == []
    files = hub.repos["me/tiny-ltx2"]["branches"]["main"]
    assert url.startswith(hub.url) and hub.repos["me/tiny-ltx2"]["private"] is True
    expected = upload_plan(saved_pipeline)
    assert sorted(files) == sorted(expected)
    for name in expected:
        if name != "README.md":
            assert files[name] == (saved_pipeline / name).read_bytes(), name
    card = ModelCard(files["README.md"].decode())
    assert card.data.base_model == "Lightricks/LTX-2"
    assert 'from_pretrained("me/tiny-ltx2"' in card.text  # the uploaded card loads exactly this repo


def test_push_to_a_branch(saved_pipeline, online):
    with running_fake_hub() as hub:
        online(hub)
        push_folder(saved_pipeline, "me/tiny-ltx2", revision="v1", token="hf_test")
    assert set(hub.repos["me/tiny-ltx2"]["branches"]) == {"main", "v1"}
    assert hub.commits[-1][:2] == ("me/tiny-ltx2", "v1")


def test_push_leaves_hidden_and_foreign_files_local(tmp_path, saved_pipeline):
    folder = tmp_path / "p"
    shutil.copytree(saved_pipeline, folder)
    (folder / ".out.partial-1").mkdir()
    (folder / ".out.partial-1" / "x.safetensors").write_bytes(b"x")
    (folder / "old.ckpt").write_bytes(b"pickle")
    plan = upload_plan(folder)
    assert "old.ckpt" not in plan and not any(".partial" in p for p in plan)
    assert "model_index.json" in plan and "transformer/config.json" in plan


@pytest.mark.parametrize(
    ("repo_id", "token", "message"),
    [
        ("no-namespace", "hf_x", r"not of the form 'namespace/name'"),
        ("a/b/c", "hf_x", r"not of the form 'namespace/name'"),
        ("me/bad name!", "hf_x", r"not valid on the Hub"),
        ("me/ok", None, r"no Hugging Face token.*hf auth login.*nothing was uploaded"),
    ],
)
def test_push_refuses_before_any_request(saved_pipeline, online, monkeypatch, repo_id, token, message):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    with running_fake_hub() as hub:
        online(hub)
        before = sorted(p.relative_to(saved_pipeline) for p in saved_pipeline.rglob("*"))
        with pytest.raises(ValueError, match=message):
            push_folder(saved_pipeline, repo_id, token=token)
        assert hub.repos == {} and hub.unexpected == []
        assert sorted(p.relative_to(saved_pipeline) for p in saved_pipeline.rglob("*")) == before


def test_push_refuses_offline_mode(saved_pipeline):
    with pytest.raises(ValueError, match="HF_HUB_OFFLINE is set"):
        push_folder(saved_pipeline, "me/x", token="hf_test")


def test_push_refuses_a_folder_that_is_not_ours(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"neither model_index.json .* nothing to push"):
        push_folder(tmp_path, "me/x", token="hf_test")
    (tmp_path / "model_index.json").write_text("{broken")
    with pytest.raises(ValueError, match=r"model_index.json cannot be read as JSON"):
        inspect_folder(tmp_path)


def test_interrupted_push_changes_nothing_locally(saved_pipeline, online):
    before = {p: p.read_bytes() for p in saved_pipeline.rglob("*") if p.is_file()}
    with running_fake_hub() as hub:
        online(hub)
        hub.fail_commits = True
        with pytest.raises(Exception, match="500|server went away"):
            push_folder(saved_pipeline, "me/tiny-ltx2", token="hf_test")
    assert hub.commits == []
    assert {p: p.read_bytes() for p in saved_pipeline.rglob("*") if p.is_file()} == before


# ----------------------------------------------------------------------------------------------------------------------
# Pull: a real Hugging Face cache layout, offline


def _as_cached_repo(folder: Path, cache: Path, repo_id: str, revision: str, commit: str, ref: str = "main") -> None:
    repo_dir = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(folder, repo_dir / "snapshots" / commit)
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / ref).write_text(commit)


@pytest.fixture
def hf_cache(tmp_path, monkeypatch, saved_pipeline):
    cache = tmp_path / "hub-cache"
    _as_cached_repo(saved_pipeline, cache, "org/tiny-ltx2", "main", "a" * 40)
    other = tmp_path / "other"
    shutil.copytree(saved_pipeline, other)
    build_tiny_pipeline(seed=4).transformer.save_pretrained(other / "transformer")  # another revision, other weights
    _as_cached_repo(other, cache, "org/tiny-ltx2", "v2", "b" * 40, ref="v2")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def _run(pipe) -> torch.Tensor:
    out = pipe("a cat", height=64, width=64, num_frames=9, num_inference_steps=2, output_type="pt",
               generator=torch.Generator().manual_seed(0))
    return out.frames


def test_pipeline_loads_by_repo_id_offline(hf_cache, saved_pipeline):
    from diffusers import DiffusionPipeline

    import ltx2_diffusers  # noqa: F401  (registers the pipeline with diffusers)

    by_id = DiffusionPipeline.from_pretrained("org/tiny-ltx2", cache_dir=str(hf_cache))
    by_folder = DiffusionPipeline.from_pretrained(saved_pipeline)
    assert type(by_id).__name__ == "LTX2AVPipeline"
    for name in ("transformer", "vae", "connectors"):
        for (key, a), (_, b) in zip(getattr(by_id, name).state_dict().items(),
                                    getattr(by_folder, name).state_dict().items()):
            assert torch.equal(a, b), f"{name}.{key}"
    by_id.set_progress_bar_config(disable=True)
    by_folder.set_progress_bar_config(disable=True)
    torch.testing.assert_close(_run(by_id), _run(by_folder), rtol=0, atol=0)


def test_component_and_revision_offline(hf_cache, saved_pipeline):
    from ltx2_diffusers import LTX2VideoTransformer3DModel

    main = LTX2VideoTransformer3DModel.from_pretrained("org/tiny-ltx2", subfolder="transformer", cache_dir=str(hf_cache))
    v2 = LTX2VideoTransformer3DModel.from_pretrained(
        "org/tiny-ltx2", subfolder="transformer", revision="v2", cache_dir=str(hf_cache)
    )
    local = LTX2VideoTransformer3DModel.from_pretrained(saved_pipeline, subfolder="transformer")
    key = "proj_in.weight"
    assert torch.equal(main.state_dict()[key], local.state_dict()[key])
    assert not torch.equal(v2.state_dict()[key], local.state_dict()[key])


def test_missing_repo_offline_names_it(hf_cache):
    from ltx2_diffusers import LTX2AVPipeline

    with pytest.raises(Exception, match="org/not-there"):
        LTX2AVPipeline.from_pretrained("org/not-there", cache_dir=str(hf_cache))


def test_local_files_only_is_respected(hf_cache, monkeypatch):
    from ltx2_diffusers import LTX2AVPipeline

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    # online mode but local_files_only: served from the cache, no request (the endpoint is unreachable)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    pipe = LTX2AVPipeline.from_pretrained("org/tiny-ltx2", cache_dir=str(hf_cache), local_files_only=True)
    assert pipe.transformer is not None
    assert os.path.isdir(hf_cache)
    assert json.loads((Path(pipe.config._name_or_path) / "model_index.json").read_text())["_class_name"]


# ----------------------------------------------------------------------------------------------------------------------
# The converter: a card in every output folder, --push_to_hub


def __convert_main(argv: list[str]) -> int:
    import importlib.util

    script = Path(__file__).parents[1] / "scripts" / "convert_checkpoint.py"
    spec = importlib.util.spec_from_file_location("convert_checkpoint", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


def _convert_main(argv: list[str]) -> int:
    import importlib.util

    script = Path(__file__).parents[1] / "scripts" / "convert_checkpoint.py"
    spec = importlib.util.spec_from_file_location("convert_checkpoint", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


@pytest.fixture(scope="module")
def lightricks_file(tmp_path_factory) -> Path:
    from helpers.conversion import write_checkpoint

    from ltx2_diffusers.loaders import metadata as md

    path = tmp_path_factory.mktemp("original") / "ltx-2-19b-dev.safetensors"
    write_checkpoint(path, md.LTX2)
    return path


def test_converted_folder_has_a_card_with_the_source_sha256(lightricks_file, tmp_path):
    import hashlib

    from ltx2_diffusers.conversion import convert_diffusers_to_original, convert_original_to_diffusers

    out = tmp_path / "out"
    convert_original_to_diffusers(lightricks_file, out)
    data = _card_data(out)
    assert data["ltx2_source_files"] == [
        {"file_name": "ltx-2-19b-dev.safetensors", "sha256": hashlib.sha256(lightricks_file.read_bytes()).hexdigest()}
    ]
    assert data["base_model"] == "Lightricks/LTX-2" and data["license"] == "other"
    convert_original_to_diffusers(lightricks_file, out, overwrite=True)  # the card is part of our output: replaceable
    convert_diffusers_to_original(out, tmp_path / "back.safetensors")  # and ignored by the reverse conversion
    from safetensors.torch import load_file

    back, original = load_file(tmp_path / "back.safetensors"), load_file(lightricks_file)
    assert back.keys() == original.keys() and all(torch.equal(back[k], original[k]) for k in original)


def test_converter_push_to_hub(lightricks_file, tmp_path, online, monkeypatch, capsys):
    out = tmp_path / "out"
    with running_fake_hub() as hub:
        online(hub)
        monkeypatch.setenv("HF_TOKEN", "hf_test")
        assert _convert_main([str(lightricks_file), str(out), "--push_to_hub", "me/converted", "--private"]) == 0
    files = hub.repos["me/converted"]["branches"]["main"]
    assert files["transformer/config.json"] == (out / "transformer" / "config.json").read_bytes()
    card = ModelCard(files["README.md"].decode())
    assert card.data.to_dict()["ltx2_source_files"][0]["file_name"] == "ltx-2-19b-dev.safetensors"
    assert 'from_pretrained("me/converted"' in card.text
    assert "pushed to" in capsys.readouterr().out


def test_converter_push_checks_come_first(lightricks_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert _convert_main([str(lightricks_file), str(out), "--push_to_hub", "not-a-repo-id"]) == 2
    assert "not of the form 'namespace/name'" in capsys.readouterr().err
    assert not out.exists()  # refused before any conversion work
    with pytest.raises(SystemExit):
        _convert_main([str(lightricks_file), str(out), "--private"])
    assert "only apply with --push_to_hub" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------------------------
# ltx2-diffusers push


def test_cli_push(saved_pipeline, online, monkeypatch, capsys):
    from ltx2_diffusers.cli import main

    with running_fake_hub() as hub:
        online(hub)
        monkeypatch.setenv("HF_TOKEN", "hf_test")
        assert main(["push", str(saved_pipeline), "me/from-cli", "--revision", "dev"]) == 0
    assert "pushed" in capsys.readouterr().out
    files = hub.repos["me/from-cli"]["branches"]["dev"]
    assert files["model_index.json"] == (saved_pipeline / "model_index.json").read_bytes()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["push", "{folder}", "bad id"], "not of the form 'namespace/name'"),
        (["push", "{missing}", "me/x"], "is not a folder"),
    ],
)
def test_cli_push_errors_are_one_line(saved_pipeline, tmp_path, capsys, argv, message):
    from ltx2_diffusers.cli import main

    argv = [a.format(folder=saved_pipeline, missing=tmp_path / "nope") for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_push_keeps_the_local_cards_facts(tmp_path, online):
    from safetensors.torch import save_file

    save_file({"transformer.proj_in.lora_A.weight": torch.zeros(2, 4)}, str(tmp_path / "pytorch_lora_weights.safetensors"))
    write_model_card(tmp_path, CardInfo("lora", "LoRA", "2.3", base_model="me/ltx-2.3-folder", extra_tags=("ltx2-i2v",),
                                        description="A test LoRA."))
    with running_fake_hub() as hub:
        online(hub)
        push_folder(tmp_path, "me/my-lora", token="hf_test")
    card = ModelCard(hub.repos["me/my-lora"]["branches"]["main"]["README.md"].decode())
    data = card.data.to_dict()
    assert data["base_model"] == "me/ltx-2.3-folder" and {"lora", "ltx-2.3", "ltx2-i2v"} <= set(data["tags"])
    assert "A test LoRA." in card.text and 'load_lora_weights("me/my-lora"' in card.text


def test_from_single_file_of_a_hub_file_offline(lightricks_file, tmp_path, monkeypatch):
    from ltx2_diffusers import LTX2VideoTransformer3DModel

    cache = tmp_path / "cache"
    repo_dir = cache / "models--Lightricks--LTX-2"
    (repo_dir / "snapshots" / ("c" * 40)).mkdir(parents=True)
    shutil.copy(lightricks_file, repo_dir / "snapshots" / ("c" * 40) / lightricks_file.name)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text("c" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    local = LTX2VideoTransformer3DModel.from_single_file(lightricks_file)
    for name in (f"Lightricks/LTX-2/{lightricks_file.name}",
                 f"https://huggingface.co/Lightricks/LTX-2/blob/main/{lightricks_file.name}"):
        from_hub = LTX2VideoTransformer3DModel.from_single_file(name)
        assert all(torch.equal(a, b) for a, b in zip(from_hub.state_dict().values(), local.state_dict().values()))
    with pytest.raises(ValueError, match=r"Lightricks/LTX-2/other.safetensors is not in the Hugging Face cache"):
        LTX2VideoTransformer3DModel.from_single_file("Lightricks/LTX-2/other.safetensors")
    with pytest.raises(ValueError, match=r"nope.safetensors: no such file \(a Hub file is given as"):
        LTX2VideoTransformer3DModel.from_single_file("nope.safetensors")  # neither a local file nor a Hub file
    with pytest.raises(ValueError, match=r"nope.safetensors"):  # an absolute path is local: the reader's error
        LTX2VideoTransformer3DModel.from_single_file(tmp_path / "nope.safetensors")


def test_pipeline_variant_loads_from_the_cache(tmp_path, monkeypatch):
    from ltx2_diffusers import LTX2AVPipeline

    folder = tmp_path / "variant"
    build_tiny_pipeline(seed=5).save_pretrained(folder, variant="v1")
    assert (folder / "transformer" / "diffusion_pytorch_model.v1.safetensors").is_file()
    cache = tmp_path / "cache"
    _as_cached_repo(folder, cache, "org/tiny-variant", "main", "d" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    pipe = LTX2AVPipeline.from_pretrained("org/tiny-variant", variant="v1")
    expected, loaded = build_tiny_pipeline(seed=5).transformer.state_dict(), pipe.transformer.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in expected.items())  # one state_dict() each, not one per key
