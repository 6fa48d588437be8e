"""The notebooks are generated from their scripts and run top to bottom (the walkthrough against a
real, temporary MLflow store)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "walkthrough.ipynb"


@pytest.mark.parametrize(
    ("notebook", "script"),
    [("walkthrough.ipynb", "make_walkthrough.py"), ("drivers_and_kpis.ipynb", "make_drivers_and_kpis.py")],
)
def test_notebook_is_generated_from_its_script(notebook: str, script: str) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(script.removesuffix(".py"), REPO / "notebooks" / script)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    sources = [cell.source for cell in nbformat.read(REPO / "notebooks" / notebook, as_version=4).cells]
    assert sources == [cell.source for cell in module.build().cells], (
        f"run notebooks/{script} to regenerate the notebook"
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


@pytest.mark.slow
def test_drivers_and_kpis_notebook_executes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETAIN_NOTEBOOK_CUSTOMERS", "2000")
    monkeypatch.setenv("RETAIN_NOTEBOOK_WORKDIR", str(tmp_path / "work"))
    notebook = nbformat.read(REPO / "notebooks" / "drivers_and_kpis.ipynb", as_version=4)
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}
    )
    client.execute()
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    outputs = [o for cell in code for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 5, "the KPI, theme, driver and value plots are shown"
    drivers_cell = next(cell for cell in code if "drivers.drivers_report(" in cell.source)
    assert "rate_with" in drivers_cell.outputs[0]["data"]["text/html"]
    estimate = next(cell for cell in code if "estimated_roc_auc" in cell.source)
    printed = "".join(o.get("text", "") for o in estimate.outputs if o.get("output_type") == "stream")
    assert "estimated ROC-AUC before labels:" in printed and "realised ROC-AUC:" in printed
    assert (tmp_path / "work" / "report.html").is_file()
