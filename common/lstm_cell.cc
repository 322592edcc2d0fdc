// The LSTM cell's gate arithmetic, one op per time step each way, for common/lstm.py on CPU.
//
// TensorFlow's pip build compiles its elementwise kernels without AVX2 or FMA, and a time
// step of the cell is 13-16 of them, each a pass over [rows, 4 units] or [rows, units]. These
// two ops do a step in one pass, compiled for the CPU they run on (common/cell_op.py builds
// this file with -march=native on first use). Gate order i, f, g, o (Keras'); the state c and
// all arithmetic are float32; T is the matmuls' dtype (float or bfloat16).
//
// LstmCellForward(projected = x W + b, recurrent = h U, c_prev) ->
//   h, h (as T, the next step's matmul input), c, the activations [i f g o], tanh(c)
// LstmCellBackward(activations, c_prev, tanh(c), dh from the next step (T), dh from this
//                  step's output, dc from the next step, the bias gradient so far) ->
//   the gates' gradient (T, for the matmuls), dc into the previous step, the bias gradient
#include <cstdint>
#include <cstring>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace {

using tensorflow::bfloat16;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::shape_inference::InferenceContext;

REGISTER_OP("LstmCellForward")
    .Input("projected: float")  // [rows, 4 units]
    .Input("recurrent: T")      // [rows, 4 units]
    .Input("c_prev: float")     // [rows, units]
    .Output("h: float")
    .Output("h_matmul: T")
    .Output("c: float")
    .Output("activations: float")  // [rows, 4 units]
    .Output("tanh_c: float")
    .Attr("T: {float, bfloat16}")
    .SetShapeFn([](InferenceContext* ctx) {
      for (int i : {0, 1, 2, 4}) ctx->set_output(i, ctx->input(2));
      ctx->set_output(3, ctx->input(0));
      return absl::OkStatus();
    });

REGISTER_OP("LstmCellBackward")
    .Input("activations: float")
    .Input("c_prev: float")
    .Input("tanh_c: float")
    .Input("dh: T")            // through the next step's recurrent matmul
    .Input("dh_output: float")  // from this step's output
    .Input("dc: float")
    .Input("bias_gradient: float")  // [4 units]
    .Output("d_gates: T")           // [rows, 4 units]
    .Output("dc_prev: float")
    .Output("bias_gradient_out: float")
    .Attr("T: {float, bfloat16}")
    .SetShapeFn([](InferenceContext* ctx) {
      ctx->set_output(0, ctx->input(0));
      ctx->set_output(1, ctx->input(1));
      ctx->set_output(2, ctx->input(6));
      return absl::OkStatus();
    });

