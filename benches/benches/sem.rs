//! Criterion benchmarks of `ipc-sem`: a ping-pong between two pinned processes through two
//! semaphores (or a mutex hand-off), and uncontended post+wait or lock+unlock pairs, each
//! next to the same calls made raw.
//!
//! The bench binary re-executes itself as the peer, so `main` first checks for a peer role.

use std::time::Instant;

use criterion::{BenchmarkId, Criterion};
use ipc_bench::affinity;
use ipc_bench::case::{Case, PingPong};
use ipc_bench::floor::serve_peer_role;
use ipc_bench::sems::{Flavour, Uncontended};

fn sems(c: &mut Criterion) {
    let pair = affinity::cpu_pair().expect("sched_getaffinity");
    if let Some((own, _)) = pair {
        affinity::pin_to(own).expect("pin");
    }
    let peer_cpu = pair.map(|(_, peer)| peer);

    let mut latency = c.benchmark_group("sem_pingpong_one_way");
    for flavour in Flavour::ALL {
        latency.bench_function(BenchmarkId::from_parameter(flavour.name()), |b| {
            b.iter_custom(|iters| {
                // A fresh pair of semaphores for every sample: System V keeps a per-process
                // undo balance that a long one-directional run would exhaust (SEMAEM).
                let mut pingpong =
                    PingPong::start(Case::Sem(flavour), 8, peer_cpu).expect("start ping-pong");
                let start = Instant::now();
                for _ in 0..iters {
                    pingpong.round_trip().expect("round trip");
                }
                start.elapsed() / 2
            });
        });
    }
    latency.finish();

    let uncontended = Uncontended::new().expect("semaphores");
    let mut ops = c.benchmark_group("sem_uncontended_pair");
    for flavour in Flavour::ALL {
        ops.bench_function(BenchmarkId::from_parameter(flavour.name()), |b| {
            b.iter_custom(|iters| uncontended.time(flavour, iters).expect("operations"));
        });
    }
    ops.finish();
}

fn main() {
    serve_peer_role();
    let mut c = Criterion::default().configure_from_args();
    sems(&mut c);
    c.final_summary();
}
