"""Every registered family, built tiny: shapes, value range, labels honoured, determinism, batch independence.

Guards: gen_aug/models/registry.py, gen_aug/models/cgan.py, gen_aug/models/cvae.py, gen_aug/models/cdm.py,
    gen_aug/models/layers.py, gen_aug/models/trainer.py, gen_aug/models/augment.py
"""

import pytest
import torch

from gen_aug.errors import GenaugError
from gen_aug.models import MODELS, build_model
from gen_aug.models.augment import diff_augment, parse_policy
from gen_aug.models.layers import padded_resolution

FAMILIES = sorted(MODELS)


def sample(model, labels, generator):
    """Images of `labels` from latents drawn from `generator`."""
    return model.generate(torch.randn(len(labels), model.z_dim, generator=generator), labels)


def tiny(family, resolution=8, channels=1, num_classes=3, **extra):
    config = dict(resolution=resolution, channels=channels, num_classes=num_classes, z_dim=8, width=4, **extra)
    if family == "cdm":
        config.setdefault("steps", 3)  # the sampler's cost, not its correctness, grows with steps
    return build_model(family, config).eval()


def latent_size(family, resolution, channels) -> int:
    """z_dim = 8 for the families that take one; the diffusion model's latent is its initial noise."""
    return channels * padded_resolution(resolution) ** 2 if family == "cdm" else 8


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("resolution,channels", [(8, 1), (28, 1), (13, 3), (64, 3), (100, 1)])
def test_generated_images_have_the_training_size_and_range(family, resolution, channels):
    model = tiny(family, resolution, channels)
    images = sample(model, torch.tensor([0, 1, 2, 2]), torch.Generator().manual_seed(0))
    assert images.shape == (4, channels, resolution, resolution)
    assert images.min() >= -1 and images.max() <= 1
    assert model.family == family and model.z_dim == latent_size(family, resolution, channels)
    assert model.config.resolution == resolution


@pytest.mark.parametrize("family", FAMILIES)
def test_sampling_is_seeded(family):
    model = tiny(family)
    labels = torch.tensor([0, 1, 2])
    first = sample(model, labels, torch.Generator().manual_seed(7))
    assert torch.equal(first, sample(model, labels, torch.Generator().manual_seed(7)))
    assert not torch.equal(first, sample(model, labels, torch.Generator().manual_seed(8)))


@pytest.mark.parametrize("family", FAMILIES)
def test_label_changes_the_image_and_batch_does_not(family):
    model = tiny(family)
    with torch.no_grad():
        for parameter in model.parameters():  # class embeddings start equal-ish; make labels matter
            parameter.add_(torch.randn(parameter.shape, generator=torch.Generator().manual_seed(1)) * 0.3)
    z = torch.randn(6, model.z_dim, generator=torch.Generator().manual_seed(3))
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    batch = model.generate(z, labels)
    alone = torch.cat([model.generate(z[i : i + 1], labels[i : i + 1]) for i in range(6)])
    # CPU kernels round differently per batch size and thread count: about 1e-6 for the GANs and VAEs
    # (8 float32 ulps at 1.0), 1e-4 after the U-Net's many steps, both far below a uint8 level (8e-3).
    # A batch that leaked between images would differ by far more; synthesis draws in one fixed batch
    # shape, so its bytes do not vary at all (test_cdm.py).
    torch.testing.assert_close(batch, alone, rtol=0, atol=1e-3 if family == "cdm" else 1e-5)
    relabelled = model.generate(z, (labels + 1) % 3)
    assert (relabelled - batch).abs().amax(dim=(1, 2, 3)).min() > 1e-3


@pytest.mark.parametrize("family", FAMILIES)
def test_a_training_step_changes_the_sampling_network(family):
    model = tiny(family)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    trainer = model.trainer(num_images=12, device=torch.device("cpu"))
    generator = torch.Generator().manual_seed(0)
    real = torch.rand(6, 1, 8, 8, generator=generator) * 2 - 1
    losses = trainer.step(real, torch.tensor([0, 1, 2, 0, 1, 2]), generator)
    assert all(torch.isfinite(value) for value in losses.values())
    assert any(not torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())


@pytest.mark.parametrize("family", FAMILIES)
def test_bf16_autocast_path_runs(family):
    trainer = tiny(family).trainer(num_images=12, device=torch.device("cpu"), amp_dtype=torch.bfloat16)
    generator = torch.Generator().manual_seed(0)
    losses = trainer.step(torch.rand(4, 1, 8, 8) * 2 - 1, torch.tensor([0, 1, 2, 0]), generator)
    assert all(torch.isfinite(value) for value in losses.values())


def test_unknown_family_lists_the_known_ones():
    with pytest.raises(GenaugError, match=r"unknown model 'cgn'; choose from cdm, cgan, cvae"):
        build_model("cgn", {})


