//! Static sources: path globs with labels, written by the user in `steward.yaml`.
//!
//! For files no runtime knows about (an application writing to
//! `/var/log/app/*.log`). Steward does not expand the glob: the collector's
//! filelog receiver does, and picks up matching files as they appear, so one
//! glob is one source. What Steward can do is refuse a glob the collector
//! would misread, before it ever reaches a config: it must be absolute (the
//! collector's working directory is nobody's business) and well-formed.

use serde::Deserialize;
use tokio::sync::mpsc;

use crate::{Collect, Discovery, Error, Event, Labels, Observed, Origin, SourceId};

/// One `static_sources` entry of `steward.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticSource {
    /// An absolute glob, e.g. `/var/log/app/*.log` (`*`, `?`, `**`, `[…]`, `{a,b}`).
    pub path: String,
    #[serde(default)]
    pub labels: Labels,
}

/// The user's globs, checked once and reported as they are.
#[derive(Debug, Clone)]
pub struct StaticDiscovery {
    sources: Vec<Observed>,
}

impl StaticDiscovery {
    /// Fails on the first glob that is relative, malformed or listed twice,
    /// naming it.
    pub fn new(sources: Vec<StaticSource>) -> Result<Self, Error> {
        let mut observed: Vec<Observed> = Vec::with_capacity(sources.len());
        for StaticSource { path, labels } in sources {
            validate_glob(&path)?;
            let id = SourceId::static_glob(&path);
            // Two entries with one id would make a resync ambiguous: which
            // labels does the source have?
            if observed.iter().any(|o| o.id == id) {
                return Err(Error::InvalidGlob {
                    glob: path,
                    reason: "listed more than once; merge the entries' labels".into(),
                });
            }
            observed.push(Observed {
                id,
                origin: Origin::Static,
                path: path.into(),
                labels,
                collect: Collect::Yes,
            });
        }
        Ok(StaticDiscovery { sources: observed })
    }
}

/// Checks that `glob` is absolute and parses with the syntax the collector's
/// globs use (`*` stays within one directory, `**` crosses them).
pub fn validate_glob(glob: &str) -> Result<(), Error> {
    let invalid = |reason: String| Error::InvalidGlob { glob: glob.into(), reason };
    if glob.trim().is_empty() {
        return Err(invalid("empty".into()));
    }
    if !glob.starts_with('/') {
        return Err(invalid("not absolute: it must start with /".into()));
    }
    globset::GlobBuilder::new(glob)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map(drop)
        .map_err(|e| invalid(e.kind().to_string()))
}

impl Discovery for StaticDiscovery {
    fn origin(&self) -> Origin {
        Origin::Static
    }

    async fn snapshot(&self) -> Result<Vec<Observed>, Error> {
        Ok(self.sources.clone())
    }

    async fn watch(self, events: mpsc::Sender<Event>) {
        let resync = Event::Resync { origin: Origin::Static, sources: self.sources };
        if events.send(resync).await.is_ok() {
            // Nothing changes until `steward.yaml` does, and that builds a new
            // StaticDiscovery; returning now would look like a finished source.
            events.closed().await;
        }
    }
}
