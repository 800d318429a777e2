//! OTLP attribute values (`{"key": …, "value": {"stringValue": …}}`) and lookups by any of several names,
//! since the GenAI conventions renamed attributes between versions and OpenInference uses its own.

use std::borrow::Cow;

use serde::Deserialize;

use super::normalize::RawCount;

/// One attribute value, borrowed from the span's bytes where it has no escapes.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue<'a> {
    Str(Cow<'a, str>),
    Int(i128),
    Double(f64),
    Bool(bool),
    Array(Vec<AttrValue<'a>>),
    Map(Vec<(Cow<'a, str>, AttrValue<'a>)>),
    Empty,
}

impl AttrValue<'_> {
    pub fn into_owned(self) -> AttrValue<'static> {
        match self {
            AttrValue::Str(s) => AttrValue::Str(Cow::Owned(s.into_owned())),
            AttrValue::Int(i) => AttrValue::Int(i),
            AttrValue::Double(d) => AttrValue::Double(d),
            AttrValue::Bool(b) => AttrValue::Bool(b),
            AttrValue::Array(a) => AttrValue::Array(a.into_iter().map(AttrValue::into_owned).collect()),
            AttrValue::Map(m) => {
                AttrValue::Map(m.into_iter().map(|(k, v)| (Cow::Owned(k.into_owned()), v.into_owned())).collect())
            }
            AttrValue::Empty => AttrValue::Empty,
        }
    }

    /// Text for display: strings as they are, scalars formatted, the first element of an array.
    pub fn to_text(&self) -> Option<String> {
        match self {
            AttrValue::Str(s) => Some(s.to_string()),
            AttrValue::Int(i) => Some(i.to_string()),
            AttrValue::Double(d) => Some(d.to_string()),
            AttrValue::Bool(b) => Some(b.to_string()),
            AttrValue::Array(a) => a.first().and_then(AttrValue::to_text),
            AttrValue::Map(_) | AttrValue::Empty => None,
        }
    }

    /// As a token count or other whole number, in the form `normalize::token_count` checks.
    pub fn as_count(&self) -> Option<RawCount> {
        match self {
            AttrValue::Int(i) => Some(RawCount::Int(*i)),
            AttrValue::Double(d) => Some(RawCount::Float(*d)),
            AttrValue::Str(s) => Some(RawCount::Text(s.to_string())),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            AttrValue::Int(i) => Some(*i as f64),
            AttrValue::Double(d) => Some(*d),
            AttrValue::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            AttrValue::Bool(b) => Some(*b),
            AttrValue::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Some(true),
                "false" | "0" | "no" => Some(false),
                _ => None,
            },
            AttrValue::Int(i) => Some(*i != 0),
            _ => None,
        }
    }
}

/// The JSON shape of an OTLP `AnyValue`. Field names are lowerCamelCase in OTLP/JSON; protobuf's JSON
/// parsers also accept the original snake_case names, and so do we.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawAnyValue<'a> {
    #[serde(borrow, default, alias = "string_value")]
    string_value: Option<Cow<'a, str>>,
    #[serde(default, alias = "int_value")]
    int_value: Option<RawCount>,
    #[serde(default, alias = "double_value")]
    double_value: Option<RawDouble>,
    #[serde(default, alias = "bool_value")]
    bool_value: Option<bool>,
    #[serde(borrow, default, alias = "array_value")]
    array_value: Option<RawArray<'a>>,
    #[serde(borrow, default, alias = "kvlist_value")]
    kvlist_value: Option<RawKvList<'a>>,
}

/// Doubles are numbers, except NaN and infinities, which protobuf's JSON writes as strings.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawDouble {
    Number(f64),
    Text(String),
}

#[derive(Deserialize, Default)]
struct RawArray<'a> {
    #[serde(borrow, default)]
    values: Vec<AttrValue<'a>>,
}

#[derive(Deserialize, Default)]
struct RawKvList<'a> {
    #[serde(borrow, default)]
    values: Vec<KeyValue<'a>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for AttrValue<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawAnyValue::deserialize(d)?;
        Ok(if let Some(s) = raw.string_value {
            AttrValue::Str(s)
        } else if let Some(i) = raw.int_value {
            match i {
                RawCount::Int(i) => AttrValue::Int(i),
                RawCount::Float(f) => AttrValue::Double(f),
                RawCount::Text(t) => t.trim().parse().map(AttrValue::Int).unwrap_or(AttrValue::Str(Cow::Owned(t))),
            }
        } else if let Some(d) = raw.double_value {
            match d {
                RawDouble::Number(n) => AttrValue::Double(n),
                RawDouble::Text(t) => AttrValue::Double(t.parse().unwrap_or(f64::NAN)),
            }
        } else if let Some(b) = raw.bool_value {
            AttrValue::Bool(b)
        } else if let Some(a) = raw.array_value {
            AttrValue::Array(a.values)
        } else if let Some(m) = raw.kvlist_value {
            AttrValue::Map(m.values.into_iter().map(|kv| (kv.key, kv.value)).collect())
        } else {
            AttrValue::Empty
        })
    }
}

