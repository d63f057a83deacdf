"""The README's Python example runs as written (against the test node)."""

from __future__ import annotations

import re

from conftest import REPO


def test_readme_python_example(url: str, capsys: object) -> None:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("### Talk to it from Python"):]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    source = code.group(1).replace("http://127.0.0.1:50051", url)
    exec(compile(source, "README.md", "exec"), {})