@pytest.mark.parametrize(
    "change,message",
    [
        ({"resolution": 512}, r"resolution = 512 \(expected 8 to 256 pixels; resize the data with \?resolution=R\)"),
        ({"resolution": 4}, r"resolution = 4 \(expected 8 to 256"),
        ({"channels": 2}, r"channels = 2 \(expected 1 or 3\)"),
        ({"num_classes": 1}, r"num_classes = 1 \(expected 2 to 100,000 classes"),
        ({"width": "wide"}, r"width = 'wide' \(expected a whole number\)"),
        ({"depth": 3}, r"unknown key 'depth'"),
        ({"minibatch_std_group": -1}, r"minibatch_std_group = -1 \(expected 0 \(off\) or a group size\)"),
        ({"mode_seeking_weight": -0.5}, r"mode_seeking_weight = -0.5 \(expected 0 \(off\) or more\)"),
    ],
)
def test_bad_configs_are_one_line_errors(change, message):
    config = dict(resolution=8, channels=1, num_classes=3) | change
    with pytest.raises(GenaugError, match=message):
        build_model("cgan", config)


def test_cgan_augment_policy_is_checked():
    with pytest.raises(GenaugError, match=r"augment = 'flip'"):
        tiny("cgan", augment="flip")
    assert tiny("cgan", augment="off").trainer(10, torch.device("cpu")).policy == ()
    assert tiny("cgan").trainer(10, torch.device("cpu")).policy == ("translation", "color")
    assert tiny("cgan", resolution=28).trainer(10, torch.device("cpu")).policy == ("translation", "cutout", "color")
    assert tiny("cgan").trainer(10**6, torch.device("cpu")).policy == ()


def test_diff_augment_is_seeded_differentiable_and_keeps_shape():
    images = (torch.rand(5, 3, 8, 8) * 2 - 1).requires_grad_(True)
    policy = parse_policy("translation,cutout,color")
    out = diff_augment(images, policy, torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    assert torch.equal(out, diff_augment(images, policy, torch.Generator().manual_seed(0)))
    assert not torch.equal(out, images)
    out.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_minibatch_std_measures_the_spread_within_each_group():
    from gen_aug.models.cgan import minibatch_std

    same = torch.ones(8, 3, 4, 4)
    assert torch.allclose(minibatch_std(same, 4), torch.full((8, 1, 4, 4), 1e-4))  # sqrt of the 1e-8 floor
    varied = torch.arange(8.0)[:, None, None, None].expand(8, 3, 4, 4)
    spread = minibatch_std(varied, 4)[:, 0, 0, 0]
    # groups by position modulo 2: images 0, 2, 4, 6 and 1, 3, 5, 7, each spread sqrt(5)
    assert torch.allclose(spread, torch.full((8,), 5.0**0.5), atol=1e-4)
    assert minibatch_std(varied[:6], 4).shape == (6, 1, 4, 4)  # groups of 3: the largest divisor of 6 up to 4
    assert torch.equal(minibatch_std(varied[:1], 4), torch.zeros(1, 1, 4, 4))  # a batch of one has no spread


@pytest.mark.parametrize("options", [{"minibatch_std_group": 0}, {"mode_seeking_weight": 1.0}])
def test_cgan_diversity_options_train(options):
    trainer = tiny("cgan", **options).trainer(num_images=12, device=torch.device("cpu"))
    generator = torch.Generator().manual_seed(0)
    losses = trainer.step(torch.rand(6, 1, 8, 8) * 2 - 1, torch.tensor([0, 1, 2, 0, 1, 2]), generator)
    assert all(torch.isfinite(value) for value in losses.values())
    assert hasattr(trainer.discriminator, "after_std") == bool(trainer.discriminator.group)


def test_mode_seeking_rewards_images_that_differ():
    trainer = tiny("cgan", mode_seeking_weight=1.0).trainer(num_images=12, device=torch.device("cpu"))
    labels = torch.tensor([0, 1, 2, 0])
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
    # A generator that ignores z pays 1 / 1e-5; one that writes z into the image pays about 1.
    trainer.generator.generate = lambda latents, labels: torch.zeros(len(labels), 1, 8, 8)
    constant = trainer._mode_seeking_loss(torch.zeros(4, 1, 8, 8), z, labels, torch.Generator().manual_seed(1))
    trainer.generator.generate = lambda latents, labels: latents[:, :1, None, None].expand(-1, 1, 8, 8)
    following = trainer._mode_seeking_loss(z[:, :1, None, None].expand(-1, 1, 8, 8), z, labels,
                                           torch.Generator().manual_seed(1))
    assert constant > 1e4 and following < 10
