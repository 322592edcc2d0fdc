"""Samples text from an exported PTB language model.

Usage: python -m ptb.generate --model_dir=DIR --prime="the company said" --num_words=50 \
           --temperature=0.8 --seed=1
Temperature 0 is greedy; a seed makes sampling repeatable. Needs only the SavedModel.
"""
import numpy as np
import tensorflow as tf
from absl import flags

from common import errors, storage

FLAGS = flags.FLAGS


def generate(exported, prime, num_words, temperature, seed):
  """Continues `prime` (a string) by `num_words` words.

  Returns:
    (generated words, prime words that were not in the vocabulary).
  """
  vocab = [w.decode() for w in exported.signatures["vocabulary"]()["words"].numpy()]
  word_to_id = {word: i for i, word in enumerate(vocab)}
  prime_words = prime.lower().split()
  unknown = [w for w in prime_words if w not in word_to_id]
  ids = [word_to_id["<eos>"]] + [word_to_id.get(w, word_to_id.get("<unk>", 0))
                                 for w in prime_words]
  step = exported.signatures["step"]
  state = exported.signatures["initial_state"](batch_size=tf.constant(1))["state"]
  rng = np.random.default_rng(seed)
  generated = []
  for position in range(len(ids) - 1 + num_words):
    out = step(ids=tf.constant([ids[position]], tf.int32), state=state)
    state = out["state"]
    if position >= len(ids) - 1:
      ids.append(_choose(out["log_probs"].numpy()[0], temperature, rng))
      generated.append(vocab[ids[-1]])
  return generated, unknown


def _choose(log_probs, temperature, rng):
  if temperature == 0:
    return int(np.argmax(log_probs))
  logits = log_probs.astype(np.float64) / temperature
  probs = np.exp(logits - logits.max())
  return int(rng.choice(len(probs), p=probs / probs.sum()))


def main(argv):
  del argv
  if not FLAGS.prime.split():
    raise errors.UserError("--prime is empty: give at least one word, e.g. --prime='the'")
  exported = storage.load_export(FLAGS.model_dir)
  words, unknown = generate(exported, FLAGS.prime, FLAGS.num_words, FLAGS.temperature,
                            FLAGS.seed)
  if unknown:
    print(f"(not in the vocabulary, read as <unk>: {' '.join(unknown)})", flush=True)
  text = " ".join([FLAGS.prime.lower()] + words).replace(" <eos> ", "\n").replace(" <eos>", "")
  print(text)


if __name__ == "__main__":
  flags.DEFINE_string("model_dir", "/tmp/model", "Directory holding export/ from ptb.main.")
  flags.DEFINE_string("prime", "the", "Words to start from.")
  flags.DEFINE_integer("num_words", 50, "Words to generate.", lower_bound=1)
  flags.DEFINE_float("temperature", 1.0, "Softmax temperature; 0 is greedy.", lower_bound=0.0)
  flags.DEFINE_integer("seed", 0, "Sampling seed.")
  errors.run(main)
