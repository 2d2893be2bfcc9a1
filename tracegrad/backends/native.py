"""Native calls: a compiled kernel entered as a CPython function object, no ctypes on the way.

``entry(module, n_in, n_out, single)`` adds to a kernel's LLVM module a ``METH_FASTCALL``
C function. Called with exactly ``n_in`` Python floats it reads them, runs the kernel
and returns a float (``single``) or a tuple of floats; anything else (another count,
ints, numpy scalars, Values, tracers) goes to a Python callable, the general path.
``rows_entry`` is vmap's: 1-D float64 arrays in, new arrays out, through the kernel's
row loop ``k_rows`` (a module of its own, one per signature). ``function(address,
fallback, *owners)`` makes the function object with ``PyCFunction_NewEx``; what it needs
(the machine code, its method table) lives as long as it does.

>>> import tracegrad as tg
>>> from tracegrad.backends import llvm
>>> kernel = llvm.compile(tg.trace(lambda x, y: x * y, 1.0, 1.0))
>>> f = kernel.native(single=True, fallback=lambda *a: "general path")
>>> f(2.0, 3.0), f(2, 3.0), f(1.0)
(6.0, 'general path', 'general path')
"""
import ctypes
import functools

from . import elf
from .llvm_ir import Value, integer

_API = ("PyFloat_FromDouble", "PyTuple_New", "PyTuple_SetItem", "PyTuple_GetItem", "PyObject_Vectorcall",
        "Py_DecRef", "PyLong_AsVoidPtr")
_TYPE_AT = object.__basicsize__ - 8   # where an object's type pointer sits (last field of its header)
_FLOAT_AT = float.__basicsize__ - 8   # where a float's value sits
METH_FASTCALL = 0x0080
# an ndarray's fields (numpy's PyArrayObject_fields, the same in numpy 1 and 2): data, nd,
# dimensions, strides, descr, flags
_ARRAY_DATA, _ARRAY_ND, _ARRAY_DIMS, _ARRAY_STRIDES, _ARRAY_DESCR, _ARRAY_FLAGS = 16, 24, 32, 40, 56, 64
_NPY_DOUBLE, _NPY_ALIGNED = 12, 0x100
_NULL = Value("null", "ptr")


class _MethodDef(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("meth", ctypes.c_void_p), ("flags", ctypes.c_int),
                ("doc", ctypes.c_char_p)]


def _register():
    """Make the CPython C API that entries call resolvable in loaded code (once)."""
    api = ctypes.pythonapi
    for name in _API:
        elf.add_symbol(name, ctypes.cast(getattr(api, name), ctypes.c_void_p).value)
    elf.add_symbol("PyFloat_Type", ctypes.addressof(ctypes.c_char.in_dll(api, "PyFloat_Type")))


@functools.lru_cache(maxsize=None)
def register_numpy():
    """``PyArray_New`` and ``PyArray_Type`` from numpy's C API table (their indices are fixed in its ABI),
    for ``rows_entry`` (once; imports numpy)."""
    import numpy
    core = getattr(numpy, "_core", None) or numpy.core
    api = ctypes.pythonapi
    api.PyCapsule_GetPointer.restype, api.PyCapsule_GetPointer.argtypes = ctypes.c_void_p, [ctypes.py_object,
                                                                                              ctypes.c_char_p]
    table = ctypes.cast(api.PyCapsule_GetPointer(core._multiarray_umath._ARRAY_API, None),
                        ctypes.POINTER(ctypes.c_void_p))
    elf.add_symbol("PyArray_Type", table[2])
    elf.add_symbol("PyArray_New", table[93])


_register()
_new_function = ctypes.pythonapi.PyCFunction_NewEx
_new_function.restype = ctypes.py_object
_new_function.argtypes = [ctypes.c_void_p, ctypes.py_object, ctypes.py_object]


