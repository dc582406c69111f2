"""End to end: `LTX2AVPipeline.from_single_file` against ltx-pipelines 1.0.0's `TI2VidOneStagePipeline`.

Both pipelines load the SAME tiny Lightricks-format single file (ltx-core's own modules with random weights, under the
released key prefixes, with the metadata `config` and `model_version`) and the same tiny Gemma-3, and sample as the
reference does: its default negative prompt, its guidance preset for the file's model version (`detect_params`: CFG
3 / 7, STG 1, modality 3, rescale 0.7 for video / audio, all on), seed 10, 3 Euler steps, bf16 on the CPU. The tiny
transformer has 4 blocks (the real ones 48), so the presets' STG block (29 for LTX-2, 28 for LTX-2.3) is replaced by
block 3 / 2, everything else as the preset says; that our presets equal the reference's, blocks included, is tested
separately. The VAEs have the real compression (8x in time, 32x in space; audio 4x), so 17 frames at 64x96 are
3x2x3 = 18 video tokens and round(17 / 24 * 25) = 18 audio tokens. Text-to-video and image-to-video (an image at
frame 0, strength 0.8, H.264 CRF 33 round trip, cover resize and centre crop) run for LTX-2 and LTX-2.3.

Compared stage by stage, so that a failure names its stage: positive and negative text contexts, the encoded image,
final video and audio latents, decoded pixels, uint8 frames, waveform. The reference encodes one prompt per Gemma
call and runs its four guidance passes as separate batch-1 calls; ours batches both. Measured on the CPU, in bf16:
- text-to-video: contexts, final latents and waveform bit-exact (max abs difference 0);
- ONE difference, by design, in our video VAE: its PixelNorm accumulates the mean of squares in float32 where
  ltx-core computes x / sqrt(mean(x^2) + eps) entirely in bf16. Decoded pixels (in [-1, 1]) differ by at most 2**-5,
  an encoded image latent (values up to about 8) by 2**-4, which 3 guided image-to-video steps carry to 0.25-0.7 on
  the final latents. With ltx-core's PixelNorm swapped into our VAE (`ltx_core_pixel_norm`), encoding and decoding
  are bit-exact, so the image-to-video runs use the swap to compare every other stage exactly, and the unswapped VAE
  is checked per stage (`test_image_latent_matches`, `test_decoded_video_matches`);
- uint8 frames: both convert (x + 1) / 2 * 255 in the decoder's dtype (bf16) and truncate, so identical pixels give
  identical frames (a float32 conversion would put about 7% of the values 1 level off); the PixelNorm difference
  puts frames up to 3 levels apart.

Patched in the reference, and only there: `torch.cuda.synchronize` (CPU torch), the hard-coded Gemma-3 12B sizes its
feature extractor is built from (hidden 3840, 48 layers -> the tiny Gemma's 32 and 2), and the model ledger's
`text_encoder()` (ltx-core's Gemma loader needs transformers 4; its encode step runs any
`Gemma3ForConditionalGeneration`): it returns ltx-core's `GemmaTextEncoder` around the tiny Gemma with ltx-core's
`LTXVGemmaTokenizer` loaded from the tiny tokenizer saved to disk.
"""

import json
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
import torch.nn.functional as F
from helpers.conversion import AUDIO_VAE_SECTION, original_state_dict, randomize_, transformer_section
from helpers.conversion import vae_section as conversion_vae_section
from helpers.conversion import vocoder_section as conversion_vocoder_section
from helpers.fresh_python import Forked
from safetensors.torch import save_file

from ltx2_diffusers import LTX2AVPipeline
from ltx2_diffusers.loaders import metadata as md
from ltx2_diffusers.pipelines import condition_encoding, decoding, pipeline_utils
from ltx2_diffusers.pipelines.guidance import GuidanceScales
from ltx2_diffusers.pipelines.pipeline_base import with_guidance_scales
from ltx2_diffusers.pipelines.presets import default_negative_prompt, sampling_preset
from ltx2_diffusers.utils.tiny_gemma import (
    TINY_GEMMA_HIDDEN_SIZE,
    TINY_GEMMA_NUM_HIDDEN_STATES,
    TINY_GEMMA_NUM_LAYERS,
    build_tiny_gemma,
)

