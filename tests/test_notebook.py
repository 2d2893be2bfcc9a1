"""docs/tutorial.ipynb runs top to bottom (executed with nbclient) and shows what it promises."""
import os

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed: pip install -e '.[docs]'")
nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed: pip install -e '.[docs]'")
pytest.importorskip("ipykernel", reason="ipykernel is not installed: pip install -e '.[docs]'")
pytest.importorskip("matplotlib", reason="matplotlib is not installed: pip install -e '.[demo]'")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "docs", "tutorial.ipynb")


@pytest.fixture(scope="module")
def executed():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:                       # run from a clean slate, whatever was saved
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    env_path = os.environ.get("PYTHONPATH")     # the kernel imports the same tracegrad as the tests
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env_path]))
    try:
        nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                resources={"metadata": {"path": os.path.dirname(NOTEBOOK)}}).execute()
    finally:
        if env_path is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = env_path
    return nb


def outputs(nb, kind):
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if kind in o.get("data", {})]


def text(nb):
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_notebook_runs_without_errors(executed):
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors


def test_notebook_prints_ir_adjoint_and_generated_code(executed):
    out = text(executed)
    assert "{ lambda x:f64, y:f64 ." in out                 # the IR
    assert "sub 1.0" in out                                  # the adjoint of tanh reuses its output
    assert "def kernel(x0, x1):" in out                      # generated Python
    assert "define internal void @k.body" in out             # generated LLVM IR


def test_notebook_trains_and_plots(executed):
    out = text(executed)
    accuracy = int(out.split("accuracy ")[-1].split("%")[0])
    assert accuracy >= 95
    assert len(outputs(executed, "image/png")) >= 4          # vmap plot, data, loss curve, decision boundary


def test_notebook_draws_graphs_or_their_source(executed):
    import shutil
    svgs = outputs(executed, "image/svg+xml")
    if shutil.which("dot"):
        assert len(svgs) == 3                                # function graph, adjoint graph, Value graph
    else:
        assert "digraph" in text(executed) or "install the graphviz" in text(executed)
