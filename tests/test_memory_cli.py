"""`--vram GB`: a bad budget, or a budget where it cannot apply, exits with status 2 and one line naming --vram,
before any weights load."""

import pytest

import ltx2_diffusers.cli.run as cli_run
from ltx2_diffusers.cli import main

T = ["--model", "tiny", "--frames", "9", "--height", "64", "--width", "64"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--vram", "lots"], "--vram: 'lots' is not a memory size: write e.g. '24GB' / '24GiB' (GiB)"),
        (["--vram", "0.5"], "--vram: '0.5' is 512 MiB: the smallest budget planned for is 1 GiB"),
        (["--vram", "24", "--device", "cpu"], "--vram: budgets GPU memory; the device is cpu (use --device cuda)"),
    ],
)
def test_bad_vram_fails_early_on_one_line(extra, message, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli_run, "load_pipeline", lambda *a, **k: pytest.fail("weights were loaded"))
    code = main(["generate", "p", "-o", str(tmp_path / "a.mp4"), *T, *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("ltx2-diffusers generate: error: ") and "\n" not in err
    assert message in err, err
