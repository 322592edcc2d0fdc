"""Translation metrics as sums that callers divide once: the loss, token accuracy, exact match,
BLEU, and each by source length.

BLEU is sacreBLEU's corpus_bleu (Post 2018, https://aclanthology.org/W18-6319) on detokenised
strings with tokenize="intl". Our sentences are standardised tokens (seq2seq/data.py), so
`detokenize` first writes them as text is written ("¿ dónde está ?" -> "¿dónde está?") and
sacreBLEU tokenises that again. "intl" (mteval-v14's international tokenisation) splits every
Unicode punctuation mark off, which gives back exactly our tokens in both directions (tested);
the default "13a" splits ASCII punctuation only, so a Spanish target's ¿ and ¡ would stay glued
to the word after them. The number is thus BLEU on lower-cased, standardised text: comparable
between our runs and with the tutorial's preprocessing, not with cased WMT scores.

By length (`bucket_sums`, `bleu_by_length`): sentences grouped by source length in tokens,
1-10, 11-20, ... for width 10; Bahdanau et al. 2015's Figure 2 plots BLEU so.
"""
import re

import numpy as np
import sacrebleu
import tensorflow as tf

from seq2seq import data

BLEU_TOKENIZE = "intl"


def token_nll(logits, targets):
  """(summed negative log-likelihood of the real target tokens, their number): the training
  loss is nll / tokens. logits [batch, len, vocab], targets int32 [batch, len], [PAD] ignored."""
  mask = tf.not_equal(targets, data.PAD_ID)
  nll = tf.nn.sparse_softmax_cross_entropy_with_logits(targets, tf.cast(logits, tf.float32))
  return tf.reduce_sum(tf.where(mask, nll, 0.0)), tf.reduce_sum(tf.cast(mask, tf.int32))


def correct_tokens(logits, targets):
  """(correct, real) target tokens per sentence, int32 [batch] each: teacher-forced argmax
  against the targets, [PAD] ignored. Token accuracy = sum(correct) / sum(real)."""
  mask = tf.not_equal(targets, data.PAD_ID)
  hits = tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), targets) & mask
  return (tf.reduce_sum(tf.cast(hits, tf.int32), axis=1),
          tf.reduce_sum(tf.cast(mask, tf.int32), axis=1))


def exact_matches(hypotheses, references):
  """bool [sentences]: each hypothesis equals its reference exactly (strings or id lists)."""
  _check_lengths(hypotheses, references)
  return np.array([list(h) == list(r) for h, r in zip(hypotheses, references)], bool)


def exact_match(hypotheses, references):
  """(sentences right, sentences): sequence accuracy = right / sentences."""
  matches = exact_matches(hypotheses, references)
  return int(matches.sum()), len(matches)


def bucket_sums(source_lengths, numerators, denominators=None, width=10):
  """{(first, last): (sum of numerators, sum of denominators)} per source-length bucket.

  Args:
    source_lengths: tokens per source sentence.
    numerators: per sentence, e.g. exact_matches, or correct tokens.
    denominators: per sentence, e.g. real tokens; None counts sentences.
    width: lengths 1..width are the first bucket, then width+1..2*width, ...
  """
  lengths = np.asarray(source_lengths)
  numerators = np.asarray(numerators, np.float64)
  denominators = (np.ones(len(lengths)) if denominators is None
                  else np.asarray(denominators, np.float64))
  buckets = np.maximum(lengths - 1, 0) // width
  return {(int(b) * width + 1, (int(b) + 1) * width):
          (float(numerators[buckets == b].sum()), float(denominators[buckets == b].sum()))
          for b in np.unique(buckets)}


def detokenize(text):
  """A standardised sentence as text is written: no space before . ? ! , nor after ¿ ¡."""
  return re.sub(r"([¿¡]) ", r"\1", re.sub(r" ([.?!,])", r"\1", text))


def bleu(hypotheses, references):
  """Corpus BLEU (0-100) of standardised hypotheses against one reference each."""
  _check_lengths(hypotheses, references)
  return sacrebleu.corpus_bleu([detokenize(h) for h in hypotheses],
                               [[detokenize(r) for r in references]],
                               tokenize=BLEU_TOKENIZE).score


def bleu_by_length(hypotheses, references, source_lengths, width=10):
  """{(first, last): (corpus BLEU of the bucket's sentences, their number)}. BLEU is not a
  sum, so each bucket is scored as a corpus of its own."""
  _check_lengths(hypotheses, references)
  buckets = bucket_sums(source_lengths, np.zeros(len(hypotheses)), width=width)
  scores = {}
  for first, last in buckets:
    rows = [i for i, n in enumerate(source_lengths) if first <= max(n, 1) <= last]
    scores[(first, last)] = (bleu([hypotheses[i] for i in rows], [references[i] for i in rows]),
                             len(rows))
  return scores


def _check_lengths(hypotheses, references):
  if len(hypotheses) != len(references):
    raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
