"""MNIST RNN (placeholder docstring)."""
import common  # noqa: F401  first, so TensorFlow's C++ start-up chatter stays quiet
