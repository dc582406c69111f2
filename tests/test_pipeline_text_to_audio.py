"""LTX2TextToAudioPipeline (tiny, CPU).

(1) Parity with ltx-pipelines 1.2.0's `T2AOneStagePipeline` stage, without the oracle: tests/goldens/pipelines12/
    t2a.safetensors holds a tiny audio-only model's weights (original names), the audio contexts, sigmas, the seed and
    the stage's denoised audio latent, written by scripts/goldens/pipelines12.py. The weights go through our key map
    into an audio-VIDEO transformer whose video half is random: the pipeline must reproduce the latent whatever the
    video weights are (the audio-only forward never reads them).
(2) Output shapes and durations, output types, the noise argument, callbacks.
(3) Input errors before any model runs.
"""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from ltx2_diffusers.loaders.transformer_keys import original_to_diffusers_keys
from ltx2_diffusers.models.autoencoder_kl_ltx2_audio import audio_latent_frames
from ltx2_diffusers.models.transformer_ltx2 import LTX2VideoTransformer3DModel
from ltx2_diffusers.pipelines.guidance import GuidanceScales
from ltx2_diffusers.pipelines.pipeline_ltx2_text_to_audio import LTX2TextToAudioPipeline
from ltx2_diffusers.pipelines.text_encoding import PromptEmbeddings
from ltx2_diffusers.pipelines.tiny import build_tiny_pipeline, tiny_transformer_config

GOLDENS = Path(__file__).parent / "goldens" / "pipelines12"
LAYOUTS = {"2.0": "t2a", "2.3": "t2a23"}  # model version -> golden file
FRAMES, FPS = 17, 24.0


