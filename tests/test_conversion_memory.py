"""Streaming: converting a ~2 GB file (the released x2 upscaler's real size: 498M fp32 parameters) peaks far below
its size. Measured as the peak RSS of a fresh subprocess that converts it, dtype change included (fp32 -> bf16)."""

import json
import os
import struct
import subprocess
import sys
import textwrap

import pytest

import ltx2_diffusers
from ltx2_diffusers.loaders import metadata as md
from ltx2_diffusers.loaders import single_file as sf

# ltx-2-spatial-upscaler-x2-1.0's metadata (spec §4)
RELEASED_X2 = {
    "_class_name": "LatentUpsampler",
    "in_channels": 128,
    "mid_channels": 1024,
    "num_blocks_per_stage": 4,
    "dims": 3,
    "spatial_upsample": True,
    "temporal_upsample": False,
    "spatial_scale": 2.0,
    "rational_resampler": False,
}


def write_synthetic(path, config: dict) -> int:
    """An fp32 file with every tensor of the model `config` describes, filled with a repeated random block, written
    without ever holding a tensor in memory. Returns its size in bytes."""
    shapes = sf.expected_state_dict_shapes(ltx2_diffusers.LTX2LatentUpsamplerModel, md.upsampler_config_from_original(config))
    header, offset = {"__metadata__": {"config": json.dumps(config)}}, 0
    for name, shape in sorted(shapes.items()):
        nbytes = 4
        for size in shape:
            nbytes *= size
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    block = os.urandom(2**20)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)) + encoded)
        remaining = offset
        while remaining:
            f.write(block[: min(len(block), remaining)])
            remaining -= min(len(block), remaining)
    return os.path.getsize(path)


@pytest.mark.slow
def test_peak_rss_of_a_2gb_conversion_stays_under_1gb(tmp_path):
    source = tmp_path / "ltx-2-spatial-upscaler-x2-1.0.safetensors"
    # The child imports while this process writes the file (CI has 2 cores), and converts once told the file is there.
    code = textwrap.dedent(
        f"""
        import resource, sys
        from ltx2_diffusers.conversion import convert_original_to_diffusers
        assert sys.stdin.readline() == "written\\n"
        convert_original_to_diffusers(None, {str(tmp_path / "out")!r}, upsampler={str(source)!r}, dtype="bf16")
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        size = write_synthetic(source, RELEASED_X2)
        assert size > 1.9e9
        stdout, stderr = child.communicate("written\n", timeout=600)
        assert child.returncode == 0, stderr[-2000:]
        peak_bytes = int(stdout.split()[-1]) * 1024
        assert peak_bytes < 1e9, f"peak RSS {peak_bytes / 1e9:.2f} GB converting a {size / 1e9:.2f} GB file"
        written = sum(p.stat().st_size for p in (tmp_path / "out").glob("*.safetensors"))
        assert abs(written - size / 2) < 1e6  # bf16: half the bytes
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
        source.unlink(missing_ok=True)
        for path in (tmp_path / "out").glob("*"):
            path.unlink()
