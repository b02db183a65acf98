//! A channel-inner (NHWC) depthwise convolution kernel for x86-64 with AVX2 and FMA,
//! registered with tract-linalg as its `DepthwiseC` f32 routine.
//!
//! tract 0.23 ships a channel-inner depthwise kernel only for WebAssembly; on x86 its
//! `DepthWise` operator falls back to a generic loop that, for every output position, writes
//! the bias and then reads and rewrites all channels once per tap (9 times for 3x3). In the
//! person detector that loop is about a fifth of a frame (33 depthwise layers, NHWC as
//! TensorFlow lays them out). This kernel keeps up to 32 channels of an output position in
//! registers across all taps and writes each output once. tract selects it by itself on
//! machines offering AVX2 and FMA (its routine registry; `inventory` collects it at link time)
//! and keeps the generic loop elsewhere.

use tract_linalg::isa::{Arch, Isa, IsaReq};
use tract_linalg::routines::{Func, Routine, RoutineFactory};

/// Output positions `0..len`: position `i` reads `input + i * in_stride`, writes
/// `output + i * out_stride`; channel `c` of it is
/// `bias[c] + sum_t kernel[tap_indices[t] * k_stride + c] * input[offsets[t] + c]`
/// over `width` channels (the layout and contract of tract's `DepthwiseCF32`).
///
/// # Safety
/// The pointers must be valid for every element the formula reads or writes, `tap_indices`
/// and `offsets` of equal length, and the CPU must offer AVX2 and FMA.
#[allow(
    clippy::too_many_arguments,
    reason = "the signature of tract's DepthwiseCF32 routine"
)]
#[target_feature(enable = "avx2,fma")]
unsafe fn depthwise_c_avx2(
    input: *const f32,
    output: *mut f32,
    kernel: *const f32,
    tap_indices: &[usize],
    offsets: &[isize],
    bias: *const f32,
    width: usize,
    k_stride: usize,
    len: usize,
    in_stride: isize,
    out_stride: isize,
) {
    use std::arch::x86_64::*;
    let taps = tap_indices.len().min(offsets.len());
    for i in 0..len as isize {
        // SAFETY (whole body): every access stays within what the caller guarantees.
        unsafe {
            let ip = input.offset(in_stride * i);
            let op = output.offset(out_stride * i);
            let mut c = 0usize;
            while c + 32 <= width {
                let mut a0 = _mm256_loadu_ps(bias.add(c));
                let mut a1 = _mm256_loadu_ps(bias.add(c + 8));
                let mut a2 = _mm256_loadu_ps(bias.add(c + 16));
                let mut a3 = _mm256_loadu_ps(bias.add(c + 24));
                for t in 0..taps {
                    let k = kernel.add(k_stride * tap_indices[t] + c);
                    let x = ip.offset(offsets[t]).add(c);
                    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(k), _mm256_loadu_ps(x), a0);
                    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(k.add(8)), _mm256_loadu_ps(x.add(8)), a1);
                    a2 =
                        _mm256_fmadd_ps(_mm256_loadu_ps(k.add(16)), _mm256_loadu_ps(x.add(16)), a2);
                    a3 =
                        _mm256_fmadd_ps(_mm256_loadu_ps(k.add(24)), _mm256_loadu_ps(x.add(24)), a3);
                }
                _mm256_storeu_ps(op.add(c), a0);
                _mm256_storeu_ps(op.add(c + 8), a1);
                _mm256_storeu_ps(op.add(c + 16), a2);
                _mm256_storeu_ps(op.add(c + 24), a3);
                c += 32;
            }
            while c + 8 <= width {
                let mut a = _mm256_loadu_ps(bias.add(c));
                for t in 0..taps {
                    let k = kernel.add(k_stride * tap_indices[t] + c);
                    let x = ip.offset(offsets[t]).add(c);
                    a = _mm256_fmadd_ps(_mm256_loadu_ps(k), _mm256_loadu_ps(x), a);
                }
                _mm256_storeu_ps(op.add(c), a);
                c += 8;
            }
            while c < width {
                let mut a = *bias.add(c);
                for t in 0..taps {
                    let k = *kernel.add(k_stride * tap_indices[t] + c);
                    a = k.mul_add(*ip.offset(offsets[t]).add(c), a);
                }
                *op.add(c) = a;
                c += 1;
            }
        }
    }
}

