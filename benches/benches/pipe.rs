//! Criterion benchmarks of pipes between two pinned processes: round-trip latency for each
//! flavour next to the libc floor, and one-way throughput.
//!
//! The bench binary re-executes itself as the peer, so `main` first checks for a peer role.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use ipc_bench::affinity;
use ipc_bench::case::{Case, OnFirstRun, PingPong, one_way, throughput};
use ipc_bench::floor::serve_peer_role;
use ipc_bench::pipes::Flavour;

fn pipes(c: &mut Criterion) {
    let pair = affinity::cpu_pair().expect("sched_getaffinity");
    if let Some((own, _)) = pair {
        affinity::pin_to(own).expect("pin");
    }
    let peer_cpu = pair.map(|(_, peer)| peer);

    let mut latency = c.benchmark_group("pipe_latency_one_way");
    for size in [64usize, 4096] {
        for flavour in [Flavour::Raw, Flavour::Pipe, Flavour::Framed] {
            let mut pingpong =
                OnFirstRun::new(move || PingPong::start(Case::Pipe(flavour), size, peer_cpu));
            latency.bench_function(BenchmarkId::new(flavour.name(), size), |b| {
                b.iter_custom(|iters| {
                    let pingpong = pingpong.get();
                    one_way(iters, || pingpong.round_trip())
                });
            });
        }
    }
    latency.finish();

    let mut bulk = c.benchmark_group("pipe_throughput");
    bulk.sample_size(10)
        .measurement_time(Duration::from_secs(3));
    for size in [4096usize, 64 * 1024, 1 << 20] {
        bulk.throughput(Throughput::Bytes(size as u64));
        for (flavour, capacity) in [
            (Flavour::Raw, 64 * 1024),
            (Flavour::Pipe, 64 * 1024),
            (Flavour::Framed, 64 * 1024),
            (Flavour::Raw, 1 << 20),
            (Flavour::Pipe, 1 << 20),
            (Flavour::RawVmsplice, 1 << 20),
            (Flavour::Vmsplice, 1 << 20),
        ] {
            let id = format!("{}/cap{}k", flavour.name(), capacity / 1024);
            bulk.bench_function(BenchmarkId::new(id, size), |b| {
                b.iter_custom(|iters| {
                    throughput(Case::Pipe(flavour), size, capacity, iters.max(1), peer_cpu)
                        .expect("transfer")
                });
            });
        }
    }
    bulk.finish();
}

fn main() {
    serve_peer_role();
    let mut c = Criterion::default().configure_from_args();
    pipes(&mut c);
    c.final_summary();
}
