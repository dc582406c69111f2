"""The `ltx2-diffusers` argument parser: one subcommand per pipeline. Imports neither torch nor diffusers, so that
`--help` answers at once."""

import argparse
from dataclasses import dataclass

from ..pipelines.presets import DEFAULT_IMAGE_CRF, HQ_PRESET, sampling_preset

DEFAULT_MODEL = "Lightricks/LTX-2"
PRESET = sampling_preset("2.0")  # sizes, frames, fps and seed are the same for every model version and kind
DTYPES = {"bf16": "bfloat16", "bfloat16": "bfloat16", "fp16": "float16", "float16": "float16", "fp32": "float32"}
DTYPES["float32"] = "float32"
MODEL_CHOICES = "a Hub id (e.g. Lightricks/LTX-2), a diffusers-layout folder, a .safetensors single file, or 'tiny'"


class CLIError(Exception):
    """A bad argument, found before or while running: `main` prints `prog: error: FLAG: message` on one line and
    exits with status 2, as argparse does for the errors it finds itself."""

    def __init__(self, flag: str, message: str):
        super().__init__(f"{flag}: {message}" if flag else message)
        self.flag = flag


AUTO = "auto"  # --frames auto: LTX-2.5's duration head predicts the length (cli/duration.py)


def frames_arg(value: str) -> int | str:
    """argparse type of --frames where the length can be predicted: an integer, or "auto"."""
    if value == AUTO:
        return AUTO
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {value!r}: a frame count (8k + 1) or 'auto'") from None


