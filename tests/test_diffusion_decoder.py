"""The LTX-2.5 diffusion video decoder: diffusers 0.42.1's format both ways with equal outputs, the pure-torch
neighbourhood attention against brute force, tiling, original-format keys, and every error."""

import json

import pytest
import torch
import torch.nn.functional as F
from diffusers import LTX2VideoDiffusionDecoderModel as DiffusersDecoder
from safetensors import safe_open
from safetensors.torch import save_file

from ltx2_diffusers.loaders import diffusion_decoder_keys
from ltx2_diffusers.models.diffusion_video_decoder import LTX2VideoDiffusionDecoderModel
from ltx2_diffusers.models.neighborhood_attention import (
    natten_available,
    neighborhood_attention,
    neighborhood_attention_torch,
    window_mask_1d,
)
from ltx2_diffusers.pipelines.diffusion_decoding import (
    DiffusionDecodeTiling,
    diffusion_decode_video,
    minimum_latent_shape,
    minimum_overlaps,
    trapezoid_mask,
)

TINY = {
    "latent_channels": 16, "decoder_head_dim": 16, "decoder_stage_channels": (32, 16, 16, 16, 16),
    "decoder_stage_depths": (1, 1, 1, 1, 2), "decoder_stage_kernels": ((3, 3, 3),) * 4,
    "decoder_upsample_channel_reductions": (2, 1, 1, 1), "decoder_stage5_kernel": (3, 3, 3),
    "decoder_t_emb_dim": 16, "decoder_num_inference_steps": 2, "decoder_model_output_type": "v",
}


def brute_force_na(q, k, v, kernel):
    """Dense attention over all T H W keys with the window mask built from its definition."""
    b, t, h, w, n, d = q.shape
    masks = [window_mask_1d(length, kk, slice(0, length), slice(0, length)) for length, kk in zip((t, h, w), kernel)]
    mask = masks[0][:, None, None, :, None, None] & masks[1][None, :, None, None, :, None]
    mask = (mask & masks[2][None, None, :, None, None, :]).reshape(t * h * w, t * h * w)
    out = F.scaled_dot_product_attention(*(x.flatten(1, 3).transpose(1, 2) for x in (q, k, v)), attn_mask=mask,
                                         scale=1.0)
    return out.transpose(1, 2).reshape(q.shape)


class PureTorchProcessor:
    """diffusers' neighbourhood-attention modules (their projections, norms, RoPE) with our na3d in place of
    FlexAttention, which takes ~20 s on CPU; ours is checked against brute force above."""

    def __call__(self, attn, hidden_states, block_mask=None):
        q, k, v = attn.project_qkv(hidden_states)
        return attn.to_out[0](neighborhood_attention_torch(q, k, v, attn.kernel_size).flatten(-2))


def seeded(model, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=generator) / (p.shape[-1] ** 0.5 if p.ndim == 2 else 10.0)
                    + (1.0 if "norm" in name else 0.0))
    return model.eval()


def test_window_starts_shift_inward_at_borders():
    mask = window_mask_1d(6, 3, slice(0, 6), slice(0, 6))
    assert mask.int().tolist() == [[1, 1, 1, 0, 0, 0], [1, 1, 1, 0, 0, 0], [0, 1, 1, 1, 0, 0],
                                   [0, 0, 1, 1, 1, 0], [0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 1]]
    assert window_mask_1d(2, 5, slice(0, 2), slice(0, 2)).all()  # a kernel longer than the axis: the whole axis


@pytest.mark.parametrize("kernel", [(3, 3, 3), (3, 5, 3), (5, 3, 7)])
@pytest.mark.parametrize("path", ["gather", "blocked"])
def test_pure_torch_na_equals_brute_force(kernel, path):
    q, k, v = (torch.randn(2, 5, 6, 7, 2, 8) for _ in range(3))
    budget = 0 if path == "blocked" else 1 << 20  # the blocked path also with blocks that cut every axis
    out = neighborhood_attention_torch(q, k, v, kernel, query_block=(2, 4, 3), gather_budget_bytes=budget)
    torch.testing.assert_close(out, brute_force_na(q, k, v, kernel), atol=3e-6, rtol=0)


