"""A plain PyTorch character LSTM: the yardstick README compares `ptb.main --model=char` with.

The textbook PyTorch recipe (pytorch/examples' word_language_model, on characters):
nn.Embedding, a 2-layer nn.LSTM, nn.Linear, truncated BPTT with the state carried across
windows, Adam, gradient clipping; PyTorch's own initialisation. The data, split (the first 90%
trains, the next 5% validates: the first half of nanoGPT's validation split), batching and
schedule are the ptb app's, so the two differ only in the framework, the LSTM code and the
initialisation:

  pip install torch==2.13.0   # a CPU build; not one of the project's requirements
  python tools/char_lstm_pytorch.py --text_file=input.txt --hidden_size=256 --batch_size=32 \
      --learning_rate=3e-3 --epochs=3

After each epoch it prints the validation loss in nats per character and the wall time so far.
"""
import argparse
import math
import sys
import time

import torch
from torch import nn


class CharLSTM(nn.Module):

  def __init__(self, vocab_size, hidden_size, num_layers):
    super().__init__()
    self.embedding = nn.Embedding(vocab_size, hidden_size)
    self.lstm = nn.LSTM(hidden_size, hidden_size, num_layers, batch_first=True)
    self.softmax = nn.Linear(hidden_size, vocab_size)

  def forward(self, ids, state):
    outputs, state = self.lstm(self.embedding(ids), state)
    return self.softmax(outputs), state


def read_splits(path):
  text = open(path, encoding="utf-8").read()
  train, valid = text[:int(len(text) * 0.9)], text[int(len(text) * 0.9):int(len(text) * 0.95)]
  vocab = {char: i for i, char in enumerate(sorted(set(train)))}
  unk = len(vocab)
  return [torch.tensor([vocab.get(char, unk) for char in split]) for split in (train, valid)], \
      unk + 1


def windows(ids, batch_size, num_steps):
  """(inputs, targets) windows of `batch_size` contiguous rows, as ptb.data.windows."""
  rows = ids[:len(ids) // batch_size * batch_size].view(batch_size, -1)
  for start in range(0, (rows.shape[1] - 1) // num_steps * num_steps, num_steps):
    yield rows[:, start:start + num_steps], rows[:, start + 1:start + 1 + num_steps]


def run_epoch(model, ids, args, optimizer=None):
  """Mean NLL per character over `ids`, training when an optimizer is given."""
  model.train(optimizer is not None)
  state, total, count = None, 0.0, 0
  loss_fn = nn.CrossEntropyLoss()
  with torch.set_grad_enabled(optimizer is not None):
    for inputs, targets in windows(ids, args.batch_size, args.num_steps):
      logits, state = model(inputs, state)
      state = tuple(s.detach() for s in state)  # truncated BPTT: carry the value, not the graph
      loss = loss_fn(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
      if optimizer is not None:
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        optimizer.step()
      total, count = total + loss.item() * targets.numel(), count + targets.numel()
  return total / count


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--text_file", required=True)
  parser.add_argument("--hidden_size", type=int, default=256)
  parser.add_argument("--num_layers", type=int, default=2)
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--num_steps", type=int, default=50)
  parser.add_argument("--learning_rate", type=float, default=3e-3)
  parser.add_argument("--max_grad_norm", type=float, default=5.0)
  parser.add_argument("--epochs", type=int, default=3)
  parser.add_argument("--threads", type=int, default=2)
  args = parser.parse_args()
  torch.manual_seed(0)
  torch.set_num_threads(args.threads)
  started = time.perf_counter()
  try:
    (train, valid), vocab_size = read_splits(args.text_file)
  except (OSError, UnicodeDecodeError) as e:
    sys.exit(f"error: cannot read --text_file={args.text_file}: {e}")
  model = CharLSTM(vocab_size, args.hidden_size, args.num_layers)
  optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
  for epoch in range(1, args.epochs + 1):
    train_loss = run_epoch(model, train, args, optimizer)
    valid_loss = run_epoch(model, valid, args)
    print(f"epoch {epoch}  train {train_loss:.4f}  valid {valid_loss:.4f} nats/char "
          f"({valid_loss / math.log(2):.3f} bits)  wall {time.perf_counter() - started:.1f} s",
          flush=True)


if __name__ == "__main__":
  main()
