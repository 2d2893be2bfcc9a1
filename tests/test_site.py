"""The documentation site builds with `mkdocs build --strict` (no broken links, every docstring parses)
and its API reference covers every public name."""
import importlib.util
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MISSING = [m for m in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers") if importlib.util.find_spec(m) is None]
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"the docs tools are not installed ({', '.join(MISSING)}): "
                                                      "pip install -e '.[docs]'")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1",
               PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", os.path.join(ROOT, "mkdocs.yml"),
                           "-d", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return out


def test_every_page_is_built(site):
    pages = [p[:-3] for p in os.listdir(os.path.join(ROOT, "docs")) if p.endswith(".md")]
    for page in pages:
        path = site / ("index.html" if page == "index" else os.path.join(page, "index.html"))
        assert path.is_file(), f"docs/{page}.md was not built (is it in mkdocs.yml's nav?)"
    assert (site / "tutorial.ipynb").is_file() and (site / "img" / "compile_time.png").is_file()


def test_api_reference_covers_every_public_name(site):
    import tracegrad as tg
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    api_nn = (site / "api-nn" / "index.html").read_text(encoding="utf-8")
    for name in tg.__all__:
        if name != "nn":   # the math functions are in a table, the rest have a generated entry
            assert f'id="tracegrad.{name}"' in api or f"<code>tg.{name}(" in api, f"tracegrad.{name} is not in docs/api.md"
    for name in tg.nn.__all__:
        assert f'id="tracegrad.nn.{name}"' in api_nn, f"tracegrad.nn.{name} is not in docs/api-nn.md"


def test_docstring_examples_are_rendered_as_code(site):
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    assert '<span class="gp">&gt;&gt;&gt; </span>' in api     # a pycon block, not a nested quote
    assert "<blockquote>" not in api