@pytest.mark.gpu
@pytest.mark.skipif(not natten_available(), reason="natten is not installed")
def test_natten_path_equals_pure_torch_on_cuda():
    q, k, v = (torch.randn(1, 9, 16, 24, 2, 32, device="cuda") for _ in range(3))
    out = neighborhood_attention(q, k, v, (3, 7, 7))
    torch.testing.assert_close(out, neighborhood_attention_torch(q, k, v, (3, 7, 7)), atol=1e-4, rtol=0)


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    theirs = seeded(DiffusersDecoder(**TINY))
    theirs.set_attn_processor(PureTorchProcessor())
    ours = LTX2VideoDiffusionDecoderModel(**TINY).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    return theirs, ours


def test_diffusers_model_loads_into_ours_and_back_with_equal_outputs(models, tmp_path):
    theirs, ours = models
    z = torch.randn(1, 16, 3, 3, 3)  # already at the kernels' minimum: no padding, as diffusers requires
    with torch.no_grad():
        expected = theirs(z, generator=torch.Generator().manual_seed(7)).sample
        got = diffusion_decode_video(ours, z, torch.Generator().manual_seed(7), width_border="shift")
    assert got.shape == (1, 3, 17, 96, 96)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    ours.save_pretrained(tmp_path / "ours")
    back = DiffusersDecoder.from_pretrained(tmp_path / "ours")
    back_state, ours_state = back.state_dict(), ours.state_dict()  # once each: state_dict() walks every module
    assert {k: v.shape for k, v in back_state.items()} == {k: v.shape for k, v in ours_state.items()}
    assert all(torch.equal(back_state[k], v) for k, v in ours_state.items())
    theirs.save_pretrained(tmp_path / "theirs")
    again = LTX2VideoDiffusionDecoderModel.from_pretrained(tmp_path / "theirs")
    assert list(again.config.decoder_stage_channels) == [32, 16, 16, 16, 16]
    again_state = again.state_dict()
    assert all(torch.equal(again_state[k], v) for k, v in theirs.state_dict().items())


def test_default_config_matches_diffusers():
    ours, theirs = LTX2VideoDiffusionDecoderModel.__init__, DiffusersDecoder.__init__
    assert ours.__defaults__ == theirs.__defaults__
    assert ours.__code__.co_varnames[:18] == theirs.__code__.co_varnames[:18]


def test_small_latents_are_padded_and_cropped(models):
    _, ours = models
    assert minimum_latent_shape(ours.config) == (3, 3, 3)
    with torch.no_grad():
        out = diffusion_decode_video(ours, torch.randn(1, 16, 1, 2, 1), torch.Generator().manual_seed(0))
    assert out.shape == (1, 3, 1, 64, 32)
    assert torch.isfinite(out).all()


def test_tiling_with_one_tile_per_axis_equals_untiled(models):
    _, ours = models
    z = torch.randn(1, 16, 3, 3, 3)
    with torch.no_grad():
        untiled = diffusion_decode_video(ours, z, torch.Generator().manual_seed(1))
        tiled = diffusion_decode_video(ours, z, torch.Generator().manual_seed(1),
                                       tiling=DiffusionDecodeTiling(width=96, width_overlap=32))
    torch.testing.assert_close(tiled, untiled, atol=0, rtol=0)


def test_swiglu_in_token_chunks_equals_one_pass(models, monkeypatch):
    _, ours = models
    mlp, x = ours.decoder.diff_blocks[0].mlp, torch.randn(2, 3, 5, 7, 16)
    with torch.no_grad():
        whole = mlp(x)
        monkeypatch.setattr(type(mlp), "TOKENS_PER_CHUNK", 32)
        torch.testing.assert_close(mlp(x), whole, atol=1e-6, rtol=0)


def test_bf16_tiled_decode_accumulates_in_float16(models):
    """The dtype plumbing of a bf16 decode: noise in bf16, tiles blended in float16 (as the reference), bf16 out,
    close to the float32 decode."""
    _, ours = models
    decoder = LTX2VideoDiffusionDecoderModel(**TINY).to(torch.bfloat16).eval()
    decoder.load_state_dict(ours.state_dict())
    z, tiling = torch.randn(1, 16, 3, 3, 3), DiffusionDecodeTiling(width=64, width_overlap=32)
    with torch.no_grad():
        half = diffusion_decode_video(decoder, z, torch.Generator().manual_seed(2), tiling=tiling,
                                      num_inference_steps=1)
        full = diffusion_decode_video(ours, z, torch.Generator().manual_seed(2), tiling=tiling, num_inference_steps=1)
    assert half.shape == (1, 3, 17, 96, 96) and half.dtype == torch.bfloat16
    assert (half.float() - full).abs().mean() < 0.05  # bf16 noise differs from float32 noise only by rounding


