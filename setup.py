"""Build script: Python packages plus the compiled kernels (see csrc/).

The Triton kernels live in the top-level kernels/ folder but install as fastadv.kernels,
because a top-level `kernels` package name belongs to another PyPI project.

Compiled modules (DESIGN.md "Build"), from csrc/ (one source file per op, named after it;
headers shared by both modules in csrc/common/):
- ``fastadv._C``: C++/OpenMP kernels from csrc/cpu/*.cpp, pybind11 on raw data pointers, no
  torch headers (torch is not a build requirement, so build isolation stays cheap).
- ``fastadv._C_cuda``: CUDA kernels from csrc/cuda/*.cu compiled by nvcc and linked only to
  the static CUDA runtime (bindings in csrc/cuda/module.cpp), built when nvcc is found. Any
  failure there prints one warning and drops that module; the CPU install still succeeds.
  FASTADV_NO_CUDA=1 skips it. The nvcc used is $NVCC, else $CUDA_HOME/bin/nvcc, else nvcc on
  PATH, else /usr/local/cuda/bin/nvcc.
"""
import glob
import os
import shutil
import subprocess
import sys

from pybind11.setup_helpers import Pybind11Extension
from setuptools import find_packages, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
CPU_MODULE = "fastadv._C"
CUDA_MODULE = "fastadv._C_cuda"
# SASS for A100 and H100/H200, plus compute_90 PTX that newer GPUs JIT-compile.
CUDA_ARCHS = ("--generate-code=arch=compute_80,code=sm_80",
              "--generate-code=arch=compute_90,code=[sm_90,compute_90]")
# No FMA contraction: the kernels must round exactly like the reference's separate ops.
# No trapping math / errno: lets gcc if-convert (and so vectorise) the selects of the KL loops
# and vectorise sqrt; they change no value, only whether FP flags and errno are observable.
CPU_FLAGS = ["-O3", "-ffp-contract=off", "-fno-trapping-math", "-fno-math-errno"]
NVCC_FLAGS = ["-O3", "-std=c++17", "--fmad=false", "-Xcompiler", "-fPIC",
              "-Xcompiler", "-fvisibility=hidden"]


def _rel(pattern):
    return sorted(os.path.relpath(p, HERE) for p in glob.glob(os.path.join(HERE, pattern)))


def _truthy(name):
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def _find_nvcc():
    """Returns (path, None) or (None, why not). An explicit $NVCC is used as given."""
    explicit = os.environ.get("NVCC")
    if explicit:
        path = shutil.which(explicit)
        return (path, None) if path else (None, f"NVCC={explicit!r} is not an executable")
    candidates = []
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")):
        if home:
            candidates.append(os.path.join(home, "bin", "nvcc"))
    candidates += [shutil.which("nvcc"), "/usr/local/cuda/bin/nvcc"]
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path, None
    return None, "nvcc not found (set NVCC or CUDA_HOME to build it)"


def _cuda_lib_dirs(nvcc, obj):
    """Folders holding libcudart_static.a: asked from nvcc itself (its dry-run link line), as
    nvcc may be a wrapper script far from the toolkit, then the usual toolkit layouts."""
    dirs = []
    try:
        dry = subprocess.run([nvcc, "--dryrun", "-shared", "-o", obj + ".so", obj],
                             capture_output=True, text=True, timeout=60)
        for line in (dry.stdout + dry.stderr).splitlines():
            for token in line.replace('"', " ").split():
                if token.startswith("-L"):
                    dirs.append(token[2:])
                elif line.startswith("#$ TOP="):
                    top = line.split("=", 1)[1].strip()
                    dirs += [os.path.join(top, d) for d in ("lib64", "lib")]
    except (OSError, subprocess.SubprocessError):
        pass
    home = os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))
    dirs += [os.path.join(home, d) for d in ("lib64", "lib", "targets/x86_64-linux/lib",
                                             "targets/sbsa-linux/lib")]
    found = []
    for d in dirs:
        d = os.path.normpath(d)
        if d not in found and os.path.isfile(os.path.join(d, "libcudart_static.a")):
            found.append(d)
    return found


