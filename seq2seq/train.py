"""Trains, evaluates and exports the encoder-decoder on the shared loop (common/loop.py):
`train_and_evaluate(config, model_dir, options)`. What is seq2seq's own is here: the masked
teacher-forced step, the token sums (`TrainState`), the log line, the decoded validation each
epoch and the decoded test set with its scores by source length at the end
(`TranslationTask`). The command line is `seq2seq.main`.
"""
import dataclasses
import math

import keras
import numpy as np
import tensorflow as tf

from common import distribute, loop, storage, training_state
from common.progress import log
from seq2seq import configs, data, decoding, export, figures, metrics
from seq2seq.model import Seq2Seq

LOG_LINE = ("epoch %3d  %5.3f  loss %7.4f  token accuracy %7.3f%%  lr %.1e  %6.0f tokens/s  "
            "ETA %s")
VALIDATION_DECODED = 1000  # validation pairs decoded each epoch (all of them are scored)
DECODE_BATCH = 256
ALIGNMENT_EXAMPLES = 3     # validation pairs whose alignments TensorBoard shows each epoch
# Source lengths per bucket of the *_by_length results: words (Bahdanau et al.'s Figure 2
# buckets by 10), characters (dates run 8-29, the sweep 3-80).
LENGTH_BUCKET = {"word": 10, "word_bare": 10, "char": 5}
BATCH_SPEC = ((tf.TensorSpec([None, None], tf.int32),) * 2, tf.TensorSpec([None, None], tf.int32))


@dataclasses.dataclass(frozen=True)
class RunOptions(loop.RunOptions):
  """The loop's RunOptions, and the pairs file of the spa-eng task."""
  pairs_file: str = ""


def make_steps(model, optimizer):
  """(train_step, eval_step): a batch ((source, decoder_input), decoder_target) -> sums of
  the NLL, the correct tokens and the real (not [PAD]) target tokens, [END] included."""

  def sums(logits, target):
    nll, tokens = metrics.token_nll(logits, target)
    correct, _ = metrics.correct_tokens(logits, target)
    return {"loss": nll, "correct": tf.reduce_sum(correct), "count": tokens}

  def train_step(batch):
    (source, decoder_input), target = batch
    with tf.GradientTape() as tape:
      logits, _ = model((source, decoder_input), training=True)  # [batch, tgt_len, vocab]
      step_sums = sums(logits, target)
      # The mean over the batch's real tokens (the tutorial's masked loss).
      loss = step_sums["loss"] / tf.cast(step_sums["count"], tf.float32)
    optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
    return step_sums

  def eval_step(batch):
    (source, decoder_input), target = batch
    logits = model((source, decoder_input))[0]
    correct, real = metrics.correct_tokens(logits, target)  # per sentence, for by-length sums
    return {**sums(logits, target), "row_correct": correct, "row_count": real}

  # One graph for every batch shape: the batches are padded to their own longest row.
  return (tf.function(train_step, input_signature=[BATCH_SPEC]),
          tf.function(eval_step, input_signature=[BATCH_SPEC]))


class TrainState(training_state.TrainingState):
  """seq2seq's training state: also the epoch's correct and real target tokens."""

  SUMS = {"loss": "epoch_loss", "correct": "epoch_correct", "count": "epoch_tokens"}

  def __init__(self):
    super().__init__()
    self.epoch_correct = tf.Variable(0.0, dtype=tf.float64)
    self.epoch_tokens = tf.Variable(0.0, dtype=tf.float64)


