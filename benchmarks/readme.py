"""Copy the measured tables of ``benchmarks/results/*.md`` into the README's "Measured results".

Each table goes between ``<!-- results:NAME -->`` and ``<!-- /results:NAME -->`` in README.md, with
the date, machine and command its benchmark wrote above it; a missing result is said to be missing,
never invented. Run after the benchmarks::

    .venv/bin/python benchmarks/readme.py
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def render(readme: str, results: Path = RESULTS) -> str:
    """``readme`` with every marked section replaced by ``results/<name>.md`` (its title line dropped)."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        path = results / f"{name}.md"
        if path.is_file():
            lines = path.read_text().strip().splitlines()
            body = "\n".join(lines[1:] if lines and lines[0].startswith("# ") else lines).strip()
        else:
            body = f"Not measured yet: run `python benchmarks/{name}.py`."
        return f"<!-- results:{name} -->\n{body}\n<!-- /results:{name} -->"

    return re.sub(r"<!-- results:(\w+) -->.*?<!-- /results:\1 -->", fill, readme, flags=re.S)


def main() -> None:
    path = ROOT / "README.md"
    path.write_text(render(path.read_text()))
    print(f"updated {path}")


if __name__ == "__main__":
    main()
