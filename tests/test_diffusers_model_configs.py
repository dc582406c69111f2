"""diffusers' own LTX-2 model-test configs, run through our classes: each config builds diffusers' class and ours, our
model loads diffusers' state dict strictly, and the forward outputs on the inputs diffusers' test uses agree in fp32.

The configs and inputs are those of huggingface/diffusers' tests (read at 58eb52c, the newest snapshot with tests; the
0.42.1 wheel ships none): tests/models/transformers/test_models_transformer_ltx2.py, tests/models/autoencoders/
test_models_autoencoder_ltx2_video.py and test_models_autoencoder_kl_ltx2_audio.py, and the tiny components that
tests/pipelines/ltx2/*.py and tests/lora/test_lora_layers_ltx2.py build (the only tests of the vocoder, the connectors and
the latent upsampler; `caption_channels` / `text_proj_in_factor` as the LoRA test writes them before it reads
tiny-gemma3's).
"""

import inspect

import diffusers
import pytest
import torch
from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors as DiffusersConnectors
from diffusers.pipelines.ltx2.latent_upsampler import LTX2LatentUpsamplerModel as DiffusersUpsampler
from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder as DiffusersVocoder
from diffusers.pipelines.ltx2.vocoder import LTX2VocoderWithBWE as DiffusersVocoderWithBWE
from diffusers.utils.torch_utils import randn_tensor

from ltx2_diffusers.models.autoencoder_kl_ltx2 import AutoencoderKLLTX2Video
from ltx2_diffusers.models.autoencoder_kl_ltx2_audio import AutoencoderKLLTX2Audio
from ltx2_diffusers.models.connectors import LTX2TextConnectors
from ltx2_diffusers.models.latent_upsampler import LTX2LatentUpsamplerModel
from ltx2_diffusers.models.transformer_ltx2 import LTX2VideoTransformer3DModel
from ltx2_diffusers.models.vocoder import LTX2Vocoder, LTX2VocoderWithBWE

TOLERANCE = dict(rtol=0, atol=1e-5)

# ---- the configs, as diffusers' tests write them ----------------------------------------------------------------------

TRANSFORMER_MODEL_TEST = dict(
    in_channels=4,
    out_channels=4,
    patch_size=1,
    patch_size_t=1,
    num_attention_heads=2,
    attention_head_dim=8,
    cross_attention_dim=16,
    audio_in_channels=4,
    audio_out_channels=4,
    audio_num_attention_heads=2,
    audio_attention_head_dim=4,
    audio_cross_attention_dim=8,
    num_layers=2,
    qk_norm="rms_norm_across_heads",
    caption_channels=16,
    rope_double_precision=False,
)
# the pipeline and LoRA tests: split RoPE, Gemma-width captions (one layer in the LoRA test)
TRANSFORMER_PIPELINE_TEST = {**TRANSFORMER_MODEL_TEST, "caption_channels": 32, "rope_type": "split"}
TRANSFORMER_LORA_TEST = {**TRANSFORMER_PIPELINE_TEST, "num_layers": 1}

VIDEO_VAE_MODEL_TEST = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=8,
    block_out_channels=(8, 8, 8, 8),
    decoder_block_out_channels=(16, 32, 64),
    layers_per_block=(1, 1, 1, 1, 1),
    decoder_layers_per_block=(1, 1, 1, 1),
    spatio_temporal_scaling=(True, True, True, True),
    decoder_spatio_temporal_scaling=(True, True, True),
    decoder_inject_noise=(False, False, False, False),
    downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
    upsample_residual=(True, True, True),
    upsample_factor=(2, 2, 2),
    timestep_conditioning=False,
    patch_size=1,
    patch_size_t=1,
    encoder_causal=True,
    decoder_causal=False,
    encoder_spatial_padding_mode="zeros",
    decoder_spatial_padding_mode="zeros",
)
# one block each way; layers_per_block has one entry for the down block and the mid block, upsample_type keeps its
# three-entry default
VIDEO_VAE_PIPELINE_TEST = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=4,
    block_out_channels=(8,),
    decoder_block_out_channels=(8,),
    layers_per_block=(1,),
    decoder_layers_per_block=(1, 1),
    spatio_temporal_scaling=(True,),
    decoder_spatio_temporal_scaling=(True,),
    decoder_inject_noise=(False, False),
    downsample_type=("spatial",),
    upsample_residual=(False,),
    upsample_factor=(1,),
    timestep_conditioning=False,
    patch_size=1,
    patch_size_t=1,
    encoder_causal=True,
    decoder_causal=False,
)

