//! Hostile registries, generated: whatever a container puts into its name,
//! labels or log path, the generated config is valid, says exactly what the
//! registry said, and is the same bytes whatever the order of the sources.
//! A sample of them goes through the real `otelcol-steward`. Two more
//! properties are the collector's own: a literal log path is a glob to
//! `file_log`, and `EXPR(…)` in a resource value is an expression to it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::Value;
use steward_config::builder::receiver_id;
use steward_config::validate::{otelcol_validate, static_check};
use steward_config::{BuildError, PipelineSettings, Rendered, Source, generate_config};

/// Single characters that break naive YAML or shell handling: YAML indicators,
/// quotes, line breaks (YAML 1.1's too), C0 and C1 controls, non-characters,
/// a BOM, non-ASCII letters and an astral emoji. No NUL: the registry
/// replaces it before a label is stored.
const HOSTILE_CHARS: &[char] = &[
    '$', '{', '}', '\n', '\r', '\t', ':', '#', '\'', '"', '-', '&', '*', '!', '|', '>', '%', '@',
    '`', '[', ']', ',', '?', '\\', ' ', '~', '\u{1}', '\u{8}', '\u{b}', '\u{c}', '\u{1b}',
    '\u{1f}', '\u{7f}', '\u{80}', '\u{85}', '\u{9f}', '\u{a0}', '\u{2028}', '\u{2029}', '\u{feff}',
    '\u{fffe}', '\u{ffff}', 'é', 'ß', '日', 'ي', '🦀',
];

/// Fragments with a meaning to the collector's `${…}` expansion, to YAML, or
/// to `file_log`, which evaluates `EXPR(…)` in resource values.
const HOSTILE_FRAGMENTS: &[&str] = &[
    "EXPR(env(\"HOME\"))",
    "EXPR(",
    ")",
    "${env:HOME}",
    "${HOME}",
    "${env:AWS_SECRET_ACCESS_KEY}",
    "$${env:HOME}",
    "$$",
    "${",
    "${file:/etc/passwd}",
    "\n- a: b\n",
    "\r\n",
    ": ",
    " #",
    "---",
    "...",
    "- ",
    "? ",
    "!!str ",
    "!!binary ",
    "&anchor ",
    "*anchor",
    "|\n",
    ">-\n",
    "{a: [b, c]}",
    "%YAML 1.2",
    "<<: *x",
    "  ",
];

/// Whole values that YAML would read as something other than a string if
/// they went out unquoted.
const YAML_LOOKALIKES: &[&str] = &[
    "",
    "true",
    "False",
    "null",
    "Null",
    "~",
    "yes",
    "no",
    "on",
    "off",
    "y",
    "n",
    "123",
    "-1",
    "0o17",
    "0x1F",
    "1e3",
    ".inf",
    "-.Inf",
    ".nan",
    "1_000",
    "12:30:00",
    "2026-01-01",
    " leading",
    "trailing ",
    "'",
    "\"",
    "-",
    "?",
    ":",
    "#",
    "@",
    "`",
    "|",
    ">",
    "!",
];

/// Valid label keys (the registry lets only these through) that YAML might
/// mistake for something else as map keys.
const KEY_LOOKALIKES: &[&str] = &[
    "service.name",
    "container.name",
    "container.id",
    "k8s.pod.name",
    "true",
    "False",
    "null",
    "Null",
    "y",
    "n",
    "on",
    "off",
    "yes",
    "no",
    "inf",
    "nan",
    "_",
    "a/b-c.d",
    "_0",
];

const KEY_FIRST: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_";
const KEY_REST: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./-";
const PLAIN: &str = "abcdefghijklmnopqrstuvwxyz0123456789._-";

/// A string of `len` characters drawn from `alphabet`. (Cheaper to generate
/// than a regex strategy, which matters for a few hundred cases in a debug
/// build.)
fn run(alphabet: &str, len: std::ops::Range<usize>) -> impl Strategy<Value = String> + use<> {
    prop::collection::vec(select(alphabet.chars().collect::<Vec<_>>()), len)
        .prop_map(String::from_iter)
}

