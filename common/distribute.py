"""tf.distribute for both apps: the strategy from flags, batches split by rows, chief-only writes.

One code path for every strategy. A step function is written for one replica; it gets its
rows of the global batch, all-reduces (sums) its gradients and returns sums, which
`strategy.reduce(SUM)` adds up exactly. With one device the all-reduce is the identity, so a
single-device run is the same computation as one without tf.distribute.

    global batch (B rows) ──► replica r gets rows [r*B//R, (r+1)*B//R)    R = replicas in sync
                              (over all workers; worker w owns replicas w*L .. w*L+L-1)
"""
import json
import os
import pathlib
import shutil

import tensorflow as tf
from absl import logging

from common.errors import UserError

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")
SUM = tf.distribute.ReduceOp.SUM


def make_strategy(name="auto", num_gpus=None, num_cpu_devices=1):
  """The tf.distribute strategy to train with. Call it before any other TensorFlow op.

  Args:
    name: one of STRATEGIES. auto is multi_worker when $TF_CONFIG is set (two workers
      that each trained alone would overwrite each other's files), else mirrored when more
      than one device is in use, else one_device.
    num_gpus: GPUs to use (None: all visible). The tutorial's --num_gpus.
    num_cpu_devices: with no GPU, split the CPU into this many logical devices, each a
      mirrored replica (for trying tf.distribute without GPUs, and for the tests).

  Raises:
    UserError: for a count the machine does not have or a missing/invalid TF_CONFIG.
  """
  gpus = tf.config.list_physical_devices("GPU")
  if num_gpus is None:
    num_gpus = len(gpus)
  if num_gpus > len(gpus):
    raise UserError(f"--num_gpus={num_gpus} but {len(gpus)} GPU(s) are visible: pass "
                    f"--num_gpus={len(gpus)} or fewer")
  if gpus:
    tf.config.set_visible_devices(gpus[:num_gpus], "GPU")
  if num_cpu_devices > 1:
    if num_gpus:
      raise UserError("--num_cpu_devices is for machines without GPUs: pass --num_gpus=0 "
                      "to use it, or drop it")
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * num_cpu_devices)
  devices = ([f"/gpu:{i}" for i in range(num_gpus)] or
             [f"/cpu:{i}" for i in range(num_cpu_devices)])
  if name == "auto":
    name = ("multi_worker" if os.environ.get("TF_CONFIG") else
            "mirrored" if len(devices) > 1 else "one_device")
  if name == "multi_worker":
    strategy = _multi_worker()
  elif name == "one_device":
    if len(devices) > 1:
      raise UserError(f"--strategy=one_device uses one device but {len(devices)} were asked "
                      "for: use --strategy=mirrored, or --num_gpus=1")
    # TensorFlow's default strategy: no wrapper around the step. tf.distribute's
    # OneDeviceStrategy made the ptb small step 1.2-1.9x slower on our CPU (measured).
    strategy = tf.distribute.get_strategy()
  else:
    strategy = tf.distribute.MirroredStrategy(devices)
  logging.info("strategy %s: %d replica(s) in sync", name, strategy.num_replicas_in_sync)
  return strategy


def _multi_worker():
  """MultiWorkerMirroredStrategy from $TF_CONFIG, which is checked first for a clear error."""
  raw = os.environ.get("TF_CONFIG")
  if not raw:
    raise UserError("--strategy=multi_worker needs $TF_CONFIG (the cluster and this worker's "
                    "task): see README.md, 'Many devices and machines; GPUs'")
  try:
    tf_config = json.loads(raw)
    workers = tf_config["cluster"]["worker"]
    task = tf_config["task"]
    task["type"], int(task["index"])
  except (ValueError, KeyError, TypeError) as e:
    raise UserError(f"$TF_CONFIG is not valid ({type(e).__name__}: {e}): it must be JSON like "
                    '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", '
                    '"index": 0}}') from None
  if not isinstance(workers, list) or not workers:
    raise UserError("$TF_CONFIG's cluster.worker must be a non-empty list of host:port")
  try:
    return tf.distribute.MultiWorkerMirroredStrategy()
  except tf.errors.UnknownError as e:  # this worker's gRPC server could not bind its port
    if "gRPC server" not in str(e):
      raise
    index = int(task["index"])
    address = workers[index] if 0 <= index < len(workers) else f"task {index}"
    raise UserError(f"could not start this worker's server at {address} (worker {index} in "
                    "$TF_CONFIG): the port is probably in use; free it, or give this worker "
                    "another host:port in every worker's $TF_CONFIG") from None


def is_chief(strategy):
  """Whether this process writes checkpoints, TensorBoard events, metrics and the export."""
  return strategy.extended.should_checkpoint


def worker_id(strategy):
  resolver = strategy.cluster_resolver
  return resolver.task_id if resolver is not None and resolver.task_type else 0


