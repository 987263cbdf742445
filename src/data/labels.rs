//! Labels files: one `<file> <class>` pair per line.

use std::collections::HashMap;
use std::path::Path;

use super::DataError;

/// A labels file larger than this is refused (a million lines of ~60 bytes).
pub const MAX_LABELS_BYTES: u64 = 64 << 20;

/// Class index per file name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Labels {
    by_file: HashMap<String, usize>,
}

impl Labels {
    /// Reads a labels file. `classes` maps label tokens to output indices (the token's
    /// position); without it the token must be the index itself.
    pub fn read(path: &Path, classes: Option<&[String]>) -> Result<Labels, DataError> {
        let text = crate::util::fs::read_input_text(path, MAX_LABELS_BYTES).map_err(|e| {
            DataError::File {
                path: path.display().to_string(),
                reason: e.to_string(),
            }
        })?;
        Labels::parse(&text, classes).map_err(|reason| DataError::File {
            path: path.display().to_string(),
            reason,
        })
    }

    /// Parses the text of a labels file (see `read`).
    pub fn parse(text: &str, classes: Option<&[String]>) -> Result<Labels, String> {
        let mut by_file = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (Some(file), Some(token), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(format!(
                    "line {}: expected `<file> <class>`, found `{line}`",
                    i + 1
                ));
            };
            let class = match classes {
                Some(c) => c.iter().position(|t| t == token).ok_or_else(|| {
                    format!("line {}: class `{token}` is not one of the configured classes {:?}", i + 1, c)
                })?,
                None => token
                    .parse::<usize>()
                    .map_err(|_| format!("line {}: class `{token}` is not an index (set evaluation.classes to map names)", i + 1))?,
            };
            by_file.insert(file.to_string(), class);
        }
        Ok(Labels { by_file })
    }

    /// The class of a file (matched by file name).
    pub fn get(&self, file: &str) -> Option<usize> {
        self.by_file.get(file).copied()
    }

    pub fn len(&self) -> usize {
        self.by_file.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_file.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_tokens_through_classes() {
        let classes = vec!["0".to_string(), "180".to_string()];
        let l = Labels::parse("a.png 0\nb.png 180\n\n", Some(&classes)).unwrap();
        assert_eq!(
            (l.get("a.png"), l.get("b.png"), l.len()),
            (Some(0), Some(1), 2)
        );
        assert!(
            Labels::parse("a.png 90", Some(&classes))
                .unwrap_err()
                .contains("line 1")
        );
        assert!(Labels::parse("a.png", None).is_err());
        assert_eq!(Labels::parse("x 3", None).unwrap().get("x"), Some(3));
    }
}
