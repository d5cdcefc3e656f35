//! Labels: sanitising what containers say about themselves, and the user's
//! relabel rules.
//!
//! Everything a container reports is untrusted: keys and values can hold YAML
//! metacharacters, newlines, `${env:…}`, megabytes, NUL bytes. Values are kept
//! verbatim where they are safe to keep (escaping `$` and YAML quoting happen
//! where the config is generated), and cut or replaced only where a store or a
//! backend would reject them: values longer than Loki's default limit are cut,
//! NUL bytes (which PostgreSQL refuses in text) are replaced.
//!
//! Rules follow Prometheus relabelling: the same actions (`replace`, `keep`,
//! `drop`, `labelmap`, `labeldrop`, `labelkeep`), the same defaults, regexes
//! anchored at both ends, and `__`-prefixed labels visible to rules only.

use std::fmt;

use regex::Regex;
use serde::{Deserialize, Deserializer};
use steward_discovery::Labels;

/// Loki's default `max_label_value_length`.
pub const MAX_VALUE_BYTES: usize = 2048;
/// Loki's default `max_label_name_length`.
pub const MAX_KEY_BYTES: usize = 1024;

/// Something sanitising changed, for the log: the source keeps being collected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sanitised {
    DroppedKey { key: String, reason: &'static str },
    TruncatedValue { key: String, bytes: usize },
    ReplacedNul { key: String },
}

impl fmt::Display for Sanitised {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sanitised::DroppedKey { key, reason } => {
                write!(f, "dropped label key {:?}: {reason}", truncate(key, 64))
            }
            Sanitised::TruncatedValue { key, bytes } => {
                write!(f, "cut label {key:?} from {bytes} to at most {MAX_VALUE_BYTES} bytes")
            }
            Sanitised::ReplacedNul { key } => write!(f, "replaced NUL bytes in label {key:?}"),
        }
    }
}

/// Whether a final label key is acceptable: an attribute key the collector,
/// the config file and Loki all take as is. Meta keys (`__…`) follow the same rule.
pub fn valid_key(key: &str) -> Result<(), &'static str> {
    if key.is_empty() {
        return Err("empty");
    }
    if key.len() > MAX_KEY_BYTES {
        return Err("longer than 1024 bytes");
    }
    let mut chars = key.chars();
    let first = chars.next().unwrap_or('_');
    if !(first.is_ascii_alphabetic() || first == '_') {
        return Err("must start with a letter or `_`");
    }
    if !key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/')) {
        return Err("may hold only letters, digits, `_`, `.`, `-` and `/`");
    }
    Ok(())
}

/// Makes `labels` safe to store and to hand to the config generator, and says
/// what it changed.
pub fn sanitise(labels: &Labels) -> (Labels, Vec<Sanitised>) {
    let mut clean = Labels::new();
    let mut notes = Vec::new();
    for (key, value) in labels {
        if let Err(reason) = valid_key(key) {
            notes.push(Sanitised::DroppedKey { key: key.clone(), reason });
            continue;
        }
        let mut value = value.clone();
        if value.contains('\0') {
            value = value.replace('\0', "\u{FFFD}");
            notes.push(Sanitised::ReplacedNul { key: key.clone() });
        }
        if value.len() > MAX_VALUE_BYTES {
            notes.push(Sanitised::TruncatedValue { key: key.clone(), bytes: value.len() });
            value = truncate(&value, MAX_VALUE_BYTES).to_owned();
        }
        clean.insert(key.clone(), value);
    }
    (clean, notes)
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// What a relabel rule does, as in Prometheus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    #[default]
    Replace,
    Keep,
    Drop,
    Labelmap,
    Labeldrop,
    Labelkeep,
}

/// A regex matched against a whole string: Prometheus anchors at both ends.
#[derive(Clone)]
pub struct AnchoredRegex {
    source: String,
    regex: Regex,
}

impl AnchoredRegex {
    pub fn new(source: &str) -> Result<Self, regex::Error> {
        Ok(AnchoredRegex {
            source: source.to_owned(),
            regex: Regex::new(&format!("^(?:{source})$"))?,
        })
    }
}

impl fmt::Debug for AnchoredRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.source, f)
    }
}

impl PartialEq for AnchoredRegex {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl<'de> Deserialize<'de> for AnchoredRegex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let source = String::deserialize(d)?;
        AnchoredRegex::new(&source)
            .map_err(|err| serde::de::Error::custom(format!("invalid regex {source:?}: {err}")))
    }
}

fn default_separator() -> String {
    ";".into()
}
fn default_regex() -> AnchoredRegex {
    AnchoredRegex::new("(.*)").expect("the default regex compiles")
}
fn default_replacement() -> String {
    "$1".into()
}

