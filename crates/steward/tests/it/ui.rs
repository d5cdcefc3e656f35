//! The web UI in a real browser: Debian's `chromium`, headless, driven by
//! `playwright-core` (both installed by `scripts/testbed.sh`), against
//! `steward run` on the test bench (Docker Engine, `otelcol-steward`,
//! VictoriaLogs, SQLite). The browser logs in, sees a container started
//! after the page opened appear in the sources table, opens the newest
//! version's side-by-side diff, rolls back from the versions page, and saves
//! a screenshot of the overview.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use steward_testbed::docker::{Container, connect};
use steward_testbed::node::{Node, NodeOptions};
use steward_testbed::{Testbed, eventually};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const STEWARD: &str = env!("CARGO_BIN_EXE_steward");
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/ui.cjs");

async fn get(node: &Node, path: &str) -> Result<Value, String> {
    let api = node.api.as_ref().expect("api");
    let response = steward_testbed::parts::http_client()
        .get(format!("{}{path}", api.url))
        .bearer_auth(&api.token)
        .send()
        .await
        .map_err(|err| err.to_string())?;
    if !response.status().is_success() {
        return Err(format!("{path}: HTTP {}", response.status()));
    }
    response.json().await.map_err(|err| err.to_string())
}

/// The applied version's id once its YAML mentions `needle`.
async fn applied_with(node: &Node, needle: &str) -> String {
    eventually(&format!("a version with {needle:?} applied"), Duration::from_secs(60), || async {
        let applied = get(node, "/api/v1/config/applied").await?;
        match applied["yaml"].as_str() {
            Some(yaml) if yaml.contains(needle) => Ok(applied["id"].as_str().unwrap().to_owned()),
            _ => Err(format!("applied: {}", applied["id"])),
        }
    })
    .await
    .unwrap_or_else(|err| panic!("{err}"))
}

/// Reads the script's stdout until a line starting with `word`.
async fn expect_line(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    word: &str,
    stderr: &std::path::Path,
) -> String {
    let read = async {
        while let Some(line) = lines.next_line().await.expect("the script's stdout") {
            if line.starts_with(word) {
                return Some(line);
            }
        }
        None
    };
    match tokio::time::timeout(Duration::from_secs(120), read).await {
        Ok(Some(line)) => line,
        outcome => panic!(
            "the browser script never said {word} ({}):\n{}",
            if outcome.is_err() { "timed out" } else { "it exited" },
            std::fs::read_to_string(stderr).unwrap_or_default()
        ),
    }
}

/// Counts distinct colours in a PNG: a blank or failed page has one or two.
fn distinct_colours(path: &std::path::Path) -> usize {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(path).expect("the screenshot exists"),
    ));
    let mut reader = decoder.read_info().expect("the screenshot is a PNG");
    let mut buffer = vec![0; reader.output_buffer_size().expect("a sane size")];
    let info = reader.next_frame(&mut buffer).expect("the screenshot decodes");
    assert!(info.width >= 800 && info.height >= 600, "{}x{}", info.width, info.height);
    let step = info.color_type.samples();
    let mut colours = std::collections::HashSet::new();
    for pixel in buffer[..info.buffer_size()].chunks(step) {
        colours.insert(pixel.to_vec());
    }
    colours.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_shows_a_new_container_and_rolls_back() {
    let tb = Testbed::locate().expect("test bench installed");
    let chromium = tb.bin("chromium").expect("chromium installed by scripts/testbed.sh");
    let playwright =
        tb.bin("playwright-core").expect("playwright-core installed by scripts/testbed.sh");
    let options = NodeOptions {
        api: true,
        health_interval_secs: 2,
        period_secs: 3600,
        ..NodeOptions::default()
    };
    let mut node = Node::start(&tb, STEWARD.as_ref(), options).await.expect("node starts");
    node.start_steward().expect("steward run starts");
    let bootstrap = applied_with(&node, "steward_canary").await;

    let api = node.api.clone().expect("api");
    let name = format!("ui-{}", node.label);
    let screenshot = node.dir().join("ui.png");
    let stderr_path = node.dir().join("browser.log");
    let mut browser = tokio::process::Command::new("node")
        .arg(SCRIPT)
        .env("PLAYWRIGHT_CORE", &playwright)
        .env("CHROMIUM", &chromium)
        .env("STEWARD_URL", &api.url)
        .env("STEWARD_TOKEN", &api.token)
        .env("EXPECT_CONTAINER", &name)
        .env("SCREENSHOT", &screenshot)
        .env("SCREENSHOT_DIFF", node.dir().join("ui-diff.png"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).expect("a log file"))
        .kill_on_drop(true)
        .spawn()
        .expect("node runs the browser script");
    let mut lines = BufReader::new(browser.stdout.take().expect("stdout")).lines();
    let mut stdin = browser.stdin.take().expect("stdin");

    expect_line(&mut lines, "READY", &stderr_path).await;
    // Started only now: the page must show what appears while it is open.
    let (docker, host) = connect(&tb).await.expect("docker");
    let marker = format!("ui-line-{}", node.label);
    let _container =
        Container::run(&docker, &host, &name, &node.labels(), &format!("echo {marker}; sleep 600"))
            .await
            .expect("the container starts");
    let seen = expect_line(&mut lines, "SEEN", &stderr_path).await;
    assert!(seen.contains("docker:"), "{seen}");
    let with_container = applied_with(&node, &name).await;
    stdin.write_all(b"GO\n").await.expect("tell the script to roll back");
    let diff = expect_line(&mut lines, "DIFF", &stderr_path).await;
    let added: usize = diff.trim_start_matches("DIFF ").trim().parse().expect("a count");
    assert!(added >= 5, "a source adds a receiver and its pipeline entries: {diff}");
    let rolled = expect_line(&mut lines, "ROLLED", &stderr_path).await;
    assert!(rolled.contains(&format!("applied {bootstrap}")), "{rolled}");
    expect_line(&mut lines, "DONE", &stderr_path).await;
    let status = tokio::time::timeout(Duration::from_secs(30), browser.wait())
        .await
        .expect("the script exits")
        .expect("its status");
    assert!(status.success(), "{}", std::fs::read_to_string(&stderr_path).unwrap_or_default());

    // The click reached the collector: the bootstrap config runs again, and
    // the loop is held there.
    let overview = get(&node, "/api/v1/overview").await.expect("overview");
    assert_eq!(overview["applied"]["id"], bootstrap.as_str(), "{overview}");
    assert_eq!(overview["hold"]["version"], bootstrap.as_str(), "{overview}");
    let on_disk = std::fs::read_to_string(&node.config_path).expect("the collector's config");
    assert!(!on_disk.contains(&name), "rolled back from {with_container}");
    node.collector_health().await.expect("the collector answers");

    // For a person to look at: STEWARD_UI_SCREENSHOT=/path/ui.png keeps a copy.
    if let Some(keep) = std::env::var_os("STEWARD_UI_SCREENSHOT") {
        let keep = std::path::PathBuf::from(keep);
        std::fs::copy(&screenshot, &keep).expect("copy the screenshot");
        std::fs::copy(node.dir().join("ui-diff.png"), keep.with_extension("diff.png"))
            .expect("copy the diff's screenshot");
    }
    let colours = distinct_colours(&screenshot);
    assert!(colours > 16, "the screenshot is not blank: {colours} colours");
}
