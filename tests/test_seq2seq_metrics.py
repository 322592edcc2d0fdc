"""seq2seq's metrics on hand-worked cases, and configs that every config shares."""
import dataclasses
import math

import numpy as np
import pytest
import sacrebleu
import tensorflow as tf
from sacrebleu.tokenizers.tokenizer_intl import TokenizerV14International

from seq2seq import configs, data, metrics


def test_detokenised_sentences_tokenise_back_to_our_tokens():
  english = data.standardize(["Don't go, Tom! Is it 5 o'clock?"])[0]
  spanish = data.standardize(["¡No te vayas, Tom! ¿Son las cinco?"])[0]
  assert metrics.detokenize(spanish) == "¡no te vayas, tom! ¿son las cinco?"
  intl = TokenizerV14International()
  for sentence in (english, spanish):
    assert intl(metrics.detokenize(sentence)) == sentence


def test_bleu_is_sacrebleus_over_our_own_tokens():
  references = ["¿ dónde está el baño ?", "tom no quiere ir ."]
  hypotheses = ["¿ dónde está baño ?", "tom no quiere ir ."]
  assert metrics.bleu(references, references) == pytest.approx(100.0)
  expected = sacrebleu.corpus_bleu(hypotheses, [references], tokenize="none").score
  assert 0 < metrics.bleu(hypotheses, references) == pytest.approx(expected)
  with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
    metrics.bleu(hypotheses, references[:1])


def test_the_loss_and_token_accuracy_leave_padding_out():
  # 2 sentences, vocab 5: row 0 has 2 real tokens, row 1 one (then [PAD]).
  targets = tf.constant([[4, 3], [3, 0]])
  logits = tf.one_hot([[4, 4], [3, 4]], 5) * 10.0  # predicts 4 4 / 3 4
  correct, real = metrics.correct_tokens(logits, targets)
  np.testing.assert_array_equal(correct, [1, 1])
  np.testing.assert_array_equal(real, [2, 1])
  nll, tokens = metrics.token_nll(tf.zeros([2, 2, 5]), targets)  # uniform: log 5 a token
  assert int(tokens) == 3 and float(nll) == pytest.approx(3 * math.log(5))


def test_exact_match_and_sums_by_source_length():
  assert metrics.exact_match(["2026-12-05", "abc", "ab"], ["2026-12-05", "abd", "ab"]) == (2, 3)
  assert metrics.exact_match([np.int32([4, 5])], [[4, 5]]) == (1, 1)
  sums = metrics.bucket_sums([3, 10, 11, 25], [1, 0, 1, 1], denominators=[3, 10, 11, 20])
  assert sums == {(1, 10): (1.0, 13.0), (11, 20): (1.0, 11.0), (21, 30): (1.0, 20.0)}
  assert metrics.bucket_sums([1, 2, 7], [True, False, True], width=5) == {
      (1, 5): (1.0, 2.0), (6, 10): (1.0, 1.0)}
  by_length = metrics.bleu_by_length(["a b c d .", "x"], ["a b c d .", "y"], [5, 15])
  assert by_length == {(1, 10): (pytest.approx(100.0), 1), (11, 20): (0.0, 1)}


def test_every_config_has_every_field_and_only_known_choices():
  for name, config_class in configs.CONFIGS.items():
    config = config_class()
    assert [field.name for field in dataclasses.fields(config)] == configs.FIELDS, name
    for field, choices in configs.CHOICES.items():
      assert getattr(config, field) in choices, (name, field)
    assert config.max_length >= config.min_length >= 1
  assert configs.get_config("dates", epochs=2, units=None).epochs == 2
