"The committed notebooks are a book: executed, with their figures, and nothing in their outputs that changes per run."
import base64, io, json, re
from pathlib import Path
import pytest
from conftest import ROOT

NBS = sorted((ROOT / "nbs").glob("[0-9]*.ipynb"))
# figures a reader must see on the forge, per notebook (at least this many inline images)
FIGURES = {"00_data": 2, "01_tiling": 1, "01a_clean": 1, "02c_extract": 1, "03_losses": 1, "04_models": 1,
           "05_training": 2, "05a_sweep": 1, "05b_finetune": 1, "05c_state": 1, "06_ensemble": 1, "06a_pseudo": 1,
           "07_inference": 2, "09_demo": 1}
MIN_DPI = 110   # figures a reader can read on the forge (make book renders inline figures at this dpi)
VOLATILE = [(re.compile(r"/tmp/|\btmp[a-z0-9_]{6,}\b|/home/|/work/|/check/|site-packages"), "a temporary or machine path"),
            (re.compile(r"\d+(\.\d+)?\s?(it/s|s/it)|\b\d+\.\d+ ?s\b|elapsed"), "a timing"),
            (re.compile(r"Traceback|IProgress not found|Warning:|warn\("), "a traceback or warning"),
            (re.compile(r"0x[0-9a-f]{8,}"), "a memory address")]


def outputs(nb):
    for i, c in enumerate(nb["cells"]):
        for o in c.get("outputs", []):
            if o["output_type"] == "error": yield i, "error", o.get("ename", "")
            text = o.get("text") or "".join("".join(v) if isinstance(v, list) else v for k, v in o.get("data", {}).items()
                                            if k.startswith("text/"))
            yield i, o["output_type"], "".join(text) if isinstance(text, list) else text


def problems(path: Path) -> list:
    nb = json.loads(path.read_text())
    out = []
    if not any(c.get("outputs") for c in nb["cells"]): out.append("no outputs: run `make book`")
    imgs = sum("image/png" in o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", []))
    if imgs < FIGURES.get(path.stem, 0): out.append(f"{imgs} figures, expected at least {FIGURES[path.stem]}")
    from PIL import Image
    for i, c in enumerate(nb["cells"]):
        for o in c.get("outputs", []):
            if "image/png" not in o.get("data", {}): continue
            dpi = Image.open(io.BytesIO(base64.b64decode(o["data"]["image/png"]))).info.get("dpi", (0, 0))[0]
            if round(dpi) < MIN_DPI: out.append(f"cell {i}: a figure at {dpi:.0f} dpi (< {MIN_DPI}): run `make book`")
    for i, kind, text in outputs(nb):
        if kind == "error": out.append(f"cell {i}: an error output")
        for rx, what in VOLATILE:
            if m := rx.search(text): out.append(f"cell {i}: {what} in the output: {text[max(0, m.start() - 60):m.end() + 20]!r}")
    if any("id" not in c for c in nb["cells"]): out.append("cells without ids")
    if "widgets" in nb.get("metadata", {}) or "jupyter.widget-view" in path.read_text():
        out.append("progress-bar widgets in the outputs (their ids change every run): pass progress=False")
    return out


@pytest.mark.parametrize("path", NBS, ids=[p.stem for p in NBS])
def test_notebook_is_executed_and_stable(path):
    assert not problems(path), "\n".join(problems(path))


def test_every_notebook_is_in_the_readme_map():
    readme = (ROOT / "README.md").read_text()
    missing = [p.name for p in NBS if f"nbs/{p.name}" not in readme]
    assert not missing, f"README's notebook map lacks {missing}"


def test_readme_is_not_generated_over():
    "README.md is written by hand: nbdev-readme must find no notebook to render over it (it skips a missing one)."
    from nbdev.config import get_config
    cfg = get_config(ROOT)
    assert not (cfg.nbs_path / cfg.readme_nb).exists(), f"nbdev-readme would replace README.md with {cfg.readme_nb}"


if __name__ == "__main__":
    for p in NBS:
        for line in problems(p): print(f"{p.name}: {line}")


UNSHOWN_LEFT = 0   # issue N item 3: every public name has a visible example; a new one comes with its own


def unshown() -> dict:
    """Per notebook, the public names its export cells define (functions, classes, constants) that no visible cell
    (a non-export, non-hidden code cell with output) mentions: an API the book never shows in use."""
    import ast
    out = {}
    for path in NBS:
        cells = json.loads(path.read_text())["cells"]
        src = lambda c: "".join(c["source"])
        names = []
        for c in cells:
            if c["cell_type"] != "code" or not re.match(r"#\s*\|\s*export", src(c)): continue
            for n in ast.parse(src(c)).body:
                patched = any("patch" in ast.unparse(d) for d in getattr(n, "decorator_list", []))   # a method: its class counts
                if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and not patched: names.append(n.name)
                elif isinstance(n, ast.Assign): names += [t.id for t in n.targets if isinstance(t, ast.Name)]
        shown = " ".join(src(c) for c in cells if c["cell_type"] == "code" and c.get("outputs")
                         and not re.match(r"#\s*\|\s*(export|hide)", src(c)))
        miss = [n for n in names if not n.startswith("_") and not re.search(rf"\b{re.escape(n)}\b", shown)]
        if miss: out[path.stem] = miss
    return out


def test_public_names_are_shown_in_use():
    "Every public name is shown in a visible example (issue N item 3); a name that needs none is made private."
    miss = unshown()
    n = sum(map(len, miss.values()))
    assert n <= UNSHOWN_LEFT, f"{n} public names without a visible example (at most {UNSHOWN_LEFT}): {miss}"
