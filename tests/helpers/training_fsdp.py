"""FSDP2 on the CPU for the training tests. accelerate sets FSDP up only for accelerator processes (never MULTI_CPU:
`ltx2_diffusers/training/distributed.py`), so `accelerate launch --config_file fsdp.yaml` cannot run it on the CPU.
torch's FSDP2 itself runs there with gloo; `run_with_fsdp` starts the training script's `main` in forked processes
(`helpers.training.run_in_processes`) whose `Accelerator` is put into the state accelerate gives GPU processes with
an FSDP2 config: distributed type FSDP and the plugin the example config of docs/training.md describes. The script's
FSDP path (accelerate's `fully_shard` preparation, the optimizer hand-over, sharded checkpoints, the gathers of the
LoRA) then runs as it would on GPUs."""

from pathlib import Path

from accelerate import Accelerator, FullyShardedDataParallelPlugin, PartialState
from accelerate.utils import DistributedType

from .training import run_in_processes

BLOCK_CLASS = "LTX2VideoTransformerBlock"
# docs/training.md's fsdp.yaml (for `accelerate launch --config_file`), with the number of processes to fill in
FSDP_CONFIG = """compute_environment: LOCAL_MACHINE
distributed_type: FSDP
num_machines: 1
num_processes: {num_processes}
mixed_precision: '{mixed_precision}'
fsdp_config:
  fsdp_version: 2
  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP
  fsdp_transformer_layer_cls_to_wrap: LTX2VideoTransformerBlock
  fsdp_reshard_after_forward: true
  fsdp_state_dict_type: SHARDED_STATE_DICT
  fsdp_cpu_ram_efficient_loading: false
"""


def fsdp2_plugin() -> FullyShardedDataParallelPlugin:
    """What docs/training.md's fsdp.yaml gives: FSDP2, one unit per transformer block, sharded state dicts."""
    return FullyShardedDataParallelPlugin(
        fsdp_version=2,
        auto_wrap_policy="transformer_based_wrap",
        transformer_cls_names_to_wrap=[BLOCK_CLASS],
        reshard_after_forward=True,
        state_dict_type="SHARDED_STATE_DICT",
    )


class CPUFSDPAccelerator(Accelerator):
    """An `Accelerator` whose shared state says FSDP (with `fsdp2_plugin()`) on CPU processes. Both shared states:
    every `AcceleratorState()` copies PartialState's fields into its own again."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        PartialState().distributed_type = DistributedType.FSDP
        self.state.distributed_type = DistributedType.FSDP
        self.state.fsdp_plugin = fsdp2_plugin()


def run_with_fsdp(script_module, argv: list[str], world_size: int = 2) -> None:
    """`script_module.main(argv)` in `world_size` forked gloo processes, under FSDP2 (the module docstring)."""

    def main(args):
        script_module.Accelerator = CPUFSDPAccelerator  # in the child only: the parent's module is untouched
        script_module.main(args)

    run_in_processes(main, argv, world_size=world_size)


def run_catching(script_module, argv: list[str], errors: Path, world_size: int = 2, fsdp: bool = False) -> None:
    """`script_module.main(argv)` in forked processes (under FSDP2 as `run_with_fsdp` with `fsdp`); a ValueError's
    message is written to `errors/<rank>.txt` (and the process exits 0), so a test can read what each refused with."""

    def main(args):
        if fsdp:
            script_module.Accelerator = CPUFSDPAccelerator
        try:
            script_module.main(args)
        except ValueError as error:
            (errors / f"{PartialState().process_index}.txt").write_text(str(error))

    run_in_processes(main, argv, world_size=world_size)