/// One attribute.
#[derive(Debug, Clone, Deserialize)]
pub struct KeyValue<'a> {
    #[serde(borrow)]
    pub key: Cow<'a, str>,
    #[serde(borrow, default = "empty_value")]
    pub value: AttrValue<'a>,
}

fn empty_value<'a>() -> AttrValue<'a> {
    AttrValue::Empty
}

/// One field read from attributes, under any of several names (preferred first).
#[derive(Debug)]
pub struct Field {
    /// Position in its [`FieldTable`].
    pub id: usize,
    pub names: &'static [&'static str],
}

/// The fields a reader looks for. Attribute keys are matched once per span through an index built on
/// first use, instead of comparing every wanted name with every attribute for every field.
pub struct FieldTable {
    fields: &'static [&'static Field],
    index: std::sync::OnceLock<rustc_hash::FxHashMap<&'static str, (usize, usize)>>,
}

/// More fields than any table holds; slots are a fixed array so that no span allocates for them.
const MAX_FIELDS: usize = 48;

impl FieldTable {
    pub const fn new(fields: &'static [&'static Field]) -> Self {
        FieldTable { fields, index: std::sync::OnceLock::new() }
    }

    /// attribute name → (field id, priority: the name's position in the field's list)
    fn index(&self) -> &rustc_hash::FxHashMap<&'static str, (usize, usize)> {
        self.index.get_or_init(|| {
            assert!(self.fields.len() <= MAX_FIELDS, "raise MAX_FIELDS");
            let mut index = rustc_hash::FxHashMap::default();
            for (position, field) in self.fields.iter().enumerate() {
                assert_eq!(field.id, position, "field ids follow the table order");
                for (priority, name) in field.names.iter().enumerate() {
                    index.entry(*name).or_insert((field.id, priority));
                }
            }
            index
        })
    }
}

#[derive(Clone, Copy)]
struct Found<'s, 'a> {
    priority: usize,
    key: &'s str,
    value: &'s AttrValue<'a>,
}

/// A span's attributes indexed by field, with its resource's as fallback.
pub struct Attrs<'s, 'a> {
    found: [Option<Found<'s, 'a>>; MAX_FIELDS],
    span: &'s [KeyValue<'a>],
}