def entry(module, name, n_in, n_out, single):
    """Define ``ptr @name(ptr self, ptr args, i64 nargs)``: ``self`` is a tuple whose item 0 is the
    general path; ``@k(ptr in, ptr out)`` must be in ``module`` (one output if ``single``)."""
    fn = module.function(name, "ptr", [("ptr", "self"), ("ptr", "args"), ("i64", "nargs")])
    owner, args, nargs = fn.params
    x, y = fn.alloca(f"[{max(n_in, 1)} x double]", "x"), fn.alloca(f"[{max(n_out, 1)} x double]", "y")
    general, float_type = fn.fresh("general"), module.external("PyFloat_Type")
    ok = fn.fresh("count")
    fn.branch(ok, fn.icmp("eq", nargs, integer(n_in)), general)
    fn.label(ok)
    with fn.loop(n_in, name="a") as i:  # loops, not one block per argument: the entry stays small
        obj = fn.load("ptr", fn.gep("ptr", args, i))
        ok = fn.fresh("float")
        fn.branch(ok, fn.icmp("eq", fn.load("ptr", fn.gep("i8", obj, _TYPE_AT)), float_type), general)
        fn.label(ok)
        fn.store(fn.load("double", fn.gep("i8", obj, _FLOAT_AT)), fn.gep("double", x, i))
    fn.call("k", "void", [x, y], declare=False)
    if single:
        fn.ret(fn.call("PyFloat_FromDouble", "ptr", [fn.load("double", y)]))
    else:
        result = fn.call("PyTuple_New", "ptr", [integer(n_out)])
        with fn.loop(n_out, name="o") as k:  # a NULL (no memory) leaves the error set: the tuple reports it
            value = fn.call("PyFloat_FromDouble", "ptr", [fn.load("double", fn.gep("double", y, k))])
            fn.call("PyTuple_SetItem", "i32", [result, k, value])
        fn.ret(result)
    fn.label(general)
    call = fn.call("PyTuple_GetItem", "ptr", [owner, integer(0)])
    fn.ret(fn.call("PyObject_Vectorcall", "ptr", [call, args, nargs, _NULL]))


def function(address, fallback, *owners):
    """A builtin function object running the entry at ``address``; its ``self`` is the tuple
    ``(fallback, *owners, method table)``, which keeps them alive."""
    table = _MethodDef(b"kernel", address, METH_FASTCALL, None)
    return _new_function(ctypes.addressof(table), (fallback, *owners, table), None)



