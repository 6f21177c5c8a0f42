"""Issue T item 4: CPU proxies of what a GPU needs of its host, run by CI. Not a speed regression test (that is
`make bench-quick`'s, against baselines): a check that one loader process makes at least the photos per second each
of a GPU machine's 16 cores must give for a DINOv3-B step at 35 % MFU, and that the host's share of a training step
fits in that step; the margins measured on a 2-core CI machine are 2-3x, a regression of the loader (decoding every
epoch again, say: ~5x) or of the loop (a host sync per step) fails it."""
import sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_quick import feed_job, step_job, best, GOAL_PHOTOS_S, GPU_CORES, GOAL_STEP_S


def test_one_loader_process_feeds_its_share_of_the_gpu(tmp_path):
    work = feed_job(tmp_path, photos=2)
    rate = 24 / best(work, 2)
    assert rate >= GOAL_PHOTOS_S / GPU_CORES, f"{rate:.1f} photos/s per core, {GOAL_PHOTOS_S / GPU_CORES:.1f} needed"


def test_the_host_share_of_a_step_fits_in_the_step():
    run, n = step_job()
    per = best(run, 2) / n
    assert per <= GOAL_STEP_S, f"{1e3 * per:.1f} ms of host time per step; the step at the goal is {1e3 * GOAL_STEP_S:.0f} ms"
