"""Training batches streamed from uint8 images that stay where they are (memory-mapped from the image cache):
each batch is cut, scaled to [0, 1] and handed to Keras when it is needed, so a folder larger than memory trains
with flat memory. Keras's own ``PyDataset``: it reshuffles every epoch (seeded) and works with ``fit``,
``evaluate`` and ``predict`` alike."""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
import numpy as np

Part = tuple[np.ndarray, np.ndarray]  # images (n, height, width, channels) uint8, and their labels


class ImageBatches(keras.utils.PyDataset):
    """Batches of the images of one or more parts (training and validation together, for a refit), in a seeded
    order reshuffled every epoch, or in their order when ``seed`` is None."""

    def __init__(self, parts: Sequence[Part], batch_size: int, seed: int | None = None):
        super().__init__()
        self.parts, self.batch_size = list(parts), batch_size
        self.rows = np.concatenate([np.stack([np.full(len(y), p), np.arange(len(y))], axis=1)
                                    for p, (_, y) in enumerate(self.parts)])
        self.rng = None if seed is None else np.random.default_rng(seed)
        self.order = np.arange(len(self.rows)) if self.rng is None else self.rng.permutation(len(self.rows))

    def __len__(self) -> int:
        return math.ceil(len(self.rows) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        chosen = self.rows[self.order[index * self.batch_size:(index + 1) * self.batch_size]]
        xs, ys = [], []
        for p, (x, y) in enumerate(self.parts):
            rows = np.sort(chosen[chosen[:, 0] == p, 1])  # in file order: reads from the mapped file stay sequential
            xs.append(x[rows])
            ys.append(y[rows])
        return np.concatenate(xs).astype(np.float32) / 255.0, np.concatenate(ys)

    def on_epoch_end(self) -> None:
        if self.rng is not None:
            self.order = self.rng.permutation(len(self.rows))


def predict_images(model: keras.Model, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """The model's outputs for stored uint8 images, streamed in batches."""
    return model.predict(ImageBatches([(x, np.zeros(len(x)))], batch_size), verbose=0)
