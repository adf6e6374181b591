//! SHA-256 of up to four messages at once, one per 32-bit lane of a
//! 128-bit vector.
//!
//! Wasm has no SHA instructions, and one SHA-256 in wasm32 runs at about a
//! seventh of a SHA-NI core (238 against 1,590 MiB/s here, in wasmtime).
//! SHA-256 is one long dependency chain per message, so a single digest
//! cannot use vectors; four independent ones can. With `simd128` (which
//! wasmtime enables) four 8 MiB buffers hash at 448 MiB/s together in
//! wasmtime 48, 1.9 times one after another (BENCHMARKS.md, aws_s3).
//! Elsewhere (the native build of the unit tests) the same code runs on
//! plain `[u32; 4]` lanes, so the tests check every line of it but the lane
//! primitives against the `sha2` crate.

use sha2::digest::generic_array::GenericArray;
use sha2::{Digest, Sha256};

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
    0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
    0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
    0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2,
];

const H0: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// The SHA-256 of each message, in order. Messages are hashed four at a
/// time, longest first so that lanes hold messages of similar length (the
/// blocks past the shortest lane's end are hashed one message at a time).
/// A lone message is hashed alone: one lane of four is slower than the
/// scalar code.
pub fn sha256_many(messages: &[&[u8]]) -> Vec<[u8; 32]> {
    let mut order: Vec<usize> = (0..messages.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(messages[i].len()));
    let mut out = vec![[0u8; 32]; messages.len()];
    for group in order.chunks(4) {
        if let [i] = group {
            out[*i] = Sha256::digest(messages[*i]).into();
            continue;
        }
        // Idle lanes repeat the group's last message; their results are dropped.
        let lane = |k: usize| messages[group[k.min(group.len() - 1)]];
        let digests = sha256_x4([lane(0), lane(1), lane(2), lane(3)]);
        for (k, &i) in group.iter().enumerate() {
            out[i] = digests[k];
        }
    }
    out
}

fn sha256_x4(messages: [&[u8]; 4]) -> [[u8; 32]; 4] {
    let blocks = messages.iter().map(|m| m.len() / 64).min().unwrap_or(0);
    let states = lanes::compress(messages, blocks);
    std::array::from_fn(|i| finish(states[i], &messages[i][blocks * 64..], messages[i].len()))
}

/// Hashes what is left of one message after the lanes' common blocks, from
/// `state`, and pads it.
fn finish(mut state: [u32; 8], rest: &[u8], total_len: usize) -> [u8; 32] {
    let whole = rest.len() / 64 * 64;
    let compress = |state: &mut [u32; 8], bytes: &[u8]| {
        let blocks: Vec<_> = bytes.chunks_exact(64).map(|b| *GenericArray::from_slice(b)).collect();
        sha2::compress256(state, &blocks);
    };
    compress(&mut state, &rest[..whole]);
    let rest = &rest[whole..];
    let mut tail = [0u8; 128];
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    let end = if rest.len() + 9 <= 64 { 64 } else { 128 };
    tail[end - 8..end].copy_from_slice(&(total_len as u64 * 8).to_be_bytes());
    compress(&mut state, &tail[..end]);
    let mut digest = [0u8; 32];
    for (out, word) in digest.chunks_exact_mut(4).zip(state) {
        out.copy_from_slice(&word.to_be_bytes());
    }
    digest
}

/// The rounds, written once over a lane type `V` (four `u32`s): the module
/// that expands it defines `V` and the lane primitives `splat`, `add`,
/// `xor`, `shr`, `shl`, `select`, `load` and `lane_of`.
macro_rules! rounds {
    () => {
        /// Runs `blocks` 64-byte blocks of each message through SHA-256's
        /// compression; lane i is message i. Returns the four states.
        #[inline(always)]
        fn rounds(messages: [&[u8]; 4], blocks: usize) -> [[u32; 8]; 4] {
            macro_rules! rotr {
                ($x:expr, $n:literal) => {{
                    let x = $x;
                    // The two halves do not overlap: xor is or here.
                    xor(shr::<$n>(x), shl::<{ 32 - $n }>(x))
                }};
            }
            let mut state: [V; 8] = H0.map(splat);
            let mut w: [V; 64] = [splat(0); 64];
            for block in 0..blocks {
                for q in 0..4 {
                    w[q * 4..q * 4 + 4].copy_from_slice(&load(messages, block * 64 + q * 16));
                }
                for t in 16..64 {
                    let x = w[t - 15];
                    let s0 = xor(xor(rotr!(x, 7), rotr!(x, 18)), shr::<3>(x));
                    let y = w[t - 2];
                    let s1 = xor(xor(rotr!(y, 17), rotr!(y, 19)), shr::<10>(y));
                    w[t] = add(add(w[t - 16], s0), add(w[t - 7], s1));
                }
                let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = state;
                for t in 0..64 {
                    let s1 = xor(xor(rotr!(e, 6), rotr!(e, 11)), rotr!(e, 25));
                    let ch = select(e, f, g);
                    let t1 = add(add(h, s1), add(ch, add(splat(K[t]), w[t])));
                    let s0 = xor(xor(rotr!(a, 2), rotr!(a, 13)), rotr!(a, 22));
                    // Majority: where a and b differ, c decides.
                    let maj = select(xor(a, b), c, b);
                    h = g;
                    g = f;
                    f = e;
                    e = add(d, t1);
                    d = c;
                    c = b;
                    b = a;
                    a = add(t1, add(s0, maj));
                }
                for (s, v) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
                    *s = add(*s, v);
                }
            }
            std::array::from_fn(|lane| state.map(|v| lane_of(v, lane)))
        }
    };
}

