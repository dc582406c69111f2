"""The `ltx2-diffusers` command: one subcommand per pipeline, each writing an mp4 with sound.

    ltx2-diffusers generate "a cat" -o cat.mp4 --model tiny --frames 9 --height 64 --width 64 --steps 2

Every argument is checked before any weights load (`checks.py`); errors are one line naming the flag, with exit status
2; Ctrl-C exits with 130 and leaves no file. The clip is written atomically (`utils.media`). `--help` imports neither
torch nor diffusers. `python -m ltx2_diffusers.cli` is the same command. docs/cli.md has an example per subcommand.
"""

import sys

from .parser import COMMANDS, DEFAULT_MODEL, EXAMPLES, CLIError, build_parser

__all__ = ["COMMANDS", "DEFAULT_MODEL", "EXAMPLES", "CLIError", "build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    """Run the command line `argv` (default: sys.argv[1:]); returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["convert"]:
        return _convert(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)  # its errors: one line, exit status 2
    prog = f"{parser.prog} {args.command}"
    if args.command == "push":
        return _push(prog, args)
    try:
        from .run import WriteError, run

        if "hdr" in COMMANDS[args.command].features:  # EXR frames into a folder: its own checks and run
            from .hdr import check_hdr, run_hdr

            summary = run_hdr(args, check_hdr(args, COMMANDS[args.command]))
        elif "dfr" in COMMANDS[args.command].features:  # temporal rounds change the frame count and rate
            from .dfr import check_dfr, run_dfr

            summary = run_dfr(args, check_dfr(args, COMMANDS[args.command]))
        else:
            from .checks import check_args

            summary = run(args, check_args(args))
    except CLIError as error:
        return _fail(prog, str(error), 2)
    except (ValueError, TypeError) as error:  # the pipeline's own checks of its call arguments
        return _fail(prog, str(error), 2)
    except WriteError as error:
        return _fail(prog, str(error), 1)
    except KeyboardInterrupt:
        print(f"\n{prog}: interrupted; no output written", file=sys.stderr)
        return 130
    except MemoryError as error:
        return _fail(prog, f"out of host memory ({error}); try smaller --frames/--height/--width", 1)
    except RuntimeError as error:
        if "out of memory" not in str(error).lower():
            raise
        return _fail(prog, f"out of device memory; try --offload or smaller sizes ({_first_line(error)})", 1)
    print(summary)
    return 0


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _fail(prog: str, message: str, status: int) -> int:
    print(f"{prog}: error: {' '.join(message.split())}", file=sys.stderr)  # one line, whatever the message holds
    return status


def _push(prog: str, args) -> int:
    """`ltx2-diffusers push FOLDER REPO_ID`: hub.push_folder, its checks' errors as one line with status 2."""
    from ..hub import push_folder

    try:
        url = push_folder(args.folder, args.repo_id, private=args.private or None, revision=args.revision)
    except ValueError as error:  # the folder, the repo id, the token, offline mode: nothing was uploaded
        return _fail(prog, str(error), 2)
    except KeyboardInterrupt:
        print(f"\n{prog}: interrupted; the local folder is unchanged", file=sys.stderr)
        return 130
    except Exception as error:  # the Hub refused or the connection broke: the local folder is unchanged
        return _fail(prog, f"the upload failed ({_first_line(error)}); the local folder is unchanged", 1)
    print(f"pushed {args.folder} to {url}")
    return 0


def _convert(argv: list[str]) -> int:
    """`ltx2-diffusers convert ...` = `python scripts/convert_checkpoint.py ...` of a source checkout."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "convert_checkpoint.py"
    if not script.is_file():
        return _fail(
            "ltx2-diffusers convert",
            f"the converter script is not installed ({script} is missing): run scripts/convert_checkpoint.py from a "
            "source checkout of ltx2_diffusers",
            2,
        )
    spec = importlib.util.spec_from_file_location("ltx2_diffusers_convert_checkpoint", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        return module.main(argv)
    except KeyboardInterrupt:
        print("\nltx2-diffusers convert: interrupted", file=sys.stderr)
        return 130
