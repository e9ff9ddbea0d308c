"""The one place that decides which CPU kernels the pipeline's processes run (docs/portability.md).

Every stage goes through `configure` (stages/__init__.py runs it before a stage imports anything;
tests/conftest.py does the same for the test process). It must run before torch and numpy are
imported: most switches are environment variables that the libraries read once, when they load.
This module imports neither at module level.

Portable mode (`train.portable: true`, the default) makes CPU results bit-identical on any x86-64
CPU with AVX2 and FMA, whatever its vendor, AVX-512 / AMX support, cache sizes or core count, as
long as the thread count (`train.cpu_threads`) and the pinned packages are the same:

- torch convolutions skip oneDNN (`torch.backends.mkldnn.enabled = False`) and NNPACK: oneDNN JIT-
  compiles kernels per ISA and picks blockings from the cache sizes and the core count; NNPACK
  blocks by cache size too. Convolutions then run as ATen's im2col + MKL sgemm.
- MKL runs its COMPATIBLE code branch (`MKL_CBWR=COMPATIBLE`: SSE2 without the approximate
  rcpps/rsqrtps, fixed cache sizes, static scheduling). It is the only branch that MKL keeps the
  same on Intel and non-Intel CPUs: `MKL_CBWR=AVX2` falls back to AUTO on AMD (MKL_VERBOSE shows
  `CNR:AUTO`), where AUTO means whatever MKL picks for that CPU. MKL_DYNAMIC / OMP_DYNAMIC are
  off so the thread count cannot change with the load.
- ATen's own vectorised kernels (reductions, norms, activations, Adam) are capped at AVX2
  (`ATEN_CPU_CAPABILITY=avx2`): the AVX-512 kernels sum in another order.
- numpy's runtime-dispatched loops are capped at X86_V3 (AVX2; its AVX-512 exp/log/sin/... give
  other bits) and numpy's / scipy's OpenBLAS runs its Haswell (AVX2) kernels with one thread
  (`OPENBLAS_CORETYPE=Haswell`; an AVX-512 machine otherwise gets the SkylakeX kernels, which
  change the FID's covariance square root in the last bits).
- oneDNN, if anything still reaches it, is capped at AVX2 (`ONEDNN_MAX_CPU_ISA`).

With portable mode off only the thread counts are pinned: results are bit-reproducible on one
machine, not across CPU models. `MEXGAN_PORTABLE=0/1` in the environment overrides the params
file (see `portable_setting`).
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import os
import sys

log = logging.getLogger(__name__)

ENV_SWITCH = "MEXGAN_PORTABLE"  # 0/1 (also false/true, off/on, no/yes): overrides train.portable
DEFAULT_PORTABLE = True
DEFAULT_THREADS = 2  # TrainParams.cpu_threads

# Set (overwritten, whatever the outer environment says) in portable mode only.
PORTABLE_ENV = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "COMPATIBLE",
    "MKL_DYNAMIC": "FALSE",
    "OMP_DYNAMIC": "FALSE",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "OPENBLAS_CORETYPE": "Haswell",
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
}
# Removed in portable mode (numpy refuses to start with both it and NPY_DISABLE_CPU_FEATURES).
PORTABLE_UNSET = ("NPY_ENABLE_CPU_FEATURES",)
# Thread pools, pinned in both modes: torch (OpenMP, MKL) to `threads`, numpy/scipy (OpenBLAS,
# numexpr) to one thread (their work here is small; more threads would only compete with torch's).
TORCH_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
SINGLE_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")
# Outer settings that change which kernels run; recorded by describe() whatever their source.
ISA_VARS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_CBWR",
            "MKL_ENABLE_INSTRUCTIONS", "MKL_DEBUG_CPU_TYPE", "OPENBLAS_CORETYPE",
            "NPY_DISABLE_CPU_FEATURES", "NPY_ENABLE_CPU_FEATURES", "MKL_DYNAMIC", "OMP_DYNAMIC")
ALL_VARS = tuple(dict.fromkeys(ISA_VARS + tuple(PORTABLE_ENV) + TORCH_THREAD_VARS
                               + SINGLE_THREAD_VARS))
# CPU flags (/proc/cpuinfo) that decide which kernels the libraries would pick on their own.
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16",
             "amx_int8")

_TRUE = {"1", "true", "on", "yes"}
_FALSE = {"0", "false", "off", "no"}

_state = {"configured": False, "portable": None, "threads": None, "source": None,
          "overridden": {}}


#---------------------------------------------------------------------------------------------
# The switch: params file (train.portable, train.cpu_threads) and MEXGAN_PORTABLE


def params_path(argv) -> str:
    """The params file a stage command line names (`--params PATH` / `--params=PATH`), else
    params.yaml."""
    argv = list(argv)
    for i, arg in enumerate(argv):
        if arg == "--params" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--params="):
            return arg[len("--params="):]
    return "params.yaml"


def read_train_section(path: str) -> dict:
    """`train:` of a params file, or {} when the file is missing, unreadable or not a mapping
    (the stage's own params loader reports such errors; this read must never fail first)."""
    try:
        import yaml
        with open(path) as f:
            raw = yaml.safe_load(f)
    except Exception:  # noqa: BLE001 - missing file, no PyYAML, bad YAML: use the defaults
        return {}
    train = raw.get("train") if isinstance(raw, dict) else None
    return train if isinstance(train, dict) else {}


def parse_switch(value: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{ENV_SWITCH}={value!r}: expected 0 or 1 (also true/false, on/off, yes/no)")


def portable_setting(train: dict, environ=None) -> tuple:
    """(portable, threads, source): MEXGAN_PORTABLE if set, else train.portable, else true;
    threads from train.cpu_threads (default 2). A value of the wrong type counts as absent (the
    params loader rejects it with a proper message)."""
    environ = os.environ if environ is None else environ
    threads = train.get("cpu_threads")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        threads = DEFAULT_THREADS
    if environ.get(ENV_SWITCH, "").strip():
        return parse_switch(environ[ENV_SWITCH]), threads, ENV_SWITCH
    portable = train.get("portable")
    if isinstance(portable, bool):
        return portable, threads, "train.portable"
    return DEFAULT_PORTABLE, threads, "default"


def settings_from_argv(argv=None, environ=None) -> tuple:
    """(portable, threads, source) for a stage command line (its --params file)."""
    argv = sys.argv[1:] if argv is None else argv
    return portable_setting(read_train_section(params_path(argv)), environ)


#---------------------------------------------------------------------------------------------
# Applying it


def environment(portable: bool, threads: int) -> dict:
    """The environment variables `configure` sets."""
    env = {name: str(threads) for name in TORCH_THREAD_VARS}
    env.update({name: "1" for name in SINGLE_THREAD_VARS})
    if portable:
        env.update(PORTABLE_ENV)
    return env


class LateConfiguration(RuntimeError):
    """configure() ran after a library that reads the settings at load time was imported."""


def configure(portable: bool = DEFAULT_PORTABLE, threads: int = DEFAULT_THREADS,
              source: str = "argument") -> dict:
    """Set the environment for `portable` mode and `threads` CPU threads, then the torch switches
    (now if torch is loaded, else right after it is imported). Returns the variables set.
    Raises LateConfiguration when torch or numpy is already loaded with other settings."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
    env = environment(bool(portable), threads)
    late = [name for name in ("torch", "numpy") if name in sys.modules]
    if late and portable:  # the thread counts can still be set later; the ISA caps cannot
        stale = [k for k, v in PORTABLE_ENV.items() if os.environ.get(k) != v]
        stale += [k for k in PORTABLE_UNSET if k in os.environ]
        if stale:
            raise LateConfiguration(
                f"portable mode must be configured before {' and '.join(late)} is imported "
                f"(these settings were not in effect: {', '.join(sorted(stale))})")
    overridden = {k: os.environ[k] for k, v in env.items()
                  if k in os.environ and os.environ[k] != v}
    if portable:
        overridden.update({k: os.environ.pop(k) for k in PORTABLE_UNSET if k in os.environ})
    os.environ.update(env)
    _state.update(configured=True, portable=bool(portable), threads=threads, source=source,
                  overridden={**_state["overridden"], **overridden})
    if portable:
        _warn_if_unsupported()
    if "torch" in sys.modules:
        apply_torch()
    else:
        _install_torch_hook()
    return env


def is_configured() -> bool:
    return _state["configured"]


def portable_mode() -> bool | None:
    """Whether this process runs in portable mode (None: not configured)."""
    return _state["portable"] if _state["configured"] else None


def configure_from_argv(argv=None, environ=None) -> dict:
    """configure() with the settings of a stage command line (stages/__init__.py)."""
    portable, threads, source = settings_from_argv(argv, environ)
    return configure(portable, threads, source)


def apply_torch() -> None:
    """The switches that live inside torch: oneDNN and NNPACK off in portable mode, the thread
    count. Idempotent; a no-op before configure()."""
    if not _state["configured"]:
        return
    import torch
    if _state["portable"]:
        torch.backends.mkldnn.enabled = False
        torch.backends.nnpack.set_flags(False)
    torch.set_num_threads(_state["threads"])


class _TorchHook(importlib.abc.MetaPathFinder):
    """Runs apply_torch() right after `import torch` has finished (one shot)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "torch":
            return None
        _remove_torch_hook()
        spec = importlib.util.find_spec("torch")
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_apply(module):
            exec_module(module)
            apply_torch()

        spec.loader.exec_module = exec_then_apply
        return spec


def _install_torch_hook() -> None:
    if not any(isinstance(f, _TorchHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _TorchHook())


def _remove_torch_hook() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _TorchHook)]


def _warn_if_unsupported() -> None:
    flags = cpu_info()["flags"]
    if flags and not (flags.get("avx2") and flags.get("fma")):
        log.warning("this CPU has no AVX2/FMA: portable mode's results are guaranteed on "
                    "x86-64 CPUs with AVX2 and FMA only (docs/portability.md)")


#---------------------------------------------------------------------------------------------
# The record (reports/run_conditions.json)


def cpu_info(path: str = "/proc/cpuinfo") -> dict:
    """CPU model, vendor and the ISA flags that matter ({} for flags if unknown)."""
    model = vendor = ""
    flags = set()
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "model name" and not model:
                    model = value
                elif key == "vendor_id" and not vendor:
                    vendor = value
                elif key == "flags" and not flags:
                    flags = set(value.split())
                if model and vendor and flags:
                    break
    except OSError:
        pass
    import platform as _stdlib_platform
    return {"model": model or _stdlib_platform.processor() or "unknown",
            "vendor": vendor or "unknown", "arch": _stdlib_platform.machine(),
            "flags": {name: name in flags for name in CPU_FLAGS} if flags else {}}


def _library_versions(config: str) -> dict:
    """oneDNN and MKL versions from torch.__config__.show()."""
    versions = {}
    for line in config.splitlines():
        line = line.strip(" -")
        if "MKL-DNN" in line or "oneDNN" in line:
            versions["onednn"] = next((w for w in line.split() if w.startswith("v")), line)
        elif "Math Kernel Library" in line:
            words = line.split("Version", 1)[-1].split()
            versions["mkl"] = words[0].split("-")[0] if words else line
    return versions


def _numpy_record() -> dict:
    """numpy's version, the SIMD target its dispatched loops use (float64 exp as the probe) and
    the kernels its OpenBLAS picked; best effort (None where unknown)."""
    record = {"numpy": None, "numpy_simd": None, "numpy_openblas_core": None}
    try:
        import numpy
        record["numpy"] = numpy.__version__
        from numpy.lib.introspect import opt_func_info
        info = opt_func_info(func_name="^exp$", signature="float64")
        record["numpy_simd"] = next(iter(info["exp"].values()))["current"]
    except Exception:  # noqa: BLE001 - informational only
        pass
    try:
        import ctypes
        import glob
        import numpy
        libs = glob.glob(os.path.join(os.path.dirname(numpy.__file__) + ".libs",
                                      "libscipy_openblas64_*.so"))
        if libs:
            corename = ctypes.CDLL(libs[0]).scipy_openblas_get_corename64_
            corename.restype = ctypes.c_char_p
            record["numpy_openblas_core"] = corename().decode()
    except Exception:  # noqa: BLE001 - informational only
        pass
    return record


def describe() -> dict:
    """The platform record: the settings this process runs with and what the libraries actually
    use. Everything outside `machine` is the same on every x86-64 CPU with AVX2 in portable mode
    (with the pinned requirements and the same train.cpu_threads): it can go into a committed
    report. `machine` holds what differs from machine to machine (CPU model, vendor and flags,
    core count, python build, settings of the outer environment that configure() did not set or
    overrode, where the portable switch came from)."""
    import platform as _stdlib_platform

    import torch
    versions = _library_versions(torch.__config__.show())
    cpu = cpu_info()
    portable, threads = _state["portable"], _state["threads"]
    own = environment(portable, threads) if _state["configured"] else {}
    record = {
        "portable": portable,
        "isa_used": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "onednn_version": versions.get("onednn"),
        "onednn_enabled": bool(torch.backends.mkldnn.enabled),
        "nnpack_enabled": bool(torch._C._get_nnpack_enabled()),
        "mkl_available": bool(torch.backends.mkl.is_available()),
        "mkl_version": versions.get("mkl"),
        "torch_threads": torch.get_num_threads(),
        "env": {name: os.environ.get(name) for name in own},
    }
    record.update(_numpy_record())
    record["machine"] = {
        "cpu_model": cpu["model"], "cpu_vendor": cpu["vendor"], "arch": cpu["arch"],
        "cpu_flags": cpu["flags"], "logical_cpus": os.cpu_count(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "python": _stdlib_platform.python_version(),
        "portable_source": _state["source"],
        "outer_env": {name: os.environ[name] for name in ALL_VARS
                      if name in os.environ and name not in own},
        "overridden_env": dict(_state["overridden"]),
    }
    return record
