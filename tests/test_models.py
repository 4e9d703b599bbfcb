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


def _plain_layout_forward(model: models.SmallCNN, x: torch.Tensor) -> torch.Tensor:
    """The same network in PyTorch's default (NCHW, contiguous) memory layout: the reference."""
    import copy

    ref = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    for p in ref.parameters():
        assert p.is_contiguous()
    return ref.head(ref.features(x.contiguous()))


def test_small_cnn_channels_last_computes_the_plain_layout_function():
    torch.manual_seed(0)
    model = models.SmallCNN(8).train()
    x = torch.randn(6, 1, 28, 28, requires_grad=True)
    assert model.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    ours, ref = model(x), _plain_layout_forward(model, x)
    assert torch.allclose(ours, ref, atol=1e-5)
    # the gradient a training step uses, w.r.t. the input and the first weights
    (g_ours,) = torch.autograd.grad(ours.square().sum(), x)
    (g_ref,) = torch.autograd.grad(ref.square().sum(), x)
    assert torch.allclose(g_ours, g_ref, atol=1e-5)


def test_small_cnn_loads_a_state_saved_in_the_plain_layout():
    # results cached before the channels-last change hold NCHW weights; they must load unchanged
    torch.manual_seed(1)
    old = models.SmallCNN(8).to(memory_format=torch.contiguous_format).eval()
    state = {k: v.contiguous() for k, v in old.state_dict().items()}
    new = models.SmallCNN(8).eval()
    new.load_state_dict(state)
    x = torch.randn(4, 1, 28, 28)
    assert torch.allclose(new(x), _plain_layout_forward(old, x), atol=1e-5)
    assert new.features[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_embed_cache_gives_the_same_embeddings_keyed_on_weights_and_images(tmp_path, monkeypatch):
    monkeypatch.setenv("DMLCOURSE_CACHE_DIR", str(tmp_path))
    torch.manual_seed(0)
    model = models.SmallCNN(8)
    images = torch.randint(0, 256, (40, 28, 28), dtype=torch.uint8)
    fresh = models.embed(model, images, name="mnist")
    stored = models.embed(model, images, name="mnist", cache=True)
    assert torch.equal(stored, fresh)  # caching does not change the embeddings
    assert len(list(tmp_path.rglob("embedding-*.pt"))) == 1

    calls = []
    hook = model.register_forward_hook(lambda *args: calls.append(1))
    assert torch.equal(models.embed(model, images, name="mnist", cache=True), fresh)
    assert calls == []  # loaded, not computed
    # another image, another normalisation, another batch size: computed, not loaded
    other = images.clone()
    other[0, 0, 0] ^= 1
    variants = [
        ((other,), {}),
        ((images,), {"name": "fashion-mnist"}),
        ((images,), {"batch_size": 7}),
    ]
    for args, kwargs in variants:
        calls.clear()
        models.embed(model, *args, **{"name": "mnist", "cache": True, **kwargs})
        assert calls, (args[0] is other, kwargs)
    # one weight changed by the smallest step: another network, another key
    with torch.no_grad():
        w = next(model.parameters())
        w.view(-1)[0] = torch.nextafter(w.view(-1)[0], torch.tensor(float("inf")))
    calls.clear()
    changed = models.embed(model, images, name="mnist", cache=True)
    assert calls and torch.equal(changed, models.embed(model, images, name="mnist"))
    hook.remove()
    with pytest.raises(TypeError, match="cache must be True or False, got 'yes'"):
        models.embed(model, images, cache="yes")
    with pytest.raises(TypeError, match="images must be a torch.Tensor, got list"):
        models.embed(model, [[0.0]])
