//! The trace side: stream records, skip the served prompt (system and developer messages by role, the
//! prompt's rendered example turns by position — never by content), look every other text up in the
//! shingle table and the entity automaton, and tally, per example, tenant and role, how many traces
//! carried it and when.
//!
//! Files are read in chunks of whole lines; a batch of chunks is scanned in parallel (rayon), each
//! chunk into its own tally, and the tallies are merged. Memory: one batch of chunks plus tallies whose
//! size follows the number of tenants and hits, not the number of records.

use std::io::Read;

use jiff::Timestamp;
use rayon::prelude::*;
use rustc_hash::FxHashMap;

use super::engine::PromptSide;
use super::entities::{EntityHit, Strength};
use super::error::ScanError;
use super::model::{BadLine, MAX_BAD_LINES};
use super::normalize::Words;
use super::overlap::{RunHit, RunScratch, RunThresholds};
use super::records::{RecordView, describe_json_error, parse_record};

/// Tenant id under which records without one are tallied.
pub const UNKNOWN_TENANT: &str = "(unknown)";

/// Bytes of one chunk of a trace file (whole lines are kept together).
const CHUNK_BYTES: usize = 4 << 20;
const READ_BYTES: usize = 1 << 20;

/// The role a text had in a request, as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// The tenant's own words.
    User,
    /// Tool results: the tenant's data too.
    Tool,
    /// What the model emitted: assistant turns and the output.
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Tool => "tool",
            Role::Assistant => "assistant",
        }
    }

    pub fn is_tenant_data(self) -> bool {
        matches!(self, Role::User | Role::Tool)
    }

    /// `None` for the served prompt (system, developer). Unknown roles count as tenant data: they were
    /// not written by the prompt's author.
    fn classify(role: &str) -> Option<Role> {
        match role {
            "system" | "developer" => None,
            "assistant" | "model" => Some(Role::Assistant),
            "tool" | "function" | "ipython" => Some(Role::Tool),
            _ => Some(Role::User),
        }
    }
}

/// Where a record was read: `source` indexes [`TraceTally::sources`]; `position` is the line of a file
/// or the 1-based sequence number of a stored row. Ordered by scan order.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct TraceAt {
    pub source: u32,
    pub position: u64,
    pub trace_id: Option<String>,
}

/// A trace source of a scan, in the order they were scanned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceSource {
    /// A trace file, as the caller named it.
    File(String),
    /// Request rows of the state file.
    State,
}

/// When, relative to the example's deploy time, the traces that carried it were recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    pub n_traces: u64,
    pub before_deploy: u64,
    pub after_deploy: u64,
    /// No deploy time for the example, or no readable `ts` in the record.
    pub unknown_time: u64,
    /// Traces with a qualifying shingle run.
    pub shingle: u64,
    /// Traces with a strong entity value (email, phone, IBAN, card, long id).
    pub strong_entity: u64,
    /// Traces with only a weak entity value (a name).
    pub weak_entity: u64,
    pub longest_run_words: usize,
    /// The first trace in scan order that carried it.
    pub first: Option<TraceAt>,
}

impl Evidence {
    fn add(&mut self, other: &Evidence) {
        self.n_traces += other.n_traces;
        self.before_deploy += other.before_deploy;
        self.after_deploy += other.after_deploy;
        self.unknown_time += other.unknown_time;
        self.shingle += other.shingle;
        self.strong_entity += other.strong_entity;
        self.weak_entity += other.weak_entity;
        self.longest_run_words = self.longest_run_words.max(other.longest_run_words);
        if let Some(theirs) = &other.first
            && self.first.as_ref().is_none_or(|mine| theirs < mine)
        {
            self.first = Some(theirs.clone());
        }
    }

    /// Whether any trace carrying it was recorded before the deploy (or at an unknown time).
    pub fn possibly_before_deploy(&self) -> bool {
        self.before_deploy > 0 || self.unknown_time > 0
    }

    pub fn possibly_after_deploy(&self) -> bool {
        self.after_deploy > 0 || self.unknown_time > 0
    }
}