/// The routine's entry: tract calls it only where the routine's `isa` (AVX2, FMA) holds.
#[allow(
    clippy::too_many_arguments,
    reason = "the signature of tract's DepthwiseCF32 routine"
)]
unsafe fn run(
    input: *const f32,
    output: *mut f32,
    kernel: *const f32,
    tap_indices: &[usize],
    offsets: &[isize],
    bias: *const f32,
    width: usize,
    k_stride: usize,
    len: usize,
    in_stride: isize,
    out_stride: isize,
) {
    // SAFETY: the caller's guarantees, and tract selects this routine only on CPUs with
    // AVX2 and FMA.
    unsafe {
        depthwise_c_avx2(
            input,
            output,
            kernel,
            tap_indices,
            offsets,
            bias,
            width,
            k_stride,
            len,
            in_stride,
            out_stride,
        );
    }
}

inventory::submit! {
    Routine {
        func: Func::DepthwiseC,
        arch: Some(Arch::X86_64),
        isa: IsaReq::ANY.needing(&[Isa::X86_64Avx2, Isa::X86_64Fma]),
        boost: 0,
        round_trip: false,
        factory: RoutineFactory::DepthwiseCF32 {
            name: "nextvision_avx2_fma_depthwise_c_f32",
            run,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_plain_loop_on_every_width_and_is_the_routine_tract_runs() {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            return;
        }
        // 3 positions, 9 taps over a padded row-major NHWC plane; widths around the 8 and
        // 32 channel blocks.
        for width in [1usize, 7, 8, 9, 31, 32, 33, 70] {
            let k_stride = width + 3;
            let kernel: Vec<f32> = (0..9 * k_stride)
                .map(|i| ((i * 13) % 17) as f32 / 8.0 - 1.0)
                .collect();
            let bias: Vec<f32> = (0..width).map(|c| c as f32 * 0.5 - 2.0).collect();
            let in_stride = (width + 5) as isize;
            let offsets: Vec<isize> = (0..9).map(|t| t as isize * in_stride).collect();
            let taps: Vec<usize> = (0..9).rev().collect();
            let input: Vec<f32> = (0..(in_stride as usize) * 12)
                .map(|i| ((i * 7) % 23) as f32 - 11.0)
                .collect();
            let (len, out_stride) = (3usize, (width + 2) as isize);
            let mut got = vec![f32::NAN; out_stride as usize * len];
            let mut want = got.clone();
            for i in 0..len {
                for c in 0..width {
                    let mut a = bias[c];
                    for t in 0..9 {
                        a += kernel[taps[t] * k_stride + c]
                            * input[i * in_stride as usize + offsets[t] as usize + c];
                    }
                    want[i * out_stride as usize + c] = a;
                }
            }
            // SAFETY: every index above is inside the buffers; the CPU has AVX2 and FMA.
            unsafe {
                run(
                    input.as_ptr(),
                    got.as_mut_ptr(),
                    kernel.as_ptr(),
                    &taps,
                    &offsets,
                    bias.as_ptr(),
                    width,
                    k_stride,
                    len,
                    in_stride,
                    out_stride,
                );
            }
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g.is_nan() && w.is_nan()) || (g - w).abs() <= 1e-4 * w.abs().max(1.0),
                    "width {width}: {got:?} vs {want:?}"
                );
            }
        }
        assert!(tract_linalg::routines::depthwise_c_f32().is_some());
    }
}
