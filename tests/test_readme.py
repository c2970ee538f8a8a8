"""The README's examples print what the README says they print (it is checked, not trusted)."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = (Path(__file__).parents[1] / "README.md").read_text()

#: Each ```python block that the README follows with "prints" and the printed block.
EXAMPLES = re.findall(r"```python\n((?:(?!```).)*?)```\n\nprints\n\n```\n(.*?)```", README, re.S)


def test_the_readme_has_examples_with_their_output():
    assert len(EXAMPLES) >= 3


#: Differences at the level of rounding (the check report's 1e-16s): their last digits depend on
#: the machine (FMA, the instruction set the loops run on, an unoptimised build), so they are
#: compared as what the README says of them — below 1e-12 — and the rest of the text exactly.
ROUNDING = re.compile(r"\b(\d\.\d\de-(1[3-9]|[2-9]\d)|0\.00e\+00)\b")


@pytest.mark.parametrize("code,printed", EXAMPLES,
                         ids=[code.splitlines()[-1][:40] for code, _ in EXAMPLES])
def test_each_example_prints_what_the_readme_shows(code, printed, tmp_path):
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    assert ROUNDING.sub("<rounding>", result.stdout) == ROUNDING.sub("<rounding>", printed)


def test_the_chain_example_is_a_doctest():
    example = re.search(r"```python\n(>>> .*?)```", README, re.S).group(1)
    lines = example.splitlines()
    source = "\n".join(line[4:] for line in lines if line.startswith(">>> "))
    expected = "\n".join(line for line in lines if not line.startswith(">>> ")) + "\n"
    result = subprocess.run([sys.executable, "-c", source],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected
