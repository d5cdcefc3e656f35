//! Benchmark: collector-config generation at fleet scale (issue 4: "A
//! criterion benchmark builds configs for 1k, 10k and 100k sources; the goal
//! is ≤ 20 ms at 10k with linear growth").
//!
//! Every registry change regenerates the whole config, and every reload runs
//! the static checker on it first, so both sit on the path from "a container
//! started" to "its logs are collected". Three groups:
//! - `generate_config`: the whole [`generate_config`] call (sorting and
//!   checking the sources, building the typed model, serialising it to YAML,
//!   hashing it) for 1k, 10k and 100k sources;
//! - `static_check`: [`static_check`] (parse the YAML back, check references,
//!   pipelines, ports, endpoints) on the generated config for 1k and 10k. A
//!   size whose config `static_check` refuses is reported on stderr and not
//!   timed: a refusal stops early and would time the wrong thing. (With
//!   serde-saphyr's default budget of 250,000 YAML nodes the parse is refused
//!   from 7,140 of these sources on, about 35 nodes each.)
//! - `static_check_no_budget`: the same two steps, serde-saphyr's parse and
//!   [`check_tree`], with the parser's budget off, at the same sizes: what
//!   `static_check` costs at sizes its budget now refuses.
//!
//! Inputs look like what Docker discovery registers: ids `docker:<64 hex>`,
//! json-file paths under `/var/lib/docker/containers/`, and six labels. They
//! are derived from the index alone, so every run sees the same bytes, and are
//! built once, outside the timed loop. Settings are the defaults (logs only):
//! metrics and traces add a constant handful of components.
//!
//! Throughput is reported in sources per second, so linear growth shows as the
//! same throughput at every size. The larger sizes take fewer, flat samples to
//! keep the whole run to a few minutes on two cores.
//!
//! Run: `cargo bench -p steward-config --bench generate`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use steward_config::validate::{check_tree, static_check};
use steward_config::{PipelineSettings, Source, generate_config};

const SERVICES: [&str; 8] = ["web", "api", "worker", "db", "cache", "queue", "auth", "proxy"];
const IMAGES: [(&str, &str); 8] = [
    ("nginx", "1.27-alpine"),
    ("ghcr.io/acme/api", "v2.14.3"),
    ("ghcr.io/acme/worker", "v2.14.3"),
    ("postgres", "16.4"),
    ("redis", "7.4"),
    ("rabbitmq", "3.13-management"),
    ("quay.io/keycloak/keycloak", "25.0"),
    ("traefik", "v3.1"),
];

/// The `index`-th Docker container as discovery would register it.
fn docker_source(index: usize) -> Source {
    let container_id = hex::encode(Sha256::digest(index.to_le_bytes()));
    let kind = index % SERVICES.len();
    let service = SERVICES[kind];
    let (image, tag) = IMAGES[kind];
    // Compose-style names: project, service, replica.
    let name = format!("stack{}-{service}-{}", index / 64, index % 64 / SERVICES.len() + 1);
    let labels = BTreeMap::from([
        ("container.id".to_owned(), container_id.clone()),
        ("container.name".to_owned(), name),
        ("container.image.name".to_owned(), image.to_owned()),
        ("container.image.tags".to_owned(), tag.to_owned()),
        ("container.runtime".to_owned(), "docker".to_owned()),
        ("service.name".to_owned(), service.to_owned()),
    ]);
    Source {
        path: format!("/var/lib/docker/containers/{container_id}/{container_id}-json.log"),
        id: format!("docker:{container_id}"),
        labels,
        state: Some("active".to_owned()),
    }
}

fn docker_sources(count: usize) -> Vec<Source> {
    (0..count).map(docker_source).collect()
}

/// Per size: how many samples, and the time criterion aims to spend on them.
/// Flat sampling (the same iteration count in every sample) suits runs of
/// milliseconds and more, where linear sampling's growing counts would
/// stretch the run far past the target time.
fn tune(size: usize) -> (usize, Duration) {
    if size <= 1_000 {
        (50, Duration::from_secs(5))
    } else if size <= 10_000 {
        (30, Duration::from_secs(10))
    } else {
        (10, Duration::from_secs(30))
    }
}

fn bench_generate(c: &mut Criterion) {
    let settings = PipelineSettings::default();
    let mut group = c.benchmark_group("generate_config");
    group.sampling_mode(SamplingMode::Flat);
    for size in [1_000, 10_000, 100_000] {
        let sources = docker_sources(size);
        let (samples, time) = tune(size);
        group.sample_size(samples).measurement_time(time);
        group.throughput(Throughput::Elements(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &sources, |b, sources| {
            b.iter(|| generate_config(black_box(sources), black_box(&settings)).unwrap())
        });
    }
    group.finish();
}

/// The generated configs the checker benches read, at 1k and 10k sources.
fn generated_yaml() -> Vec<(usize, String)> {
    let settings = PipelineSettings::default();
    [1_000, 10_000]
        .into_iter()
        .map(|size| (size, generate_config(&docker_sources(size), &settings).unwrap().yaml))
        .collect()
}

fn bench_static_check(c: &mut Criterion) {
    let mut group = c.benchmark_group("static_check");
    group.sampling_mode(SamplingMode::Flat);
    for (size, yaml) in generated_yaml() {
        let problems = static_check(&yaml);
        if !problems.is_empty() {
            eprintln!(
                "static_check/{size}: not timed, the checker refuses the generated config: {}",
                problems[0]
            );
            continue;
        }
        let (samples, time) = tune(size);
        group.sample_size(samples).measurement_time(time);
        group.throughput(Throughput::Elements(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &yaml, |b, yaml| {
            b.iter(|| static_check(black_box(yaml)))
        });
    }
    group.finish();
}

/// `static_check` as it is, but for the parser's budget.
fn static_check_no_budget(yaml: &str) -> Vec<steward_config::validate::Problem> {
    let options = serde_saphyr::options! { budget: None };
    let tree: Value = serde_saphyr::from_str_with_options(yaml, options).unwrap();
    check_tree(&tree)
}

fn bench_static_check_no_budget(c: &mut Criterion) {
    let mut group = c.benchmark_group("static_check_no_budget");
    group.sampling_mode(SamplingMode::Flat);
    for (size, yaml) in generated_yaml() {
        let problems = static_check_no_budget(&yaml);
        assert!(problems.is_empty(), "the generated config has problems: {problems:?}");
        let (samples, time) = tune(size);
        group.sample_size(samples).measurement_time(time);
        group.throughput(Throughput::Elements(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &yaml, |b, yaml| {
            b.iter(|| static_check_no_budget(black_box(yaml)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_generate, bench_static_check, bench_static_check_no_budget);
criterion_main!(benches);
