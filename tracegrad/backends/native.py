"""Native calls: a compiled kernel entered as a CPython function object, no ctypes on the way.

``entry(module, n_in, n_out, single)`` adds to a kernel's LLVM module a ``METH_FASTCALL``
C function. Called with exactly ``n_in`` Python floats it reads them, runs the kernel
and returns a float (``single``) or a tuple of floats; anything else (another count,
ints, numpy scalars, Values, tracers) goes to a Python callable, the general path.
``function(address, fallback, owner)`` makes the function object with
``PyCFunction_NewEx``; what it needs (the machine code, its method table) lives as long
as it does.

>>> import tracegrad as tg
>>> from tracegrad.backends import llvm
>>> kernel = llvm.compile(tg.trace(lambda x, y: x * y, 1.0, 1.0))
>>> f = kernel.native(single=True, fallback=lambda *a: "general path")
>>> f(2.0, 3.0), f(2, 3.0), f(1.0)
(6.0, 'general path', 'general path')
"""
import ctypes

import llvmlite.binding as llvm

from .llvm_ir import Value, integer

_API = ("PyFloat_FromDouble", "PyTuple_New", "PyTuple_SetItem", "PyTuple_GetItem", "PyObject_Vectorcall",
        "Py_DecRef")
_TYPE_AT = object.__basicsize__ - 8   # where an object's type pointer sits (last field of its header)
_FLOAT_AT = float.__basicsize__ - 8   # where a float's value sits
METH_FASTCALL = 0x0080
_NULL = Value("null", "ptr")


class _MethodDef(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("meth", ctypes.c_void_p), ("flags", ctypes.c_int),
                ("doc", ctypes.c_char_p)]


def _register():
    """Make the CPython C API that entries call resolvable in the JIT (once)."""
    api = ctypes.pythonapi
    for name in _API:
        llvm.add_symbol(name, ctypes.cast(getattr(api, name), ctypes.c_void_p).value)
    llvm.add_symbol("PyFloat_Type", ctypes.addressof(ctypes.c_char.in_dll(api, "PyFloat_Type")))


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


def function(address, fallback, owner):
    """A builtin function object running the entry at ``address``; it keeps ``owner`` alive."""
    table = _MethodDef(b"kernel", address, METH_FASTCALL, None)
    return _new_function(ctypes.addressof(table), (fallback, owner, table), None)
