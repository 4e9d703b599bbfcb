"""Embedding networks: a small CNN and an MLP.

Taught in 00_start_here.

Both map images (N, 1, 28, 28) (or (N, 28, 28), or flat (N, 784)) to
embeddings (N, embedding_dim); ``normalize=True`` puts the embeddings on the
unit hypersphere (needed by the cosine losses and the angular heads).
"""

from __future__ import annotations

import torch
from torch import nn

from .core.cache import cached, fingerprint
from .core.validate import check_int
from .data import to_float


def _as_images(x: torch.Tensor) -> torch.Tensor:
    if x.ndim == 2:
        x = x.view(-1, 1, 28, 28)
    elif x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4:
        raise ValueError(
            "expected images of shape (N, 1, 28, 28), (N, 28, 28) or (N, 784); got "
            f"{tuple(x.shape)}."
        )
    return x.float()


class SmallCNN(nn.Module):
    """Three conv blocks (conv 3x3, batch norm, ReLU), two max-pools, global
    average pooling and a linear layer to the embedding.

    Parameters
    ----------
    embedding_dim : int, default 64
    normalize : bool, default False; L2-normalise the output
    width : int, default 32; channels of the first block (then 2x, 4x)
    """

    def __init__(self, embedding_dim: int = 64, normalize: bool = False, width: int = 32):
        super().__init__()
        self.embedding_dim = check_int("embedding_dim", embedding_dim, min_value=1)
        width = check_int("width", width, min_value=1)
        self.normalize = bool(normalize)

        def block(cin, cout):
            return [
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            ]

        self.features = nn.Sequential(
            *block(1, width),
            nn.MaxPool2d(2),
            *block(width, 2 * width),
            nn.MaxPool2d(2),
            *block(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.feature_dim = 4 * width
        self.head = nn.Linear(self.feature_dim, self.embedding_dim)
        # Channels-last ("NHWC") memory: the same convolutions, faster on a CPU (on 2 cores: a
        # training step about 1.3x, embedding about 1.65x); results differ from NCHW only by
        # rounding.
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _as_images(x).contiguous(memory_format=torch.channels_last)
        z = self.head(self.features(x))
        return nn.functional.normalize(z, dim=1) if self.normalize else z


class MLP(nn.Module):
    """Fully connected network: flatten, hidden layers with ReLU, linear to the embedding.

    Parameters
    ----------
    embedding_dim : int, default 64
    hidden : tuple of int, default (256,)
    in_features : int, default 784
    normalize : bool, default False
    """

    def __init__(
        self,
        embedding_dim: int = 64,
        hidden=(256,),
        in_features: int = 784,
        normalize: bool = False,
    ):
        super().__init__()
        self.embedding_dim = check_int("embedding_dim", embedding_dim, min_value=1)
        in_features = check_int("in_features", in_features, min_value=1)
        hidden = tuple(check_int("hidden[i]", h, min_value=1) for h in hidden)
        self.normalize = bool(normalize)
        layers, d = [nn.Flatten()], in_features
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU(inplace=True)]
            d = h
        layers.append(nn.Linear(d, self.embedding_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.net(x.float() if x.ndim == 2 else x.float().flatten(1))
        return nn.functional.normalize(z, dim=1) if self.normalize else z


@torch.no_grad()
def embed(
    model: nn.Module,
    images: torch.Tensor,
    *,
    batch_size: int = 1024,
    device=None,
    name: str | None = None,
    cache: bool = False,
) -> torch.Tensor:
    """Embeddings of ``images`` (uint8 or float) in eval mode, without gradients,
    returned on the CPU. ``name`` standardises uint8 images with that dataset's
    statistics (as the trainer does).

    cache : True keeps the embeddings in the result cache (:func:`dmlcourse.core.cache.cached`,
        taught in 00_start_here), keyed by the network's class and weights (every parameter and
        buffer, to the bit), the images, ``name`` and ``batch_size``: a re-run with a network
        loaded from the cache loads its embeddings too (embedding 60,000 images with the small
        CNN takes seconds on a CPU). A network whose weights differ in any bit (retrained, or
        trained further) is another key. Default False."""
    batch_size = check_int("batch_size", batch_size, min_value=1)
    if not isinstance(cache, bool):
        raise TypeError(f"cache must be True or False, got {cache!r}.")
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}.")
    if cache:
        config = dict(
            model=type(model).__qualname__,
            weights=fingerprint(model.state_dict().items()),
            images=fingerprint([("images", images)]),
            name=name,
            batch_size=batch_size,
        )
        return cached(
            "embeddings/embedding",
            config,
            lambda: embed(model, images, batch_size=batch_size, device=device, name=name),
        )
    if device is None:
        p = next(model.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    out = []
    try:
        for s in range(0, len(images), batch_size):
            x = images[s : s + batch_size]
            x = to_float(x, name) if x.dtype == torch.uint8 else x
            out.append(model(x.to(device)).float().cpu())
    finally:
        model.train(was_training)
    if not out:
        raise ValueError("images is empty; there is nothing to embed.")
    return torch.cat(out)
