// Element-wise and row-wise kernels of a decoder layer on the CPU: RMSNorm, SwiGLU, rotary
// embedding, token embedding and softmax cross-entropy, forward and backward, float and double.
// Reductions accumulate in double so float results do not depend on the row length's rounding.
#include "base/error.hpp"
#include "kernels/ops.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace wlb::kernels {

template <typename T>
void rms_norm_forward(const T* x, const T* weight, index rows, index cols, T eps, T* y, T* rstd) {
    for (index r = 0; r < rows; ++r) {
        const T* xr = x + r * cols;
        double ss = 0;
        for (index c = 0; c < cols; ++c)
            ss += static_cast<double>(xr[c]) * xr[c];
        const double inv = 1.0 / std::sqrt(ss / static_cast<double>(cols) + eps);
        rstd[r] = static_cast<T>(inv);
        for (index c = 0; c < cols; ++c)
            y[r * cols + c] = static_cast<T>(xr[c] * inv) * weight[c];
    }
}

template <typename T>
void rms_norm_backward(const T* x, const T* weight, const T* rstd, const T* dy, index rows,
                       index cols, T* dx, T* dweight) {
    // y = w * x * s, s = (mean(x^2) + eps)^-1/2; dx = s * (w*dy) - x * s^3 / cols * sum(w*dy*x)
    for (index r = 0; r < rows; ++r) {
        const T* xr = x + r * cols;
        const T* dyr = dy + r * cols;
        const double s = rstd[r];
        double dot = 0;
        for (index c = 0; c < cols; ++c) {
            dot += static_cast<double>(weight[c]) * dyr[c] * xr[c];
            dweight[c] += static_cast<T>(static_cast<double>(dyr[c]) * xr[c] * s);
        }
        const double k = dot * s * s * s / static_cast<double>(cols);
        for (index c = 0; c < cols; ++c)
            dx[r * cols + c] = static_cast<T>(s * weight[c] * dyr[c] - xr[c] * k);
    }
}

template <typename T>
void swiglu_forward(const T* gate, const T* up, index n, T* out) {
    for (index i = 0; i < n; ++i) {
        const T g = gate[i];
        out[i] = g / (T(1) + std::exp(-g)) * up[i];
    }
}

template <typename T>
void swiglu_backward(const T* gate, const T* up, const T* dout, index n, T* dgate, T* dup) {
    for (index i = 0; i < n; ++i) {
        const T g = gate[i];
        const T sig = T(1) / (T(1) + std::exp(-g));
        const T silu = g * sig;
        dup[i] = dout[i] * silu;
        dgate[i] = dout[i] * up[i] * (sig * (T(1) + g * (T(1) - sig)));
    }
}

template <typename T>
void rotary(T* x, index rows, index heads, index head_dim, index ld, const index* positions,
            double base, bool inverse) {
    WLB_EXPECTS(head_dim % 2 == 0, "rotary needs an even head_dim, got {}", head_dim);
    const index half = head_dim / 2;
    for (index r = 0; r < rows; ++r) {
        const double pos = static_cast<double>(positions[r]);
        for (index i = 0; i < half; ++i) {
            const double theta =
                pos * std::pow(base, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
            const T c = static_cast<T>(std::cos(theta));
            const T s = static_cast<T>(inverse ? -std::sin(theta) : std::sin(theta));
            for (index h = 0; h < heads; ++h) {
                T* v = x + r * ld + h * head_dim;
                const T a = v[i];
                const T b = v[i + half];
                v[i] = a * c - b * s;
                v[i + half] = a * s + b * c;
            }
        }
    }
}

template <typename T>
void embedding_forward(const T* table, const std::int32_t* ids, index rows, index cols, T* out) {
    for (index r = 0; r < rows; ++r)
        std::copy_n(table + static_cast<index>(ids[r]) * cols, cols, out + r * cols);
}

template <typename T>
void embedding_backward(const T* dout, const std::int32_t* ids, index rows, index cols, T* dtable) {
    for (index r = 0; r < rows; ++r) {
        T* d = dtable + static_cast<index>(ids[r]) * cols;
        for (index c = 0; c < cols; ++c)
            d[c] += dout[r * cols + c];
    }
}

template <typename T>
double cross_entropy(const T* logits, const std::int32_t* labels, index rows, index vocab,
                     T grad_scale, T* dlogits) {
    double total = 0;
    for (index r = 0; r < rows; ++r) {
        const T* z = logits + r * vocab;
        T* dz = dlogits + r * vocab;
        const std::int32_t label = labels[r];
        if (label < 0) {
            std::fill_n(dz, vocab, T(0));
            continue;
        }
        WLB_EXPECTS(label < vocab, "label {} outside a vocabulary of {}", label, vocab);
        const double mx = static_cast<double>(*std::max_element(z, z + vocab));
        double sum = 0;
        for (index c = 0; c < vocab; ++c)
            sum += std::exp(static_cast<double>(z[c]) - mx);
        const double lse = mx + std::log(sum);
        total += lse - static_cast<double>(z[label]);
        for (index c = 0; c < vocab; ++c)
            dz[c] = static_cast<T>(grad_scale * std::exp(static_cast<double>(z[c]) - lse));
        dz[label] -= grad_scale;
    }
    return total;
}

#define WLB_INSTANTIATE(T)                                                                         \
    template void rms_norm_forward<T>(const T*, const T*, index, index, T, T*, T*);                \
    template void rms_norm_backward<T>(const T*, const T*, const T*, const T*, index, index, T*,   \
                                       T*);                                                        \
    template void swiglu_forward<T>(const T*, const T*, index, T*);                                \
    template void swiglu_backward<T>(const T*, const T*, const T*, index, T*, T*);                 \
    template void rotary<T>(T*, index, index, index, index, const index*, double, bool);           \
    template void embedding_forward<T>(const T*, const std::int32_t*, index, index, T*);           \
    template void embedding_backward<T>(const T*, const std::int32_t*, index, index, T*);          \
    template double cross_entropy<T>(const T*, const std::int32_t*, index, index, T, T*);
WLB_INSTANTIATE(float)
WLB_INSTANTIATE(double)
#undef WLB_INSTANTIATE

} // namespace wlb::kernels
