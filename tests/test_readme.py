"""The README is executable documentation: its quickstart runs, its commands are the real ones."""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _block_after(marker: str) -> str:
    text = README.read_text()
    match = re.search(rf"<!-- {marker} -->\n```\w*\n(.*?)```", text, flags=re.S)
    assert match, f"README has no code block after <!-- {marker} -->"
    return match.group(1)


def test_quickstart_runs_and_prints_the_documented_shapes(tmp_path: Path) -> None:
    code = _block_after("quickstart")
    expected = [line[2:] for line in code.splitlines() if line.startswith("# torch.Size")]
    script = tmp_path / "quickstart.py"
    script.write_text(code)
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected[0]


def test_readme_commands_install_from_the_clone() -> None:
    main = _block_after("main-command").strip()
    tests = _block_after("test-command").strip()
    assert "pip install -e '.[examples]'" in main and "examples/seq_jepa/train.py" in main
    assert "pip install -e '.[test]'" in tests and tests.endswith("pytest")
    ci = (README.parent / ".ci" / "run").read_text()
    assert "test-command" in ci  # CI runs exactly the README's test command