PROMPT = "a cat walks on a street at night"
SEED = 10  # the reference CLI's default
STEPS = 3
HEIGHT, WIDTH, NUM_FRAMES, FRAME_RATE = 64, 96, 17, 24.0
IMAGE_STRENGTH = 0.8  # < 1: the image tokens keep a per-token sigma of 0.2 sigma, exercising the denoise masks
NUM_LAYERS = 4
TINY_STG_BLOCKS = {md.LTX2: [3], md.LTX2_3: [2]}  # in place of the presets' [29] / [28]
DTYPE = torch.bfloat16  # the reference's, fixed in TI2VidOneStagePipeline
MODEL_VERSIONS = {md.LTX2: "2.0.0", md.LTX2_3: "2.3.0"}  # metadata `model_version`, read by detect_params
# Tolerances for our VAE's float32-accumulated PixelNorm (measured maxima in the comments)
PIXEL_ATOL = 2**-4  # decoded pixels in [-1, 1] (2**-5)
LATENT_ATOL = 2**-3  # an encoded image latent (2**-4)
FRAME_ATOL = 6  # uint8 levels: 2**-5 * 127.5 from the pixels plus 2 from bf16 rounding in the conversion (3)


# ----------------------------------------------------------------------------------------------------------------------
# The tiny single file