impl<'s, 'a> Attrs<'s, 'a> {
    pub fn new(table: &FieldTable, span: &'s [KeyValue<'a>], resource: &'s [KeyValue<'static>]) -> Self {
        let index = table.index();
        let mut found: [Option<Found<'s, 'a>>; MAX_FIELDS] = [None; MAX_FIELDS];
        for kv in span {
            if kv.value == AttrValue::Empty {
                continue;
            }
            if let Some(&(field, priority)) = index.get(kv.key.as_ref())
                && found[field].is_none_or(|f| priority < f.priority)
            {
                found[field] = Some(Found { priority, key: &kv.key, value: &kv.value });
            }
        }
        // The resource only fills what the span does not say.
        let mut from_resource: [Option<Found<'s, 'a>>; MAX_FIELDS] = [None; MAX_FIELDS];
        for kv in resource {
            if kv.value == AttrValue::Empty {
                continue;
            }
            if let Some(&(field, priority)) = index.get(kv.key.as_ref())
                && found[field].is_none()
                && from_resource[field].is_none_or(|f| priority < f.priority)
            {
                from_resource[field] = Some(Found { priority, key: &kv.key, value: &kv.value });
            }
        }
        for (slot, fallback) in found.iter_mut().zip(from_resource) {
            if slot.is_none() {
                *slot = fallback;
            }
        }
        Attrs { found, span }
    }

    /// The value of a field: the span's under the preferred name, else the resource's.
    pub fn get(&self, field: &Field) -> Option<&'s AttrValue<'a>> {
        self.found[field.id].map(|f| f.value)
    }

    pub fn text(&self, field: &Field) -> Option<String> {
        self.get(field).and_then(AttrValue::to_text).filter(|s| !s.is_empty())
    }

    pub fn count(&self, field: &Field) -> Option<RawCount> {
        self.get(field).and_then(AttrValue::as_count)
    }

    pub fn f64(&self, field: &Field) -> Option<f64> {
        self.get(field).and_then(AttrValue::as_f64)
    }

    pub fn bool(&self, field: &Field) -> Option<bool> {
        self.get(field).and_then(AttrValue::as_bool)
    }

    /// The attribute name the field's value came from (for messages).
    pub fn which(&self, field: &Field) -> Option<&'s str> {
        self.found[field.id].map(|f| f.key)
    }

    /// Span attributes `PREFIX.{i}.SUFFIX` for i = 0, 1, … as (i, value), in index order.
    pub fn indexed(&self, prefix: &str, suffix: &str) -> Vec<(usize, &'s AttrValue<'a>)> {
        let mut found: Vec<(usize, &AttrValue<'a>)> = self
            .span
            .iter()
            .filter_map(|kv| {
                let rest = kv.key.strip_prefix(prefix)?.strip_prefix('.')?;
                let (index, tail) = rest.split_once('.')?;
                (tail == suffix).then(|| index.parse().ok().map(|i| (i, &kv.value)))?
            })
            .collect();
        found.sort_by_key(|(i, _)| *i);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Field = Field { id: 0, names: &["missing", "s"] };
    const I: Field = Field { id: 1, names: &["i"] };
    const N: Field = Field { id: 2, names: &["n"] };
    const D: Field = Field { id: 3, names: &["d"] };
    const B: Field = Field { id: 4, names: &["b"] };
    const A: Field = Field { id: 5, names: &["a"] };
    const M: Field = Field { id: 6, names: &["m"] };
    const SNAKE: Field = Field { id: 7, names: &["snake"] };
    const E: Field = Field { id: 8, names: &["e"] };
    const NEW_FIRST: Field = Field { id: 9, names: &["new.name", "old.name"] };
    static TABLE: FieldTable = FieldTable::new(&[&S, &I, &N, &D, &B, &A, &M, &SNAKE, &E, &NEW_FIRST]);

    #[test]
    fn the_preferred_name_wins_and_the_resource_only_fills_gaps() {
        let span: Vec<KeyValue<'_>> = serde_json::from_str(
            r#"[{"key":"old.name","value":{"stringValue":"old"}},{"key":"new.name","value":{"stringValue":"new"}}]"#,
        )
        .unwrap();
        let resource: Vec<KeyValue<'static>> = serde_json::from_str::<Vec<KeyValue<'_>>>(
            r#"[{"key":"new.name","value":{"stringValue":"resource"}},{"key":"i","value":{"intValue":"7"}}]"#,
        )
        .unwrap()
        .into_iter()
        .map(|kv| KeyValue { key: Cow::Owned(kv.key.into_owned()), value: kv.value.into_owned() })
        .collect();
        let attrs = Attrs::new(&TABLE, &span, &resource);
        assert_eq!(attrs.text(&NEW_FIRST).as_deref(), Some("new"));
        assert_eq!(attrs.count(&I), Some(RawCount::Int(7)));
    }

    #[test]
    fn parses_every_any_value_shape() {
        let text = r#"[
            {"key":"s","value":{"stringValue":"gpt-4o"}},
            {"key":"i","value":{"intValue":"812"}},
            {"key":"n","value":{"intValue":812}},
            {"key":"d","value":{"doubleValue":0.25}},
            {"key":"b","value":{"boolValue":true}},
            {"key":"a","value":{"arrayValue":{"values":[{"stringValue":"stop"}]}}},
            {"key":"m","value":{"kvlistValue":{"values":[{"key":"k","value":{"intValue":"1"}}]}}},
            {"key":"snake","value":{"string_value":"x"}},
            {"key":"e","value":{}}
        ]"#;
        let kvs: Vec<KeyValue<'_>> = serde_json::from_str(text).unwrap();
        let attrs = Attrs::new(&TABLE, &kvs, &[]);
        assert_eq!(attrs.text(&S).as_deref(), Some("gpt-4o"));
        assert_eq!(attrs.count(&I), Some(RawCount::Int(812)));
        assert_eq!(attrs.count(&N), Some(RawCount::Int(812)));
        assert_eq!(attrs.f64(&D), Some(0.25));
        assert_eq!(attrs.bool(&B), Some(true));
        assert_eq!(attrs.text(&A).as_deref(), Some("stop"));
        assert!(matches!(attrs.get(&M), Some(AttrValue::Map(m)) if m.len() == 1));
        assert_eq!(attrs.text(&SNAKE).as_deref(), Some("x"));
        assert_eq!(attrs.get(&E), None);
        assert_eq!(attrs.which(&S), Some("s"));
    }

    #[test]
    fn indexed_attributes_come_in_index_order() {
        let text = r#"[
            {"key":"gen_ai.prompt.1.content","value":{"stringValue":"b"}},
            {"key":"gen_ai.prompt.0.content","value":{"stringValue":"a"}},
            {"key":"gen_ai.prompt.0.role","value":{"stringValue":"user"}}
        ]"#;
        let kvs: Vec<KeyValue<'_>> = serde_json::from_str(text).unwrap();
        let attrs = Attrs::new(&TABLE, &kvs, &[]);
        let contents: Vec<_> =
            attrs.indexed("gen_ai.prompt", "content").into_iter().map(|(i, v)| (i, v.to_text().unwrap())).collect();
        assert_eq!(contents, [(0, "a".to_string()), (1, "b".to_string())]);
    }
}
