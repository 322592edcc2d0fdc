"""MNIST digits classified by an LSTM that reads each image one row at a time.

Reproduces the TensorFlow-Examples recurrent_network tutorial (Aymeric Damien,
https://github.com/aymericdamien/TensorFlow-Examples/blob/master/examples/3_NeuralNetworks/
recurrent_network.py) in TensorFlow 2 / Keras 3: each 28x28 image is 28 time steps of 28
pixels scaled to [0, 1]; one LSTM layer of 128 units (forget bias 1); a dense layer from its
last output to 10 classes; softmax cross-entropy; Adam at 0.001; batches of 128
(81,674 parameters). The tutorial trains 10,000 steps (about 21 epochs) and prints the
accuracy on 128 test images only; we train 12 epochs, halve the learning rate each of the last
4 (--lr_decay=1 keeps it constant, as the tutorial does) and report the full 10,000-image test
set. --cell, --num_layers and --bidirectional generalise the model.

Results (full test set; one run each, seed 0; the first and last rows with the LSTM cell op
of commit 812d873, the others before commit a2b83e3's faster LSTM backward pass and one-thread
ops):

| config                            | epochs | test accuracy | wall time   | machine      |
|-----------------------------------|--------|---------------|-------------|--------------|
| tutorial (defaults; bfloat16 here)| 12     | 98.59%        | 58 s        | 2-core CPU   |
|   --row_groups=1                  | 12     | 98.66%        | 2 min 13 s  | 2-core CPU   |
| tutorial, --precision=float32     | 12     | 98.63%        | 2 min 52 s  | 2-core CPU   |
| --num_layers=2 --bidirectional    | 12     | 99.15%        | 11 min 02 s | 2-core CPU   |
|   --precision=float32             |        |               |             |              |

Run (the data: the four MNIST `*-ubyte.gz` files in --data_dir or $MNIST_DATA_DIR, else
tensorflow-datasets downloads MNIST into ~/.cache/rnn_tutorials/mnist):

    python -m mnist_rnn.main --model_dir=/tmp/mnist_rnn          # rerun the same to resume
    python -m mnist_rnn.main --config=test --model_dir=/tmp/t     # seconds: a smoke test
    python -m mnist_rnn.main --use_synthetic_data --epochs=1      # speed without the data
    python -m mnist_rnn.predict --model_dir=/tmp/mnist_rnn digit.png [--invert]
    tensorboard --logdir=/tmp/mnist_rnn
    python -m mnist_rnn.main --num_cpu_devices=2  # tf.distribute, 2 replicas (README)

MODEL_DIR then holds checkpoints/ (every epoch; --checkpoint_every_steps for more), train/
and test/ (TensorBoard), export/ (a SavedModel: serving_default(images uint8 [N, 28, 28]) ->
probabilities [N, 10], classes [N]) and metrics.json.

Modules: configs (Config), data (IDX reader, tensorflow-datasets, tf.data, image files),
model (build_model), train (train_and_evaluate), main (its command line), predict (the command).
"""
import common  # noqa: F401  first: its logging settings must precede TensorFlow
