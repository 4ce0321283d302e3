"""``python -m llama_cpp.server`` with llama.cpp's weight-repacking buffers turned off.

On CPUs that advertise AMX (this project's CI machines among them), the repacked Q4 kernels that llama.cpp picks
for batched prompt processing crash with a segmentation fault on the first multi-token prompt: the server dies
without a reply. Loading weights without the extra buffer types avoids those kernels at a small cost in speed;
everything else is the stock server, its command line included.
"""

import runpy

import llama_cpp


def _default_params_without_repacking():
    params = _default_params()
    params.use_extra_bufts = False
    return params


_default_params = llama_cpp.llama_model_default_params
llama_cpp.llama_model_default_params = _default_params_without_repacking
llama_cpp.llama_cpp.llama_model_default_params = _default_params_without_repacking

if __name__ == "__main__":
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
