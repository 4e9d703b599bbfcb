"""models: shapes, normalisation, batch-independent embedding."""

import pytest
import torch

from dmlcourse import data, models


@pytest.mark.parametrize("cls", [models.SmallCNN, models.MLP])
def test_models_shapes_and_normalisation(cls):
    x = torch.randn(5, 1, 28, 28)
    assert cls(embedding_dim=7)(x).shape == (5, 7)
    z = cls(embedding_dim=3, normalize=True)(x)
    assert torch.allclose(z.norm(dim=1), torch.ones(5), atol=1e-5)
    with pytest.raises(ValueError, match="embedding_dim must be >= 1, got 0"):
        cls(embedding_dim=0)


def test_embed_is_batch_independent_and_on_cpu():
    m = models.SmallCNN(8)
    imgs = data.load("mnist", "test", "mini").images[:50]
    a = models.embed(m, imgs, batch_size=7, name="mnist")
    b = models.embed(m, imgs, batch_size=50, name="mnist")
    assert a.device.type == "cpu" and torch.allclose(a, b, atol=1e-5)
    assert m.training  # embed restores the mode
