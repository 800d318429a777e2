//! Provenance manifests (`provenance.yaml`, one per directory) and the policy over them.

use serde::Deserialize;

use super::error::ScanError;
use crate::yaml;

/// Where an example came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Synthetic,
    HandWritten,
    Public,
    MinedTrace,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Synthetic => "synthetic",
            Source::HandWritten => "hand_written",
            Source::Public => "public",
            Source::MinedTrace => "mined_trace",
        }
    }
}

/// One manifest entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvenanceEntry {
    pub id: String,
    pub source: Source,
    #[serde(default)]
    pub source_tenant: Option<String>,
    #[serde(default)]
    pub source_trace_ids: Option<Vec<String>>,
    /// Free text: what was removed or replaced.
    #[serde(default)]
    pub redaction: Option<String>,
    #[serde(default)]
    pub approved_by: Option<String>,
    #[serde(default)]
    pub approved_at: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyedManifest {
    examples: Vec<ProvenanceEntry>,
}

/// A parsed manifest: its directory (`""` for the root) and entries with their byte offsets.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub path: String,
    pub dir: String,
    pub entries: Vec<(ProvenanceEntry, usize)>,
    /// The manifest's text, to position findings that point into it.
    pub text: String,
}

/// Parses a manifest: a list of entries, or a mapping with an `examples:` list.
pub fn parse_manifest(path: &str, text: &str) -> Result<Manifest, ScanError> {
    let to_error = |e: yaml::YamlError| ScanError::Provenance {
        path: path.to_string(),
        line: e.line,
        column: e.column,
        message: e.message,
    };
    let looks_like_list = text
        .lines()
        .map(str::trim_start)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .is_some_and(|l| l.starts_with('-'));
    // Parse with the concrete shape so that an unknown key is reported at its position.
    let entries = if looks_like_list || text.trim().is_empty() {
        yaml::from_str::<Option<Vec<ProvenanceEntry>>>(text).map_err(to_error)?.unwrap_or_default()
    } else {
        yaml::from_str::<KeyedManifest>(text).map_err(to_error)?.examples
    };
    let mut from = 0;
    let entries = entries
        .into_iter()
        .map(|entry| {
            let offset = locate_entry(text, &entry.id, from);
            from = offset;
            (entry, offset)
        })
        .collect();
    Ok(Manifest { path: path.to_string(), dir: parent_dir(path).to_string(), entries, text: text.to_string() })
}

fn locate_entry(text: &str, id: &str, from: usize) -> usize {
    let found = |from: usize| {
        text[from..].match_indices(id).map(|(p, _)| p + from).find(|&p| {
            let line_start = text[..p].rfind('\n').map_or(0, |i| i + 1);
            text[line_start..p].contains("id")
        })
    };
    found(from).or_else(|| found(0)).map_or(0, |p| {
        let line_start = text[..p].rfind('\n').map_or(0, |i| i + 1);
        text[line_start..p].rfind("id").map_or(line_start, |k| line_start + k)
    })
}

/// The directory part of a `/`-separated relative path (`""` at the root).
pub fn parent_dir(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_keyed_manifests() {
        let text = "- id: ex-01\n  source: synthetic\n- id: ex-02\n  source: mined_trace\n  source_tenant: acme\n  approved_by: ana\n";
        let m = parse_manifest("prompts/provenance.yaml", text).unwrap();
        assert_eq!(m.dir, "prompts");
        assert_eq!(m.entries.len(), 2);
        assert_eq!(m.entries[1].0.source, Source::MinedTrace);
        assert_eq!(m.entries[1].1, text.find("id: ex-02").unwrap());
        let keyed = parse_manifest("provenance.yaml", "examples:\n  - id: a\n    source: public\n").unwrap();
        assert_eq!(keyed.dir, "");
        assert_eq!(keyed.entries.len(), 1);
    }

    #[test]
    fn unknown_keys_are_positioned() {
        let err = parse_manifest("p/provenance.yaml", "- id: a\n  source: public\n  aproved_by: x\n").unwrap_err();
        let ScanError::Provenance { line, message, .. } = err else { panic!() };
        assert_eq!(line, Some(3));
        assert!(message.contains("approved_by"), "{message}");
        let err = parse_manifest("p/provenance.yaml", "- id: a\n  source: scraped\n").unwrap_err();
        assert!(err.to_string().contains("p/provenance.yaml:2"), "{err}");
    }
}