fn hostile_fragment() -> impl Strategy<Value = String> {
    let hostile: String = HOSTILE_CHARS.iter().collect();
    prop_oneof![
        3 => run(&hostile, 1..40),
        2 => select(HOSTILE_FRAGMENTS).prop_map(str::to_owned),
        // Any character but NUL, most of them far outside ASCII.
        1 => prop::collection::vec(any::<char>().prop_filter("no NUL", |c| *c != '\0'), 1..20)
            .prop_map(String::from_iter),
        1 => run(PLAIN, 1..12),
    ]
}

/// Any string but NUL, up to a few hundred characters.
fn label_value() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => select(YAML_LOOKALIKES).prop_map(str::to_owned),
        4 => prop::collection::vec(hostile_fragment(), 0..12).prop_map(|parts| parts.concat()),
    ]
}

fn valid_key() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => select(KEY_LOOKALIKES).prop_map(str::to_owned),
        3 => (run(KEY_FIRST, 1..2), run(KEY_REST, 0..40)).prop_map(|(first, rest)| first + &rest),
    ]
}

/// A key the builder must refuse: empty, a bad first character, a character
/// outside `[A-Za-z0-9_./-]`, or longer than 1,024 bytes.
fn invalid_key() -> impl Strategy<Value = String> {
    let outside = any::<char>().prop_filter("outside the key alphabet", |c| {
        !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/'))
    });
    prop_oneof![
        Just(String::new()),
        (run("0123456789./-", 1..2), run(KEY_REST, 0..10)).prop_map(|(first, rest)| first + &rest),
        (run(KEY_FIRST, 1..2), run(KEY_REST, 0..10), outside, run(KEY_REST, 0..10))
            .prop_map(|(first, head, bad, tail)| format!("{first}{head}{bad}{tail}")),
        (run(KEY_FIRST, 1..2), run(KEY_REST, 1024..1100)).prop_map(|(first, rest)| first + &rest),
    ]
}

/// Path fragments with spaces, `$`, `${env:X}`, quotes, unicode, `#`, `:`,
/// tabs and carriage returns (never NUL or newline, which the builder refuses).
const PATH_FRAGMENTS: &[&str] = &[
    " ",
    "$",
    "${env:X}",
    "${HOME}",
    "$$",
    "'",
    "\"",
    "é",
    "日本",
    "🦀",
    "#",
    " #x",
    ":",
    ": y",
    "\t",
    "\r",
    "-json.log",
    "\u{a0}",
    "\u{feff}",
    "\u{85}",
];

/// Glob metacharacters and patterns, as a file or directory name may hold them.
const GLOB_FRAGMENTS: &[&str] =
    &["*", "?", "[", "]", "{", "}", "\\", "{a,b}", "[0-9]", "[!x]", "**", "\\*", "a{b}c"];

/// An absolute path made of plain names and `fragments`.
fn path_with(fragments: &'static [&'static str]) -> impl Strategy<Value = String> {
    let fragment = prop_oneof![
        3 => run(PLAIN, 1..10),
        2 => select(fragments).prop_map(str::to_owned),
    ];
    let segment = prop::collection::vec(fragment, 1..5).prop_map(|parts| parts.concat());
    prop::collection::vec(segment, 1..6).prop_map(|segments| format!("/{}", segments.join("/")))
}

fn hostile_path() -> impl Strategy<Value = String> {
    path_with(PATH_FRAGMENTS)
}

/// A source id: a real prefix (or none) and any text after it.
fn source_id() -> impl Strategy<Value = String> {
    (select(&["docker:", "file:", "static:", "", "docker:${env:HOME}"][..]), label_value())
        .prop_map(|(prefix, rest)| format!("{prefix}{rest}"))
        .prop_filter("ids are not empty", |id| !id.is_empty())
}

