"""Acceptance 2: diffusers' in-tree LTX2VideoTransformer3DModel folders load into ours (strict) with equal outputs, and
folders we save load into diffusers' class; ours accepts the keyword arguments diffusers' pipelines pass."""

import pytest
import torch
from _transformer_helpers import FPS, FRAMES, HEIGHT, OUR_CONFIGS, WIDTH, init_every_parameter, make_inputs
from diffusers.models.transformers.transformer_ltx2 import LTX2VideoTransformer3DModel as DiffusersTransformer

from ltx2_diffusers import LTX2VideoTransformer3DModel

LAYOUTS = ["ltx2", "ltx23"]
TOLERANCE = dict(rtol=0, atol=1e-5)


def diffusers_kwargs(inputs, **extra):
    return dict(
        hidden_states=inputs.video,
        audio_hidden_states=inputs.audio,
        encoder_hidden_states=inputs.video_context,
        audio_encoder_hidden_states=inputs.audio_context,
        timestep=inputs.video_sigma * 1000,
        sigma=inputs.video_sigma * 1000,
        audio_sigma=inputs.audio_sigma * 1000,
        video_coords=inputs.video_positions,
        audio_coords=inputs.audio_positions,
        use_cross_timestep=True,
        return_dict=False,
        **extra,
    )


