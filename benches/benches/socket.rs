//! Criterion benchmarks of sockets between two pinned processes: round-trip latency and
//! one-way throughput for every socket kind, each next to its libc floor.
//!
//! The bench binary re-executes itself as the peer, so `main` first checks for a peer role.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use ipc_bench::affinity;
use ipc_bench::case::{Case, OnFirstRun, PingPong, one_way, throughput};
use ipc_bench::floor::serve_peer_role;
use ipc_bench::sockets::Flavour;

fn sockets(c: &mut Criterion) {
    let pair = affinity::cpu_pair().expect("sched_getaffinity");
    if let Some((own, _)) = pair {
        affinity::pin_to(own).expect("pin");
    }
    let peer_cpu = pair.map(|(_, peer)| peer);

    let mut latency = c.benchmark_group("socket_latency_one_way");
    for size in [64usize, 4096] {
        // A batch holds messages back until it is full or flushed: no latency to measure.
        for flavour in Flavour::ALL.into_iter().filter(|f| !f.is_batch()) {
            let mut pingpong =
                OnFirstRun::new(move || PingPong::start(Case::Socket(flavour), size, peer_cpu));
            latency.bench_function(BenchmarkId::new(flavour.name(), size), |b| {
                b.iter_custom(|iters| {
                    let pingpong = pingpong.get();
                    one_way(iters, || pingpong.round_trip())
                });
            });
        }
    }
    latency.finish();

    let mut bulk = c.benchmark_group("socket_throughput");
    bulk.sample_size(10)
        .measurement_time(Duration::from_secs(3));
    for size in [4096usize, 64 * 1024, 1 << 20] {
        bulk.throughput(Throughput::Bytes(size as u64));
        for flavour in Flavour::ALL.into_iter().filter(|f| size <= f.max_message()) {
            bulk.bench_function(BenchmarkId::new(flavour.name(), size), |b| {
                b.iter_custom(|iters| {
                    throughput(Case::Socket(flavour), size, 0, iters.max(1), peer_cpu)
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
    sockets(&mut c);
    c.final_summary();
}