/// What the trace side found, mergeable across chunks and files.
#[derive(Debug, Default, Clone)]
pub struct TraceTally {
    pub records: u64,
    /// Of `records`, those read from trace files and those from the state's request rows.
    pub records_from_files: u64,
    pub records_from_state: u64,
    /// The sources scanned, in order; [`TraceAt::source`] indexes it. Only the tally a scan was started
    /// with registers sources; the per-chunk tallies merged into it refer to its indices.
    pub sources: Vec<TraceSource>,
    pub bad_lines: u64,
    pub bad_line_samples: Vec<BadLine>,
    pub records_without_tenant: u64,
    /// Records per tenant. (FxHash: these maps are updated for every record with a hit; SipHash showed
    /// in profiles, and nothing depends on their iteration order.)
    pub tenants: FxHashMap<String, u64>,
    /// tenant → (example, role) → evidence.
    pub evidence: FxHashMap<String, FxHashMap<(u32, Role), Evidence>>,
}

impl TraceTally {
    pub fn merge(&mut self, other: TraceTally) {
        self.records += other.records;
        self.records_from_files += other.records_from_files;
        self.records_from_state += other.records_from_state;
        self.bad_lines += other.bad_lines;
        let room = MAX_BAD_LINES.saturating_sub(self.bad_line_samples.len());
        self.bad_line_samples.extend(other.bad_line_samples.into_iter().take(room));
        self.records_without_tenant += other.records_without_tenant;
        for (tenant, n) in other.tenants {
            *self.tenants.entry(tenant).or_default() += n;
        }
        for (tenant, per_example) in other.evidence {
            let mine = self.evidence.entry(tenant).or_default();
            for (key, ev) in per_example {
                mine.entry(key).or_default().add(&ev);
            }
        }
    }

    fn add_source(&mut self, source: TraceSource) -> u32 {
        self.sources.push(source);
        (self.sources.len() - 1) as u32
    }

    /// A trace location as reported in findings.
    pub fn trace_ref(&self, at: &TraceAt) -> crate::scan::TraceRef {
        let (source, path, line) = match self.sources.get(at.source as usize) {
            Some(TraceSource::File(path)) => (crate::scan::TraceRef::FILE, Some(path.clone()), Some(at.position)),
            _ => (crate::scan::TraceRef::STATE, None, None),
        };
        crate::scan::TraceRef { source: source.to_string(), trace_id: at.trace_id.clone(), path, line }
    }

    fn bad_line(&mut self, path: &str, line: u64, message: String) {
        self.bad_lines += 1;
        if self.bad_line_samples.len() < MAX_BAD_LINES {
            self.bad_line_samples.push(BadLine { path: path.to_string(), line, message });
        }
    }

    fn count_record(&mut self, tenant: &str) {
        self.records += 1;
        match self.tenants.get_mut(tenant) {
            Some(n) => *n += 1,
            None => {
                self.tenants.insert(tenant.to_string(), 1);
            }
        }
    }
}

/// Reusable buffers of one scanning thread.
#[derive(Default)]
struct Scratch {
    words: Words,
    runs: Vec<RunHit>,
    run_scratch: RunScratch,
    entity_hits: Vec<EntityHit>,
    /// (example, role, evidence of this record)
    record_hits: Vec<(u32, Role, Evidence)>,
}

/// A text of a record, with its role.
struct RoleText<'r> {
    role: Role,
    text: &'r str,
}

/// An owned trace record, for callers that have records rather than files (e.g. rows from the store).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceRecord {
    pub tenant_id: Option<String>,
    pub trace_id: Option<String>,
    pub ts: Option<Timestamp>,
    pub prompt_name: Option<String>,
    /// (role, content)
    pub messages: Vec<(String, String)>,
    pub output: Option<String>,
}

impl From<&crate::trace::model::RequestRow> for TraceRecord {
    fn from(row: &crate::trace::model::RequestRow) -> TraceRecord {
        TraceRecord {
            tenant_id: row.tenant_id.clone(),
            trace_id: row.trace_id.clone(),
            ts: Some(row.ts),
            prompt_name: row.prompt_name.clone(),
            messages: row.messages.iter().map(|m| (m.role.clone(), m.content.clone())).collect(),
            output: row.output.clone(),
        }
    }
}

