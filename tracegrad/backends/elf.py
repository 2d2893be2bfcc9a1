"""Load the object files LLVM writes for this process's kernels without LLVM: x86-64 Linux, ELF.

Loading a cached kernel through llvmlite's MCJIT costs the import of llvmlite and its
initialisation (about 40 ms) before any code runs; this loader is a few hundred lines
of Python. It places the allocated sections of a relocatable object (``ET_REL``) in fresh
pages, applies its relocations against those sections and the symbols registered
with ``add_symbol`` (else this process's own, as MCJIT resolves them), then makes the code
pages read-and-execute and the data pages read-only (or read-write): never writable and
executable at once. ``.eh_frame`` is not loaded (the kernels are ``nounwind``).

It accepts only what it understands: a little-endian 64-bit x86-64 ``ET_REL`` object,
``PROGBITS`` / ``NOBITS`` sections, relocations ``R_X86_64_64``, ``PC32``, ``PLT32``,
``PC64``, ``32`` and ``32S`` with results in range, symbols it can resolve. Anything else
(another machine, a TLS or GOT relocation, an unresolved name, no executable memory) gives
``None``, and the caller loads the object with MCJIT as before. The machine code itself
was compiled for this host (the cache key names the target), so nothing here chooses
instructions.

>>> import tracegrad as tg
>>> from tracegrad.backends import llvm
>>> image = load(llvm.object_code(llvm.source(tg.trace(lambda x: tg.sin(x) * 2.0, 0.0))))
>>> image is None or image.get_function_address("k") > 0
True
"""
import ctypes
import os
import struct
import sys

_SYMBOLS = {}          # name -> address: the C functions and data that compiled code calls by name
_listeners = []        # called with (name, address) for each symbol added: llvmlite's table, once loaded

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_SHF_WRITE, _SHF_ALLOC, _SHF_EXECINSTR, _SHF_TLS = 0x1, 0x2, 0x4, 0x400
_SHT_PROGBITS, _SHT_SYMTAB, _SHT_RELA, _SHT_NOBITS, _SHT_REL = 1, 2, 4, 8, 9
_SHT_X86_64_UNWIND = 0x70000001
_SHN_UNDEF, _SHN_ABS, _SHN_COMMON = 0, 0xFFF1, 0xFFF2
_STB_WEAK = 2
_R_64, _R_PC32, _R_32, _R_32S, _R_PLT32, _R_PC64 = 1, 2, 10, 11, 4, 24
_PROT_READ, _PROT_WRITE, _PROT_EXEC = 1, 2, 4
_MAP_PRIVATE, _MAP_ANONYMOUS = 0x02, 0x20
_MAP_FAILED = ctypes.c_void_p(-1).value
_MAX_SIZE = 1 << 28    # bytes of sections: far above any kernel (a 10,000-input gradient's is 3 MB)


def add_symbol(name, address):
    """Make ``name`` resolve to ``address`` in code loaded from now on (here and in llvmlite's JIT)."""
    _SYMBOLS[name] = address
    for listener in _listeners:
        listener(name, address)


def symbols():
    """The registered symbols, ``{name: address}`` (a copy)."""
    return dict(_SYMBOLS)


def on_symbol(listener):
    """Call ``listener(name, address)`` for every symbol registered, now and later."""
    _listeners.append(listener)
    for name, address in list(_SYMBOLS.items()):
        listener(name, address)


def supported():
    """Whether this process can use the loader at all: Linux on x86-64."""
    return sys.platform.startswith("linux") and os.uname().machine == "x86_64" and _libc() is not None


_LIBC = []


