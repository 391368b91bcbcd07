//! Criterion benchmarks of `ipc-signal`: a signal round trip between two pinned processes,
//! next to the same libc calls.
//!
//! The bench binary re-executes itself as the peer, so `main` first checks for a peer role.

use criterion::{BenchmarkId, Criterion};
use ipc_bench::affinity;
use ipc_bench::case::{Case, OnFirstRun, PingPong, one_way};
use ipc_bench::floor::serve_peer_role;
use ipc_bench::signals::Flavour;

fn signals(c: &mut Criterion) {
    let pair = affinity::cpu_pair().expect("sched_getaffinity");
    if let Some((own, _)) = pair {
        affinity::pin_to(own).expect("pin");
    }
    let peer_cpu = pair.map(|(_, peer)| peer);

    let mut latency = c.benchmark_group("signal_round_trip_one_way");
    for flavour in Flavour::ALL {
        let mut pingpong =
            OnFirstRun::new(move || PingPong::start(Case::Sig(flavour), 8, peer_cpu));
        latency.bench_function(BenchmarkId::from_parameter(flavour.name()), |b| {
            b.iter_custom(|iters| {
                let pingpong = pingpong.get();
                one_way(iters, || pingpong.round_trip())
            });
        });
    }
    latency.finish();
}

fn main() {
    ipc_bench::signals::block_in_every_thread().expect("real-time signals");
    serve_peer_role();
    let mut c = Criterion::default().configure_from_args();
    signals(&mut c);
    c.final_summary();
}
