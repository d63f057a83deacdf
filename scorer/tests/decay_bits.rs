//! The decay factor is the correctly rounded 2^(-x) (SCORING.md, step 3): pinned bits of
//! known inputs, and a property against an arbitrary-precision computation.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]

use credence_scorer::decay_factor;
use num_bigint::BigUint;
use proptest::prelude::*;

const DAY: i64 = 86_400_000_000_000;

/// (dt_ns, half_life_ns, bits of the correctly rounded 2^(-dt/half_life)). The bits were
/// computed apart from this crate, with Python's mpmath at 300 bits rounded to nearest:
/// `float(mpmath.power(2, -mpmath.mpf(float(dt) / float(hl))))` at `workprec(53)`.
const PINNED: &[(i64, i64, u64)] = &[
    (DAY, 90 * DAY, 0x3fef_c126_8983_65e4),
    (45 * DAY, 90 * DAY, 0x3fe6_a09e_667f_3bcd),
    (90 * DAY, 90 * DAY, 0x3fe0_0000_0000_0000),
    (1, 90 * DAY, 0x3fef_ffff_ffff_ffff),
    (12_345_678_901_234, 90 * DAY, 0x3fef_f6fd_6282_2685),
    (1000 * DAY, 90 * DAY, 0x3f3d_a0c4_012e_f44f),
    (3 * 3_600_000_000_000, 7 * DAY, 0x3fef_9b3a_3820_8f1a),
    // Inputs where `0.5f64.powf(x)` (glibc's exp2/pow on x86-64 Linux) is one ulp off.
    (8_043_006_779_563_006, 90 * DAY, 0x3fdf_3f53_6bfa_fe0c),
    (5_444_159_596_804_159, 90 * DAY, 0x3fe3_b256_1070_7195),
    (26_627_494_658_947_494, 90 * DAY, 0x3fb7_d89a_ebe4_f0d6),
];

#[test]
fn known_inputs_give_the_pinned_bits() {
    for &(dt, half_life, bits) in PINNED {
        let got = decay_factor(dt, half_life);
        assert_eq!(
            got.to_bits(),
            bits,
            "dt {dt} ns, half-life {half_life} ns: got {got:e} ({:#018x}), want {:e}",
            got.to_bits(),
            f64::from_bits(bits)
        );
        let reference = reference_exp2_neg(dt as f64 / half_life as f64);
        assert_eq!(
            reference.map(f64::to_bits),
            Some(bits),
            "the integer reference agrees with mpmath for dt {dt}"
        );
    }
}

/// Fixed-point precision of the reference, in bits.
const Q: u64 = 224;
/// Bits of slack around a rounding boundary: far more than the reference's error (a few
/// dozen units of 2^-Q), far less than the distance of almost every input to a boundary.
const SLACK: u64 = 32;

/// ln 2 at `Q` bits: the sum of 1/(k 2^k), with 16 guard bits.
fn ln2() -> BigUint {
    let one = BigUint::from(1u8) << (Q + 16);
    let sum = (1..=Q + 16).fold(BigUint::ZERO, |sum, k| sum + (&one >> k) / BigUint::from(k));
    sum >> 16
}

/// 2^(-x) for 0 <= x < 900, correctly rounded to a double by arbitrary-precision integer
/// arithmetic alone, or `None` when the exact value is too near a rounding boundary for `Q`
/// bits to tell.
fn reference_exp2_neg(x: f64) -> Option<f64> {
    assert!((0.0..900.0).contains(&x), "{x}");
    let whole = x.floor();
    let n = whole as i64;
    // The fraction x - n, exactly representable, at Q bits (truncated below 2^-Q).
    let (mantissa, exponent) = decompose(x - whole);
    let shift = exponent + Q as i64;
    let frac = if shift >= 0 {
        BigUint::from(mantissa) << shift as u64
    } else {
        BigUint::from(mantissa) >> (-shift) as u64
    };
    // y = frac * ln 2 in [0, ln 2); 2^(-frac) = e^(-y) = 1 / e^y.
    let one = BigUint::from(1u8) << Q;
    let y = (frac * ln2()) >> Q;
    let mut term = one.clone();
    let mut exp_y = one.clone();
    for k in 1u32.. {
        term = ((term * &y) >> Q) / BigUint::from(k);
        if term == BigUint::ZERO {
            break;
        }
        exp_y += &term;
    }
    let r = (BigUint::from(1u8) << (2 * Q)) / exp_y; // in (2^(Q-1), 2^Q]
    // Round r / 2^Q to 53 significant bits; r / 2^Q is in (1/2, 1].
    let drop = Q - 53;
    let mut significand: u64 = (&r >> drop).try_into().unwrap();
    let rest = &r - (BigUint::from(significand) << drop);
    let half = BigUint::from(1u8) << (drop - 1);
    let slack = BigUint::from(1u8) << SLACK;
    let distance = if rest > half {
        &rest - &half
    } else {
        &half - &rest
    };
    if distance < slack {
        return None;
    }
    if rest > half {
        significand += 1;
    }
    // significand * 2^(-53 - n), exact: a normal power of two times an integer < 2^54.
    let scale = f64::from_bits(((1023 - 53 - n) as u64) << 52);
    Some(significand as f64 * scale)
}

/// `x` as `mantissa * 2^exponent`, exactly (x finite and non-negative).
fn decompose(x: f64) -> (u64, i64) {
    let bits = x.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i64;
    let fraction = bits & ((1 << 52) - 1);
    if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1 << 52), biased - 1075)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decay_factors_are_correctly_rounded(
        half_life in 1i64..=3650 * DAY,
        halves in 0.0f64..60.0,
        jitter in 0i64..1_000_000_000,
    ) {
        // Event-time gaps from nothing to 60 half-lives, to the nanosecond.
        let dt = ((half_life as f64 * halves) as i64).saturating_add(jitter);
        let x = dt as f64 / half_life as f64;
        prop_assume!(x < 900.0);
        let got = decay_factor(dt, half_life);
        if let Some(want) = reference_exp2_neg(x) {
            prop_assert_eq!(got.to_bits(), want.to_bits(), "dt {} half-life {} x {:e}", dt, half_life, x);
        }
    }
}
