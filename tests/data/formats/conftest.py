"""Fixtures for the format converter tests: in-process CLI runner and bad-input assertions."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def cli(capsys):
    """Run ``scopeseg`` in-process: returns (exit code, stdout, stderr)."""
    from scopeseg.cli import main

    def run(*argv: str | Path) -> tuple[int, str, str]:
        capsys.readouterr()
        rc = main([str(a) for a in argv])
        out = capsys.readouterr()
        return rc, out.out, out.err

    return run


@pytest.fixture
def bad_input(cli):
    """Assert a conversion fails with exit 2, one error line naming ``needle``, and no output left behind."""

    def check(argv: list, dst: Path, needle: str) -> str:
        rc, _out, err = cli(*argv)
        lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
        assert rc == 2, err
        assert len(lines) == 1 and "Traceback" not in err, err
        assert needle in lines[0], lines[0]
        assert not dst.exists()
        leftovers = [p.name for p in dst.parent.iterdir() if p.name.startswith(f".{dst.name}.")]
        assert not leftovers, leftovers
        return lines[0]

    return check
