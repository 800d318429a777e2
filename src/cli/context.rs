//! What every command handler gets: global options, where the project and state file are, and the two
//! output streams.

use std::path::{Path, PathBuf};

use clap::Args;

use super::error::CliError;
use super::output::{ColorChoice, Format, Messages, Output};
use crate::config::{self, Config};
use crate::diag::read_text_file;
use crate::pricing::{OverrideError, PriceBook};
use crate::store::{OpenMode, Store};

/// Flags accepted before or after any subcommand.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// State file [default: .promptctl/state.db at the git work-tree root, or the current directory]
    #[arg(long, global = true, env = "PROMPTCTL_STATE", value_name = "PATH")]
    pub state: Option<PathBuf>,

    /// Output format on stdout
    #[arg(long, global = true, value_enum, default_value_t = Format::Human, value_name = "FORMAT")]
    pub format: Format,

    /// Print no notes on stderr (warnings and errors still show)
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,

    /// Never draw progress bars (they are also off when stderr is not a terminal, or CI=true)
    #[arg(long, global = true)]
    pub no_progress: bool,

    /// When to colour output (NO_COLOR is respected under auto)
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
}

pub struct Context {
    pub global: GlobalArgs,
    pub out: Output,
    pub msg: Messages,
    cwd: PathBuf,
    root: PathBuf,
}

impl Context {
    pub fn new(global: GlobalArgs) -> Result<Context, CliError> {
        let cwd =
            std::env::current_dir().map_err(|e| CliError::input(format!("cannot read the current directory: {e}")))?;
        let root = find_project_root(&cwd);
        Ok(Context::in_dir(global, cwd, root))
    }

    /// A context rooted at `root`, as if the command ran there (the demo runs commands in a temporary
    /// project this way).
    pub fn in_dir(global: GlobalArgs, cwd: PathBuf, root: PathBuf) -> Context {
        let out = Output::new(global.format, global.color);
        let msg = Messages::new(global.quiet, global.color);
        Context { global, out, msg, cwd, root }
    }

    /// The project root: the nearest directory upwards with `promptctl.toml`, else the git work-tree root,
    /// else the current directory. `prompts/`, `evals/` and `portfolios/` are looked for here.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn cwd(&self) -> &Path {
        &self.cwd
    }

    /// The state file path, and whether it is the default location (whose directory we may create).
    pub fn state_path(&self) -> (PathBuf, bool) {
        match &self.global.state {
            Some(path) => (self.cwd.join(path), false),
            None => (self.root.join(".promptctl").join("state.db"), true),
        }
    }

    /// Opens the state file, creating it when `mode` allows.
    pub fn open_store(&self, mode: OpenMode) -> Result<Store, CliError> {
        let (path, is_default) = self.state_path();
        Ok(Store::open(&path, mode, is_default)?)
    }

    /// `promptctl.toml` at the project root, or defaults when there is none.
    pub fn config(&self) -> Result<Config, CliError> {
        let path = self.root.join(config::FILE_NAME);
        if !path.exists() {
            return Ok(Config::default());
        }
        let shown = self.display_path(&path);
        let text = read_text_file(&path, &shown)?;
        Ok(Config::parse(&text, &shown)?)
    }

    /// The price book in force: the embedded one, plus `[pricing] overrides` from `promptctl.toml`
    /// (a path relative to that file's directory).
    pub fn price_book(&self) -> Result<std::borrow::Cow<'static, PriceBook>, CliError> {
        let config = self.config()?;
        let Some(overrides) = config.pricing.overrides else {
            return Ok(std::borrow::Cow::Borrowed(PriceBook::embedded()));
        };
        let path = self.root.join(&overrides);
        let book = PriceBook::with_overrides(&path).map_err(|e| match e {
            OverrideError::Read { .. } => CliError::input(format!("{}: {e}", config::FILE_NAME))
                .with_hint("fix `[pricing] overrides` in promptctl.toml (relative to its directory)"),
            OverrideError::Invalid(sheet) => {
                CliError::input(sheet.to_string()).with_hint("see docs/pricing.md for the override format")
            }
        })?;
        Ok(std::borrow::Cow::Owned(book))
    }

    /// A path as the user would type it: relative to the current directory when below it.
    pub fn display_path(&self, path: &Path) -> String {
        display_path(&self.cwd, path)
    }

    /// Whether progress bars may be drawn on stderr.
    pub fn progress_enabled(&self) -> bool {
        use std::io::IsTerminal;
        !self.global.quiet
            && !self.global.no_progress
            && std::env::var("CI").map_or(true, |v| v != "true" && v != "1")
            && std::io::stderr().is_terminal()
    }
}

/// `path` as shown to a user working in `cwd` (see [`Context::display_path`]); for code that runs off
/// the thread holding the context.
pub fn display_path(cwd: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(cwd).unwrap_or(path);
    let shown = rel.to_string_lossy().into_owned();
    if shown.is_empty() { ".".into() } else { shown }
}

/// Who is making a change, for label history and audit events.
pub fn actor() -> String {
    ["PROMPTCTL_ACTOR", "GIT_AUTHOR_EMAIL", "USER", "USERNAME"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.trim().is_empty()))
        .unwrap_or_else(|| "unknown".to_string())
}

fn find_project_root(cwd: &Path) -> PathBuf {
    let ancestors = || cwd.ancestors();
    if let Some(dir) = ancestors().find(|d| d.join(config::FILE_NAME).is_file()) {
        return dir.to_path_buf();
    }
    if let Some(dir) = ancestors().find(|d| d.join(".git").exists()) {
        return dir.to_path_buf();
    }
    cwd.to_path_buf()
}
