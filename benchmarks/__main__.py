"""``python -m benchmarks [--only T1 C1]`` from the repo root: the same as ``benchmarks/run.py``."""

import sys

from benchmarks.run import main

sys.exit(main())
