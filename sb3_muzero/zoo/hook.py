"""Start-up hook that registers MuZero with rl-zoo3 when (and only when) rl-zoo3 is imported.

The build copies this file into site-packages as the top-level module ``sb3_muzero_zoo_hook``, next to
``sb3_muzero_zoo_hook.pth``, whose one line ``import sb3_muzero_zoo_hook; sb3_muzero_zoo_hook.install()``
Python's ``site`` runs at every start. :func:`install` only puts a finder at the front of ``sys.meta_path``:
it imports nothing but ``sys`` and ``os``, both already loaded by then (not even ``typing``: hence the
``object`` annotations). The finder ignores every module except the three rl-zoo3 modules in
:data:`WATCHED`; when one of those has been executed, it calls
:func:`sb3_muzero.zoo.registration.register_loaded`, which adds MuZero to what that module defines
(``ALGOS``, the Optuna samplers, the experiment manager's defaults).

The hook is idempotent (one finder however often :func:`install` runs, from the site-packages copy or from
this module), does nothing while rl-zoo3 is not imported or not installed, and is switched off by the
environment variable ``SB3_MUZERO_ZOO_HOOK=0``. A failed registration warns instead of breaking the import of
rl-zoo3; ``python -m sb3_muzero.train`` registers without any hook.
"""

import os
import sys

WATCHED = frozenset({"rl_zoo3.utils", "rl_zoo3.hyperparams_opt", "rl_zoo3.exp_manager"})
MARKER = "_sb3_muzero_zoo_hook"
DISABLE_VARIABLE = "SB3_MUZERO_ZOO_HOOK"


class _RegisteringLoader:
    """Wraps a module's loader: executes the module, then registers MuZero with what it defines."""

    def __init__(self, loader: object):
        self._loader = loader

    def create_module(self, spec: object) -> object:
        create = getattr(self._loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: object) -> None:
        self._loader.exec_module(module)
        _register(module.__name__)

    def __getattr__(self, name: str) -> object:  # get_source, get_data, is_package, ...: the wrapped loader's
        return getattr(self._loader, name)


class ZooRegistrationFinder:
    """A ``sys.meta_path`` finder that only answers for :data:`WATCHED`, with the other finders' spec."""

    _sb3_muzero_zoo_hook = True

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> object:
        if fullname not in WATCHED:
            return None
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            if getattr(finder, MARKER, False) or find_spec is None:
                continue
            spec = find_spec(fullname, path, target)
            if spec is not None:
                if hasattr(spec.loader, "exec_module"):
                    spec.loader = _RegisteringLoader(spec.loader)
                return spec
        return None


def _register(module_name: str) -> None:
    try:
        from sb3_muzero.zoo.registration import register_loaded

        register_loaded()
    except Exception as error:  # never break rl-zoo3's import for its other algorithms
        import warnings

        warnings.warn(
            f"sb3-muzero could not register MuZero with rl-zoo3 after importing {module_name}: {error!r}. "
            "`python -m sb3_muzero.train` registers it explicitly.",
            RuntimeWarning,
            stacklevel=2,
        )


def install() -> None:
    """Put the finder at the front of ``sys.meta_path`` (once), unless ``SB3_MUZERO_ZOO_HOOK=0``."""
    if os.environ.get(DISABLE_VARIABLE, "1") == "0":
        return
    if any(getattr(finder, MARKER, False) for finder in sys.meta_path):
        return
    sys.meta_path.insert(0, ZooRegistrationFinder())
    # rl-zoo3 imported before the hook (only possible when install() is called late): register now.
    if any(name in sys.modules for name in WATCHED):
        _register("rl_zoo3")