class TranslationTask(loop.Task):
  """The encoder-decoder on the loop: length-bucketed batches, validation decoded each epoch,
  the test set decoded with `config.beam_width` at the end, the SavedModel."""
  unit = "tokens"

  def __init__(self, config, options, model, optimizer, state, manager, steps, splits, vocabs,
               out_dir):
    self.config, self.options, self.model, self.optimizer = config, options, model, optimizer
    self.state, self.manager, self.splits, self.vocabs = state, manager, splits, vocabs
    self.train_fn, self.eval_fn = steps
    self.out_dir = out_dir
    self.examples = {split: data.encode(pairs, *vocabs) for split, pairs in splits.items()}
    self.epochs = config.epochs
    self.steps_per_epoch = math.ceil(len(self.examples["train"]) / config.batch_size)

  def start_epoch(self, epoch):
    return self.config.learning_rate  # Adam's constant rate, the tutorial's

  def batches(self, epoch, start):
    return data.batches(self.examples["train"], self.config.batch_size, self.config.seed,
                        epoch).skip(start).prefetch(2)

  def train_step(self, batch):
    return self.train_fn(batch)

  def count(self, steps, sums):
    return float(sums["count"])

  def log_progress(self, epoch, step, sums, learning_rate, rate, eta):
    loss, accuracy = (float(sums[name]) / float(sums["count"]) for name in ("loss", "correct"))
    log(LOG_LINE, epoch + 1, step / self.steps_per_epoch, loss, 100 * accuracy, learning_rate,
        rate, eta)
    return {"loss": loss, "token_accuracy": accuracy, "tokens_per_second": rate}

  def end_epoch(self, epoch, learning_rate, sums, rate):
    train = {"loss": sums["loss"] / sums["count"], "token_accuracy": sums["correct"] /
             sums["count"]}
    valid = self.evaluate("validation", limit=VALIDATION_DECODED, beam_width=1)
    log("Epoch: %d validation: %s", epoch + 1, _summary(valid))
    row = {"learning_rate": learning_rate, "tokens_per_second": rate,
           **{f"train_{k}": v for k, v in train.items()},
           **{f"validation_{k}": v for k, v in valid.items() if not isinstance(v, dict)}}
    scalars = {k: v for k, v in valid.items() if not isinstance(v, dict)}
    return {"train": {**train, "learning_rate": learning_rate}, "validation": scalars}, row

  def evaluate(self, split, limit=None, beam_width=None):
    """Teacher-forced loss and token accuracy of a whole split (the accuracy also by source
    length, LENGTH_BUCKET tokens a bucket); its first `limit` pairs decoded: exact match (and
    BLEU for spa-eng) overall and by source length, with the decoded sentences per bucket."""
    totals = {"loss": 0.0, "correct": 0.0, "count": 0.0}
    row_correct, row_count = [], []
    for batch in data.batches(self.examples[split], DECODE_BATCH):
      out = self.eval_fn(batch)
      for name in totals:
        totals[name] += float(out[name])
      row_correct.append(out["row_correct"].numpy())
      row_count.append(out["row_count"].numpy())
    width = LENGTH_BUCKET[self.config.level]
    lengths = [len(data.tokens_of(source, self.config.level)) for source, _ in self.splits[split]]
    by_length = metrics.bucket_sums(lengths, np.concatenate(row_correct),
                                    np.concatenate(row_count), width)
    result = {"loss": totals["loss"] / totals["count"],
              "token_accuracy": totals["correct"] / totals["count"],
              "token_accuracy_by_length": {f"{a}-{b}": n / d for (a, b), (n, d)
                                           in by_length.items()}}
    pairs = self.splits[split][:limit]
    hypotheses, _ = translate_pairs(self.model, self.vocabs, pairs, self.config,
                                    beam_width or self.config.beam_width)
    references = [target for _, target in pairs]
    right = metrics.exact_matches(hypotheses, references)
    result["exact_match"] = float(right.mean())
    decoded = metrics.bucket_sums(lengths[:len(pairs)], right, width=width)
    result["exact_match_by_length"] = {f"{a}-{b}": n / d for (a, b), (n, d) in decoded.items()}
    result["sentences_by_length"] = {f"{a}-{b}": int(d) for (a, b), (_, d) in decoded.items()}
    if self.config.task == "spa-eng":
      result["bleu"] = metrics.bleu(hypotheses, references)
      result["bleu_by_length"] = {f"{a}-{b}": score for (a, b), (score, _)
                                  in metrics.bleu_by_length(hypotheses, references,
                                                            lengths[:len(pairs)]).items()}
    return result

  def images(self, epoch):
    """The alignments of the first ALIGNMENT_EXAMPLES validation pairs, as decoded now."""
    if self.config.attention == "none":
      return {}
    pairs = self.splits["validation"][:ALIGNMENT_EXAMPLES]
    _, translations = translate_pairs(self.model, self.vocabs, pairs, self.config, 1)
    pictures = []
    for (source, _), translation in zip(pairs, translations):
      output = [self.vocabs[1].tokens[i] for i in translation.ids] + [data.END]
      pictures.append(figures.to_image(figures.alignment(
          data.tokens_of(source, self.config.level), output, translation.alignment,
          f"epoch {epoch + 1}")))
    return {"validation": {"alignment": pictures}}

  def finish(self, history, summaries):
    """The test split decoded with the configured beam, the SavedModel; the results."""
    test = self.evaluate("test")
    log("test: %s", _summary(test))
    summaries.scalars("test", {k: v for k, v in test.items() if not isinstance(v, dict)},
                      self.epochs)
    export.export(self.model, self.vocabs, self.config, self.out_dir / "export")
    longest = max(len(data.tokens_of(source, self.config.level))
                  for source, _ in self.splits["train"])
    return {**{f"test_{k}": v for k, v in test.items()}, "epochs": self.epochs,
            "longest_train_source": longest,
            "wall_seconds": self.state.elapsed(), "config": dataclasses.asdict(self.config),
            "history": history}