fn labels() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(valid_key(), label_value(), 0..8)
}

/// 0–30 sources with distinct ids (the registry's key), mostly a handful:
/// hostility is in the strings, and small cases keep 256 of them fast.
fn registry() -> impl Strategy<Value = Vec<Source>> {
    registry_of_at_least(0)
}

fn registry_of_at_least(min: usize) -> impl Strategy<Value = Vec<Source>> {
    prop_oneof![3 => sized_registry(min..=5), 1 => sized_registry(6..=30)]
}

fn sized_registry(size: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<Source>> {
    let state = prop::option::of(select(&["active", "draining"][..]));
    prop::collection::btree_map(source_id(), (hostile_path(), labels(), state), size).prop_map(
        |sources| {
            sources
                .into_iter()
                .map(|(id, (path, labels, state))| Source {
                    id,
                    path,
                    labels,
                    state: state.map(str::to_owned),
                })
                .collect()
        },
    )
}

/// How the collector reads a string from its config: `$$` is a literal `$`.
/// Any other `$` is taken, strictly, as the start of an expansion, so a
/// string holding one has no literal reading and gives `None`.
fn as_collector_reads(value: &str) -> Option<String> {
    let mut literal = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '$' && chars.next() != Some('$') {
            return None;
        }
        literal.push(c);
    }
    Some(literal)
}

/// How `file_log` reads a `resource` value (pkg/stanza `ExprStringConfig`):
/// text with no `EXPR(` is literal; the one form that holds `EXPR(` and is
/// still a literal is a single expression that is a string literal of
/// `\uXXXX`/`\UXXXXXXXX` escapes and plain letters, digits and spaces. Any
/// other `EXPR(` would be evaluated and has no literal reading: `None`.
fn as_stanza_reads(value: &str) -> Option<String> {
    if !value.contains("EXPR(") {
        return Some(value.to_owned());
    }
    let body = value.strip_prefix("EXPR(\"")?.strip_suffix("\")")?;
    let mut text = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let width = match chars.next()? {
                    'u' => 4,
                    'U' => 8,
                    _ => return None,
                };
                let hex: String = chars.by_ref().take(width).collect();
                text.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
            }
            c if c.is_ascii_alphanumeric() || c == ' ' => text.push(c),
            _ => return None,
        }
    }
    Some(text)
}

/// Whether a source's path is a glob (`static:`), not the name of one file
/// (`docker:`, `file:`).
fn is_glob_source(source: &Source) -> bool {
    source.id.starts_with("static:")
}

/// `file_log` reads `include` as a doublestar glob, in which `\` escapes the
/// next character.
const GLOB_META: &[char] = &['*', '?', '[', ']', '{', '}', '\\'];

/// A glob's text with its `\` escapes read; unescaped metacharacters stay.
fn unescape_glob(pattern: &str) -> String {
    let mut text = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => text.extend(chars.next()),
            c => text.push(c),
        }
    }
    text
}

/// The one path a glob matches when it is a literal (every metacharacter
/// escaped), or why it is not one.
fn literal_glob(pattern: &str) -> Result<String, String> {
    let mut text = String::with_capacity(pattern.len());
    let mut chars = pattern.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, escaped)) => text.push(escaped),
                None => return Err(format!("{pattern:?} ends in a lone `\\`")),
            },
            c if GLOB_META.contains(&c) => {
                return Err(format!("{pattern:?} has an unescaped {c:?} at byte {at}"));
            }
            c => text.push(c),
        }
    }
    Ok(text)
}

/// The receiver of `source` in the config `tree`.
fn receiver<'a>(tree: &'a Value, source: &Source) -> Result<&'a Value, TestCaseError> {
    let id = receiver_id(&source.id);
    tree.get("receivers")
        .and_then(|r| r.get(id.as_str()))
        .ok_or_else(|| TestCaseError::fail(format!("no receiver {id} for {:?}", source.id)))
}

