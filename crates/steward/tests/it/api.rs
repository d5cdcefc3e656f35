//! The HTTP API of `steward run`, every route, against real parts: the test
//! bench's Docker Engine, the real `otelcol-steward` (reloaded by SIGHUP),
//! VictoriaLogs, SQLite. Rollbacks and applies made through the API reach
//! the real collector; lines are counted in the real store.
//!
//! Also here: schemathesis (from PyPI, pinned by `scripts/testbed.sh`)
//! fuzzing the API from its own `/openapi.json`, and the Grafana dashboard's
//! queries checked against what `/metrics` really exposes.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use steward_testbed::docker::{Container, connect};
use steward_testbed::node::{Node, NodeApi, NodeOptions};
use steward_testbed::{Testbed, eventually};

const STEWARD: &str = env!("CARGO_BIN_EXE_steward");

/// Every route that needs the token: (method, path).
const PROTECTED: [(&str, &str); 15] = [
    ("GET", "/openapi.json"),
    ("GET", "/metrics"),
    ("GET", "/api/v1/overview"),
    ("GET", "/api/v1/sources"),
    ("GET", "/api/v1/config/versions"),
    ("GET", "/api/v1/config/versions/cfg-000000000000"),
    ("GET", "/api/v1/config/versions/cfg-000000000000/diff"),
    ("GET", "/api/v1/config/applied"),
    ("GET", "/api/v1/workflow/cycles"),
    ("GET", "/api/v1/health"),
    ("GET", "/api/v1/alerts"),
    ("GET", "/api/v1/e2e"),
    ("POST", "/api/v1/reconcile"),
    ("POST", "/api/v1/config/versions/cfg-000000000000/apply"),
    ("POST", "/api/v1/rollback"),
];

struct Api {
    api: NodeApi,
    http: reqwest::Client,
}

struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {}", self.text))
    }
}

impl Api {
    fn new(node: &Node) -> Api {
        let api = node.api.clone().expect("the node serves its API");
        // Rollouts through the API take a canary, a reload and a
        // verification: longer than the harness' default client allows.
        let http =
            reqwest::Client::builder().timeout(Duration::from_secs(120)).build().expect("a client");
        Api { api, http }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: Option<&str>,
    ) -> Reply {
        self.try_send(method, path, auth, body).await.unwrap_or_else(|err| panic!("{err}"))
    }

    async fn try_send(
        &self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: Option<&str>,
    ) -> Result<Reply, String> {
        let url = format!("{}{path}", self.api.url);
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut request = self.http.request(method, &url);
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        if let Some(body) = body {
            request = request.header("Content-Type", "application/json").body(body.to_owned());
        }
        let response = request.send().await.map_err(|err| format!("{url}: {err}"))?;
        let (status, headers) = (response.status(), response.headers().clone());
        let text = response.text().await.unwrap_or_default();
        Ok(Reply { status, headers, text })
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.api.token)
    }

    async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, Some(&self.bearer()), None).await
    }

    async fn post(&self, path: &str, body: &str) -> Reply {
        self.send("POST", path, Some(&self.bearer()), Some(body)).await
    }

    /// GET that must answer 200 with JSON.
    async fn ok(&self, path: &str) -> Value {
        let reply = self.get(path).await;
        assert_eq!(reply.status, StatusCode::OK, "GET {path}: {}", reply.text);
        reply.json()
    }
}

async fn start_node(tb: &Testbed) -> Node {
    let options = NodeOptions {
        api: true,
        health_interval_secs: 2,
        // Cycles come from events and requests here, not the clock.
        period_secs: 3600,
        ..NodeOptions::default()
    };
    let mut node = Node::start(tb, STEWARD.as_ref(), options).await.expect("node starts");
    node.start_steward().expect("steward run starts");
    let api = Api::new(&node);
    eventually("/readyz", Duration::from_secs(60), || async {
        let reply = api.try_send("GET", "/readyz", None, None).await?;
        match reply.status {
            StatusCode::OK => Ok(()),
            status => Err(format!("{status}: {}", reply.text)),
        }
    })
    .await
    .expect("steward becomes ready");
    node
}

