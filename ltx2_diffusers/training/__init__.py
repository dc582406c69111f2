"""LoRA training for LTX-2 (scripts/train_lora.py is the command; docs/training.md the guide).

- `data`: metadata.jsonl + media -> buckets -> one cached safetensors file per sample (latents, text contexts).
- `objective`: ltx-trainer's sigma sampling, noising, velocity target and masked loss; modes as data.
- `step`: a batch of cached samples -> the transformer call of a mode -> per-sample losses.
- `lora`: LoRA targets and the trained adapter written in diffusers and ltx-trainer / ComfyUI formats.
"""
