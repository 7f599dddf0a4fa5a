"""gva's error root: every error a *user* can cause (bad params, bad input files, a run that
cannot go on) is a :class:`GvaError`; the CLI prints those as one line (``-v``: with the
traceback) and exits 2. Anything else is a bug and keeps its traceback.

The concrete classes live here so that a module can raise them without importing another
stage's code; each also derives from the builtin it used to be (``ValueError`` /
``RuntimeError``), so ``except ValueError`` in user code keeps working.
"""

from __future__ import annotations

import errno


class GvaError(Exception):
    """Base of every user-facing gva error; the message names the file / param and the problem."""


class ConfigError(GvaError, ValueError):
    """A params file that cannot be used; the message names the file and the key."""


class DatasetError(GvaError, ValueError):
    """A dataset source that is not usable Tiny ImageNet (or another supported layout)."""


class StoreError(GvaError, ValueError):
    """A store on disk that does not satisfy the contract; the message names the file."""


class GenerationError(GvaError, RuntimeError):
    """Clip generation cannot run or cannot finish (model not loadable, a rank failed ...)."""


class InflationError(GvaError, ValueError):
    """The network cannot be inflated; the message names the layer."""


class PretrainedWeightsError(GvaError, RuntimeError):
    """ImageNet weights were asked for but could not be obtained (typically: offline)."""


class CheckpointError(GvaError, ValueError):
    """A model file that is missing, unreadable, or does not fit the run."""


class NonFiniteLossError(GvaError, RuntimeError):
    """The loss became NaN or infinite; training stops rather than save a broken model."""


class PredictError(GvaError, ValueError):
    """A checkpoint, run or argument that cannot be used for prediction."""


class ReportError(GvaError, ValueError):
    """Input the report cannot use; the message says which."""


class DistributedError(GvaError, RuntimeError):
    """A process group that cannot be set up or a rank that failed."""


class DeviceError(GvaError, ValueError):
    """A device param that names no usable device."""


class NoSpaceError(GvaError, OSError):
    """The disk (or the quota) filled up while an output was written; the message names the
    output. An ``OSError`` with errno ENOSPC, so ``except OSError`` still sees it."""

    def __init__(self, path: object, detail: str = ""):
        super().__init__(errno.ENOSPC, "No space left on device", str(path))
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.filename}: no space left on device{self.detail}"


__all__ = ["GvaError", "ConfigError", "DatasetError", "StoreError", "GenerationError",
           "InflationError", "PretrainedWeightsError", "CheckpointError", "NonFiniteLossError",
           "PredictError", "ReportError", "DistributedError", "DeviceError", "NoSpaceError"]
