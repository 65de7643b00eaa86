//! The input box: a multi-line [`TextArea`], the lines sent before (Up/Down), and Tab
//! completion that cycles through candidates.

use ratatui_textarea::{CursorMove, TextArea, WrapMode};

/// Sent lines remembered for Up/Down.
const MAX_HISTORY: usize = 200;

/// The input box's state.
#[derive(Debug)]
pub struct Input {
    /// The editor.
    pub area: TextArea<'static>,
    /// Lines sent, oldest first.
    history: Vec<String>,
    /// Where Up/Down is in `history`, and the text typed before browsing it.
    browsing: Option<(usize, Vec<String>)>,
    /// The completion being cycled: the word's start column, the candidates, and the
    /// one shown.
    completing: Option<Completion>,
}

#[derive(Debug, Clone)]
struct Completion {
    row: usize,
    start: usize,
    candidates: Vec<String>,
    shown: usize,
}

impl Default for Input {
    fn default() -> Self {
        Self {
            area: editor(Vec::new()),
            history: Vec::new(),
            browsing: None,
            completing: None,
        }
    }
}

fn editor(lines: Vec<String>) -> TextArea<'static> {
    let mut area = TextArea::new(lines);
    area.set_wrap_mode(WrapMode::WordOrGlyph);
    area.set_cursor_line_style(ratatui::style::Style::default());
    area.move_cursor(CursorMove::Bottom);
    area.move_cursor(CursorMove::End);
    area
}

impl Input {
    /// The text, lines joined by line breaks.
    pub fn text(&self) -> String {
        self.area.lines().join("\n")
    }

    /// Whether nothing (but blanks) is typed.
    pub fn is_empty(&self) -> bool {
        self.area.lines().iter().all(|l| l.trim().is_empty())
    }

    /// Lines in the box.
    pub fn line_count(&self) -> usize {
        self.area.lines().len()
    }

    /// Takes the text out, leaving the box empty.
    pub fn take(&mut self) -> Vec<String> {
        self.browsing = None;
        self.completing = None;
        let lines = self.area.lines().to_vec();
        self.area = editor(Vec::new());
        if lines.iter().all(String::is_empty) {
            Vec::new()
        } else {
            lines
        }
    }

    /// Replaces the text (cursor at its end).
    pub fn set(&mut self, lines: Vec<String>) {
        self.area = editor(lines);
        self.completing = None;
    }

    /// Remembers a sent line for Up/Down.
    pub fn remember(&mut self, line: String) {
        if self.history.last() != Some(&line) {
            if self.history.len() == MAX_HISTORY {
                self.history.remove(0);
            }
            self.history.push(line);
        }
        self.browsing = None;
    }

    /// Whether the cursor is on the first (`up`) or last line, where Up/Down leave
    /// the text for the history.
    pub fn at_edge(&self, up: bool) -> bool {
        let ratatui_textarea::DataCursor(row, _) = self.area.cursor();
        if up {
            row == 0
        } else {
            row + 1 == self.line_count()
        }
    }

    /// Up: the line sent before the one shown.
    pub fn older(&mut self) {
        let at = match &self.browsing {
            Some((at, _)) => *at,
            None => self.history.len(),
        };
        if at == 0 {
            return;
        }
        if self.browsing.is_none() {
            let typed = self.area.lines().to_vec();
            self.browsing = Some((at, typed));
        }
        let line = self.history[at - 1].clone();
        let typed = self.browsing.take().map(|(_, t)| t).unwrap_or_default();
        self.set(line.split('\n').map(str::to_string).collect());
        self.browsing = Some((at - 1, typed));
    }

    /// Down: the line sent after the one shown, then what was typed.
    pub fn newer(&mut self) {
        let Some((at, typed)) = self.browsing.take() else {
            return;
        };
        if at + 1 < self.history.len() {
            let line = self.history[at + 1].clone();
            self.set(line.split('\n').map(str::to_string).collect());
            self.browsing = Some((at + 1, typed));
        } else {
            self.set(typed);
        }
    }

    /// Any edit ends browsing the history and cycling completions.
    pub fn edited(&mut self) {
        self.browsing = None;
        self.completing = None;
    }

    /// Tab: completes the word before the cursor with the first of `candidates` that
    /// starts with it (case-insensitively); Tab again shows the next. `candidates`
    /// gives the words for a word starting at `start` of a line `row`.
    pub fn complete(&mut self, candidates: impl FnOnce(usize, usize, &str) -> Vec<String>) {
        let ratatui_textarea::DataCursor(row, col) = self.area.cursor();
        if let Some(c) = self.completing.as_mut().filter(|c| c.row == row) {
            c.shown = (c.shown + 1) % c.candidates.len();
            let (start, word) = (c.start, c.candidates[c.shown].clone());
            self.replace_word(row, start, col, &word);
            return;
        }
        let line: Vec<char> = self.area.lines()[row].chars().collect();
        let start = line[..col]
            .iter()
            .rposition(|c| c.is_whitespace())
            .map_or(0, |p| p + 1);
        let prefix: String = line[start..col].iter().collect();
        if prefix.is_empty() {
            return;
        }
        let found = candidates(row, start, &prefix);
        let Some(first) = found.first().cloned() else {
            return;
        };
        self.replace_word(row, start, col, &first);
        self.completing = Some(Completion {
            row,
            start,
            candidates: found,
            shown: 0,
        });
    }

    /// Replaces columns `start..end` of line `row` by `word` (cursor after it).
    fn replace_word(&mut self, row: usize, start: usize, end: usize, word: &str) {
        let mut lines = self.area.lines().to_vec();
        let line: Vec<char> = lines[row].chars().collect();
        let before: String = line[..start].iter().collect();
        let after: String = line[end.min(line.len())..].iter().collect();
        lines[row] = format!("{before}{word}{after}");
        self.area = editor(lines);
        self.area.move_cursor(CursorMove::Jump(
            row as u16,
            (start + word.chars().count()) as u16,
        ));
    }
}