async fn newest_version(api: &Api) -> Value {
    api.ok("/api/v1/config/versions?limit=1").await[0].clone()
}

/// Waits until the applied version is the newest and lists `needle` (a
/// container name) in its YAML; returns its id.
async fn applied_with(api: &Api, needle: &str) -> String {
    eventually(&format!("a version with {needle} applied"), Duration::from_secs(60), || async {
        let reply = api.get("/api/v1/config/applied").await;
        if reply.status != StatusCode::OK {
            return Err(format!("{}: {}", reply.status, reply.text));
        }
        let applied = reply.json();
        match applied["yaml"].as_str() {
            Some(yaml) if yaml.contains(needle) => Ok(applied["id"].as_str().unwrap().to_owned()),
            _ => Err(format!("applied is {} without {needle}", applied["id"])),
        }
    })
    .await
    .unwrap_or_else(|err| panic!("{err}"))
}

async fn arrives(node: &Node, needle: &str) {
    eventually(&format!("{needle:?} once in VictoriaLogs"), Duration::from_secs(60), || async {
        match node.count(needle).await {
            Ok(1) => Ok(()),
            Ok(n) => Err(format!("{n} found")),
            Err(err) => Err(err.to_string()),
        }
    })
    .await
    .unwrap_or_else(|err| panic!("{err}"));
}

/// Every PromQL query of the Grafana dashboard.
fn dashboard_exprs() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/grafana/dashboards/steward.json");
    let text = std::fs::read_to_string(path).expect("the dashboard");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 12, "the dashboard has its queries: {exprs:?}");
    exprs
}

fn collect_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", Value::String(s)) => out.push(s.clone()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

/// The metric names the dashboard's queries use.
fn dashboard_metrics() -> Vec<String> {
    let names = metric_names(&dashboard_exprs().join(" "));
    assert!(names.len() >= 10, "the dashboard queries Steward's metrics: {names:?}");
    names
}

