"""`make bench`: run every bench/<name>.py, collect the JSON figures they print, rewrite BENCHMARKS.md.

`python bench/run_all.py console storage` runs only those and replaces only their sections, keeping the
others (each section says when it was measured)."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import machine  # noqa: E402

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SKIP = {"run_all.py", "common.py", "__init__.py"}


def run(script: Path) -> tuple[list[dict], str]:
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=ROOT, timeout=1800)
    figures = []
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                figures.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    error = "" if proc.returncode == 0 else (proc.stderr or proc.stdout)[-2000:]
    return figures, error


def fmt(value) -> str:
    return "-" if value is None else str(value)


def existing_sections() -> dict[str, str]:
    """BENCHMARKS.md's sections by bench name."""
    path = ROOT / "BENCHMARKS.md"
    if not path.is_file():
        return {}
    parts = path.read_text().split("\n## ")[1:]
    return {part.split("\n", 1)[0].strip(): "## " + part.rstrip("\n") + "\n" for part in parts}


def main(only: list[str]) -> int:
    scripts = sorted(p for p in BENCH.glob("*.py") if p.name not in SKIP)
    unknown = set(only) - {p.stem for p in scripts}
    if unknown:
        print(f"no bench named {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    kept = existing_sections() if only else {}
    if only:
        scripts = [p for p in scripts if p.stem in only]
    sections: dict[str, str] = {}
    failed = False
    for script in scripts:
        print(f"== {script.name}", flush=True)
        figures, error = run(script)
        for f in figures:
            print(json.dumps(f), flush=True)
        rows = ["| figure | value | baseline | ratio | target | ok | note |", "|---|---|---|---|---|---|---|"]
        for f in figures:
            ok = {True: "yes", False: "**no**", None: "-"}[f.get("ok")]
            rows.append(
                f"| {f['name']} | {fmt(f['value'])} {f['unit']} | {fmt(f.get('baseline'))} | {fmt(f.get('ratio'))} "
                f"| {fmt(f.get('target'))} | {ok} | {f.get('note', '')} |"
            )
        when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        text = f"## {script.stem}\n\n`python bench/{script.name}`, {when}\n\n" + "\n".join(rows) + "\n"
        if error:
            failed = True
            text += f"\nThe script failed:\n\n```\n{error}\n```\n"
        sections[script.stem] = text
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = (
        "# Benchmarks\n\n"
        f"Written by `make bench` (last on {now}; each section says when it ran).\n\nMachine: {machine()}.\n\n"
        "Each figure is measured against its baseline in the same run; guests run under TCG here.\n\n"
    )
    merged = {**kept, **sections}
    (ROOT / "BENCHMARKS.md").write_text(header + "\n".join(merged[name] for name in sorted(merged)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
