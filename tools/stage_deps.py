"""The code each stage of dvc.yaml runs: the repository's Python files its command imports,
transitively, plus the data files beside them that those modules open. tests/test_dvc_yaml.py
compares it with every stage's code deps, both ways, so dvc.yaml cannot drift from the imports.

    python tools/stage_deps.py            # per stage: deps to add (+) and to drop (-); exit 1 if any
    python tools/stage_deps.py STAGE...   # the code deps a stage (or foreach/matrix group) needs

How imports are counted (statically, with `ast`, no code is run):
- every `import` statement anywhere in a module: top level, inside functions, under `if` or
  `try` (an import a stage only reaches on some path still decides what it may run);
- `import a.b.c` imports a, a.b and a.b.c; `from a.b import c` imports a, a.b, and a.b.c when
  c is a module; relative imports are resolved against the importing module's package;
- `python -m a.b` runs a/__init__.py (if any), then a/b.py; `python path/x.py` runs x.py;
- a module counts when it resolves to a file of this repository (root on sys.path, as for
  `python -m` run from the root); others (the standard library, torch, ...) do not.
Resources: a string literal in an imported module that names a non-Python file in the module's
own folder (pipeline/data/sets/nyu.py: "nyu894_names.tsv") is part of that module's code too.

A code dep is a dep that is a .py file or lies in a top-level folder holding Python files
(pipeline/, stages/, tools/, ...). A folder is never a code dep: its hash would count whatever
else lies there (Python's __pycache__/*.pyc, written whenever a user's python imports it).
"""
import ast
import os
import re
import shlex
import sys
from functools import lru_cache

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _file_of(root: str, module: str) -> str | None:
    """The repository file (relative path) of a dotted module name, None when the name is not
    a module of this repository. A namespace package (folder without __init__.py) has no file
    but its submodules resolve."""
    base = os.path.join(*module.split("."))
    for candidate in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(os.path.join(root, candidate)):
            return candidate.replace(os.sep, "/")
    return None


def _is_package(root: str, module: str) -> bool:
    return os.path.isdir(os.path.join(root, *module.split(".")))


def _module_name(path: str) -> tuple[str, bool]:
    """(dotted name, is a package's __init__) of a repository-relative .py path."""
    parts = path[:-len(".py")].split("/")
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _with_parents(module: str) -> list:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _imported_names(tree: ast.AST, module: str, is_init: bool, root: str) -> set:
    """Dotted names of every module an import statement of `tree` may load."""
    package = module if is_init else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names.update(_with_parents(alias.name))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".") if package else []
                if node.level - 1 > len(anchor):
                    raise ImportError(f"{module}: relative import beyond the top-level package")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module
            if base:
                names.update(_with_parents(base))
            for alias in node.names:
                if alias.name != "*" and base:
                    names.add(f"{base}.{alias.name}")
    return names


def _resources(tree: ast.AST, path: str, root: str) -> set:
    """Non-Python files in the module's own folder that a string literal of it names."""
    folder = os.path.dirname(path)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and re.fullmatch(r"[\w.-]+\.\w+", node.value) and not node.value.endswith(".py"):
            candidate = f"{folder}/{node.value}" if folder else node.value
            if os.path.isfile(os.path.join(root, candidate)):
                found.add(candidate)
    return found


@lru_cache(maxsize=None)
def _direct(path: str, root: str) -> tuple:
    """(repository files path imports, resources path opens) for one repository .py file."""
    with open(os.path.join(root, path), encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename=path)
    module, is_init = _module_name(path)
    files = {_file_of(root, name) for name in _imported_names(tree, module, is_init, root)}
    files.discard(None)
    files.discard(path)
    return tuple(sorted(files)), tuple(sorted(_resources(tree, path, root)))


def closure(entry_files, root: str = ROOT) -> list:
    """Every repository file the entry files import, transitively, with their resources."""
    seen, todo, resources = set(), list(entry_files), set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        imported, opened = _direct(path, root)
        resources.update(opened)
        todo.extend(imported)
    return sorted(seen | resources)