/// Scans a JSONL stream; `path` names it in bad-line reports.
pub fn scan_reader<R: Read>(
    side: &PromptSide,
    path: &str,
    mut reader: R,
    tally: &mut TraceTally,
) -> Result<(), ScanError> {
    let source = tally.add_source(TraceSource::File(path.to_string()));
    side.indexes(); // built here, before the parallel part (see `PromptSide::indexes`)
    let batch_len = rayon::current_num_threads().max(1) * 2;
    let mut carry = Vec::new();
    // Chunk buffers go back here after each batch: fresh 4 MiB buffers cost page faults every time.
    let mut spare: Vec<Vec<u8>> = Vec::with_capacity(batch_len);
    let mut next_line: u64 = 1;
    loop {
        let mut batch: Vec<(u64, Vec<u8>)> = Vec::with_capacity(batch_len);
        let mut eof = false;
        while batch.len() < batch_len && !eof {
            let buf = spare.pop().unwrap_or_default();
            let (chunk, at_end) = next_chunk(&mut reader, &mut carry, buf)
                .map_err(|source| ScanError::Io { path: path.to_string(), source })?;
            eof = at_end;
            if chunk.is_empty() {
                spare.push(chunk);
                continue;
            }
            let lines = memchr::memchr_iter(b'\n', &chunk).count() as u64;
            batch.push((next_line, chunk));
            next_line += lines;
        }
        let tallies: Vec<TraceTally> =
            batch.par_iter().map(|(first_line, chunk)| scan_chunk(side, path, source, *first_line, chunk)).collect();
        for t in tallies {
            tally.merge(t);
        }
        spare.extend(batch.into_iter().map(|(_, chunk)| chunk));
        if eof {
            return Ok(());
        }
    }
}

/// Reads up to a chunk of whole lines into `buf` (cleared first); the bytes after the last newline wait
/// in `carry`.
fn next_chunk<R: Read>(reader: &mut R, carry: &mut Vec<u8>, mut buf: Vec<u8>) -> std::io::Result<(Vec<u8>, bool)> {
    buf.clear();
    // Room for a whole chunk up front: growing the buffer read by read copied it several times over.
    buf.reserve(CHUNK_BYTES + READ_BYTES + carry.len());
    buf.append(carry);
    loop {
        if buf.len() >= CHUNK_BYTES
            && let Some(p) = memchr::memrchr(b'\n', &buf)
        {
            carry.extend_from_slice(&buf[p + 1..]);
            buf.truncate(p + 1);
            return Ok((buf, false));
        }
        // `read_to_end` reads into the spare capacity without zeroing it first, and retries on
        // `Interrupted`.
        let n = reader.by_ref().take(READ_BYTES as u64).read_to_end(&mut buf)?;
        if n == 0 {
            return Ok((buf, true));
        }
    }
}

/// The lines of a chunk, as `chunk.split(|&b| b == b'\n')` gives them, found with memchr.
fn chunk_lines(chunk: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    memchr::memchr_iter(b'\n', chunk).chain(std::iter::once(chunk.len())).map(move |end| {
        let line = &chunk[start..end];
        start = end + 1;
        line
    })
}

fn scan_chunk(side: &PromptSide, path: &str, source: u32, first_line: u64, chunk: &[u8]) -> TraceTally {
    let mut tally = TraceTally::default();
    let mut scratch = Scratch::default();
    for (i, raw) in chunk_lines(chunk).enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let line_no = first_line + i as u64;
        let Ok(line) = std::str::from_utf8(raw) else {
            tally.bad_line(path, line_no, "not UTF-8".to_string());
            continue;
        };
        match parse_record(line, &side.options.tenant_field) {
            Ok(record) => {
                let at =
                    || TraceAt { source, position: line_no, trace_id: record.trace_id.as_deref().map(str::to_string) };
                scan_view(side, &record, at, &mut scratch, &mut tally);
            }
            Err(e) => tally.bad_line(path, line_no, describe_json_error(&e)),
        }
    }
    tally.records_from_files = tally.records;
    tally
}

/// Scans owned records, in parallel batches.
pub fn scan_records<I: IntoIterator<Item = TraceRecord>>(side: &PromptSide, records: I, tally: &mut TraceTally) {
    let source = tally.add_source(TraceSource::State);
    side.indexes(); // built here, before the parallel part (see `PromptSide::indexes`)
    let mut batch = Vec::with_capacity(4096);
    let mut records = records.into_iter().peekable();
    let mut scanned: u64 = 0;
    while records.peek().is_some() {
        batch.clear();
        batch.extend(records.by_ref().take(4096));
        let first = scanned + 1;
        scanned += batch.len() as u64;
        let tallies: Vec<TraceTally> = batch
            .par_chunks(512)
            .enumerate()
            .map(|(i, chunk)| {
                let mut t = TraceTally::default();
                let mut scratch = Scratch::default();
                for (j, r) in chunk.iter().enumerate() {
                    let position = first + (i * 512 + j) as u64;
                    let at = || TraceAt { source, position, trace_id: r.trace_id.clone() };
                    scan_owned(side, r, at, &mut scratch, &mut t);
                }
                t.records_from_state = t.records;
                t
            })
            .collect();
        for t in tallies {
            tally.merge(t);
        }
    }
}

