"""Image build step: every kernel of the image starts through nbhosting-expendable (see that script).

Prefixes the argv of each kernelspec Jupyter finds in the image (a spec found only inside a package, like
ipykernel's own, is first copied into sys.prefix, where Jupyter looks first), so that the OOM killer takes a
kernel, not the Jupyter server, when a student's server reaches its memory limit.
"""

import json
import os
import shutil
import sys

from jupyter_client.kernelspec import KernelSpecManager

WRAPPER = "/usr/local/bin/nbhosting-expendable"

for name, folder in sorted(KernelSpecManager().find_kernel_specs().items()):
    if "site-packages" in folder:
        target = os.path.join(sys.prefix, "share", "jupyter", "kernels", name)
        shutil.copytree(folder, target, dirs_exist_ok=True)
        folder = target
    path = os.path.join(folder, "kernel.json")
    with open(path) as spec_file:
        spec = json.load(spec_file)
    if spec["argv"][:1] != [WRAPPER]:
        spec["argv"] = [WRAPPER, *spec["argv"]]
        with open(path, "w") as spec_file:
            json.dump(spec, spec_file, indent=1)
    print(f"nbhosting: kernel {name} ({path}) starts through {WRAPPER}")
