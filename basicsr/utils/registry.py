"""Lazy registries: a ``type:`` name resolves to the module that defines it on first use.

Each registry knows a package and a file suffix (``basicsr.archs`` + ``_arch.py``). Instead of importing
every module up front (one broken optional module would break them all), the registry reads the source
of those modules with :mod:`ast`, finds the names decorated with ``@<REGISTRY>.register()`` and imports a
module only when one of its names is requested. Import errors surface then, chained to the request.
"""
from __future__ import annotations

import ast
import difflib
import importlib
import inspect
import pkgutil
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple


class RegistryError(KeyError):
    """Raised for an unknown or unimportable registry name (a KeyError that prints its message)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ''


class Registry:
    """Name -> class/function mapping with lazy discovery.

    Args:
        name: human name used in messages ('arch', 'loss', ...).
        package: dotted package scanned for registrations, e.g. ``'basicsr.archs'``.
        suffix: only modules whose file name ends with this are scanned ('' = every module).
        var: the module-level name the registry is bound to (``ARCH_REGISTRY``); the scan only counts
            decorators on that name.
    """

    def __init__(self, name: str, package: Optional[str] = None, suffix: str = '',
                 var: Optional[str] = None) -> None:
        self._name = name
        self._var = var
        self._package = package
        self._suffix = suffix
        self._obj_map: Dict[str, Any] = {}
        self._index: Optional[Dict[str, str]] = None  # name -> module, from the source scan

    # ------------------------------------------------------------------ registration
    def _do_register(self, name: str, obj: Any) -> None:
        existing = self._obj_map.get(name)
        if existing is not None and existing is not obj and not _same_definition(existing, obj):
            where = getattr(existing, '__module__', '?')
            raise RegistryError(f"'{name}' is already registered in the {self._name} registry (by {where})")
        self._obj_map[name] = obj

    def register(self, obj: Any = None, name: Optional[str] = None, suffix: Optional[str] = None) -> Any:
        """Register ``obj`` under ``name`` (default: its ``__name__``), ``<name>_<suffix>`` with ``suffix``;
        usable as ``@REG.register()``. A suffixed name is also found by its plain name (BasicSR's
        ``_basicsr`` fallback) unless something else registers the plain name."""
        def full(o: Any) -> str:
            base = name or o.__name__
            return f'{base}_{suffix}' if suffix else base
        if obj is None:
            def deco(func_or_class: Any) -> Any:
                self._do_register(full(func_or_class), func_or_class)
                return func_or_class
            return deco
        self._do_register(full(obj), obj)
        return obj

    # ------------------------------------------------------------------ discovery
    def _module_files(self) -> Iterable[tuple]:
        if self._package is None:
            return []
        pkg = importlib.import_module(self._package)
        out = []
        for path in getattr(pkg, '__path__', []):
            for info in pkgutil.iter_modules([path]):
                if info.ispkg or not info.name.endswith(self._suffix):
                    continue
                out.append((f'{self._package}.{info.name}', Path(path) / f'{info.name}.py'))
        return out

    def _scan(self) -> Dict[str, str]:
        if self._index is not None:
            return self._index
        index: Dict[str, str] = {}
        for mod_name, file in self._module_files():
            try:
                tree = ast.parse(file.read_text(encoding='utf-8'), filename=str(file))
            except (OSError, SyntaxError):
                # still indexable by name: importing it later raises the real error
                index.setdefault(f'<unparsable:{mod_name}>', mod_name)
                continue
            for node in ast.walk(tree):
                if not isinstance(node, (ast.ClassDef, ast.FunctionDef)):
                    continue
                for deco in node.decorator_list:
                    reg_name = _registered_name(deco, node.name, self._var)
                    if reg_name is not None:
                        index[reg_name] = mod_name
        self._index = index
        return index

    def _load(self, name: str) -> None:
        mod_name = self._scan().get(name)
        if mod_name is None:
            return
        try:
            importlib.import_module(mod_name)
        except Exception as exc:  # noqa: BLE001 - re-raised with context, original chained
            raise RegistryError(f"{self._name} type '{name}' is defined in module '{mod_name}', which failed "
                                f"to import: {type(exc).__name__}: {exc}") from exc

    # ------------------------------------------------------------------ lookup
    def get(self, name: str) -> Any:
        """Return the object registered as ``name``, importing its module if needed."""
        if name not in self._obj_map:
            self._load(name)
        if name not in self._obj_map and f'{name}_basicsr' in self:
            return self.get(f'{name}_basicsr')
        if name not in self._obj_map:
            close = difflib.get_close_matches(name, self.keys(), n=5, cutoff=0.4)
            hint = f"; closest: {', '.join(close)}" if close else ''
            broken = self._unreadable_modules()
            if broken:
                hint += f"; these modules could not be read, so their types are unknown: {'; '.join(broken)}"
            raise RegistryError(f"no {self._name} type '{name}' is registered{hint} "
                                f"(all: {', '.join(sorted(self.keys()))}); a type defined outside basicsr "
                                "is found once its module is imported: list it under 'imports:' in the "
                                "option file or pass --import")
        return self._obj_map[name]

    def _unreadable_modules(self) -> List[str]:
        """'module (the error)' for each scanned module whose source does not parse (its names are unknown)."""
        out = []
        for key, mod_name in self._scan().items():
            if key.startswith('<unparsable:'):
                try:
                    importlib.import_module(mod_name)
                except Exception as exc:  # noqa: BLE001 - reported as the cause
                    out.append(f'{mod_name} ({type(exc).__name__}: {exc})')
        return out

    def keys(self) -> List[str]:
        """All names known, registered or discoverable, without importing anything."""
        names = set(self._obj_map) | {k for k in self._scan() if not k.startswith('<unparsable:')}
        return sorted(names)

    def __contains__(self, name: str) -> bool:
        return name in self._obj_map or name in self._scan()

    def __iter__(self) -> Iterator[Tuple[str, Any]]:
        """(name, object) of the registrations made so far (BasicSR's iteration; nothing is imported)."""
        return iter(list(self._obj_map.items()))

    def is_plugin(self, name: str) -> bool:
        """True when ``name`` was registered by a module outside the ``basicsr`` package."""
        if name not in self._obj_map and name not in self._scan():
            return False
        obj = self.get(name)
        return not getattr(obj, '__module__', '').split('.')[0] == 'basicsr'

    def __repr__(self) -> str:
        return f'Registry({self._name!r}, package={self._package!r}, {len(self.keys())} names)'

    # ------------------------------------------------------------------ building
    def build(self, opt: Dict[str, Any], **extra: Any) -> Any:
        """Instantiate ``opt['type']`` with the remaining keys as keyword arguments.

        Unknown keyword arguments raise a ``TypeError`` that lists the accepted ones.
        """
        if not isinstance(opt, dict) or 'type' not in opt:
            raise ValueError(f"a {self._name} option must be a mapping with a 'type' key, got {opt!r}")
        kwargs = {k: v for k, v in opt.items() if k != 'type'}
        kwargs.update(extra)
        cls = self.get(opt['type'])
        check_kwargs(cls, kwargs, f"{self._name} '{opt['type']}'")
        return cls(**kwargs)


def import_modules(modules: Optional[Sequence[str]], source: str = "option key 'imports'") -> List[str]:
    """Import plug-in modules so their ``@X_REGISTRY.register()`` decorators run (``imports:`` / ``--import``).

    Args:
        modules: dotted module names (``my_method.archs``); a single string is one module.
        source: where the names came from, named in errors (the option file and key).
    Returns:
        The names imported.
    """
    if not modules:
        return []
    names = [modules] if isinstance(modules, str) else list(modules)
    for name in names:
        if not isinstance(name, str) or not name:
            raise RegistryError(f'{source}: expected dotted module names, got {name!r}')
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise RegistryError(f"{source}: cannot import plug-in module '{name}': {exc}; it must be importable "
                                '(installed, or on PYTHONPATH / in the working directory)') from exc
    return names


def check_kwargs(fn: Callable, kwargs: Dict[str, Any], what: str) -> None:
    """Raise ``TypeError`` naming the unknown keys and the accepted ones if ``fn`` cannot take ``kwargs``."""
    target = fn.__init__ if inspect.isclass(fn) else fn
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return
    params = [p for p in sig.parameters.values() if p.name != 'self']
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    accepted = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = [k for k in kwargs if k not in accepted]
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k, accepted, n=1)
            hints.append(f"'{k}'" + (f" (did you mean '{close[0]}'?)" if close else ''))
        raise TypeError(f"{what} got unknown argument(s) {', '.join(hints)}; accepted: {', '.join(accepted)}")