#[cfg(target_arch = "wasm32")]
mod lanes {
    use super::H0;
    use super::K;
    use core::arch::wasm32::*;

    type V = v128;

    /// Compiled with `simd128` whatever the crate's flags. Wasm has no
    /// runtime feature detection: a runtime without SIMD (wasmtime has it
    /// on by default) rejects the whole component when it loads, so this
    /// never runs where it cannot.
    #[target_feature(enable = "simd128")]
    pub fn compress(messages: [&[u8]; 4], blocks: usize) -> [[u32; 8]; 4] {
        rounds(messages, blocks)
    }

    #[inline(always)]
    fn lane_of(v: V, lane: usize) -> u32 {
        // SAFETY: a v128 is 16 bytes of plain data, like [u32; 4].
        let lanes: [u32; 4] = unsafe { core::mem::transmute(v) };
        lanes[lane]
    }

    #[inline(always)]
    fn shr<const N: u32>(x: V) -> V {
        u32x4_shr(x, N)
    }

    #[inline(always)]
    fn shl<const N: u32>(x: V) -> V {
        u32x4_shl(x, N)
    }

    /// Big-endian words `offset..offset + 16` bytes of each message,
    /// transposed: word j of message i in lane i of vector j.
    #[inline(always)]
    fn load(messages: [&[u8]; 4], offset: usize) -> [V; 4] {
        let bswap = i8x16(3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12);
        let row = |m: &[u8]| {
            let bytes = &m[offset..offset + 16];
            // SAFETY: `bytes` is 16 bytes long, and v128_load reads 16
            // bytes at any alignment.
            i8x16_swizzle(unsafe { v128_load(bytes.as_ptr().cast()) }, bswap)
        };
        let (r0, r1, r2, r3) = (row(messages[0]), row(messages[1]), row(messages[2]), row(messages[3]));
        let t0 = i32x4_shuffle::<0, 4, 1, 5>(r0, r1);
        let t1 = i32x4_shuffle::<2, 6, 3, 7>(r0, r1);
        let t2 = i32x4_shuffle::<0, 4, 1, 5>(r2, r3);
        let t3 = i32x4_shuffle::<2, 6, 3, 7>(r2, r3);
        [
            i64x2_shuffle::<0, 2>(t0, t2),
            i64x2_shuffle::<1, 3>(t0, t2),
            i64x2_shuffle::<0, 2>(t1, t3),
            i64x2_shuffle::<1, 3>(t1, t3),
        ]
    }

    #[inline(always)]
    fn splat(x: u32) -> V {
        u32x4_splat(x)
    }

    #[inline(always)]
    fn add(a: V, b: V) -> V {
        u32x4_add(a, b)
    }

    #[inline(always)]
    fn xor(a: V, b: V) -> V {
        v128_xor(a, b)
    }

    /// Where `mask` has a 1 bit, `a`'s bit, else `b`'s.
    #[inline(always)]
    fn select(mask: V, a: V, b: V) -> V {
        v128_bitselect(a, b, mask)
    }

    rounds!();
}

#[cfg(not(target_arch = "wasm32"))]
mod lanes {
    use super::H0;
    use super::K;

    type V = [u32; 4];

    pub fn compress(messages: [&[u8]; 4], blocks: usize) -> [[u32; 8]; 4] {
        rounds(messages, blocks)
    }

    fn lane_of(v: V, lane: usize) -> u32 {
        v[lane]
    }

    fn shr<const N: u32>(x: V) -> V {
        x.map(|v| v >> N)
    }

    fn shl<const N: u32>(x: V) -> V {
        x.map(|v| v << N)
    }

    fn load(messages: [&[u8]; 4], offset: usize) -> [V; 4] {
        std::array::from_fn(|j| {
            messages.map(|m| u32::from_be_bytes(m[offset + 4 * j..offset + 4 * j + 4].try_into().expect("4 bytes")))
        })
    }

    fn splat(x: u32) -> V {
        [x; 4]
    }

    fn add(a: V, b: V) -> V {
        std::array::from_fn(|i| a[i].wrapping_add(b[i]))
    }

    fn xor(a: V, b: V) -> V {
        std::array::from_fn(|i| a[i] ^ b[i])
    }

    /// Where `mask` has a 1 bit, `a`'s bit, else `b`'s.
    fn select(mask: V, a: V, b: V) -> V {
        std::array::from_fn(|i| (a[i] & mask[i]) | (b[i] & !mask[i]))
    }

    rounds!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(n: usize, seed: u32) -> Vec<u8> {
        (0..n as u32)
            .map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect()
    }

    fn check(lengths: &[usize]) {
        let data: Vec<Vec<u8>> = lengths.iter().enumerate().map(|(i, &n)| bytes(n, i as u32)).collect();
        let messages: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
        let got = sha256_many(&messages);
        for (i, m) in messages.iter().enumerate() {
            let want: [u8; 32] = Sha256::digest(m).into();
            assert_eq!(got[i], want, "message {i} of lengths {lengths:?}");
        }
    }

    #[test]
    fn matches_sha2_at_every_padding_edge() {
        // 55/56 and 119/120: where the length stops fitting the last block.
        for n in [0, 1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 1000] {
            check(&[n, n, n, n]);
            check(&[n, n + 1, n / 2, n + 64]);
        }
    }

    #[test]
    fn matches_sha2_for_any_count_and_uneven_parts() {
        check(&[]);
        check(&[5000]);
        check(&[4096, 100]);
        check(&[4096, 4096, 4096]);
        // A multipart upload's batch: equal parts, a short last one.
        check(&[1 << 16, 1 << 16, 1 << 16, 1 << 16, 1 << 16, 1 << 16, 777]);
    }
}
