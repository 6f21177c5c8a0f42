"""Issue R §2 and §6, by class: one writer per output for every command that writes one, and no lock kept alive by
a forked child (a DataLoader worker) after its parent died."""
import os, time
from pathlib import Path
import pytest
from conftest import run

# every command with an output option, and the option: the second writer must stop before any work
WRITERS = [("synth", "--out-dir"), ("folds", "--out"), ("extract", "--out"), ("merge-stores", "--out"),
           ("train-heads", "--out"), ("sweep", "--out"), ("state", "--out"), ("train", "--out"),
           ("ensemble", "--out"), ("train-ensemble", "--out"), ("pseudo-label", "--out"), ("predict", "--out"),
           ("predict", "--detail"), ("predict", "--maps"), ("worst", "--out"), ("kaggle-bundle", "--out"),
           ("demo", "--out-dir")]


def _sub(command):
    from image2biomass.cli import fast_parser
    return next(a for a in fast_parser()._actions if a.dest == "command").choices[command]


def _flags(command) -> set: return {s for a in _sub(command)._actions for s in a.option_strings}


def _positionals(command, where) -> list:
    "A path for each positional argument (a data folder, shards): none of them exists."
    return [where / "nothing-here" for a in _sub(command)._actions if not a.option_strings and a.dest != "help"]


@pytest.mark.parametrize("command,flag", WRITERS)
def test_a_second_writer_stops_at_once(tmp_path, command, flag):
    from image2biomass.files import output_lock
    if flag not in _flags(command): pytest.skip(f"{command} has no {flag}")
    out = tmp_path / "out"
    with output_lock(out):   # the first writer, still running
        t0 = time.perf_counter()
        data = ["--data-dir", tmp_path / "nothing-here"] if "--data-dir" in _flags(command) else []
        r = run(command, *_positionals(command, tmp_path), flag, out, *data, check=2)
    assert "is being written by another process" in r.stderr and f"pid {os.getpid()}" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and time.perf_counter() - t0 < 5
    assert not out.exists() and not any(tmp_path.iterdir())   # the lock writes nothing beside the output


def test_commands_with_outputs_are_all_listed():
    "A new command with an output option joins WRITERS (or this fails)."
    from image2biomass.cli import fast_parser, OUTPUT_OPTIONS
    p = fast_parser()
    subs = next(a for a in p._actions if a.dest == "command").choices
    flags = {"--" + o.replace("_", "-") for o in OUTPUT_OPTIONS}
    have = {(c, f) for c, sp in subs.items() for a in sp._actions for f in a.option_strings if f in flags}
    assert have <= set(WRITERS), have - set(WRITERS)


def test_a_forked_child_does_not_keep_the_lock(tmp_path):
    "A loader worker forked while the lock was held does not hold it once the parent lets go (or dies)."
    from image2biomass.files import output_lock, lock_file, lock_path, unlock
    out = tmp_path / "run"
    with output_lock(out):
        pid = os.fork()
        if pid == 0:   # the child: a worker that outlives its parent's lock for a while
            time.sleep(3); os._exit(0)
    time.sleep(0.5)   # the child is up (its at-fork hook has run), and still running below
    try:
        fd = lock_file(lock_path(out), "is being written", pid=True)   # the child still runs
        unlock(fd)
    finally: os.waitpid(pid, 0)


def test_stores_lock_the_same_way(tmp_path):
    "The feature store's partial-file lock is one of these locks: a forked child drops it too."
    from image2biomass.store import _lock_exclusive, _unlock
    p = tmp_path / "s.h5.partial"; p.write_bytes(b"")
    fd = _lock_exclusive(p)
    pid = os.fork()
    if pid == 0: time.sleep(3); os._exit(0)
    time.sleep(0.5)
    try:
        _unlock(fd); _unlock(_lock_exclusive(p))
    finally: os.waitpid(pid, 0)