def single_device(strategy):
  """One replica on one worker: no collective ops, so XLA may compile a whole step."""
  return (strategy.num_replicas_in_sync == 1 and
          not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy))


def replica_rows(batch_size, replica_id, num_replicas):
  """[start, stop) of replica `replica_id`'s rows in a global batch of `batch_size` rows."""
  return replica_id * batch_size // num_replicas, (replica_id + 1) * batch_size // num_replicas


def _without_autotune():
  """tf.data options that start no autotuning thread.

  That thread wakes 10 ms, 30 ms, 70 ms, ... 81.9 s, then every 60 s after the iterator starts,
  and the iterator's destructor waits for its next wake-up: on our CPU the ptb epochs (about
  100 s) ended at 141.9 s, 35-45 s later, in 5 of 13 epochs (py-spy: the main thread in
  ~IteratorResource). Our pipelines have fixed prefetch buffers, so there is nothing to tune.
  """
  options = tf.data.Options()
  options.autotune.enabled = False
  return options


_NO_AUTOTUNE = _without_autotune()


def distribute_batches(strategy, make_dataset):
  """Yields each global batch of a dataset split by rows: every replica gets its own rows.

  Every worker builds the same global batches (same order, same shuffle seed) and keeps only
  its replicas' rows, so together the replicas see exactly the global batch of a one-device
  run, nothing lost and nothing twice. The batches are split on the host with
  `experimental_distribute_values_from_function`, not with tf.distribute's multi-device
  dataset iterator: on our 2-core CPU with 2 logical devices that iterator's destructor hung
  a ptb run for good at an epoch boundary (its background thread never finished).

  Args:
    strategy: the tf.distribute strategy.
    make_dataset: () -> tf.data.Dataset of tuples of tensors, batch on axis 0.

  Yields:
    (rows tuple, per replica, global batch size as an int32 scalar).
  """
  num_replicas = strategy.num_replicas_in_sync
  for batch in make_dataset().with_options(_NO_AUTOTUNE):
    size = tf.shape(batch[0])[0]
    if num_replicas == 1:
      yield batch, size
      continue

    def rows(context, batch=batch, size=size):
      start, stop = replica_rows(size, context.replica_id_in_sync_group, num_replicas)
      return tuple(x[start:stop] for x in batch)

    yield strategy.experimental_distribute_values_from_function(rows), size


def split_rows(strategy, tensor, axis):
  """A per-replica value: each replica's rows of `tensor` along `axis` (a one-device global)."""
  num_replicas = strategy.num_replicas_in_sync
  size = tensor.shape[axis]

  def rows(context):
    start, stop = replica_rows(size, context.replica_id_in_sync_group, num_replicas)
    return tf.gather(tensor, tf.range(start, stop), axis=axis)

  return strategy.experimental_distribute_values_from_function(rows)


def gather_rows(strategy, value, axis):
  """The inverse of split_rows: the global tensor, on every worker (a collective)."""
  if strategy.num_replicas_in_sync == 1:
    return tf.convert_to_tensor(strategy.experimental_local_results(value)[0])
  return strategy.gather(value, axis=axis)


def sum_replicas(strategy, value):
  """The sum over replicas (and workers) of a per-replica value."""
  return strategy.reduce(SUM, value, axis=None)


def replica_offset(batch_size):
  """Inside a replica: the first global row this replica holds, as an int32 tensor."""
  context = tf.distribute.get_replica_context()
  replica_id = tf.cast(context.replica_id_in_sync_group, tf.int32)
  return replica_rows(batch_size, replica_id, context.num_replicas_in_sync)[0]


def all_reduce_sum(values):
  """Inside a replica: the sum of `values` (tensors or IndexedSlices) over all replicas.

  On GPUs MirroredStrategy sums the dense tensors with NCCL; IndexedSlices (ptb's embedding
  gradient) take tf.distribute's sparse path there as on CPUs (gathered to one device and
  summed), so every device count gets the sums one device computes."""
  context = tf.distribute.get_replica_context()
  if context.num_replicas_in_sync == 1:
    return values
  return context.all_reduce(SUM, values)


class ChiefDir:
  """Where this worker saves: MODEL_DIR on the chief, a scratch directory on other workers.

  Every worker takes part in saving a checkpoint (reading distributed variables may need
  collective ops), but only the chief's copy is kept: the others write to a per-worker
  scratch directory that `clean` deletes.
  """

  def __init__(self, strategy, model_dir):
    self.chief = is_chief(strategy)
    self.model_dir = pathlib.Path(model_dir)
    self.path = (self.model_dir if self.chief else
                 self.model_dir / f".worker-{worker_id(strategy)}-scratch")

  def clean(self):
    if not self.chief:
      shutil.rmtree(self.path, ignore_errors=True)
