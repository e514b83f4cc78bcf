"""The commands the README and the docs print, run exactly as written after the README's set-up, on a fresh
Keras cache: a doc that drifts from the code fails here.

Run: `tltf weights add`, `tltf validate` and `tltf explain` (seconds each). Not run: the commands that train
(`fit`, `lr-find`, `study`, `tune`: minutes each) or that name a run folder of the writer's machine.
"""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MOBILENET_WEIGHTS, PNEUMONIA_NPZ, needs_shared

ROOT = Path(__file__).resolve().parents[1]
CHEAP = ("weights add", "validate", "explain")


def printed_commands() -> list[tuple[str, str]]:
    """`(document, command)` for every `tltf` command in a code block of README.md and docs/*.md: a line of a
    bash block (continuations joined, `&&` chains split, comments dropped) or a `$ tltf ...` line."""
    found = []
    for document in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for language, block in re.findall(r"```(\w*)\n(.*?)```", document.read_text(), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.strip()
                if language != "bash" and not line.startswith("$ tltf "):
                    continue
                line = re.sub(r"\s+#.*$", "", line.removeprefix("$ "))
                found += [(document.name, part.strip()) for part in line.split("&&")
                          if part.strip().startswith("tltf ")]
    return found


def test_the_docs_print_commands_this_test_runs():
    commands = [command for _, command in printed_commands()]
    assert any(command.startswith("tltf weights add") for command in commands)  # the README's set-up
    assert sum(command.split()[1] in ("validate", "explain") for command in commands) >= 2


@needs_shared(MOBILENET_WEIGHTS)
@needs_shared(PNEUMONIA_NPZ)
def test_every_cheap_command_in_the_docs_runs_as_printed(tmp_path):
    environment = {**os.environ, "KERAS_HOME": str(tmp_path / "keras-home")}  # empty, as on a fresh machine
    commands = sorted({command for _, command in printed_commands() if command.startswith(
        tuple(f"tltf {name}" for name in CHEAP))}, key=lambda command: not command.startswith("tltf weights add"))
    if not commands:
        pytest.fail("no command found to run")
    for command in commands:
        arguments = shlex.split(command)[1:]
        result = subprocess.run([sys.executable, "-m", "tltf.cli.main", *arguments], cwd=ROOT, env=environment,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"{command}\n{result.stderr[-2000:]}"
