"""Builds the C library with the repository's Makefile and puts it inside the package.

S2S_LIBRARY=/path/to/libseq2seq.so uses that file instead; where the repository is not beside
this folder, an installed copy found through pkg-config (make install) is used.
"""
import os
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py

try:
    from wheel.bdist_wheel import bdist_wheel
except ImportError:  # setuptools without wheel: a plain install still works
    bdist_wheel = None

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def built_libraries():
    """[(path, name in the package)]: the library (CUDA where the toolkit is), and a CPU-only one."""
    env = os.environ.get("S2S_LIBRARY")
    if env:
        return [(env, "libseq2seq.so")]
    if os.path.exists(os.path.join(ROOT, "Makefile")) and os.path.exists(os.path.join(ROOT, "include", "seq2seq.h")):
        jobs = str(os.cpu_count() or 2)
        subprocess.check_call(["make", "-C", ROOT, "-j" + jobs, "--no-print-directory", "lib"])
        out = [(os.path.join(ROOT, "build", "libseq2seq.so"), "libseq2seq.so")]
        if shutil.which("nvcc") or os.path.exists("/usr/local/cuda/bin/nvcc"):
            subprocess.check_call(["make", "-C", ROOT, "-j" + jobs, "--no-print-directory", "CUDA=0", "BUILD=build-cpu",
                                   "lib"])
            out.append((os.path.join(ROOT, "build-cpu", "libseq2seq.so"), "libseq2seq_cpu.so"))
        return out
    try:
        libdir = subprocess.check_output(["pkg-config", "--variable=libdir", "seq2seq"], text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        raise SystemExit("seq2seq: no repository beside python/ (a build from an sdist, as `python -m build` does?) "
                         "and no installed libseq2seq (pkg-config seq2seq): build with `pip wheel ./python` or "
                         "`pip install ./python` from the repository, run `make install`, or set S2S_LIBRARY")
    return [(os.path.join(libdir, "libseq2seq.so"), "libseq2seq.so")]


class BuildWithLibrary(build_py):
    def run(self):
        super().run()
        dest = os.path.join(self.build_lib, "seq2seq")
        os.makedirs(dest, exist_ok=True)
        for src, name in built_libraries():
            shutil.copyfile(os.path.realpath(src), os.path.join(dest, name))


cmds = {"build_py": BuildWithLibrary}
if bdist_wheel is not None:
    class PlatformWheel(bdist_wheel):
        """The wheel holds a shared library: tied to the platform, not to a Python version."""

        def finalize_options(self):
            super().finalize_options()
            self.root_is_pure = False

        def get_tag(self):
            _, _, plat = super().get_tag()
            return "py3", "none", plat

    cmds["bdist_wheel"] = PlatformWheel

setup(cmdclass=cmds)
