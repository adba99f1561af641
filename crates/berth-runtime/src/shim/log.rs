//! The json-file log driver's format, as Docker writes it: one JSON object per line,
//! `{"log":"<line>\n","stream":"stdout","time":"<RFC 3339 nanos>"}`, split at newlines (a partial
//! line is flushed at 16 KiB or when the stream ends), rotated by size into `<log>.1 … <log>.N-1`.
//!
//! Written by berth-shim only; it must never block the container: a failed write is reported to
//! the caller, which keeps draining the pipes.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Which stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
    fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }
}

/// A partial line longer than this is written as it is (Docker's buffer size).
const MAX_PARTIAL: usize = 16 * 1024;

/// A json-file log with size-based rotation.
#[derive(Debug)]
pub struct JsonLog {
    path: PathBuf,
    file: File,
    size: u64,
    /// Rotate when the file would grow past this many bytes; 0: never.
    max_size: u64,
    /// How many files to keep in all, the current one included (at least 1).
    max_files: u32,
    partial: [Vec<u8>; 2],
}

impl JsonLog {
    /// Opens (appends to) the log at `path`.
    pub fn open(path: &Path, max_size: u64, max_files: u32) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            max_files: max_files.max(1),
            partial: [Vec::new(), Vec::new()],
        })
    }

    /// Logs a chunk read from the container.
    pub fn write(&mut self, stream: Stream, mut data: &[u8]) -> io::Result<()> {
        while let Some(nl) = data.iter().position(|b| *b == b'\n') {
            let (line, rest) = data.split_at(nl + 1);
            let mut buf = std::mem::take(&mut self.partial[stream.index()]);
            buf.extend_from_slice(line);
            self.emit(stream, &buf)?;
            data = rest;
        }
        let p = &mut self.partial[stream.index()];
        p.extend_from_slice(data);
        if p.len() >= MAX_PARTIAL {
            let buf = std::mem::take(p);
            self.emit(stream, &buf)?;
        }
        Ok(())
    }

    /// Writes out what is left of unterminated lines (at the end of the streams).
    pub fn flush_partial(&mut self) -> io::Result<()> {
        for s in [Stream::Stdout, Stream::Stderr] {
            let buf = std::mem::take(&mut self.partial[s.index()]);
            if !buf.is_empty() {
                self.emit(s, &buf)?;
            }
        }
        Ok(())
    }

    fn emit(&mut self, stream: Stream, line: &[u8]) -> io::Result<()> {
        let mut rec = Vec::with_capacity(line.len() + 80);
        rec.extend_from_slice(b"{\"log\":");
        // Go's encoder (Docker's) replaces invalid UTF-8 with U+FFFD; so does from_utf8_lossy.
        serde_json::to_writer(&mut rec, &String::from_utf8_lossy(line))?;
        rec.extend_from_slice(b",\"stream\":\"");
        rec.extend_from_slice(stream.name().as_bytes());
        rec.extend_from_slice(b"\",\"time\":\"");
        rec.extend_from_slice(crate::container::rfc3339_now().as_bytes());
        rec.extend_from_slice(b"\"}\n");
        if self.max_size > 0 && self.size > 0 && self.size + rec.len() as u64 > self.max_size {
            self.rotate()?;
        }
        self.file.write_all(&rec)?;
        self.size += rec.len() as u64;
        Ok(())
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    }

    fn rotate(&mut self) -> io::Result<()> {
        if self.max_files <= 1 {
            // Keep one file: start it over.
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        let _ = std::fs::remove_file(self.rotated(self.max_files - 1));
        for n in (1..self.max_files - 1).rev() {
            let _ = std::fs::rename(self.rotated(n), self.rotated(n + 1));
        }
        std::fs::rename(&self.path, self.rotated(1))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(p: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn splits_lines_keeps_streams_apart_and_flushes_partials() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.log");
        let mut log = JsonLog::open(&p, 0, 1).unwrap();
        log.write(Stream::Stdout, b"hel").unwrap();
        log.write(Stream::Stderr, b"oops\n").unwrap();
        log.write(Stream::Stdout, b"lo\nwor").unwrap();
        log.write(Stream::Stdout, b"ld \xff\n\"q\"").unwrap();
        log.flush_partial().unwrap();
        let l = lines(&p);
        let got: Vec<(&str, &str)> = l
            .iter()
            .map(|v| (v["stream"].as_str().unwrap(), v["log"].as_str().unwrap()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("stderr", "oops\n"),
                ("stdout", "hello\n"),
                ("stdout", "world \u{fffd}\n"),
                ("stdout", "\"q\""),
            ]
        );
        assert!(l[0]["time"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn rotates_by_size_keeping_max_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.log");
        let mut log = JsonLog::open(&p, 300, 3).unwrap();
        for i in 0..40 {
            log.write(Stream::Stdout, format!("line {i}\n").as_bytes())
                .unwrap();
        }
        assert!(
            p.exists() && d.path().join("c.log.1").exists() && d.path().join("c.log.2").exists()
        );
        assert!(!d.path().join("c.log.3").exists());
        for f in ["c.log", "c.log.1", "c.log.2"] {
            assert!(
                std::fs::metadata(d.path().join(f)).unwrap().len() <= 300,
                "{f}"
            );
        }
        let last = lines(&p);
        assert_eq!(last.last().unwrap()["log"], "line 39\n");
    }

    #[test]
    fn a_long_partial_line_is_written_at_the_buffer_size() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.log");
        let mut log = JsonLog::open(&p, 0, 1).unwrap();
        log.write(Stream::Stdout, &vec![b'x'; MAX_PARTIAL + 10])
            .unwrap();
        assert_eq!(lines(&p).len(), 1);
    }
}
