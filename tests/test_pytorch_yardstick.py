"""The PyTorch yardstick times the shapes our benchmarks time (tools/lstm_steps_pytorch.py)."""
import subprocess
import sys

from conftest import ROOT
from mnist_rnn import configs as mnist_configs
from ptb import configs as ptb_configs

sys.path.insert(0, str(ROOT / "tools"))
import lstm_steps_pytorch  # pylint: disable=wrong-import-position


def _ptb(name, **overrides):
  config = ptb_configs.get_config(name, **overrides)
  return ("lm", config.num_layers, config.hidden_size, config.batch_size, config.num_steps,
          config.vocab_size, config.vocab_size, config.keep_prob, config.optimizer)


def test_shapes_are_our_benchmarks_shapes():
  mnist = mnist_configs.get_config("tutorial")
  assert lstm_steps_pytorch.SHAPES == {
      "ptb_small": _ptb("small"),
      "ptb_medium": _ptb("medium"),
      "char": _ptb("char"),
      # README's whole-run comparison (tools/char_lstm_pytorch.py's defaults)
      "char_recipe": _ptb("char", hidden_size=256, batch_size=32, keep_prob=1.0),
      # 28 rows of 28 pixels, 10 classes
      "mnist": ("classifier", mnist.num_layers, mnist.hidden_size, mnist.batch_size, 28, 28, 10,
                1.0, "adam"),
  }
  assert lstm_steps_pytorch.MAX_GRAD_NORM == ptb_configs.get_config("small").max_grad_norm


def test_without_pytorch_it_says_how_to_install_it(tmp_path):
  (tmp_path / "torch.py").write_text("raise ImportError('no torch here')\n")
  result = subprocess.run([sys.executable, str(ROOT / "tools" / "lstm_steps_pytorch.py"),
                           "--shape=mnist"], env={"PYTHONPATH": str(tmp_path)},
                          capture_output=True, text=True, timeout=60)
  assert result.returncode == 1
  assert result.stderr.strip() == ("error: this yardstick needs PyTorch: pip install "
                                   "torch==2.13.0 (a CPU build)")
