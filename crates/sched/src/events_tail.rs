//! Following a worker's `events.jsonl` from the outside: under Slurm a worker runs on another node
//! and appends its events to its run folder on the shared filesystem instead of a pipe; the
//! scheduler reads what was added since its last read. A line is taken only once it is complete
//! (ends in a newline), so a read racing a write never sees half an event.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use oodlab_protocol::Event;

/// The unread part of one events file.
#[derive(Debug)]
pub struct EventTail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl EventTail {
    pub fn new(path: PathBuf) -> EventTail {
        EventTail { path, offset: 0, partial: Vec::new() }
    }

    /// The complete lines added since the last call, parsed; a line that is not an event is an
    /// error with the line. A file that does not exist yet has no events.
    pub fn read_new(&mut self) -> std::io::Result<Vec<Result<Event, String>>> {
        let mut file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        if file.metadata()?.len() < self.offset {
            // Truncated: a new attempt of the run started its file afresh.
            self.offset = 0;
            self.partial.clear();
        }
        file.seek(SeekFrom::Start(self.offset))?;
        let mut added = Vec::new();
        file.read_to_end(&mut added)?;
        self.offset += added.len() as u64;
        self.partial.extend_from_slice(&added);
        let Some(last_newline) = self.partial.iter().rposition(|&b| b == b'\n') else { return Ok(Vec::new()) };
        let complete: Vec<u8> = self.partial.drain(..=last_newline).collect();
        Ok(String::from_utf8_lossy(&complete)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| Event::parse_line(l).map_err(|e| format!("{e}: {l}")))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn complete_lines_only_in_order_across_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let mut tail = EventTail::new(path.clone());
        assert!(tail.read_new().unwrap().is_empty(), "no file yet");
        let a = Event::Metric { name: "a".into(), value: 1.0 }.to_line();
        let b = Event::Metric { name: "b".into(), value: 2.0 }.to_line();
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path).unwrap();
        // A whole line and half of the next.
        write!(f, "{a}\n{}", &b[..5]).unwrap();
        f.flush().unwrap();
        let got = tail.read_new().unwrap();
        assert_eq!(got.len(), 1);
        assert!(matches!(&got[0], Ok(Event::Metric { name, .. }) if name == "a"));
        // The rest of the line, and a line that is not an event.
        write!(f, "{}\nnot json\n", &b[5..]).unwrap();
        f.flush().unwrap();
        let got = tail.read_new().unwrap();
        assert_eq!(got.len(), 2);
        assert!(matches!(&got[0], Ok(Event::Metric { name, value }) if name == "b" && *value == 2.0));
        assert!(got[1].as_ref().unwrap_err().contains("not json"));
        assert!(tail.read_new().unwrap().is_empty(), "nothing new");
        // A new attempt truncates the file: read from its start.
        std::fs::write(&path, format!("{a}\n")).unwrap();
        assert_eq!(tail.read_new().unwrap().len(), 1);
    }
}
