//! The template body: role markers, variables from the template AST, strict rendering into messages.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use minijinja::{Environment, ErrorKind, UndefinedBehavior};
use regex::Regex;

use crate::diag::InputError;
use crate::trace::model::Message;

/// Roles a message may have.
pub const ROLES: &[&str] = &["system", "developer", "user", "assistant"];

/// Marks where a message starts in the rendered text. A control character cannot come from a role marker
/// line and is vanishingly rare in prompt text, so splitting on it is unambiguous.
const SENTINEL: char = '\u{1e}';

/// Names the template may use that are not variables: minijinja's globals and the examples list.
const NOT_VARIABLES: &[&str] = &["examples", "range", "dict", "namespace", "debug", "loop", "self", "super"];

static MARKER_LINE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[ \t]*:::[ \t]*([A-Za-z_]+)[ \t]*$").unwrap());
static ROLE_TAG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"\{%-?\s*role\s+["']([A-Za-z_]+)["']\s*-?%\}"#).unwrap());
static SPLIT: LazyLock<Regex> = LazyLock::new(|| Regex::new("\u{1e}ROLE:([a-z]+)\u{1e}").unwrap());

/// A compiled template body.
pub struct Template {
    env: Environment<'static>,
    body_line: usize,
    path: String,
}

impl Template {
    /// Compiles `body` (which starts at line `body_line` of `path`).
    pub fn compile(body: &str, path: &str, body_line: usize) -> Result<Template, InputError> {
        let source = replace_role_markers(body, path, body_line)?;
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        env.add_template_owned("body", source).map_err(|e| template_error(path, body_line, &e))?;
        Ok(Template { env, body_line, path: path.to_string() })
    }

    /// Variables the template reads, from its AST (loop variables and `set` targets excluded).
    pub fn variables(&self) -> BTreeSet<String> {
        let template = self.env.get_template("body").expect("compiled in Template::compile");
        template.undeclared_variables(false).into_iter().filter(|v| !NOT_VARIABLES.contains(&v.as_str())).collect()
    }

    /// Renders strictly: printing or iterating an undefined variable is an error naming it, while
    /// `{% if optional_var %}` reads an undefined variable as false (that is how optional input is written).
    pub fn render(&self, context: &serde_json::Value) -> Result<Vec<Message>, InputError> {
        self.render_with(context, UndefinedBehavior::SemiStrict)
    }

    /// Renders with undefined variables as empty text: the fixed part of the prompt, for token counts.
    pub fn render_fixed_part(&self, context: &serde_json::Value) -> Result<Vec<Message>, InputError> {
        self.render_with(context, UndefinedBehavior::Lenient)
    }

    fn render_with(
        &self,
        context: &serde_json::Value,
        behavior: UndefinedBehavior,
    ) -> Result<Vec<Message>, InputError> {
        let mut env = self.env.clone();
        env.set_undefined_behavior(behavior);
        let template = env.get_template("body").expect("compiled in Template::compile");
        let text = template
            .render(minijinja::Value::from(minijinja::value::Serde(context)))
            .map_err(|e| self.render_error(&e, context))?;
        split_messages(&text, &self.path)
    }

    fn render_error(&self, error: &minijinja::Error, context: &serde_json::Value) -> InputError {
        if error.kind() != ErrorKind::UndefinedError {
            return template_error(&self.path, self.body_line, error);
        }
        let named = undefined_name(error).map(str::to_string).or_else(|| {
            // Older messages do not name the value: fall back to the first variable the context lacks.
            self.variables().into_iter().find(|v| context.get(v).is_none())
        });
        let message = match named {
            Some(name) => format!("undefined variable `{name}`"),
            None => "undefined value in the template".to_string(),
        };
        let e = InputError::new(&self.path, message).with_hint(
            "pass it with --var NAME=VALUE or --vars FILE, or give it a default: {{ name | default(\"…\") }}",
        );
        self.position(error, e)
    }

    /// Maps a template error's position to the `.prompt` file.
    fn position(&self, error: &minijinja::Error, e: InputError) -> InputError {
        let source = self.env.get_template("body").map(|t| t.source().to_string()).unwrap_or_default();
        match (error.line(), error.range()) {
            (Some(line), Some(range)) => {
                let (_, column) = crate::diag::line_col(&source, range.start);
                e.at(self.body_line + line - 1, column)
            }
            (Some(line), None) => e.at_line(self.body_line + line - 1),
            _ => e,
        }
    }
}

/// minijinja's detail reads "`product` is undefined".
fn undefined_name(error: &minijinja::Error) -> Option<&str> {
    let detail = error.detail()?;
    let rest = detail.strip_prefix('`')?;
    let (name, tail) = rest.split_once('`')?;
    tail.contains("undefined").then_some(name)
}

/// Replaces `::: role` lines and `{% role "x" %}` tags with sentinels, keeping line numbers intact.
fn replace_role_markers(body: &str, path: &str, body_line: usize) -> Result<String, InputError> {
    let mut out = String::with_capacity(body.len() + 64);
    for (index, line) in body.split_inclusive('\n').enumerate() {
        let content = line.trim_end_matches(['\n', '\r']);
        let ending = &line[content.len()..];
        let line_no = body_line + index;
        if let Some(caps) = MARKER_LINE.captures(content) {
            out.push_str(&sentinel(&caps[1], path, line_no, content.find(':').unwrap_or(0) + 1)?);
            out.push_str(ending);
            continue;
        }
        let mut last = 0;
        for caps in ROLE_TAG.captures_iter(content) {
            let whole = caps.get(0).expect("group 0 always matches");
            out.push_str(&content[last..whole.start()]);
            out.push_str(&sentinel(&caps[1], path, line_no, whole.start() + 1)?);
            last = whole.end();
        }
        out.push_str(&content[last..]);
        out.push_str(ending);
    }
    Ok(out)
}

