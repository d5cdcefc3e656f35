//! How fast `steward run` picks up a new container, end to end, with real
//! parts (the test bench's dockerd, `otelcol-steward`, VictoriaLogs, SQLite;
//! Temporal with `--engine temporal`):
//!
//! - container start → its first line queryable in VictoriaLogs;
//! - Docker's start (the container's `State.StartedAt`) → the new config
//!   pushed (written and the collector signalled: the end of `push_config`
//!   in the workflow history), and → applied (verified and marked applied in
//!   the version history, which includes `agent.settle_ms`).
//!
//! Containers are started one at a time, each after the previous one's line
//! arrived, so every rollout is one container's; then a burst of containers
//! at once shows the debounce folding them into few rollouts.
//!
//! ```text
//! cargo bench -p steward --bench run_latency -- [--containers 100] [--burst 50]
//!     [--engine embedded|temporal] [--no-canary]
//! ```

use std::time::{Duration, Instant, SystemTime};

use bollard::query_parameters::InspectContainerOptions;
use serde_json::Value;
use steward_testbed::Testbed;
use steward_testbed::docker::{Container, connect};
use steward_testbed::node::{Node, NodeOptions};
use steward_testbed::parts::Temporal;

const STEWARD: &str = env!("CARGO_BIN_EXE_steward");

struct Args {
    containers: usize,
    burst: usize,
    engine: String,
    canary: bool,
}

fn args() -> Args {
    let mut args = Args { containers: 100, burst: 50, engine: "embedded".into(), canary: true };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--containers" => {
                args.containers = it.next().and_then(|n| n.parse().ok()).unwrap_or(100)
            }
            "--burst" => args.burst = it.next().and_then(|n| n.parse().ok()).unwrap_or(50),
            "--engine" => args.engine = it.next().unwrap_or_else(|| "embedded".into()),
            "--no-canary" => args.canary = false,
            // `cargo bench` passes `--bench`; filters are not used here.
            _ => {}
        }
    }
    args
}