def _same_definition(a: Any, b: Any) -> bool:
    """Whether two objects are one definition loaded twice (the same file imported under two module names,
    e.g. ``tests.plugin_method.archs`` and ``plugin_method.archs``); the later one then replaces the first."""
    try:
        return a.__qualname__ == b.__qualname__ and inspect.getsourcefile(a) == inspect.getsourcefile(b)
    except (AttributeError, TypeError):
        return False


def _registered_name(deco: ast.expr, default: str, var: Optional[str]) -> Optional[str]:
    """Name registered by a decorator node like ``@X_REGISTRY.register()`` / ``register(name='Y')``."""
    call = deco if isinstance(deco, ast.Call) else None
    func = call.func if call is not None else deco
    if not (isinstance(func, ast.Attribute) and func.attr == 'register'):
        return None
    if var is not None and not (isinstance(func.value, ast.Name) and func.value.id == var):
        return None
    if call is not None:
        keywords = {kw.arg: kw.value.value for kw in call.keywords if isinstance(kw.value, ast.Constant)}
        name = keywords.get('name', default)
        return f"{name}_{keywords['suffix']}" if keywords.get('suffix') else name
    return default


ARCH_REGISTRY = Registry('arch', 'basicsr.archs', '_arch', 'ARCH_REGISTRY')
MODEL_REGISTRY = Registry('model', 'basicsr.models', '_model', 'MODEL_REGISTRY')
LOSS_REGISTRY = Registry('loss', 'basicsr.losses', '', 'LOSS_REGISTRY')
DATASET_REGISTRY = Registry('dataset', 'basicsr.data', '', 'DATASET_REGISTRY')
DEGRADATION_REGISTRY = Registry('degradation', 'basicsr.data', '', 'DEGRADATION_REGISTRY')
METRIC_REGISTRY = Registry('metric', 'basicsr.metrics', '', 'METRIC_REGISTRY')
HOOK_REGISTRY = Registry('hook', 'basicsr.engine', '', 'HOOK_REGISTRY')
SCHEDULER_REGISTRY = Registry('scheduler', 'basicsr.engine', '', 'SCHEDULER_REGISTRY')
ENSEMBLE_REGISTRY = Registry('ensembler', 'basicsr.ensemble', '', 'ENSEMBLE_REGISTRY')
TLC_CONVERTER_REGISTRY = Registry('TLC converter', 'basicsr.inference', '', 'TLC_CONVERTER_REGISTRY')
