"""Which modules a fresh Python process loads, for tests of what a command imports."""

from __future__ import annotations

import ast
import subprocess
import sys


def modules_loaded_by(script: str, modules: list[str]) -> tuple[str, list[str]]:
    """Run ``script`` in a fresh interpreter; return its stdout and which of ``modules`` it
    had imported when it finished (the script must exit normally)."""
    check = f"\nimport sys\nprint('loaded:', [m for m in {modules!r} if m in sys.modules])\n"
    done = subprocess.run([sys.executable, "-c", script + check], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    *output, loaded = done.stdout.strip().splitlines()
    return "\n".join(output), ast.literal_eval(loaded.removeprefix("loaded: "))