/// A receiver's `include` patterns, each as `read` turns it into what the
/// collector sees.
fn includes(receiver: &Value, read: impl Fn(&str) -> Option<String>) -> Vec<Option<String>> {
    receiver
        .get("include")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|path| path.as_str().and_then(&read))
        .collect()
}

/// Checks that the parsed config `tree` carries every source's path and
/// labels: `read` turns a string of the tree into what the collector sees.
/// A literal path counts as carried once its glob escapes (if any) are read.
fn assert_carries_sources(
    tree: &Value,
    sources: &[Source],
    read: impl Fn(&str) -> Option<String>,
) -> Result<(), TestCaseError> {
    for source in sources {
        let id = receiver_id(&source.id);
        let receiver = receiver(tree, source)?;
        let include = if is_glob_source(source) {
            includes(receiver, &read)
        } else {
            includes(receiver, |s| read(s).map(|pattern| unescape_glob(&pattern)))
        };
        prop_assert_eq!(include, vec![Some(source.path.clone())], "include of {}", id);
        let resource: BTreeMap<String, Option<String>> = receiver
            .get("resource")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(key, value)| {
                (key.clone(), value.as_str().and_then(&read).and_then(|v| as_stanza_reads(&v)))
            })
            .collect();
        let expected: BTreeMap<String, Option<String>> =
            source.labels.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect();
        prop_assert_eq!(resource, expected, "resource of {}", id);
    }
    Ok(())
}

