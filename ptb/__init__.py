"""Recurrent language models of text: Zaremba et al.'s word-level LSTM on Penn Treebank, and
character-level models of any text (char-rnn's job).

Reproduces "Recurrent Neural Network Regularization" (Zaremba, Sutskever & Vinyals 2014,
https://arxiv.org/abs/1409.2329) as TensorFlow's ptb_word_lm tutorial trains it: an embedding,
LSTM layers with dropout between them (never on the recurrent connections), a softmax over the
vocabulary; plain SGD on the loss summed over the window's time steps, gradients clipped by
global norm; the LSTM state carried from window to window (truncated backpropagation through
time); the test perplexity exact, with batch 1 over the whole test set. The same machinery
trains on any UTF-8 text, by characters or by words (`--text_file`, `--level`), as Karpathy's
char-rnn does. Results and how to run it: README.md.

Modules: configs (the configurations, the learning-rate schedule), data (readers, vocabularies,
the truncated-BPTT batcher), model (the model), train (training, resume), evaluation (exact
perplexity), main (the command line), export (the SavedModel), generate, score, benchmark;
the speed machinery: fast_loss (the written-out softmax loss), clipping (the matmul clipping
norm), optimizer (SGD, Adam, RMSprop on pre-reduced gradients).
"""
import common  # noqa: F401  first: its logging settings must precede TensorFlow