/// One relabel rule, as written in `steward.yaml` under `relabel:`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelabelRule {
    #[serde(default)]
    pub source_labels: Vec<String>,
    #[serde(default = "default_separator")]
    pub separator: String,
    #[serde(default = "default_regex")]
    pub regex: AnchoredRegex,
    #[serde(default)]
    pub target_label: Option<String>,
    #[serde(default = "default_replacement")]
    pub replacement: String,
    #[serde(default)]
    pub action: Action,
}

/// A rule that cannot work, found when the settings are loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("relabel rule {index}: {reason}")]
pub struct RuleError {
    pub index: usize,
    pub reason: String,
}

/// Checks what serde cannot: fields an action needs.
pub fn validate_rules(rules: &[RelabelRule]) -> Result<(), RuleError> {
    for (index, rule) in rules.iter().enumerate() {
        let fail = |reason: &str| Err(RuleError { index, reason: reason.into() });
        match rule.action {
            Action::Replace => match &rule.target_label {
                None => return fail("action `replace` needs `target_label`"),
                Some(target) if valid_key(target).is_err() && !target.contains('$') => {
                    return fail("`target_label` is not a valid label key");
                }
                Some(_) => {}
            },
            Action::Keep | Action::Drop if rule.source_labels.is_empty() => {
                return fail("actions `keep` and `drop` need `source_labels`");
            }
            _ => {}
        }
    }
    Ok(())
}

/// Applies `rules` in order; `None` if a `keep` or `drop` rule dropped the source.
pub fn relabel(labels: &Labels, rules: &[RelabelRule]) -> Option<Labels> {
    let mut labels = labels.clone();
    for rule in rules {
        let joined = || {
            rule.source_labels
                .iter()
                .map(|key| labels.get(key).map(String::as_str).unwrap_or(""))
                .collect::<Vec<_>>()
                .join(&rule.separator)
        };
        match rule.action {
            Action::Keep if !rule.regex.regex.is_match(&joined()) => return None,
            Action::Drop if rule.regex.regex.is_match(&joined()) => return None,
            Action::Keep | Action::Drop => {}
            Action::Replace => {
                let value = joined();
                let Some(captures) = rule.regex.regex.captures(&value) else { continue };
                let Some(target) = &rule.target_label else { continue };
                let mut key = String::new();
                captures.expand(target, &mut key);
                let mut replaced = String::new();
                captures.expand(&rule.replacement, &mut replaced);
                if valid_key(&key).is_err() {
                    continue;
                }
                if replaced.is_empty() {
                    labels.remove(&key);
                } else {
                    labels.insert(key, replaced);
                }
            }
            Action::Labelmap => {
                let mapped: Vec<(String, String)> = labels
                    .iter()
                    .filter_map(|(key, value)| {
                        let captures = rule.regex.regex.captures(key)?;
                        let mut new_key = String::new();
                        captures.expand(&rule.replacement, &mut new_key);
                        valid_key(&new_key).is_ok().then(|| (new_key, value.clone()))
                    })
                    .collect();
                labels.extend(mapped);
            }
            Action::Labeldrop => labels.retain(|key, _| !rule.regex.regex.is_match(key)),
            Action::Labelkeep => labels.retain(|key, _| rule.regex.regex.is_match(key)),
        }
    }
    Some(labels)
}

