"""README.md runs as pasted: every ```python block and every command of every ```bash block, in
the README's order, in one temporary directory (so a command may read a file an earlier block
wrote, as it would for a reader following along).

- The Python blocks share one namespace, as if pasted into one session, and run in-process;
  each must also stand alone (a reader may paste just one): every name it reads is imported or
  defined in it, checked statically.
- Each command runs in bash with this interpreter's bin directory first on PATH, so `numpy-lstm`
  is the one installed in this environment.
- Skipped, and only these (see SKIPPED): `make demo` and `make test`, which build the
  environment this test runs in (and `make demo` trains for minutes), `pip install` lines, and
  `python examples/…`, which tests/test_scale_out.py runs as written from the repository root
  (this test's directory is a temporary one) and checks number by number.
- Small budgets: the README shows realistic training sizes; the test shrinks them, and only them,
  by the substitutions in PYTHON_BUDGETS (exact text in the Python blocks) and COMMAND_BUDGETS
  (flag values in the commands: `--minutes`, `--steps`, `--hidden-size`). Every
  PYTHON_BUDGETS entry must occur in the README, so the list cannot silently go stale.
"""

from __future__ import annotations

import builtins
import os
import re
import subprocess
import symtable
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"

SKIPPED = ("make demo", "make test", "pip install", "python examples/")
PYTHON_BUDGETS = {
    "hidden_size=256": "hidden_size=16",
    "steps=5000": "steps=4",
    '"total_steps": 5000': '"total_steps": 4',
    "eval_every=500": "eval_every=2",
}
COMMAND_BUDGETS = {  # flag → the value used here instead of the README's
    "--minutes": "0.01",
    "--steps": "4",
    "--hidden-size": "16",
}
COMMAND_TIMEOUT_S = 120


@dataclass(frozen=True)
class Step:
    kind: str  # "python" or "bash"
    line: int  # where it starts in README.md
    text: str  # the block's code, or one command
    section: str  # the heading it is under

    @property
    def id(self) -> str:
        what = self.text.split("#")[0].strip()[:60] if self.kind == "bash" else "python"
        return f"L{self.line} {self.section}: {what}"


def readme_steps(text: str) -> list[Step]:
    """The ```python blocks and the ```bash commands (one per line, comments left to bash), in
    order; SKIPPED commands are left out."""
    steps = []
    for match in re.finditer(r"^```(python|bash)\n(.*?)^```$", text, re.M | re.S):
        kind, body = match.group(1), match.group(2)
        first_line = text.count("\n", 0, match.start(2)) + 1
        headings = re.findall(r"^#+ (.+)$", text[: match.start()], re.M)
        section = headings[-1] if headings else "top"
        if kind == "python":
            steps.append(Step(kind, first_line, body, section))
            continue
        for offset, line in enumerate(body.splitlines()):
            command = line.strip()
            if command and not command.startswith(("#", *SKIPPED)):
                steps.append(Step(kind, first_line + offset, command, section))
    return steps


def with_small_budget(step: Step) -> str:
    """The step's code with the training budgets of PYTHON_BUDGETS / COMMAND_BUDGETS."""
    code = step.text
    if step.kind == "python":
        for realistic, small in PYTHON_BUDGETS.items():
            code = code.replace(realistic, small)
        return code
    for flag, small in COMMAND_BUDGETS.items():
        code = re.sub(rf"(?<!\S){flag}[ =]\S+", f"{flag} {small}", code)
    return code


STEPS = readme_steps(README.read_text(encoding="utf-8"))


@dataclass
class Session:
    """What the README's steps share: the directory, the Python namespace, the first failure."""

    directory: Path
    namespace: dict[str, Any] = field(default_factory=lambda: {"__name__": "__readme__"})
    failed: str | None = None


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    directory = tmp_path_factory.mktemp("readme")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(directory)
        yield Session(directory)


def test_the_readme_has_steps_and_every_budget_substitution_applies() -> None:
    assert {s.kind for s in STEPS} == {"python", "bash"}
    python = "".join(s.text for s in STEPS if s.kind == "python")
    for realistic in PYTHON_BUDGETS:
        assert realistic in python, f"PYTHON_BUDGETS: {realistic!r} is no longer in README.md"
    commands = " ".join(s.text for s in STEPS if s.kind == "bash").split()
    for flag in COMMAND_BUDGETS:
        assert flag in commands, f"COMMAND_BUDGETS: no README command uses {flag}"


def unbound_names(code: str) -> set[str]:
    """The global names `code` reads but neither binds nor finds among the builtins."""
    table = symtable.symtable(code, "<README block>", "exec")
    bound = {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()}
    read, tables = set(), [table]
    while tables:
        current = tables.pop()
        tables.extend(current.get_children())
        read |= {
            s.get_name()
            for s in current.get_symbols()
            if s.is_referenced() and (s.is_global() or current is table)
        }
    return read - bound - set(dir(builtins))


@pytest.mark.parametrize("step", [s for s in STEPS if s.kind == "python"], ids=lambda s: s.id)
def test_each_python_block_can_be_pasted_alone(step: Step) -> None:
    """A reader may paste any one block: it imports and defines every name it uses."""
    unbound = sorted(unbound_names(step.text))
    assert not unbound, f"README.md:{step.line}: {unbound} are not imported or defined here"


@pytest.mark.parametrize("step", STEPS, ids=[s.id for s in STEPS])
def test_readme_step(step: Step, session: Session) -> None:
    if session.failed is not None:
        pytest.fail(f"not run: an earlier README step failed ({session.failed})")
    session.failed = step.id  # until it passes
    code = with_small_budget(step)
    if step.kind == "python":
        exec(compile(code, f"README.md:{step.line}", "exec"), session.namespace)
    else:
        bin_dir = Path(sys.executable).parent
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
        done = subprocess.run(
            ["bash", "-c", code],
            cwd=session.directory,
            env=env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
        )
        assert done.returncode == 0, (
            f"README.md:{step.line}: `{code}` exited with {done.returncode}\n"
            f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
        )
    session.failed = None
