"""Write the outcome table of the bad-input corpus (case class x command x outcome) as markdown.

Usage: ``python tests/badinput/run_table.py OUT.md [KIND ...]`` (all kinds by default). Each row is one
case run through one command: what it should do, what it did (the error line, ``exit 0``, or a traceback)
and whether that is right; a summary per kind and command comes first.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from badinput_runner import cleanup, make_env, pairs, run, wants_earlier  # noqa: E402


def _cell(text: str, limit: int = 160) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else Path("badinput-table.md")
    kinds = set(argv[1:])
    with tempfile.TemporaryDirectory(prefix="badinput-") as tmp:
        env = make_env(tmp)
        rows, summary = [], defaultdict(Counter)
        t0 = time.perf_counter()
        todo = [(c, m) for c, m in pairs(env.cases) if not kinds or c.kind in kinds]
        for i, (case, cmd) in enumerate(todo):
            o = run(env, case, cmd, earlier=wants_earlier(case, i))
            bad = o.problems()
            want = {True: "accept", False: "refuse", None: "either"}[o.expected]
            summary[(case.kind, cmd.name)]["ok" if not bad else "wrong"] += 1
            rows.append(
                f"| {case.kind} | {case.name} | {_cell(case.problem, 60)} | {cmd.name} | {want} | "
                f"{'yes' if o.earlier else ''} | {_cell(o.line())} | {'ok' if not bad else _cell('; '.join(bad), 120)} |"
            )
            cleanup(o)
            print(f"[{i + 1}/{len(todo)}] {case.kind}/{case.name} {cmd.name}: {'ok' if not bad else bad[0][:100]}",
                  file=sys.stderr, flush=True)  # fmt: skip
        secs = time.perf_counter() - t0
    n_bad = sum(c["wrong"] for c in summary.values())
    lines = [
        "# Bad-input corpus: outcomes",
        "",
        f"{len(env.cases)} cases, {len(rows)} runs in {secs:.0f} s; {len(rows) - n_bad} right, {n_bad} wrong.",
        "'refuse' = exit 2 with one `error:` line naming the input, no traceback, output absent or an",
        "earlier one ('earlier' = yes) byte-identical; 'accept' = exit 0; 'either' = the command never reads",
        "what is broken (pixels, for commands that do not open images), so exit 0 or a clean refusal.",
        "",
        "| kind | command | right | wrong |",
        "| --- | --- | --- | --- |",
        *(f"| {k} | {c} | {n['ok']} | {n['wrong']} |" for (k, c), n in summary.items()),
        "",
        "| kind | case | problem | command | should | earlier | outcome | right? |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
    ]
    out.write_text("\n".join(lines))
    print(f"{len(rows)} runs, {n_bad} wrong -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
