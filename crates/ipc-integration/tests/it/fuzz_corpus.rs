//! The fuzz targets' corpora replayed on stable, with a few thousand deterministic
//! mutations of each seed (bit flips, truncations, splices, interesting lengths): every
//! input must leave the target without a panic.

use std::path::PathBuf;

use ipc_integration::fuzz;
use ipc_testkit::Rng;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut inputs: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|entry| std::fs::read(entry.path()).unwrap())
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "no corpus in {}", dir.display());
    inputs
}

/// Mutations of `seed`, as a fuzzer would start from.
fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let len = u64::try_from(data.len()).unwrap_or(0);
        match rng.below(6) {
            0 if !data.is_empty() => {
                let i = usize::try_from(rng.below(len)).unwrap_or(0);
                data[i] ^= 1 << rng.below(8);
            }
            1 => data.truncate(usize::try_from(rng.below(len + 1)).unwrap_or(0)),
            2 if data.len() >= 4 => {
                // An interesting little-endian length somewhere.
                let i = usize::try_from(rng.below(len - 3)).unwrap_or(0);
                let value: u32 = [
                    0,
                    1,
                    0x7f,
                    0x80,
                    0xff,
                    0x1000,
                    0xffff,
                    u32::MAX,
                    u32::MAX - 7,
                ][usize::try_from(rng.below(9)).unwrap_or(0)];
                data[i..i + 4].copy_from_slice(&value.to_le_bytes());
            }
            3 => data.extend((0..rng.below(64)).map(|_| u8::try_from(rng.below(256)).unwrap_or(0))),
            4 if !data.is_empty() => {
                let i = usize::try_from(rng.below(len)).unwrap_or(0);
                data[i] = u8::try_from(rng.below(256)).unwrap_or(0);
            }
            _ => {
                let copy = data.clone();
                data.extend_from_slice(&copy[..copy.len().min(32)]);
            }
        }
    }
    data
}

fn replay(target: &str, run: fn(&[u8]), mutations: usize) {
    let seeds = corpus(target);
    let mut rng = Rng::new(0xf022 + target.len() as u64);
    for seed in &seeds {
        run(seed);
    }
    for i in 0..mutations {
        let seed = &seeds[i % seeds.len()];
        run(&mutate(seed, &mut rng));
    }
}

#[test]
fn fuzz_corpus_frames() {
    replay("frames", fuzz::frames, 20_000);
}

#[test]
fn fuzz_corpus_channel() {
    replay("channel", fuzz::channel, 2_000);
}

#[test]
fn fuzz_corpus_channel_positions() {
    replay("channel_positions", fuzz::channel_positions, 2_000);
}

#[test]
fn fuzz_corpus_segment() {
    replay("segment", fuzz::segment, 2_000);
}