/// `steward_…` identifiers in `text`, deduplicated.
fn metric_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("steward_"))
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Every route, auth failures included, with real rollouts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_and_rollbacks_reach_the_collector() {
    let tb = Testbed::locate().expect("test bench installed");
    let mut node = start_node(&tb).await;
    let api = Api::new(&node);

    // Probes need no token.
    let reply = api.send("GET", "/healthz", None, None).await;
    assert_eq!((reply.status, reply.json()), (StatusCode::OK, json!({"status": "ok"})));
    let reply = api.send("GET", "/readyz", None, None).await;
    assert_eq!((reply.status, reply.json()), (StatusCode::OK, json!({"ready": true})));
    // The UI's files need none either, and hold no data.
    let page = api.send("GET", "/", None, None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("/ui/app.js"), "{}", page.text);
    for asset in ["/ui/app.js", "/ui/style.css"] {
        assert_eq!(api.send("GET", asset, None, None).await.status, StatusCode::OK, "{asset}");
    }

    // Every other route: 401 without the token, with a wrong one, with
    // another scheme; the answer says nothing more.
    let wrong = format!("Bearer {}x", api.api.token);
    let basic = format!("Basic {}", api.api.token);
    for (method, path) in PROTECTED.iter().chain(&[("GET", "/api/v1/no-such-route")]) {
        for auth in [None, Some(wrong.as_str()), Some(basic.as_str()), Some("Bearer")] {
            let reply = api.send(method, path, auth, Some("{}")).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{method} {path} with {auth:?}");
            assert_eq!(reply.json(), json!({"error": "unauthorized"}), "{method} {path}");
            assert_eq!(reply.headers["www-authenticate"], "Bearer");
        }
    }

    // The startup cycle applies the source-less config.
    eventually("the startup cycle's version applied", Duration::from_secs(60), || async {
        let reply = api.get("/api/v1/config/applied").await;
        if reply.status == StatusCode::OK { Ok(()) } else { Err(reply.text) }
    })
    .await
    .unwrap_or_else(|err| panic!("{err}"));
    let bootstrap = newest_version(&api).await;
    assert_eq!(bootstrap["status"], "applied", "{bootstrap}");
    let bootstrap_id = bootstrap["id"].as_str().unwrap().to_owned();
    let reply = api.get(&format!("/api/v1/config/versions/{bootstrap_id}/diff")).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "the first version has no previous one");
    assert!(reply.json()["error"].as_str().unwrap().contains("first version"), "{}", reply.text);

    // A new container: a source, then a new version, applied by the loop.
    let (docker, host) = connect(&tb).await.expect("docker");
    let name = format!("api-{}", node.label);
    let marker = format!("api-first-{}", node.label);
    let _one =
        Container::run(&docker, &host, &name, &node.labels(), &format!("echo {marker}; sleep 600"))
            .await
            .expect("the container starts");
    let second = applied_with(&api, &name).await;
    arrives(&node, &marker).await;
    let sources = api.ok("/api/v1/sources").await;
    let source = sources
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["labels"]["container.name"] == name.as_str())
        .unwrap_or_else(|| panic!("{name} listed: {sources}"));
    assert_eq!(
        (source["origin"].as_str(), source["state"].as_str()),
        (Some("docker"), Some("active"))
    );
    assert!(source["id"].as_str().unwrap().starts_with("docker:"), "{source}");

    // Versions, one version, a diff.
    let versions = api.ok("/api/v1/config/versions").await;
    let ids: Vec<&str> =
        versions.as_array().unwrap().iter().map(|v| v["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [second.as_str(), bootstrap_id.as_str()], "newest first");
    assert_eq!(api.ok("/api/v1/config/versions?limit=1").await.as_array().unwrap().len(), 1);
    let detail = api.ok(&format!("/api/v1/config/versions/{second}")).await;
    assert_eq!(detail["status"], "applied");
    assert!(detail["yaml"].as_str().unwrap().contains(&name));
    let hash = detail["hash"].as_str().unwrap();
    assert_eq!(
        api.ok(&format!("/api/v1/config/versions/{}", &hash[..8])).await["id"],
        second.as_str()
    );
    let diff = api.ok(&format!("/api/v1/config/versions/{second}/diff")).await;
    assert_eq!(
        (diff["from"]["id"].as_str(), diff["to"]["id"].as_str()),
        (Some(bootstrap_id.as_str()), Some(second.as_str()))
    );
    let rows = diff["rows"].as_array().unwrap();
    assert!(
        rows.iter()
            .any(|r| r["kind"] == "added" && r["right"].as_str().unwrap_or("").contains(&name)),
        "{diff}"
    );
    assert!(
        diff["unified"]
            .as_str()
            .unwrap()
            .starts_with(&format!("--- {bootstrap_id}\n+++ {second}\n"))
    );
    let same = api.ok(&format!("/api/v1/config/versions/{second}/diff?against={second}")).await;
    assert!(same["rows"].as_array().unwrap().iter().all(|r| r["kind"] == "same"));
    assert_eq!(same["unified"], "");
    for unknown in ["cfg-ffffffffffff", "zzz", "cfg-"] {
        for path in [
            format!("/api/v1/config/versions/{unknown}"),
            format!("/api/v1/config/versions/{unknown}/diff"),
            format!("/api/v1/config/versions/{second}/diff?against={unknown}"),
        ] {
            let reply = api.get(&path).await;
            assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}: {}", reply.text);
            assert!(reply.json()["error"].is_string());
        }
    }
    let applied = api.ok("/api/v1/config/applied").await;
    assert_eq!(applied["id"], second.as_str());

    // Workflow history.
    let cycles = api.ok("/api/v1/workflow/cycles").await;
    let cycle = &cycles[0];
    assert!(
        cycle["outcome"].as_str().unwrap().starts_with(&format!("applied {second}")),
        "{cycles}"
    );
    let steps: Vec<&str> = cycle["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["activity"].as_str().unwrap())
        .collect();
    assert!(steps.contains(&"push_config") && steps.contains(&"verify_reload"), "{steps:?}");
    assert_eq!(api.ok("/api/v1/workflow/cycles?limit=1").await.as_array().unwrap().len(), 1);
    for bad in ["limit=abc", "limit=-1", "limit=0", "limit=1001", "limit=99999999999999999999"] {
        let reply = api.get(&format!("/api/v1/workflow/cycles?{bad}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}: {}", reply.text);
    }

    // Health, the e2e series (a probe every 2 s), alerts, the overview.
    let (health, series) =
        eventually("a health round with an e2e probe", Duration::from_secs(60), || async {
            let series = api.ok("/api/v1/e2e").await;
            let points = series["points"].as_array().unwrap();
            // Each round's probe writes a marker line the collector accepts,
            // so from the second round on each point counts at least one.
            let found = points.iter().any(|p| p["ok"] == true && p["latency_ms"].is_number())
                && points.iter().any(|p| p["lines_accepted"].as_f64().is_some_and(|n| n >= 1.0));
            if found {
                Ok((api.ok("/api/v1/health").await, series))
            } else {
                Err(format!("{series}"))
            }
        })
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    let checks: Vec<&str> =
        health["checks"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert!(
        checks.contains(&"collector_health") && checks.contains(&"end_to_end_sample_log"),
        "{health}"
    );
    assert!(series["points"][0]["at_ms"].is_i64());
    assert!(api.ok("/api/v1/alerts").await.is_array());
    let overview = api.ok("/api/v1/overview").await;
    assert_eq!(overview["node"], node.label.as_str());
    assert_eq!(overview["engine"], "embedded");
    assert_eq!(overview["applied"]["id"], second.as_str());
    assert_eq!(overview["sources"]["active"], 1, "{overview}");
    assert_eq!(overview["hold"], Value::Null);
    assert!(overview["last_e2e_latency_ms"].is_number(), "{overview}");
    assert!(
        ["healthy", "degraded", "failing"].contains(&overview["pipeline_state"].as_str().unwrap()),
        "{overview}"
    );

    // Bad input: malformed JSON and wrong fields are 400s naming the field.
    for (path, body, needle) in [
        ("/api/v1/reconcile", "{\"x\":", "invalid JSON body"),
        ("/api/v1/reconcile", "{\"force\": true}", "force"),
        ("/api/v1/rollback", "{\"to\": 7}", "`to`"),
        ("/api/v1/rollback", "[null, null]", "expected an object"),
        (
            &format!("/api/v1/config/versions/{second}/apply") as &str,
            "{\"reason\": [1]}",
            "`reason`",
        ),
    ] {
        let reply = api.post(path, body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path} {body}: {}", reply.text);
        let error = reply.json()["error"].as_str().unwrap().to_owned();
        assert!(error.contains(needle), "{path} {body}: {error}");
    }
    let reply = api.post("/api/v1/config/versions/cfg-ffffffffffff/apply", "{}").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
    let reply = api.post("/api/v1/rollback", "{\"to\": \"cfg-ffffffffffff\"}").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
    assert_eq!(newest_version(&api).await["id"], second.as_str(), "bad requests changed nothing");

    // Roll back: the collector gets the bootstrap config, by SIGHUP, and the
    // loop is held there.
    let pid = std::fs::read_to_string(&node.pid_file).expect("pid file");
    let reply = api.post("/api/v1/rollback", "").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let rolled = reply.json();
    assert_eq!(
        (rolled["outcome"].as_str(), rolled["version"].as_str()),
        (Some("applied"), Some(bootstrap_id.as_str())),
        "{rolled}"
    );
    assert_eq!(rolled["hold"]["version"], bootstrap_id.as_str());
    assert_eq!(
        std::fs::read_to_string(&node.config_path).expect("config"),
        api.ok(&format!("/api/v1/config/versions/{bootstrap_id}")).await["yaml"].as_str().unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(&node.pid_file).expect("pid file"),
        pid,
        "a reload, not a restart"
    );
    node.collector_health().await.expect("the collector answers after the rollback");
    assert_eq!(api.ok("/api/v1/overview").await["hold"]["version"], bootstrap_id.as_str());

    // While held, a new container changes the registry, and the loop
    // records that it waits instead of rolling out.
    let name_two = format!("api2-{}", node.label);
    let marker_two = format!("api-second-{}", node.label);
    let _two = Container::run(
        &docker,
        &host,
        &name_two,
        &node.labels(),
        &format!("echo {marker_two}; sleep 600"),
    )
    .await
    .expect("the second container starts");
    eventually("a held cycle", Duration::from_secs(60), || async {
        let cycles = api.ok("/api/v1/workflow/cycles?limit=5").await;
        let held = cycles.as_array().unwrap().iter().any(|c| {
            c["outcome"].as_str().unwrap_or("").starts_with(&format!("held at {bootstrap_id}"))
        });
        if held { Ok(()) } else { Err(format!("{cycles}")) }
    })
    .await
    .unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(
        api.ok("/api/v1/config/applied").await["id"],
        bootstrap_id.as_str(),
        "the hold kept it"
    );

    // Apply a recorded version by id, then release the hold: the loop
    // reconciles and collects the second container too.
    let reply = api
        .post(&format!("/api/v1/config/versions/{second}/apply"), "{\"reason\": \"api test\"}")
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json()["hold"]["reason"], "api test");
    assert_eq!(api.ok("/api/v1/config/applied").await["id"], second.as_str());
    let reply = api.post("/api/v1/reconcile", "").await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    assert_eq!(reply.json(), json!({"accepted": true, "released_hold": true}));
    applied_with(&api, &name_two).await;
    arrives(&node, &marker_two).await;
    arrives(&node, &marker).await;
    assert_eq!(api.ok("/api/v1/overview").await["hold"], Value::Null);

    // /metrics: OpenMetrics, with what happened counted, and every metric
    // the Grafana dashboard queries.
    let reply = api.get("/metrics").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply.headers["content-type"].to_str().unwrap().starts_with("application/openmetrics-text")
    );
    let metrics = reply.text;
    for line in
        ["steward_sources{state=\"active\"} 2", "steward_rollbacks_total{trigger=\"api\"} 1"]
    {
        assert!(metrics.lines().any(|l| l == line), "missing {line:?}:\n{metrics}");
    }
    let value = |prefix: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    assert!(value("steward_reloads_total{result=\"ok\"}") >= 2.0, "{metrics}");
    assert!(value("steward_reconcile_cycles_total{outcome=\"held\"}") >= 1.0, "{metrics}");
    assert!(value("steward_reconcile_cycle_duration_seconds_count") >= 3.0, "{metrics}");
    assert!(value("steward_e2e_latency_seconds_count") >= 1.0, "{metrics}");
    assert!(
        value("steward_activity_duration_seconds_count{activity=\"push_config\"}") >= 2.0,
        "{metrics}"
    );
    for name in dashboard_metrics() {
        let base = ["_bucket", "_total", "_count", "_sum"]
            .iter()
            .fold(name.as_str(), |n, s| n.strip_suffix(s).unwrap_or(n));
        assert!(
            metrics.contains(&format!("# TYPE {base} ")),
            "the dashboard's {name} is not exposed:\n{metrics}"
        );
    }

    // The OpenAPI document names every route.
    let doc = api.ok("/openapi.json").await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{}", doc["openapi"]);
    for (method, path) in PROTECTED.iter().chain(&[("GET", "/healthz"), ("GET", "/readyz")]) {
        let path = path.replace("cfg-000000000000", "{id}");
        assert!(
            doc["paths"][&path][method.to_lowercase()].is_object(),
            "{method} {path} documented"
        );
    }

    // The token never reaches the log.
    let steward = node.steward.as_mut().expect("running");
    steward.check_running().expect("steward ran throughout");
    let log = std::fs::read_to_string(steward.log_path()).expect("steward's log");
    assert!(log.contains("api listening"), "{log}");
    assert!(!log.contains(&api.api.token), "the token is never logged");
}

/// Debian's Prometheus scrapes Steward with the job in
/// `deploy/prometheus/steward-scrape.yaml` (bearer token from a file), and
/// every query of the Grafana dashboard runs on what it scraped. Grafana
/// itself cannot run here: the dashboard's JSON is checked for its queries,
/// not rendered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_steward_and_the_dashboards_queries_run() {
    use steward_testbed::parts::Prometheus;
    let tb = Testbed::locate().expect("test bench installed");
    let node = start_node(&tb).await;
    let api = node.api.clone().expect("api");
    let token_file = node.dir().join("api-token");
    let job = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/prometheus/steward-scrape.yaml"
    ))
    .expect("the scrape job");
    // The shipped job, pointed at this node and scraping every second.
    let job = job
        .replace("/etc/prometheus/steward-token", &token_file.display().to_string())
        .replace("127.0.0.1:7480", api.url.trim_start_matches("http://"))
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace("scrape_timeout: 10s", "scrape_timeout: 1s");
    assert!(job.contains(&token_file.display().to_string()), "{job}");
    let prometheus =
        Prometheus::start_with_config(&tb, &format!("global:\n  scrape_interval: 1s\n{job}"))
            .await
            .expect("prometheus starts");
    eventually("Prometheus scrapes Steward", Duration::from_secs(60), || async {
        let data = prometheus.query("up{job=\"steward\"}").await.map_err(|err| err.to_string())?;
        match data["result"][0]["value"][1].as_str() {
            Some("1") => Ok(()),
            _ => Err(format!("{data}")),
        }
    })
    .await
    .unwrap_or_else(|err| panic!("{err}"));

    for expr in &dashboard_exprs() {
        let promql = expr.replace("$__rate_interval", "1m").replace("$instance", ".+");
        prometheus.query(&promql).await.unwrap_or_else(|err| panic!("{promql}: {err}"));
    }
    // And they see Steward: its build info and its sources.
    let info = prometheus.query("count by (version) (steward_build_info)").await.expect("query");
    assert_eq!(info["result"][0]["metric"]["version"], env!("CARGO_PKG_VERSION"), "{info}");
    let sources = prometheus.query("sum(steward_sources)").await.expect("query");
    assert!(sources["result"][0]["value"][1].is_string(), "{sources}");
}

