"""Acceptance 3 and 4: batched guidance passes equal separate forwards; one block compiles with fullgraph=True.
Also: gradient checkpointing, the attention backend switch, and the errors of the guidance arguments."""

import pytest
import torch
from _transformer_helpers import OUR_CONFIGS, init_every_parameter, make_inputs

from ltx2_diffusers import LTX2VideoTransformer3DModel
from ltx2_diffusers.models.perturbations import Perturbations
from ltx2_diffusers.models.transformer_ltx2 import BlockPerturbation, StreamInputs


@pytest.fixture(scope="module", params=["ltx2", "ltx23"])
def model(request):
    model = LTX2VideoTransformer3DModel(**OUR_CONFIGS[request.param])
    init_every_parameter(model, seed=21)
    return request.param, model.eval()


def test_batched_guidance_equals_separate_forwards(model):
    # one forward of [cond, uncond, STG-perturbed, modality-isolated] = the four passes run one at a time
    layout, model = model
    cond = make_inputs(layout, 1, seed=1, condition_first_frame=True)
    uncond = make_inputs(layout, 1, seed=2, condition_first_frame=True)
    uncond.video, uncond.audio = cond.video, cond.audio  # same latents, other (negative) context
    batch = make_inputs(layout, 4, seed=1, condition_first_frame=True)
    for name in ("video", "audio"):
        setattr(batch, name, getattr(cond, name).expand(4, -1, -1).clone())
    for name in ("video_context", "audio_context"):
        setattr(
            batch,
            name,
            torch.cat([getattr(cond, name), getattr(uncond, name), getattr(cond, name), getattr(cond, name)]),
        )
    perturbations = Perturbations(
        video_stg_blocks=(1,),
        audio_stg_blocks=(1,),
        video_stg_mask=torch.tensor([0.0, 0.0, 1.0, 0.0]),
        audio_stg_mask=torch.tensor([0.0, 0.0, 1.0, 0.0]),
        skip_a2v_mask=torch.tensor([0.0, 0.0, 0.0, 1.0]),
        skip_v2a_mask=torch.tensor([0.0, 0.0, 0.0, 1.0]),
    )
    with torch.no_grad():
        batched = model(**batch.ours(), perturbations=perturbations)
        separate = [
            model(**cond.ours()),
            model(**uncond.ours()),
            model(**cond.ours(), spatio_temporal_guidance_blocks=[1], perturbation_mask=torch.zeros(1)),
            model(**cond.ours(), isolate_modalities=True),
        ]
    for stream in (0, 1):
        torch.testing.assert_close(batched[stream], torch.cat([s[stream] for s in separate]), rtol=0, atol=1e-5)
    # the four passes really differ from each other
    for i in (1, 2, 3):
        assert (separate[i][0] - separate[0][0]).abs().max() > 1e-3


def block_and_inputs(layout, batch_size=2, stg=False):
    model = LTX2VideoTransformer3DModel(**OUR_CONFIGS[layout]).eval()
    inputs = make_inputs(layout, batch_size)
    kwargs = inputs.ours()
    captured = {}

    def capture(module, args, output):
        captured.setdefault("args", args)

    handle = model.transformer_blocks[0].register_forward_hook(capture)
    perturbation = Perturbations(video_stg_blocks=(0,), video_stg_mask=torch.tensor([1.0, 0.0])) if stg else None
    with torch.no_grad():
        model(**kwargs, perturbations=perturbation)
    handle.remove()
    return model.transformer_blocks[0], captured["args"]