def rows_entry(module, name, axes, n_out, single, max_rows):
    """Define ``ptr @name(ptr self, ptr args, i64 nargs)``, vmap's call on small arrays.

    Argument ``j`` is a 1-D ``numpy.ndarray`` of dtype ``self[2]`` (float64), aligned, of any
    stride (``axes[j] == 0``), or a Python float (``None``). With equal lengths ``n``,
    ``1 <= n < max_rows``, it makes the outputs (new float64 arrays, ``PyArray_New``), runs
    the kernel's ``k_rows`` (address in the int ``self[1]``) over them and returns the one
    array (``single``) or a tuple. Anything else calls the general path ``self[0]``.
    """
    fn = module.function(name, "ptr", [("ptr", "self"), ("ptr", "args"), ("i64", "nargs")])
    owner, args, nargs = fn.params
    n_in = len(axes)
    ins, outs = fn.alloca(f"[{n_in} x ptr]", "ins"), fn.alloca(f"[{n_out} x ptr]", "outs")
    istr, ostr = fn.alloca(f"[{n_in} x i64]", "istr"), fn.alloca(f"[{n_out} x i64]", "ostr")
    consts, objs = fn.alloca(f"[{n_in} x double]", "consts"), fn.alloca(f"[{n_out} x ptr]", "objs")
    general, n = fn.fresh("general"), None
    float_type, array_type = module.external("PyFloat_Type"), module.external("PyArray_Type")

    def check(cond):
        ok = fn.fresh("ok")
        fn.branch(ok, cond, general)
        fn.label(ok)

    def field(type, obj, offset):
        return fn.load(type, fn.gep("i8", obj, offset))
    check(fn.icmp("eq", nargs, integer(n_in)))
    dtype = fn.call("PyTuple_GetItem", "ptr", [owner, integer(2)])
    for j in range(n_in):
        obj = fn.load("ptr", fn.gep("ptr", args, j))
        if axes[j] is None:
            check(fn.icmp("eq", field("ptr", obj, _TYPE_AT), float_type))
            fn.store(field("double", obj, _FLOAT_AT), fn.gep("double", consts, j))
            fn.store(fn.gep("double", consts, j), fn.gep("ptr", ins, j))
            fn.store(integer(0), fn.gep("i64", istr, j))
            continue
        check(fn.icmp("eq", field("ptr", obj, _TYPE_AT), array_type))
        aligned = fn.binop("and", field("i32", obj, _ARRAY_FLAGS), integer(_NPY_ALIGNED, "i32"))
        check(fn.binop("and", fn.binop("and", fn.icmp("eq", field("i32", obj, _ARRAY_ND), integer(1, "i32")),
                                       fn.icmp("eq", field("ptr", obj, _ARRAY_DESCR), dtype)),
                       fn.icmp("ne", aligned, integer(0, "i32"))))
        stride = fn.load("i64", field("ptr", obj, _ARRAY_STRIDES))
        check(fn.icmp("eq", fn.binop("srem", stride, integer(8)), integer(0)))
        rows = fn.load("i64", field("ptr", obj, _ARRAY_DIMS))
        if n is None:
            n = rows
        else:
            check(fn.icmp("eq", rows, n))
        fn.store(field("ptr", obj, _ARRAY_DATA), fn.gep("ptr", ins, j))
        fn.store(fn.binop("sdiv", stride, integer(8)), fn.gep("i64", istr, j))
    check(fn.icmp("ult", fn.binop("sub", n, integer(1)), integer(max_rows - 1)))
    dims, failed = fn.alloca("[1 x i64]", "dims"), fn.fresh("failed")
    fn.store(n, dims)
    for k in range(n_out):
        fn.store(_NULL, fn.gep("ptr", objs, k))
    for k in range(n_out):
        out = fn.call("PyArray_New", "ptr", [array_type, integer(1, "i32"), dims, integer(_NPY_DOUBLE, "i32"),
                                             _NULL, _NULL, integer(0, "i32"), integer(0, "i32"), _NULL])
        fn.store(out, fn.gep("ptr", objs, k))
        ok = fn.fresh("made")
        fn.branch(ok, fn.icmp("ne", out, _NULL), failed)
        fn.label(ok)
        fn.store(field("ptr", out, _ARRAY_DATA), fn.gep("ptr", outs, k))
        fn.store(integer(1), fn.gep("i64", ostr, k))
    rows_fn = fn.call("PyLong_AsVoidPtr", "ptr", [fn.call("PyTuple_GetItem", "ptr", [owner, integer(1)])])
    fn.emit(f"call void {rows_fn.ref}(ptr {ins.ref}, ptr {istr.ref}, ptr {outs.ref}, ptr {ostr.ref}, "
            f"i64 0, {n})")
    if single:
        fn.ret(fn.load("ptr", objs))
    else:
        result = fn.call("PyTuple_New", "ptr", [integer(n_out)])
        made = fn.fresh("tuple")
        fn.branch(made, fn.icmp("ne", result, _NULL), failed)
        fn.label(made)
        for k in range(n_out):
            fn.call("PyTuple_SetItem", "i32", [result, integer(k), fn.load("ptr", fn.gep("ptr", objs, k))])
        fn.ret(result)
    fn.label(failed)  # no memory: the error is set; drop what was made
    for k in range(n_out):
        fn.call("Py_DecRef", "void", [fn.load("ptr", fn.gep("ptr", objs, k))])
    fn.ret(_NULL)
    fn.label(general)
    call = fn.call("PyTuple_GetItem", "ptr", [owner, integer(0)])
    fn.ret(fn.call("PyObject_Vectorcall", "ptr", [call, args, nargs, _NULL]))
