"""The quickstart notebook runs headless against the node (every cell must succeed), and
its plots are images a reader can see."""

from __future__ import annotations

import os

import nbformat
from nbclient import NotebookClient

from conftest import REPO


def test_quickstart_notebook_runs(url: str) -> None:
    path = REPO / "sdk-python/examples/quickstart.ipynb"
    notebook = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    os.environ["CREDENCE_URL"] = url  # the kernel inherits it
    NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    images = [
        o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])
        if "image/png" in o.get("data", {})
    ]
    assert len(images) == 2, "the two plots are images in the executed notebook"
