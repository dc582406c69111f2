"""Opt-in prompt enhancement: Gemma-3 rewrites a short prompt into the detailed audio-visual description LTX-2 was
trained on (spec §5.7).

The procedure follows the reference: a system message and the user's prompt go through Gemma's chat template, the
text is tokenized the way the reference's processor does it (the template already starts with `<bos>` and the
tokenizer adds another, as there), right-padded to a multiple of 8 tokens, and sampled (temperature 0.7, at most 512
new tokens) under `torch.manual_seed(seed)` in a forked RNG, so the caller's random state is left alone. The new
tokens are decoded without special tokens and cleaned (curly quotes and dashes to ASCII, leading non-letters
dropped). With an image (image-to-video), the image is resized so that its long side is 896 px and given to Gemma's
vision tower through a `Gemma3Processor`.

The two system prompts below are written for this package; they ask for the same things as the reference's, in
other words, since the reference's text is not under a license we can ship.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from transformers import Gemma3ForConditionalGeneration, PreTrainedTokenizerBase, ProcessorMixin

from .inputs import ImageInput, image_to_uint8

DEFAULT_SEED = 10  # the reference's default for enhance_t2v / enhance_i2v (its pipelines pass their own seed)
MAX_NEW_TOKENS = 512
TEMPERATURE = 0.7
IMAGE_LONG_SIDE = 896  # Gemma-3's SigLIP input side
PAD_TO_MULTIPLE = 8

T2V_SYSTEM_PROMPT = """\
You turn a user's short idea into a prompt for a model that generates a video clip together with its soundtrack.

Write exactly one paragraph of plain English, between 80 and 200 words, and nothing else: no title, no list, no \
quotation of these rules, no commentary before or after.

How to write it:
- If the user asks for a particular look (for example animation, film noir, watercolor or found footage), open with \
"Style: <the look>," and continue the same sentence. Otherwise start directly with the scene.
- Describe what is seen in the order it happens, using the present progressive ("a man is crossing the street", \
"leaves are drifting down"). Name the subjects, their appearance, what they do, the setting, the light and the colors.
- Weave the sound into the description as it happens: ambient noise, sound effects, music if it fits, and how loud or \
close each sound is. Be concrete ("a kettle is whistling sharply in the next room"), never vague ("nice sounds").
- Only if the user wants someone to speak or sing, give the exact words in double quotes and say who says them and \
how (whispering, shouting, in a calm voice). Never invent speech the user did not ask for.
- Keep to one continuous shot. Mention camera movement only if the user asked for it. Do not add cuts, scene \
changes, timestamps, durations, or smells, tastes and textures that a camera and microphone cannot capture.
- Keep every detail the user gave; add only what makes the scene concrete and consistent with it.
- If the request is unsafe or asks for content you cannot describe, reply with the user's prompt unchanged.

Example
User prompt: a street musician on a rainy evening
Your answer: A street musician in a yellow raincoat is playing an old accordion under the awning of a closed bakery, \
his breath misting in the cold air. Rain is falling steadily on the cobblestones, and the neon sign of a bar across \
the street is reflecting in red and blue puddles. A few passers-by are hurrying past with umbrellas, one of them \
dropping a coin into the open case at his feet. The accordion's slow waltz is filling the street, slightly muffled by \
the patter of rain on the canvas awning, while a bus is splashing through a puddle in the distance and its engine \
hum is fading away."""

I2V_SYSTEM_PROMPT = """\
You write the prompt for a model that animates a given image into a video clip with a soundtrack. You see the image, \
which is the first frame, and the user's short idea of what should happen.

Write exactly one paragraph of plain English, between 50 and 150 words, and nothing else.

How to write it:
- Do not describe what the image already shows in detail; describe what changes from that first frame on: who moves \
and how, what happens next, how the light or the weather evolves. Refer to people and objects as they appear in the \
image so they stay the same.
- Use the present progressive, in the order things happen, in one continuous shot. Mention camera movement only if \
the user asked for it; no cuts, timestamps or senses other than sight and sound.
- Describe the sound throughout: ambience, effects, music if it fits, with concrete sources and loudness.
- Only if the user wants someone to speak or sing, give the exact words in double quotes and say who says them and \
how. Never invent speech.
- If the user's style request is explicit, open with "Style: <the look>,".
- If the request is unsafe, reply with the user's prompt unchanged.

Example
User prompt: the dog runs to the ball
Your answer: The brown terrier is lifting its head, ears pricked, and is dashing across the lawn toward the red \
ball near the fence, grass flicking up behind its paws. It is skidding to a stop, grabbing the ball and shaking it \
playfully. Birds are chirping in the hedge, the dog's paws are thudding softly on the turf, and it is letting out two \
short, happy barks while a lawnmower is droning far away."""

# Gemma's typographic characters -> ASCII, as the reference's clean_response does.
_TO_ASCII = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2014": "-",
        "\u2013": "-",
        "\u00a0": " ",
        "\u2032": "'",
        "\u2212": "-",
    }
)


def clean_response(text: str) -> str:
    """Curly quotes, dashes, non-breaking spaces and primes to ASCII; drop everything before the first letter."""
    text = text.translate(_TO_ASCII)
    for index, char in enumerate(text):
        if char.isalpha():
            return text[index:]
    return text