fn settings() -> PipelineSettings {
    PipelineSettings {
        storage_dir: "/var/lib/steward/collector".into(),
        canary_path: "/var/lib/steward/canary/canary.log".into(),
        ..PipelineSettings::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// For any registry of valid keys and hostile values, paths and ids, the
    /// builder returns a config (no panic, no error) that the static checks
    /// accept, that parses back as YAML, and in which every source's receiver
    /// carries its path and labels so that the collector, un-escaping `$$`,
    /// reads exactly the registry's text: nothing is expanded, retyped,
    /// trimmed or lost, and nothing is added.
    #[test]
    fn hostile_registries_give_valid_configs_that_say_exactly_what_the_registry_says(
        sources in registry(),
    ) {
        let rendered = generate_config(&sources, &settings())
            .map_err(|err| TestCaseError::fail(format!("refused: {err}")))?;
        prop_assert_eq!(static_check(&rendered.yaml), vec![]);
        let tree: Value = serde_saphyr::from_str(&rendered.yaml)
            .map_err(|err| TestCaseError::fail(format!("does not parse back: {err}")))?;
        assert_carries_sources(&tree, &sources, as_collector_reads)?;
        prop_assert_eq!(rendered.receivers.len(), sources.len());
    }

    /// The same registry gives the same bytes and hash every time, in any
    /// order of its sources.
    #[test]
    fn the_hash_depends_on_the_registry_not_on_its_order(
        (sources, shuffled) in registry().prop_flat_map(|sources| {
            (Just(sources.clone()), Just(sources).prop_shuffle())
        }),
    ) {
        let first = generate_config(&sources, &settings()).expect("builds");
        let again = generate_config(&sources, &settings()).expect("builds");
        let reordered = generate_config(&shuffled, &settings()).expect("builds");
        prop_assert_eq!(&first.hash, &again.hash);
        prop_assert_eq!(&first.hash, &reordered.hash);
        prop_assert_eq!(&first.yaml, &reordered.yaml);
    }

    /// One invalid label key anywhere in a registry is refused, without a
    /// panic, as `BadSource` naming that source and the field `labels.<key>`.
    #[test]
    fn an_invalid_label_key_is_refused_naming_the_source_and_field(
        mut sources in registry_of_at_least(1),
        which in any::<Index>(),
        key in invalid_key(),
        value in label_value(),
    ) {
        let at = which.index(sources.len());
        let source = &mut sources[at];
        source.labels.insert(key.clone(), value);
        let id = source.id.clone();
        match generate_config(&sources, &settings()) {
            Err(BuildError::BadSource { id: refused, field, .. }) => {
                prop_assert_eq!(refused, id);
                prop_assert_eq!(field, format!("labels.{key}"));
            }
            other => prop_assert!(false, "expected BadSource for key {:?}, got {:?}", key, other),
        }
    }

    /// A path with a NUL or a newline is refused as `BadSource` naming `path`.
    #[test]
    fn a_path_with_nul_or_newline_is_refused_naming_the_path(
        mut sources in registry_of_at_least(1),
        which in any::<Index>(),
        (head, bad, tail) in (hostile_path(), select(&['\0', '\n'][..]), run(PLAIN, 0..10)),
    ) {
        let at = which.index(sources.len());
        let source = &mut sources[at];
        source.path = format!("{head}{bad}{tail}");
        let id = source.id.clone();
        match generate_config(&sources, &settings()) {
            Err(BuildError::BadSource { id: refused, field, .. }) => {
                prop_assert_eq!(refused, id);
                prop_assert_eq!(field, "path");
            }
            other => prop_assert!(false, "expected BadSource for the path, got {:?}", other),
        }
    }

    /// A `docker:` or `file:` source names one file, but `file_log` reads
    /// `include` as a doublestar glob: every glob metacharacter of such a
    /// path must be escaped, so that the pattern matches that file and no
    /// other (an unescaped `{a,b}` or `[1]` misses the file, a `*` also
    /// matches its neighbours, whose lines would then carry this source's
    /// labels). A `static:` source's glob is kept as written.
    #[test]
    fn a_literal_path_is_included_as_a_pattern_that_matches_only_that_file(
        sources in prop::collection::btree_map(
            (select(&["docker:", "file:", "static:"][..]), run(PLAIN, 1..10))
                .prop_map(|(prefix, rest)| format!("{prefix}{rest}")),
            path_with(GLOB_FRAGMENTS),
            1..5,
        ),
    ) {
        let sources: Vec<Source> = sources
            .into_iter()
            .map(|(id, path)| Source { id, path, labels: BTreeMap::new(), state: None })
            .collect();
        let rendered = generate_config(&sources, &settings()).expect("builds");
        let tree: Value = serde_saphyr::from_str(&rendered.yaml).expect("parses back");
        for source in &sources {
            let include = includes(receiver(&tree, source)?, as_collector_reads);
            let [Some(pattern)] = include.as_slice() else {
                return Err(TestCaseError::fail(format!("include of {:?}: {include:?}", source.id)));
            };
            if is_glob_source(source) {
                prop_assert_eq!(pattern, &source.path);
            } else {
                prop_assert_eq!(literal_glob(pattern), Ok(source.path.clone()), "source {:?}", source.id);
            }
        }
    }
}

fn testbed_collector() -> PathBuf {
    steward_testbed::Testbed::locate()
        .and_then(|tb| tb.bin("otelcol-steward"))
        .expect("the test bench's collector is installed")
}

/// The config as the collector resolves it (expanded, `$$` un-escaped), from
/// its `print-config --format=json`.
fn resolved_by_collector(bin: &Path, file: &Path) -> Value {
    let out = Command::new(bin)
        .args(["print-config", "--mode=unredacted", "--format=json", "--config"])
        .arg(file)
        .output()
        .expect("otelcol-steward print-config runs");
    assert!(out.status.success(), "print-config failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("print-config prints JSON")
}

/// Passes `rendered` to the real collector twice: `validate` must accept it,
/// and `print-config` must show every source's path and labels verbatim.
fn assert_collector_accepts(what: &str, sources: &[Source], rendered: &Rendered) {
    let bin = testbed_collector();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("collector.yaml");
    std::fs::write(&file, &rendered.yaml).expect("write config");
    if let Err(err) = otelcol_validate(&bin, &file, &rendered.receivers) {
        panic!("{what}: otelcol-steward validate refused it: {err}\n{}", rendered.yaml);
    }
    let resolved = resolved_by_collector(&bin, &file);
    if let Err(err) = assert_carries_sources(&resolved, sources, |s| Some(s.to_owned())) {
        panic!("{what}: the collector reads something else: {err}\n{}", rendered.yaml);
    }
}

/// A deterministic sample of eight generated hostile registries is accepted
/// by the real `otelcol-steward validate`, and the collector's own resolved
/// view (`print-config`) holds every path and label value verbatim: `$$`
/// becomes `$` and no `${…}` is expanded.
#[test]
fn a_sample_of_hostile_registries_passes_the_real_collector() {
    let mut runner = TestRunner::deterministic();
    let strategy = sized_registry(5..=30);
    for n in 0..8 {
        let sources = strategy.new_tree(&mut runner).expect("a registry").current();
        let rendered = generate_config(&sources, &settings()).expect("builds");
        assert_collector_accepts(&format!("sample {n}"), &sources, &rendered);
    }
}

/// Every hostile character, fragment and YAML look-alike, each at least once,
/// in values, keys and a path, passes the real collector verbatim: random
/// samples may miss one, this registry does not.
#[test]
fn every_hostile_character_passes_the_real_collector() {
    let mut labels: BTreeMap<String, String> = HOSTILE_CHARS
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("char.{i}"), format!("a{c}b")))
        .collect();
    labels.extend(
        HOSTILE_FRAGMENTS.iter().enumerate().map(|(i, f)| (format!("frag.{i}"), f.to_string())),
    );
    labels.extend(
        YAML_LOOKALIKES.iter().enumerate().map(|(i, v)| (format!("look.{i}"), v.to_string())),
    );
    let lone: String = HOSTILE_CHARS.iter().collect();
    labels.insert("all".into(), lone);
    let keys: BTreeMap<String, String> =
        KEY_LOOKALIKES.iter().map(|k| (k.to_string(), k.to_string())).collect();
    let sources = vec![
        Source {
            id: "docker:${env:HOME}\n#".into(),
            path: "/var/log/a b/$x/${env:X}/'q'/\"dq\"/日本/#c/d:e/\t\r/🦀-json.log".into(),
            labels,
            state: None,
        },
        Source {
            id: "static:/var/log/*.log".into(),
            path: "/var/log/*.log".into(),
            labels: keys,
            state: None,
        },
    ];
    let rendered = generate_config(&sources, &settings()).expect("builds");
    assert_eq!(static_check(&rendered.yaml), vec![]);
    assert_collector_accepts("every hostile character", &sources, &rendered);
}

