"""Small RBMs trained by several protocols, scored by their exact test log-likelihood and by the `ais` suite.

An RBM of 20 hidden units has a partition function that can be enumerated (2^20 hidden states), so each protocol's
test log-likelihood is known exactly, and the AIS estimate the `ais` suite makes of the same model can be compared
with it. Each protocol is `experiments/rbm.py` with `latent_dim=20`, trained for `--epochs` epochs of full MNIST
(binarised afresh each batch) and the overrides listed in `PROTOCOLS`.

    python benchmarks/rbm_protocols.py --manual_dir ../shared/data/mnist --workdir /tmp/rbm_protocols
"""
import argparse
import pathlib
import time

import numpy as np

from aejax import config as config_lib, evaluate, train
from aejax.variants.boltzmann import ais, rbm

PROTOCOLS = {
    "CD-1, lr 0.05, momentum 0.9 (experiments/rbm.py)": {},
    "CD-1, lr 0.05, momentum 0.5": {"momentum": 0.5},
    "CD-1, lr 0.01, momentum 0.9": {"learning_rate": 0.01},
    "CD-1, static binarisation": {"data.binarize": "static"},
    "PCD-1, lr 0.05, momentum 0.9": {"rbm.persistent": True},
    "PCD-1, lr 0.02 cosine, momentum 0.9": {"rbm.persistent": True, "learning_rate": 0.02, "lr_schedule": "cosine"},
}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--manual_dir", required=True, help="folder of the four MNIST IDX .gz files")
  parser.add_argument("--workdir", required=True, help="where the runs go (one folder per protocol)")
  parser.add_argument("--epochs", type=int, default=5)
  args = parser.parse_args()
  print(f"{'protocol':<52} {'exact test LL':>14} {'AIS test LL [bracket]':>32} {'train minutes':>14}")
  for k, (name, overrides) in enumerate(PROTOCOLS.items()):
    config = config_lib.from_file("experiments/rbm.py")
    config.update_from_flattened_dict({"latent_dim": 20, "num_steps": 600 * args.epochs, "data.manual_dir":
                                       args.manual_dir, "wandb.mode": "disabled", "eval.suites": (),
                                       "eval_every": 600 * args.epochs, "checkpoint_every": 600 * args.epochs,
                                       **overrides})
    workdir = pathlib.Path(args.workdir) / f"protocol{k}"
    start = time.perf_counter()
    train.train_and_evaluate(config, workdir)
    minutes = (time.perf_counter() - start) / 60
    run = evaluate.restore(workdir)
    layer = rbm.unpack(run.state.params)
    test = run.test_images.reshape(len(run.test_images), -1)
    exact = float(np.mean(-np.asarray(ais.free_energy(*layer, test)))) - float(ais.log_partition_exact(*layer))
    report = evaluate.evaluate_run(workdir, ("ais",))
    bracket = f"{report['ais/test_log_likelihood']:.2f} [{report['ais/test_log_likelihood_low']:.2f}, " \
              f"{report['ais/test_log_likelihood_high']:.2f}]"
    print(f"{name:<52} {exact:>14.2f} {bracket:>32} {minutes:>14.1f}", flush=True)


if __name__ == "__main__":
  main()
