//! Every fuzz target in the test suite, bounded: each committed corpus file
//! (`fuzz/corpus/<target>/`, seeds and what coverage-guided runs kept),
//! then mutations of them for `WHARF_FUZZ_SMOKE_SECS` seconds per target
//! (default 2). A panic is a finding; `./scripts/fuzz.sh` runs the same
//! targets coverage-guided for as long as you like.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus `{}`: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

/// xorshift64*: deterministic, so a failing run repeats.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One to eight byte flips, insertions, deletions or truncations.
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(8) {
        match rng.below(5) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            2 => {
                let i = rng.below(v.len() + 1);
                v.insert(i, rng.next() as u8);
            }
            3 if !v.is_empty() => {
                let i = rng.below(v.len());
                v.remove(i);
            }
            _ => {
                let n = rng.below(v.len() + 1);
                v.truncate(n);
            }
        }
    }
    v
}

#[test]
fn every_target_survives_its_corpus_and_mutations() {
    let secs: u64 = std::env::var("WHARF_FUZZ_SMOKE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    for (name, target) in wharf_fuzz::TARGETS {
        let seeds = corpus(name);
        assert!(!seeds.is_empty(), "target `{name}` has no corpus");
        for s in &seeds {
            target(s);
        }
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ name.len() as u64);
        let start = Instant::now();
        let mut runs = 0u64;
        while start.elapsed() < Duration::from_secs(secs) {
            let seed = &seeds[rng.below(seeds.len())];
            target(&mutate(&mut rng, seed));
            runs += 1;
        }
        println!("{name}: {} corpus files, {runs} mutations in {secs} s", seeds.len());
    }
}