inline float to_float(float x) { return x; }
// memcpy: with __builtin_bit_cast of Eigen's bfloat16 the forward op took 5x as long (measured).
inline float to_float(bfloat16 x) {
  uint16_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  return __builtin_bit_cast(float, uint32_t(bits) << 16);
}
inline void store(float x, float* out) { *out = x; }
// Rounds to nearest even, as TensorFlow's Cast does; NaN stays NaN. Written out (Eigen's
// conversion is a function call) so that the loops vectorise.
inline void store(float x, bfloat16* out) {
  uint32_t bits = __builtin_bit_cast(uint32_t, x);
  uint16_t rounded = (bits & 0x7fffffffu) > 0x7f800000u
                         ? uint16_t((bits >> 16) | 0x40u)
                         : uint16_t((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
  std::memcpy(out, &rounded, sizeof(rounded));
}

// e^x as 2^n e^r with n = round(x / ln 2), |r| <= ln(2) / 2, and e^r by its Taylor series up
// to r^6: relative error under 2e-7, about one float32 rounding. Vectorises (std::exp does
// not without -ffast-math); NaN stays NaN.
inline float fast_exp(float x) {
  x = x > 88.0f ? 88.0f : x;
  x = x < -87.0f ? -87.0f : x;
  const float shifter = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float t = x * 1.44269504f + shifter;
  const float n = t - shifter;
  const float r = x - n * 0.693145752f - n * 1.42860677e-6f;  // ln 2 in two parts
  const float p = 1.0f + r * (1.0f + r * (1.0f / 2 + r * (1.0f / 6 + r * (1.0f / 24 +
                  r * (1.0f / 120 + r * (1.0f / 720))))));
  const int32_t two_to_n = (__builtin_bit_cast(int32_t, t) -
                            __builtin_bit_cast(int32_t, shifter) + 127) << 23;
  return p * __builtin_bit_cast(float, two_to_n);
}

inline float sigmoid(float x) { return 1.0f / (1.0f + fast_exp(-x)); }

// 1 - 2 / (e^2|x| + 1) with x's sign; near 0, where that cancels, its odd series to x^7.
inline float fast_tanh(float x) {
  const float a = x < 0 ? -x : x;
  float far = 1.0f - 2.0f / (fast_exp(2.0f * a) + 1.0f);
  far = x < 0 ? -far : far;
  const float x2 = x * x;
  const float near = x * (1.0f + x2 * (-1.0f / 3 + x2 * (2.0f / 15 + x2 * (-17.0f / 315))));
  return a < 0.0625f ? near : far;
}

// Input `gates` is [rows, 4 units] and `state` [rows, units]; `like_state` are shaped as
// `state`, `like_gates` as `gates`.
absl::Status check_shapes(OpKernelContext* ctx, int gates, int state,
                          std::initializer_list<int> like_state,
                          std::initializer_list<int> like_gates) {
  const tensorflow::TensorShape& g = ctx->input(gates).shape();
  const tensorflow::TensorShape& s = ctx->input(state).shape();
  if (g.dims() != 2 || s.dims() != 2 || g.dim_size(0) != s.dim_size(0) ||
      g.dim_size(1) != 4 * s.dim_size(1)) {
    return absl::InvalidArgumentError("LSTM cell op: gates must be [rows, 4 units]");
  }
  for (int i : like_state) {
    if (ctx->input(i).shape() != s) return absl::InvalidArgumentError("LSTM cell op: state shapes");
  }
  for (int i : like_gates) {
    if (ctx->input(i).shape() != g) return absl::InvalidArgumentError("LSTM cell op: gate shapes");
  }
  return absl::OkStatus();
}

template <typename T>
class LstmCellForwardOp : public OpKernel {
 public:
  explicit LstmCellForwardOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& c_prev_tensor = ctx->input(2);
    OP_REQUIRES_OK(ctx, check_shapes(ctx, 0, 2, {}, {1}));
    const int64_t rows = c_prev_tensor.dim_size(0), units = c_prev_tensor.dim_size(1);
    Tensor *h_tensor, *h_matmul_tensor, *c_tensor, *activations_tensor, *tanh_c_tensor;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, c_prev_tensor.shape(), &h_tensor));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, c_prev_tensor.shape(), &h_matmul_tensor));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, c_prev_tensor.shape(), &c_tensor));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, ctx->input(0).shape(), &activations_tensor));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(4, c_prev_tensor.shape(), &tanh_c_tensor));
    const float* projected = ctx->input(0).flat<float>().data();
    const T* recurrent = ctx->input(1).flat<T>().data();
    const float* c_prev = c_prev_tensor.flat<float>().data();
    float* h = h_tensor->flat<float>().data();
    T* h_matmul = h_matmul_tensor->flat<T>().data();
    float* c = c_tensor->flat<float>().data();
    float* tanh_c = tanh_c_tensor->flat<float>().data();
    float* activations = activations_tensor->flat<float>().data();
    for (int64_t row = 0; row < rows; ++row) {
      const float* x = projected + row * 4 * units;
      const T* r = recurrent + row * 4 * units;
      float* act = activations + row * 4 * units;
      // One loop per activation, so that each vectorises without computing both.
#pragma omp simd
      for (int64_t j = 0; j < 2 * units; ++j) act[j] = sigmoid(x[j] + to_float(r[j]));  // i, f
#pragma omp simd
      for (int64_t j = 2 * units; j < 3 * units; ++j) act[j] = fast_tanh(x[j] + to_float(r[j]));
#pragma omp simd
      for (int64_t j = 3 * units; j < 4 * units; ++j) act[j] = sigmoid(x[j] + to_float(r[j]));
#pragma omp simd
      for (int64_t j = 0; j < units; ++j) {
        const int64_t k = row * units + j;
        c[k] = act[units + j] * c_prev[k] + act[j] * act[2 * units + j];
        tanh_c[k] = fast_tanh(c[k]);
        h[k] = act[3 * units + j] * tanh_c[k];
        store(h[k], h_matmul + k);
      }
    }
  }
};