fn sentinel(role: &str, path: &str, line: usize, column: usize) -> Result<String, InputError> {
    if !ROLES.contains(&role) {
        let mut e =
            InputError::new(path, format!("unknown role `{role}` (valid: {})", ROLES.join(", "))).at(line, column);
        if let Some(near) = crate::suggest::nearest(role, ROLES.iter().copied()) {
            e = e.with_hint(format!("did you mean `{near}`?"));
        }
        return Err(e);
    }
    Ok(format!("{SENTINEL}ROLE:{role}{SENTINEL}"))
}

/// Splits rendered text at role sentinels. Each message's text is trimmed: the marker's own line break and
/// the blank lines block tags leave behind are not content. Without any marker the text is one user
/// message.
fn split_messages(text: &str, path: &str) -> Result<Vec<Message>, InputError> {
    let mut markers = SPLIT.captures_iter(text).peekable();
    let Some(first) = markers.peek() else {
        return Ok(vec![Message { role: "user".into(), content: text.trim().to_string() }]);
    };
    let first_start = first.get(0).expect("group 0").start();
    if !text[..first_start].trim().is_empty() {
        return Err(InputError::new(path, "text before the first role marker")
            .with_hint("start the template with a role line such as `::: system`"));
    }
    let mut messages = Vec::new();
    let all: Vec<_> = markers.collect();
    for (i, caps) in all.iter().enumerate() {
        let end = all.get(i + 1).map_or(text.len(), |next| next.get(0).expect("group 0").start());
        let start = caps.get(0).expect("group 0").end();
        messages.push(Message { role: caps[1].to_string(), content: text[start..end].trim().to_string() });
    }
    Ok(messages)
}

fn template_error(path: &str, body_line: usize, error: &minijinja::Error) -> InputError {
    let message = match error.detail() {
        Some(detail) => format!("invalid template: {detail}"),
        None => format!("invalid template: {}", error.kind()),
    };
    let e = InputError::new(path, message);
    match error.line() {
        Some(line) => e.at_line(body_line + line - 1),
        None => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BODY: &str = "::: system\nYou are a support agent for {{ product }}. Reply in a {{ tone | default(\"friendly\") }} tone.\n{% for ex in examples %}\n::: user\n{{ ex.input }}\n::: assistant\n{{ ex.output }}\n{% endfor %}\n::: user\n{{ message }}\n";

    #[test]
    fn variables_come_from_the_ast() {
        let t = Template::compile(BODY, "p.prompt", 9).unwrap();
        let vars: Vec<_> = t.variables().into_iter().collect();
        assert_eq!(vars, ["message", "product", "tone"]);
    }

    #[test]
    fn renders_messages_including_examples() {
        let t = Template::compile(BODY, "p.prompt", 9).unwrap();
        let ctx = json!({"product": "Acme", "message": "Where is my order?",
            "examples": [{"input": "Hi", "output": "Hello!"}]});
        let msgs = t.render(&ctx).unwrap();
        let roles: Vec<_> = msgs.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "user"]);
        assert_eq!(msgs[0].content, "You are a support agent for Acme. Reply in a friendly tone.");
        assert_eq!(msgs[3].content, "Where is my order?");
    }

    #[test]
    fn undefined_variable_is_named_with_its_line() {
        let t = Template::compile(BODY, "p.prompt", 9).unwrap();
        let e = t.render(&json!({"message": "x", "examples": []})).unwrap_err();
        assert_eq!(e.message, "undefined variable `product`");
        assert_eq!((e.line, e.column), (Some(10), Some(32)));
    }

    #[test]
    fn optional_variables_can_be_tested_but_not_printed_when_missing() {
        let t = Template::compile(
            "::: user\n{% if order_id %}Order #{{ order_id }}\n{% endif %}{{ message }}\n",
            "p.prompt",
            5,
        )
        .unwrap();
        assert_eq!(t.render(&json!({"message": "hi"})).unwrap()[0].content, "hi");
        assert_eq!(t.render(&json!({"message": "hi", "order_id": 7})).unwrap()[0].content, "Order #7\nhi");
        assert!(t.render(&json!({"order_id": 7})).is_err());
    }

    #[test]
    fn role_tags_are_accepted_too() {
        let t = Template::compile("{% role \"system\" %}\nBe brief.\n{% role \"user\" %}\n{{ q }}\n", "p.prompt", 5)
            .unwrap();
        let msgs = t.render(&json!({"q": "why?"})).unwrap();
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[1].content, "why?");
    }

    #[test]
    fn unknown_roles_and_syntax_errors_are_located() {
        let e = Template::compile("::: sytem\nhi\n", "p.prompt", 5).err().unwrap();
        assert_eq!(e.line, Some(5));
        assert_eq!(e.hint.as_deref(), Some("did you mean `system`?"));
        let e = Template::compile("::: user\n{{ oops \n", "p.prompt", 5).err().unwrap();
        assert!(e.line.is_some_and(|l| l >= 6), "{e:?}");
    }

    #[test]
    fn fixed_part_renders_without_variables() {
        let t = Template::compile(BODY, "p.prompt", 9).unwrap();
        let msgs = t.render_fixed_part(&json!({"examples": []})).unwrap();
        assert_eq!(msgs[0].content, "You are a support agent for . Reply in a friendly tone.");
    }
}
