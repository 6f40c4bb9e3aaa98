//! Maps configuration fields to lines of the file and back, so every problem an operator sees
//! names the field and the line (`gateway[1].srtp`, line 23).

use std::ops::Range;

use toml_edit::{ImDocument, Item, Table};

/// A parsed document kept only for its spans.
pub(crate) struct Locator<'s> {
    src: &'s str,
    doc: Option<ImDocument<&'s str>>,
}

/// One step of a field path.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Seg<'a> {
    /// A key in a table.
    Key(&'a str),
    /// An index in an array of tables or an array.
    Index(usize),
}

impl<'s> Locator<'s> {
    pub(crate) fn new(src: &'s str) -> Self {
        Self {
            src,
            doc: ImDocument::parse(src).ok(),
        }
    }

    /// 1-based line of a byte offset.
    pub(crate) fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.src.len());
        self.src.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    /// The line where the field at `path` is written, if it is written at all; else the line of
    /// the deepest table on the path that is.
    pub(crate) fn line_of_path(&self, path: &[Seg]) -> Option<usize> {
        let doc = self.doc.as_ref()?;
        let mut node = Node::Table(doc.as_table());
        let mut best: Option<Range<usize>> = None;
        for seg in path {
            let (span, next) = match (seg, node) {
                (Seg::Key(k), Node::Table(t)) => match t.get_key_value(k) {
                    Some((key, item)) => (key.span(), Node::of_item(item)),
                    None => break,
                },
                (Seg::Index(i), Node::Array(a)) => match a.get(*i) {
                    Some(t) => (t.span(), Node::Table(t)),
                    None => break,
                },
                _ => break,
            };
            if span.is_some() {
                best = span;
            }
            node = next;
        }
        best.map(|r| self.line_of(r.start))
    }

    /// The dotted path of the field written at or just before `offset`.
    pub(crate) fn path_at(&self, offset: usize) -> Option<String> {
        let doc = self.doc.as_ref()?;
        let mut found: Option<(usize, String)> = None;
        walk_table(doc.as_table(), String::new(), offset, &mut found);
        found.map(|(_, p)| p)
    }
}

/// Where a path walk stands.
#[derive(Clone, Copy)]
enum Node<'a> {
    Table(&'a Table),
    Array(&'a toml_edit::ArrayOfTables),
    Leaf,
}

impl<'a> Node<'a> {
    fn of_item(item: &'a Item) -> Self {
        match item {
            Item::Table(t) => Node::Table(t),
            Item::ArrayOfTables(a) => Node::Array(a),
            _ => Node::Leaf,
        }
    }
}

fn consider(
    span: Option<Range<usize>>,
    path: &str,
    offset: usize,
    found: &mut Option<(usize, String)>,
) {
    if let Some(r) = span {
        if r.start <= offset && found.as_ref().is_none_or(|(s, _)| r.start >= *s) {
            *found = Some((r.start, path.to_string()));
        }
    }
}

fn walk_table(t: &Table, prefix: String, offset: usize, found: &mut Option<(usize, String)>) {
    consider(t.span(), &prefix, offset, found);
    for (k, item) in t.iter() {
        let path = if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        };
        if let Some((key, _)) = t.get_key_value(k) {
            consider(key.span(), &path, offset, found);
        }
        match item {
            Item::Table(sub) => walk_table(sub, path, offset, found),
            Item::ArrayOfTables(arr) => {
                for (i, sub) in arr.iter().enumerate() {
                    walk_table(sub, format!("{path}[{i}]"), offset, found);
                }
            }
            Item::Value(v) => consider(v.span(), &path, offset, found),
            Item::None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "[node]\nname = \"a\"\n\n[[gateway]]\nname = \"gw1\"\nsrtp = \"x\"\n\n[[gateway]]\nname = \"gw2\"\nsrtp = \"y\"\n";

    #[test]
    fn finds_lines_of_paths() {
        let l = Locator::new(SRC);
        assert_eq!(
            l.line_of_path(&[Seg::Key("node"), Seg::Key("name")]),
            Some(2)
        );
        assert_eq!(
            l.line_of_path(&[Seg::Key("gateway"), Seg::Index(1), Seg::Key("srtp")]),
            Some(10)
        );
        // A field that is not written falls back to its table's header.
        assert_eq!(
            l.line_of_path(&[Seg::Key("gateway"), Seg::Index(1), Seg::Key("identity")]),
            Some(8)
        );
    }

    #[test]
    fn finds_path_at_offset() {
        let l = Locator::new(SRC);
        let off = SRC.find("\"y\"").unwrap();
        assert_eq!(l.path_at(off).as_deref(), Some("gateway[1].srtp"));
        assert_eq!(l.line_of(off), 10);
    }
}
