"""Bad input gets a clear exception of a documented type, with a message that says what to do."""
import math

import numpy as np
import pytest

import tracegrad as tg


def test_if_on_tracer_names_the_line_and_suggests_where():
    def f(x):
        if x > 0:  # the offending line
            return x
        return -x
    with pytest.raises(tg.TracingError) as info:
        tg.grad(f)(1.0)
    message = str(info.value)
    assert "test_errors.py:" in message and "if x > 0:" in message and "tg.where" in message


def test_while_and_float_conversion_raise_tracing_error():
    with pytest.raises(tg.TracingError, match="tg.where"):
        tg.jit(lambda x: [x for _ in range(3) if x])(1.0)
    with pytest.raises(tg.TracingError, match=r"tg.sin\(x\)"):
        tg.grad(lambda x: math.sin(x))(1.0)
    with pytest.raises(tg.TracingError):
        tg.grad(lambda x: [0.0, 1.0][int(x)])(1.0)


def test_leaked_tracer_is_a_tracing_error():
    leaked = []
    tg.grad(lambda x: leaked.append(x) or x * x)(1.0)
    with pytest.raises(tg.TracingError, match="escaped"):
        tg.grad(lambda y: y * leaked[0])(2.0)


@pytest.mark.parametrize("bad", ["1.0", None, 1 + 2j, object(), np.complex128(1)])
def test_non_numbers_are_type_errors(bad):
    with pytest.raises(TypeError, match="float"):
        tg.grad(lambda x: x * 2.0)(bad)
    with pytest.raises(TypeError, match="real number|float"):
        tg.exp(bad)


def test_non_numbers_inside_pytrees_are_type_errors():
    with pytest.raises(TypeError, match="str"):
        tg.grad(lambda p: p["a"] * 2.0)({"a": "oops"})
    with pytest.raises(TypeError, match="dtype"):
        tg.jit(lambda a: a[0])(np.array(["a", "b"]))


def test_returning_non_numbers_is_a_type_error():
    with pytest.raises(TypeError, match="str"):
        tg.jit(lambda x: "hello")(1.0)


def test_grad_needs_scalar_output():
    with pytest.raises(TypeError, match="single scalar output.*tg.vjp"):
        tg.grad(lambda x: [x, x])(1.0)


@pytest.mark.parametrize("argnums, error", [(2, ValueError), (-3, ValueError), ("0", TypeError),
                                            ((), TypeError), (1.0, TypeError), (True, TypeError)])
def test_bad_argnums(argnums, error):
    with pytest.raises(error, match="argnums"):
        tg.grad(lambda x, y: x * y, argnums=argnums)(1.0, 2.0)


def test_negative_argnums_count_from_the_end():
    assert tg.grad(lambda x, y: x * y, argnums=-1)(2.0, 3.0) == 2.0


def test_not_a_function():
    for transform in (tg.grad, tg.jit, tg.value_and_grad):
        with pytest.raises(TypeError, match="takes a function"):
            transform(3.0)


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend 'fortran'"):
        tg.jit(lambda x: x, backend="fortran")


def test_jvp_structure_mismatch():
    with pytest.raises(ValueError, match="structure"):
        tg.jvp(lambda x, y: x * y, (1.0, 2.0), (1.0,))
    with pytest.raises(TypeError, match="tuples"):
        tg.jvp(lambda x: x, 1.0, 1.0)


def test_vjp_cotangent_structure_mismatch():
    _, pull = tg.vjp(lambda x: [x, x], 1.0)
    with pytest.raises(ValueError, match="structure"):
        pull(1.0)


def test_huge_int_is_a_value_error():
    with pytest.raises(ValueError, match="too large"):
        tg.exp(10 ** 400)


def test_keyword_arguments_are_a_clear_type_error():
    with pytest.raises(TypeError, match="keyword argument"):
        tg.jit(lambda x, y: x * y)(1.0, y=2.0)


def test_graph_of_a_varargs_function_needs_an_example_call():
    f = tg.jit(lambda *a: a[0] * 2.0)
    with pytest.raises(TypeError, match="example arguments"):
        f.graph
    assert f(3.0) == 6.0 and len(f.graph.inputs) == 1


@pytest.mark.parametrize("convert", [
    round, lambda x: round(x, 2), lambda x: f"{x:.3f}", lambda x: format(x, "g"), lambda x: "%.2f" % x,
    int, float, complex, math.trunc, math.floor, math.ceil, lambda x: [1.0, 2.0][x], lambda x: range(x),
    lambda x: np.float64(x), lambda x: np.array([x], dtype=float)],
    ids=["round", "round2", "fstring", "format", "percent", "int", "float", "complex", "trunc", "floor",
         "ceil", "index", "range", "np.float64", "float array"])
def test_conversions_of_a_traced_value_name_the_line(convert):
    with pytest.raises(tg.TracingError, match=r"at test_errors.py:\d+ .*tracegrad functions"):
        tg.grad(lambda x: convert(x) and x)(1.0)


def test_round_and_format_name_the_line():
    def f(x):
        print(f"{x:.3f}")  # the offending line
        return x

    def g(x):
        return round(x * 100.0) / 100.0  # round's line
    for fn, line in ((f, 'print(f"{x:.3f}")  # the offending line'), (g, "return round(x * 100.0) / 100.0")):
        with pytest.raises(tg.TracingError) as info:
            tg.grad(fn)(1.0)
        assert "test_errors.py:" in str(info.value) and line in str(info.value)


def test_printing_a_traced_value_shows_its_node():
    assert tg.jit(lambda x: [f"{x}", str(x)] and x)(1.0) == 1.0
    seen = []
    tg.grad(lambda x: seen.append(f"{x} {x!r}") or x)(1.0)
    assert seen == ["Tracer(v0) Tracer(v0)"]