def _libc():
    if not _LIBC:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.mmap.restype, libc.mmap.argtypes = ctypes.c_void_p, [
                ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
            libc.mprotect.restype, libc.mprotect.argtypes = ctypes.c_int, [ctypes.c_void_p, ctypes.c_size_t,
                                                                         ctypes.c_int]
            libc.munmap.restype, libc.munmap.argtypes = ctypes.c_int, [ctypes.c_void_p, ctypes.c_size_t]
        except (OSError, AttributeError):
            libc = None
        _LIBC.append(libc)
    return _LIBC[0]


_process = []


def _resolve(name):
    """The address of an undefined symbol: a registered one, else this process's (``dlsym``), else None."""
    address = _SYMBOLS.get(name)
    if address is not None:
        return address
    if not _process:
        _process.append(ctypes.CDLL(None))
    try:
        return ctypes.cast(_process[0][name], ctypes.c_void_p).value
    except (AttributeError, ValueError):
        return None


class Image:
    """Loaded code: ``get_function_address(name)`` as MCJIT's engine has it (0 if ``name`` is not
    defined). The pages are unmapped when the image is dropped: keep it while its code may run.
    Made by ``load`` only; a copy is the image itself (the code never changes), and an image
    does not pickle (its addresses mean nothing in another process)."""

    def __init__(self, base, size, functions, _owner=None):
        if _owner is not _LOADER:
            raise TypeError("an Image is made by tracegrad.backends.elf.load(object bytes)")
        self._base, self._size, self._functions = base, size, functions

    def get_function_address(self, name):
        return self._functions.get(name, 0)

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        raise TypeError("loaded machine code does not pickle: compile it again in the other process")

    def __del__(self):
        libc = _LIBC[0] if _LIBC else None
        if libc is not None and getattr(self, "_base", 0):
            libc.munmap(self._base, self._size)
            self._base = 0


_LOADER = object()  # what only this module hands to Image


class _Unsupported(Exception):
    pass


def load(obj):
    """``obj`` (the bytes of an object file) loaded into executable memory: an ``Image``, or None
    where this loader does not apply (see the module docstring)."""
    if not supported():
        return None
    if not isinstance(obj, (bytes, bytearray, memoryview)):
        return None
    try:
        return _load(bytes(obj))
    except (_Unsupported, struct.error, IndexError, ValueError, OverflowError, MemoryError):
        return None


def _load(data):
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:  # ELFCLASS64, little-endian
        raise _Unsupported("not a 64-bit little-endian ELF object")
    (e_type, e_machine, _, _, _, e_shoff, _, _, _, _, e_shentsize, e_shnum, _) = struct.unpack_from(
        "<HHIQQQIHHHHHH", data, 16)
    if e_type != 1 or e_machine != 62 or e_shentsize != 64 or e_shnum == 0:  # ET_REL, EM_X86_64
        raise _Unsupported("not an x86-64 relocatable object")
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, e_shoff + 64 * i) for i in range(e_shnum)]
    for _, kind, _, _, offset, size, _, _, _, _ in sections:
        if kind != _SHT_NOBITS and offset + size > len(data):
            raise _Unsupported("a section lies outside the file")

    # place the allocated sections: code first, then data, each part starting on a page
    placed = {}
    parts = ([], [], [])  # executable, read-only, writable
    for i, (_, kind, flags, _, _, size, _, _, align, _) in enumerate(sections):
        if not flags & _SHF_ALLOC or kind == _SHT_X86_64_UNWIND or size == 0:
            continue
        if flags & _SHF_TLS or kind not in (_SHT_PROGBITS, _SHT_NOBITS) or flags & _SHF_EXECINSTR and (
                flags & _SHF_WRITE or kind == _SHT_NOBITS):
            raise _Unsupported(f"section type {kind:#x}, flags {flags:#x}")
        parts[0 if flags & _SHF_EXECINSTR else 2 if flags & _SHF_WRITE else 1].append(i)
    offset, bounds = 0, []
    for part in parts:
        start = offset
        for i in part:
            align = max(sections[i][8], 1)
            if align > _PAGE:  # the image's base is only page-aligned
                raise _Unsupported(f"a section aligned to {align} bytes")
            offset = -(-offset // align) * align
            placed[i] = offset
            offset += sections[i][5]
        offset = -(-offset // _PAGE) * _PAGE
        bounds.append((start, offset))
    if not parts[0] or offset > _MAX_SIZE:
        raise _Unsupported("no code, or sizes no kernel has")
    names = _names(data, sections)
    for i in list(placed):  # unwind tables: not loaded (nounwind kernels)
        if names(sections[i]) == b".eh_frame":
            del placed[i]
    image = bytearray(offset)
    for i, at in placed.items():
        _, kind, _, _, start, size, _, _, _, _ = sections[i]
        if kind == _SHT_PROGBITS:
            image[at:at + size] = data[start:start + size]

    libc = _libc()
    base = libc.mmap(None, offset, _PROT_READ | _PROT_WRITE, _MAP_PRIVATE | _MAP_ANONYMOUS, -1, 0)
    if base in (None, _MAP_FAILED):
        raise _Unsupported("no memory")
    try:
        functions = _link(data, sections, placed, base, image)
        ctypes.memmove(base, bytes(image), offset)
        for (start, stop), prot in zip(bounds, (_PROT_READ | _PROT_EXEC, _PROT_READ, _PROT_READ | _PROT_WRITE)):
            if stop > start and libc.mprotect(base + start, stop - start, prot) != 0:
                raise _Unsupported("the pages cannot be made executable")  # e.g. SELinux's execmem
    except BaseException:
        libc.munmap(base, offset)
        raise
    return Image(base, offset, functions, _LOADER)


def _names(data, sections):
    """A reader of section names."""
    e_shstrndx = struct.unpack_from("<H", data, 62)[0]
    table = sections[e_shstrndx][4] if e_shstrndx < len(sections) else None

    def name(section):
        if table is None:
            return b""
        start = table + section[0]
        return data[start:data.index(b"\0", start)]
    return name


def _link(data, sections, placed, base, image):
    """Apply the relocations of the placed sections in ``image`` (to be mapped at ``base``);
    returns the addresses of the defined global functions, by name."""
    symtabs = [i for i, s in enumerate(sections) if s[1] == _SHT_SYMTAB]
    if len(symtabs) != 1:
        raise _Unsupported("not one symbol table")
    _, _, _, _, start, size, link, _, _, entsize = sections[symtabs[0]]
    if entsize != 24:
        raise _Unsupported("symbol entry size")
    strings = sections[link][4]
    addresses, functions = [], {}
    for name_at, info, _, shndx, value, _ in struct.iter_unpack("<IBBHQQ", data[start:start + size]):
        name = data[strings + name_at:data.index(b"\0", strings + name_at)].decode()
        if shndx == _SHN_UNDEF:
            if not name:
                addresses.append(0)
                continue
            address = _resolve(name)
            if address is None:
                if info >> 4 == _STB_WEAK:
                    address = 0
                else:
                    raise _Unsupported(f"unresolved symbol {name}")
        elif shndx == _SHN_ABS:
            address = value
        elif shndx in placed:
            address = base + placed[shndx] + value
        else:  # common, or in a section not loaded: an error only if a relocation uses it
            address = None
        addresses.append(address)
        if address and info >> 4 and info & 0xF == 2 and shndx in placed:  # a global or weak STT_FUNC
            functions[name] = address
    for i, (_, kind, _, _, start, size, link, target, _, entsize) in enumerate(sections):
        if kind == _SHT_REL and target in placed:
            raise _Unsupported("REL relocations")
        if kind != _SHT_RELA or target not in placed:
            continue
        if link != symtabs[0] or entsize != 24:
            raise _Unsupported("relocation table")
        at = placed[target]
        limit = sections[target][5]
        for offset, info, addend in struct.iter_unpack("<QQq", data[start:start + size]):
            kind_r, symbol = info & 0xFFFFFFFF, info >> 32
            s = addresses[symbol]
            if s is None:
                raise _Unsupported("a relocation against a section that is not loaded")
            where = at + offset
            value = s + addend
            if kind_r == _R_64:
                width, fmt = 8, "<Q"
                value &= 0xFFFFFFFFFFFFFFFF
            elif kind_r == _R_PC64:
                width, fmt = 8, "<Q"
                value = (value - (base + where)) & 0xFFFFFFFFFFFFFFFF
            elif kind_r in (_R_PC32, _R_PLT32):
                width, fmt = 4, "<i"
                value -= base + where
            elif kind_r == _R_32:
                width, fmt = 4, "<I"
            elif kind_r == _R_32S:
                width, fmt = 4, "<i"
            else:
                raise _Unsupported(f"relocation type {kind_r}")
            if offset + width > limit:
                raise _Unsupported("a relocation outside its section")
            struct.pack_into(fmt, image, where, value)  # struct.error (out of range): unsupported
    return functions
