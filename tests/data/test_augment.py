"""Batch augmentation keeps shapes and labels, is seeded, and moves pixels only as intended."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from loopformer.data.augment import normalize, random_crop, random_hflip


@settings(max_examples=25, deadline=None)
@given(b=st.integers(1, 6), c=st.integers(1, 3), h=st.integers(2, 12), w=st.integers(2, 12),
       pad=st.integers(0, 4), seed=st.integers(0, 2**31 - 1))
def test_crop_and_flip_keep_shape_and_are_seeded(b, c, h, w, pad, seed):
    x = torch.rand(b, c, h, w)
    a = random_hflip(random_crop(x, pad, torch.Generator().manual_seed(seed)), 0.5,
                     torch.Generator().manual_seed(seed))
    again = random_hflip(random_crop(x, pad, torch.Generator().manual_seed(seed)), 0.5,
                         torch.Generator().manual_seed(seed))
    assert a.shape == x.shape
    assert torch.equal(a, again)


def test_crop_is_a_shifted_window_of_the_zero_padded_image():
    x = torch.arange(2 * 1 * 5 * 5, dtype=torch.float32).reshape(2, 1, 5, 5) + 1
    out = random_crop(x, 2, torch.Generator().manual_seed(3))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):
        hits = [(dy, dx) for dy in range(5) for dx in range(5)
                if torch.equal(padded[i, :, dy : dy + 5, dx : dx + 5], out[i])]
        assert hits, "each crop must equal one window of the padded image"


def test_flip_mirrors_only_chosen_images_and_keeps_pixel_sets():
    x = torch.rand(64, 1, 4, 6)
    out = random_hflip(x, 0.5, torch.Generator().manual_seed(0))
    flipped = [torch.equal(out[i], x[i].flip(-1)) for i in range(64)]
    kept = [torch.equal(out[i], x[i]) for i in range(64)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 10 < sum(flipped) < 54
    assert torch.equal(random_hflip(x, 0.0), x)


def test_task_batches_keep_labels_with_their_images():
    import numpy as np

    from loopformer.tasks.vision import VisionConfig, VisionTask

    rng = np.random.RandomState(0)
    # each image is a constant equal to its label * 20: augmentation must not mix images
    labels = rng.randint(0, 10, size=300)
    images = np.repeat((labels * 20 + 10).astype(np.uint8)[:, None, None], 28, 1).repeat(28, 2)
    splits = {"train": (images, labels), "val": (images[:50], labels[:50])}
    task = VisionTask(VisionConfig(batch_size=32, crop_padding=0, hflip=True), splits)
    plan = task.batch_plan(epoch=0, seed=1)
    assert len(plan) == 300 // 32
    assert plan == task.batch_plan(epoch=0, seed=1) and plan != task.batch_plan(epoch=1, seed=1)
    batch = task.make_batch(plan[0])
    assert batch["images"].shape == (32, 1, 28, 28) and batch["labels"].shape == (32,)
    raw = batch["images"] * task.cfg.std + task.cfg.mean
    values = (raw.mean(dim=(1, 2, 3)) * 255).round()
    assert torch.equal(values, (batch["labels"] * 20 + 10).float())


def test_normalize():
    x = torch.full((1, 1, 2, 2), 0.5)
    assert torch.allclose(normalize(x, 0.25, 0.5), torch.full_like(x, 0.5))
