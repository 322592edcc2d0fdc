"""ptb: the word-level LSTM language model of Zaremba et al. 2014 on Penn Treebank."""
import common  # noqa: F401  (quiets TensorFlow's start-up logging before TensorFlow loads)
