"""The package's layout: no import cycles among its modules, and every search backend provides the declared interface."""

import ast
import inspect
from pathlib import Path
from typing import Optional

import pytest

import sb3_muzero
from sb3_muzero.mcts.backends import cpu, cuda
from sb3_muzero.mcts.backends.interface import SearchBackend
from tests.host_kernels import HostDevice, HostKernelBackend, gxx

PACKAGE_ROOT = Path(sb3_muzero.__file__).parent


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, from every import statement (inside functions too).

    ``from a.b import c`` counts as importing ``a.b.c`` where that is a module, else ``a.b``. Importing a
    module does not count as importing its parent packages.
    """
    package = root.name
    modules = {module_name(path, root): path for path in root.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(node, name, is_package)
                if base is None:
                    continue
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
            graph[name].update(t for t in targets if t in modules and (t == package or t.startswith(package + ".")))
        graph[name].discard(name)
    return graph


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> Optional[str]:
    """The absolute module an ``ImportFrom`` names (relative imports resolved)."""
    if node.level == 0:
        return node.module
    parts = module.split(".")
    anchor = parts if is_package else parts[:-1]
    anchor = anchor[: len(anchor) - (node.level - 1)]
    return ".".join([*anchor, node.module] if node.module else anchor)


def find_cycle(graph: dict[str, set[str]]) -> Optional[list[str]]:
    """One import cycle (a list of modules, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> Optional[list[str]]:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def test_the_package_has_no_import_cycle():
    graph = import_graph(PACKAGE_ROOT)
    assert len(graph) > 30 and graph["sb3_muzero.mcts.driver"] >= {"sb3_muzero.mcts.backends", "sb3_muzero.mcts.roots"}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_search_driver_is_imported_by_none_of_its_pieces():
    graph = import_graph(PACKAGE_ROOT)
    importers = sorted(name for name, targets in graph.items() if "sb3_muzero.mcts.driver" in targets)
    assert importers == ["sb3_muzero.mcts"]


def write_package(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_cycle_check_finds_cycles_through_lazy_and_relative_imports(tmp_path):
    """The checker itself: a cycle made by an import inside a function and a relative import is found."""
    package = write_package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg.b import f\n",
            "pkg/b.py": "def f():\n    from . import c\n",
            "pkg/c.py": "import pkg.a\n",
            "pkg/d.py": "import os\nfrom pkg import a\n",
        },
    )
    graph = import_graph(package)
    assert graph["pkg.d"] == {"pkg.a"} and graph["pkg.b"] == {"pkg.c"}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]
    (package / "c.py").write_text("import os\n")
    assert find_cycle(import_graph(package)) is None


def interface_problems(backend) -> list[str]:
    """How ``backend`` differs from :class:`SearchBackend`: missing members, other parameter names."""
    problems = []
    for name, member in vars(SearchBackend).items():
        if name.startswith("_") or not callable(member):
            continue
        implementation = getattr(backend, name, None)
        if implementation is None:
            problems.append(f"{name} is missing")
            continue
        declared = list(inspect.signature(member).parameters)[1:]  # without self
        given = list(inspect.signature(implementation).parameters)
        if given != declared:
            problems.append(f"{name}{tuple(given)} instead of {name}{tuple(declared)}")
    if not isinstance(getattr(backend, "ON_DEVICE", None), bool):
        problems.append("ON_DEVICE is not a bool")
    return problems


@pytest.mark.parametrize("backend", [cpu, cuda], ids=["numba", "cuda"])
def test_backends_provide_the_declared_interface(backend):
    assert isinstance(backend, SearchBackend)
    assert interface_problems(backend) == []


@pytest.mark.skipif(gxx() is None, reason="g++ is not installed: the host build of search.cu needs it")
def test_the_host_kernel_backend_provides_the_declared_interface(host_kernel_library):
    backend = HostKernelBackend(HostDevice(host_kernel_library))
    assert isinstance(backend, SearchBackend)
    assert interface_problems(backend) == []


def test_the_interface_check_finds_a_wrong_backend():
    class Wrong:
        ON_DEVICE = False

        def new_tree(self, batch_size, num_nodes, num_actions, device=None): ...

        def read_root(self, trees): ...

    problems = interface_problems(Wrong())
    assert "read_root('trees',) instead of read_root('tree',)" in problems
    assert "init_roots is missing" in problems and len(problems) == 9
