"""Every bad-input case through every command that takes its kind: refused in one line, outputs untouched.

The corpus (``corpus.py``) and the tiny models are generated once per session; each (case, command) is one
test named ``kind/case/command``. Invalid cases: exit 2, one ``error:`` line on stderr naming the input and
its problem, no traceback, the output absent or an earlier one (every third invalid case has one, and gets
``--overwrite`` where the command takes it) byte-identical. Valid cases: exit 0.
``python tests/badinput/run_table.py OUT.md`` writes the same outcomes as a markdown table.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from badinput_runner import COMMANDS, cleanup, make_env, pairs, run, wants_earlier

_ENV = None


def _env():
    """The corpus and tiny models, built once (at collection: the test ids are the case names)."""
    global _ENV
    if _ENV is None:
        root = Path(tempfile.mkdtemp(prefix="scopeseg-badinput-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        _ENV = make_env(root)
    return _ENV


def pytest_generate_tests(metafunc):
    if "case_cmd" in metafunc.fixturenames:
        todo = pairs(_env().cases)
        ids = [f"{case.kind}/{case.name}/{cmd.name}" for case, cmd in todo]
        metafunc.parametrize("case_cmd", [(i, c, m) for i, (c, m) in enumerate(todo)], ids=ids)


def test_corpus_covers_every_class():
    """At least 60 cases, every kind run by at least one command, valid and invalid cases of each kind."""
    cases = _env().cases
    assert len(cases) >= 60
    kinds = {c.kind for c in cases}
    assert kinds == {cmd.kind for cmd in COMMANDS}
    for kind in kinds:
        assert {c.valid for c in cases if c.kind == kind} == {True, False}, kind
    for case in cases:
        assert case.path.exists() or case.name == "does_not_exist" or case.name == "missing", case.name


def test_case(case_cmd):
    index, case, cmd = case_cmd
    outcome = run(_env(), case, cmd, earlier=wants_earlier(case, index))
    try:
        problems = outcome.problems()
        assert not problems, (
            f"{case.kind}/{case.name} ({case.problem}) via `scopeseg {' '.join(outcome.argv)}`: "
            + "; ".join(problems)
            + f"\n--- stderr ---\n{outcome.stderr[-3000:]}"
        )
    finally:
        cleanup(outcome)