def diffusers_model(layout):
    model = DiffusersTransformer(**OUR_CONFIGS[layout])  # rope_type="split", the released value
    init_every_parameter(model, seed=11)
    return model.eval()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_diffusers_folder_loads_strictly_and_matches(layout, tmp_path):
    theirs = diffusers_model(layout)
    theirs.save_pretrained(tmp_path / "theirs")
    ours, info = LTX2VideoTransformer3DModel.from_pretrained(tmp_path / "theirs", output_loading_info=True)
    assert all(not info[key] for key in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs")), info
    assert set(ours.state_dict()) == set(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict(), strict=True)  # the strict check, independent of from_pretrained
    ours.set_reference("1.0")  # diffusers 0.42.1's use_cross_timestep=True is ltx-core 1.0.0's A<->V rule
    inputs = make_inputs(layout, 2, video_sigma=[0.9, 0.4], audio_sigma=[0.3, 0.8])
    with torch.no_grad():
        expected = theirs(**diffusers_kwargs(inputs))
        got = ours.eval()(**diffusers_kwargs(inputs))
    torch.testing.assert_close(got[0], expected[0], **TOLERANCE)
    torch.testing.assert_close(got[1], expected[1], **TOLERANCE)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_our_folder_loads_into_diffusers(layout, tmp_path):
    ours = LTX2VideoTransformer3DModel(**OUR_CONFIGS[layout])
    init_every_parameter(ours, seed=12)
    ours.save_pretrained(tmp_path / "ours")
    theirs, info = DiffusersTransformer.from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert all(not info[key] for key in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs")), info
    assert theirs.config.rope_type == "split"
    inputs = make_inputs(layout, 2)
    with torch.no_grad():
        expected = theirs.eval()(**diffusers_kwargs(inputs))
        got = ours.eval()(**diffusers_kwargs(inputs))
    torch.testing.assert_close(got[0], expected[0], **TOLERANCE)
    torch.testing.assert_close(got[1], expected[1], **TOLERANCE)


def test_diffusers_guidance_arguments_mean_the_same():
    # LTX-2.3 config (perturbed_attn=True, so diffusers' STG is active): STG on block 1 for sample 0, isolation,
    # and diffusers' legacy use_cross_timestep=False
    theirs = diffusers_model("ltx23")
    ours = LTX2VideoTransformer3DModel(**OUR_CONFIGS["ltx23"]).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    ours.set_reference("1.0")  # diffusers 0.42.1's use_cross_timestep=True is ltx-core 1.0.0's A<->V rule
    inputs = make_inputs("ltx23", 2, video_sigma=[0.9, 0.4], audio_sigma=[0.3, 0.8])
    for extra in [
        dict(spatio_temporal_guidance_blocks=[1], perturbation_mask=torch.tensor([0.0, 1.0])),
        dict(isolate_modalities=True),
    ]:
        with torch.no_grad():
            expected, got = theirs(**diffusers_kwargs(inputs, **extra)), ours(**diffusers_kwargs(inputs, **extra))
        torch.testing.assert_close(got[0], expected[0], **TOLERANCE)
        torch.testing.assert_close(got[1], expected[1], **TOLERANCE)
    legacy = {**diffusers_kwargs(inputs), "use_cross_timestep": False}
    with torch.no_grad():
        torch.testing.assert_close(ours(**legacy)[0], theirs(**legacy)[0], **TOLERANCE)


def test_called_like_diffusers_pipeline():
    # what LTX2Pipeline does with `self.transformer`: coordinates, config, cache context, then the call
    ours = LTX2VideoTransformer3DModel(**OUR_CONFIGS["ltx2"]).eval()
    assert (ours.config.patch_size, ours.config.patch_size_t, ours.config.in_channels) == (1, 1, 8)
    video_coords = ours.rope.prepare_video_coords(2, FRAMES, HEIGHT, WIDTH, torch.device("cpu"), fps=FPS)
    audio_coords = ours.audio_rope.prepare_audio_coords(2, 5, torch.device("cpu"))
    inputs = make_inputs("ltx2", 2)
    torch.testing.assert_close(video_coords, inputs.video_positions, rtol=0, atol=0)  # float32 model: float32
    assert ours.to(torch.bfloat16).rope.prepare_video_coords(1, 2, 2, 2).dtype == torch.bfloat16  # as the reference
    ours.float()
    torch.testing.assert_close(audio_coords, inputs.audio_positions, rtol=0, atol=0)
    timestep = torch.tensor(600.0).expand(2)
    with ours.cache_context("cond_uncond"), torch.no_grad():
        video, audio = ours(
            hidden_states=inputs.video,
            audio_hidden_states=inputs.audio,
            encoder_hidden_states=inputs.video_context,
            audio_encoder_hidden_states=inputs.audio_context,
            timestep=timestep,
            sigma=timestep,
            encoder_attention_mask=torch.ones(2, 7),
            audio_encoder_attention_mask=torch.ones(2, 7),
            num_frames=FRAMES,
            height=HEIGHT,
            width=WIDTH,
            fps=FPS,
            audio_num_frames=5,
            video_coords=video_coords,
            audio_coords=audio_coords,
            isolate_modalities=False,
            spatio_temporal_guidance_blocks=None,
            perturbation_mask=None,
            use_cross_timestep=True,
            attention_kwargs=None,
            return_dict=False,
        )
        # an all-ones text mask is the same as no mask
        unmasked = ours(
            **diffusers_kwargs(inputs, attention_kwargs={"scale": 1.0})
            | {"timestep": timestep, "sigma": timestep, "audio_sigma": None}
        )
    assert video.shape == (2, FRAMES * HEIGHT * WIDTH, 8) and audio.shape == (2, 5, 8)
    torch.testing.assert_close(video, unmasked[0], rtol=0, atol=1e-6)


def test_peft_lora_adapter_and_scale():
    from peft import LoraConfig

    model = LTX2VideoTransformer3DModel(**OUR_CONFIGS["ltx2"]).eval()
    init_every_parameter(model, seed=13)
    inputs = make_inputs("ltx2", 1)
    with torch.no_grad():
        base = model(**inputs.ours())[0]
        targets = ["to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2"]
        model.add_adapter(LoraConfig(r=4, target_modules=targets, init_lora_weights=False))
        adapted = model(**inputs.ours())[0]
        switched_off = model(**inputs.ours(), attention_kwargs={"scale": 0.0})[0]  # diffusers' LoRA strength
        after = model(**inputs.ours())[0]  # the scale is undone after the call
    assert (adapted - base).abs().max() > 1e-2
    torch.testing.assert_close(switched_off, base, rtol=0, atol=1e-6)
    torch.testing.assert_close(after, adapted, rtol=0, atol=0)


def test_ltx25_style_config_matches_diffusers(tmp_path):
    # diffusers' newer keys: no FFN bias, static prompt table (no prompt AdaLN), keyframe marker embedding
    config = dict(
        OUR_CONFIGS["ltx23"], ff_bias=False, use_prompt_adaln_single=False, use_keyframes_abs_pos_embedding=True
    )
    theirs = DiffusersTransformer(**config)
    init_every_parameter(theirs, seed=14)
    theirs.save_pretrained(tmp_path)
    ours, info = LTX2VideoTransformer3DModel.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    inputs = make_inputs("ltx23", 2)
    keyframes = torch.zeros(2, FRAMES * HEIGHT * WIDTH, 1)
    keyframes[:, : HEIGHT * WIDTH] = 1.0
    with torch.no_grad():
        expected = theirs.eval()(**diffusers_kwargs(inputs, video_keyframes_mask=keyframes))
        got = ours.eval()(**diffusers_kwargs(inputs, video_keyframes_mask=keyframes))
        unmarked = ours(**diffusers_kwargs(inputs))
    torch.testing.assert_close(got[0], expected[0], **TOLERANCE)
    torch.testing.assert_close(got[1], expected[1], **TOLERANCE)
    assert (unmarked[0] - got[0]).abs().max() > 1e-3


def test_drop_in_inside_diffusers_ltx2_pipeline(tmp_path):
    # diffusers' own LTX2Pipeline with its DEFAULT guidance (CFG 4, STG 1 on block 28, modality 3; 2 steps) gives the
    # same latents with our transformer as with its own. Its STG pass sends spatio_temporal_guidance_blocks=[28] and
    # perturbation_mask=None, which diffusers defines as "perturb every sample"; the tiny transformer has 30 blocks and
    # perturbed_attn=True, so diffusers' STG really runs (with perturbed_attn=False it would silently do nothing).
    import diffusers
    from diffusers.pipelines.ltx2 import LTX2TextConnectors, LTX2Vocoder

    from ltx2_diffusers.pipelines.tiny import build_tiny_pipeline, tiny_transformer_config

    tiny = build_tiny_pipeline(seed=1)
    tiny.save_pretrained(tmp_path)

    def diffusers_pipeline(transformer):
        pipe = diffusers.LTX2Pipeline(
            scheduler=diffusers.FlowMatchEulerDiscreteScheduler(),
            vae=diffusers.AutoencoderKLLTX2Video.from_pretrained(tmp_path, subfolder="vae"),
            audio_vae=diffusers.AutoencoderKLLTX2Audio.from_pretrained(tmp_path, subfolder="audio_vae"),
            text_encoder=tiny.text_encoder,
            tokenizer=tiny.tokenizer,
            connectors=LTX2TextConnectors.from_pretrained(tmp_path, subfolder="connectors"),
            transformer=transformer,
            vocoder=LTX2Vocoder.from_pretrained(tmp_path, subfolder="vocoder"),
        )
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def generate(pipe, **kwargs):
        return pipe(
            "a cat", num_frames=17, height=128, width=128, num_inference_steps=2, output_type="latent",
            generator=torch.Generator().manual_seed(0), **kwargs,
        )  # fmt: skip

    # 2 x 2 x 2 video tokens (diffusers reads this VAE as 16x / 64x): with one token STG is a no-op, as softmax over a
    # single key returns its value. O(1) weights: with the tiny pipeline's N(0, 0.05) ones, STG in one block moves the
    # latents by only ~1e-6, below the tolerance, so the test could not tell STG from no STG.
    config = tiny_transformer_config()
    assert config["perturbed_attn"] and config["num_layers"] > 28
    diffusers_transformer = DiffusersTransformer(**config)
    init_every_parameter(diffusers_transformer, seed=15)
    our_transformer = LTX2VideoTransformer3DModel(**config)
    our_transformer.load_state_dict(diffusers_transformer.state_dict(), strict=True)
    theirs, ours = diffusers_pipeline(diffusers_transformer.eval()), diffusers_pipeline(our_transformer.eval())
    expected, got = generate(theirs), generate(ours)
    # Exact up to summation order: diffusers returns the values where every sample is perturbed, we lerp to them
    # (torch.lerp(v, attention, 0) is v bit for bit).
    torch.testing.assert_close(got.frames, expected.frames, rtol=0, atol=1e-6)
    torch.testing.assert_close(got.audio, expected.audio, rtol=0, atol=1e-6)
    # the STG pass really perturbed something: without it the latents differ
    without_stg = generate(ours, stg_scale=0.0, audio_stg_scale=0.0)
    assert (without_stg.frames - got.frames).abs().max() > 1e-2
    assert (without_stg.audio - got.audio).abs().max() > 1e-2
