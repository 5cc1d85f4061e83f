//! Tables and JSON for the terminal.

use clap::{Args, ValueEnum};
use serde_json::Value;

#[derive(Clone, Copy, Debug, Default, ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Json,
}

#[derive(Args, Clone, Debug)]
pub struct FormatArg {
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// Prints rows under headers, columns padded to their widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}   "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

pub fn json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("values serialize")
    );
}

pub fn str_of(v: &Value, pointer: &str) -> String {
    match v.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

pub fn short_id(id: &str) -> String {
    id.chars().take(12).collect()
}

/// One `netd monitor` event: the JSON line as it came, or a readable line.
pub fn event(line: &str, format: Format) {
    use std::io::Write;
    let text = match format {
        Format::Json => line.to_string(),
        Format::Table => match serde_json::from_str::<Value>(line) {
            Ok(v) => {
                let s = |k: &str| str_of(&v, &format!("/{k}"));
                match s("Kind").as_str() {
                    "drop" => format!(
                        "drop {} {} {} {} {} -> {} {}",
                        s("Reason"),
                        s("Direction"),
                        s("Network"),
                        s("Protocol"),
                        s("Source"),
                        s("Destination"),
                        s("Container")
                    ),
                    "lost" => format!("lost {} events (the reader fell behind)", s("Events")),
                    kind => format!(
                        "{kind} {} {} {} -> {} => {} {}",
                        s("Network"),
                        s("Protocol"),
                        s("Source"),
                        s("Destination"),
                        s("To"),
                        s("Container")
                    ),
                }
            }
            Err(_) => line.to_string(),
        },
    };
    let mut out = std::io::stdout().lock();
    // Flushed per event: the output is often a pipe, and events are few.
    let _ = writeln!(out, "{}", text.trim_end());
    let _ = out.flush();
}
