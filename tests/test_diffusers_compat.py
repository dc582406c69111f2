"""`ltx2_diffusers.diffusers_compat`'s own contract, beside the documentation examples (test_diffusers_examples.py):
diffusers' constants, raw latents out and in, the upsample pipeline, and errors before any encoding."""

import pytest
import torch

from ltx2_diffusers.models.autoencoder_kl_ltx2 import denormalize_latents


def test_compat_matches_diffusers_forms_and_our_pipeline():
    from diffusers.pipelines.ltx2 import utils as diffusers_ltx2

    from ltx2_diffusers import LTX2AVPipeline, LTX2LatentUpsamplerModel
    from ltx2_diffusers.diffusers_compat import (
        DISTILLED_SIGMA_VALUES,
        STAGE_2_DISTILLED_SIGMA_VALUES,
        LTX2LatentUpsamplePipeline,
        LTX2Pipeline,
    )
    from ltx2_diffusers.pipelines.tiny import TINY_LATENT_UPSAMPLER_CONFIG, build_tiny_pipeline

    assert DISTILLED_SIGMA_VALUES == diffusers_ltx2.DISTILLED_SIGMA_VALUES
    assert STAGE_2_DISTILLED_SIGMA_VALUES == diffusers_ltx2.STAGE_2_DISTILLED_SIGMA_VALUES
    ours = build_tiny_pipeline()
    compat = LTX2Pipeline(**ours.components)
    call = dict(prompt="a cat", height=64, width=64, num_frames=9, num_inference_steps=2, output_type="latent")
    video, audio = compat(**call, generator=torch.Generator().manual_seed(0), return_dict=False)
    expected_video, expected_audio = LTX2AVPipeline.__call__(
        ours, **call, generator=torch.Generator().manual_seed(0), return_dict=False
    )
    # diffusers' latent output is raw (un-normalised); ours is the transformer's normalised latents
    torch.testing.assert_close(video, denormalize_latents(expected_video, ours.vae.latents_mean, ours.vae.latents_std))
    torch.testing.assert_close(audio, ours.audio_vae.denormalize_latents(expected_audio))
    # diffusers' callback names ("latents" is our "video_latents"); the same call, so the same result
    seen = []

    def on_step_end(pipe, step_index, timestep, tensors):
        seen.append((step_index, sorted(tensors)))
        return {}

    video_again, _ = compat(
        **call, generator=torch.Generator().manual_seed(0), return_dict=False, callback_on_step_end=on_step_end,
        callback_on_step_end_tensor_inputs=["latents", "audio_latents"],
    )  # fmt: skip
    assert seen == [(0, ["audio_latents", "latents"]), (1, ["audio_latents", "latents"])]
    torch.testing.assert_close(video_again, video)
    # given back (noise_scale 0: used as they are), the latents' shapes give the clip's size
    again = compat(prompt="a cat", latents=video, audio_latents=audio, sigmas=[0.5, 0.0], output_type="latent")
    assert again.frames.shape == video.shape and again.audio.shape == audio.shape
    upsampler = LTX2LatentUpsamplerModel(**TINY_LATENT_UPSAMPLER_CONFIG).eval()
    (upsampled,) = LTX2LatentUpsamplePipeline(ours.vae, upsampler)(
        latents=video, output_type="latent", return_dict=False
    )
    torch.testing.assert_close(upsampled, upsampler(video), atol=1e-5, rtol=1e-5)  # diffusers: upsampler on raw latents


