//! Issue 2, step 5: the first proof that a container's stdout reaches a log
//! store through our collector, with every real part: Debian's dockerd, our
//! `otelcol-steward`, and VictoriaLogs (standing in for Loki, which cannot run here).

use std::time::Duration;

use steward_testbed::Testbed;
use steward_testbed::first_proof::FirstProof;

const LINES: u64 = 1_000;

/// 1,000 numbered lines printed by a busybox container are each found exactly
/// once through VictoriaLogs' query API, and the collector's own telemetry
/// agrees that it read and sent exactly 1,000 records (no re-reads).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_of_a_container_arrives_exactly_once() {
    let tb = Testbed::locate().expect("test bench installed");
    let proof = FirstProof::start(&tb, LINES).await.expect("pipeline starts");

    let tally = proof.wait_for_lines(LINES, Duration::from_secs(60)).await.expect("lines arrive");
    let sample = |v: &[String]| v.iter().take(3).cloned().collect::<Vec<_>>();
    assert!(
        tally.unexpected.is_empty(),
        "{} records are not numbered lines, e.g. {:?}",
        tally.unexpected.len(),
        sample(&tally.unexpected)
    );
    let missing = tally.missing(LINES);
    assert!(
        missing.is_empty(),
        "{} lines missing from the store, first {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert_eq!(tally.duplicated(), Vec::new(), "lines stored more than once");
    assert_eq!(tally.records() as u64, LINES);

    // The store's count could still be short of a late duplicate; the
    // collector's own counters cannot: it accepted and sent each line once.
    let accepted =
        proof.collector_count("otelcol_receiver_accepted_log_records").await.expect("telemetry");
    let sent = proof.collector_count("otelcol_exporter_sent_log_records").await.expect("telemetry");
    assert_eq!(accepted, LINES as f64, "records the file_log receiver accepted");
    assert_eq!(sent, LINES as f64, "records the otlp_http exporter sent");
}
