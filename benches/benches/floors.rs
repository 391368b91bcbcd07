//! Criterion benchmarks of the machine's floors, between two pinned processes.
//!
//! The bench binary re-executes itself as the peer, so `main` first checks for a peer role.

use criterion::{BenchmarkId, Criterion, Throughput};
use ipc_bench::affinity;
use ipc_bench::case::{Case, OnFirstRun, PingPong, one_way};
use ipc_bench::floor::{ShmPingPong, serve_peer_role};
use ipc_bench::pipes::Flavour;

fn floors(c: &mut Criterion) {
    let pair = affinity::cpu_pair().expect("sched_getaffinity");
    if let Some((own, _)) = pair {
        affinity::pin_to(own).expect("pin");
    }
    let peer_cpu = pair.map(|(_, peer)| peer);
    let mut group = c.benchmark_group("floor");

    let mut shm = OnFirstRun::new(move || ShmPingPong::start(peer_cpu));
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("shm_spin_one_way", 8), |b| {
        b.iter_custom(|iters| {
            let shm = shm.get();
            one_way(iters, || shm.round_trip())
        });
    });
    drop(shm);

    for size in [64usize, 4096] {
        let mut pipe =
            OnFirstRun::new(move || PingPong::start(Case::Pipe(Flavour::Raw), size, peer_cpu));
        group.bench_function(BenchmarkId::new("pipe_one_way", size), |b| {
            b.iter_custom(|iters| {
                let pipe = pipe.get();
                one_way(iters, || pipe.round_trip())
            });
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