AUDIO_VAE_MODEL_TEST = dict(
    in_channels=2,
    output_channels=2,
    latent_channels=4,
    base_channels=16,
    ch_mult=(1, 2, 4),
    resolution=16,
    attn_resolutions=None,
    num_res_blocks=2,
    norm_type="pixel",
    causality_axis="height",
    mid_block_add_attention=False,
    sample_rate=16000,
    mel_hop_length=160,
    mel_bins=16,
    is_causal=True,
    double_z=True,
)
# no downsampling level at all (ch_mult of one entry), while the config still advertises mel compression 4
AUDIO_VAE_PIPELINE_TEST = dict(
    base_channels=4,
    output_channels=2,
    ch_mult=(1,),
    num_res_blocks=1,
    attn_resolutions=None,
    in_channels=2,
    resolution=32,
    latent_channels=2,
    norm_type="pixel",
    causality_axis="height",
    dropout=0.0,
    mid_block_add_attention=False,
    sample_rate=16000,
    mel_hop_length=160,
    is_causal=True,
    mel_bins=8,
)

VOCODER_PIPELINE_TEST = dict(
    in_channels=16,  # audio_vae output_channels * mel_bins
    hidden_channels=32,
    out_channels=2,
    upsample_kernel_sizes=[4, 4],
    upsample_factors=[2, 2],
    resnet_kernel_sizes=[3],
    resnet_dilations=[[1, 3, 5]],
    leaky_relu_negative_slope=0.1,
    output_sampling_rate=16000,
)

CONNECTORS_PIPELINE_TEST = dict(
    caption_channels=32,
    text_proj_in_factor=2,
    video_connector_num_attention_heads=4,
    video_connector_attention_head_dim=8,
    video_connector_num_layers=1,
    video_connector_num_learnable_registers=None,
    audio_connector_num_attention_heads=4,
    audio_connector_attention_head_dim=8,
    audio_connector_num_layers=1,
    audio_connector_num_learnable_registers=None,
    connector_rope_base_seq_len=32,
    rope_theta=10000.0,
    rope_double_precision=False,
    causal_temporal_positioning=False,
    rope_type="split",
)

UPSAMPLER_PIPELINE_TEST = dict(in_channels=4, mid_channels=32, num_blocks_per_stage=1)


# ---- helpers ----------------------------------------------------------------------------------------------------------


def build_pair(theirs_class, ours_class, config: dict, seed: int = 0):
    """diffusers' model and ours from one config and seed; ours holds diffusers' tensors, loaded strictly.

    diffusers' tests use the default initialisation; every floating tensor is then nudged by seeded noise so that no
    zero-initialised table (gates, scale-shift tables, output projections) can hide a difference.
    """
    torch.manual_seed(seed)
    theirs = theirs_class(**config).eval()
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for tensor in theirs.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(torch.randn(tensor.shape, generator=generator) * 0.05)
    torch.manual_seed(seed)
    ours = ours_class(**config).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    return theirs, ours


def transformer_inputs(embedding_dim: int) -> dict:
    """diffusers' LTX2TransformerTesterConfig.get_dummy_inputs (embedding_dim = the config's caption_channels)."""
    generator = torch.Generator("cpu").manual_seed(0)
    batch, frames, height, width, audio_frames, text_length = 2, 2, 16, 16, 9, 16
    return dict(
        hidden_states=randn_tensor((batch, frames * height * width, 4), generator=generator),
        audio_hidden_states=randn_tensor((batch, audio_frames, 2 * 2), generator=generator),
        encoder_hidden_states=randn_tensor((batch, text_length, embedding_dim), generator=generator),
        audio_encoder_hidden_states=randn_tensor((batch, text_length, embedding_dim), generator=generator),
        timestep=randn_tensor((batch,), generator=generator).abs() * 1000,
        encoder_attention_mask=torch.ones((batch, text_length)).bool(),
        num_frames=frames,
        height=height,
        width=width,
        audio_num_frames=audio_frames,
        fps=25.0,
    )