@pytest.fixture(scope="module")
def pipe() -> LTX2TextToAudioPipeline:
    tiny = build_tiny_pipeline(seed=0)
    pipe = LTX2TextToAudioPipeline(**tiny.components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module", params=list(LAYOUTS))
def golden(request) -> tuple[LTX2TextToAudioPipeline, dict, dict, list[str]]:
    """The tiny pipeline of a model version with the golden's audio weights in a 2-block transformer whose other
    weights are random; (pipeline, tensors, metadata, the names of the parameters the golden does not hold)."""
    version = request.param
    with safe_open(GOLDENS / f"{LAYOUTS[version]}.safetensors", "pt") as f:
        metadata = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    weights = {k: v.float() for k, v in tensors.items() if k.startswith("model.diffusion_model.")}
    torch.manual_seed(1)
    transformer = LTX2VideoTransformer3DModel(**{**tiny_transformer_config(version), "num_layers": 2}).eval()
    for parameter in transformer.parameters():
        parameter.data.normal_(0.0, 0.05)
    mapping = original_to_diffusers_keys(weights, transformer.config, set(transformer.state_dict()))
    missing, unexpected = transformer.load_state_dict({mapping[k]: v for k, v in weights.items()}, strict=False)
    assert unexpected == []
    # what the audio-only model lacks is the video stream and audio<->video attention, nothing of the audio stream
    audio_only = ("audio_attn1", "audio_attn2", "audio_ff", "audio_scale_shift_table", "audio_proj", "audio_time")
    assert missing and not [k for k in missing if any(part in k for part in audio_only)]
    components = build_tiny_pipeline(seed=0, model_version=version).components
    pipe = LTX2TextToAudioPipeline(**{**components, "transformer": transformer})
    pipe.set_progress_bar_config(disable=True)
    return pipe, tensors, metadata, missing


def golden_call(pipe: LTX2TextToAudioPipeline, tensors: dict, metadata: dict, **kwargs):
    guider = json.loads(metadata["guider"])

    # the video context only feeds the empty video stream: zeros of the width the transformer takes
    cfg = pipe.transformer.config
    video_width = (
        cfg.caption_channels if hasattr(pipe.transformer, "caption_projection") else pipe.transformer.inner_dim
    )

    def embeds(audio_context):
        tokens = audio_context.shape[1]
        return PromptEmbeddings(
            torch.zeros(1, tokens, video_width), audio_context, torch.ones(1, tokens, dtype=torch.int64)
        )

    return pipe(
        prompt_embeds=embeds(tensors["input.audio_context"]),
        negative_prompt_embeds=embeds(tensors["input.negative_audio_context"]),
        num_frames=int(metadata["num_frames"]),
        frame_rate=float(metadata["frame_rate"]),
        sigmas=tensors["input.sigmas"].tolist(),
        audio_guidance=GuidanceScales(
            cfg=guider["cfg_scale"],
            stg=guider["stg_scale"],
            rescale=guider["rescale_scale"],
            modality=guider["modality_scale"],
            stg_blocks=tuple(guider["stg_blocks"]),
        ),  # fmt: skip
        generator=torch.Generator().manual_seed(int(tensors["input.seed"])),
        output_type="latent",
        **kwargs,
    )


def test_stage_state_equals_ltx_pipelines_1_2(golden):
    pipe, tensors, metadata, _ = golden
    expected = tensors["output.audio_latent"]
    assert expected.abs().mean() > 0.5  # O(1) values: the tolerance means something
    latent = golden_call(pipe, tensors, metadata).audio
    assert latent.shape == expected.shape == (1, 8, audio_latent_frames(FRAMES, FPS), 16)
    torch.testing.assert_close(latent, expected, rtol=0, atol=1e-4)


def test_video_weights_are_never_read(golden):
    pipe, tensors, metadata, missing = golden
    parameters = dict(pipe.transformer.named_parameters())
    with torch.no_grad():
        for name in missing:  # the video stream and audio<->video attention, drawn again, larger
            parameters[name].normal_(0.0, 0.5)
    latent = golden_call(pipe, tensors, metadata).audio
    torch.testing.assert_close(latent, tensors["output.audio_latent"], rtol=0, atol=1e-4)


def test_golden_parity_fails_with_a_wrong_guidance(golden):
    pipe, tensors, metadata, _ = golden
    metadata = {**metadata, "guider": json.dumps({**json.loads(metadata["guider"]), "rescale_scale": 0.0})}
    other = golden_call(pipe, tensors, metadata).audio
    assert (other - tensors["output.audio_latent"]).abs().max() > 1e-2


def test_waveform_shape_and_rate(pipe):
    out = pipe("rain on a tin roof", num_frames=9, frame_rate=FPS, num_inference_steps=2,
               generator=torch.Generator().manual_seed(0))  # fmt: skip
    latent_frames = audio_latent_frames(9, FPS)  # 9 = round(9 / 24 * 25)
    # the audio VAE gives 4 T_a - 3 mel frames of 10 ms, the tiny vocoder 240 samples each (24 kHz)
    assert out.frames is None and out.audio_sample_rate == 24000
    assert out.audio.shape == (1, 2, (4 * latent_frames - 3) * 240)
    assert out.audio.dtype == torch.float32 and torch.isfinite(out.audio).all()


def test_batch_output_types_and_noise(pipe):
    noise = torch.randn(1, 8, audio_latent_frames(9, 24.0), 16)
    kwargs = dict(num_frames=9, frame_rate=24.0, num_inference_steps=2, audio_latents=noise)
    latent = pipe(["a dog barks", "a cat"], num_waveforms_per_prompt=2, output_type="latent", **kwargs).audio
    assert latent.shape == (4, 8, 9, 16)
    torch.testing.assert_close(latent[0], latent[1])  # same prompt, same given noise
    assert (latent[0] - latent[2]).abs().max() > 1e-6  # other prompt (the tiny weights make the effect small)
    frames, audio = pipe("a dog barks", output_type="np", return_dict=False, **kwargs)
    assert frames is None and isinstance(audio, np.ndarray) and audio.shape == (1, 2, (4 * 9 - 3) * 240)


def test_callback_sees_the_audio_latents(pipe):
    seen = []

    def callback(pipe_, step, timestep, tensors):
        seen.append((step, tuple(tensors["audio_latents"].shape)))
        return {}

    pipe("wind", num_frames=9, frame_rate=24.0, num_inference_steps=3, callback_on_step_end=callback,
         callback_on_step_end_tensor_inputs=["audio_latents"], output_type="latent")  # fmt: skip
    assert seen == [(0, (1, 9, 128)), (1, (1, 9, 128)), (2, (1, 9, 128))]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(num_frames=16), ValueError, r"num_frames=16 is not of the form 8\*k \+ 1.*Use 9 or 17"),
        (dict(frame_rate=0), ValueError, r"frame_rate=0 must be > 0"),
        (dict(output_type="pil"), ValueError, r"output_type='pil' is not one of 'pt', 'np', 'latent'"),
        (dict(audio_guidance=GuidanceScales(modality=3.0)), ValueError, r"modality != 1.*no video to isolate"),
        (dict(audio_guidance=GuidanceScales(), audio_guidance_scale=3.0), ValueError, r"both given"),
        (dict(callback_on_step_end=lambda *a: {}, callback_on_step_end_tensor_inputs=["video_latents"]),
         ValueError, r"\['video_latents'\], which this pipeline does not pass"),
        (dict(num_waveforms_per_prompt=0), ValueError, r"num_waveforms_per_prompt"),
        (dict(generator=3), TypeError, r"torch.Generator\(\).manual_seed\(3\)"),
        (dict(audio_latents=torch.zeros(1, 8, 5, 16)), ValueError, r"audio_latents must be noise of shape"),
    ],
)  # fmt: skip
def test_input_errors(pipe, kwargs, error, match):
    with pytest.raises(error, match=match):
        pipe("rain", num_inference_steps=2, **{"num_frames": 9, **kwargs})


