"""The converter tried as a hostile tester would: malformed headers, metadata, folders and output paths each end in a
ValueError that names the file (the CLI: exit 2, one line, no traceback), nothing is lost, nothing half-written stays,
and no model is built before the metadata has been checked against the tensors' names."""

import json
import math
import os
import re
import shutil
import time
from pathlib import Path

import pytest
import torch
from helpers.conversion import (
    dead_pid,
    edit_json,
    edit_weights,
    header,
    header_bytes,
    listing,
    run_cli,
    set_config,
    split_into_shards,
    to_index,
    with_metadata,
    write_checkpoint,
)
from safetensors.torch import load_file, save_file

import ltx2_diffusers
from ltx2_diffusers import conversion
from ltx2_diffusers.loaders import metadata as md
from ltx2_diffusers.loaders import safetensors_io as sio
from ltx2_diffusers.loaders import single_file as sf

F32 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.fixture(scope="module")
def original(tmp_path_factory) -> Path:
    """A tiny LTX-2 file with every component (written once: building ltx-core's modules takes seconds)."""
    path = tmp_path_factory.mktemp("original") / "ltx-2-tiny-dev.safetensors"
    write_checkpoint(path, md.LTX2)
    return path


@pytest.fixture(scope="module")
def converted(original, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("converted") / "folder"
    conversion.convert_original_to_diffusers(original, folder)
    return folder


@pytest.fixture
def folder_copy(converted, tmp_path) -> Path:
    shutil.copytree(converted, tmp_path / "folder", symlinks=True)
    return tmp_path / "folder"


# ---------------------------------------------------------------------------------------------------------------------
# Hostile headers: each a ValueError naming the file, from read_header, the converter, from_single_file and the CLI


def entry(**changes) -> dict:
    return {"a": {**F32, **changes}}


DUPLICATE = b'{"a": ' + json.dumps(F32).encode() + b', "a": ' + json.dumps(F32).encode() + b"}"
HEADER_CASES = {
    "empty": (b"", r"only 0 bytes"),
    "seven_bytes": (b"\1" * 7, r"only 7 bytes"),
    "length_past_end": (header_bytes(b"{}", length=1000), r"its header claims 1000 bytes"),
    "length_huge": (header_bytes(b"{}", length=2**63), rf"its header claims {2**63} bytes"),
    "length_max": (header_bytes(b"{}", length=2**64 - 1), rf"its header claims {2**64 - 1} bytes"),
    "not_json": (header_bytes(b"{not json"), r"its header is not valid JSON"),
    "not_utf8": (header_bytes(b'{"\xff": 1}'), r"its header is not valid JSON"),
    "json_list": (header([F32]), r"its header is a JSON list, not an object"),
    "json_string": (header("a"), r"its header is a JSON str, not an object"),
    "nested_100k": (header_bytes(b"[" * 100_000), r"its header is not valid JSON"),
    "duplicate_keys": (header_bytes(DUPLICATE, b"\0" * 8), r"the key 'a' appears twice"),
    "metadata_not_strings": (header({"__metadata__": {"config": {"a": 1}}, **entry()}), r"not a map of strings"),
    "metadata_list": (header({"__metadata__": ["config"], **entry()}), r"__metadata__ is not a map of strings"),
    "entry_list": (header({"a": [1, 2]}), r"tensor 'a' has a malformed entry"),
    "entry_no_offsets": (header({"a": {"dtype": "F32", "shape": [2]}}), r"tensor 'a' has a malformed entry"),
    "offsets_negative": (header(entry(data_offsets=[-8, 0])), r"data_offsets \[-8, 0\], expected two integers >= 0"),
    "offsets_float": (header(entry(data_offsets=[0.0, 8.0])), r"expected two integers >= 0"),
    "offsets_string": (header(entry(data_offsets="08")), r"data_offsets 08, expected two integers"),
    "offsets_three": (header(entry(data_offsets=[0, 4, 8])), r"expected two integers"),
    "offsets_overflow": (header(entry(data_offsets=[0, 2**70])), rf"spans bytes 0..{2**70}, but F32\[2\] needs 8"),
    "offsets_reversed": (header(entry(data_offsets=[8, 0])), r"spans bytes 8..0"),
    "offsets_overlap": (
        header({"a": F32, "b": {**F32, "data_offsets": [4, 12]}}, b"\0" * 12),
        r"tensors overlap or leave a gap at byte 8",
    ),
    "dtype_unknown": (header(entry(dtype="F128")), r"tensor 'a' has dtype F128, which this converter cannot handle"),
    "dtype_number": (header(entry(dtype=4)), r"tensor 'a' has dtype 4"),
    "shape_negative": (header(entry(shape=[-2])), r"shape \[-2\], expected a list of integers >= 0"),
    "shape_overflow": (header(entry(shape=[2**64, 2**64])), r"spans bytes 0..8, but F32\[18446744073709551616, "),
    "shape_bool": (header(entry(shape=[True, 2])), r"shape \[True, 2\], expected a list of integers"),
    "shape_string": (header(entry(shape="2")), r"shape 2, expected a list of integers"),
    "shape_float": (header(entry(shape=[2.0])), r"shape \[2.0\], expected a list of integers"),
    "size_mismatch": (header(entry(), b"\0" * 16), r"the header describes 77 bytes but the file has 85"),
    "truncated_data": (header(entry(), b"\0" * 4), r"the header describes 77 bytes but the file has 73"),
    "zip_pickle": (b"PK\x03\x04" + b"\0" * 60, r"pickle / zip PyTorch checkpoint under another name"),
    "raw_pickle": (b"\x80\x02}q\x00." + b"\0" * 60, r"pickle / zip PyTorch checkpoint under another name"),
}


def make_path_case(tmp_path: Path, name: str) -> tuple[Path, str]:
    """Inputs that are not files: a folder, a symlink loop, a missing file, pickle checkpoints by name."""
    if name == "directory":
        (tmp_path / "dir.safetensors").mkdir()
        return tmp_path / "dir.safetensors", r"is a directory, not a safetensors file"
    if name == "symlink_loop":
        os.symlink(tmp_path / "loop_b.safetensors", tmp_path / "loop_a.safetensors")
        os.symlink(tmp_path / "loop_a.safetensors", tmp_path / "loop_b.safetensors")
        return tmp_path / "loop_a.safetensors", r"cannot be opened: Too many levels of symbolic links"
    if name == "missing":
        return tmp_path / "missing.safetensors", r": no such file"
    path = tmp_path / f"model{name}"  # a pickle checkpoint: refused by name, never opened
    path.write_bytes(b"\x80\x02}q\x00.")
    return path, r"is a pickle-based PyTorch checkpoint; this converter reads only .safetensors files"


PATH_CASES = ["directory", "symlink_loop", "missing", ".bin", ".ckpt", ".pt", ".pth"]


@pytest.mark.parametrize("case", [*HEADER_CASES, *PATH_CASES])
def test_hostile_file_is_a_clear_error_naming_it(tmp_path, capsys, case):
    if case in HEADER_CASES:
        path, reason = tmp_path / f"{case}.safetensors", HEADER_CASES[case][1]
        path.write_bytes(HEADER_CASES[case][0])
    else:
        path, reason = make_path_case(tmp_path, case)
    message = re.escape(str(path)) + ".*" + reason
    with pytest.raises(ValueError, match=message):
        sio.read_header(path)
    before = listing(tmp_path)
    with pytest.raises(ValueError, match=message):
        conversion.convert_original_to_diffusers(path, tmp_path / "out")
    with pytest.raises(ValueError, match=message):
        ltx2_diffusers.LTX2VideoTransformer3DModel.from_single_file(path)
    assert run_cli(path, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(path) in err and "Traceback" not in err
    assert listing(tmp_path) == before  # nothing written


def test_local_paths_never_reach_the_network(tmp_path, monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("network access from a local path")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    with pytest.raises(ValueError, match="no such file"):
        ltx2_diffusers.LTX2AVPipeline.from_single_file(tmp_path / "Lightricks" / "LTX-2.safetensors")
    with pytest.raises(ValueError, match="is not a folder"):
        conversion.convert_diffusers_to_original(tmp_path / "Lightricks" / "LTX-2", tmp_path / "x.safetensors")


# ---------------------------------------------------------------------------------------------------------------------
# Hostile metadata: refused before any model is built, fast, naming the file


def raw_config(text: str):
    return lambda config, metadata: {**metadata, "config": text}


RES_COMPRESS = [["res_x", {"num_layers": 1}], ["compress_space_res", {"multiplier": 1}]]
METADATA_CASES = {
    "config_list": (raw_config("[1, 2]"), r"the `config` metadata is a JSON list, expected an object"),
    "config_nested": (raw_config("[" * 100_000), r"the `config` metadata is not valid JSON"),
    "config_5000_digits": (raw_config('{"a": 1' + "0" * 5000 + "}"), r"the `config` metadata is not valid JSON"),
    "section_list": (set_config("vae", [1]), r"The `config.vae` metadata is a list, expected a JSON object"),
    "max_pos_number": (
        set_config("transformer.positional_embedding_max_pos", 7),
        r"its `config` metadata has a value of the wrong type or shape \(TypeError",
    ),
    "audio_model_list": (
        set_config("audio_vae.model", [1]),
        r"its `config` metadata has a value of the wrong type or shape \(AttributeError",
    ),
    "block_params_string": (
        set_config("vae.encoder_blocks", [["res_x", "x"]]),
        r": dictionary update sequence element #0",
    ),
    "num_layers_string": (set_config("transformer.num_layers", "2"), r"num_layers='2' is a string"),
    "num_layers_float": (set_config("transformer.num_layers", 2.5), r"num_layers=2.5 is not an integer"),
    "num_layers_bool": (set_config("transformer.num_layers", True), r"num_layers=True is a bool, expected int"),
    "num_layers_negative": (set_config("transformer.num_layers", -1), r"num_layers=-1 is negative"),
    "num_layers_huge": (set_config("transformer.num_layers", 10**9), r"num_layers=1000000000 is beyond 16777216"),
    "heads_nan": (set_config("transformer.num_attention_heads", math.nan), r"num_attention_heads=nan is not a fini"),
    "heads_null": (
        set_config("transformer.num_attention_heads", None),
        r"wrong type or shape \(TypeError: unsupported operand",
    ),
    "num_layers_2000": (
        set_config("transformer.num_layers", 2000),
        r"config says num_layers = 2000, but the weights hold 2 such blocks .* refused before building anything",
    ),
    "num_layers_100000": (set_config("transformer.num_layers", 100_000), r"num_layers = 100000, but the weights"),
    "connector_layers_5000": (
        set_config("transformer.connector_num_layers", 5000),
        r"video_connector_num_layers = 5000, but the weights hold 1",
    ),
    "vae_20k_blocks": (
        set_config("vae.encoder_blocks", RES_COMPRESS * 20_000 + RES_COMPRESS[:1]),
        r"block_out_channels=\[8, 8, .* has 20000 entries",
    ),
    "vae_resnets_1m": (
        set_config("vae.encoder_blocks.0", ["res_x", {"num_layers": 10**6}]),
        r"sum\(layers_per_block\) = 1000004, but the weights hold 5",
    ),
    "sampling_rate": (  # sizes the BWE resampler's filter (computed, not in the file): 2^24 would be 235M taps
        set_config("vocoder.output_sampling_rate", 2**24),
        r"LTX2Vocoder config value output_sampling_rate=16777216 is outside \[1000, 384000\]",
    ),
    "vocoder_rates_100k": (set_config("vocoder.upsample_rates", [2] * 100_000), r"has 100000 entries"),
    "audio_res_blocks_10k": (
        set_config("audio_vae.model.params.ddconfig.num_res_blocks", 10_000),
        r"len\(ch_mult\) \* num_res_blocks = 30000, but the weights hold 3",
    ),
}


@pytest.mark.parametrize("case", METADATA_CASES)
def test_hostile_metadata_is_refused_before_building_anything(original, tmp_path, monkeypatch, case):
    edit, reason = METADATA_CASES[case]
    path = with_metadata(original, tmp_path / "ltx-2-tiny-dev.safetensors", edit)
    message = re.escape(str(path)) + ".*" + reason
    assert conversion.MODEL_CLASSES  # every model class imported before the clock starts (seconds on a busy machine)
    built = []
    monkeypatch.setattr(torch.nn.Module, "__init__", lambda self, *a, **k: built.append(type(self).__name__))
    convert = lambda: conversion.convert_original_to_diffusers(path, tmp_path / "out")  # noqa: E731
    load = lambda: ltx2_diffusers.LTX2AVPipeline.from_single_file(path)  # noqa: E731
    for call in (convert, load):
        start = time.monotonic()
        with pytest.raises(ValueError, match=message):
            call()
        assert time.monotonic() - start < 5.0  # num_layers=2000 took 73 s and 0.9 GB before these checks
    assert built == []
    assert not (tmp_path / "out").exists()


def test_integer_and_bool_weights_are_refused_by_name(original, tmp_path):
    sd = load_file(str(original))
    metadata = sio.read_header(original)[1]
    name = "model.diffusion_model.transformer_blocks.0.attn1.to_q.weight"
    for dtype, label in ((torch.int8, "I8"), (torch.bool, "BOOL"), (torch.int64, "I64")):
        path = tmp_path / f"ltx-2-{label}-dev.safetensors"
        save_file({**sd, name: torch.ones_like(sd[name], dtype=dtype)}, str(path), metadata=metadata)
        with pytest.raises(
            ValueError,
            match=rf"{re.escape(str(path))}: 1 LTX2VideoTransformer3DModel tensors are not "
            rf"floating point, e.g. '{re.escape(name)}' is {label}",
        ):
            conversion.convert_original_to_diffusers(path, tmp_path / "out")
        with pytest.raises(ValueError, match=f"'{re.escape(name)}' is {label}"):
            ltx2_diffusers.LTX2VideoTransformer3DModel.from_single_file(path)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------------------------------
# --reverse validates what it writes: folder -> file fails cleanly on anything the export would get wrong


def config_of(component: str, key: str, value):
    return lambda f: edit_json(f / component / "config.json", lambda c: c.__setitem__(key, value))


REVERSE_CASES = {
    "wrong_shape": (
        lambda f: edit_weights(f, "vae", lambda sd: sd.__setitem__("latents_mean", torch.zeros(3))),
        r"vae: 1 tensors do not have the shapes its config.json implies, e.g. 'latents_mean' is \[3\], expected \[8\]",
    ),
    "missing_tensor": (
        lambda f: edit_weights(f, "vae", lambda sd: sd.pop("latents_std")),
        r"vae: the AutoencoderKLLTX2Video its config.json describes has 1 tensors the folder lacks, e.g. \['latents_std'\]",
    ),
    "extra_tensor": (
        lambda f: edit_weights(f, "vae", lambda sd: sd.__setitem__("foo.weight", torch.zeros(1))),
        r"vae: 1 tensors are not parameters of the AutoencoderKLLTX2Video .* \['foo.weight'\]",
    ),
    "int8_weight": (
        lambda f: edit_weights(
            f, "transformer", lambda sd: sd.__setitem__("proj_in.weight", sd["proj_in.weight"].to(torch.int8))
        ),
        r"transformer: 1 LTX2VideoTransformer3DModel tensors are not floating point, e.g. 'proj_in.weight' is I8",
    ),
    "bool_weight": (
        lambda f: edit_weights(f, "vocoder", lambda sd: sd.__setitem__("conv_in.bias", sd["conv_in.bias"] > 0)),
        r"'conv_in.bias' is BOOL",
    ),
    "config_contradicts_count": (
        config_of("transformer", "num_layers", 3),
        r"transformer/config.json: the LTX2VideoTransformer3DModel config says num_layers = 3, but the weights hold 2",
    ),
    "config_contradicts_width": (config_of("vae", "latent_channels", 16), r"vae: \d+ tensors do not have the shapes"),
    "config_100000_layers": (config_of("transformer", "num_layers", 100_000), r"num_layers = 100000, but the weights"),
    "config_value_type": (config_of("transformer", "num_layers", "2"), r"config.json: .* num_layers='2' is a string"),
    "config_unknown_class": (config_of("vae", "_class_name", "UNet2DModel"), r"names the class 'UNet2DModel'"),
    "config_broken_json": (
        lambda f: (f / "transformer" / "config.json").write_text("{"),
        r"transformer/config.json is not valid JSON",
    ),
    "config_list": (lambda f: (f / "vae" / "config.json").write_text("[]"), r"vae/config.json holds a JSON list"),
    "config_duplicate_key": (
        lambda f: (f / "vae" / "config.json").write_text('{"a": 1, "a": 2}'),
        r"vae/config.json is not valid JSON \(the key 'a' appears twice\)",
    ),
    "index_dotdot": (lambda f: to_index(f, "vae", lambda n: "../outside.safetensors"), r"names the shard '../outside"),
    "index_absolute": (
        lambda f: to_index(f, "vae", lambda n: str(f / "outside.safetensors")),
        r"index.json names the shard '/.*outside.safetensors', which is not a plain file name .* never followed",
    ),
    "index_not_object": (
        lambda f: to_index(f, "vae", str) or (f / "vae" / sio.WEIGHTS_INDEX_NAME).write_text("[]"),
        r"index.json holds a JSON list",
    ),
    "index_map_list": (
        lambda f: to_index(f, "vae", str) or (f / "vae" / sio.WEIGHTS_INDEX_NAME).write_text('{"weight_map": []}'),
        r"index.json: `weight_map` is not a map of tensor names to shard file names",
    ),
    "index_pickle_shard": (lambda f: to_index(f, "vae", lambda n: "model.bin"), r"model.bin is a pickle-based"),
    "index_wrong_shard": (lambda f: split_into_shards(f, "vae", swap=True), r"index.json puts '.*' in 'b.safetensors'"),
    "index_duplicate": (lambda f: split_into_shards(f, "vae", duplicate=True), r"is in both a.safetensors and b"),
    "weights_pickle_only": (
        lambda f: (f / "vae" / sio.WEIGHTS_NAME).rename(f / "vae" / "diffusion_pytorch_model.bin"),
        r"diffusion_pytorch_model.bin is a pickle-based PyTorch checkpoint",
    ),
    "extras_corrupt": (
        lambda f: (f / "vae" / sf.EXTRA_TENSORS_NAME).write_bytes(b"\0" * 3),
        r"ltx2_original_extra.safetensors is not a readable safetensors file \(only 3 bytes\)",
    ),
    "model_index_broken": (lambda f: (f / "model_index.json").write_text("{"), r"model_index.json is not valid JSON"),
    "model_index_missing_folder": (
        lambda f: shutil.rmtree(f / "vae"),
        r"model_index.json lists the vae \(AutoencoderKLLTX2Video\), but .*vae/config.json is missing",
    ),
    "model_index_entry": (
        lambda f: edit_json(f / "model_index.json", lambda i: i.__setitem__("vae", "x")),
        r"model_index.json: `vae` is x; expected \[library, class name\]",
    ),
    "stored_metadata": (
        lambda f: (f / md.ORIGINAL_METADATA_FILENAME).write_text('{"checkpoint": [1]}'),
        r"ltx2_original_metadata.json: `checkpoint` is not a safetensors metadata map of strings",
    ),
}


@pytest.mark.parametrize("case", REVERSE_CASES)
def test_reverse_validates_before_writing(folder_copy, tmp_path, capsys, case):
    mutate, reason = REVERSE_CASES[case]
    mutate(folder_copy)
    before = listing(tmp_path)
    message = re.escape(str(folder_copy)) + ".*" + reason
    with pytest.raises(ValueError, match=message):
        conversion.convert_diffusers_to_original(folder_copy, tmp_path / "back.safetensors")
    assert run_cli("--reverse", folder_copy, tmp_path / "back.safetensors") == 2
    err = capsys.readouterr().err
    assert re.search(reason, err) and "Traceback" not in err
    assert listing(tmp_path) == before  # no output, no partial file


def test_reverse_of_the_intact_folder_still_works(converted, original, tmp_path):
    conversion.convert_diffusers_to_original(converted, tmp_path / "back.safetensors")
    (entries, metadata), (back, back_metadata) = (
        sio.read_header(original),
        sio.read_header(tmp_path / "back.safetensors"),
    )
    assert back_metadata == metadata and back.keys() == entries.keys()
    assert all(torch.equal(sio.read_tensor(back[k]), sio.read_tensor(entries[k])) for k in entries)


# ---------------------------------------------------------------------------------------------------------------------
# Output paths: nothing lost, nothing foreign replaced, no moment without an output, killed runs cleaned, the umask


def test_overwrite_never_touches_an_input_or_a_folder_it_did_not_write(original, converted, tmp_path, capsys):
    models = tmp_path / "models"  # the user's folder: the checkpoint and an unrelated file
    models.mkdir()
    checkpoint = models / original.name
    shutil.copy(original, checkpoint)
    (models / "notes.txt").write_text("mine")
    photos = tmp_path / "photos"
    (photos / "2026").mkdir(parents=True)
    (photos / "2026" / "a.jpg").write_bytes(b"jpg")
    ours = tmp_path / "ours"
    shutil.copytree(converted, ours)
    (ours / "vae" / "my_edit.json").write_text("{}")  # a file the user added to a previous output
    link = tmp_path / "link"
    link.symlink_to(converted)
    (tmp_path / "a_file").write_text("x")
    cases = [
        (models, r"The output .*models holds the input .*ltx-2-tiny-dev.safetensors: writing it would replace"),
        (checkpoint, r"The output .*ltx-2-tiny-dev.safetensors is the input"),
        (models / "sub", r"is inside the input"),
        (
            photos,
            r"photos exists and overwrite replaces only a previous output of this converter, but it has no "
            r"ltx2_conversion_manifest.json",
        ),
        (ours, r"it holds 1 entries this converter did not write, e.g. \['vae/my_edit.json'\]"),
        (link, r"link exists .* but it is a symbolic link"),
        (tmp_path / "a_file", r"a_file exists .* but it is not a folder"),
        (tmp_path / "a_file" / "out", r"cannot be created: .*a_file is a file, not a folder"),
        (Path("."), r"The output folder '.' has no name of its own"),
    ]
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink()}
    for output, reason in cases:
        source = checkpoint if output in (models, checkpoint, models / "sub") else original
        inputs = (models / "sub",) if output == models / "sub" else ()
        with pytest.raises(ValueError, match=reason):
            if inputs:  # an output inside an input folder (here: the text encoder folder)
                (models / "sub").mkdir(exist_ok=True)
                conversion.convert_original_to_diffusers(source, models / "sub" / "out", text_encoder=models, overwrite=True)
            else:
                conversion.convert_original_to_diffusers(source, output, overwrite=True)
        if not inputs:
            assert run_cli(source, output, "--overwrite") == 2
            assert "Traceback" not in capsys.readouterr().err
    after = {p: p.read_bytes() for p in before}
    assert after == before  # every file intact, the input included
    assert not [p for p in tmp_path.rglob(".*partial*")]


def test_overwrite_replaces_a_previous_output_and_survives_a_failed_delete(original, tmp_path, monkeypatch):
    out = tmp_path / "out"
    conversion.convert_original_to_diffusers(original, out)
    conversion.convert_original_to_diffusers(original, out, overwrite=True, dtype="bf16")  # a clean swap
    assert load_file(str(out / "vae" / sio.WEIGHTS_NAME))["latents_mean"].dtype == torch.bfloat16
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    real_rmtree = shutil.rmtree

    def fails_half_way(path, *args, **kwargs):  # deletes one component of the old output, then the disk errs
        real_rmtree(Path(path) / "vae")
        raise OSError(5, "Input/output error", str(path))

    monkeypatch.setattr(sio.shutil, "rmtree", fails_half_way)
    report = conversion.convert_original_to_diffusers(original, out, overwrite=True, dtype="fp32")
    monkeypatch.undo()
    assert load_file(str(out / "vae" / sio.WEIGHTS_NAME))["latents_mean"].dtype == torch.float32  # the new one
    written = json.loads((out / sio.OUTPUT_MANIFEST_NAME).read_text())["files"]
    assert "vae/diffusion_pytorch_model.safetensors" in written and all((out / f).is_file() for f in written)
    (leftover,) = [p for p in tmp_path.iterdir() if p.name != "out"]
    assert re.fullmatch(rf"\.out\.old-{sio._host_tag()}-{os.getpid()}-[0-9a-f]{{8}}", leftover.name)
    assert any("could not be fully deleted (" in n and "delete it by hand" in n for n in report.notes)
    dead = leftover.with_name(leftover.name.replace(f"-{os.getpid()}-", f"-{dead_pid()}-"))
    leftover.rename(dead)  # as if that run had been killed: the next run removes it and says so
    report = conversion.convert_original_to_diffusers(original, out, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert any(f"removed 1 leftover(s) of an interrupted conversion to {out}: {dead.name}" in n for n in report.notes)


def test_a_failed_swap_puts_the_old_output_back(original, tmp_path, monkeypatch):
    out = tmp_path / "out"
    conversion.convert_original_to_diffusers(original, out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    real_rename = os.rename

    def fails_for_the_new_output(source, target):
        if ".partial-" in str(source):
            raise OSError(28, "No space left on device", str(target))
        real_rename(source, target)

    monkeypatch.setattr(sio.os, "rename", fails_for_the_new_output)
    with pytest.raises(OSError, match="No space left on device"):
        conversion.convert_original_to_diffusers(original, out, overwrite=True, dtype="bf16")
    monkeypatch.undo()
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no partial, no old copy


def test_leftovers_of_killed_runs_are_cleaned_and_reported(original, converted, tmp_path, monkeypatch):
    dead, out, back = dead_pid(), tmp_path / "out", tmp_path / "back.safetensors"
    monkeypatch.setattr(os, "getpid", lambda: dead)  # what a run with that pid, killed with -9, leaves
    partial_dir = sio.make_staging_dir(out)
    (partial_dir / "transformer").mkdir()
    (partial_dir / "transformer" / sio.WEIGHTS_NAME).write_bytes(b"\0" * 1000)
    partial_file = sio._hidden_name(back, "partial")
    partial_file.write_bytes(b"\0" * 1000)
    monkeypatch.undo()
    host = sio._host_tag()
    alive = tmp_path / f".out.partial-{host}-{os.getpid()}-0123abcd"  # a running conversion's: not touched
    other_host = "0" * 6 if host != "0" * 6 else "1" * 6
    remote = tmp_path / f".out.partial-{other_host}-{dead}-0123abcd"  # another machine's (shared disk): not touched
    foreign = tmp_path / ".out.partial-mine"  # not a name we write: not touched
    for path in (alive, remote, foreign):
        path.mkdir()
    report = conversion.convert_original_to_diffusers(original, out)
    assert (
        any(
            f"removed 1 leftover(s) of an interrupted conversion to {out}: {partial_dir.name}" in n
            for n in report.notes
        )
        and not partial_dir.exists()
    )
    report = conversion.convert_diffusers_to_original(out, back)
    assert any(partial_file.name in n for n in report.notes) and not partial_file.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [alive.name, remote.name, foreign.name, "out", back.name]
    )
    assert run_cli(original, out, "--overwrite") == 0  # the CLI prints the same notes; nothing new left over
    # killed between "old output aside" and "new output in": the old output is put back, not lost
    aside = tmp_path / f".out.old-{host}-{dead}-0123abcd"
    out.rename(aside)
    with pytest.raises(ValueError, match="already exists"):
        conversion.convert_original_to_diffusers(original, out)
    assert not aside.exists() and (out / sio.OUTPUT_MANIFEST_NAME).is_file()


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_outputs_follow_the_umask(original, tmp_path, umask):
    previous = os.umask(umask)
    try:
        conversion.convert_original_to_diffusers(original, tmp_path / "out")
        conversion.convert_diffusers_to_original(tmp_path / "out", tmp_path / "back.safetensors")
    finally:
        os.umask(previous)
    paths = [tmp_path / "out", *(tmp_path / "out").rglob("*"), tmp_path / "back.safetensors"]
    modes = (
        {p.stat().st_mode & 0o777 for p in paths if p.is_dir()},
        {p.stat().st_mode & 0o777 for p in paths if p.is_file()},
    )
    assert modes == ({0o777 & ~umask}, {0o666 & ~umask})  # was 0700 / 0600 whatever the umask


def test_reverse_output_is_never_an_input_or_a_foreign_file(converted, tmp_path):
    shard = converted / "vae" / sio.WEIGHTS_NAME
    (tmp_path / "notes.txt").write_text("mine")
    cases = [
        (shard, r"The output .*vae/diffusion_pytorch_model.safetensors is inside the input"),
        (converted / "back.safetensors", r"is inside the input"),
        (tmp_path / "notes.txt", r"notes.txt exists .* but it is not a safetensors file"),
    ]
    for output, reason in cases:
        with pytest.raises(ValueError, match=reason):
            conversion.convert_diffusers_to_original(converted, output, overwrite=True)
    with pytest.raises(ValueError, match="would both be written to"):
        conversion.convert_diffusers_to_original(
            converted, tmp_path / "x.safetensors", upsampler_output=tmp_path / "x.safetensors"
        )
    assert (tmp_path / "notes.txt").read_text() == "mine"
    conversion.convert_diffusers_to_original(converted, tmp_path / "back.safetensors")
    conversion.convert_diffusers_to_original(converted, tmp_path / "back.safetensors", overwrite=True)  # ours: replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["back.safetensors", "notes.txt"]


@pytest.mark.parametrize(
    "error,code,message",
    [
        (OSError(28, "No space left on device", "/disk/out"), 1, "error: No space left on device (/disk/out); nothing"),
        (KeyboardInterrupt(), 130, "interrupted; nothing was written at"),
    ],
)
def test_cli_disk_errors_and_ctrl_c_are_one_line_and_leave_nothing(
    original, tmp_path, monkeypatch, capsys, error, code, message
):
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(sf, "write_sharded", fail)
    assert run_cli(original, tmp_path / "out") == code
    err = capsys.readouterr().err
    assert err.startswith(message.split(" (")[0]) and message in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_huge_widths_are_refused_without_allocating(original, tmp_path):
    """Widths within bounds one by one but 2^24 together (heads x head dim): the models are built on the meta device
    only, their random tables included (2 x 2^24 floats per table otherwise), and the shapes do not match."""
    path = with_metadata(original, tmp_path / "a-dev.safetensors", set_config("transformer.num_attention_heads", 2**12))
    path = with_metadata(path, tmp_path / "wide-dev.safetensors", set_config("transformer.attention_head_dim", 2**12))
    start = time.monotonic()
    with pytest.raises(ValueError, match=r"wide-dev.safetensors: \d+ transformer tensors do not have the shapes the"):
        conversion.convert_original_to_diffusers(path, tmp_path / "out")
    assert time.monotonic() - start < 10.0
    assert not (tmp_path / "out").exists()
