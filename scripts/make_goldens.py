"""Write the golden tensors in tests/goldens/ from a local checkout of Lightricks/LTX-2 at v1.2.0 (ltx-core and
ltx-pipelines 1.2.0), so that CI, which cannot install that version, still checks our numerics against it.

    python scripts/make_goldens.py /path/to/LTX-2 --python /path/to/oracle/venv/bin/python [--area pipeline_math]

Every generator `scripts/goldens/<area>.py` runs in a fresh process of the oracle's interpreter (`--python`: an
environment with ltx-core's dependencies, e.g. transformers 5.14.1; ltx-core and ltx-pipelines are taken from the
checkout's `packages/*/src`, or from that environment when they are installed there) with `--out tests/goldens/<area>`,
and writes tensors plus a `golden.json` describing them. This script then folds those into tests/goldens/MANIFEST.json
(generator, reference commit, oracle versions, tolerances per file) and checks the total size.
The checkout is only read; nothing from it is copied into this repository besides the numbers it computes.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENERATORS = ROOT / "scripts" / "goldens"
GOLDENS = ROOT / "tests" / "goldens"
REFERENCE = "Lightricks/LTX-2 v1.2.0"
MAX_TOTAL_BYTES = 2_000_000  # every area together; each area should stay within a few hundred KB


def find_checkout_sources(checkout: Path) -> list[Path]:
    """The source folders of ltx-core and ltx-pipelines in a checkout (its root, or its `packages/` folder)."""
    for base in (checkout / "packages", checkout):
        sources = [base / "ltx-core" / "src", base / "ltx-pipelines" / "src"]
        if all((source / name).is_dir() for source, name in zip(sources, ("ltx_core", "ltx_pipelines"))):
            return sources
    raise SystemExit(
        f"{checkout} is not an LTX-2 checkout: expected packages/ltx-core/src/ltx_core and "
        "packages/ltx-pipelines/src/ltx_pipelines under it (git clone https://github.com/Lightricks/LTX-2 and "
        "git checkout v1.2.0)"
    )


def reference_commit(checkout: Path, given: str | None) -> str:
    """`given`, else the checkout's HEAD when it is a git work tree; a checkout without git needs --commit."""
    if given:
        return given
    try:
        result = subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        raise SystemExit(f"{checkout} is not a git work tree: pass --commit (v1.2.0 is d151147)") from None
    return result.stdout.strip()


def run_generator(generator: Path, python: str, sources: list[Path]) -> Path:
    out = GOLDENS / generator.stem
    out.mkdir(parents=True, exist_ok=True)
    path = [str(s) for s in sources] + [str(ROOT / "tests")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    print(f"{generator.relative_to(ROOT)} -> {out.relative_to(ROOT)}", flush=True)
    subprocess.run([python, str(generator), "--out", str(out)], env=env, check=True, cwd=ROOT)
    if not (out / "golden.json").is_file():
        raise SystemExit(f"{generator.relative_to(ROOT)} wrote no golden.json into {out.relative_to(ROOT)}")
    return out


def write_manifest(commit: str) -> int:
    """tests/goldens/MANIFEST.json from every area's golden.json; returns the goldens' total size in bytes."""
    areas, total = {}, 0
    for golden in sorted(GOLDENS.glob("*/golden.json")):
        area = golden.parent
        entry = json.loads(golden.read_text())
        size = sum(f.stat().st_size for f in area.iterdir() if f.is_file())
        areas[area.name] = {**entry, "bytes": size}
        total += size
    manifest = {
        "reference": REFERENCE,
        "reference_commit": commit,
        "written_by": "scripts/make_goldens.py",
        "total_bytes": total,
        "areas": areas,
    }
    (GOLDENS / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="a local LTX-2 checkout at tag v1.2.0 (or its packages/ folder)")
    parser.add_argument("--python", default=sys.executable, help="the oracle's interpreter (default: this one)")
    parser.add_argument("--commit", help="the checkout's commit, when it is not a git work tree (v1.2.0: d151147)")
    parser.add_argument("--area", action="append", help="only these generators (scripts/goldens/<area>.py)")
    args = parser.parse_args(argv)

    sources = find_checkout_sources(args.checkout.resolve())
    commit = reference_commit(args.checkout, args.commit)
    generators = sorted(GENERATORS.glob("*.py"))
    if args.area:
        unknown = sorted(set(args.area) - {g.stem for g in generators})
        if unknown:
            raise SystemExit(f"no generator for {unknown}: the areas are {[g.stem for g in generators]}")
        generators = [g for g in generators if g.stem in args.area]
    for generator in generators:
        run_generator(generator, args.python, sources)
    total = write_manifest(commit)
    print(f"tests/goldens: {total / 1000:.0f} KB in {len(list(GOLDENS.glob('*/golden.json')))} areas")
    if total > MAX_TOTAL_BYTES:
        raise SystemExit(f"the goldens take {total} bytes, over the {MAX_TOTAL_BYTES} budget: shrink the configs")


if __name__ == "__main__":
    main()