/// Discovery's labels → the source's final labels: sanitise, relabel, then
/// drop every `__` key. `None` if a rule dropped the source.
pub fn final_labels(observed: &Labels, rules: &[RelabelRule]) -> (Option<Labels>, Vec<Sanitised>) {
    let (clean, notes) = sanitise(observed);
    let labels = relabel(&clean, rules).map(|mut labels| {
        labels.retain(|key, _| !key.starts_with("__"));
        labels
    });
    (labels, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn rules(yaml_like: &[RelabelRule]) -> Vec<RelabelRule> {
        validate_rules(yaml_like).expect("valid rules");
        yaml_like.to_vec()
    }

    fn rule(action: Action) -> RelabelRule {
        RelabelRule {
            source_labels: vec![],
            separator: default_separator(),
            regex: default_regex(),
            target_label: None,
            replacement: default_replacement(),
            action,
        }
    }

    #[test]
    fn replace_copies_a_meta_label_into_a_resource_attribute() {
        let r = RelabelRule {
            source_labels: vec!["__meta_docker_container_label_team".into()],
            target_label: Some("team".into()),
            ..rule(Action::Replace)
        };
        let out =
            relabel(&labels(&[("__meta_docker_container_label_team", "payments")]), &rules(&[r]))
                .expect("kept");
        assert_eq!(out["team"], "payments");
    }

    #[test]
    fn replace_uses_capture_groups_and_an_empty_result_deletes_the_target() {
        let r = RelabelRule {
            source_labels: vec!["container.name".into()],
            regex: AnchoredRegex::new("(.*)-[0-9]+").unwrap(),
            target_label: Some("service.name".into()),
            replacement: "$1".into(),
            ..rule(Action::Replace)
        };
        let out =
            relabel(&labels(&[("container.name", "web-12")]), std::slice::from_ref(&r)).unwrap();
        assert_eq!(out["service.name"], "web");
        // The regex is anchored: a partial match does not count.
        let out = relabel(&labels(&[("container.name", "web-12x")]), &[r]).unwrap();
        assert!(!out.contains_key("service.name"));

        let erase = RelabelRule {
            source_labels: vec!["nothing".into()],
            target_label: Some("service.name".into()),
            ..rule(Action::Replace)
        };
        let out = relabel(&labels(&[("service.name", "x")]), &[erase]).unwrap();
        assert!(!out.contains_key("service.name"), "an empty replacement deletes the label");
    }

    #[test]
    fn keep_and_drop_filter_whole_sources_on_joined_values() {
        let keep = RelabelRule {
            source_labels: vec!["a".into(), "b".into()],
            regex: AnchoredRegex::new("x;y").unwrap(),
            ..rule(Action::Keep)
        };
        assert!(relabel(&labels(&[("a", "x"), ("b", "y")]), std::slice::from_ref(&keep)).is_some());
        assert!(relabel(&labels(&[("a", "x"), ("b", "z")]), &[keep]).is_none());
        let drop = RelabelRule {
            source_labels: vec!["k8s.namespace.name".into()],
            regex: AnchoredRegex::new("kube-.*").unwrap(),
            ..rule(Action::Drop)
        };
        assert!(
            relabel(&labels(&[("k8s.namespace.name", "kube-system")]), std::slice::from_ref(&drop))
                .is_none()
        );
        assert!(relabel(&labels(&[("k8s.namespace.name", "shop")]), &[drop]).is_some());
    }

    #[test]
    fn labelmap_labeldrop_and_labelkeep_work_on_names() {
        let map = RelabelRule {
            regex: AnchoredRegex::new("__meta_docker_container_label_(.+)").unwrap(),
            replacement: "docker.label.$1".into(),
            ..rule(Action::Labelmap)
        };
        let out = relabel(
            &labels(&[("__meta_docker_container_label_tier", "front"), ("x", "1")]),
            &[map],
        )
        .unwrap();
        assert_eq!(out["docker.label.tier"], "front");
        let drop =
            RelabelRule { regex: AnchoredRegex::new("x|y").unwrap(), ..rule(Action::Labeldrop) };
        assert_eq!(
            relabel(&labels(&[("x", "1"), ("xy", "2")]), &[drop]).unwrap(),
            labels(&[("xy", "2")])
        );
        let keep =
            RelabelRule { regex: AnchoredRegex::new("x").unwrap(), ..rule(Action::Labelkeep) };
        assert_eq!(
            relabel(&labels(&[("x", "1"), ("xy", "2")]), &[keep]).unwrap(),
            labels(&[("x", "1")])
        );
    }

    #[test]
    fn final_labels_hide_meta_labels_and_sanitise_hostile_input() {
        let big = "v".repeat(1_000_000);
        let (out, notes) = final_labels(
            &labels(&[
                ("__meta_docker_container_name", "x"),
                ("container.name", "${env:AWS_SECRET_ACCESS_KEY}\nkey: value"),
                ("big", &big),
                ("nul", "a\0b"),
                ("bad key: yes", "v"),
                ("", "empty key"),
            ]),
            &[],
        );
        let out = out.expect("no rule drops it");
        assert!(!out.contains_key("__meta_docker_container_name"));
        assert_eq!(
            out["container.name"], "${env:AWS_SECRET_ACCESS_KEY}\nkey: value",
            "kept verbatim"
        );
        assert_eq!(out["big"].len(), MAX_VALUE_BYTES);
        assert_eq!(out["nul"], "a\u{FFFD}b");
        assert!(!out.contains_key("bad key: yes") && !out.contains_key(""));
        assert_eq!(notes.len(), 4, "{notes:?}");
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let s = "é".repeat(MAX_VALUE_BYTES); // 2 bytes each
        let (out, _) = sanitise(&labels(&[("k", &s)]));
        assert!(out["k"].len() <= MAX_VALUE_BYTES);
        assert!(out["k"].chars().all(|c| c == 'é'));
    }

    #[test]
    fn rules_missing_what_their_action_needs_are_rejected_with_their_index() {
        let err = validate_rules(&[rule(Action::Labeldrop), rule(Action::Replace)]).unwrap_err();
        assert_eq!(err.index, 1);
        assert!(err.reason.contains("target_label"));
        assert_eq!(validate_rules(&[rule(Action::Keep)]).unwrap_err().index, 0);
    }
}
