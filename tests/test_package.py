import pytest
from helpers.fresh_python import python

import ltx2_diffusers
from ltx2_diffusers.loaders.renames import invert_renames, rename_keys

# Import order needs fresh interpreters. Both start with the module's first test (`fresh`, used by every test) and run
# beside the in-process tests; the last two tests read them.
LTX2_FIRST = """
import sys
meta_path = list(sys.meta_path)
import ltx2_diffusers
print('torch' in sys.modules, 'diffusers' in sys.modules)
import diffusers
print(sys.meta_path == meta_path, 'ltx2_diffusers.pipelines.pipeline_ltx2_av' in sys.modules)
print(diffusers.LTX2AVPipeline is ltx2_diffusers.LTX2AVPipeline, diffusers.LTX2Pipeline.__module__)
print(diffusers.LTX2AVPipeline.__module__, diffusers.LTX2AVRetakePipeline.__name__)
"""
DIFFUSERS_FIRST = """
import diffusers, ltx2_diffusers
print(diffusers.LTX2AVPipeline.__module__, diffusers.LTX2AVRetakePipeline.__name__)
"""


@pytest.fixture(scope="module")
def fresh():
    children = {"ltx2_first": python(LTX2_FIRST), "diffusers_first": python(DIFFUSERS_FIRST)}
    yield children
    for child in children.values():
        child.stop()


pytestmark = pytest.mark.usefixtures("fresh")


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


def test_import_is_light_and_registers_with_diffusers_in_either_order(fresh):
    light, _, _, registered = fresh["ltx2_first"].stdout().splitlines()
    # `import ltx2_diffusers` imports neither torch nor diffusers (the CLI's --help and the presets stay fast) ...
    assert light == "False False"
    # ... and DiffusionPipeline.from_pretrained still finds our pipelines, whichever package was imported first
    expected = "ltx2_diffusers.pipelines.pipeline_ltx2_av LTX2AVRetakePipeline"
    assert registered == expected
    assert fresh["diffusers_first"].stdout() == expected


def test_import_enters_our_pipeline_in_diffusers_lazily(fresh):
    """`import ltx2_diffusers` registers LTX2AVPipeline with diffusers without importing the pipeline module; the first
    access through `diffusers` imports it and gives our class. No import hook is left behind."""
    _, lazy, first_access, _ = fresh["ltx2_first"].stdout().splitlines()
    assert [lazy, first_access] == ["True False", "True diffusers.pipelines.ltx2.pipeline_ltx2"]
