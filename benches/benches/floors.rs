//! Criterion benchmarks of the machine's floors, between two pinned processes.
//!
//! The bench binary re-executes itself as the peer, so `main` first checks for a peer role.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use ipc_bench::affinity;
use ipc_bench::case::{Case, PingPong};
use ipc_bench::floor::{ShmPingPong, serve_peer_role};
use ipc_bench::pipes::Flavour;

/// Times `iters` round trips and returns the one-way time (half of it).
fn one_way(iters: u64, mut round_trip: impl FnMut() -> ipc_core::Result<()>) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        round_trip().unwrap_or_else(|err| panic!("round trip failed: {err}"));
    }
    start.elapsed() / 2
}

fn floors(c: &mut Criterion) {
    let pair = affinity::cpu_pair().expect("sched_getaffinity");
    if let Some((own, _)) = pair {
        affinity::pin_to(own).expect("pin");
    }
    let peer_cpu = pair.map(|(_, peer)| peer);
    let mut group = c.benchmark_group("floor");

    let mut shm = ShmPingPong::start(peer_cpu).expect("start shm ping-pong");
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("shm_spin_one_way", 8), |b| {
        b.iter_custom(|iters| one_way(iters, || shm.round_trip()));
    });
    drop(shm);

    for size in [64usize, 4096] {
        let mut pipe = PingPong::start(Case::Pipe(Flavour::Raw), size, peer_cpu)
            .expect("start pipe ping-pong");
        group.bench_function(BenchmarkId::new("pipe_one_way", size), |b| {
            b.iter_custom(|iters| one_way(iters, || pipe.round_trip()));
        });
    }
    group.finish();
}

fn main() {
    serve_peer_role();
    let mut c = Criterion::default().configure_from_args();
    floors(&mut c);
    c.final_summary();
}