def test_batch_of_two_decodes_each_sample_with_its_noise(models):
    _, ours = models
    z = torch.randn(2, 16, 3, 3, 3)
    with torch.no_grad():
        both = diffusion_decode_video(ours, z, torch.Generator().manual_seed(5))
        noise = torch.randn(2, 3, 17, 96, 96, generator=torch.Generator().manual_seed(5))
        context = ours.decoder.stage_4(ours.decoder.stages_1_to_3(torch.cat([z, z[:, :, -1:], z[:, :, -1:]], 2)), True)
        timesteps = torch.tensor([[1.0, 0.5]])
        second = ours.denoise(context[1:, :17], noise[1:], timesteps)
    torch.testing.assert_close(both[1:], second, atol=1e-5, rtol=0)


def test_trapezoid_masks_of_overlapping_tiles_sum_to_one():
    left, right = trapezoid_mask(12, 0, 4), trapezoid_mask(12, 4, 0)
    torch.testing.assert_close(left[-4:] + right[:4], torch.ones(4))
    assert left[:8].eq(1).all() and trapezoid_mask(3, 0, 0).eq(1).all()


def test_noise_follows_the_generator_stream(models):
    """Trap 14: the decode noise continues the pipeline generator: different state, different pixels."""
    _, ours = models
    z, generator = torch.randn(1, 16, 3, 3, 3), torch.Generator().manual_seed(3)
    with torch.no_grad():
        first = diffusion_decode_video(ours, z, generator)
        second = diffusion_decode_video(ours, z, generator)
        again = diffusion_decode_video(ours, z, torch.Generator().manual_seed(3))
    assert not torch.equal(first, second)
    torch.testing.assert_close(first, again, atol=0, rtol=0)


def _original(ours, gates: bool, prefix: str = "vae.") -> dict[str, torch.Tensor]:
    original = diffusion_decoder_keys.diffusers_to_original(ours.state_dict(), prefix=prefix)
    if gates:
        for j in range(2):
            for gate in ("gate_msa", "gate_mlp", "gate_ctx"):
                original[f"{prefix}decoder.diff_blocks.{j}.{gate}"] = 0.5 + torch.rand(16)
        original[f"{prefix}decoder.coarse_head.weight"] = torch.randn(2, 2)
    return original


@pytest.mark.parametrize("prefix", ["vae.", ""])
def test_original_format_round_trip_is_exact_without_gates(models, prefix):
    _, ours = models
    original = _original(ours, gates=False, prefix=prefix)
    assert f"{prefix}decoder.diff_blocks.0.attn.qkv.weight" in original
    assert f"{prefix}decoder.t_embedder.mlp.0.weight" in original
    assert f"{prefix}per_channel_statistics.mean-of-means" in original
    back = diffusion_decoder_keys.original_to_diffusers(original)
    assert back.keys() == ours.state_dict().keys()
    assert all(torch.equal(back[k], v) for k, v in ours.state_dict().items())
    again = diffusion_decoder_keys.diffusers_to_original(back, prefix=prefix)
    assert again.keys() == original.keys() and all(torch.equal(again[k], v) for k, v in original.items())


