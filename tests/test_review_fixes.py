"""Defects found in the review of the DFR / temporal-upsampling / LTX-2.5 session (one test per fix)."""

from types import SimpleNamespace

import pytest

from ltx2_diffusers.loaders import split_files


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