template <typename T>
class LstmCellBackwardOp : public OpKernel {
 public:
  explicit LstmCellBackwardOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& c_prev_tensor = ctx->input(1);
    OP_REQUIRES_OK(ctx, check_shapes(ctx, 0, 1, {2, 3, 4, 5}, {}));
    const int64_t rows = c_prev_tensor.dim_size(0), units = c_prev_tensor.dim_size(1);
    OP_REQUIRES(ctx, ctx->input(6).NumElements() == 4 * units,
                absl::InvalidArgumentError("LSTM cell op: the bias gradient must be [4 units]"));
    Tensor *d_gates_tensor, *dc_prev_tensor, *bias_tensor;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, ctx->input(0).shape(), &d_gates_tensor));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, c_prev_tensor.shape(), &dc_prev_tensor));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, ctx->input(6).shape(), &bias_tensor));
    const float* activations = ctx->input(0).flat<float>().data();
    const float* c_prev = c_prev_tensor.flat<float>().data();
    const float* tanh_c = ctx->input(2).flat<float>().data();
    const T* dh_next = ctx->input(3).flat<T>().data();
    const float* dh_output = ctx->input(4).flat<float>().data();
    const float* dc_next = ctx->input(5).flat<float>().data();
    float* bias = bias_tensor->flat<float>().data();
    std::memcpy(bias, ctx->input(6).flat<float>().data(), 4 * units * sizeof(float));
    float* dc_prev = dc_prev_tensor->flat<float>().data();
    T* d_gates_all = d_gates_tensor->flat<T>().data();
    for (int64_t row = 0; row < rows; ++row) {
      const float* act = activations + row * 4 * units;
      T* d_gates = d_gates_all + row * 4 * units;
#pragma omp simd
      for (int64_t j = 0; j < units; ++j) {
        const int64_t k = row * units + j;
        const float i = act[j], f = act[units + j], g = act[2 * units + j];
        const float o = act[3 * units + j];
        const float dh = to_float(dh_next[k]) + dh_output[k];
        const float dc = dc_next[k] + dh * o * (1.0f - tanh_c[k] * tanh_c[k]);
        const float di = dc * g * i * (1.0f - i), df = dc * c_prev[k] * f * (1.0f - f);
        const float dg = dc * i * (1.0f - g * g), d_o = dh * tanh_c[k] * o * (1.0f - o);
        store(di, d_gates + j);
        store(df, d_gates + units + j);
        store(dg, d_gates + 2 * units + j);
        store(d_o, d_gates + 3 * units + j);
        bias[j] += di;
        bias[units + j] += df;
        bias[2 * units + j] += dg;
        bias[3 * units + j] += d_o;
        dc_prev[k] = dc * f;
      }
    }
  }
};

#define REGISTER(T)                                                                       \
  REGISTER_KERNEL_BUILDER(                                                                \
      Name("LstmCellForward").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"),      \
      LstmCellForwardOp<T>);                                                              \
  REGISTER_KERNEL_BUILDER(                                                                \
      Name("LstmCellBackward").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"),     \
      LstmCellBackwardOp<T>)
REGISTER(float);
REGISTER(bfloat16);

}  // namespace
