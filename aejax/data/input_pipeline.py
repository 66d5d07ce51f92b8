"""Image (and ratings) data kept on the device; shuffling, batching and dynamic binarisation happen inside the step.

A whole MNIST split is 47 MB of uint8, so it lives on the accelerator and the train step gathers
its own batch: no host round-trip per step. Binary data sets (`catalog.Dataset.packed`: dSprites) stay 8 pixels a
byte on the device, as they are stored: all 737,280 dSprites images take 377 MB so (3.0 GB unpacked); a batch
unpacks only its own rows.
"""
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import config_dict

from aejax.data import catalog, datasets, ratings
from aejax.registry import Batch

# Binarisation draws one fixed sample per split, the same for every run: the test split's depends on nothing else
# (not on how many train images, or which digits, a run keeps), so test metrics compare across runs. (Seed 0 for
# the test split keeps the sample that dynamic-binarisation runs have always been evaluated on.)
_BINARIZE_SEEDS = {"train": 1, "test": 0}


_MIN_STD = 1e-2  # Pixels whose train std is below this (MNIST's always-black border) are scaled by 1, not 1/std.
_STATS_CHUNK = 65_536  # Packed images unpacked at a time for their statistics (268 MB of dSprites' bits).


@flax.struct.dataclass
class Split:
  """uint8 images (N, H, W, C) with values 0..255 and int32 labels (N,), on device; for a data set with
  ground-truth factors (`catalog.Dataset.factor_names`), each image's factor indices, int32 (N, number of factors);
  with `data.standardize`, the train split's per-pixel mean and standard deviation (H, W, C) of images in [0, 1] (on
  both splits); for a variant of two domains (`registry.Variant.second_data`), the same split of the second domain's
  data set, `other`. A binary data set's images are kept packed, 8 pixels a byte (N, H·W·C / 8), with their shape in
  `packed_shape`: read them through `image_shape`, `pixels` and `host_pixels`."""
  images: jax.Array
  labels: jax.Array
  factors: jax.Array | None = None
  pixel_mean: jax.Array | None = None
  pixel_std: jax.Array | None = None
  other: "Split | None" = None
  # A ratings data set's split (`aejax.data.ratings`): `images` are rows of rating codes (N, D), `labels` each
  # row's user or item index, `targets` the codes scored (None: the rows themselves) and `targets_per_row` their
  # mean count per row.
  targets: jax.Array | None = None
  targets_per_row: float = flax.struct.field(pytree_node=False, default=0.0)
  is_ratings: bool = flax.struct.field(pytree_node=False, default=False)
  packed_shape: tuple[int, int, int] | None = flax.struct.field(pytree_node=False, default=None)

  @property
  def size(self) -> int:
    return self.images.shape[0]

  @property
  def image_shape(self) -> tuple[int, ...]:
    """One example's shape: (H, W, C) for images, (D,) for rows of ratings."""
    return self.packed_shape or tuple(self.images.shape[1:])

  def pixels(self, rows: jax.Array) -> jax.Array:
    """The uint8 images (values 0..255) of `rows`, on the device, unpacked where the split keeps them packed."""
    images = self.images[rows]
    if self.packed_shape is None:
      return images
    bits = jnp.unpackbits(images, axis=-1, count=int(np.prod(self.packed_shape)))
    return (bits * 255).reshape(*images.shape[:-1], *self.packed_shape)

  def host_pixels(self) -> np.ndarray:
    """All the split's uint8 images (values 0..255) as a NumPy array, unpacked on the host where the split keeps
    them packed (so that the device never holds a whole unpacked copy)."""
    images = np.asarray(self.images)
    return images if self.packed_shape is None else datasets.unpack(images, self.packed_shape)


