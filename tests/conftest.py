import math
import os
import tempfile

import pytest

os.environ.setdefault("TRACEGRAD_CACHE_DIR", os.path.join(tempfile.gettempdir(), "tracegrad-test-cache"))


def same_float(a, b, rtol=1e-12, signed_zero=False):
    """Equal to ``rtol`` relative, nan equal to nan, infinities exact; optionally the sign of zero too."""
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    if signed_zero and a == 0.0 and b == 0.0:
        return math.copysign(1, a) == math.copysign(1, b)
    return abs(a - b) <= rtol * max(abs(a), abs(b)) + 1e-300


@pytest.fixture
def close():
    return same_float
