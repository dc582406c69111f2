"""Child processes that a test starts early and reads later: fresh interpreters (import order, command lines) and forks.

CI runs the suite on 2 cores and the test process keeps one busy, so a child started at the top of a module runs beside
the in-process tests that follow instead of after them. Output goes to temporary files, not pipes, so a chatty child
never blocks on a full pipe while nobody reads it.
"""

import os
import signal
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

import torch


class Background:
    """`subprocess.Popen(command, **kwargs)` started now; `result()` waits for it and returns what it wrote."""

    def __init__(self, command: list[str], **kwargs):
        self._stdout, self._stderr = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
        self.process = subprocess.Popen(command, stdout=self._stdout, stderr=self._stderr, text=True, **kwargs)
        self._result: subprocess.CompletedProcess | None = None

    def result(self, timeout: float = 600) -> subprocess.CompletedProcess:
        if self._result is None:
            self.process.wait(timeout=timeout)
            outputs = []
            for file in (self._stdout, self._stderr):
                file.seek(0)
                outputs.append(file.read())
                file.close()
            self._result = subprocess.CompletedProcess(self.process.args, self.process.returncode, *outputs)
        return self._result

    def stdout(self, timeout: float = 600) -> str:
        """The child's stdout, stripped, after asserting that it exited with 0 (its stderr's tail otherwise)."""
        done = self.result(timeout)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout.strip()

    def stop(self) -> None:
        """Kill the child if it still runs (a test that failed before reading it) and close its files."""
        if self._result is None:
            if self.process.poll() is None:
                self.process.kill()
            self.result()


def python(code: str, **kwargs) -> Background:
    """`python -c code` in a fresh interpreter (this one's executable), started now."""
    return Background([sys.executable, "-c", code], **kwargs)


class Forked:
    """`function()` in a forked child, started now; `result()` waits for it and returns its value (torch.save'd to
    `path` by the child, so tensors and numpy arrays come back whole). For work that can run beside the test process's
    own: the child starts with everything this process has imported and built, nothing to re-import. The test process
    must run one intra-op thread (tests/conftest.py) so the child does not wait on a thread pool it did not inherit.
    A child's exception comes back as a RuntimeError with its traceback."""

    def __init__(self, function, path):
        self.path = path
        self.pid = os.fork()
        if self.pid == 0:  # the child: never returns into pytest
            status = 1
            try:
                torch.save({"value": function()}, path)
                status = 0
            except BaseException:
                with open(f"{path}.error", "w") as file:
                    file.write(traceback.format_exc())
            finally:
                os._exit(status)
        self._waited = False

    def result(self):
        if not self._waited:
            _, status = os.waitpid(self.pid, 0)
            self._waited = True
            if status != 0:
                error = f"{self.path}.error"
                raise RuntimeError(
                    Path(error).read_text() if os.path.exists(error) else f"the child exited with {status}"
                )
        return torch.load(self.path, weights_only=False)["value"]

    def stop(self) -> None:
        """Kill the child if nobody waited for it (a test that failed first)."""
        if not self._waited:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self._waited = True
