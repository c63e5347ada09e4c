"""Mini-batches from in-memory arrays: `DataLoader`, PyTorch's `torch.utils.data` cut down to
what a training loop over NumPy arrays needs.

Nothing in it knows about images or a particular dataset: it shuffles, batches and moves
arrays to a device, and hands each batch to an optional `transform` (image augmentation and
normalization live with the datasets in the package that uses them, as torchvision's
transforms live outside torch).

Randomness and exact resume.  One `np.random.Generator` drives everything.  At the start of
each epoch the loader draws (1) the permutation of the samples and (2) one 63-bit seed; batch
`b` of the epoch gets its own generator `np.random.default_rng([epoch_seed, b])` for its
transform.  So an epoch is a pure function of the generator state at its start, and
`state_dict()` -- that state plus how many batches of the epoch were already handed out -- is
enough to replay the same epoch from any batch after a restart, bit for bit.
"""
import copy

import numpy as np

from . import backend
from .autograd import Tensor

__all__ = ["DataLoader"]


class DataLoader:
    """Iterate over aligned arrays in mini-batches.

        loader = DataLoader((images, labels), batch_size=64, shuffle=True, drop_last=True,
                            seed=0, transform=augment, device="cuda")
        for x, y in loader:          # Tensors on `device`
            ...

    arrays:     a tuple of arrays with equal first dimension (the samples), e.g. (x, y).
    transform:  optional `transform(batch_arrays, rng) -> batch_arrays`, called on the host
                with the batch's own `np.random.Generator`; it should work on the whole batch
                at once (no loop over samples).
    drop_last:  drop the last batch when it is smaller than `batch_size` (training: every step
                then sees the same batch size, which matters for BatchNorm).
    device:     "cpu" or "cuda"; each batch is copied there once, after the transform.
    """

    def __init__(self, arrays, batch_size=1, shuffle=False, drop_last=False, transform=None,
                 device="cpu", seed=None):
        if not isinstance(arrays, (tuple, list)) or not arrays:
            raise TypeError("DataLoader wants a tuple of arrays, e.g. DataLoader((x, y), ...)")
        n = len(arrays[0])
        if any(len(a) != n for a in arrays):
            raise ValueError("DataLoader: the arrays have different lengths "
                             f"{[len(a) for a in arrays]}; they must hold the same samples")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.arrays = tuple(arrays)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.transform = transform
        self.device = device
        self.generator = np.random.default_rng(seed)
        self._epoch_state = copy.deepcopy(self.generator.bit_generator.state)
        self._done = 0        # batches of the current epoch handed out so far
        self._start = 0       # first batch of the next epoch (set by load_state_dict)

    def __len__(self):
        n, b = len(self.arrays[0]), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __iter__(self):
        start, self._start = self._start, 0
        g = self.generator
        self._epoch_state = copy.deepcopy(g.bit_generator.state)
        n = len(self.arrays[0])
        order = g.permutation(n) if self.shuffle else np.arange(n)
        epoch_seed = int(g.integers(2 ** 63))
        for b in range(start, len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            batch = tuple(a[idx] for a in self.arrays)
            if self.transform is not None:
                batch = self.transform(batch, np.random.default_rng([epoch_seed, b]))
            self._done = b + 1
            yield tuple(Tensor(backend.to_device(a, self.device)) for a in batch)
        # Epoch finished: the next one starts from the generator's current state.
        self._epoch_state = copy.deepcopy(g.bit_generator.state)
        self._done = 0

    def state_dict(self):
        """Generator state at the start of the epoch in progress, and the batches already
        handed out in it (0 between epochs).  Plain Python values (JSON-friendly)."""
        return {"generator": copy.deepcopy(self._epoch_state), "batch": self._done}

    def load_state_dict(self, state):
        """Restore `state_dict()`: the next iteration replays that epoch from its next batch."""
        self.generator.bit_generator.state = copy.deepcopy(state["generator"])
        self._epoch_state = copy.deepcopy(state["generator"])
        self._start = self._done = int(state["batch"])
