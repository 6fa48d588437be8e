"""The walkthrough notebook runs top to bottom against a real (temporary) MLflow store."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "walkthrough.ipynb"


def test_notebook_is_generated_from_its_script() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_walkthrough", REPO / "notebooks" / "make_walkthrough.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    sources = [cell.source for cell in nbformat.read(NOTEBOOK, as_version=4).cells]
    assert sources == [cell.source for cell in module.build().cells], (
        "run notebooks/make_walkthrough.py to regenerate the notebook"
    )


@pytest.mark.slow
def test_walkthrough_notebook_executes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETAIN_NOTEBOOK_CUSTOMERS", "1500")
    monkeypatch.setenv("RETAIN_NOTEBOOK_WORKDIR", str(tmp_path / "work"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}
    )
    client.execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    last = notebook.cells[-2]  # the ranked list
    html = last.outputs[0]["data"]["text/html"]
    assert "recommended_action" in html and "reason_1" in html
    assert any("image/png" in o.get("data", {}) for o in outputs), "the notebook shows its plots"