def test_errors_before_any_model_runs(pipe, monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("a model ran before the inputs were checked")

    monkeypatch.setattr(pipe.text_encoder, "forward", boom)
    with pytest.raises(ValueError, match="num_frames=10"):
        pipe("rain", num_frames=10)


def test_cli_writes_a_16_bit_stereo_wav(tmp_path, capsys):
    import wave

    from ltx2_diffusers.cli import main

    path = tmp_path / "sound" / "rain.wav"
    argv = ["text-to-audio", "rain", "-o", str(path), "--model", "tiny", "--frames", "9", "--steps", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"wrote {path}: stereo audio at 24000 Hz (0.33 s, 16-bit PCM)"), out
    with wave.open(str(path)) as file:
        assert (file.getnchannels(), file.getsampwidth(), file.getframerate()) == (2, 2, 24000)
        assert file.getnframes() == (4 * 9 - 3) * 240
        samples = np.frombuffer(file.readframes(file.getnframes()), dtype="<i2")
    assert samples.std() > 10  # random weights, but not silence
    assert sorted(p.name for p in path.parent.iterdir()) == ["rain.wav"]  # no partial file left


@pytest.mark.parametrize(
    "extra, match",
    [
        (["-o", "x.mp4"], r"-o/--output='x.mp4': .* must end in one of .wav"),
        (["-o", "x.wav", "--frames", "10"], r"--frames=10 is not of the form 8\*k \+ 1"),
        (["-o", "x.wav", "--vae-tiling"], r"--vae-tiling: does not apply to `text-to-audio`"),
        (["-o", "x.wav", "--kind", "distilled", "--steps", "3"], r"--steps: does not apply to a distilled checkpoint"),
        (["-o", "x.wav", "--height", "64"], r"unrecognized arguments: --height"),
    ],
)
def test_cli_errors(extra, match, tmp_path, capsys, monkeypatch):
    from ltx2_diffusers.cli import main

    monkeypatch.chdir(tmp_path)
    try:
        status = main(["text-to-audio", "rain", "--model", "tiny", *extra])
    except SystemExit as exit_:  # argparse's own errors
        status = exit_.code
    assert status == 2
    assert re.search(match, capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


def test_saved_folder_loads_back_as_text_to_audio(pipe, tmp_path):
    from diffusers import DiffusionPipeline

    pipe.save_pretrained(tmp_path)
    assert '"_class_name": "LTX2TextToAudioPipeline"' in (tmp_path / "model_index.json").read_text()
    loaded = DiffusionPipeline.from_pretrained(tmp_path)
    assert type(loaded) is LTX2TextToAudioPipeline


@pytest.mark.gpu
def test_bf16_on_gpu_with_model_cpu_offload_gives_the_same_audio():
    def build():
        pipe = LTX2TextToAudioPipeline(**build_tiny_pipeline(seed=0).components)
        pipe.set_progress_bar_config(disable=True)
        return pipe.to(torch.bfloat16)

    def generate(pipe):
        return pipe(
            "rain", num_frames=17, num_inference_steps=2, generator=torch.Generator("cuda").manual_seed(0)
        ).audio

    on_gpu = generate(build().to("cuda"))
    assert on_gpu.shape == (1, 2, (4 * 18 - 3) * 240) and torch.isfinite(on_gpu).all() and on_gpu.abs().max() > 0
    offloaded = build()
    offloaded.enable_model_cpu_offload()
    torch.testing.assert_close(generate(offloaded).cpu(), on_gpu.cpu(), rtol=0, atol=0)
