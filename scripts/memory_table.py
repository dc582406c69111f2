"""Print the planner's "which settings for my card" tables for docs/memory.md (FP8 GPUs, then GPUs without FP8).

    python scripts/memory_table.py          # paste between the <!-- plan_table ... --> markers
"""

from ltx2_diffusers.memory.planner import DOCS_CARDS_GIB, DOCS_WORKLOADS, LTX2_19B_SIZES, plan_table

if __name__ == "__main__":
    for title, fp8_supported in (("fp8", True), ("bf16", False)):
        print(f"<!-- plan_table {title} -->")
        print(plan_table(LTX2_19B_SIZES, DOCS_WORKLOADS, DOCS_CARDS_GIB, fp8_supported))
        print("<!-- end -->\n")
