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

/// A span's attributes with its resource's as fallback.
pub struct Attrs<'s, 'a> {
    pub span: &'s [KeyValue<'a>],
    pub resource: &'s [KeyValue<'static>],
}

impl<'s, 'a> Attrs<'s, 'a> {
    /// The first attribute present under any of `names`, span before resource.
    pub fn get(&self, names: &[&str]) -> Option<&'s AttrValue<'a>> {
        for name in names {
            if let Some(kv) = self.span.iter().find(|kv| kv.key == *name)
                && kv.value != AttrValue::Empty
            {
                return Some(&kv.value);
            }
        }
        for name in names {
            if let Some(kv) = self.resource.iter().find(|kv| kv.key == *name)
                && kv.value != AttrValue::Empty
            {
                return Some(&kv.value);
            }
        }
        None
    }

    pub fn text(&self, names: &[&str]) -> Option<String> {
        self.get(names).and_then(AttrValue::to_text).filter(|s| !s.is_empty())
    }

    pub fn count(&self, names: &[&str]) -> Option<RawCount> {
        self.get(names).and_then(AttrValue::as_count)
    }

    pub fn f64(&self, names: &[&str]) -> Option<f64> {
        self.get(names).and_then(AttrValue::as_f64)
    }

    pub fn bool(&self, names: &[&str]) -> Option<bool> {
        self.get(names).and_then(AttrValue::as_bool)
    }

    /// Which of `names` is present (for messages naming the attribute that was read).
    pub fn which(&self, names: &[&'static str]) -> Option<&'static str> {
        names.iter().copied().find(|n| self.span.iter().chain(self.resource.iter()).any(|kv| kv.key == *n))
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
        let attrs = Attrs { span: &kvs, resource: &[] };
        assert_eq!(attrs.text(&["s"]).as_deref(), Some("gpt-4o"));
        assert_eq!(attrs.count(&["i"]), Some(RawCount::Int(812)));
        assert_eq!(attrs.count(&["n"]), Some(RawCount::Int(812)));
        assert_eq!(attrs.f64(&["d"]), Some(0.25));
        assert_eq!(attrs.bool(&["b"]), Some(true));
        assert_eq!(attrs.text(&["a"]).as_deref(), Some("stop"));
        assert!(matches!(attrs.get(&["m"]), Some(AttrValue::Map(m)) if m.len() == 1));
        assert_eq!(attrs.text(&["snake"]).as_deref(), Some("x"));
        assert_eq!(attrs.get(&["e"]), None);
        assert_eq!(attrs.text(&["missing", "s"]).as_deref(), Some("gpt-4o"));
    }

    #[test]
    fn indexed_attributes_come_in_index_order() {
        let text = r#"[
            {"key":"gen_ai.prompt.1.content","value":{"stringValue":"b"}},
            {"key":"gen_ai.prompt.0.content","value":{"stringValue":"a"}},
            {"key":"gen_ai.prompt.0.role","value":{"stringValue":"user"}}
        ]"#;
        let kvs: Vec<KeyValue<'_>> = serde_json::from_str(text).unwrap();
        let attrs = Attrs { span: &kvs, resource: &[] };
        let contents: Vec<_> =
            attrs.indexed("gen_ai.prompt", "content").into_iter().map(|(i, v)| (i, v.to_text().unwrap())).collect();
        assert_eq!(contents, [(0, "a".to_string()), (1, "b".to_string())]);
    }
}