# ---- the tests --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config", [TRANSFORMER_MODEL_TEST, TRANSFORMER_PIPELINE_TEST, TRANSFORMER_LORA_TEST], ids=["model", "pipe", "lora"]
)
@torch.no_grad()
def test_transformer_configs(config):
    theirs, ours = build_pair(diffusers.LTX2VideoTransformer3DModel, LTX2VideoTransformer3DModel, config)
    inputs = transformer_inputs(config["caption_channels"])
    expected = theirs(**inputs, return_dict=False)
    got = ours(**inputs, return_dict=False)
    assert got[0].shape == (2, 512, 4) and got[1].shape == (2, 9, 4)
    torch.testing.assert_close(got[0], expected[0], **TOLERANCE)
    torch.testing.assert_close(got[1], expected[1], **TOLERANCE)


@pytest.mark.parametrize(
    "config,shape",
    [(VIDEO_VAE_MODEL_TEST, (2, 3, 9, 16, 16)), (VIDEO_VAE_PIPELINE_TEST, (1, 3, 5, 32, 32))],
    ids=["model", "pipe"],
)
@torch.no_grad()
def test_video_vae_configs(config, shape):
    theirs, ours = build_pair(diffusers.AutoencoderKLLTX2Video, AutoencoderKLLTX2Video, config)
    sample = randn_tensor(shape, generator=torch.Generator("cpu").manual_seed(0))
    expected, got = theirs(sample).sample, ours(sample).sample
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, **TOLERANCE)
    latents = theirs.encode(sample).latent_dist.mode()
    torch.testing.assert_close(ours.encode(sample).latent_dist.mode(), latents, **TOLERANCE)
    torch.testing.assert_close(ours.decode(latents).sample, theirs.decode(latents).sample, **TOLERANCE)


@pytest.mark.parametrize(
    "config,shape",
    [(AUDIO_VAE_MODEL_TEST, (2, 2, 8, 16)), (AUDIO_VAE_PIPELINE_TEST, (1, 2, 20, 8))],
    ids=["model", "pipe"],
)
@torch.no_grad()
def test_audio_vae_configs(config, shape):
    theirs, ours = build_pair(diffusers.AutoencoderKLLTX2Audio, AutoencoderKLLTX2Audio, config)
    sample = randn_tensor(shape, generator=torch.Generator("cpu").manual_seed(0))
    expected, got = theirs(sample).sample, ours(sample).sample
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, **TOLERANCE)
    latents = theirs.encode(sample).latent_dist.mode()
    torch.testing.assert_close(ours.encode(sample).latent_dist.mode(), latents, **TOLERANCE)
    torch.testing.assert_close(ours.decode(latents).sample, theirs.decode(latents).sample, **TOLERANCE)


@torch.no_grad()
def test_vocoder_config():
    theirs, ours = build_pair(DiffusersVocoder, LTX2Vocoder, VOCODER_PIPELINE_TEST)
    mel = randn_tensor((1, 2, 12, 8), generator=torch.Generator("cpu").manual_seed(0))  # (B, channels, frames, bins)
    expected, got = theirs(mel), ours(mel)
    assert got.shape == expected.shape == (1, 2, 12 * 4)
    torch.testing.assert_close(got, expected, **TOLERANCE)


@torch.no_grad()
def test_connectors_config():
    theirs, ours = build_pair(DiffusersConnectors, LTX2TextConnectors, CONNECTORS_PIPELINE_TEST)
    generator = torch.Generator("cpu").manual_seed(0)
    states = randn_tensor((2, 16, 32 * 2), generator=generator)  # packed Gemma layers, as the pipelines pass them
    mask = torch.ones(2, 16, dtype=torch.int64)
    mask[1, :5] = 0  # left padding
    expected, got = theirs(states, mask), ours(states, mask)
    torch.testing.assert_close(got[0], expected[0], **TOLERANCE)
    torch.testing.assert_close(got[1], expected[1], **TOLERANCE)
    assert torch.equal(got[2], expected[2])  # the context mask (all ones)


@torch.no_grad()
def test_latent_upsampler_config():
    theirs, ours = build_pair(DiffusersUpsampler, LTX2LatentUpsamplerModel, UPSAMPLER_PIPELINE_TEST)
    latents = randn_tensor((1, 4, 2, 8, 8), generator=torch.Generator("cpu").manual_seed(0))
    expected, got = theirs(latents), ours(latents)
    assert got.shape == (1, 4, 2, 16, 16)
    torch.testing.assert_close(got, expected, **TOLERANCE)


