"""The code each stage of dvc.yaml runs: the repository's Python files its command imports,
transitively, plus the data files beside them that those modules open.

A stage does not list those files in dvc.yaml: the `code_hashes` stage (stages/code_hashes.py,
rerun by every `dvc repro`, a second) writes each stage's files with their SHA-256 into
artifacts/code/<stage>.json, and the stage depends on that one file. So a stage reruns exactly
when a file it imports changes, never for one it does not (nor for Python's bytecode caches),
and dvc.lock holds one code entry per stage instead of ~60 (DVC re-reads and rewrites the
whole lock, in pure-Python YAML, for every stage it runs: 8,300 lines cost ~6 s a stage).
tests/test_dvc_yaml.py checks that every stage depends on its fingerprint and lists no code.

    python tools/stage_deps.py            # stages whose deps break that rule; exit 1 if any
    python tools/stage_deps.py STAGE...   # the code a stage (or foreach/matrix group) runs

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
import hashlib
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


FINGERPRINT_STAGE = "code_hashes"    # the stage that writes the fingerprints
FINGERPRINTS = "artifacts/code"      # its output: <stage group>.json per stage of dvc.yaml


def fingerprint_file(stage: str) -> str:
    """The fingerprint a stage depends on: its group's (`train_mex@row-0` -> train_mex)."""
    return f"{FINGERPRINTS}/{stage.split('@')[0]}.json"


def stage_commands(root: str = ROOT) -> dict:
    """stage group -> command (a foreach/matrix group's template) of every stage of dvc.yaml
    but the fingerprint stage itself, read from the file (DVC not needed)."""
    import yaml
    with open(os.path.join(root, "dvc.yaml"), encoding="utf-8") as f:
        spec = yaml.safe_load(f)["stages"]
    commands = {}
    for name, stage in spec.items():
        if name == FINGERPRINT_STAGE:
            continue
        cmd = stage["do"]["cmd"] if "do" in stage else stage["cmd"]
        commands[name] = " && ".join(cmd) if isinstance(cmd, list) else cmd
    return commands


def fingerprints(root: str = ROOT) -> dict:
    """stage group -> {repository file it runs: SHA-256 of the file's bytes}; each file is read
    once, however many stages run it."""
    code = {group: stage_code(cmd, root) for group, cmd in stage_commands(root).items()}
    digests = {}
    for path in sorted({path for paths in code.values() for path in paths}):
        with open(os.path.join(root, path), "rb") as f:
            digests[path] = hashlib.sha256(f.read()).hexdigest()
    return {group: {path: digests[path] for path in paths} for group, paths in code.items()}


def drift(root: str = ROOT) -> dict:
    """{stage: (deps it lacks, code deps it lists)} for every stage that does not depend on its
    fingerprint file or lists code itself (a code file listed in dvc.yaml would be hashed into
    dvc.lock again, and a folder would count Python's bytecode caches)."""
    folders = code_folders(root)
    problems = {}
    for name, _, deps in stages(root):
        if name == FINGERPRINT_STAGE:
            continue
        listed = sorted(d for d in deps if is_code(d, root, folders))
        missing = [] if fingerprint_file(name) in deps else [fingerprint_file(name)]
        if listed or missing:
            problems[name] = (missing, listed)
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
            print(f"  + {path}   (its code fingerprint: depend on it)")
        for path in extra:
            print(f"  - {path}   (code listed in dvc.yaml: drop it, the fingerprint covers it)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
