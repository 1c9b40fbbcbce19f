"""The Jupyter kernel the book runs each notebook in: this interpreter, over IPC (local sockets), not TCP.

jupyter_client is imported when a manager class is built, not at module level.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any


def ipc_kernel_manager(socket_dir: str | os.PathLike[str] | None = None) -> type:
    """A jupyter_client kernel manager class that talks to its kernel over local (IPC) sockets, not TCP.

    ipykernel warns "Kernel is running over TCP without encryption" at every start over TCP; over IPC nothing
    leaves the machine, so there is nothing to warn about. The socket files go to ``socket_dir`` (default: the
    temporary folder) under a short name, as a Unix socket path must stay under about 100 characters. On
    Windows, which has no IPC transport, the kernel stays on TCP.
    """
    import tempfile
    import uuid

    from jupyter_client.manager import AsyncKernelManager

    folder = str(socket_dir) if socket_dir is not None else tempfile.gettempdir()

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs: Any) -> None:
            if sys.platform != "win32":
                kwargs.setdefault("transport", "ipc")
            super().__init__(**kwargs)
            if self.transport == "ipc" and "ip" not in kwargs:
                self.ip = os.path.join(folder, f"kernel-{uuid.uuid4().hex[:8]}")

    return IPCKernelManager


def current_python_kernel_manager(socket_dir: str | os.PathLike[str] | None = None) -> type:
    """A jupyter_client kernel manager class that starts ``sys.executable -m ipykernel_launcher``.

    No kernelspec lookup is involved, so a ``python3`` kernelspec from another environment cannot shadow this
    interpreter. The kernel also gets this checkout's package on ``PYTHONPATH``, so the notebooks import the
    same ``dmlbook`` as the runner. It connects over IPC, with its sockets in ``socket_dir``
    (:func:`ipc_kernel_manager`).
    """
    from jupyter_client.kernelspec import KernelSpec

    package_root = str(Path(__file__).resolve().parents[2])  # the folder holding dmlbook/
    pythonpath = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)

    class CurrentPythonKernelManager(ipc_kernel_manager(socket_dir)):
        @property
        def kernel_spec(self) -> KernelSpec:
            if self._kernel_spec is None:
                self._kernel_spec = KernelSpec(
                    argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                    display_name=f"Python ({sys.executable})",
                    language="python",
                    env={"PYTHONPATH": pythonpath},
                )
            return self._kernel_spec

    return CurrentPythonKernelManager
