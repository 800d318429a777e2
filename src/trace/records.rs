//! Compact views of stored requests for analyses over millions of rows (stats, tails, cost): texts left
//! out, repeated strings (models, prompts, tenants, conversations) interned.

use std::hash::Hasher;
use std::num::NonZeroU32;

use jiff::Timestamp;

use crate::trace::model::{RequestRow, RequestStatus, Usage, UsageSource};

/// A fast hash map for analyses over millions of rows: keys are ids and names from the state file, so
/// resistance to chosen collisions (SipHash's point) buys nothing here and costs several times the time.
pub type FastMap<K, V> = rustc_hash::FxHashMap<K, V>;

/// An interned string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sym(NonZeroU32);

/// The strings behind [`Sym`]s.
///
/// Indexed by a 64-bit hash of each name rather than by the name: an analysis interns a million
/// conversation ids, and a map of hashes holds no second copy of each name, and finds a name given as
/// bytes without checking that they are UTF-8 first.
#[derive(Debug, Clone, Default)]
pub struct Symbols {
    names: Vec<Box<str>>,
    /// By the hash of a name, the first name interned with that hash.
    index: FastMap<u64, Sym>,
    /// Names whose hash an earlier name took.
    collided: FastMap<Box<[u8]>, Sym>,
}

impl Symbols {
    fn hash(bytes: &[u8]) -> u64 {
        let mut h = rustc_hash::FxHasher::default();
        h.write(bytes);
        h.write_usize(bytes.len());
        h.finish()
    }

    fn find(&self, hash: u64, bytes: &[u8]) -> Option<Sym> {
        let sym = *self.index.get(&hash)?;
        if self.name(sym).as_bytes() == bytes {
            return Some(sym);
        }
        self.collided.get(bytes).copied()
    }

    pub fn intern(&mut self, name: &str) -> Sym {
        let hash = Self::hash(name.as_bytes());
        if let Some(sym) = self.find(hash, name.as_bytes()) {
            return sym;
        }
        self.names.push(name.into());
        let sym = Sym(NonZeroU32::new(self.names.len() as u32).expect("fewer than 4 billion names"));
        match self.index.entry(hash) {
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(sym);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collided.insert(name.as_bytes().into(), sym);
            }
        }
        sym
    }

    /// Interns text given as bytes (as read from the state file); bytes that are not UTF-8 are interned
    /// as their lossy conversion.
    pub fn intern_bytes(&mut self, bytes: &[u8]) -> Sym {
        if let Some(sym) = self.find(Self::hash(bytes), bytes) {
            return sym;
        }
        match std::str::from_utf8(bytes) {
            Ok(text) => self.intern(text),
            Err(_) => self.intern(&String::from_utf8_lossy(bytes)),
        }
    }

    pub fn get(&self, name: &str) -> Option<Sym> {
        self.find(Self::hash(name.as_bytes()), name.as_bytes())
    }

    pub fn name(&self, sym: Sym) -> &str {
        &self.names[sym.0.get() as usize - 1]
    }

    /// A dense number for the symbol (0-based), to index arrays.
    pub fn index(sym: Sym) -> usize {
        sym.0.get() as usize - 1
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// Which stored requests an analysis reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestFilter {
    /// Inclusive.
    pub since: Option<Timestamp>,
    /// Exclusive.
    pub until: Option<Timestamp>,
    /// `import` or `eval`.
    pub source: Option<String>,
    /// Only requests to this model (as requested).
    pub model: Option<String>,
    /// Only requests made with this prompt name.
    pub prompt: Option<String>,
}

/// The parts of a [`Call`] an analysis reads besides those every analysis needs (id, time, model,
/// logical request, attempt, status, usage, tier). A part left out is read as empty (`None`, `false`):
/// over a million rows each column costs about a tenth of a second, so a report reads only what it uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallParts {
    /// `conversation`.
    pub conversation: bool,
    /// `tenant`.
    pub tenant: bool,
    /// `prompt_name`, `prompt_version`.
    pub prompt: bool,
    /// `streamed`, `latency_ms`, `ttft_ms`, `finish_reason`.
    pub timing: bool,
}

impl CallParts {
    pub const ALL: CallParts = CallParts { conversation: true, tenant: true, prompt: true, timing: true };
}

