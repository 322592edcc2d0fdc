"""The word-level LSTM language model of Zaremba, Sutskever & Vinyals (2014) on Penn Treebank.

Reproduces "Recurrent Neural Network Regularization" (https://arxiv.org/abs/1409.2329) as
TensorFlow's ptb_word_lm tutorial trains it: an embedding, two LSTM layers with dropout between
(never on the recurrent connections), a softmax over 10,000 words; plain SGD on the loss summed
over the window's time steps, gradients clipped by global norm; the LSTM state carried from
window to window (truncated backpropagation through time).

Results (perplexity; small: one 13-epoch run in the default bfloat16_matmuls + XLA, 17 min on
the 2-core CPU, commit 764404c; 114.06 in float32 + XLA, 114.18 without XLA, 114.81 on 2
tf.distribute replicas; see README.md):

| config | tutorial train / valid / test | paper test | ours train / valid / test |
|--------|-------------------------------|------------|---------------------------|
| small  | 37.99 / 121.39 / 115.91       | 114.5      | 40.56 / 117.60 / 112.75   |
| medium | 48.45 / 86.16 / 82.07         | 82.7       | not yet verified (no GPU) |
| large  | 37.87 / 82.62 / 78.29         | 78.4       | not yet verified (no GPU) |

Run:

    python -m ptb.main --model=small --data_dir=DIR --model_dir=/tmp/ptb_small
    python -m ptb.generate --model_dir=/tmp/ptb_small --prime="the company said" --seed=1
    python -m ptb.score --model_dir=/tmp/ptb_small "the company said it expects profit"
    python -m ptb.benchmark --model=small --compare
    python -m ptb.main --model=large --num_gpus=4    # tf.distribute; README: many machines

Modules: configs (the four configurations, the learning-rate schedule), data (reader, batcher,
download), model (PTBModel, the LSTM layer, FLOP count; nll, the training loss, with
bfloat16 matmul inputs and float32 outputs under --precision=bfloat16_matmuls), train
(training, evaluation, resume), main (its command line), export (the SavedModel and the
projector), generate, score, benchmark.
"""
import common  # noqa: F401  first: its logging settings must precede TensorFlow
