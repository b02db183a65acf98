//! Simulated cluster: 1,000 feeds over 10 nodes on an in-memory JetStream-like store and a
//! simulated clock. Prints moves on join/leave, time to full reassignment, and store
//! operations per second at steady state.
//!
//! `cargo run --release -p nv-cluster --example cluster_sim [FEEDS] [NODES] [LEASE_TTL_SECS]`
#![allow(clippy::print_stdout, reason = "a benchmark prints its table")]

use std::time::{Duration, Instant};

use nv_cluster::kv::Kv as _;
use nv_cluster::sim::Simulation;

fn arg(i: usize, default: u64) -> u64 {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<(), String> {
    let feeds = usize::try_from(arg(1, 1000)).map_err(|e| e.to_string())?;
    let nodes = arg(2, 10);
    let ttl = Duration::from_secs(arg(3, 6));
    let wall = Instant::now();
    let mut sim = Simulation::new(ttl);
    sim.add_feeds(feeds).map_err(|e| e.to_string())?;
    for i in 0..nodes {
        sim.add_node(&format!("node-{i:02}"), 1.0);
    }
    println!("| event | feeds moved | starts | time to all feeds running (simulated) |");
    println!("|---|---|---|---|");
    let t = sim.until(100, |s| s.held_live() == feeds)?;
    let (starts, moved) = sim.take_counts();
    println!(
        "| {nodes} nodes start, {feeds} feeds | {moved} | {starts} | {:.1} s |",
        t.as_secs_f64()
    );

    let ops0 = sim.kv.ops();
    let t0 = sim.clock.elapsed();
    for _ in 0..30 {
        sim.round()?;
    }
    let (starts, moved) = sim.take_counts();
    let ops = sim.kv.ops() - ops0;
    let secs = (sim.clock.elapsed() - t0).as_secs_f64();
    println!("| steady state, {secs:.0} s | {moved} | {starts} | - |");

    sim.add_node("node-new", 1.0);
    let t = sim.until(100, |s| s.held_live() == feeds && s.held_by("node-new") > 0)?;
    let (starts, moved) = sim.take_counts();
    println!(
        "| node joins | {moved} | {starts} | {:.1} s |",
        t.as_secs_f64()
    );

    let lost = sim.held_by("node-03");
    sim.freeze("node-03");
    let t = sim.until(100, |s| s.held_live() == feeds)?;
    let (starts, _) = sim.take_counts();
    println!(
        "| node crashes (held {lost}) | {starts} | {starts} | {:.1} s |",
        t.as_secs_f64()
    );

    let draining = sim.held_by("node-05");
    sim.drain("node-05");
    let t = sim.until(100, |s| s.held_live() == feeds)?;
    let (starts, _) = sim.take_counts();
    println!(
        "| node drains (held {draining}) | {starts} | {starts} | {:.1} s |",
        t.as_secs_f64()
    );
    println!();
    println!(
        "steady state: {:.0} store operations/s for {feeds} feeds on {nodes} nodes (lease TTL {} s, tick {:.1} s; a list counts as one operation)",
        ops as f64 / secs,
        ttl.as_secs(),
        (ttl / 3).as_secs_f64()
    );
    println!("fencing checked after every node tick: never two publishers for one feed");
    println!(
        "simulation wall time: {:.2} s",
        wall.elapsed().as_secs_f64()
    );
    Ok(())
}
