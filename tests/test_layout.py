"""The house keeps its plan: layered imports, modules of one idea."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 400


def test_layer_contracts_hold() -> None:
    # import-linter is a test dependency ('.[test]'), installed beside this interpreter.
    lint_imports = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    done = subprocess.run(
        [lint_imports, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_no_module_holds_more_than_one_idea() -> None:
    big = {
        str(p.relative_to(ROOT)): n
        for p in sorted((ROOT / "ssmake").rglob("*.py"))
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert big == {}, f"modules over {MAX_MODULE_LINES} lines: split them by idea"


def test_test_doubles_live_under_tests() -> None:
    product = "\n".join(p.read_text() for p in (ROOT / "ssmake").rglob("*.py"))
    assert "class RecordingBuilder" not in product
    assert (ROOT / "tests" / "recording_builder.py").exists()
