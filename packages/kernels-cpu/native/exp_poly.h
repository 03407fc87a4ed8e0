// exp_poly.h: the constants of the SIMD float64 exp (x = k·ln2 + r, Cody–Waite split of ln2, degree-13 Taylor
// polynomial of e^r), shared by the AVX2 and AVX-512 kernels so both evaluate the same polynomial.
#ifndef HALO_EXP_POLY_H
#define HALO_EXP_POLY_H

namespace halo_exp {

constexpr double kLog2e = 1.4426950408889634;
constexpr double kLn2Hi = 6.93147180369123816490e-01;
constexpr double kLn2Lo = 1.90821492927058770002e-10;
/** 1/i! for i = 0..13, the polynomial's coefficients (Horner from the highest). */
constexpr double kInvFactorial[14] = {1.0,        1.0,         1.0 / 2,      1.0 / 6,       1.0 / 24,       1.0 / 120,       1.0 / 720,
                                      1.0 / 5040, 1.0 / 40320, 1.0 / 362880, 1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600, 1.0 / 6227020800.0};
constexpr int kDegree = 13;

}  // namespace halo_exp

#endif
