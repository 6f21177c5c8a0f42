"""Execute every notebook of the book in order, each in a fresh kernel, and save its outputs in place.

`make book` runs this. Outputs are made deterministic so that a second run leaves `git status` clean: seeds live in
the notebooks, torch gets a fixed thread count, progress bars are off (TQDM_DISABLE), execution timings are not
recorded, and `nbdev-clean` afterwards strips the remaining metadata. The papermill kernels in nbs/kernels are
templates run with parameters (see README), not pages of the book, and are left unexecuted.
Usage: python tools/book.py [NOTEBOOK ...]   (default: nbs/*.ipynb)"""
import os, sys, time
from pathlib import Path
import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
ENV = {"TQDM_DISABLE": "1", "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "2", "MPLBACKEND": "module://matplotlib_inline.backend_inline",
       "IMAGE2BIOMASS_BOOK": "1", "COLUMNS": "120"}


def merge_streams(outputs) -> list:
    "Consecutive stream outputs of one stream as one: how the kernel chunks them varies from run to run."
    out = []
    for o in outputs:
        if out and o.output_type == "stream" and out[-1].output_type == "stream" and out[-1].name == o.name:
            out[-1].text += o.text
        else: out.append(o)
    return out


def run(path: Path) -> float:
    "Execute one notebook in a fresh kernel (cwd: its folder) and write it back with its outputs; returns seconds."
    nb = nbformat.read(path, as_version=4)
    t0 = time.time()
    NotebookClient(nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}},
                   record_timing=False, allow_errors=False, store_widget_state=False).execute()
    nb.metadata.pop("widgets", None)                 # widget state of earlier runs: random ids
    for c in nb.cells:
        c.metadata.pop("execution", None)
        if c.cell_type == "code":
            c.outputs = merge_streams([o for o in c.outputs
                                       if not (o.output_type == "stream" and o.name == "stderr" and not o.text.strip())])
    tmp = path.with_name(f".{path.name}.tmp")
    nbformat.write(nb, tmp)
    os.replace(tmp, path)
    return time.time() - t0


def write_kernels():
    "Regenerate the parameters cell of each papermill kernel from the stage configs (image2biomass.kaggle)."
    from image2biomass.kaggle import KERNELS, kernel_parameters
    for k in KERNELS:
        p = ROOT / "nbs" / "kernels" / f"{k}.ipynb"
        nb = nbformat.read(p, as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        if cell.source != kernel_parameters(k):
            cell.source = kernel_parameters(k)
            nbformat.write(nb, p.with_name(f".{p.name}.tmp")); os.replace(p.with_name(f".{p.name}.tmp"), p)
            print(f"{p.relative_to(ROOT)}: parameters cell regenerated")


def ipython_dir() -> str:
    "An IPython profile for the book's kernels: inline figures at 110 dpi (readable on the forge)."
    import tempfile
    d = Path(tempfile.mkdtemp(prefix="i2b-book-ipython-"))
    (d / "profile_default").mkdir()
    (d / "profile_default" / "ipython_kernel_config.py").write_text(
        "c.InteractiveShellApp.matplotlib = 'inline'\nc.InlineBackend.rc = {'figure.dpi': 110, 'savefig.dpi': 110}\n")
    return str(d)


def main(args):
    import shutil
    write_kernels()
    os.environ.update(ENV, IPYTHONDIR=ipython_dir())
    nbs = [Path(a) for a in args] or sorted((ROOT / "nbs").glob("*.ipynb"))
    try:
        for p in nbs:
            print(f"{p.relative_to(ROOT) if p.is_absolute() else p}: {run(p.resolve()):.0f} s", flush=True)
    finally: shutil.rmtree(os.environ["IPYTHONDIR"], ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