def entry_files(cmd: str, root: str = ROOT) -> list:
    """The repository .py files a stage command runs first: `python -m pkg.mod` runs the
    packages' __init__ files then the module (or pkg/mod/__main__.py); `python x.py` runs x.py.
    Raises ValueError for a command that runs no Python of this repository."""
    words = shlex.split(cmd)
    for i, word in enumerate(words):
        if not re.fullmatch(r"(.*/)?python[0-9.]*", word):
            continue
        rest = [w for w in words[i + 1:]]
        while rest and rest[0].startswith("-") and rest[0] != "-m":
            rest = rest[1:]  # interpreter options (-u, -O, ...)
        if len(rest) >= 2 and rest[0] == "-m":
            module = rest[1]
            files = [_file_of(root, name) for name in _with_parents(module)]
            if _is_package(root, module):
                main = module.replace(".", "/") + "/__main__.py"
                files.append(main if os.path.isfile(os.path.join(root, main)) else None)
            files = [f for f in files if f]
            if files:
                return files
        elif rest and rest[0].endswith(".py") and os.path.isfile(os.path.join(root, rest[0])):
            return [os.path.normpath(rest[0]).replace(os.sep, "/")]
    raise ValueError(f"no python module or script of the repository in: {cmd}")


def stage_code(cmd: str, root: str = ROOT) -> list:
    """The code deps a stage with this command must list."""
    return closure(entry_files(cmd, root), root)


def code_folders(root: str = ROOT) -> set:
    """Top-level folders that hold Python files of the repository (pipeline, stages, ...)."""
    return {name for name in os.listdir(root)
            if not name.startswith(".") and os.path.isdir(os.path.join(root, name))
            and any(f.endswith(".py") for f in os.listdir(os.path.join(root, name)))}


def is_code(path: str, root: str = ROOT, folders: set | None = None) -> bool:
    """Whether a repository-relative dep path is code (see the module docstring)."""
    folders = code_folders(root) if folders is None else folders
    return path.endswith(".py") or path.split("/")[0] in folders


def stages(root: str = ROOT) -> list:
    """(name, cmd, repository-relative dep paths) of every stage of dvc.yaml, foreach and
    matrix groups expanded by DVC itself (the names `dvc status` shows)."""
    from dvc.repo import Repo
    from dvc.dependency.param import ParamsDependency
    out = []
    with Repo(root) as repo:
        for stage in repo.index.stages:
            if not stage.cmd:
                continue  # a .dvc file (data.dvc): no command
            cmd = " && ".join(stage.cmd) if isinstance(stage.cmd, list) else stage.cmd
            deps = [os.path.relpath(dep.fs_path, repo.root_dir).replace(os.sep, "/")
                    for dep in stage.deps if not isinstance(dep, ParamsDependency)]
            out.append((stage.addressing, cmd, deps))
    return out


def drift(root: str = ROOT) -> dict:
    """{stage: (code it imports that it does not list, code deps it lists and does not
    import)} for every stage whose code deps are not exactly its imports."""
    folders = code_folders(root)
    problems = {}
    for name, cmd, deps in stages(root):
        listed = {d for d in deps if is_code(d, root, folders)}
        needed = set(stage_code(cmd, root))
        if listed != needed:
            problems[name] = (sorted(needed - listed), sorted(listed - needed))
    return problems


def main(argv) -> int:
    if argv:
        shown = set()
        for name, cmd, _ in stages(ROOT):
            label = name if name in argv else name.split("@")[0]  # a group: its first stage
            if label in argv and label not in shown:
                shown.add(label)
                print(f"{label}:")
                for path in stage_code(cmd, ROOT):
                    print(f"    - {path}")
        return 0
    problems = drift(ROOT)
    for name, (missing, extra) in problems.items():
        print(f"{name}:")
        for path in missing:
            print(f"  + {path}   (imported, not listed)")
        for path in extra:
            print(f"  - {path}   (listed, not imported)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
