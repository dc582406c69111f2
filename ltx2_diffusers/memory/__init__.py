"""Memory budgets: `planner` decides where weights live (pure, torch-free), `placement` carries a plan out;
`multidevice` / `placement_multidevice` do the same over several devices of one process."""

from .multidevice import MultiDevicePlan, plan_multi_device
from .planner import (
    GIB,
    LTX2_19B_SIZES,
    ComponentSizes,
    MemoryPlan,
    MemoryRequest,
    Placement,
    check_request,
    check_transformer_call,
    count_guidance_passes,
    parse_budget,
    plan_memory,
    stage_peaks,
)
from .sizes import component_sizes

__all__ = [
    "GIB",
    "LTX2_19B_SIZES",
    "ComponentSizes",
    "MemoryPlan",
    "MemoryRequest",
    "MultiDevicePlan",
    "Placement",
    "check_request",
    "check_transformer_call",
    "component_sizes",
    "count_guidance_passes",
    "parse_budget",
    "plan_memory",
    "plan_multi_device",
    "stage_peaks",
]