fn json(node: &Node, args: &[&str]) -> Value {
    node.steward_json(args).unwrap_or_else(|err| panic!("{err}"))
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn summary(name: &str, mut values: Vec<f64>) {
    values.sort_by(f64::total_cmp);
    println!(
        "{name:<44} n={:<4} p50={:>7.0} ms  p99={:>7.0} ms  min={:>6.0}  max={:>6.0}",
        values.len(),
        pct(&values, 50.0),
        pct(&values, 99.0),
        values.first().copied().unwrap_or(f64::NAN),
        values.last().copied().unwrap_or(f64::NAN),
    );
}

async fn wait_for(node: &Node, needle: &str, deadline: Duration) -> Option<Instant> {
    let until = Instant::now() + deadline;
    while Instant::now() < until {
        if node.count(needle).await.unwrap_or(0) > 0 {
            return Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    None
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = args();
    let tb = Testbed::locate().expect("test bench installed: run scripts/testbed.sh");
    let temporal = if args.engine == "temporal" {
        Some(Temporal::start(&tb).await.expect("Temporal starts"))
    } else {
        None
    };
    let options = NodeOptions {
        engine: args.engine.clone(),
        temporal_address: temporal.as_ref().map(Temporal::address),
        canary: args.canary,
        period_secs: 3600,
        log: "warn".into(),
        ..NodeOptions::default()
    };
    let mut node = Node::start(&tb, STEWARD.as_ref(), options).await.expect("node starts");
    node.start_steward().expect("steward run starts");
    let (docker, host) = connect(&tb).await.expect("docker");
    let until = Instant::now() + Duration::from_secs(60);
    while json(&node, &["config", "history", "--output", "json"])
        .as_array()
        .is_none_or(|v| !v.iter().any(|v| v["status"] == "applied"))
    {
        assert!(Instant::now() < until, "steward applied nothing in 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "steward run: engine {}, canary {}, {} sequential containers, then a burst of {}",
        args.engine, args.canary, args.containers, args.burst
    );

    let mut first_line = Vec::new();
    let mut to_pushed = Vec::new();
    let mut to_applied = Vec::new();
    let mut kept = Vec::new();
    for i in 0..args.containers {
        let marker = format!("bench-{}-{i}", node.label);
        let t0 = Instant::now();
        let container = Container::run(
            &docker,
            &host,
            &format!("bench-{}-{i}", node.label),
            &node.labels(),
            &format!("echo {marker}; exec sleep 3600"),
        )
        .await
        .expect("container starts");
        let Some(found) = wait_for(&node, &marker, Duration::from_secs(60)).await else {
            panic!("container {i}: line not queryable after 60 s");
        };
        first_line.push(found.duration_since(t0).as_secs_f64() * 1000.0);

        let inspected = docker
            .inspect_container(container.id(), None::<InspectContainerOptions>)
            .await
            .expect("inspect");
        let started = inspected
            .state
            .and_then(|s| s.started_at)
            .and_then(|t| humantime::parse_rfc3339_weak(&t).ok())
            .map(unix_ms)
            .expect("StartedAt");
        // The rollout that took this container in is the newest version.
        let until = Instant::now() + Duration::from_secs(30);
        let applied_ms = loop {
            let versions = json(&node, &["config", "history", "--output", "json", "--limit", "1"]);
            let newest = &versions[0];
            if newest["status"] == "applied"
                && let Some(ms) = newest["applied_ms"].as_i64()
                && ms >= started
            {
                break ms;
            }
            assert!(Instant::now() < until, "container {i}: no version applied: {newest}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        to_applied.push((applied_ms - started) as f64);
        let cycles = json(&node, &["workflow", "history", "--output", "json", "--limit", "3"]);
        let pushed_ms = cycles
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["steps"].as_array().cloned().unwrap_or_default())
            .filter(|s| s["activity"] == "push_config" && s["status"] == "completed")
            .filter_map(|s| Some(s["started_ms"].as_i64()? + s["duration_ms"].as_i64()?))
            .filter(|ms| *ms >= started)
            .min();
        if let Some(ms) = pushed_ms {
            to_pushed.push((ms - started) as f64);
        }
        kept.push(container);
        if (i + 1) % 10 == 0 {
            eprintln!("{} containers measured", i + 1);
        }
    }

    // A burst: every container started at once.
    let before = json(&node, &["config", "history", "--output", "json", "--limit", "1000"])
        .as_array()
        .map_or(0, Vec::len);
    let t0 = Instant::now();
    let mut burst = Vec::new();
    for i in 0..args.burst {
        let marker = format!("burst-{}-{i}", node.label);
        burst.push((
            marker.clone(),
            Container::run(
                &docker,
                &host,
                &format!("burst-{}-{i}", node.label),
                &node.labels(),
                &format!("echo {marker}; exec sleep 3600"),
            )
            .await
            .expect("container starts"),
        ));
    }
    let started_all = t0.elapsed();
    let mut burst_lines = Vec::new();
    for (marker, _) in &burst {
        let found = wait_for(&node, marker, Duration::from_secs(120)).await.expect("burst line");
        burst_lines.push(found.duration_since(t0).as_secs_f64() * 1000.0);
    }
    let after = json(&node, &["config", "history", "--output", "json", "--limit", "1000"])
        .as_array()
        .map_or(0, Vec::len);

    println!();
    summary("container start → first line queryable", first_line);
    summary("docker start → config pushed (file + SIGHUP)", to_pushed);
    summary("docker start → config applied (verified)", to_applied);
    summary(&format!("burst of {}: first start → each line", args.burst), burst_lines);
    println!(
        "burst of {}: starting them took {:.0} ms; {} new config versions for {} containers",
        args.burst,
        started_all.as_secs_f64() * 1000.0,
        after - before,
        args.burst
    );
    // Where a rollout's time goes: every completed attempt in the embedded
    // engine's history (Temporal keeps its own, not read here).
    let cycles = json(&node, &["workflow", "history", "--output", "json", "--limit", "100000"]);
    let mut by_activity: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    for step in cycles
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["steps"].as_array().cloned().unwrap_or_default())
    {
        if step["status"] == "completed"
            && let (Some(name), Some(ms)) =
                (step["activity"].as_str(), step["duration_ms"].as_f64())
        {
            by_activity.entry(name.to_owned()).or_default().push(ms);
        }
    }
    if !by_activity.is_empty() {
        println!("\nactivity durations (embedded history, all cycles):");
        for (name, values) in by_activity {
            summary(&format!("  {name}"), values);
        }
    }
    println!("goals: p99 ≤ 2000 ms (first line), p99 ≤ 500 ms (event → config applied)");
    drop(kept);
    drop(burst);
}
