//! stdout carries data only; stderr carries messages. This module owns both.

use std::io::{self, IsTerminal, Write};

use clap::ValueEnum;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
    Jsonl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// ANSI styles, applied only when colour is on.
#[derive(Debug, Clone, Copy)]
pub enum Style {
    Bold,
    Dim,
    Red,
    Green,
    Yellow,
    Cyan,
}

impl Style {
    fn code(self) -> &'static str {
        match self {
            Style::Bold => "1",
            Style::Dim => "2",
            Style::Red => "31",
            Style::Green => "32",
            Style::Yellow => "33",
            Style::Cyan => "36",
        }
    }
}

/// Whether to colour a stream: `--color`, then NO_COLOR, then TERM=dumb, then whether it is a terminal.
pub fn use_color(choice: ColorChoice, is_terminal: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            is_terminal
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::env::var("TERM").map_or(true, |t| t != "dumb")
        }
    }
}

/// Standard output, buffered, in the format the user asked for.
pub struct Output {
    pub format: Format,
    pub color: bool,
    out: io::BufWriter<io::Stdout>,
}

impl Output {
    pub fn new(format: Format, color: ColorChoice) -> Self {
        let stdout = io::stdout();
        let color = use_color(color, stdout.is_terminal());
        Output { format, color, out: io::BufWriter::new(stdout) }
    }

    pub fn is_human(&self) -> bool {
        self.format == Format::Human
    }

    /// Prints one JSON document: pretty for `json`, one line for `jsonl`.
    pub fn document<T: Serialize>(&mut self, value: &T) -> io::Result<()> {
        match self.format {
            Format::Jsonl => serde_json::to_writer(&mut self.out, value)?,
            _ => serde_json::to_writer_pretty(&mut self.out, value)?,
        }
        self.out.write_all(b"\n")
    }

    /// Prints one JSON record on its own line (for streams of records).
    pub fn record<T: Serialize>(&mut self, value: &T) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, value)?;
        self.out.write_all(b"\n")
    }

    pub fn line(&mut self, text: &str) -> io::Result<()> {
        self.out.write_all(text.as_bytes())?;
        self.out.write_all(b"\n")
    }

    pub fn text(&mut self, text: &str) -> io::Result<()> {
        self.out.write_all(text.as_bytes())
    }

    pub fn paint(&self, style: Style, text: &str) -> String {
        paint(self.color, style, text)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

pub fn paint(color: bool, style: Style, text: &str) -> String {
    if color { format!("\x1b[{}m{text}\x1b[0m", style.code()) } else { text.to_string() }
}

/// Standard error: notes, warnings and errors for people; silent notes under `--quiet`.
pub struct Messages {
    pub quiet: bool,
    pub color: bool,
}

impl Messages {
    pub fn new(quiet: bool, color: ColorChoice) -> Self {
        Messages { quiet, color: use_color(color, io::stderr().is_terminal()) }
    }

    /// Something the user may want to know; suppressed by `--quiet`.
    pub fn note(&self, text: &str) {
        if !self.quiet {
            eprintln!("{text}");
        }
    }

    /// Something that changes how to read the result; shown even with `--quiet`.
    pub fn warn(&self, text: &str) {
        eprintln!("{} {text}", paint(self.color, Style::Yellow, "warning:"));
    }

    pub fn error(&self, message: &str, hints: &[String]) {
        eprintln!("{} {message}", paint(self.color, Style::Red, "error:"));
        for hint in hints {
            eprintln!("  {} {hint}", paint(self.color, Style::Cyan, "hint:"));
        }
    }
}

/// A table's text without the padding comfy-table leaves at line ends.
pub fn table_text(table: &comfy_table::Table) -> String {
    table.lines().map(|l| l.trim_end().to_string()).collect::<Vec<_>>().join("\n")
}

/// A table in the house style: no outer borders, header underlined, fits the terminal when there is one.
pub fn table(header: &[&str], color: bool) -> comfy_table::Table {
    let mut table = comfy_table::Table::new();
    table.load_style(comfy_table::presets::NOTHING);
    table.set_header(header.iter().map(|h| comfy_table::Cell::new(h).add_attribute(comfy_table::Attribute::Bold)));
    if !color || !io::stdout().is_terminal() {
        table.force_no_tty();
    }
    table
}