/// One stored request as the analyses see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Call {
    /// The store's row id: opaque, stable, increasing in insertion order.
    pub id: i64,
    /// Start time, ms since the Unix epoch (UTC).
    pub ts_ms: i64,
    pub provider: Sym,
    pub request_model: Sym,
    pub response_model: Option<Sym>,
    pub tenant: Option<Sym>,
    pub conversation: Option<Sym>,
    pub prompt_name: Option<Sym>,
    pub prompt_version: Option<Sym>,
    /// A hash of the logical request id: retried attempts share it. `None` when the row names none (then it
    /// is its own logical request).
    pub logical: Option<u64>,
    pub attempt: u32,
    pub status: RequestStatus,
    pub streamed: bool,
    pub usage_source: UsageSource,
    pub usage: Usage,
    pub service_tier: Option<Sym>,
    pub batch: bool,
    pub latency_ms: Option<u32>,
    pub ttft_ms: Option<u32>,
    pub finish_reason: Option<Sym>,
}

/// Calls and the strings they refer to.
#[derive(Debug, Clone, Default)]
pub struct Calls {
    pub symbols: Symbols,
    pub calls: Vec<Call>,
}

impl Calls {
    pub fn name(&self, sym: Sym) -> &str {
        self.symbols.name(sym)
    }

    /// `provider:model` as requested, the key requests are grouped by.
    pub fn model_key(&self, call: &Call) -> String {
        format!("{}:{}", self.name(call.provider), self.name(call.request_model))
    }

    /// These calls followed by `other`'s, with `other`'s symbols re-interned here.
    pub fn append(mut self, other: Calls) -> Calls {
        let remap: Vec<Sym> = other.symbols.names.iter().map(|name| self.symbols.intern(name)).collect();
        let map = |s: Sym| remap[Symbols::index(s)];
        let opt = |s: Option<Sym>| s.map(map);
        self.calls.reserve(other.calls.len());
        for c in other.calls {
            self.calls.push(Call {
                provider: map(c.provider),
                request_model: map(c.request_model),
                response_model: opt(c.response_model),
                tenant: opt(c.tenant),
                conversation: opt(c.conversation),
                prompt_name: opt(c.prompt_name),
                prompt_version: opt(c.prompt_version),
                service_tier: opt(c.service_tier),
                finish_reason: opt(c.finish_reason),
                ..c
            });
        }
        self
    }
}

/// The identity of a streamed request, for examples in reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallIds {
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    /// Eval attempts carry no trace ids; their `<run_id>/<case_id>/<sample>` names them instead.
    pub logical_request_id: Option<String>,
}

/// One stream checkpoint, its text (if kept) as a range of the request's text buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    pub t_ms: u64,
    pub tokens: u32,
    pub text: Option<(u32, u32)>,
}

/// One request's stream checkpoints, borrowed from buffers the reader reuses.
#[derive(Debug, Clone, Copy)]
pub struct Checkpoints<'a> {
    pub chunks: &'a [Chunk],
    pub text: &'a str,
}

impl<'a> Checkpoints<'a> {
    pub fn chunk_text(&self, chunk: &Chunk) -> Option<&'a str> {
        chunk.text.map(|(from, to)| &self.text[from as usize..to as usize])
    }

    pub fn has_text(&self) -> bool {
        self.chunks.iter().any(|c| c.text.is_some())
    }
}

impl Calls {
    /// Calls from full rows, ids 1, 2, … in order: for analyses of rows that are not in a state file.
    pub fn from_rows<'r>(rows: impl IntoIterator<Item = &'r RequestRow>) -> Calls {
        let mut out = Calls::default();
        for (i, r) in rows.into_iter().enumerate() {
            let s = &mut out.symbols;
            let call = Call {
                id: i as i64 + 1,
                ts_ms: r.ts.as_millisecond(),
                provider: s.intern(&r.provider),
                request_model: s.intern(&r.request_model),
                response_model: r.response_model.as_deref().map(|v| s.intern(v)),
                tenant: r.tenant_id.as_deref().map(|v| s.intern(v)),
                conversation: r.conversation_id.as_deref().map(|v| s.intern(v)),
                prompt_name: r.prompt_name.as_deref().map(|v| s.intern(v)),
                prompt_version: r.prompt_version.as_deref().map(|v| s.intern(v)),
                logical: r.logical_request_id.as_deref().map(logical_hash),
                attempt: r.attempt,
                status: r.status,
                streamed: r.streamed,
                usage_source: r.usage_source,
                usage: r.usage,
                service_tier: r.service_tier.as_deref().map(|v| s.intern(v)),
                batch: r.batch,
                latency_ms: r.latency_ms.map(|v| v.min(u32::MAX as u64) as u32),
                ttft_ms: r.ttft_ms.map(|v| v.min(u32::MAX as u64) as u32),
                finish_reason: r.finish_reason.as_deref().map(|v| s.intern(v)),
            };
            out.calls.push(call);
        }
        out
    }
}

