import pytest

import ltx2_diffusers
from ltx2_diffusers.loaders.renames import invert_renames, rename_keys


def test_unknown_attribute_raises():
    with pytest.raises(AttributeError, match="no attribute 'NotAThing'"):
        ltx2_diffusers.NotAThing  # noqa: B018


def test_public_names_resolve_to_their_classes():
    from ltx2_diffusers.pipelines.pipeline_ltx2_av import LTX2AVPipeline

    assert ltx2_diffusers.LTX2AVPipeline is LTX2AVPipeline
    assert set(dir(ltx2_diffusers)) == set(ltx2_diffusers.__all__)
    assert "diffusers" not in ltx2_diffusers.__all__


def test_rename_keys_applies_rows_in_order_and_inverts():
    renames = ((r"^model\.diffusion_model\.", ""), (r"\.q_norm\.", ".norm_q."))
    mapping = rename_keys(["model.diffusion_model.a.q_norm.weight", "model.diffusion_model.b"], renames)
    assert mapping == {"model.diffusion_model.a.q_norm.weight": "a.norm_q.weight", "model.diffusion_model.b": "b"}
    assert invert_renames(mapping)["b"] == "model.diffusion_model.b"


def test_rename_keys_rejects_collisions():
    with pytest.raises(ValueError, match="both map to 'x'"):
        rename_keys(["p.x", "q.x"], ((r"^[pq]\.", ""),))


def _python(code: str) -> str:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_import_is_light_and_registers_with_diffusers_in_either_order():
    # `import ltx2_diffusers` imports neither torch nor diffusers (the CLI's --help and the presets stay fast) ...
    assert _python("import sys, ltx2_diffusers; print('torch' in sys.modules, 'diffusers' in sys.modules)") == (
        "False False"
    )
    # ... and DiffusionPipeline.from_pretrained still finds our pipelines, whichever package was imported first
    registered = "import diffusers; print(diffusers.LTX2AVPipeline.__module__, diffusers.LTX2AVRetakePipeline.__name__)"
    expected = "ltx2_diffusers.pipelines.pipeline_ltx2_av LTX2AVRetakePipeline"
    assert _python("import ltx2_diffusers\n" + registered) == expected
    assert _python("import diffusers, ltx2_diffusers\n" + registered) == expected
