"""Save a model to a file and load it back: ``save(model, path)``, ``load(path)``.

A file holds the model's ``state_dict()``: the module's class name, its ``config`` (the
constructor's arguments: sizes and activations) and its parameters, as JSON (``.json``) or
as a numpy archive (``.npz``: the parameters a float64 array, the rest a JSON string).
Nothing is pickled, and ``load`` builds only the package's modules (``MLP``, ``Layer``,
``Neuron`` and their Tanh forms) from checked sizes: a file that is not one, or was altered,
is a ValueError.

>>> import os, tempfile, tracegrad as tg
>>> model = tg.nn.MLP(2, [2, (2, "tanh")], seed=0)
>>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
>>> tg.nn.save(model, path)
>>> again = tg.nn.load(path)
>>> again
MLP of [Layer of [ReLUNeuron(2), ReLUNeuron(2)], Layer of [TanhNeuron(2), TanhNeuron(2)]]
>>> [p.data for p in again.parameters()] == [p.data for p in model.parameters()]
True
"""
import json
import os
import zipfile

import numpy as np

from .module import MLP, Layer, Module, Neuron, TanhMLP, TanhNeuron

FORMAT, VERSION = "tracegrad.nn", 1
MODULES = {cls.__name__: cls for cls in (MLP, TanhMLP, Layer, Neuron, TanhNeuron)}  # what load builds
_SUFFIXES = (".npz", ".json")


def _suffix(path):
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in _SUFFIXES:
        raise ValueError(f"a model file is .npz or .json, got {path!r:.200}")
    return path, suffix


def save(model, path):
    """Write ``model`` (its structure and parameters) to ``path``, a ``.npz`` or ``.json`` file.

    A model of your own Module class is saved too (``config`` None); ``load(path, model)``
    then loads its parameters into a model you build.
    """
    if not isinstance(model, Module):
        raise TypeError(f"save takes a tg.nn model (a Module), got {type(model).__name__}")
    path, suffix = _suffix(path)
    state = model.state_dict()
    header = {"format": FORMAT, "version": VERSION, "module": state["module"], "config": state["config"]}
    if suffix == ".json":
        try:
            text = json.dumps({**header, "parameters": state["parameters"]}, allow_nan=False)
        except ValueError:
            raise ValueError("the model has nan or inf parameters, which JSON cannot hold; "
                             "save it as .npz") from None
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        with open(path, "wb") as f:
            np.savez(f, header=np.array(json.dumps(header)), parameters=np.array(state["parameters"], dtype=float))


def load(path, model=None):
    """The model saved in ``path`` (``.npz`` or ``.json``), rebuilt from its structure; with
    ``model``, its parameters are loaded into that model (of the same structure), which is returned.

    A file that is not a tracegrad model file, or whose structure or parameter count was
    changed, is a ValueError; nothing in it is executed or unpickled.
    """
    path, suffix = _suffix(path)
    header, parameters = _read_json(path) if suffix == ".json" else _read_npz(path)
    if not (isinstance(header, dict) and set(header) == {"format", "version", "module", "config"}
            and header["format"] == FORMAT):
        raise ValueError(f"{path!r:.200} is not a tracegrad model file")
    if header["version"] != VERSION:
        raise ValueError(f"{path!r:.200} is a tracegrad model file of version {header['version']!r:.20}; "
                         f"this tracegrad reads version {VERSION}")
    state = {"module": header["module"], "config": header["config"], "parameters": parameters}
    if model is None:
        model = _build(header["module"], header["config"], len(parameters), path)
    elif not isinstance(model, Module):
        raise TypeError(f"load's model must be a tg.nn model (a Module), got {type(model).__name__}")
    model.load_state_dict(state)
    return model


def _read_json(path):
    with open(path, "rb") as f:
        data = _json(f.read(), path)
    if not isinstance(data, dict) or "parameters" not in data:
        raise ValueError(f"{path!r:.200} is not a tracegrad model file")
    parameters = data.pop("parameters")
    if not (isinstance(parameters, list)
            and all(type(p) in (int, float) for p in parameters)):  # json gives no bool subclass of int here
        raise ValueError(f"{path!r:.200}: the parameters must be a list of numbers")
    return data, [float(p) for p in parameters]


def _read_npz(path):
    try:
        archive = np.load(path, allow_pickle=False)  # an .npy file gives an array
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError
        with archive:
            if set(archive.files) != {"header", "parameters"}:
                raise ValueError
            header, parameters = archive["header"], archive["parameters"]
    except (ValueError, zipfile.BadZipFile, EOFError, KeyError):
        raise ValueError(f"{path!r:.200} is not a tracegrad model file "
                         "(.npz with a header and parameters)") from None
    if header.shape != () or header.dtype.kind != "U" or parameters.dtype != np.float64 or parameters.ndim != 1:
        raise ValueError(f"{path!r:.200} is not a tracegrad model file "
                         "(its arrays are not a header and parameters)")
    return _json(str(header), path), parameters.tolist()


def _json(text, path):
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:  # not UTF-8, not JSON, nested too deep
        raise ValueError(f"{path!r:.200} is not a tracegrad model file ({type(e).__name__}: {e})"[:400]) from None


def _build(module, config, count, path):
    """The module named ``module`` built from ``config``, once its sizes are checked to give ``count``
    parameters (nothing is allocated for a file that lies about them)."""
    cls = MODULES.get(module) if isinstance(module, str) else None
    keys = {"MLP": {"nin", "nouts"}, "TanhMLP": {"nin", "nouts"}, "Layer": {"nin", "nout", "activation"},
            "Neuron": {"nin", "activation"}, "TanhNeuron": {"nin"}}
    if cls is None or not isinstance(config, dict) or set(config) != keys[module]:
        raise ValueError(f"{path!r:.200} holds a {module!r:.60} with config {config!r:.200}, which "
                         f"tg.nn.load cannot build (it builds {', '.join(MODULES)}); build the model and "
                         "call tg.nn.load(path, model)")
    nouts = config.get("nouts", [[config.get("nout", 1), None]])
    if not (isinstance(nouts, list) and nouts and all(isinstance(n, list) and len(n) == 2 for n in nouts)):
        raise ValueError(f"{path!r:.200}: the layers of its config must be a list of [size, activation]")
    sizes = [config["nin"]] + [n[0] for n in nouts]
    if not all(type(n) is int and n >= 1 for n in sizes):
        raise ValueError(f"{path!r:.200}: its config's sizes must be positive ints, got {sizes!r:.200}")
    expected = sum((a + 1) * b for a, b in zip(sizes, sizes[1:]))
    if expected != count:
        raise ValueError(f"{path!r:.200}: a {module} of config {config!r:.200} has {expected} parameters, "
                         f"the file has {count}")
    try:
        return cls(**config, seed=0)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path!r:.200}: its config does not build a {module}: {e}") from None
