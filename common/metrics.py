"""Metrics as sums divided once: never an average of per-batch averages."""
import math


class Mean:
  """Streaming ratio total / count, e.g. accuracy = correct / seen or mean NLL per token."""

  def __init__(self, total=0.0, count=0.0):
    self.total = total
    self.count = count

  def update(self, total, count):
    self.total += float(total)
    self.count += float(count)

  def result(self):
    return self.total / self.count if self.count else float("nan")


def perplexity(total_nll, total_tokens):
  """exp(total negative log-likelihood / total tokens), clamped so a diverged run prints inf."""
  if not total_tokens:
    return float("nan")
  mean = total_nll / total_tokens
  return math.exp(mean) if mean < 700 else float("inf")
