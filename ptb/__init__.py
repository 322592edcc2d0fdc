"""ptb: the word-level LSTM language model of Zaremba et al. 2014 on Penn Treebank."""
