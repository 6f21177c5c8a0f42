"Shared helpers of the benchmark scripts: machine description and appending to RESULTS.md."
import os, platform, subprocess, sys, time
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def machine() -> str:
    import torch
    cpu = platform.processor() or platform.machine()
    try: cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except Exception: pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} CPU cores ({cpu}), {gpu}, torch {torch.__version__}, threads {torch.get_num_threads()}"


def record(title: str, lines: list):
    "Print a result block and append it to RESULTS.md with date, machine and command."
    block = [f"## {title}", f"- date: {time.strftime('%Y-%m-%d %H:%M')}", f"- machine: {machine()}",
             f"- command: `python {' '.join(sys.argv)}`", *[f"- {l}" for l in lines], ""]
    print("\n".join(block))
    with open(RESULTS, "a") as f: f.write("\n" + "\n".join(block))