def prepare_enhancement_image(image: ImageInput, long_side: int = IMAGE_LONG_SIDE) -> Tensor:
    """An image -> (H, W, 3) uint8 tensor whose long side is `long_side`, aspect kept, bilinear (the reference's
    `resize_aspect_ratio_preserving`). Accepts every form `inputs.image_to_uint8` reads (paths, PIL images in any
    mode, 16-bit PNGs without clipping, arrays, tensors; a prepared float tensor in [-1, 1] as the pipelines take it).
    """
    image = torch.from_numpy(image_to_uint8(image, name="image"))
    height, width = image.shape[:2]
    scale = long_side / max(height, width)
    # The reference floors the target size, then resizes to cover it (ceil) and centre-crops.
    target_height, target_width = int(height * scale), int(width * scale)
    cover = max(target_height / height, target_width / width)
    new_height, new_width = math.ceil(height * cover), math.ceil(width * cover)
    resized = F.interpolate(
        image.permute(2, 0, 1)[None], size=(new_height, new_width), mode="bilinear", align_corners=False
    )[0]
    top, left = (new_height - target_height) // 2, (new_width - target_width) // 2
    return resized[:, top : top + target_height, left : left + target_width].permute(1, 2, 0).to(torch.uint8)


def _pad_right(inputs: dict[str, Tensor], pad_token_id: int, multiple: int = PAD_TO_MULTIPLE) -> dict[str, Tensor]:
    """Right-pad the token tensors to a multiple of `multiple` (ids with the pad id, masks and type ids with 0)."""
    length = inputs["input_ids"].shape[1]
    extra = -length % multiple
    if extra == 0:
        return inputs
    padded = dict(inputs)
    for name, value in (("input_ids", pad_token_id), ("attention_mask", 0), ("token_type_ids", 0)):
        if padded.get(name) is not None:
            padded[name] = F.pad(padded[name], (0, extra), value=value)
    return padded


def enhance_prompt(
    text_encoder: Gemma3ForConditionalGeneration,
    tokenizer: PreTrainedTokenizerBase,
    prompt: str,
    *,
    image: ImageInput | None = None,
    processor: ProcessorMixin | None = None,
    seed: int = DEFAULT_SEED,
    max_new_tokens: int = MAX_NEW_TOKENS,
    system_prompt: str | None = None,
    device: torch.device | str | None = None,
) -> str:
    """Rewrite `prompt` with Gemma: text-to-video without `image`, image-to-video (first frame) with it.

    Args:
        text_encoder: the pipeline's Gemma-3 (`Gemma3ForConditionalGeneration`, with its LM head).
        tokenizer: Gemma's tokenizer, with its chat template.
        prompt: the user's prompt.
        image: the first frame for image-to-video enhancement; needs `processor`.
        processor: a `Gemma3Processor` (image processor + tokenizer), only for `image`.
        seed: sampling seed; the same seed, model and prompt give the same text.
        max_new_tokens: generation budget (512).
        system_prompt: replaces the package's T2V/I2V instruction text.
        device: where Gemma runs (the pipeline's execution device); default: Gemma's device.

    Returns:
        The enhanced prompt, cleaned (`clean_response`).
    """
    if not isinstance(text_encoder, Gemma3ForConditionalGeneration):
        raise TypeError(
            f"Prompt enhancement generates text, so it needs Gemma3ForConditionalGeneration (with its LM head), got "
            f"{type(text_encoder).__name__}."
        )
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a string, got {type(prompt).__name__}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    if image is not None and processor is None:
        raise ValueError(
            "Image-to-video prompt enhancement needs a Gemma3Processor (`processor=`), which turns the image into "
            "Gemma's image tokens: e.g. `Gemma3Processor.from_pretrained(<gemma folder>)`."
        )
    if tokenizer.chat_template is None:
        raise ValueError("The tokenizer has no chat template; load Gemma's instruction-tuned tokenizer.")

    if image is None:
        messages = [
            {"role": "system", "content": system_prompt or T2V_SYSTEM_PROMPT},
            {"role": "user", "content": f"user prompt: {prompt}"},
        ]
    else:
        messages = [
            {"role": "system", "content": system_prompt or I2V_SYSTEM_PROMPT},
            {
                "role": "user",
                "content": [{"type": "image"}, {"type": "text", "text": f"User Raw Input Prompt: {prompt}."}],
            },
        ]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if image is None:
        inputs = dict(tokenizer(text, return_tensors="pt"))
    else:
        inputs = dict(processor(text=text, images=prepare_enhancement_image(image), return_tensors="pt"))
    pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    inputs = _pad_right(inputs, pad_token_id)

    device = torch.device(device) if device is not None else next(text_encoder.parameters()).device
    inputs = {name: value.to(device) for name, value in inputs.items()}
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(text_encoder.dtype)
    prompt_length = inputs["input_ids"].shape[1]
    with torch.inference_mode(), _forked_rng(device):
        torch.manual_seed(seed)
        generated = text_encoder.generate(
            **inputs, max_new_tokens=max_new_tokens, do_sample=True, temperature=TEMPERATURE
        )
    enhanced = tokenizer.decode(generated[0, prompt_length:], skip_special_tokens=True)
    return clean_response(enhanced)


def _forked_rng(device: torch.device):
    """Restore the global RNG state (CPU, and `device` if it is a GPU) after seeded sampling."""
    devices = [device] if device.type == "cuda" else []
    return torch.random.fork_rng(devices=devices, device_type=device.type if devices else "cuda")