/// The `file_log` receiver reads `EXPR(…)` in a resource value as an
/// expression (pkg/stanza `ExprStringConfig`). A container label that looks
/// like one must still be a label: the real `otelcol-steward validate`
/// accepts the config (a label `EXPR(1 +)` must not make the collector refuse
/// the whole node's config), and the collector's resolved config holds each
/// value verbatim. (That the value is not evaluated at run time, e.g.
/// `EXPR(env("HOME"))` becoming the collector's home, is proved end to end in
/// `e2e::a_label_that_looks_like_an_expression_arrives_as_text`.)
#[test]
fn a_label_that_looks_like_an_expression_does_not_break_the_config() {
    let labels = BTreeMap::from(
        [
            ("service.name", "steward-expr"),
            ("steward.env", "EXPR(env(\"HOME\"))"),
            ("steward.syntax", "EXPR(1 +)"),
            ("steward.number", "EXPR(1 + 1)"),
            ("steward.inner", "a EXPR(b) c"),
            ("steward.open", "EXPR("),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let sources = vec![Source {
        id: "docker:expr".into(),
        path: "/var/lib/docker/containers/expr/expr-json.log".into(),
        labels,
        state: None,
    }];
    let rendered = generate_config(&sources, &settings()).expect("builds");
    assert_eq!(static_check(&rendered.yaml), vec![]);
    assert_collector_accepts("expression look-alikes", &sources, &rendered);
}
