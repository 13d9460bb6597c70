"""The bundled examples, as data: a real clinical CT slice (`clinical/`) and its simulated low-dose copy (`degraded/`).

Written by `python -m tfkt_edge.train.make_examples`; scored by `tfkt-edge demo` and used by the tests and benchmarks.
"""

from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent
