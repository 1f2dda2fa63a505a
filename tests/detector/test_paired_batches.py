"""Training batches keep a real face beside the fake made from its source video, transformed alike."""

import numpy as np

from services.detector.training import dataset as datasets
from services.detector.training.augment import AugmentConfig, augment
from services.detector.training.train import TrainConfig, _train_dataset, pair_units


def sample(index, fake, video):
    return datasets.Sample(f"{index}.png", fake, "train", video)


def test_pair_units_match_each_real_with_a_fake_of_its_video():
    samples = [sample(0, 1, "a"), sample(1, 0, "b"), sample(2, 0, "a"), sample(3, 1, "b"), sample(4, 1, "b"),
               sample(5, 0, "")]
    assert pair_units(samples) == [[1, 3], [2, 0], [4], [5]]


def test_the_same_seed_gives_the_same_transform_and_another_seed_another():
    image = np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)
    config = AugmentConfig(jpeg_probability=1.0, blur_probability=0.5)
    first = augment(image, config, np.array([3, 1], np.int32)).numpy()
    assert np.array_equal(first, augment(image, config, np.array([3, 1], np.int32)).numpy())
    assert not np.allclose(first, augment(image, config, np.array([3, 2], np.int32)).numpy())


def test_an_epoch_batches_each_pair_together_under_one_transform():
    rng = np.random.default_rng(1)
    originals = rng.integers(0, 255, (6, 32, 32, 3), np.uint8)
    # Each fake is a pixel copy of its real original, so a pair augmented alike stays identical.
    images = np.concatenate([originals, originals])
    fake = np.array([0] * 6 + [1] * 6)
    samples = [sample(i, int(fake[i]), f"video-{i % 6}") for i in range(12)]
    split = datasets.Split("train", images, fake, samples)
    config = TrainConfig(data="", arch="meso4", out="", batch_size=4)
    for epoch in (0, 1):
        for batch, target, _ in _train_dataset(split, config, epoch):
            batch, real = batch.numpy(), target.numpy()[:, 0]
            reals, fakes = batch[real == 1], batch[real == 0]
            assert len(reals) == len(fakes) == 2
            assert any(np.array_equal(fakes[0], r) for r in reals) and any(np.array_equal(fakes[1], r) for r in reals)
            assert not np.array_equal(reals[0], reals[1])
