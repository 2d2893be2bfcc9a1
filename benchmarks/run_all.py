"""Run every benchmark: python benchmarks/run_all.py"""
import runpy
import sys
from pathlib import Path

for name in ("compile_time", "call_overhead", "vmap"):
    print(f"\n== {name} ==", flush=True)
    sys.argv = [name]
    runpy.run_path(str(Path(__file__).with_name(name + ".py")), run_name="__main__")