def tiny_original_config(version: str) -> dict:
    """The conversion tests' tiny sections, resized to real latent widths (128 video channels; audio 8 x 16) and the
    tiny Gemma's width, with 4 transformer blocks and a video VAE of the real compression."""
    transformer = transformer_section(version)
    transformer.update(
        in_channels=128,
        out_channels=128,
        audio_in_channels=128,
        audio_out_channels=128,
        caption_channels=TINY_GEMMA_HIDDEN_SIZE,
        num_layers=NUM_LAYERS,
    )
    if version == md.LTX2:  # LTX-2 connectors run at Gemma's width: 2 heads x 16
        transformer.update(connector_num_attention_heads=2, connector_attention_head_dim=TINY_GEMMA_HIDDEN_SIZE // 2)
    vae = conversion_vae_section(version)
    # the encoder grows from latent_channels by each block's multiplier: keep it at 128 channels
    encoder = [
        [name, {**args, "multiplier": 1}] if "multiplier" in args else [name, args]
        for name, args in vae["encoder_blocks"]
    ]
    vae.update(latent_channels=128, encoder_blocks=encoder)
    audio_vae = json.loads(json.dumps(AUDIO_VAE_SECTION))
    # 8 latent channels x 16 mel bins; ltx-core sizes the latent statistics by ch (= 8 x 16)
    audio_vae["model"]["params"]["ddconfig"].update(ch=128, ch_mult=[1, 1, 1], z_channels=8)
    return {
        "transformer": transformer,
        "vae": vae,
        "audio_vae": audio_vae,
        "vocoder": conversion_vocoder_section(version),
    }


def ltx_core_modules(version: str, config: dict, seed: int = 0) -> dict[str, torch.nn.Module]:
    """ltx-core's modules for `config` with random weights, plus the text projection sized for the tiny Gemma."""
    from ltx_core.model.audio_vae.model_configurator import (
        AudioDecoderConfigurator,
        AudioEncoderConfigurator,
        VocoderConfigurator,
    )
    from ltx_core.model.transformer.model_configurator import LTXModelConfigurator
    from ltx_core.model.video_vae import VideoDecoderConfigurator, VideoEncoderConfigurator
    from ltx_core.text_encoders.gemma.embeddings_connector import (
        AudioEmbeddings1DConnectorConfigurator,
        Embeddings1DConnectorConfigurator,
    )

    transformer = LTXModelConfigurator.from_config(config)
    transformer.to_empty(device="cpu")  # the caption projections are built on the meta device
    flat = TINY_GEMMA_HIDDEN_SIZE * TINY_GEMMA_NUM_HIDDEN_STATES
    if version == md.LTX2:
        projection = {"aggregate_embed": torch.nn.Linear(flat, TINY_GEMMA_HIDDEN_SIZE, bias=False)}
    else:
        t = config["transformer"]
        projection = {
            "video_aggregate_embed": torch.nn.Linear(flat, t["num_attention_heads"] * t["attention_head_dim"]),
            "audio_aggregate_embed": torch.nn.Linear(
                flat, t["audio_num_attention_heads"] * t["audio_attention_head_dim"]
            ),
        }
    modules = {
        "transformer": transformer,
        "video_connector": Embeddings1DConnectorConfigurator.from_config(config),
        "audio_connector": AudioEmbeddings1DConnectorConfigurator.from_config(config),
        "video_encoder": VideoEncoderConfigurator.from_config(config),
        "video_decoder": VideoDecoderConfigurator.from_config(config),
        "audio_encoder": AudioEncoderConfigurator.from_config(config),
        "audio_decoder": AudioDecoderConfigurator.from_config(config),
        "vocoder": VocoderConfigurator.from_config(config),
        "projection": torch.nn.ModuleDict(projection),
    }
    for index, module in enumerate(modules.values()):
        randomize_(module, seed + index)
    for name in ("mean-of-means", "std-of-means"):  # the file holds one copy of each VAE's latent statistics
        for encoder, decoder in (("video_encoder", "video_decoder"), ("audio_encoder", "audio_decoder")):
            statistics = modules[encoder].per_channel_statistics.get_buffer(name)
            modules[decoder].per_channel_statistics.get_buffer(name).copy_(statistics)
    return modules


def write_tiny_checkpoint(path: Path, version: str, seed: int = 0) -> None:
    config = tiny_original_config(version)
    state_dict = original_state_dict(ltx_core_modules(version, config, seed))
    # statistics neither implementation reads, sized like the latents
    state_dict["vae.per_channel_statistics.channel"] = torch.arange(128, dtype=torch.float32)
    state_dict["vae.per_channel_statistics.mean-of-stds"] = torch.rand(
        128, generator=torch.Generator().manual_seed(seed)
    )
    metadata = {"config": json.dumps(config), "model_version": MODEL_VERSIONS[version]}
    save_file(state_dict, str(path), metadata=metadata)


# ----------------------------------------------------------------------------------------------------------------------
# Running both pipelines


@dataclass
class Run:
    """What one pipeline produced, stage by stage (bf16 unless noted)."""

    contexts: dict[str, torch.Tensor]  # video / audio / negative_video / negative_audio: (1, 1024, D)
    image_latent: torch.Tensor | None  # (1, 128, 1, 2, 3) normalised, the encoded conditioning image
    video_latent: torch.Tensor  # (1, 128, 3, 2, 3), normalised
    audio_latent: torch.Tensor  # (1, 8, 18, 16), normalised
    pixels: torch.Tensor  # (1, 3, 17, 64, 96) decoder output, about [-1, 1]
    frames: np.ndarray  # (17, 64, 96, 3) uint8
    waveform: torch.Tensor  # (2, samples) float32
    sample_rate: int


def reference_pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """ltx-core's PixelNorm: x / sqrt(mean_c(x^2) + eps), in x's dtype throughout."""
    return x / torch.sqrt(torch.mean(x**2, dim=1, keepdim=True) + eps)


@contextmanager
def ltx_core_pixel_norm():
    """Our video VAE with ltx-core's bf16 PixelNorm in place of its float32-accumulated one: every use of it (the
    blocks' `pixel_norm` and the resnet convs' fused pre-activation `scaled_silu_into`, which writes SiLU(PixelNorm(x))
    into the padded conv input). Names as in models/video_vae_blocks.py and autoencoder_kl_ltx2.py."""
    from ltx2_diffusers.models import autoencoder_kl_ltx2, video_vae_blocks

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(video_vae_blocks, "pixel_norm", reference_pixel_norm)
        patch.setattr(autoencoder_kl_ltx2, "pixel_norm", reference_pixel_norm)
        patch.setattr(video_vae_blocks, "scaled_silu_into", lambda x, out: out.copy_(F.silu(reference_pixel_norm(x))))
        yield


def reference_guider_params(checkpoint: Path, version: str):
    """The reference's guidance preset for the file (`detect_params`), STG moved to a block the tiny model has."""
    from ltx_pipelines.utils.constants import detect_params

    params = detect_params(str(checkpoint))
    video, audio, blocks = params.video_guider_params, params.audio_guider_params, TINY_STG_BLOCKS[version]
    return replace(video, stg_blocks=blocks), replace(audio, stg_blocks=blocks)


def run_reference(checkpoint: Path, version: str, gemma, tokenizer_dir: Path, image_path: Path | None) -> Run:
    from ltx_core.text_encoders.gemma import GemmaTextEncoder
    from ltx_core.text_encoders.gemma.config import GEMMA3_CONFIG_FOR_LTX
    from ltx_core.text_encoders.gemma.tokenizer import LTXVGemmaTokenizer
    from ltx_pipelines import ti2vid_one_stage
    from ltx_pipelines.utils.args import ImageConditioningInput
    from ltx_pipelines.utils.constants import DEFAULT_NEGATIVE_PROMPT

    seen: dict = {"image_latent": None}

    def encode_prompts(*args, **kwargs):
        positive, negative = original_encode_prompts(*args, **kwargs)
        seen["contexts"] = {
            "video": positive.video_encoding,
            "audio": positive.audio_encoding,
            "negative_video": negative.video_encoding,
            "negative_audio": negative.audio_encoding,
        }
        return positive, negative

    def image_conditionings(*args, **kwargs):
        conditionings = original_image_conditionings(*args, **kwargs)
        if conditionings:
            seen["image_latent"] = conditionings[0].latent
        return conditionings

    def decode_video(latent, decoder, *args, **kwargs):
        seen["video_latent"] = latent
        decoder.register_forward_hook(lambda module, inputs, output: seen.__setitem__("pixels", output))
        return original_decode_video(latent, decoder, *args, **kwargs)

    def decode_audio(latent, *args, **kwargs):
        seen["audio_latent"] = latent
        return original_decode_audio(latent, *args, **kwargs)

    original_encode_prompts = ti2vid_one_stage.encode_prompts
    original_image_conditionings = ti2vid_one_stage.combined_image_conditionings
    original_decode_video = ti2vid_one_stage.vae_decode_video
    original_decode_audio = ti2vid_one_stage.vae_decode_audio
    video_guider_params, audio_guider_params = reference_guider_params(checkpoint, version)
    images = [] if image_path is None else [ImageConditioningInput(str(image_path), 0, IMAGE_STRENGTH)]
    with pytest.MonkeyPatch.context() as patch, torch.inference_mode():
        patch.setattr(torch.cuda, "synchronize", lambda *args, **kwargs: None)
        patch.setattr(GEMMA3_CONFIG_FOR_LTX.text_config, "hidden_size", TINY_GEMMA_HIDDEN_SIZE)
        patch.setattr(GEMMA3_CONFIG_FOR_LTX.text_config, "num_hidden_layers", TINY_GEMMA_NUM_LAYERS)
        patch.setattr(ti2vid_one_stage, "encode_prompts", encode_prompts)
        patch.setattr(ti2vid_one_stage, "combined_image_conditionings", image_conditionings)
        patch.setattr(ti2vid_one_stage, "vae_decode_video", decode_video)
        patch.setattr(ti2vid_one_stage, "vae_decode_audio", decode_audio)
        pipeline = ti2vid_one_stage.TI2VidOneStagePipeline(
            str(checkpoint), gemma_root=None, loras=(), device=torch.device("cpu")
        )
        tokenizer = LTXVGemmaTokenizer(str(tokenizer_dir), 1024)
        text_encoder = GemmaTextEncoder(model=gemma, tokenizer=tokenizer, dtype=DTYPE)
        patch.setattr(pipeline.model_ledger, "text_encoder", lambda: text_encoder)
        video, audio = pipeline(
            prompt=PROMPT,
            negative_prompt=DEFAULT_NEGATIVE_PROMPT,
            seed=SEED,
            height=HEIGHT,
            width=WIDTH,
            num_frames=NUM_FRAMES,
            frame_rate=FRAME_RATE,
            num_inference_steps=STEPS,
            video_guider_params=video_guider_params,
            audio_guider_params=audio_guider_params,
            images=images,
        )
        frames = torch.cat(list(video)).numpy()  # (F, H, W, 3) uint8 chunks; the decoder runs here
    return Run(
        seen["contexts"],
        seen["image_latent"],
        seen["video_latent"],
        seen["audio_latent"],
        seen["pixels"],
        frames,
        audio.waveform,
        audio.sampling_rate,
    )


def run_ours(
    pipe: LTX2AVPipeline,
    version: str,
    image_path: Path | None,
    video_guidance: GuidanceScales | None = None,
) -> Run:
    """Our pipeline with its defaults for the model version (negative prompt, guidance), STG on the tiny block."""
    seen: dict = {"image_latent": None}

    def encode_prompts(*args, **kwargs):  # one Gemma batch: the positive prompt, then the negative one
        embeds = original_encode_prompts(*args, **kwargs)
        seen["contexts"] = {
            "video": embeds.video_context[:1],
            "audio": embeds.audio_context[:1],
            "negative_video": embeds.video_context[1:],
            "negative_audio": embeds.audio_context[1:],
        }
        return embeds

    def encode_image(*args, **kwargs):
        seen["image_latent"] = original_encode_image(*args, **kwargs)
        return seen["image_latent"]

    def decode_video(vae, latents, generator=None):
        seen["video_latent"] = latents
        seen["pixels"] = original_decode_video(vae, latents, generator)
        return seen["pixels"]

    def decode_audio(audio_vae, vocoder, latents, reference):
        seen["audio_latent"] = latents
        return original_decode_audio(audio_vae, vocoder, latents, reference)

    original_encode_prompts, original_encode_image = pipeline_utils.encode_prompts, condition_encoding.encode_image
    original_decode_video, original_decode_audio = decoding.decode_video, decoding.decode_audio
    defaults = pipe.sampling_defaults
    blocks = tuple(TINY_STG_BLOCKS[version])
    if video_guidance is None:
        video_guidance = replace(defaults.video_guidance, stg_blocks=blocks)
    audio_guidance = replace(defaults.audio_guidance, stg_blocks=blocks)
    image = {} if image_path is None else {"image": str(image_path), "image_strength": IMAGE_STRENGTH}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pipeline_utils, "encode_prompts", encode_prompts)
        patch.setattr(condition_encoding, "encode_image", encode_image)
        patch.setattr(decoding, "decode_video", decode_video)
        patch.setattr(decoding, "decode_audio", decode_audio)
        output = pipe(
            PROMPT,  # negative prompt: the pipeline's default
            height=HEIGHT,
            width=WIDTH,
            num_frames=NUM_FRAMES,
            frame_rate=FRAME_RATE,
            num_inference_steps=STEPS,
            video_guidance=video_guidance,
            audio_guidance=audio_guidance,
            generator=torch.Generator().manual_seed(SEED),
            output_type="pil",
            reference="1.0",
            **image,
        )
    frames = np.stack([np.asarray(frame) for frame in output.frames[0]])
    return Run(
        seen["contexts"],
        seen["image_latent"],
        seen["video_latent"],
        seen["audio_latent"],
        seen["pixels"],
        frames,
        output.audio[0],
        output.audio_sample_rate,
    )


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread for this module: with ~7 processes sharing 2 cores, two OpenMP threads wait on each other
    (a 1024-token linear: 7 ms with 2 threads, 0.04 ms with 1), and both pipelines see the same setting."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Tiny single files (one per model version), the tiny Gemma in bf16 and its tokenizer (also saved for ltx-core),
    an image whose aspect differs from the video's (so cover resize and centre crop both act), and a cache. The
    reference's runs start here, in forked children (`reference_run` collects them): they run beside our pipeline's
    runs in this process instead of after them (CI has 2 cores), each exactly as it would run here."""
    root = tmp_path_factory.mktemp("e2e")
    checkpoints = {}
    for version in MODEL_VERSIONS:
        checkpoints[version] = root / f"ltx-{version}-tiny-dev.safetensors"
        write_tiny_checkpoint(checkpoints[version], version)
    gemma, tokenizer = build_tiny_gemma(seed=0)
    tokenizer.save_pretrained(root / "tokenizer")
    pixels = np.random.default_rng(0).integers(0, 256, size=(50, 60, 3), dtype=np.uint8)
    PIL.Image.fromarray(pixels).resize((100, 120), PIL.Image.BILINEAR).save(root / "image.png")
    tiny = {
        "checkpoints": checkpoints,
        "gemma": gemma.to(DTYPE),
        "tokenizer": tokenizer,
        "tokenizer_dir": root / "tokenizer",
        "image": root / "image.png",
        "cache": {},
    }
    references = {}
    for version, conditioning, _ in CASES:
        image = tiny["image"] if conditioning == "image" else None
        run = partial(run_reference, checkpoints[version], version, tiny["gemma"], tiny["tokenizer_dir"], image)
        references[version, conditioning] = Forked(run, root / f"reference-{version}-{conditioning}.pt")
    tiny["references"] = references
    yield tiny
    for child in references.values():
        child.stop()


def our_pipeline(tiny: dict, version: str) -> LTX2AVPipeline:
    key = ("pipeline", version)
    if key not in tiny["cache"]:
        checkpoint = tiny["checkpoints"][version]
        pipe = LTX2AVPipeline.from_single_file(
            checkpoint, text_encoder=tiny["gemma"], tokenizer=tiny["tokenizer"], torch_dtype=DTYPE
        )
        pipe.set_progress_bar_config(disable=True)
        pipe.transformer.set_reference("1.0")  # the oracle is ltx-pipelines 1.0.0
        tiny["cache"][key] = pipe
    return tiny["cache"][key]


def reference_run(tiny: dict, version: str, conditioning: str) -> Run:
    key = ("reference", version, conditioning)
    if key not in tiny["cache"]:
        tiny["cache"][key] = tiny["references"][version, conditioning].result()
    return tiny["cache"][key]


# (version, conditioning, our VAE's PixelNorm swapped for ltx-core's)
CASES = [(md.LTX2, "text", False), (md.LTX2, "image", True), (md.LTX2_3, "text", False), (md.LTX2_3, "image", True)]


@pytest.fixture(scope="module", params=CASES, ids=[f"ltx{v}-{c}{'-swapped' * s}" for v, c, s in CASES])
def runs(request, tiny) -> tuple[Run, Run, str, bool]:
    """(reference, ours, version, swapped) for one case."""
    version, conditioning, swapped = request.param
    image = tiny["image"] if conditioning == "image" else None
    pipe = our_pipeline(tiny, version)
    with ltx_core_pixel_norm() if swapped else nullcontext():
        ours = run_ours(pipe, version, image)
    return reference_run(tiny, version, conditioning), ours, version, swapped


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()


def frame_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


# ----------------------------------------------------------------------------------------------------------------------
# Tests


@pytest.mark.parametrize("version", list(MODEL_VERSIONS))
def test_version_defaults_equal_the_reference_presets(tiny, version):
    """Our pipeline's defaults for the file's model version are the reference CLI's (`detect_params`)."""
    from ltx_pipelines.utils.constants import DEFAULT_NEGATIVE_PROMPT, detect_params

    params = detect_params(str(tiny["checkpoints"][version]))
    pipe = our_pipeline(tiny, version)
    assert pipe.model_version == ("2.3" if version == md.LTX2_3 else "2.0")
    ours = pipe.sampling_defaults
    assert ours.num_inference_steps == params.num_inference_steps
    assert ours.negative_prompt == default_negative_prompt("1.2")  # the default; 1.0.0's with reference="1.0":
    assert default_negative_prompt("1.0") == DEFAULT_NEGATIVE_PROMPT
    pairs = ((ours.video_guidance, params.video_guider_params), (ours.audio_guidance, params.audio_guider_params))
    for scales, core in pairs:
        assert (scales.cfg, scales.stg, scales.modality, scales.rescale, scales.skip_step) == (
            core.cfg_scale,
            core.stg_scale,
            core.modality_scale,
            core.rescale_scale,
            core.skip_step,
        )
        assert list(scales.stg_blocks) == list(core.stg_blocks)
        assert core.cfg_scale != 1 and core.stg_scale != 0 and core.modality_scale != 1 and core.rescale_scale != 0


