// peak_lab.cpp: this CPU's vpdpbusd (zmm, ymm) and FMA (f32, f64 zmm) throughput on one core: 12 independent chains, no loads.
// Build: g++ -O2 -mavx512f -mavx512bw -mavx512vl -mavx512vnni -mfma dev/peak_lab.cpp -o /tmp/peak_lab   Run: /tmp/peak_lab
#include <immintrin.h>
#include <chrono>
#include <cstdio>
int main() {
  __m512i a[12]; for(int i=0;i<12;i++) a[i]=_mm512_set1_epi32(i);
  __m512i x=_mm512_set1_epi8(1), y=_mm512_set1_epi8(2);
  const long N=200000000;
  auto t0=std::chrono::steady_clock::now();
  for(long i=0;i<N;i++){
    #pragma GCC unroll 12
    for(int j=0;j<12;j++) a[j]=_mm512_dpbusd_epi32(a[j],x,y);
    __asm__ volatile("" : "+v"(x));
  }
  double s=std::chrono::duration<double>(std::chrono::steady_clock::now()-t0).count();
  __m512i t=a[0]; for(int j=1;j<12;j++) t=_mm512_add_epi32(t,a[j]);
  printf("%.2f G dpbusd/s (%d)\n", N*12/s/1e9, _mm512_reduce_add_epi32(t));
  // ymm
  __m256i b[12]; for(int i=0;i<12;i++) b[i]=_mm256_set1_epi32(i);
  __m256i xx=_mm256_set1_epi8(1), yy=_mm256_set1_epi8(2);
  t0=std::chrono::steady_clock::now();
  for(long i=0;i<N;i++){
    #pragma GCC unroll 12
    for(int j=0;j<12;j++) b[j]=_mm256_dpbusd_epi32(b[j],xx,yy);
    __asm__ volatile("" : "+v"(xx));
  }
  s=std::chrono::duration<double>(std::chrono::steady_clock::now()-t0).count();
  __m256i u=b[0]; for(int j=1;j<12;j++) u=_mm256_add_epi32(u,b[j]);
  printf("%.2f G ymm dpbusd/s (%d)\n", N*12/s/1e9, _mm256_extract_epi32(u,0));
  {

  __m512 a[12]; for(int i=0;i<12;i++) a[i]=_mm512_set1_ps(i*0.001f);
  __m512 x=_mm512_set1_ps(0.999f), y=_mm512_set1_ps(0.0001f);
  const long N=100000000;
  auto t0=std::chrono::steady_clock::now();
  for(long i=0;i<N;i++){
    #pragma GCC unroll 12
    for(int j=0;j<12;j++) a[j]=_mm512_fmadd_ps(a[j],x,y);
    __asm__ volatile("" : "+v"(x));
  }
  double s=std::chrono::duration<double>(std::chrono::steady_clock::now()-t0).count();
  __m512 t=a[0]; for(int j=1;j<12;j++) t=_mm512_add_ps(t,a[j]);
  printf("%.2f G zmm fma/s (%f)\n", N*12/s/1e9, _mm512_reduce_add_ps(t));
  __m512d b[12]; for(int i=0;i<12;i++) b[i]=_mm512_set1_pd(i*0.001);
  __m512d xd=_mm512_set1_pd(0.999), yd=_mm512_set1_pd(0.0001);
  t0=std::chrono::steady_clock::now();
  for(long i=0;i<N;i++){
    #pragma GCC unroll 12
    for(int j=0;j<12;j++) b[j]=_mm512_fmadd_pd(b[j],xd,yd);
    __asm__ volatile("" : "+v"(xd));
  }
  s=std::chrono::duration<double>(std::chrono::steady_clock::now()-t0).count();
  __m512d u=b[0]; for(int j=1;j<12;j++) u=_mm512_add_pd(u,b[j]);
  printf("%.2f G zmm fma_pd/s (%f)\n", N*12/s/1e9, _mm512_reduce_add_pd(u));
  }
}
