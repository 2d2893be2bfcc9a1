"""Run every benchmark, each printing its table with ratios against the peers of the same run.

    python benchmarks/run_all.py            # all of them (about 15 minutes on 2 cores)
    python benchmarks/run_all.py moons vmap # some of them
"""
import runpy
import sys
from pathlib import Path

BENCHMARKS = {  # name -> arguments that keep the slowest peers to a few minutes
    "compile_time": ["--numba-max", "100", "--sympy-max", "10", "--jax-max", "100"],
    "call_overhead": [],
    "vmap": [],
    "moons": [],
    "eager_moons": ["--steps", "10", "--rounds", "3"],
    "derivatives": [],
    "loops": ["--unrolled-steps", "500", "--widths", "32,128"],
    "cold_start": [],
    "dense": [],
}


def main(names):
    for name in names or BENCHMARKS:
        if name not in BENCHMARKS:
            raise SystemExit(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
        print(f"\n== {name} ==", flush=True)
        sys.argv = [name, *BENCHMARKS[name]]
        runpy.run_path(str(Path(__file__).with_name(name + ".py")), run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