class OneLineParser(argparse.ArgumentParser):
    """argparse, but its errors are one line (no usage block): `prog: error: message (see prog --help)`."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


@dataclass(frozen=True)
class Command:
    """A subcommand: the pipeline class it runs and the flags that apply to it."""

    name: str
    pipeline: str  # class name, imported from ltx2_diffusers (keyframes: from its own module)
    summary: str
    height: int | None = None  # default output size; None: taken from the source clip (retake)
    width: int | None = None
    size_multiple: int = 32  # two-stage pipelines generate at half size first: 64
    kind: str | None = None  # a fixed checkpoint kind ("distilled"); None: --kind chooses
    features: frozenset = frozenset()
    example: str = ""


_TEXT = frozenset({"steps", "negative", "image", "keyframe", "enhance"})
_TWO_STAGE = frozenset({"upsampler"})
_TEMPORAL = frozenset({"temporal"})  # --temporal-upsampler: stage 2 doubles the clip in time
_AUTO_LENGTH = frozenset({"auto_length"})  # the pipelines with min_seconds / max_seconds (LTX-2.5's duration head)
TINY = "--model tiny --frames 9 --height 64 --width 64"
TINY2 = "--model tiny --frames 9 --height 128 --width 128"

COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command(
            "generate",
            "LTX2AVPipeline",
            "one stage: a prompt (and optional images) -> video with sound (ltx-pipelines' TI2VidOneStagePipeline)",
            PRESET.height,
            PRESET.width,
            features=_TEXT | _AUTO_LENGTH,
            example=f'ltx2-diffusers generate "a cat playing piano" -o cat.mp4 {TINY} --steps 2',
        ),
        Command(
            "two-stage",
            "LTX2AVTwoStagePipeline",
            "half size, x2 latent upsampling, 3 refinement steps (TI2VidTwoStagesPipeline); --distilled-lora for stage 2",
            PRESET.two_stage_height,
            PRESET.two_stage_width,
            64,
            features=_TEXT | _TWO_STAGE | _AUTO_LENGTH | _TEMPORAL | {"distilled_lora"},
            example=f'ltx2-diffusers two-stage "waves at dusk" -o waves.mp4 {TINY2} --steps 2',
        ),
        Command(
            "distilled",
            "LTX2AVTwoStagePipeline",
            "the distilled checkpoint in two stages: 8 + 3 fixed steps, no guidance (DistilledPipeline)",
            PRESET.two_stage_height,
            PRESET.two_stage_width,
            64,
            kind="distilled",
            features=frozenset({"image", "keyframe", "enhance"}) | _TWO_STAGE | _AUTO_LENGTH | _TEMPORAL,
            example=f'ltx2-diffusers distilled "a red fox in snow" -o fox.mp4 {TINY2}',
        ),
        Command(
            "hq",
            "LTX2AVTwoStageHQPipeline",
            "two stages with the res_2s sampler and the HQ guidance (TI2VidTwoStagesHQPipeline)",
            HQ_PRESET.two_stage_height,
            HQ_PRESET.two_stage_width,
            64,
            kind="dev",  # res_2s over the dev schedule shifted by the token count; the distilled LoRA does the rest
            features=frozenset({"steps", "negative", "image", "keyframe", "enhance", "distilled_lora"}) | _TWO_STAGE
            | _AUTO_LENGTH,
            example=f'ltx2-diffusers hq "a lighthouse in a storm" -o storm.mp4 {TINY2} --steps 2',
        ),
        Command(
            "ic-lora",
            "LTX2AVICLoRAPipeline",
            "video conditioned on reference videos (depth, pose, edges) through an IC-LoRA (ICLoraPipeline)",
            PRESET.two_stage_height,
            PRESET.two_stage_width,
            64,
            kind="distilled",
            features=frozenset({"image", "keyframe", "enhance", "ic_lora"}) | _TWO_STAGE,
            example=f'ltx2-diffusers ic-lora "a dancer" -o dance.mp4 --ic-lora pose.safetensors --reference pose.mp4 '
            f"{TINY2}",
        ),
        Command(
            "dub-it",
            "LTX2AVDubItPipeline",
            "new speech for a clip with sound, its voice and lip sync kept, through the Dub-It IC-LoRA (DubItPipeline)",
            size_multiple=64,
            kind="distilled",
            features=frozenset({"enhance", "dubit"}) | _TWO_STAGE,
            example='ltx2-diffusers dub-it "he says: see you tomorrow" -o dubbed.mp4 --ic-lora dub-it.safetensors '
            "--reference-video talk.mp4 --model tiny --height 128 --width 128",
        ),
        Command(
            "keyframes",
            "LTX2AVKeyframeInterpolationPipeline",
            "interpolate between keyframe images placed at pixel frames (KeyframeInterpolationPipeline)",
            PRESET.two_stage_height,
            PRESET.two_stage_width,
            64,
            features=frozenset({"steps", "negative", "keyframe", "enhance", "distilled_lora"}) | _TWO_STAGE,
            example=f'ltx2-diffusers keyframes "a flower opens" -o bloom.mp4 --keyframe bud.png:0 --keyframe '
            f"open.png:8 {TINY2} --steps 2",
        ),
        Command(
            "audio-to-video",
            "LTX2AVAudioToVideoPipeline",
            "a prompt and a soundtrack -> a video that follows it, in two stages (A2VidPipelineTwoStage)",
            PRESET.two_stage_height,
            PRESET.two_stage_width,
            64,
            features=frozenset({"steps", "negative", "image", "keyframe", "enhance", "audio", "distilled_lora"})
            | _TWO_STAGE,
            example=f'ltx2-diffusers audio-to-video "a drummer on stage" -o drums.mp4 --audio drums.wav {TINY2} '
            "--steps 2",
        ),
        Command(
            "retake",
            "LTX2AVRetakePipeline",
            "regenerate a time window of an existing clip's video and/or audio (RetakePipeline)",
            features=frozenset({"steps", "negative", "enhance", "retake"}),
            example='ltx2-diffusers retake "she laughs" -o retake.mp4 --video cat.mp4 --start 0.1 --end 0.3 '
            "--model tiny --steps 2",
        ),
        Command(
            "extend",
            "LTX2AVExtendPipeline",
            "continue a clip's video AND sound by new frames, forwards or backwards, any number of times",
            features=frozenset({"steps", "negative", "extend"}),
            example='ltx2-diffusers extend "the cat jumps off" -o longer.mp4 --video cat.mp4 --new-frames 8 '
            "--context-frames 9 --extensions 2 --model tiny --steps 2",
        ),
        Command(
            "text-to-audio",
            "LTX2TextToAudioPipeline",
            "a prompt -> a stereo soundtrack alone, written as WAV: no video (T2AOneStagePipeline)",
            features=frozenset({"steps", "negative", "enhance", "duration", "t2a"}) | _AUTO_LENGTH,
            example='ltx2-diffusers text-to-audio "rain on a tin roof" -o rain.wav --model tiny --frames 9 --steps 2',
        ),
        Command(
            "video-to-audio",
            "LTX2VideoToAudioPipeline",
            "a new soundtrack (Foley) for a clip, its frames kept as they are (RetakePipeline with the video kept)",
            features=frozenset({"steps", "negative", "enhance", "v2a"}),
            example='ltx2-diffusers video-to-audio "footsteps on gravel" -o foley.mp4 --video walk.mp4 --model tiny '
            "--steps 2",
        ),
        Command(
            "hdr",
            "LTX2AVHDRICLoraPipeline",
            "SDR videos -> scene-linear HDR EXR frames (and a BT.2020 / HLG mp4) through the HDR IC-LoRA, video only "
            "(HDRICLoraPipeline)",
            size_multiple=64,
            kind="distilled",
            features=frozenset({"hdr"}) | _TWO_STAGE,
            example='ltx2-diffusers hdr "a sunlit kitchen" -o hdr_out --input clip.mp4 --hdr-lora hdr.safetensors '
            "--hlg --model tiny --frames 9 --height 128 --width 128",
        ),
        Command(
            "dfr",
            "LTX2AVDFRPipeline",
            "LTX-2.5: generated keyframe slots, detailing, temporal x2 rounds (DFRPipeline)",
            PRESET.two_stage_height,
            PRESET.two_stage_width,
            64,
            kind="dev",
            features=frozenset({"image", "keyframe", "enhance", "distilled_lora", "dfr"}) | _TWO_STAGE,
            example='ltx2-diffusers dfr "a hummingbird" -o bird.mp4 --model tiny-2.5 --frames 9 --height 128 '
            "--width 128 --temporal-upsample-rounds 1",
        ),
    )
}

EXAMPLES = (
    "examples (each runs offline in seconds with the random tiny model; drop --model tiny and the sizes for "
    "the real one):\n"
    + "\n".join(f"  {c.example}" for c in COMMANDS.values())
    + """
  ltx2-diffusers convert ltx-2-19b-dev.safetensors ltx2-dev/ --upsampler ltx-2-spatial-upscaler-x2-1.0.safetensors
  ltx2-diffusers generate "a jazz pianist in a smoky club" -o piano.mp4 --model Lightricks/LTX-2
  ltx2-diffusers generate "she turns and smiles" -o smile.mp4 --image face.png \\
      --model ltx-2.3-22b-dev.safetensors --text-encoder google/gemma-3-12b-it-qat-q4_0-unquantized"""
)


def add_dfr_flags(sub: argparse.ArgumentParser) -> None:
    """The flags only `dfr` takes (the reference's names)."""
    group = sub.add_argument_group("DFR")
    group.add_argument(
        "--temporal-upsample-rounds", type=int, choices=(0, 1, 2), default=0,
        help="temporal x2 rounds: 0 keeps --fps, 1 doubles it (2 tiles), 2 quadruples it (4 tiles) (default 0)",
    )  # fmt: skip
    group.add_argument(
        "--temporal-upsampler",
        help="the temporal x2 upscaler's single file (ltx-2.5-latent-temporal-upscaler-x2-bf16-1.0.safetensors); "
        "needed for rounds > 0 except with a tiny --model",
    )
    group.add_argument(
        "--detailing-lora", metavar="PATH[:SCALE]",
        help="the x2 pixel-spatial-upscaler IC-LoRA, on in stage 2 with the stage-1 video as its reference",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="ltx2-diffusers",
        description="LTX-2 / LTX-2.3 audio+video generation: every subcommand writes an mp4 (H.264 + AAC stereo), "
        "text-to-audio a WAV. "
        "`ltx2-diffusers SUBCOMMAND --help` lists its flags.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    for command in COMMANDS.values():
        sub = commands.add_parser(
            command.name,
            help=command.summary,
            description=command.summary + ".",
            epilog=f"example:\n  {command.example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _add_common(sub, command)
    commands.add_parser(
        "convert",
        help="convert a Lightricks single-file checkpoint to a diffusers folder and back "
        "(scripts/convert_checkpoint.py; `ltx2-diffusers convert --help` for its flags)",
        add_help=False,
    )
    push = commands.add_parser(
        "push",
        help="upload a folder saved by save_pretrained, the converter or the training script to the Hugging Face Hub",
        description="Upload a pipeline, model or LoRA folder to a Hub repo in one commit, with a model card that "
        "names the repo. The folder, the repo id and the token are checked before any request (docs/hub.md).",
    )
    push.add_argument("folder", help="the folder to upload")
    push.add_argument("repo_id", help="the Hub repo, namespace/name (created if missing)")
    push.add_argument("--private", action="store_true", help="create the repo private")
    push.add_argument("--revision", help="the branch to commit to (created if missing)")
    return parser


def _add_common(sub: argparse.ArgumentParser, command: Command) -> None:
    f = command.features
    sub.add_argument("prompt", help="what to generate")
    kinds = "a .wav file (16-bit PCM stereo)" if "t2a" in f else "a .mp4, .mov or .mkv file"
    kinds = "a folder: <stem>_exr/frame_00000.exr ... (and <stem>.mp4) per input video" if "hdr" in f else kinds
    sub.add_argument("-o", "--output", required=True, help=f"output: {kinds} (its folder is created)")
    model = sub.add_argument_group("model")
    model.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"{MODEL_CHOICES} (default: %(default)s)",
    )
    model.add_argument("--text-encoder", help="Gemma-3 folder or Hub id; only with a single-file --model")
    if "upsampler" in f:
        model.add_argument("--upsampler", help="the spatial upscaler (x2, or x1.5 with sides multiples of 96)'s single file; only with a single-file --model")
    if "temporal" in f:
        model.add_argument(
            "--temporal-upsampler",
            metavar="PATH",
            help="the temporal x2 upscaler's single file (ltx-2.5-latent-temporal-upscaler-x2-bf16-1.0.safetensors): "
            "stage 2 doubles the clip in time, (frames - 1) x 2 + 1 frames written at twice --fps, the sound kept",
        )
    if command.kind is None:
        model.add_argument(
            "--kind",
            choices=("dev", "distilled"),
            help="dev (shifted schedule, guided) or distilled (8 fixed sigmas, no guidance). Default: the "
            "checkpoint's own scheduler, else 'distilled' when its name says so, else dev",
        )
    model.add_argument(
        "--lora",
        action="append",
        default=[],
        metavar="PATH[:SCALE]",
        help="a LoRA .safetensors fused into the transformer at SCALE (default 1); repeat for several",
    )
    model.add_argument("--fp8", action="store_true", help="FP8 transformer linears (CUDA capability 8.9+, bf16)")
    if "distilled_lora" in f:
        model.add_argument(
            "--distilled-lora",
            metavar="PATH[:SCALE]",
            help="the distilled LoRA (e.g. ltx-2-19b-distilled-lora-384.safetensors), used in stage 2 only",
        )
    if "ic_lora" in f:
        model.add_argument("--ic-lora", required=True, metavar="PATH[:SCALE]", help="the IC-LoRA .safetensors")

    size = sub.add_argument_group("size")
    auto = "auto_length" in f
    frames_type, auto_help = (frames_arg, ", or 'auto': LTX-2.5's duration head picks it") if auto else (int, "")
    if command.height is not None:
        m = command.size_multiple
        size.add_argument(
            "--frames",
            type=frames_type,
            default=PRESET.num_frames,
            help=f"number of frames, 8k + 1{auto_help} (default %(default)s)",
        )
        size.add_argument("--height", type=int, default=command.height, help=f"multiple of {m} (default %(default)s)")
        size.add_argument("--width", type=int, default=command.width, help=f"multiple of {m} (default %(default)s)")
        size.add_argument("--fps", type=float, default=PRESET.frame_rate, help="frame rate, > 0 (default %(default)g)")
    if "duration" in f:  # the reference's text-to-audio takes its length as frames at a frame rate
        size.add_argument(
            "--frames",
            type=frames_type,
            default=PRESET.num_frames,
            help=f"length in frames, 8k + 1{auto_help} (default %(default)s)",
        )
        size.add_argument(
            "--fps", type=float, default=PRESET.frame_rate, help="frames per second (default %(default)g)"
        )
    if auto:  # diffusers' names; defaults: pipelines.ltx25's (the reference's --auto-duration 1 20)
        size.add_argument("--min-seconds", type=float, help="with --frames auto: the shortest clip, s (default 1)")
        size.add_argument("--max-seconds", type=float, help="with --frames auto: the longest clip, s (default 20)")
    if "dubit" in f:  # frames and fps are the reference clip's (its frame count snapped down to 8k + 1)
        model.add_argument("--ic-lora", required=True, metavar="PATH[:SCALE]", help="the Dub-It IC-LoRA .safetensors")
        for side in ("height", "width"):
            default = getattr(PRESET, f"two_stage_{side}")
            size.add_argument(f"--{side}", type=int, default=default, help="multiple of 64 (default %(default)s)")
        dub = sub.add_argument_group("dubbing")
        dub.add_argument(
            "--reference-video",
            required=True,
            help="the clip to dub, with sound: its frames, fps and voice are kept, the speech follows the prompt",
        )
        dub.add_argument(
            "--reference-strength", type=float, default=1.0, help="1 keeps the reference frames' tokens clean"
        )
    size.add_argument(
        "--allow-large",
        action="store_true",
        help="run requests above the size guard (more than 65536 video tokens or 16 GiB of decoded frames)",
    )

    sampling = sub.add_argument_group("sampling")
    sampling.add_argument("--seed", type=int, default=PRESET.seed, help="random seed, >= 0 (default %(default)s)")
    sampling.add_argument(  # presets.REFERENCES; not --reference, which ic-lora's reference video already uses
        "--reference-version",
        choices=("1.2", "1.0"),
        help="the ltx-pipelines release whose numerics to follow: 1.2 (the pipelines' default) or 1.0 (1.0.0 bit "
        "for bit; not for LTX-2.5)",
    )
    if "steps" in f:
        sampling.add_argument("--steps", type=int, help="denoising steps (default: the model version's)")
    if "negative" in f:
        sampling.add_argument("--negative-prompt", help="default: the reference's negative prompt")
    if "enhance" in f:
        sampling.add_argument(
            "--enhance-prompt",
            action="store_true",
            help="let Gemma rewrite the prompt first (seeded by --seed; with --image it sees the image); refused "
            "where the pipeline has no prompt enhancement",
        )

    if f & {"image", "keyframe", "audio", "retake", "ic_lora", "v2a"}:
        cond = sub.add_argument_group("conditioning")
        if "image" in f:
            cond.add_argument("--image", help="image for the first frame (image-to-video)")
            cond.add_argument(
                "--image-strength", type=float, help="1 keeps the image exactly (default 1); needs --image"
            )
        if "keyframe" in f:
            cond.add_argument(
                "--keyframe",
                action="append",
                default=[],
                metavar="PATH:FRAME[:STRENGTH]",
                help="an image placed at pixel frame FRAME (0-based) at STRENGTH (default 1); repeat for several"
                + ("; at least one" if command.name == "keyframes" else ""),
            )
        if f & {"image", "keyframe"}:
            cond.add_argument(
                "--image-crf",
                type=int,
                help=f"H.264 quality of the round trip images go through first, as the training data's compression "
                f"(default {DEFAULT_IMAGE_CRF}, as ltx-pipelines; 0 skips it); needs --image or --keyframe",
            )
        if "audio" in f:
            cond.add_argument("--audio", required=True, help="the soundtrack (any file with an audio stream)")
            cond.add_argument("--audio-start", type=float, default=0.0, help="seconds into --audio (default 0)")
        if "ic_lora" in f:
            cond.add_argument(
                "--reference",
                action="append",
                default=[],
                required=True,
                metavar="VIDEO[:STRENGTH]",
                help="a reference video for the IC-LoRA (depth, pose, edges ...); repeat for several",
            )
            cond.add_argument("--skip-stage-2", action="store_true", help="decode the half-size stage-1 result")
        if "v2a" in f:
            cond.add_argument(
                "--video", required=True, help="the clip (8k + 1 frames, sides multiples of 32); its sound is replaced"
            )
        if "retake" in f:
            cond.add_argument(
                "--video", required=True, help="the clip to retake (8k + 1 frames, sides multiples of 32)"
            )
            cond.add_argument("--start", type=float, required=True, help="start of the window, seconds")
            cond.add_argument("--end", type=float, required=True, help="end of the window, seconds")
            keep = cond.add_mutually_exclusive_group()
            keep.add_argument("--keep-video", action="store_true", help="regenerate the audio only")
            keep.add_argument("--keep-audio", action="store_true", help="regenerate the video only")

    if "extend" in f:  # defaults: LTX2AVExtendPipeline's
        ext = sub.add_argument_group("extension")
        ext.add_argument("--video", required=True, help="the clip to extend (its sound is continued too)")
        ext.add_argument("--new-frames", type=int, help="new frames per extension, a multiple of 8 (default 96)")
        ext.add_argument("--context-frames", type=int, help="frames the new ones continue, 8k + 1 (default 25)")
        ext.add_argument("--extensions", type=int, help="extensions in a row (default 1)")
        ext.add_argument("--backwards", action="store_true", help="add the new frames before the clip")
        ext.add_argument("--no-audio-context", action="store_true", help="generate the new sound without context")

    if "dfr" in f:
        add_dfr_flags(sub)

    if "hdr" in f:  # defaults: the reference's (161 frames) and the input video's size and rate
        hdr = sub.add_argument_group("HDR")
        hdr.add_argument("--input", required=True, help="an SDR Rec.709 video, or a folder of them (each in turn)")
        hdr.add_argument("--hdr-lora", required=True, metavar="PATH[:SCALE]", help="the HDR IC-LoRA .safetensors")
        hdr.add_argument("--frames", type=int, default=161, help="frames to generate, 8k + 1 (default %(default)s)")
        hdr.add_argument("--height", type=int, help="output height (generated at the next multiple of 64, cropped back)")
        hdr.add_argument("--width", type=int, help="output width (generated at the next multiple of 64, cropped back)")
        hdr.add_argument("--fps", type=float, help="frame rate (default: the input's)")
        hdr.add_argument(
            "--high-quality", action="store_true", help="2F - 1 frames from doubled inputs, every other kept"
        )
        hdr.add_argument(
            "--exr-space",
            choices=("srgb_linear", "acescg", "acescct"),
            default="srgb_linear",
            help="EXR pixels: linear Rec.709 (tagged sRGB), linear ACEScg or ACEScct codes (default %(default)s)",
        )
        hdr.add_argument("--hlg", action="store_true", help="also write <stem>.mp4: BT.2020 / HLG 10-bit HEVC")

    run = sub.add_argument_group("device")
    run.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    run.add_argument("--dtype", choices=sorted(DTYPES), help="default: bf16 on cuda, fp32 on cpu")
    run.add_argument("--offload", action="store_true", help="model CPU offload: one component on the GPU at a time")
    run.add_argument(
        "--vram",
        metavar="GB",
        help="GPU memory budget in GiB (e.g. 24, 24GB): the memory planner keeps what fits on the GPU and streams the "
        "rest (FP8 block storage where the GPU supports it); a size that cannot fit is refused (docs/memory.md)",
    )
    # under `torchrun --nproc_per_node N -m ltx2_diffusers.cli ...` (cli/distributed.py, docs/parallel.md)
    run.add_argument("--context-parallel", type=int, metavar="N", help="under torchrun: ranks sharing the tokens")
    run.add_argument(
        "--guidance-parallel", type=int, metavar="N", help="under torchrun: ranks sharing a guided step's passes"
    )
    run.add_argument("--parallel-mode", choices=("ulysses", "ring"), help="context parallel kind (default ulysses)")
    run.add_argument(
        "--shard-weights", action="store_true", help="under torchrun: shard the transformer and Gemma over the ranks"
    )
    tiling = run.add_mutually_exclusive_group()
    tiling.add_argument(
        "--vae-tiling",
        dest="vae_tiling",
        action="store_const",
        const=True,
        help="always decode the video in overlapping tiles (least memory). Default: tile only clips of more than "
        "64x512x512 output pixels",
    )
    tiling.add_argument(
        "--no-vae-tiling",
        dest="vae_tiling",
        action="store_const",
        const=False,
        help="never tile: decode the clip in one call (most memory)",
    )