# ---- the four incompatibilities diffusers' suite found, one test each -------------------------------------------------


@torch.no_grad()
def test_video_vae_reads_longer_lists_as_diffusers_does():
    # one block each way, every list longer than needed: the encoder reads from the front (its mid block from
    # layers_per_block[-1]), the reversed decoder lists from the back, upsample_type from the front
    config = {
        **VIDEO_VAE_PIPELINE_TEST,
        "layers_per_block": (1, 3, 2),
        "spatio_temporal_scaling": (True, False, False),
        "downsample_type": ("spatial", "temporal", "temporal"),
        "decoder_layers_per_block": (3, 2, 1),
        "decoder_spatio_temporal_scaling": (False, True),
        "decoder_inject_noise": (False, False, False),
        "upsample_type": ("spatial", "temporal", "temporal"),
        "upsample_residual": (True, False),
        "upsample_factor": (2, 1),
    }
    theirs, ours = build_pair(diffusers.AutoencoderKLLTX2Video, AutoencoderKLLTX2Video, config)
    assert len(ours.encoder.mid_block.resnets) == 2 and len(ours.decoder.mid_block.resnets) == 1
    assert len(ours.decoder.up_blocks[0].resnets) == 2
    sample = randn_tensor((1, 3, 5, 32, 32), generator=torch.Generator("cpu").manual_seed(0))
    torch.testing.assert_close(ours(sample).sample, theirs(sample).sample, **TOLERANCE)
    with pytest.raises(ValueError, match=r"decoder_layers_per_block has 1 entries, needs at least 2 \(the mid block's"):
        AutoencoderKLLTX2Video(**{**config, "decoder_layers_per_block": (1,)})
    with pytest.raises(ValueError, match=r"upsample_type has 0 entries, needs at least 1 \(one per up block; .*"):
        AutoencoderKLLTX2Video(**{**config, "upsample_type": ()})


def test_video_vae_compression_ratios_follow_the_blocks():
    # documented difference: ours counts the blocks that resample each axis, diffusers every True for both axes
    with torch.device("meta"):
        theirs = diffusers.AutoencoderKLLTX2Video(**VIDEO_VAE_MODEL_TEST)
        ours = AutoencoderKLLTX2Video(**VIDEO_VAE_MODEL_TEST)
        pipe = AutoencoderKLLTX2Video(**VIDEO_VAE_PIPELINE_TEST)
    assert (theirs.spatial_compression_ratio, theirs.temporal_compression_ratio) == (16, 16)
    assert (ours.spatial_compression_ratio, ours.temporal_compression_ratio) == (8, 8)  # 3 spatial, 3 temporal
    assert (pipe.spatial_compression_ratio, pipe.temporal_compression_ratio) == (2, 1)  # one "spatial" block
    latents = ours.encode(torch.zeros(1, 3, 17, 16, 16, device="meta")).latent_dist.mode()
    assert latents.shape == (1, 8, 3, 2, 2)  # what the network does: /8 in time and space


@torch.no_grad()
def test_audio_vae_decodes_the_latent_width_diffusers_pipelines_make():
    # diffusers' pipelines size audio latents by the advertised ratio, mel_bins // mel_compression_ratio = 8 // 4 = 2,
    # while this config's encoder (one level, no stride-2 stage) makes width 8; both decode, as in diffusers
    theirs, ours = build_pair(diffusers.AutoencoderKLLTX2Audio, AutoencoderKLLTX2Audio, AUDIO_VAE_PIPELINE_TEST)
    assert ours.mel_compression_ratio == theirs.mel_compression_ratio == 4
    for width in (2, 8):
        latents = randn_tensor((1, 2, 5, width), generator=torch.Generator("cpu").manual_seed(width))
        expected, got = theirs.decode(latents).sample, ours.decode(latents).sample
        assert got.shape == (1, 2, 17, 8)
        torch.testing.assert_close(got, expected, **TOLERANCE)
    with pytest.raises(ValueError, match=r"\(batch, 2, frames, 8\) or \(batch, 2, frames, 2\), got \(1, 2, 5, 3\)"):
        ours.decode(torch.zeros(1, 2, 5, 3))