@pytest.mark.parametrize(
    ("call", "match"),
    [
        ({"latents": torch.zeros(1, 128, 2, 2, 2)}, "pass latents and audio_latents together"),
        ({"use_cross_timestep": False}, "use_cross_timestep=False is not supported"),
        ({"enable_prompt_enhancement": True}, "enable_prompt_enhancement needs system_prompt="),
        ({"noise_scale": 1.5}, r"noise_scale must lie in \[0, 1\]"),
        (
            {"latents": torch.zeros(1, 128, 2, 2, 2), "audio_latents": torch.zeros(1, 8, 9, 16), "height": 128},
            "height=128 disagrees with latents of shape",
        ),
        (
            {"latents": torch.zeros(1, 128, 2, 2, 2), "audio_latents": torch.zeros(1, 8, 5, 16)},
            r"audio_latents of shape \(1, 8, 5, 16\) do not fit 9 frames",
        ),
        ({"conditions": {"index": 2}}, "latent index 2, but 9 frames have only 2 latent frames"),
        # validation's rules and wording (pipelines/validation.py), with diffusers' argument names
        ({"conditions": {"strength": 1.5}}, r"^conditions\[0\]\.strength=1\.5 is outside \[0, 1\]: 1\.0 keeps the "),
        (
            {"conditions": {"frames": [torch.zeros(9, 64, 64, 3, dtype=torch.uint8)], "strength": -0.5}},
            r"^conditions\[0\]\.strength=-0\.5 is outside \[0, 1\]",
        ),
        (
            {"conditions": {"frames": torch.zeros(9, 64, 64, 3, dtype=torch.uint8), "strength": 2.0}},
            r"^conditions\[0\]\.strength=2\.0 is outside \[0, 1\]",
        ),
        ({"conditions": {"crf": 60}}, r"^conditions\[0\]\.crf=60 is above 51, libx264's range"),
        ({"conditions": {"frames": "missing.png"}}, r"^conditions\[0\]\.frames='missing\.png': no such file$"),
        ({"image": "missing.png"}, r"^image='missing\.png': no such file$"),
        ({"num_frames": 10}, r"^num_frames=10 is not of the form 8\*k \+ 1, .* Use 9 or 17\.$"),
        ({"width": 80}, r"^width=80 is not a positive multiple of 32 \(the video VAE compresses space 32x\)\. Use 64 "),
        ({"sigmas": [1.0, 0.5, 0.7]}, r"^sigmas=\[1\.0, 0\.5, 0\.7, 0\.0\] must decrease strictly"),
        ({"sigmas": [1.0, 0.5]}, r"^num_inference_steps=1 disagrees with sigmas, which has 2 steps"),
        ({"num_inference_steps": 1001}, r"^num_inference_steps=1001 is above 1000 .* pass allow_large=True"),
        ({"output_type": "mp4"}, r"^output_type='mp4' is not one of 'pil', 'np', 'pt', 'latent'$"),
        (
            {"callback_on_step_end_tensor_inputs": ["video_latents"]},
            r"^callback_on_step_end_tensor_inputs has \['video_latents'\], which this pipeline does not pass: choose "
            r"from \['latents', 'audio_latents'\]$",
        ),
        ({"generator": [torch.Generator()] * 2}, r"^generator is a list of 2 generators for a batch of 1 "),
        (
            {"negative_prompt": ["a", "b"]},
            r"^negative_prompt has 2 entries for 1 prompts: pass one, or one per prompt$",
        ),
    ],
)
def test_compat_errors(call, match, monkeypatch):
    """Every argument is checked before any prompt is encoded."""
    from ltx2_diffusers import diffusers_compat
    from ltx2_diffusers.diffusers_compat import LTX2ConditionPipeline, LTX2VideoCondition
    from ltx2_diffusers.pipelines.tiny import build_tiny_pipeline

    def encoded_too_early(*args, **kwargs):
        raise AssertionError("prompts were encoded before every argument was checked")

    monkeypatch.setattr(diffusers_compat, "prompt_contexts", encoded_too_early)
    pipe = LTX2ConditionPipeline(**build_tiny_pipeline().components)
    if isinstance(call.get("conditions"), dict):  # LTX2VideoCondition's fields, over a prepared 64 x 64 image
        call["conditions"] = [LTX2VideoCondition(**{"frames": torch.zeros(3, 64, 64), **call["conditions"]})]
    with pytest.raises(ValueError, match=match):
        pipe(prompt="a cat", **{"height": 64, "width": 64, "num_frames": 9, "num_inference_steps": 1, **call})


def test_compat_media_and_upsampler_errors():
    from PIL import Image

    from ltx2_diffusers.diffusers_compat import LTX2LatentUpsamplePipeline, LTX2LatentUpsamplerModel, load_image
    from ltx2_diffusers.pipelines.tiny import TINY_LATENT_UPSAMPLER_CONFIG, build_tiny_pipeline

    with pytest.raises(ValueError, match="takes a local file here, got the URL"):
        load_image("https://example.com/a.png")
    rgb = load_image(Image.new("RGBA", (4, 2), (10, 20, 30, 0)))  # inputs.image_to_uint8: alpha dropped
    assert rgb.mode == "RGB" and rgb.size == (4, 2) and rgb.getpixel((3, 1)) == (10, 20, 30)
    upsample = LTX2LatentUpsamplePipeline(
        build_tiny_pipeline().vae, LTX2LatentUpsamplerModel(**TINY_LATENT_UPSAMPLER_CONFIG)
    )
    with pytest.raises(ValueError, match=r"^output_type='mp4' is not one of 'pil', 'np', 'pt', 'latent'$"):
        upsample(latents=torch.zeros(1, 128, 2, 2, 2), output_type="mp4")