@pytest.mark.parametrize(("stg", "fused"), [(False, False), (True, False), (True, True)])
def test_block_compiles_fullgraph(stg, fused):
    block, args = block_and_inputs("ltx23", stg=stg)
    if fused:
        for attn in (block.attn1, block.audio_attn1):
            attn.fuse_projections(self_attention=True)
        for attn in (block.attn2, block.audio_attn2, block.audio_to_video_attn, block.video_to_audio_attn):
            attn.fuse_projections(self_attention=False)
    assert isinstance(args[2], StreamInputs) and isinstance(args[4], BlockPerturbation)
    assert (args[4].video_keep is not None) == stg
    torch._dynamo.reset()
    # aot_eager traces through AOTAutograd too (3 s); inductor works as well but costs over a minute on 2 cores
    compiled = torch.compile(block, fullgraph=True, backend="aot_eager")  # raises on any graph break
    with torch.no_grad():
        expected, got = block(*args), compiled(*args)
    torch.testing.assert_close(got[0], expected[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(got[1], expected[1], rtol=0, atol=1e-6)


def test_gradient_checkpointing_gives_the_same_gradients():
    model = LTX2VideoTransformer3DModel(**OUR_CONFIGS["ltx2"])
    init_every_parameter(model, seed=3)
    inputs = make_inputs("ltx2", 2, condition_first_frame=True)
    grads = []
    for checkpointing in (False, True):
        model.zero_grad()
        if checkpointing:
            model.enable_gradient_checkpointing()
        video, audio = model.train()(**inputs.ours())
        (video.square().mean() + audio.square().mean()).backward()
        grads.append(model.transformer_blocks[1].attn1.to_q.weight.grad.clone())
    assert model.gradient_checkpointing
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-6)


def test_attention_backend_switch():
    _, model = "ltx2", LTX2VideoTransformer3DModel(**OUR_CONFIGS["ltx2"]).eval()
    inputs = make_inputs("ltx2", 1)
    with torch.no_grad():
        default = model(**inputs.ours())[0]
        model.set_attention_backend("math")
        assert model.sdpa_backend == "math"
        math = model(**inputs.ours())[0]
        model.set_attention_backend("_native_math")  # diffusers' name
        assert model.sdpa_backend == "math"
        model.set_attention_backend("cudnn")  # no cuDNN attention on CPU: PyTorch raises instead of falling back
        with pytest.raises(RuntimeError):
            model(**inputs.ours())
        model.reset_attention_backend()
    torch.testing.assert_close(math, default, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="Unknown attention backend 'sage'"):
        model.set_attention_backend("sage")


def test_missing_mask_means_all_for_diffusers_arguments_and_none_for_perturbations():
    model = LTX2VideoTransformer3DModel(**OUR_CONFIGS["ltx2"]).eval()
    init_every_parameter(model, seed=21)
    kwargs = make_inputs("ltx2", 2).ours()
    both_streams = dict(video_stg_blocks=(1,), audio_stg_blocks=(1,))
    with torch.no_grad():
        plain = model(**kwargs)
        # diffusers' documented meaning: STG blocks without perturbation_mask perturb every sample
        diffusers_no_mask = model(**kwargs, spatio_temporal_guidance_blocks=[1])
        diffusers_all = model(**kwargs, spatio_temporal_guidance_blocks=[1], perturbation_mask=torch.zeros(2, 1, 1))
        ours_all = model(**kwargs, perturbations=Perturbations(**both_streams, video_stg_mask=torch.ones(2),
                                                               audio_stg_mask=torch.ones(2)))  # fmt: skip
        # ours: a mask left as None means no sample is perturbed
        ours_no_mask = model(**kwargs, perturbations=Perturbations(**both_streams))
    for stream in (0, 1):
        torch.testing.assert_close(diffusers_no_mask[stream], diffusers_all[stream], rtol=0, atol=0)
        torch.testing.assert_close(diffusers_no_mask[stream], ours_all[stream], rtol=0, atol=0)
        torch.testing.assert_close(ours_no_mask[stream], plain[stream], rtol=0, atol=0)
        assert (diffusers_no_mask[stream] - plain[stream]).abs().max() > 1e-3


def test_guidance_argument_errors():
    model = LTX2VideoTransformer3DModel(**OUR_CONFIGS["ltx2"]).eval()
    kwargs = make_inputs("ltx2", 2).ours()
    with pytest.raises(ValueError, match="without spatio_temporal_guidance_blocks"):
        model(**kwargs, perturbation_mask=torch.zeros(2))
    with pytest.raises(ValueError, match="not both"):
        model(
            **kwargs,
            spatio_temporal_guidance_blocks=[1],
            perturbation_mask=torch.zeros(2),
            perturbations=Perturbations(),
        )
    with pytest.raises(ValueError, match=r"blocks \[3\] must lie in \[0, 2\]"):
        model(**kwargs, perturbations=Perturbations(video_stg_blocks=(3,), video_stg_mask=torch.ones(2)))
    with pytest.raises(ValueError, match=r"video_stg_mask must have one value per sample, shape \(2,\)"):
        model(**kwargs, perturbations=Perturbations(video_stg_blocks=(1,), video_stg_mask=torch.ones(3)))
    with pytest.raises(ValueError, match="only 'scale'"):
        model(**kwargs, attention_kwargs={"foo": 1})


def test_input_errors():
    model = LTX2VideoTransformer3DModel(**OUR_CONFIGS["ltx2"]).eval()
    kwargs = make_inputs("ltx2", 2, condition_first_frame=True).ours()
    with pytest.raises(ValueError, match="audio_timestep must be given"):
        model(**{**kwargs, "audio_timestep": None})
    with pytest.raises(ValueError, match="sigma must be given"):
        model(**{**kwargs, "sigma": None})
    with pytest.raises(ValueError, match=r"T_v=24; got num_frames=2, height=3, width=3"):
        model(**{**kwargs, "video_coords": None}, num_frames=2, height=3, width=3)
    with pytest.raises(ValueError, match=r"video_coords must be \[start, end\) bounds of shape \(2, 3, 24, 2\)"):
        model(**{**kwargs, "video_coords": kwargs["video_coords"][:, :, :10]})
    with pytest.raises(ValueError, match=r"timestep must be \(B,\) or \(B, T\) with T=24"):
        model(**{**kwargs, "timestep": torch.ones(2, 5)})
    with pytest.raises(ValueError, match=r"self-attention mask must be \(B, 24, 24\)"):
        model(**kwargs | {"video_self_attention_mask": torch.ones(2, 24, 23)})


def test_positions_built_from_the_latent_shape_equal_given_ones():
    model = LTX2VideoTransformer3DModel(**OUR_CONFIGS["ltx2"]).eval()
    kwargs = make_inputs("ltx2", 2).ours()
    with torch.no_grad():
        given = model(**kwargs)
        built = model(**{**kwargs, "video_coords": None, "audio_coords": None}, num_frames=2, height=3, width=4)
    torch.testing.assert_close(built[0], given[0], rtol=0, atol=0)
    torch.testing.assert_close(built[1], given[1], rtol=0, atol=0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"patch_size": 2}, "patch_size=2 is not supported"),
        ({"cross_attn_mod": True}, "cross_attn_mod=True and audio_cross_attn_mod=False differ"),
        ({"audio_cross_attention_dim": 16}, "audio_cross_attention_dim=16 must equal the audio width"),
        ({"rope_type": "rotary"}, "rope_type must be 'split'"),
    ],
)
def test_config_errors(change, message):
    with pytest.raises(ValueError, match=message):
        LTX2VideoTransformer3DModel(**{**OUR_CONFIGS["ltx2"], **change})