def test_original_file_converts_both_ways_byte_identically_and_loads(models, tmp_path):
    """A tiny split-layout VAE file (decoder + statistics + the conv encoder's keys, metadata config.vae) -> our model
    -> the same file, byte for byte."""
    _, ours = models
    vae = diffusion_decoder_keys.config_to_original(ours.config)
    tensors = {**_original(ours, gates=False, prefix=""), "encoder.conv_in.conv.weight": torch.randn(4, 3)}
    metadata = {"config": json.dumps({"vae": vae}), "model_version": "2.5.0"}
    save_file(tensors, str(tmp_path / "vae.safetensors"), metadata=metadata)
    with safe_open(str(tmp_path / "vae.safetensors"), "pt") as handle:
        config = diffusion_decoder_keys.config_from_original(json.loads(handle.metadata()["config"])["vae"])
        decoder_keys = [k for k in handle.keys() if diffusion_decoder_keys.is_original_decoder_key(k)]
        state_dict = diffusion_decoder_keys.original_to_diffusers({k: handle.get_tensor(k) for k in decoder_keys})
        encoder = {k: handle.get_tensor(k) for k in handle.keys() if k not in decoder_keys}
    loaded = LTX2VideoDiffusionDecoderModel(**config)
    loaded.load_state_dict(state_dict, strict=True)
    from_file = LTX2VideoDiffusionDecoderModel.from_single_file(tmp_path / "vae.safetensors")
    assert from_file.config == loaded.config  # the class's own single-file loader: same config, same tensors
    loaded_state = from_file.state_dict()
    assert loaded_state.keys() == state_dict.keys()
    assert all(torch.equal(loaded_state[k], state_dict[k]) for k in state_dict)
    written = {**diffusion_decoder_keys.diffusers_to_original(loaded.state_dict()), **encoder}
    metadata_back = {"config": json.dumps({"vae": diffusion_decoder_keys.config_to_original(loaded.config)}),
                     "model_version": "2.5.0"}
    save_file(written, str(tmp_path / "back.safetensors"), metadata=metadata_back)
    # safetensors writes the metadata map in no fixed order: compare the parsed header and the tensor bytes
    (first, first_data), (second, second_data) = (_header_and_data(tmp_path / f) for f in ("vae.safetensors",
                                                                                           "back.safetensors"))
    assert first == second and first_data == second_data


def _header_and_data(path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8:8 + size]), raw[8 + size:]


def test_gates_fold_at_load_one_way(models):
    """Trap 18: gated files load with the gates folded into the gated Linears; converting back writes the folded
    weights and no gates, which decode the same."""
    _, ours = models
    original = _original(ours, gates=True)
    folded = diffusion_decoder_keys.original_to_diffusers(original)
    gate = original["vae.decoder.diff_blocks.1.gate_msa"]
    torch.testing.assert_close(folded["decoder.diff_blocks.1.attn.to_out.0.weight"],
                               gate[:, None] * ours.state_dict()["decoder.diff_blocks.1.attn.to_out.0.weight"])
    torch.testing.assert_close(folded["decoder.diff_blocks.1.context_proj.bias"],
                               original["vae.decoder.diff_blocks.1.gate_ctx"]
                               * ours.state_dict()["decoder.diff_blocks.1.context_proj.bias"])
    written = diffusion_decoder_keys.diffusers_to_original(folded, prefix="vae.")
    assert not any("gate_" in k or "coarse_" in k for k in written)
    reloaded = diffusion_decoder_keys.original_to_diffusers(written)
    assert all(torch.equal(reloaded[k], v) for k, v in folded.items())


def test_original_config_round_trip():
    vae = {"_class_name": "CausalDiffusionVAE", "model_output_type": "v",
           "decoder": {"in_channels": 16, "head_dim": 16, "t_emb_dim": 16, "stage_channels": [32, 16, 16, 16, 16],
                       "stage_depths": [1, 1, 1, 1, 2], "stage_kernels": [[3, 3, 3]] * 5, "stage5_kernel": [3, 3, 3],
                       "upsamples": [[[1, 2, 2], 2], [[2, 1, 1], 1], [[2, 2, 2], 1], [[2, 2, 2], 1]],
                       "default_num_inference_steps": 2, "timestep_scale_multiplier": 1000.0}}
    config = diffusion_decoder_keys.config_from_original(vae)
    assert {k: config[k] for k in TINY} == {**TINY, "decoder_stage_kernels": ((3, 3, 3),) * 4}
    assert config["decoder_timestep_scale_multiplier"] == 1000.0 and config["spatial_compression_ratio"] == 32
    back = diffusion_decoder_keys.config_to_original(config)
    assert back["decoder"] == {**vae["decoder"], "out_channels": 3, "patch_size": 4}
    defaults = diffusion_decoder_keys.config_from_original({"_class_name": "CausalDiffusionVAE"})
    assert defaults["decoder_stage5_kernel"] == (3, 7, 7) and defaults["decoder_model_output_type"] == "v"
    assert defaults["decoder_num_inference_steps"] == 2 and defaults["decoder_timestep_scale_multiplier"] == 1.0


