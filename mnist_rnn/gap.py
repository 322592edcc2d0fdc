"""The vanishing gradient, measured: plain RNN, IRNN, GRU and LSTMs as the gap grows.

Each MNIST image is read row by row (the tutorial's 28 steps of 28 pixels), then `gap`
all-zero rows; the classifier sees only the state after the last step, so the digit must be
carried across the gap. For every (cell, gap) this trains the same budget and records the
test accuracy (10,000 images; chance 10%) and ||dL/dx_t||, the gradient reaching the input
at each step, at initialisation and after training. Cells: `rnn` (tanh), `irnn` (ReLU,
identity recurrent weights, zero bias: Le, Jaitly & Hinton 2015, arXiv:1504.00941), `gru`,
`lstm` (forget bias 1), `chrono`; gradients clipped to global norm 1 for all. The library is
`mnist_rnn.gap_experiment`.

`chrono` is the LSTM with the chrono initialisation of Tallec & Ollivier 2018: forget biases
spread up to the sequence's length, so that its units start out keeping their memory for up to
that many steps. The measured table and figure, and what they show: README.md.

Run (the data as for mnist_rnn.main: --data_dir, else $MNIST_DATA_DIR, else the cache):

    python -m mnist_rnn.gap --model_dir=/tmp/gap       # the default sweep; rerun to resume
    python -m mnist_rnn.gap --model_dir=/tmp/gap_long --cells=rnn,irnn --gaps=400,800
    tensorboard --logdir=/tmp/gap

MODEL_DIR then holds runs/<cell>_gap<gap>/ (result.json, TensorBoard train/ and test/),
gap.json (every number of every finished run) and gap.png (accuracy against gap; the
gradient norms against distance from the end, for the largest gap), also in TensorBoard.
A rerun skips the runs already finished there.
"""
from absl import flags

from common import errors
from common import flags as common_flags
from common.data_dir import resolve
from mnist_rnn import gap_experiment

FLAGS = flags.FLAGS


def define_flags():
  default = gap_experiment.GapConfig
  flags.DEFINE_string("data_dir", "", "MNIST directory (default: $MNIST_DATA_DIR, then "
                      "~/.cache/rnn_tutorials/mnist, downloading there if needed).")
  flags.DEFINE_string("model_dir", "/tmp/mnist_gap", "Each run's results and TensorBoard "
                      "logs, gap.json and gap.png go here; rerun the same command to resume.")
  flags.DEFINE_list("cells", list(gap_experiment.CELLS), "Recurrent cells to compare, from "
                    f"{','.join(gap_experiment.CELLS)}.")
  flags.DEFINE_list("gaps", [str(gap) for gap in gap_experiment.DEFAULT_GAPS],
                    "Numbers of all-zero rows after each image.")
  flags.DEFINE_integer("train_steps", default.train_steps, "Training steps of every run.")
  flags.DEFINE_integer("hidden_size", default.hidden_size, "Units of every cell.")
  flags.DEFINE_integer("batch_size", default.batch_size, "Sequences per training step.")
  flags.DEFINE_float("learning_rate", default.learning_rate, "Adam's learning rate.")
  flags.DEFINE_integer("seed", default.seed, "Random seed for initialisation and shuffling.")
  common_flags.define_intra_op_threads_flag()


def main(argv):
  common_flags.no_positional_arguments(argv, "--gaps=0,100")
  # Process-wide, before any TensorFlow op.
  common_flags.set_intra_op_threads(FLAGS.intra_op_threads or gap_experiment.INTRA_OP_THREADS)
  config = gap_experiment.GapConfig(
      train_steps=FLAGS.train_steps, hidden_size=FLAGS.hidden_size,
      batch_size=FLAGS.batch_size, learning_rate=FLAGS.learning_rate, seed=FLAGS.seed)
  gap_experiment.run_sweep(config, gap_experiment.parse_cells(FLAGS.cells),
                           gap_experiment.parse_gaps(FLAGS.gaps), FLAGS.model_dir,
                           resolve(FLAGS.data_dir, "MNIST_DATA_DIR", "mnist"))


if __name__ == "__main__":
  define_flags()
  errors.run(main)