/// Calls `visit` with the checkpoints of a full row, laid out as a store read would.
pub fn with_checkpoints<T>(row: &RequestRow, visit: impl FnOnce(Checkpoints<'_>) -> T) -> T {
    let mut text = String::new();
    let chunks: Vec<Chunk> = row
        .stream
        .iter()
        .map(|c| {
            let range = c.text.as_deref().map(|t| {
                let from = text.len() as u32;
                text.push_str(t);
                (from, text.len() as u32)
            });
            Chunk { t_ms: c.t_ms, tokens: c.tokens, text: range }
        })
        .collect();
    visit(Checkpoints { chunks: &chunks, text: &text })
}

/// A 64-bit hash of a logical request id: retries are grouped by it without keeping the strings. (Eight
/// bytes a step, FxHash; only compared within one analysis, never stored.)
pub fn logical_hash(id: &str) -> u64 {
    logical_hash_bytes(id.as_bytes())
}

/// [`logical_hash`] of text given as bytes.
pub fn logical_hash_bytes(id: &[u8]) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    h.write(id);
    h.write_usize(id.len());
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_hash_spreads_ids_that_differ_in_their_last_characters() {
        use std::hash::BuildHasher;
        let build = rustc_hash::FxBuildHasher;
        let buckets: std::collections::HashSet<u64> =
            (0..1_000).map(|i| build.hash_one(format!("c-{i:06}")) & 1023).collect();
        assert!(buckets.len() > 500, "{} distinct low-bit buckets of 1024", buckets.len());
    }

    #[test]
    fn interning_gives_one_symbol_per_name() {
        let mut s = Symbols::default();
        let a = s.intern("gpt-4o");
        let b = s.intern("claude");
        assert_eq!(s.intern("gpt-4o"), a);
        assert_ne!(a, b);
        assert_eq!(s.name(b), "claude");
        assert_eq!(s.get("claude"), Some(b));
        assert_eq!(s.len(), 2);
        assert_eq!(std::mem::size_of::<Option<Sym>>(), 4);
    }

    #[test]
    fn names_whose_hashes_collide_stay_apart() {
        let mut s = Symbols::default();
        let a = s.intern("first");
        // Stage a collision: "first" took the hash of "second", which went to `collided`.
        let b = Sym(NonZeroU32::new(2).unwrap());
        s.names.push("second".into());
        s.index.insert(Symbols::hash(b"second"), a);
        s.collided.insert(b"second".as_slice().into(), b);
        assert_eq!(s.intern("first"), a);
        assert_eq!(s.intern_bytes(b"second"), b);
        assert_eq!(s.get("second"), Some(b));
        assert_eq!(s.len(), 2);
        assert_eq!(s.intern_bytes(b"caf\xc3\xa9"), s.intern("café"));
        let lossy = s.intern_bytes(b"bad \xff");
        assert_eq!(s.name(lossy), "bad \u{fffd}");
        assert_eq!(s.intern_bytes(b"bad \xff"), lossy);
    }

    #[test]
    fn appending_re_interns_the_other_side() {
        use crate::trace::generate::{GenerateConfig, generate};
        let rows: Vec<RequestRow> =
            generate(&GenerateConfig { conversations: 20, ..GenerateConfig::default() }).map(|g| g.row).collect();
        let (a, b) = rows.split_at(rows.len() / 2);
        let whole = Calls::from_rows(&rows);
        let joined = Calls::from_rows(a).append(Calls::from_rows(b));
        assert_eq!(joined.calls.len(), whole.calls.len());
        for (x, y) in whole.calls.iter().zip(&joined.calls) {
            assert_eq!(whole.model_key(x), joined.model_key(y));
            assert_eq!(x.conversation.map(|s| whole.name(s)), y.conversation.map(|s| joined.name(s)));
            assert_eq!(x.usage, y.usage);
        }
    }
}
