"""The README stays true: its measured tables are the benchmarks' own results, its commands exist."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_module():
    spec = importlib.util.spec_from_file_location("benchmarks_readme", ROOT / "benchmarks" / "readme.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_results_tables_are_the_benchmarks_results():
    readme = (ROOT / "README.md").read_text()
    assert "<!-- results:nets -->" in readme
    assert _readme_module().render(readme) == readme, "run `python benchmarks/readme.py`"


def test_render_fills_a_section_from_its_result_and_says_when_one_is_missing(tmp_path):
    (tmp_path / "speed.md").write_text("# Title\n\nMeasured today.\n\n| a |\n|---|\n| 1 |\n")
    text = (
        "x\n<!-- results:speed -->\nold\n<!-- /results:speed -->\n"
        "<!-- results:gone -->\n<!-- /results:gone -->\n"
    )
    out = _readme_module().render(text, tmp_path)
    assert "Measured today." in out and "| 1 |" in out and "old" not in out and "# Title" not in out
    assert "Not measured yet: run `python benchmarks/gone.py`" in out


def test_every_subcommand_of_the_readme_exists():
    from medden.cli import COMMANDS

    readme = (ROOT / "README.md").read_text()
    code = "\n".join(re.findall(r"```(?:bash)?\n(.*?)```", readme, flags=re.S))
    named = set(re.findall(r"^(?:\S+ )?medden ([a-z-]+)", code, flags=re.M)) - {"--help"}
    known = {m.rsplit(".", 1)[1].replace("_", "-") for m in COMMANDS} | {"finetune"}
    assert named and named <= known, named - known
