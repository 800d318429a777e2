//! Trace records as the scan reads them: promptctl JSONL (tenant, trace id, time, messages, output),
//! borrowed from the line where possible. Unknown keys are skipped without being decoded; the tenant key
//! is configurable (`[scan] tenant_field`).

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Text of a message or output: a string, `null`, or a list of content parts (`{"type":"text",
/// "text":…}` or strings). Non-text parts are ignored. The common single string is held inline, so
/// that a message costs no allocation of its own.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Content<'a> {
    first: Option<Cow<'a, str>>,
    more: Vec<Cow<'a, str>>,
}

impl<'a> Content<'a> {
    fn one(part: Cow<'a, str>) -> Content<'a> {
        Content { first: Some(part), more: Vec::new() }
    }

    fn push(&mut self, part: Cow<'a, str>) {
        if self.first.is_none() {
            self.first = Some(part);
        } else {
            self.more.push(part);
        }
    }

    fn extend(&mut self, other: Content<'a>) {
        other.into_parts().for_each(|p| self.push(p));
    }

    fn into_parts(self) -> impl Iterator<Item = Cow<'a, str>> {
        self.first.into_iter().chain(self.more)
    }

    /// The text parts, in order.
    pub fn parts(&self) -> impl Iterator<Item = &str> {
        self.first.iter().chain(self.more.iter()).map(|p| p.as_ref())
    }

    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }
}

/// One chat message.
#[derive(Debug, Clone, Deserialize)]
pub struct MessageView<'a> {
    #[serde(borrow, default)]
    pub role: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub content: Content<'a>,
}

/// The parts of a trace record the scan needs.
#[derive(Debug, Default, Clone)]
pub struct RecordView<'a> {
    pub tenant: Option<Cow<'a, str>>,
    pub trace_id: Option<Cow<'a, str>>,
    pub ts: Option<Cow<'a, str>>,
    pub prompt_name: Option<Cow<'a, str>>,
    pub messages: Vec<MessageView<'a>>,
    pub output: Content<'a>,
}

/// Parses one JSONL line into a [`RecordView`], reading the tenant from `tenant_field`.
pub struct RecordSeed<'f> {
    pub tenant_field: &'f str,
}

/// Why a line is not a record, without quoting the line (it may hold secrets).
pub fn describe_json_error(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Syntax => "invalid JSON",
        serde_json::error::Category::Eof => "truncated JSON",
        serde_json::error::Category::Data => "not a trace record object",
        serde_json::error::Category::Io => "unreadable",
    };
    format!("{what} at column {}", e.column())
}

pub fn parse_record<'a>(line: &'a str, tenant_field: &str) -> Result<RecordView<'a>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(line);
    let record = RecordSeed { tenant_field }.deserialize(&mut de)?;
    de.end()?;
    Ok(record)
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = RecordView<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(RecordVisitor { tenant_field: self.tenant_field })
    }
}

struct RecordVisitor<'f> {
    tenant_field: &'f str,
}

impl<'de> Visitor<'de> for RecordVisitor<'_> {
    type Value = RecordView<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a trace record object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut record = RecordView::default();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == self.tenant_field {
                record.tenant = map.next_value::<Scalar<'de>>()?.0;
                continue;
            }
            match key.as_ref() {
                "trace_id" => record.trace_id = map.next_value::<Scalar<'de>>()?.0,
                "ts" | "timestamp" => record.ts = map.next_value::<Scalar<'de>>()?.0,
                "prompt" => {
                    if let Some(name) = map.next_value::<PromptRef<'de>>()?.0 {
                        record.prompt_name = Some(name);
                    }
                }
                "prompt_name" => record.prompt_name = map.next_value::<Scalar<'de>>()?.0,
                "messages" => {
                    record.messages = map.next_value::<Option<Vec<MessageView<'de>>>>()?.unwrap_or_default();
                }
                "output" => record.output = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(record)
    }
}

/// A string or number (tenant ids are sometimes numeric), or null.
struct Scalar<'a>(Option<Cow<'a, str>>);

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or number")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Scalar(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Scalar(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Scalar(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Scalar(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Scalar(None))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// `"prompt": {"name": …, "version": …}` or `"prompt": "name"`.
struct PromptRef<'a>(Option<Cow<'a, str>>);

impl<'de> Deserialize<'de> for PromptRef<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PromptRef<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a prompt name or {name, version}")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(PromptRef(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(PromptRef(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(PromptRef(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut name = None;
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    if key == "name" {
                        name = map.next_value::<Scalar<'de>>()?.0;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(PromptRef(name))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Content<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ContentVisitor)
    }
}

struct ContentVisitor;

impl<'de> Visitor<'de> for ContentVisitor {
    type Value = Content<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("message content: a string, null or a list of parts")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Content::one(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Content::one(Cow::Owned(v.to_string())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Content::one(Cow::Owned(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Content::default())
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Content::default())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Content::default())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Content::default())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Content::default())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Content::default())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut parts = Content::default();
        while let Some(part) = seq.next_element::<Content<'de>>()? {
            parts.extend(part);
        }
        Ok(parts)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut parts = Content::default();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if matches!(key.as_ref(), "text" | "content") {
                parts.extend(map.next_value::<Content<'de>>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fields_and_tolerates_unknown_keys() {
        let line = r#"{"ts":"2026-10-01T12:00:00Z","tenant_id":"acme","trace_id":"t1","x":{"deep":[1,2]},"prompt":{"name":"support-reply","version":"3f"},"messages":[{"role":"system","content":"sys"},{"role":"user","content":[{"type":"text","text":"hi \"there\""},{"type":"image_url","image_url":{"url":"u"}}]},{"role":"assistant","content":null,"tool_calls":[]}],"output":"ok"}"#;
        let r = parse_record(line, "tenant_id").unwrap();
        assert_eq!(r.tenant.as_deref(), Some("acme"));
        assert_eq!(r.prompt_name.as_deref(), Some("support-reply"));
        assert_eq!(r.messages.len(), 3);
        assert_eq!(r.messages[1].content.parts().collect::<Vec<_>>(), vec!["hi \"there\""]);
        assert!(r.messages[2].content.is_empty());
        assert_eq!(r.output.parts().collect::<Vec<_>>(), vec!["ok"]);
    }

    #[test]
    fn empty_records_and_custom_tenant_fields() {
        let r = parse_record(r#"{"org": 42}"#, "org").unwrap();
        assert_eq!(r.tenant.as_deref(), Some("42"));
        assert!(r.messages.is_empty());
        let r = parse_record(r#"{"messages": []}"#, "tenant_id").unwrap();
        assert!(r.tenant.is_none());
    }

    #[test]
    fn errors_do_not_quote_the_line() {
        let e = parse_record(r#"{"tenant_id": "acme", "messages": "sk-secret"}"#, "tenant_id").unwrap_err();
        let msg = describe_json_error(&e);
        assert!(!msg.contains("sk-secret"), "{msg}");
        let e = parse_record("not json", "tenant_id").unwrap_err();
        assert!(describe_json_error(&e).starts_with("invalid JSON"));
        assert!(parse_record("[1,2]", "tenant_id").is_err());
    }
}