fn scan_owned(
    side: &PromptSide,
    record: &TraceRecord,
    at: impl Fn() -> TraceAt,
    scratch: &mut Scratch,
    tally: &mut TraceTally,
) {
    let messages: Vec<(usize, &str, &str)> =
        record.messages.iter().enumerate().map(|(i, (r, c))| (i, r.as_str(), c.as_str())).collect();
    let mut texts = role_texts(side, record.prompt_name.as_deref(), &messages);
    texts.extend(record.output.as_deref().map(|text| RoleText { role: Role::Assistant, text }));
    scan_texts(side, record.tenant_id.as_deref(), || record.ts, at, &texts, scratch, tally);
}

fn scan_view(
    side: &PromptSide,
    record: &RecordView<'_>,
    at: impl Fn() -> TraceAt,
    scratch: &mut Scratch,
    tally: &mut TraceTally,
) {
    let messages: Vec<(usize, &str, &str)> = record
        .messages
        .iter()
        .enumerate()
        .flat_map(|(i, m)| {
            let role = m.role.as_deref().unwrap_or("user");
            // A message without text (an assistant turn that only calls tools) is still a turn.
            let placeholder = m.content.is_empty().then_some((i, role, ""));
            m.content.parts().map(move |part| (i, role, part)).chain(placeholder)
        })
        .collect();
    let mut texts = role_texts(side, record.prompt_name.as_deref(), &messages);
    texts.extend(record.output.parts().map(|text| RoleText { role: Role::Assistant, text }));
    let ts = || record.ts.as_deref().and_then(|t| t.parse::<Timestamp>().ok());
    scan_texts(side, record.tenant.as_deref(), ts, at, &texts, scratch, tally);
}

/// The texts of a request that are not the served prompt: system/developer messages are dropped by
/// role, then the prompt's rendered example turns by position — but never the request's last message,
/// which is always the caller's. `messages` holds (message index, role, text part).
fn role_texts<'r>(
    side: &PromptSide,
    prompt_name: Option<&str>,
    messages: &[(usize, &'r str, &'r str)],
) -> Vec<RoleText<'r>> {
    let mut turns: Vec<(usize, Role, &str)> = Vec::with_capacity(messages.len());
    let mut turn = 0;
    let mut previous_message = None;
    for &(index, role, text) in messages {
        let Some(class) = Role::classify(role) else {
            continue;
        };
        if previous_message != Some(index) {
            turn += 1;
            previous_message = Some(index);
        }
        turns.push((turn, class, text));
    }
    let skip = side.rendered_turns(prompt_name).min(turn.saturating_sub(1));
    turns.into_iter().filter(|&(t, _, _)| t > skip).map(|(_, role, text)| RoleText { role, text }).collect()
}

