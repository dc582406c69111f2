"""The trained LoRA's model card and `--push_to_hub`, through the package's Hub helpers (`ltx2_diffusers.hub`).

The card (OUTPUT_DIR/README.md) says: the base model (the Hub id trained on, else the model version's Lightricks
repo) and the license of its weights, the training mode, the trigger word, the validation prompt, and embeds the last
validation clip. A push uploads the two LoRA files, the card and that clip; checkpoints, the log and the cache stay
local.
"""

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..hub import CardInfo, check_push, push_folder, upload_plan, write_model_card
from .lora import COMFY_WEIGHT_NAME, DIFFUSERS_WEIGHT_NAME

SAMPLES_FOLDER = "samples"  # where a pushed repo keeps the validation clip


@dataclass(frozen=True)
class LoRACard:
    """The facts of a trained LoRA's card."""

    mode: str
    mode_description: str
    model_version: str
    base_model: str | None  # a Hub id, or None for the version's Lightricks repo
    rank: int
    steps: int
    trigger_word: str | None = None
    validation_prompt: str | None = None
    validation_clip: str | None = None  # the clip's path relative to the card's folder

    def info(self, repo_id: str | None = None) -> CardInfo:
        lines = [
            f"A LoRA trained with ltx2-diffusers' `scripts/train_lora.py`: mode `{self.mode}` "
            f"({self.mode_description}), rank {self.rank}, {self.steps} steps. `{COMFY_WEIGHT_NAME}` holds the same "
            "LoRA in the ltx-trainer / ComfyUI key format."
        ]
        if self.trigger_word:
            lines.append(f"Trigger word: `{self.trigger_word}` (it starts every training caption; put it in prompts).")
        if self.validation_prompt:
            lines.append(f"Validation prompt: {self.validation_prompt}")
        if self.validation_clip:
            lines.append(f'<video src="{self.validation_clip}" controls loop></video>')
        tags = (f"ltx2-{self.mode}",)
        extra = {"instance_prompt": self.trigger_word} if self.trigger_word else {}
        return CardInfo("lora", "LoRA", self.model_version, repo_id=repo_id, base_model=self.base_model,
                        extra_tags=tags, description="\n\n".join(lines), extra_data=extra)  # fmt: skip


def write_lora_card(output_dir: Path, card: LoRACard) -> Path | None:
    """OUTPUT_DIR/README.md (a README that is not ours is kept, see `hub.write_model_card`)."""
    return write_model_card(output_dir, card.info())


def push_lora(
    output_dir: Path,
    card: LoRACard,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool | None = None,
    clip: Path | None = None,
) -> str:
    """Upload the LoRA files, the card and `clip` (shown by the card as `samples/<name>`) to `repo_id`; returns the
    commit URL. Everything is staged in a temporary folder first, so only these files go up."""
    token = check_push(repo_id, token)
    with tempfile.TemporaryDirectory(prefix="ltx2-lora-push-") as staging:
        staging = Path(staging)
        for name in (DIFFUSERS_WEIGHT_NAME, COMFY_WEIGHT_NAME):
            shutil.copy2(output_dir / name, staging / name)
        if clip is not None:
            (staging / SAMPLES_FOLDER).mkdir()
            shutil.copy2(clip, staging / SAMPLES_FOLDER / clip.name)
            card = LoRACard(**{**card.__dict__, "validation_clip": f"{SAMPLES_FOLDER}/{clip.name}"})
        write_model_card(staging, card.info(repo_id))
        url = push_folder(staging, repo_id, token=token, private=private,
                          commit_message=f"LoRA ({card.mode}) trained with ltx2-diffusers")  # fmt: skip
        # hub.push_folder uploads weights, configs and the card; a clip it leaves out goes up in a second commit
        if clip is not None and f"{SAMPLES_FOLDER}/{clip.name}" not in upload_plan(staging):
            from huggingface_hub import HfApi

            info = HfApi(token=token).upload_file(
                path_or_fileobj=str(staging / SAMPLES_FOLDER / clip.name),
                path_in_repo=f"{SAMPLES_FOLDER}/{clip.name}",
                repo_id=repo_id,
                commit_message="validation clip",
            )
            url = info.commit_url
    return url
