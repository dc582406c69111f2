"""Child processes that a test starts early and reads later (fresh interpreters for import-order checks, command lines).

CI runs the suite on 2 cores and the test process keeps one busy, so a child started at the top of a module runs beside
the in-process tests that follow instead of after them. Output goes to temporary files, not pipes, so a chatty child
never blocks on a full pipe while nobody reads it.
"""

import subprocess
import sys
import tempfile


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
