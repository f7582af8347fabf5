"""Model identity: the one string that names a retrieval model wherever it is recorded.

An index's manifest, a footprint's ``model_version`` column and the service's active model all
use ``"<architecture>:<sha256 of the weights file>"``; a randomly initialised network (tests,
benchmarks) is ``"<architecture>:random-init-seed<N>"``.
"""

from __future__ import annotations

from pathlib import Path

from index.files import sha256_file

RANDOM_INIT = "random-init"


def model_identity(architecture: str, weights_sha256: str) -> str:
    """The identity of a model whose weights file has this sha256."""
    if not architecture:
        raise ValueError("the model's architecture is needed to name it")
    return f"{architecture}:{weights_sha256}"


def random_init_identity(architecture: str, seed: int = 0) -> str:
    """The identity of ``create_model(architecture)`` initialised after ``torch.manual_seed(seed)``."""
    if not architecture:
        raise ValueError("the model's architecture is needed to name it")
    return f"{architecture}:{RANDOM_INIT}-seed{seed}"


def weights_identity(architecture: str | None, weights: Path | str | None = None, *, seed: int = 0,
                     net=None) -> str:  # noqa: ANN001
    """The identity of a weights file (hashed), or of the random init when ``weights`` is None.

    For an ONNX file ``architecture`` may be None: it is taken from the loaded ``net``'s config.
    """
    if architecture is None and net is not None:
        architecture = net.config.arch
    if weights is None:
        return random_init_identity(architecture, seed)
    return model_identity(architecture, sha256_file(Path(weights)))
