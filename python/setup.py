# Builds the PyTorch extension from the headers: python3 setup.py build_ext --inplace (or pip install .)
# CUDA here; a ROCm PyTorch hipifies nothing: the headers select HIP themselves (QR_BACKEND_HIP).
import os
import sys

from setuptools import setup

try:
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CUDAExtension
except ImportError:
    sys.exit("qreduce: building the extension needs PyTorch (with CUDA); `import torch` failed here. "
             "The C++ library needs no PyTorch: see README, 'Build your own program'.")
if not torch.cuda.is_available() and CUDA_HOME is None:
    sys.exit(f"qreduce: this PyTorch ({torch.__version__}) has no CUDA and no CUDA toolkit was found (CUDA_HOME): "
             "the extension needs both")

root = os.path.dirname(os.path.abspath(__file__))
archs = os.environ.get("QREDUCE_CUDA_ARCHS", "90")
gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs.split(",")]
setup(
    name="qreduce",
    version="0.1.0",
    packages=["qreduce"],
    ext_modules=[CUDAExtension("qreduce._C", ["csrc/qreduce_torch.cu"],
                               include_dirs=[os.path.join(root, "..", "include")],
                               extra_compile_args={"cxx": ["-O3", "-std=c++20"], "nvcc": ["-O3", "-std=c++20", *gencode]})],
    cmdclass={"build_ext": BuildExtension},
)
