"""The library's folders are layers, and no import points up (read with `ast`, nothing runs).

From the ground up (a module may import its own layer and any layer below it):

    atomic      pipeline/atomic.py: atomic file writes, imports nothing of the library
    data        pipeline/data/: archives and synthetic worlds -> label maps, boxes, batches
    config      pipeline/config/: params.yaml's sections, validation, loading (reads data's box
                rules and dataset specs)
    models      pipeline/models/: networks, loss plug-ins, the model-file format
    training    pipeline/training/: the one trainer, runs, checkpoints, run log, DDP, platform
    evaluation  pipeline/evaluation/: metrics, floors, intervals, the test-set loop, the tables
    kinds       pipeline/kinds/: one file per row kind, built from the layers below
    apps        pipeline/apps/: the editor, the web app, HuEv, the benchmark, real maps

stages/ and tools/ sit above them all: no library module imports them.
"""
import ast
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYERS = ("atomic", "data", "config", "models", "training", "evaluation", "kinds", "apps")
ABOVE_THE_LIBRARY = ("stages", "tools", "tests")


def library_modules() -> dict:
    """dotted module name -> repository-relative path, for every .py file under pipeline/."""
    modules = {}
    for folder, _, names in os.walk(os.path.join(REPO, "pipeline")):
        for name in names:
            if name.endswith(".py"):
                path = os.path.relpath(os.path.join(folder, name), REPO).replace(os.sep, "/")
                dotted = path[:-len(".py")].replace("/", ".")
                modules[dotted.removesuffix(".__init__")] = path
    return modules


def layer_of(module: str) -> str | None:
    """The layer of a dotted pipeline module (`pipeline.data.boxes` -> data); None for the
    `pipeline` namespace itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def imported_modules(path: str, module: str) -> list:
    """(line, dotted name) of every module an import statement of the file names, anywhere in
    it (inside functions too); `from package import name` names package.name."""
    tree = ast.parse(open(os.path.join(REPO, path)).read())
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            anchor = package.split(".")[:len(package.split(".")) - max(node.level - 1, 0)]
            base = ".".join(anchor + [node.module or ""]).strip(".") if node.level else node.module
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def upward_imports() -> list:
    """'file:line imports module (layer a -> layer b)' for every import that points up."""
    modules = library_modules()
    rank = {layer: index for index, layer in enumerate(LAYERS)}
    found = []
    for module, path in sorted(modules.items()):
        own = layer_of(module)
        for line, name in imported_modules(path, module):
            top = name.split(".")[0]
            if top in ABOVE_THE_LIBRARY:
                found.append(f"{path}:{line} imports {name} (the library imports {top}/)")
            elif top == "pipeline" and own is not None:
                target = layer_of(name)
                if target is not None and target in rank and rank[target] > rank[own]:
                    found.append(f"{path}:{line} imports {name} ({own} -> {target})")
    return found


def test_every_library_module_is_in_a_layer():
    unplaced = sorted(path for module, path in library_modules().items()
                      if layer_of(module) not in LAYERS and module != "pipeline")
    assert not unplaced, f"not in a layer of {LAYERS}: {unplaced}"


def test_no_library_module_imports_a_higher_layer():
    assert upward_imports() == []


def test_an_upward_import_is_found(tmp_path, monkeypatch):
    """The check itself: a data module importing the trainer, and a relative import from
    kinds to an app, are both reported."""
    for path, text in {"pipeline/data/x.py": "def f():\n    from pipeline.training import trainer\n",
                       "pipeline/kinds/y.py": "from ..apps import editing\n",
                       "pipeline/apps/z.py": "from pipeline.data import x\n"}.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    monkeypatch.setattr(sys.modules[__name__], "REPO", str(tmp_path))
    assert upward_imports() == [
        "pipeline/data/x.py:2 imports pipeline.training.trainer (data -> training)",
        "pipeline/kinds/y.py:1 imports pipeline.apps.editing (kinds -> apps)"]
