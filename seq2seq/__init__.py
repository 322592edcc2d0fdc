"""Sequence-to-sequence translation with attention: Spanish to English as TensorFlow's "Neural
machine translation with attention" tutorial trains it, dates written the ways people write them
to ISO 8601, and reversing sequences of up to 80 symbols (accuracy against length).

Reproduces the encoder-decoder of Cho et al. 2014 (https://arxiv.org/abs/1406.1078) and
Sutskever et al. 2014 (https://arxiv.org/abs/1409.3215), and its attention as Bahdanau, Cho &
Bengio 2015 (https://arxiv.org/abs/1409.0473, additive) and Luong, Pham & Manning 2015
(https://arxiv.org/abs/1508.04025, dot) score it, in Keras layers, on the architecture of the
current TensorFlow tutorial (https://www.tensorflow.org/text/tutorials/nmt_with_attention).

Modules: configs (the configurations), data (vocabularies, the standardisation, the pairs
file, the reversal task, tf.data batches), dates (the date-format task), model (Seq2Seq),
decoding (greedy and beam search), metrics (BLEU, exact match, token accuracy, by length).
"""
import common  # noqa: F401  first: its logging settings must precede TensorFlow
