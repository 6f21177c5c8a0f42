"""Peak memory of extraction must not grow with the number of images (streaming): peak RSS of `image2biomass extract`
(vegetation extractor, 1000x2000 JPEGs, grid 518/400) for 40 vs 160 images, with glibc's default allocator and with
MALLOC_MMAP_THRESHOLD_ pinned (which stops glibc from keeping freed multi-MB blocks, showing the pipeline's own use).

    python benchmarks/bench_rss.py"""
import os, resource, subprocess, sys, tempfile, time
from pathlib import Path
from _common import record
from image2biomass.data import make_synthetic_dataset

tmp = Path(tempfile.mkdtemp())
exe = str(Path(sys.executable).with_name("image2biomass"))
rows = []
for n in (40, 160):
    ds = make_synthetic_dataset(tmp / f"d{n}", n_train=n, n_test=1, size=(1000, 2000), seed=n, progress=False)
    for label, env in [("default malloc", {}), ("MALLOC_MMAP_THRESHOLD_=1048576", {"MALLOC_MMAP_THRESHOLD_": "1048576"})]:
        code = ("import resource, sys; from image2biomass.cli import main; rc = main(sys.argv[1:]); "
                "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(rc)")
        out = tmp / f"s{n}.h5"
        out.unlink(missing_ok=True)
        t0 = time.time()
        r = subprocess.run([sys.executable, "-c", code, "extract", "--data-dir", str(ds), "--out", str(out), "--workers", "1", "--no-progress"],
                           capture_output=True, text=True, check=True, env={**os.environ, **env})
        own, kids = [int(v) for v in r.stdout.split("PEAK")[1].split()]
        rows.append((label, n, own / 1024, kids / 1024, time.time() - t0))
lines = ["vegetation extractor, 1 loader worker; peak RSS of the main process / of its loader worker"]
lines += [f"{label}, {n} images: {a:.0f} MiB / {b:.0f} MiB ({s:.0f} s)" for label, n, a, b, s in rows]
for label in dict.fromkeys(r[0] for r in rows):
    r40, r160 = [r for r in rows if r[0] == label]
    lines.append(f"{label}: growth 40 -> 160 images: main {r160[2] - r40[2]:+.0f} MiB, worker {r160[3] - r40[3]:+.0f} MiB")
record("bench_rss", lines)
