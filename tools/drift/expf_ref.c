// Prints ggml_v_expf (ggml-cpu/vec.h, AVX-512 variant, included verbatim from
// the llama.cpp tree at build time) for a fixed set of inputs, as f32 bits:
// the reference for shohin's ops::exp_ggml unit test.
// build: gcc -O2 -mavx512f -mavx512dq -mfma -I$GGML_CPU expf_ref.c -o expf_ref
#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <stdint.h>
static inline __m512 v_expf(__m512 x) {
  const __m512 r = _mm512_set1_ps(0x1.8p23f);
  const __m512 z = _mm512_fmadd_ps(x, _mm512_set1_ps(0x1.715476p+0f), r);
  const __m512 n = _mm512_sub_ps(z, r);
  const __m512 b =
      _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.7f7d1cp-20f),
                       _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.62e4p-1f), x));
  const __mmask16 d =
      _mm512_cmp_ps_mask(_mm512_abs_ps(n), _mm512_set1_ps(192), _CMP_GT_OQ);
  const __m512 u = _mm512_mul_ps(b, b);
  const __m512 j = _mm512_fmadd_ps(
      _mm512_fmadd_ps(_mm512_fmadd_ps(_mm512_set1_ps(0x1.0e4020p-7f), b,
                                      _mm512_set1_ps(0x1.573e2ep-5f)),
                      u,
                      _mm512_fmadd_ps(_mm512_set1_ps(0x1.555e66p-3f), b,
                                      _mm512_set1_ps(0x1.fffdb6p-2f))),
      u,
      _mm512_fmadd_ps(_mm512_set1_ps(0x1.ffffecp-1f), b, _mm512_set1_ps(1.0F)));
  const __m512 res = _mm512_scalef_ps(j, n);
  if (_mm512_kortestz(d, d))
    return res;
  const __m512 zero = _mm512_setzero_ps();
  const __m512 alt = _mm512_mask_blend_ps(
      _mm512_cmp_ps_mask(n, zero, _CMP_LE_OQ), _mm512_set1_ps(INFINITY), zero);
  return _mm512_mask_blend_ps(d, res, alt);
}
int main(void) {
  float in[32] = {0.0f, -0.0f, 1.0f, -1.0f, 0.5f, -0.25f, 3.14159f, -7.5f,
                  10.0f, -10.0f, 20.5f, -20.5f, 40.0f, -50.0f, 88.0f, 88.8f,
                  -87.0f, -100.0f, -103.0f, -110.0f, 1e-7f, -1e-7f, 0.693147f, -0.693147f,
                  2.5e-3f, -13.37f, 60.25f, -60.25f, 100.0f, -140.0f, -1000.0f, 1000.0f};
  float out[32];
  for (int i = 0; i < 32; i += 16) _mm512_storeu_ps(out + i, v_expf(_mm512_loadu_ps(in + i)));
  for (int i = 0; i < 32; i++) { uint32_t a, b; memcpy(&a, in + i, 4); memcpy(&b, out + i, 4);
    printf("(0x%08x, 0x%08x),\n", a, b); }
  return 0;
}