def translate_pairs(model, vocabs, pairs, config, beam_width):
  """(hypotheses as standardised strings, Translations) for the sources of `pairs`."""
  source_vocab, target_vocab = vocabs
  translations = []
  for start in range(0, len(pairs), DECODE_BATCH):
    ids = [source_vocab.encode(source) for source, _ in pairs[start:start + DECODE_BATCH]]
    source = np.zeros([len(ids), max(len(row) for row in ids)], np.int32)  # [PAD] = 0
    for row, row_ids in enumerate(ids):
      source[row, :len(row_ids)] = row_ids
    if beam_width > 1:
      translations += decoding.beam_search(model, source, beam_width, config.max_length,
                                           config.length_penalty)
    else:
      translations += decoding.greedy(model, source, config.max_length)
  return [target_vocab.decode(t.ids) for t in translations], translations


def _summary(result):
  parts = [f"loss {result['loss']:.4f}", f"token accuracy {100 * result['token_accuracy']:.2f}%",
           f"exact match {100 * result['exact_match']:.2f}%"]
  if "bleu" in result:
    parts.append(f"BLEU {result['bleu']:.2f}")
  return ", ".join(parts)


def build(config, vocabs, chief, options):
  """The model, Adam and the TrainState, restored if saved; the model's weights exist."""
  keras.utils.set_random_seed(config.seed)
  model = Seq2Seq(config, len(vocabs[0]), len(vocabs[1]))
  one = tf.ones([1, 2], tf.int32)  # two source positions: a softmax over one warns
  model((one, one))  # creates the weights, so they restore
  optimizer = keras.optimizers.Adam(config.learning_rate)
  optimizer.build(model.trainable_variables)
  state = TrainState()
  manager, restored = storage.checkpoint_manager(state.checkpoint(model, optimizer),
                                                 chief.model_dir, options.keep_checkpoints)
  if restored:
    log("resumed from %s: epoch %d, step %d", restored, int(state.epoch.numpy()) + 1,
        int(state.step.numpy()))
  return model, optimizer, state, manager


def vocabularies(config, splits, model_dir):
  """The two vocabularies: those a resumed run was trained with
  (MODEL_DIR/{source,target}_vocab.json), else built from the training split and saved."""
  paths = [model_dir / f"{side}_vocab.json" for side in ("source", "target")]
  if all(path.exists() for path in paths):
    return tuple(data.Vocabulary.load(path) for path in paths)
  vocabs = data.vocabularies(splits["train"], config.level, config.vocab_size)
  for vocab, path in zip(vocabs, paths):
    vocab.save(path)
  return vocabs


def train_and_evaluate(config, model_dir, options=RunOptions()):
  """Trains `config` for config.epochs epochs (resuming in MODEL_DIR), tests, exports.

  Returns:
    The metrics dict also written to MODEL_DIR/metrics.json.
  """
  chief = distribute.ChiefDir(tf.distribute.get_strategy(), model_dir)
  log("config: %s", config)
  splits = data.load(config, options.pairs_file)  # every data error before anything is written
  loop.check_config(chief.model_dir, config, upgrade=configs.upgrade)
  vocabs = vocabularies(config, splits, chief.model_dir)
  log("pairs: %s; vocabularies: %d source, %d target ids",
      ", ".join(f"{len(pairs)} {split}" for split, pairs in splits.items()), *map(len, vocabs))
  model, optimizer, state, manager = build(config, vocabs, chief, options)
  state.restart_clock()
  task = TranslationTask(config, options, model, optimizer, state, manager,
                         make_steps(model, optimizer), splits, vocabs, chief.path)
  return loop.run(task, chief)

