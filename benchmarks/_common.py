"Shared helpers of the benchmark scripts: machine description and appending to RESULTS.md."
import os, platform, re, subprocess, sys, time
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def machine() -> str:
    import torch
    cpu = platform.processor() or platform.machine()
    try: cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except Exception: pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} CPU cores ({cpu}), {gpu}, torch {torch.__version__}, threads {torch.get_num_threads()}"


def replace_section(title: str, block: list):
    "RESULTS.md with one current section per title: an earlier one of that title goes (git keeps the history)."
    text = RESULTS.read_text() if RESULTS.exists() else ""
    parts = re.split(r"(?m)^(?=## )", text)
    kept = [x for x in parts if x.splitlines()[:1] != [f"## {title}"]]
    RESULTS.write_text("".join(kept).rstrip("\n") + "\n\n" + "\n".join(block))


def record(title: str, lines: list):
    "Print a result block and put it in RESULTS.md with date, machine and command, replacing that title's last one."
    block = [f"## {title}", f"- date: {time.strftime('%Y-%m-%d %H:%M')}", f"- machine: {machine()}",
             f"- command: `python {' '.join(sys.argv)}`", *[f"- {l}" for l in lines], ""]
    print("\n".join(block))
    replace_section(title, block)
    if os.environ.get("BENCH_COPY_TO"):   # a GPU lease: each result leaves the machine as soon as it is written
        import shutil; shutil.copy(RESULTS, Path(os.environ["BENCH_COPY_TO"]) / RESULTS.name)
