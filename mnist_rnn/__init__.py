"""MNIST digits classified by an LSTM that reads each image one row at a time, and the vanishing
gradient measured on the same task.

Reproduces the TensorFlow-Examples recurrent_network tutorial (Aymeric Damien,
https://github.com/aymericdamien/TensorFlow-Examples/blob/master/examples/3_NeuralNetworks/
recurrent_network.py) in TensorFlow 2 / Keras 3: each 28x28 image is 28 time steps of 28
pixels scaled to [0, 1]; one LSTM layer of 128 units (forget bias 1); a dense layer from its
last output to 10 classes; softmax cross-entropy; Adam at 0.001; batches of 128. `mnist_rnn.gap`
appends blank rows after each image and compares a plain RNN, the IRNN, a GRU and LSTMs as the
gap grows. Results and how to run them: README.md.

Modules: configs (the configurations, the learning-rate schedule), data (IDX reader,
tensorflow-datasets, tf.data, image files), model (build_model), train (train_and_evaluate),
export (the SavedModel), main (its command line), predict, benchmark; gap and gap_experiment
(the vanishing-gradient experiment).
"""
import common  # noqa: F401  first: its logging settings must precede TensorFlow
