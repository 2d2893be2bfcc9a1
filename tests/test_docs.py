"""Every Python code block in README.md and docs/*.md runs as written (blocks of a file share one namespace)."""
import glob
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


@pytest.mark.parametrize("path", FILES, ids=[os.path.relpath(p, ROOT) for p in FILES])
def test_code_blocks_run(path, tmp_path, monkeypatch):
    with open(path, encoding="utf-8") as f:
        blocks = BLOCK.findall(f.read())
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}
    for i, block in enumerate(blocks):
        try:
            exec(compile(block, f"{os.path.basename(path)}[block {i}]", "exec"), namespace)
        except Exception as e:  # report which block failed
            raise AssertionError(f"{os.path.relpath(path, ROOT)} block {i} failed: {e!r}\n{block}") from e