class BuildExt(build_ext):
    """Builds _C (with an OpenMP fallback) and, best effort, _C_cuda with nvcc.

    nvcc runs in the background while the C++ module compiles, so the two builds overlap.
    """

    def build_extensions(self):
        self._dropped = []
        self._nvcc_jobs = None
        cuda_ext = next((e for e in self.extensions if e.name == CUDA_MODULE), None)
        if cuda_ext is not None:
            reason = self._cuda_skip_reason()
            if reason:
                print(f"fastadv: not building {CUDA_MODULE}: {reason}")
                self.extensions.remove(cuda_ext)
            elif self._up_to_date(cuda_ext):
                self._nvcc_jobs = "up to date"  # build_ext skips the link too
            else:
                self._start_nvcc(cuda_ext)
        # Build the CPU module first so the nvcc jobs have time to finish.
        self.extensions.sort(key=lambda e: e.name == CUDA_MODULE)
        try:
            super().build_extensions()
        finally:
            self._stop_nvcc()
        for ext in self._dropped:
            self.extensions.remove(ext)

    def build_extension(self, ext):
        if ext.name == CUDA_MODULE:
            if self._nvcc_jobs == "up to date":
                return
            try:
                ext.extra_objects = list(ext.extra_objects or []) + self._finish_nvcc(ext)
                super().build_extension(ext)
            except Exception as exc:  # any CUDA failure must leave a working CPU install
                message = " ".join(str(exc).split())[:400]
                print(f"WARNING: fastadv: building the CUDA module {CUDA_MODULE} failed, "
                      f"continuing without it ({type(exc).__name__}: {message})",
                      file=sys.stderr)
                self._dropped.append(ext)
            return
        if ext.name == CPU_MODULE and self.compiler.compiler_type == "unix":
            try:
                super().build_extension(ext)
                return
            except Exception as exc:
                print(f"WARNING: fastadv: building {CPU_MODULE} with OpenMP failed "
                      f"({type(exc).__name__}); retrying single-threaded", file=sys.stderr)
                ext.extra_compile_args = [a for a in ext.extra_compile_args if a != "-fopenmp"]
                ext.extra_link_args = [a for a in ext.extra_link_args if a != "-fopenmp"]
        super().build_extension(ext)

    # --- CUDA -------------------------------------------------------------------------
    def _cuda_skip_reason(self):
        if _truthy("FASTADV_NO_CUDA"):
            return "FASTADV_NO_CUDA is set"
        self._nvcc, why_not = _find_nvcc()
        return why_not

    def _up_to_date(self, ext):
        target = self.get_ext_fullpath(ext.name)
        return (not self.force and os.path.exists(target) and
                all(os.path.getmtime(d) <= os.path.getmtime(target)
                    for d in list(ext.sources) + list(ext.depends)))

    def _start_nvcc(self, ext):
        out_dir = os.path.join(os.path.abspath(self.build_temp), "cuda")
        os.makedirs(out_dir, exist_ok=True)
        jobs = []
        for src in ext.cuda_sources:
            obj = os.path.join(out_dir, os.path.splitext(os.path.basename(src))[0] + ".o")
            cmd = [self._nvcc, "-c", os.path.join(HERE, src), "-o", obj,
                   "-I", os.path.join(HERE, "csrc"), *NVCC_FLAGS, *CUDA_ARCHS]
            try:
                proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            except OSError as exc:
                proc = exc
            jobs.append((src, obj, proc))
        self._nvcc_jobs = jobs

    def _finish_nvcc(self, ext):
        if not self._nvcc_jobs:
            raise RuntimeError("nvcc was not started")
        objects = []
        for src, obj, proc in self._nvcc_jobs:
            if isinstance(proc, OSError):
                raise RuntimeError(f"cannot run {self._nvcc}: {proc}")
            output = proc.communicate()[0].decode(errors="replace")
            if proc.returncode != 0 or not os.path.isfile(obj):
                raise RuntimeError(f"nvcc failed on {src} (exit {proc.returncode}): "
                                   f"{output.strip()[-300:]}")
            objects.append(obj)
        lib_dirs = _cuda_lib_dirs(self._nvcc, objects[0])
        if not lib_dirs:
            raise RuntimeError(f"libcudart_static.a not found for {self._nvcc}")
        ext.library_dirs = list(ext.library_dirs) + lib_dirs
        ext.libraries = list(ext.libraries) + ["cudart_static", "rt", "pthread", "dl"]
        return objects

    def _stop_nvcc(self):
        if not isinstance(self._nvcc_jobs, list):
            return
        for _, _, proc in self._nvcc_jobs:
            if not isinstance(proc, OSError) and proc.poll() is None:
                proc.kill()
                proc.wait()


def _extensions():
    # depends: headers (and .cu files) so that editing one rebuilds without --force
    common = _rel("csrc/common/*.h")
    cpu = Pybind11Extension(
        CPU_MODULE, _rel("csrc/cpu/*.cpp"), include_dirs=["csrc"], cxx_std=17,
        depends=common + _rel("csrc/cpu/*.h"), extra_compile_args=CPU_FLAGS + ["-fopenmp"],
        extra_link_args=["-fopenmp"])
    exts = [cpu]
    cuda_sources = _rel("csrc/cuda/*.cu")
    if cuda_sources:
        cuda = Pybind11Extension(CUDA_MODULE, _rel("csrc/cuda/module.cpp"),
                                 include_dirs=["csrc"], cxx_std=17,
                                 depends=(cuda_sources + common + _rel("csrc/cuda/*.h") +
                                          _rel("csrc/cuda/*.cuh")))
        cuda.cuda_sources = cuda_sources
        exts.append(cuda)
    return exts


packages = find_packages(include=["fastadv", "fastadv.*"]) + ["fastadv.kernels"]

setup(
    packages=packages,
    package_dir={"fastadv.kernels": "kernels"},
    package_data={"fastadv.data": ["*.npz"]},
    include_package_data=True,
    ext_modules=_extensions(),
    cmdclass={"build_ext": BuildExt},
)