def test_prompt_contexts_match(runs):
    reference, ours, _, _ = runs
    for name in ("video", "audio", "negative_video", "negative_audio"):
        expected, got = reference.contexts[name], ours.contexts[name]
        assert got.shape == expected.shape and got.dtype == expected.dtype == DTYPE, name
        assert torch.equal(got, expected), f"{name} context differs by {max_abs_diff(got, expected)}"
    assert max_abs_diff(reference.contexts["video"], reference.contexts["negative_video"]) > 0.1


def test_image_latent_matches(runs, tiny):
    """The encoded conditioning image: bit-exact with ltx-core's PixelNorm, within PixelNorm's precision without."""
    reference, ours, version, swapped = runs
    if reference.image_latent is None:  # text-to-video
        assert ours.image_latent is None
        return
    assert ours.image_latent.shape == reference.image_latent.shape == (1, 128, 1, HEIGHT // 32, WIDTH // 32)
    assert swapped
    torch.testing.assert_close(ours.image_latent, reference.image_latent, rtol=0, atol=0)
    with torch.no_grad():
        plain = our_pipeline(tiny, version).encode_image(tiny["image"], HEIGHT, WIDTH, torch.device("cpu"))
    assert 0 < max_abs_diff(plain, reference.image_latent) <= LATENT_ATOL


def test_final_latents_match(runs):
    reference, ours, _, _ = runs
    assert ours.video_latent.shape == reference.video_latent.shape == (1, 128, 3, HEIGHT // 32, WIDTH // 32)
    assert ours.audio_latent.shape == reference.audio_latent.shape == (1, 8, round(NUM_FRAMES / FRAME_RATE * 25), 16)
    assert reference.video_latent.abs().max() > 1 and reference.audio_latent.abs().max() > 1
    torch.testing.assert_close(ours.video_latent, reference.video_latent, rtol=0, atol=0)
    torch.testing.assert_close(ours.audio_latent, reference.audio_latent, rtol=0, atol=0)


def test_decoded_video_matches(runs, tiny):
    """Pixels: bit-exact with ltx-core's PixelNorm, within PixelNorm's precision without (both checked on the same
    latents). uint8 frames: equal from equal pixels (both convert in bf16 and truncate), within rounding otherwise."""
    reference, ours, version, swapped = runs
    assert ours.pixels.shape == reference.pixels.shape == (1, 3, NUM_FRAMES, HEIGHT, WIDTH)
    assert ours.pixels.dtype == reference.pixels.dtype == DTYPE
    vae = our_pipeline(tiny, version).vae
    with torch.no_grad(), nullcontext() if swapped else ltx_core_pixel_norm():
        other = decoding.decode_video(vae, reference.video_latent)
    swapped_pixels, plain_pixels = (ours.pixels, other) if swapped else (other, ours.pixels)
    torch.testing.assert_close(swapped_pixels, reference.pixels, rtol=0, atol=0)
    assert 0 < max_abs_diff(plain_pixels, reference.pixels) <= PIXEL_ATOL
    assert ours.frames.shape == reference.frames.shape == (NUM_FRAMES, HEIGHT, WIDTH, 3)
    assert ours.frames.dtype == reference.frames.dtype == np.uint8
    if swapped:
        assert np.array_equal(ours.frames, reference.frames), frame_diff(ours.frames, reference.frames)
    else:
        assert 0 < frame_diff(ours.frames, reference.frames) <= FRAME_ATOL
    assert reference.frames.std() > 10  # not a flat picture


def test_waveform_matches(runs):
    reference, ours, version, _ = runs
    assert ours.sample_rate == reference.sample_rate == (48000 if version == md.LTX2_3 else 24000)
    assert ours.waveform.shape == reference.waveform.shape and ours.waveform.dtype == torch.float32
    assert reference.waveform.abs().max() > 1e-2
    torch.testing.assert_close(ours.waveform, reference.waveform, rtol=0, atol=0)


def test_the_comparison_can_fail(tiny):
    """Turning off the video STG term alone moves our latents far from the reference's: the exact matches above are
    not an artefact of the harness."""
    reference = reference_run(tiny, md.LTX2, "text")
    defaults = with_guidance_scales(sampling_preset("2.0")).video_guidance
    no_stg = replace(defaults, stg=0.0, stg_blocks=tuple(TINY_STG_BLOCKS[md.LTX2]))
    ours = run_ours(our_pipeline(tiny, md.LTX2), md.LTX2, None, video_guidance=no_stg)
    assert max_abs_diff(ours.video_latent, reference.video_latent) > 0.05