def _binarize_once(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  return np.where(rng.random(images.shape) < images / 255.0, 255, 0).astype(np.uint8)


def load_domains(data: config_dict.ConfigDict, second: config_dict.ConfigDict | None) -> tuple[Split, Split]:
  """`load(data)`, with each split's `other` the same split of `second` (None: one domain)."""
  train, test = load(data)
  if second is None:
    return train, test
  other_train, other_test = load(second)
  return train.replace(other=other_train), test.replace(other=other_test)


def load(data: config_dict.ConfigDict) -> tuple[Split, Split]:
  """The train and test splits named by `config.data`, on the default device.

  `data.train_labels`, when not empty, keeps only those digits in the train split (`num_train` then counts the
  kept images). `data.with_test` appends the test split's examples to the train split. 'static' binarisation
  samples both splits once; 'dynamic' resamples each train batch (`make_batch`) and samples the test split once so
  that evaluations are comparable. A binary data set's images stay packed (binarising them changes nothing).
  """
  if catalog.is_ratings(data.name):
    return _load_ratings(data)
  splits = []
  keep = tuple(data.train_labels)
  packed_shape = catalog.image_shape(data.name, data.resize) if catalog.get(data.name).packed else None
  for split, limit in (("train", data.num_train), ("test", data.num_test)):
    filtered = split == "train" and bool(keep)
    examples = datasets.load_examples(data.name, split, data_dir=data.data_dir, manual_dir=data.manual_dir,
                                      download=data.download, num_examples=None if filtered else limit,
                                      resize=data.resize, packed=packed_shape is not None)
    if filtered:
      kept = np.flatnonzero(np.isin(examples["label"], keep))[:limit]
      examples = {key: value[kept] for key, value in examples.items()}
    images = examples["image"]
    if packed_shape is None and (data.binarize == "static" or (data.binarize == "dynamic" and split == "test")):
      images = _binarize_once(images, np.random.default_rng(_BINARIZE_SEEDS[split]))
    factors = examples.get("factors")
    splits.append(Split(jnp.asarray(images), jnp.asarray(examples["label"], jnp.int32),
                        None if factors is None else jnp.asarray(factors, jnp.int32), packed_shape=packed_shape))
  if data.with_test:  # The test split's examples after the train split's own (deep clustering's protocol).
    train, test = splits
    splits[0] = train.replace(images=jnp.concatenate([train.images, test.images]),
                              labels=jnp.concatenate([train.labels, test.labels]),
                              factors=None if train.factors is None else jnp.concatenate([train.factors, test.factors]))
  if data.standardize:
    splits = [split.replace(**_pixel_stats(splits[0])) for split in splits]
  return splits[0], splits[1]


def _pixel_stats(train: Split) -> dict[str, jax.Array]:
  """The train split's per-pixel mean and standard deviation of images in [0, 1] (at least `_MIN_STD`), float32.
  A packed split's images are 0 or 1, so its mean p is its share of ones and its deviation sqrt(p (1 - p)): counted
  from the bits, without unpacking the split in float64 (24 GB for dSprites)."""
  if train.packed_shape is None:
    images = np.asarray(train.images, np.float64) / 255.0
    mean, std = images.mean(0), images.std(0)
  else:
    ones = np.zeros(int(np.prod(train.packed_shape)), np.int64)
    for start in range(0, train.size, _STATS_CHUNK):
      bits = np.unpackbits(np.asarray(train.images[start:start + _STATS_CHUNK]), axis=-1, count=ones.size)
      ones += bits.sum(0, np.int64)
    mean = (ones / train.size).reshape(train.packed_shape)
    std = np.sqrt(mean * (1.0 - mean))
  return {"pixel_mean": jnp.asarray(mean, jnp.float32),
          "pixel_std": jnp.asarray(np.maximum(std, _MIN_STD), jnp.float32)}


def _load_ratings(data: config_dict.ConfigDict) -> tuple[Split, Split]:
  """The train and test splits of a ratings data set by `data.ratings`' protocol, on the default device."""
  m = ratings.matrices(data)

  def split(inputs: jax.Array, ids: np.ndarray, targets: np.ndarray | None) -> Split:
    scored = inputs if targets is None else targets
    return Split(inputs, jnp.asarray(ids, jnp.int32), targets=None if targets is None else jnp.asarray(targets),
                 targets_per_row=float(jnp.count_nonzero(scored)) / len(scored), is_ratings=True)

  train = jnp.asarray(m.train)
  test_inputs = train if m.test_inputs is m.train else jnp.asarray(m.test_inputs)  # Explicit: one copy of both.
  return split(train, m.train_ids, None), split(test_inputs, m.test_ids, m.test_targets)


def _ratings_batch(split: Split, indices: jax.Array) -> Batch:
  """Rows `indices` of a ratings split: 'ratings' (B, D) float32 (0 where there is none), 'targets' the ratings
  scored, 'label' each row's user or item index, 'targets_per_row' the split's mean count of targets (B,)."""
  x = split.images[indices].astype(jnp.float32) * ratings.CODE_SCALE
  targets = x if split.targets is None else split.targets[indices].astype(jnp.float32) * ratings.CODE_SCALE
  return {"ratings": x, "targets": targets, "label": split.labels[indices],
          "targets_per_row": jnp.full(indices.shape, split.targets_per_row, jnp.float32)}


def make_batch(split: Split, indices: jax.Array, key: jax.Array, dynamic_binarize: bool) -> Batch:
  """Gathers `indices` as float32 images in [0, 1] (Bernoulli-sampled if `dynamic_binarize`), with their factor
  indices ('factors', int32 (B, number of factors)) where the split has them, with the split's pixel statistics
  where it has them, and with a second domain's split as many of its examples, 'other_image' and 'other_label':
  example i % its size beside example i (unpaired domains: which B image sits beside which A image is arbitrary,
  and this way it is a function of the step alone, so that resume replays it)."""
  if split.is_ratings:
    return _ratings_batch(split, indices)
  x = split.pixels(indices).astype(jnp.float32) / 255.0
  if dynamic_binarize:
    x = jax.random.bernoulli(key, x).astype(jnp.float32)
  stats = {} if split.pixel_mean is None else {"pixel_mean": split.pixel_mean, "pixel_std": split.pixel_std}
  batch = {"image": x, "label": split.labels[indices], "index": indices.astype(jnp.int32), **stats}
  if split.factors is not None:
    batch["factors"] = split.factors[indices]
  if split.other is not None:
    other = make_batch(split.other, indices % split.other.size, jax.random.fold_in(key, 1), dynamic_binarize)
    batch.update(other_image=other["image"], other_label=other["label"])
  return batch


def epoch_permutation(key: jax.Array, epoch: int | jax.Array, size: int) -> jax.Array:
  """The shuffled example order of `epoch`: a function of the key and epoch only, so resume replays it."""
  return jax.random.permutation(jax.random.fold_in(key, epoch), size)
