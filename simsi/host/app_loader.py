"""Loading the interface class (or factory) named by ``--app``."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from types import ModuleType
from typing import Any

from simsi.core.errors import ConfigError
from simsi.core.manager import InterfaceFactory


def load_factory(target: str) -> InterfaceFactory:
    """Import ``target`` and return the interface factory it names.

    ``target`` is ``package.module:Attribute`` (imported from ``sys.path``) or
    ``path/to/file.py:Attribute`` (loaded from that file). The attribute may be
    dotted, and must be callable with an instance id: a
    :class:`~simsi.core.interface.StableInterface` subclass or a function
    returning an interface object.

    Raises:
        ConfigError: the target is malformed, cannot be imported, or is not callable.
    """
    module_part, sep, attribute = target.rpartition(":")
    if not sep or not module_part or not attribute:
        raise ConfigError(
            f"--app / SIMSI_APP {target!r} is invalid: write 'package.module:Class' or "
            "'path/to/app.py:Class'"
        )
    module = _import(module_part, target)
    value: Any = module
    for name in attribute.split("."):
        try:
            value = getattr(value, name)
        except AttributeError:
            raise ConfigError(
                f"--app / SIMSI_APP {target!r}: module {module.__name__!r} has no attribute "
                f"{attribute!r}; check the name after ':'"
            ) from None
    if not callable(value):
        raise ConfigError(
            f"--app / SIMSI_APP {target!r} is a {type(value).__name__}, not a class or function; "
            "name a StableInterface subclass or a factory taking the instance id"
        )
    factory: InterfaceFactory = value
    return factory


def _import(module_part: str, target: str) -> ModuleType:
    if module_part.endswith(".py") or os.sep in module_part or "/" in module_part:
        return _import_file(module_part, target)
    try:
        return importlib.import_module(module_part)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_part.startswith(exc.name):
            raise ConfigError(
                f"--app / SIMSI_APP {target!r}: module {module_part!r} was not found; install "
                "it, add its folder to PYTHONPATH, or give a file path like 'app.py:Class'"
            ) from None
        raise ConfigError(
            f"--app / SIMSI_APP {target!r}: importing {module_part!r} failed: {exc}"
        ) from exc
    except Exception as exc:
        raise ConfigError(
            f"--app / SIMSI_APP {target!r}: importing {module_part!r} raised "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _import_file(path: str, target: str) -> ModuleType:
    if not os.path.isfile(path):
        raise ConfigError(
            f"--app / SIMSI_APP {target!r}: file {path!r} was not found (working directory "
            f"{os.getcwd()!r}); give an absolute path or a module name"
        )
    name = os.path.splitext(os.path.basename(path))[0]
    existing = sys.modules.get(name)
    if existing is not None:
        if os.path.abspath(getattr(existing, "__file__", "") or "") == os.path.abspath(path):
            return existing
        # Another module already has this name: load the file under a private one.
        name = f"_simsi_app_{name}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"--app / SIMSI_APP {target!r}: {path!r} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    # Registered before running so dataclasses and pickling can find the module by name.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ConfigError(
            f"--app / SIMSI_APP {target!r}: running {path!r} raised {type(exc).__name__}: {exc}"
        ) from exc
    return module
