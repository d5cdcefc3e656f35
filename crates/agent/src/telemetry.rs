//! Reading the collector's own Prometheus metrics: what a reload check and a
//! canary look at to know that lines are being read and sent.

use std::time::Duration;

/// A sample's labels must contain every pair of `want`.
pub type LabelFilter<'a> = &'a [(&'a str, &'a str)];

/// Sums the samples of `name` (also spelled `name_total`, as some collector
/// versions and reader settings add it) whose labels include `want`.
pub fn sum_metric(text: &str, name: &str, want: LabelFilter<'_>) -> Result<f64, String> {
    let total = format!("{name}_total");
    let mut sum = 0.0;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (metric, labels, rest) = match (line.find('{'), line.rfind('}')) {
            (Some(open), Some(close)) if close > open => {
                (&line[..open], &line[open + 1..close], &line[close + 1..])
            }
            (Some(_), _) => return Err(format!("unclosed labels: {line:?}")),
            (None, _) => {
                let (metric, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
                (metric, "", rest)
            }
        };
        if metric != name && metric != total {
            continue;
        }
        if !want.iter().all(|(k, v)| labels.contains(&format!("{k}=\"{v}\""))) {
            continue;
        }
        let value = rest.split_whitespace().next().unwrap_or_default();
        sum += value.parse::<f64>().map_err(|_| format!("unparsable sample: {line:?}"))?;
    }
    Ok(sum)
}

/// The `service.instance.id` of the collector service that served `text`
/// (from `target_info`). A SIGHUP reload starts a new service instance with
/// a new id, and its counters start again at zero.
pub fn instance_id(text: &str) -> Option<&str> {
    let line = text.lines().map(str::trim).find(|l| l.starts_with("target_info{"))?;
    let (_, rest) = line.split_once("service_instance_id=\"")?;
    rest.split_once('"').map(|(id, _)| id)
}

/// Fetches the metrics text at `url`, with a timeout.
pub async fn scrape(http: &reqwest::Client, url: &str) -> Result<String, String> {
    let response = http
        .get(url)
        .header("Accept", "text/plain; version=0.0.4")
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("GET {url}: HTTP {}", response.status()));
    }
    response.text().await.map_err(|e| format!("GET {url}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::sum_metric;

    #[test]
    fn sums_matching_series_in_either_spelling() {
        let text = "# TYPE x counter\n\
            otelcol_receiver_accepted_log_records_total{receiver=\"file_log/steward_canary\",transport=\"\"} 3\n\
            otelcol_receiver_accepted_log_records{receiver=\"file_log/src_1\"} 5 1700000000\n";
        let name = "otelcol_receiver_accepted_log_records";
        assert_eq!(sum_metric(text, name, &[]), Ok(8.0));
        assert_eq!(sum_metric(text, name, &[("receiver", "file_log/steward_canary")]), Ok(3.0));
        assert_eq!(sum_metric(text, "absent", &[]), Ok(0.0));
        assert!(sum_metric("m{a=\"1\"} x\n", "m", &[]).is_err());
    }

    #[test]
    fn instance_id_comes_from_target_info() {
        let text = "# TYPE target_info gauge\n\
            target_info{service_instance_id=\"85f2caf9-3d04\",service_name=\"otelcol-steward\"} 1\n";
        assert_eq!(super::instance_id(text), Some("85f2caf9-3d04"));
        assert_eq!(super::instance_id("otelcol_process_uptime 3\n"), None);
    }
}