def test_defaults_are_the_released_ltx2_values():
    with torch.device("meta"):
        model = LTX2VideoTransformer3DModel()
    cfg = model.config
    # rope_type keeps diffusers' default ("interleaved"), so that a config dict means the same model in both classes
    assert (cfg.rope_type, cfg.rope_double_precision, cfg.cross_attn_timestep_scale_multiplier) == (
        "interleaved",
        True,
        1000,
    )
    assert (cfg.num_layers, cfg.num_attention_heads * cfg.attention_head_dim, cfg.caption_channels) == (48, 4096, 3840)
    assert sum(p.numel() for p in model.parameters()) == 18_876_174_592  # diffusers-ltx2 §1.3


def test_fused_projections_same_outputs_and_round_trip(tmp_path):
    model = LTX2VideoTransformer3DModel(**OUR_CONFIGS["ltx23"]).eval()
    init_every_parameter(model, seed=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    inputs = make_inputs("ltx23", 2, condition_first_frame=True)
    perturbations = Perturbations(video_stg_blocks=(1,), video_stg_mask=torch.tensor([1.0, 0.0]))
    with torch.no_grad():
        expected = model(**inputs.ours(), perturbations=perturbations)
        model.fuse_qkv_projections()
        assert "transformer_blocks.0.attn1.to_qkv.weight" in model.state_dict()
        assert "transformer_blocks.0.attn1.to_q.weight" not in model.state_dict()  # freed, not duplicated
        assert "transformer_blocks.0.video_to_audio_attn.to_kv.weight" in model.state_dict()
        got = model(**inputs.ours(), perturbations=perturbations)
    torch.testing.assert_close(got[0], expected[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(got[1], expected[1], rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="unfuse_qkv_projections"):
        model.save_pretrained(tmp_path)
    model.unfuse_qkv_projections()
    after = model.state_dict()
    assert set(after) == set(before)
    assert all(torch.equal(after[k], before[k]) for k in before)


def test_diffusers_compile_repeated_blocks_fullgraph():
    # diffusers' `compile_repeated_blocks` finds our blocks through `_repeated_blocks`; 3 blocks share one graph
    model = LTX2VideoTransformer3DModel(**OUR_CONFIGS["ltx23"]).eval()
    inputs = make_inputs("ltx23", 2)
    torch._dynamo.reset()
    with torch.no_grad():
        expected = model(**inputs.ours())
        model.compile_repeated_blocks(fullgraph=True, backend="aot_eager")
        got = model(**inputs.ours())
    torch.testing.assert_close(got[0], expected[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(got[1], expected[1], rtol=0, atol=1e-6)
