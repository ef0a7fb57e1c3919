"""Build hook: install the rl-zoo3 start-up hook (``sb3_muzero_zoo_hook.pth`` and its module) into site-packages.

Everything else is in setup.cfg. A ``.pth`` file only runs from a site-packages folder itself, so the hook
goes to the wheel's root, not into the package:

- regular wheels (``pip install .``, sdist -> wheel): ``build_py`` writes both files to ``build_lib``, the
  wheel's root;
- editable wheels (``pip install -e .``): setuptools drops what ``build_py`` writes to ``build_lib`` (its
  "lenient" mode maps only the packages to the source tree), but it packs the ``install`` command's
  ``install_lib`` folder, the unpacked editable wheel, as it is; ``build_py`` writes both files there.

The module is a copy of ``sb3_muzero/zoo/hook.py`` (an editable install takes a change to that file after a
reinstall). See the README, "rl-zoo3 and Optuna".
"""

import os

from setuptools import setup
from setuptools.command.build_py import build_py

HOOK_MODULE = "sb3_muzero_zoo_hook"
HOOK_SOURCE = os.path.join("sb3_muzero", "zoo", "hook.py")
PTH_LINE = f"import {HOOK_MODULE}; {HOOK_MODULE}.install()\n"


class build_py_with_zoo_hook(build_py):
    """``build_py`` that also writes the start-up hook to the root of the (editable or regular) wheel."""

    def run(self) -> None:
        super().run()
        target = self.build_lib
        if self.editable_mode:
            target = self.get_finalized_command("install").install_lib
        self.mkpath(target)
        self.copy_file(HOOK_SOURCE, os.path.join(target, f"{HOOK_MODULE}.py"), preserve_mode=False)
        pth_path = os.path.join(target, f"{HOOK_MODULE}.pth")
        self.execute(_write, (pth_path, PTH_LINE), f"writing {pth_path}")

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = super().get_outputs(include_bytecode)
        if self.editable_mode:  # written to the editable wheel itself, not to build_lib
            return outputs
        return [*outputs, *(os.path.join(self.build_lib, f"{HOOK_MODULE}{suffix}") for suffix in (".py", ".pth"))]


def _write(path: str, content: str) -> None:
    with open(path, "w") as file:
        file.write(content)


setup(cmdclass={"build_py": build_py_with_zoo_hook})