/// schemathesis generates requests from `/openapi.json` (valid and not) for
/// every operation: none may get a 5xx, and every check it has must pass
/// too (responses match their schemas, invalid requests are refused, valid
/// ones accepted, the auth scheme is enforced).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error() {
    let tb = Testbed::locate().expect("test bench installed");
    let node = start_node(&tb).await;
    let api = node.api.clone().expect("api");
    let schemathesis =
        tb.bin("schemathesis").expect("schemathesis installed by scripts/testbed.sh");
    let report = node.dir().join("schemathesis");
    let out = tokio::process::Command::new(schemathesis)
        .args(["run", &format!("{}/openapi.json", api.url)])
        .args(["--checks", "all"])
        .args(["--header", &format!("Authorization: Bearer {}", api.token)])
        .args(["--max-examples", "25", "--workers", "1", "--request-timeout", "120"])
        .args(["--seed", "1", "--no-color"])
        .env("SCHEMATHESIS_HOOKS", "")
        .current_dir(node.dir())
        .env("HOME", &report)
        .output()
        .await
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "schemathesis found failures:\n{stdout}\n{stderr}");
    // It did test the API: all 16 documented operations.
    assert!(stdout.contains("Tested: 16"), "{stdout}");
    let summary = stdout.lines().skip_while(|l| !l.starts_with("Test cases:")).nth(1);
    eprintln!("schemathesis: {}", summary.unwrap_or("(no summary)").trim());
    node.collector_health().await.expect("the collector survived the fuzzing");
}
