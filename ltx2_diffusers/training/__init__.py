"""LoRA training for LTX-2 (scripts/train_lora.py is the command; docs/training.md the guide).

- `metadata`, `buckets`, `data`: metadata.jsonl + media -> buckets -> one cached safetensors file per sample (latents,
  text contexts); batches drawn from one bucket at a time.
- `objective`: ltx-trainer's sigma sampling, noising, velocity target and masked loss; modes as data.
- `step`: a batch of cached samples -> the transformer call of a mode -> per-sample losses.
- `lora`: LoRA targets and the trained adapter written in diffusers and ltx-trainer / ComfyUI formats.
- `models`, `validation`, `publish`, `memory`: where the weights come from, validation clips, the model card and push,
  the `--vram` plan and 8-bit AdamW.
"""