@pytest.mark.parametrize(("change", "message"), [
    ({"decoder_model_output_type": "eps"}, r"decoder_model_output_type='eps'; expected 'v'"),
    ({"decoder_num_inference_steps": 0}, r"decoder_num_inference_steps=0; the decoder needs at least 1"),
    ({"scaling_factor": 0.5}, r"scaling_factor=0.5; .* must be 1.0"),
    ({"decoder_stage_channels": (32, 32, 16, 16, 16)}, r"decoder_stage_channels\[1\]=32 must be .* = 16"),
    ({"decoder_stage_depths": (1, 1, 1, 2)}, r"one entry per stage \(5\)"),
    ({"decoder_head_dim": 12}, r"decoder_head_dim=12 must be a multiple of 8"),
    ({"spatial_compression_ratio": 16}, r"scale by \(T, H, W\) = \(8, 32, 32\), but .* spatial_compression_ratio=16"),
])
def test_bad_configs_name_the_key(change, message):
    with pytest.raises(ValueError, match=message):
        LTX2VideoDiffusionDecoderModel(**{**TINY, **change})


def test_bad_decode_inputs(models):
    _, ours = models
    z = torch.randn(1, 16, 3, 3, 3)
    with pytest.raises(ValueError, match=r"latents of shape \(1, 8, 3, 3, 3\); .* takes \(B, 16, F', H', W'\)"):
        diffusion_decode_video(ours, torch.randn(1, 8, 3, 3, 3))
    with pytest.raises(ValueError, match=r"num_inference_steps=0; the diffusion decoder needs at least 1 step"):
        diffusion_decode_video(ours, z, num_inference_steps=0)
    with pytest.raises(ValueError, match=r"width_border='wrap'; expected one of \('replicate', 'shift'\)"):
        diffusion_decode_video(ours, z, width_border="wrap")
    assert minimum_overlaps(ours.config) == (8, 32)
    with pytest.raises(ValueError, match=r"width overlap 16 is below 32, the receptive halo .* Use at least 32"):
        diffusion_decode_video(ours, z, tiling=DiffusionDecodeTiling(width=64, width_overlap=16))
    with pytest.raises(ValueError, match=r"tiling height=60 with overlap 32: sizes and overlaps must be multiples"):
        diffusion_decode_video(ours, z, tiling=DiffusionDecodeTiling(height=60, height_overlap=32))
    with pytest.raises(TypeError, match=r"decodes through .*diffusion_decode_video"):
        ours.decode(z)
    with pytest.raises(ValueError, match=r"got a \(T, H, W\) = \(2, 3, 3\) grid, smaller than its kernel"):
        ours.decoder.det_stages[0][0].attn(torch.randn(1, 2, 3, 3, 32))


def test_bad_original_files():
    with pytest.raises(ValueError, match=r"'encoder.conv_in.weight' is not a diffusion-decoder key"):
        diffusion_decoder_keys.original_to_diffusers({"encoder.conv_in.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"mix the monolith layout"):
        diffusion_decoder_keys.original_to_diffusers({"vae.decoder.conv_in.weight": torch.zeros(1),
                                                      "decoder.conv_out.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"has 4 rows, not 3 x dim"):
        diffusion_decoder_keys.original_to_diffusers({"decoder.det_stages.0.0.attn.qkv.weight": torch.zeros(4, 2)})
    with pytest.raises(ValueError, match=r"'decoder.diff_blocks.0.gate_msa' gates decoder.diff_blocks.0.attn.proj"):
        diffusion_decoder_keys.original_to_diffusers({"decoder.diff_blocks.0.gate_msa": torch.ones(2)})
    with pytest.raises(ValueError, match=r"Unknown diffusion-decoder keys after conversion: \['decoder.extra'\]"):
        diffusion_decoder_keys.original_to_diffusers({"decoder.extra": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"holds the convolutional decoder; load it as AutoencoderKLLTX2Video"):
        diffusion_decoder_keys.config_from_original({"_class_name": "CausalVideoAutoencoder"})
    with pytest.raises(ValueError, match=r"config.vae.decoder has keys this converter does not know: \['depth'\]"):
        diffusion_decoder_keys.config_from_original({"_class_name": "CausalDiffusionVAE", "decoder": {"depth": 1}})
    with pytest.raises(ValueError, match=r"stage5_channels=64 differs from the context width 128"):
        diffusion_decoder_keys.config_from_original({"_class_name": "X", "decoder": {"stage5_channels": 64}})
    with pytest.raises(ValueError, match=r"prefix='model.'; the files use"):
        diffusion_decoder_keys.diffusers_to_original({}, prefix="model.")