@torch.no_grad()
def test_transformer_ignores_stg_blocks_past_its_last_block_as_diffusers_does():
    # diffusers' pipelines pass spatio_temporal_guidance_blocks=[28] by default, whatever the depth; perturbed_attn=True
    # so that diffusers' STG really runs on the blocks that exist
    config = {**TRANSFORMER_PIPELINE_TEST, "perturbed_attn": True}
    theirs, ours = build_pair(diffusers.LTX2VideoTransformer3DModel, LTX2VideoTransformer3DModel, config)
    inputs = transformer_inputs(config["caption_channels"])
    plain = ours(**inputs, return_dict=False)
    for blocks in ([28], [1, 28], [-1, 0]):
        expected = theirs(**inputs, spatio_temporal_guidance_blocks=blocks, return_dict=False)
        got = ours(**inputs, spatio_temporal_guidance_blocks=blocks, return_dict=False)
        torch.testing.assert_close(got[0], expected[0], **TOLERANCE)
        torch.testing.assert_close(got[1], expected[1], **TOLERANCE)
        if blocks == [28]:
            torch.testing.assert_close(got[0], plain[0], rtol=0, atol=0)  # nothing perturbed
        else:
            assert not torch.allclose(got[0], plain[0])
    # our own API names blocks of this model: a wrong index stays an error there
    from ltx2_diffusers.models.perturbations import Perturbations

    with pytest.raises(ValueError, match=r"Perturbations.video_stg_blocks \[28\] must lie in \[0, 1\]"):
        ours(**inputs, perturbations=Perturbations(video_stg_blocks=(28,), video_stg_mask=torch.ones(2)))


def test_transformer_save_pretrained_takes_pipeline_keywords(tmp_path):
    # DiffusionPipeline.save_pretrained passes variant / safe_serialization / max_shard_size only to components whose
    # save_pretrained signature names them
    class OneComponentPipeline(diffusers.DiffusionPipeline):
        def __init__(self, transformer):
            super().__init__()
            self.register_modules(transformer=transformer)

    _, ours = build_pair(diffusers.LTX2VideoTransformer3DModel, LTX2VideoTransformer3DModel, TRANSFORMER_LORA_TEST)
    OneComponentPipeline(ours).save_pretrained(tmp_path, variant="fp16", max_shard_size="20KB", safe_serialization=True)
    files = sorted(path.name for path in (tmp_path / "transformer").iterdir())
    assert "diffusion_pytorch_model.safetensors.index.fp16.json" in files
    shards = [name for name in files if name.startswith("diffusion_pytorch_model.fp16-0")]
    assert len(shards) > 1 and all(name.endswith(f"-of-{len(shards):05d}.safetensors") for name in shards), files
    back = LTX2VideoTransformer3DModel.from_pretrained(tmp_path, subfolder="transformer", variant="fp16")
    state = ours.state_dict()
    assert all(torch.equal(value, state[name]) for name, value in back.state_dict().items())


@pytest.mark.parametrize(
    "theirs_class,ours_class",
    [
        (diffusers.LTX2VideoTransformer3DModel, LTX2VideoTransformer3DModel),
        (diffusers.AutoencoderKLLTX2Video, AutoencoderKLLTX2Video),
        (diffusers.AutoencoderKLLTX2Audio, AutoencoderKLLTX2Audio),
        (DiffusersConnectors, LTX2TextConnectors),
        (DiffusersVocoder, LTX2Vocoder),
        (DiffusersVocoderWithBWE, LTX2VocoderWithBWE),
        (DiffusersUpsampler, LTX2LatentUpsamplerModel),
    ],
    ids=lambda cls: cls.__name__,
)
def test_config_keys_and_defaults_equal_diffusers(theirs_class, ours_class):
    # a config key left out means the same in both classes (rope_type "interleaved", decoder_causal True included)
    def defaults(cls):
        parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
        as_tuples = lambda v: tuple(as_tuples(x) for x in v) if isinstance(v, (list, tuple)) else v  # noqa: E731
        return {p.name: as_tuples(p.default) for p in parameters}

    ours = defaults(ours_class)
    # ltx-core 1.2.0's connector_ff_bias: ours only, its default True is the layout diffusers' class always builds
    assert ours.pop("connector_ff_bias", True) is True
    assert ours == defaults(theirs_class)
