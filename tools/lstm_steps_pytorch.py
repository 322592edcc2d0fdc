"""Plain PyTorch LSTM train and eval steps on the shapes our benchmarks time; prints JSON.

The yardstick PERFORMANCE.md holds our steps against ("Against a plain PyTorch LSTM"): for each
shape the textbook PyTorch model (nn.Embedding or the image rows, nn.LSTM, nn.Linear,
nn.Dropout where the config drops out), its loss, clipping and optimizer, timed as
`ptb.benchmark` and `mnist_rnn.benchmark` time ours: synthetic data of the real shapes, after
warm-up, blocks of steps, the median block.

  pip install torch==2.13.0   # a CPU build; not one of the project's requirements
  python tools/lstm_steps_pytorch.py --shape=ptb_small --threads=2
  python -m ptb.benchmark --model=small --precision=float32        # ours, float32

SHAPES mirrors our configurations (tests/test_pytorch_yardstick.py holds it to ptb/configs.py
and mnist_rnn/configs.py); `char_recipe` is the character recipe README compares whole runs on
(tools/char_lstm_pytorch.py: 2 x 256, batch 32, no dropout).
"""
import argparse
import json
import statistics
import sys
import time

# name: (kind, num_layers, hidden_size, batch_size, num_steps, vocab or input size, outputs,
#        keep_prob, optimizer). Torch is imported in main only: the test reads this table
# without it.
SHAPES = {
    "ptb_small": ("lm", 2, 200, 20, 20, 10000, 10000, 1.0, "sgd"),
    "ptb_medium": ("lm", 2, 650, 20, 35, 10000, 10000, 0.5, "sgd"),
    "char": ("lm", 2, 384, 128, 50, 66, 66, 0.75, "adam"),
    "char_recipe": ("lm", 2, 256, 32, 50, 66, 66, 1.0, "adam"),
    "mnist": ("classifier", 1, 128, 128, 28, 28, 10, 1.0, "adam"),
}
MAX_GRAD_NORM = 5.0  # ptb's configs; mnist_rnn does not clip


def build(torch, shape):
  """(train_step, eval_step): zero-argument callables running one step of the shape."""
  from torch import nn
  kind, layers, hidden, batch, steps, inputs_size, outputs, keep_prob, optimizer_name = shape
  torch.manual_seed(0)
  drop = nn.Dropout(1.0 - keep_prob)
  lstm = nn.LSTM(hidden if kind == "lm" else inputs_size, hidden, layers, batch_first=True,
                 dropout=1.0 - keep_prob if layers > 1 else 0.0)
  head = nn.Linear(hidden, outputs)
  modules = nn.ModuleList([lstm, head, drop])
  if kind == "lm":
    embedding = nn.Embedding(inputs_size, hidden)
    modules.append(embedding)
    x = torch.randint(0, inputs_size, (batch, steps))
    y = torch.randint(0, outputs, (batch, steps))
  else:
    x = torch.rand(batch, steps, inputs_size)
    y = torch.randint(0, outputs, (batch,))
  if optimizer_name == "sgd":
    optimizer = torch.optim.SGD(modules.parameters(), lr=1.0)
  else:
    optimizer = torch.optim.Adam(modules.parameters(), lr=1e-3)
  zeros = torch.zeros(layers, batch, hidden)
  state = [(zeros, zeros)]

  def loss_of(training):
    modules.train(training)
    if kind == "lm":
      outputs_, new_state = lstm(drop(embedding(x)), state[0])
      logits = head(drop(outputs_))
      # ptb's loss: summed over the window's steps, averaged over the batch
      loss = nn.functional.cross_entropy(logits.reshape(-1, outputs), y.reshape(-1),
                                         reduction="sum") / batch
      state[0] = tuple(s.detach() for s in new_state)  # truncated BPTT: the state carried
    else:
      outputs_, _ = lstm(x)
      loss = nn.functional.cross_entropy(head(outputs_[:, -1]), y)
    return loss

  def train_step():
    optimizer.zero_grad(set_to_none=True)
    loss = loss_of(True)
    loss.backward()
    if kind == "lm":
      nn.utils.clip_grad_norm_(modules.parameters(), MAX_GRAD_NORM)
    optimizer.step()
    return loss

  def eval_step():
    with torch.no_grad():
      return loss_of(False)

  return train_step, eval_step


def time_step(step, steps, repeats, warmup=3):
  """Milliseconds a step in each of `repeats` blocks of `steps` steps, after `warmup` steps."""
  for _ in range(warmup):
    step()
  blocks = []
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(steps):
      step()
    blocks.append((time.perf_counter() - start) * 1000 / steps)
  return blocks


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--shape", choices=sorted(SHAPES), action="append",
                      help="A shape to time (repeat the flag for several; default: all).")
  parser.add_argument("--threads", type=int, default=2)
  parser.add_argument("--steps", type=int, default=20, help="Steps per timed block.")
  parser.add_argument("--repeats", type=int, default=5, help="Timed blocks per step.")
  args = parser.parse_args()
  try:
    import torch
  except ImportError:
    sys.exit("error: this yardstick needs PyTorch: pip install torch==2.13.0 (a CPU build)")
  torch.set_num_threads(args.threads)
  for name in args.shape or sorted(SHAPES):
    shape = SHAPES[name]
    # ours count words or characters (batch x steps) for the LMs, images for mnist_rnn
    per_step = shape[3] * shape[4] if shape[0] == "lm" else shape[3]
    result = {"shape": name, "torch": torch.__version__, "threads": args.threads}
    for which, step in zip(("train", "eval"), build(torch, shape)):
      blocks = time_step(step, args.steps, args.repeats)
      median = statistics.median(blocks)
      result[which] = {"ms_per_step_median": round(median, 2),
                       "ms_per_step": [round(b, 2) for b in blocks],
                       "per_second_median": round(per_step / median * 1000)}
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
  main()