fn scan_texts(
    side: &PromptSide,
    tenant: Option<&str>,
    ts: impl Fn() -> Option<Timestamp>,
    at: impl Fn() -> TraceAt,
    texts: &[RoleText<'_>],
    scratch: &mut Scratch,
    tally: &mut TraceTally,
) {
    let tenant = match tenant {
        Some(t) if !t.is_empty() => t,
        _ => {
            tally.records_without_tenant += 1;
            UNKNOWN_TENANT
        }
    };
    tally.count_record(tenant);
    scratch.record_hits.clear();
    for t in texts {
        find_in_text(side, t, scratch);
    }
    if scratch.record_hits.is_empty() {
        return;
    }
    // Only records with hits pay for the time and the location.
    record_evidence(side, tenant, ts(), at(), scratch, tally);
}

fn find_in_text(side: &PromptSide, text: &RoleText<'_>, scratch: &mut Scratch) {
    let thresholds = RunThresholds { min_words: side.options.min_run_words, min_chars: side.options.min_run_chars };
    let indexes = side.indexes();
    scratch.words.fill(text.text);
    scratch.runs.clear();
    indexes.shingles.find_runs(&scratch.words, thresholds, &mut scratch.run_scratch, &mut scratch.runs);
    for run in &scratch.runs {
        let example = indexes.shingles.texts()[run.text as usize].example;
        let ev = Evidence { shingle: 1, longest_run_words: run.trace_words.len(), ..Evidence::default() };
        scratch.record_hits.push((example, text.role, ev));
    }
    scratch.entity_hits.clear();
    indexes.entities.find(text.text, &scratch.words, &mut scratch.entity_hits);
    for hit in &scratch.entity_hits {
        let entry = indexes.entities.entry(*hit);
        let ev = match entry.strength {
            Strength::Strong => Evidence { strong_entity: 1, ..Evidence::default() },
            Strength::Weak => Evidence { weak_entity: 1, ..Evidence::default() },
        };
        for &example in &entry.examples {
            scratch.record_hits.push((example, text.role, ev.clone()));
        }
    }
}

/// Folds this record's hits into the tally: one trace per (example, role), whatever the number of hits.
fn record_evidence(
    side: &PromptSide,
    tenant: &str,
    ts: Option<Timestamp>,
    at: TraceAt,
    scratch: &mut Scratch,
    tally: &mut TraceTally,
) {
    let hits = &mut scratch.record_hits;
    hits.sort_by_key(|h| (h.0, h.1));
    if !tally.evidence.contains_key(tenant) {
        tally.evidence.insert(tenant.to_string(), FxHashMap::default());
    }
    let per_tenant = tally.evidence.get_mut(tenant).expect("inserted above");
    for group in hits.chunk_by(|a, b| a.0 == b.0 && a.1 == b.1) {
        let (example, role) = (group[0].0, group[0].1);
        let known = per_tenant.get(&(example, role));
        // `at` (with its trace id) is cloned only when it is the first trace for this key.
        let first = known.is_none_or(|k| k.first.as_ref().is_none_or(|f| at < *f)).then(|| at.clone());
        let mut ev = Evidence { n_traces: 1, first, ..Evidence::default() };
        ev.shingle = u64::from(group.iter().any(|h| h.2.shingle > 0));
        ev.strong_entity = u64::from(group.iter().any(|h| h.2.strong_entity > 0));
        ev.weak_entity = u64::from(ev.strong_entity == 0 && group.iter().any(|h| h.2.weak_entity > 0));
        ev.longest_run_words = group.iter().map(|h| h.2.longest_run_words).max().unwrap_or(0);
        match (side.examples[example as usize].deployed_at, ts) {
            (Some(deploy), Some(t)) if t < deploy => ev.before_deploy = 1,
            (Some(_), Some(_)) => ev.after_deploy = 1,
            _ => ev.unknown_time = 1,
        }
        per_tenant.entry((example, role)).or_default().add(&ev);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out at most `step` bytes per read, like a pipe or a gzip decoder.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn chunks_are_whole_lines_and_reused_buffers_lose_nothing() {
        let mut data = Vec::new();
        let mut i = 0u64;
        while data.len() < 2 * CHUNK_BYTES + CHUNK_BYTES / 2 {
            data.extend_from_slice(format!("{{\"n\":{i},\"pad\":\"{}\"}}\n", "x".repeat((i % 97) as usize)).as_bytes());
            i += 1;
        }
        data.extend_from_slice(b"{\"last\":true}"); // no final newline
        let mut reader = Trickle { data: &data, step: 65_521 };
        let (mut carry, mut spare, mut seen) = (Vec::new(), Vec::new(), Vec::new());
        loop {
            let buf = spare.pop().unwrap_or_default();
            let (chunk, eof) = next_chunk(&mut reader, &mut carry, buf).unwrap();
            if !eof {
                assert!(chunk.len() > CHUNK_BYTES / 2 && chunk.ends_with(b"\n"), "{} bytes", chunk.len());
            }
            seen.extend_from_slice(&chunk);
            let lines: Vec<&[u8]> = chunk_lines(&chunk).collect();
            assert_eq!(lines, chunk.split(|&b| b == b'\n').collect::<Vec<_>>());
            spare.push(chunk);
            if eof {
                break;
            }
        }
        assert!(carry.is_empty());
        assert_eq!(seen, data);
    }
}
