"""Print what CMakeLists.txt needs to know about the installed torch, as KEY=VALUE lines."""

import os

import torch
import torch.utils.cpp_extension as cpp_extension


def default_archs() -> str:
    """Archs of the visible GPUs, else a portable list for CUDA 12.8+/13 (Turing .. Blackwell).

    Every entry must be one CUDA 13 still supports (it dropped sm_50..sm_72); CMakeLists.txt
    drops the entries the nvcc in use does not know (e.g. 10.0 and 12.0 before CUDA 12.8).
    """
    if torch.cuda.is_available():
        caps = sorted({torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})
        archs = [f"{major}.{minor}" for major, minor in caps]
    else:
        archs = ["7.5", "8.0", "8.6", "8.9", "9.0", "10.0", "12.0"]
    archs[-1] += "+PTX"  # forward compatibility with newer GPUs
    # Space-separated: CMakeLists.txt reads this output as a ';'-list of lines, so a ';'
    # here would cut the list after its first arch.
    return " ".join(archs)


print(f"TORCH_VERSION={torch.__version__}")
print(f"TORCH_CUDA_VERSION={torch.version.cuda}")
print(f"TORCH_INCLUDE_DIRS={'|'.join(cpp_extension.include_paths())}")
print(f"TORCH_LIB_DIR={os.path.join(os.path.dirname(torch.__file__), 'lib')}")
print(f"TORCH_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}")
print(f"TORCH_DEFAULT_ARCHS={default_archs() if torch.version.cuda else ''}")
