"""benchmarks/pipeline.py: the tiny CPU run of all three implementations (ours with cold start) writes a JSON report
with every row and field, sane values and playable mp4s; its option checks and report helpers on their own.

The subprocess run takes about 30 s of CPU (bf16 VAE decoding on the CPU is slow); the helper tests are instant."""

import importlib.util
import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import av
import pytest
from helpers.fresh_python import Background

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "pipeline.py"
ROW_FIELDS = {
    "workload", "height", "width", "num_frames", "steps", "impl", "first_call_s", "warm_s", "warm_all_s", "peak_gib",
    "finite", "load_s", "cold_start_s", "stages",
}  # fmt: skip


def load_benchmark():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        spec = importlib.util.spec_from_file_location("benchmark_pipeline", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return module


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The script's tiny CPU run, started with the module's first test (every test uses this fixture, before `bench`)
    so that it runs beside this process's import of the script and the instant tests; the last test reads it."""
    folder = tmp_path_factory.mktemp("benchmark")
    report_path, out_dir = folder / "report.json", folder / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(SCRIPT), "--tiny", "--device", "cpu", "--workload", "distilled",
               "--impl", "ours,ltx,diffusers", "--iters", "1", "--cold", "--out-dir", str(out_dir),
               "--json", str(report_path)]  # fmt: skip
    child = Background(command, env=env, cwd=ROOT)
    yield {"child": child, "report": report_path, "out": out_dir}
    child.stop()


pytestmark = pytest.mark.usefixtures("tiny_run")


@pytest.fixture(scope="module")
def bench():
    return load_benchmark()


def test_memory_budget_flag_says_when_the_pipeline_has_none(bench):
    args = SimpleNamespace(vram=24.0, fast=False, fp8=None, cache=None)
    with pytest.raises(SystemExit, match=r"--vram: this ltx2_diffusers has no pipe.enable_memory_budget\(\) yet"):
        bench.apply_options(SimpleNamespace(), args)
    seen = []
    pipe = SimpleNamespace(enable_memory_budget=lambda budget: seen.append(budget) or "plan")
    assert bench.apply_options(pipe, args) == {"memory_budget": "plan"} and seen == ["24.0GB"]


def test_storage_options_are_refused_with_peers_before_anything_is_built(bench, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["pipeline.py", "--tiny", "--device", "cpu", "--fp8", "rowwise"])
    monkeypatch.setattr(bench, "build_ours", lambda *a: pytest.fail("built before checking the arguments"))
    with pytest.raises(SystemExit, match=r"--fp8 / --vram .* the peers \['ltx', 'diffusers'\] .* --impl ours"):
        bench.main()


def test_cache_flag_names_the_caches_it_knows(bench):
    with pytest.raises(SystemExit, match=r"--cache 'teacache': use fbc:THRESHOLD .* or taylorseer:INTERVAL"):
        bench.enable_step_cache(SimpleNamespace(), "teacache")


def test_markdown_table_and_stage_split(bench):
    marks = bench.Marks(SimpleNamespace(type="cpu"))
    for seconds, name in enumerate(("start", "text", "upsample_start", "upsample_end", "decode_start", "end", "mp4")):
        marks.points[name] = float(seconds * seconds)
    assert bench.stage_seconds(marks) == {"text": 1, "stage_1": 3, "upsample": 5, "stage_2": 7, "decode": 9,
                                          "mp4": 11}  # fmt: skip
    row = {"workload": "dev", "impl": "ltx", "warm_s": 2.0, "first_call_s": 3.0, "cold_start_s": None,
           "peak_gib": 65.25, "stages": None}  # fmt: skip
    report = {"device": "H100", "torch": "2.x", "date": "d", "cap_gib": 24, "rows": [row]}
    lines = bench.markdown(report).splitlines()
    assert lines[0] == "H100, torch 2.x, d, cap 24"
    assert lines[-1] == "| dev | ltx | 2.00s | 3.00s | – | 65.25 GiB | – | – | – | – | – | – |"


def test_tiny_cpu_run_reports_every_implementation(tiny_run, bench):
    result, report_path, out_dir = tiny_run["child"].result(timeout=900), tiny_run["report"], tiny_run["out"]
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert (report["device"], report["tiny"], report["iters"], report["cap_gib"]) == ("cpu", True, 1, None)
    assert [(row["workload"], row["impl"]) for row in report["rows"]] == [
        ("distilled", "ours"), ("distilled", "ltx"), ("distilled", "diffusers"),
    ]  # fmt: skip
    for row in report["rows"]:
        assert set(row) == ROW_FIELDS
        assert (row["height"], row["width"], row["num_frames"], row["steps"]) == (64, 64, 9, None)
        assert row["first_call_s"] > 0 and row["warm_all_s"] == [row["warm_s"]] and row["warm_s"] > 0
        assert row["peak_gib"] is None and row["finite"] is True  # no GPU; random tiny weights stay finite
        with av.open(str(out_dir / f"{row['impl']}-distilled.mp4")) as container:
            frames = list(container.decode(video=0))
            assert (len(frames), frames[0].width, frames[0].height) == (9, 64, 64)
            assert container.streams.audio, f"{row['impl']}: the mp4 has no audio track"
    ours, *peers = report["rows"]
    assert list(ours["stages"]) == list(bench.STAGES)
    assert all(seconds >= 0 for seconds in ours["stages"].values())
    # the stages of the last call cover it: start -> mp4 written
    assert sum(ours["stages"].values()) == pytest.approx(ours["warm_s"], rel=0.1, abs=0.05)
    assert 0 < ours["load_s"] < ours["cold_start_s"]
    assert (out_dir / "ltx2-benchmark-pipeline" / "model_index.json").is_file() and (out_dir / "cold.mp4").is_file()
    assert all(p["stages"] is None and p["cold_start_s"] is None and p["load_s"] is None for p in peers)
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| workload | impl | warm (median) |"))
    assert [line.split(" | ")[1] for line in lines[header + 2 :]] == ["ours", "ltx", "diffusers"]
