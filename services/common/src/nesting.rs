//! Bounds on how deeply untrusted text nests, checked before a recursive parser sees it.
//!
//! Recursive-descent parsers (async-graphql's PEG parser among them) recurse once per level of
//! `{`, `[` or `(`: a 3 KB document nested 2,000 deep overflows a worker's stack, and a stack
//! overflow aborts the whole process, not only the request. serde_json stops at 128 levels on
//! its own; GraphQL text has no such guard, so it is scanned here first, in one linear pass
//! that needs no stack of its own.

/// Deepest nesting of `{`, `[` and `(` a GraphQL document may have. Selection sets, list and
/// object values, arguments and variable definitions all count, so it sits well above any
/// real operation (GraphiQL's introspection query included) and far below what overflows
/// a 2 MiB worker stack in a debug build.
pub const MAX_GRAPHQL_NESTING: usize = 64;

/// The text nests deeper than allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the document nests selections or values deeper than {max} levels")]
pub struct TooDeep {
    /// The limit that was crossed.
    pub max: usize,
    /// Byte offset of the bracket that crossed it.
    pub offset: usize,
}

/// Checks that `text`, read as GraphQL, never nests brackets deeper than `max`. Brackets inside
/// strings, block strings and comments do not count; unbalanced text passes (the parser
/// reports it), since only depth can hurt the parser.
pub fn check_graphql(text: &str, max: usize) -> Result<(), TooDeep> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                // A block string ends at the first `"""` not escaped as `\"""`.
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    i += if bytes[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 3;
                continue;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && !matches!(bytes[i], b'"' | b'\n' | b'\r') {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > max {
                    return Err(TooDeep { max, offset: i });
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(open: &str, close: &str, n: usize) -> String {
        format!(
            "{{ order(id: {}1{}) {{ id }} }}",
            open.repeat(n),
            close.repeat(n)
        )
    }

    #[test]
    fn counts_selections_lists_objects_and_arguments() {
        assert!(check_graphql("{ a { b { c } } }", 3).is_ok());
        assert_eq!(
            check_graphql("{ a { b { c } } }", 2),
            Err(TooDeep { max: 2, offset: 8 })
        );
        assert!(check_graphql(&nested("[", "]", 2000), 64).is_err());
        assert!(check_graphql(&nested("{a:", "}", 2000), 64).is_err());
        assert!(check_graphql(&nested("[", "]", 60), 64).is_ok());
        let default = format!(
            "query($v: [[Int]] = {}1{}) {{ a }}",
            "[".repeat(100),
            "]".repeat(100)
        );
        assert!(
            check_graphql(&default, 64).is_err(),
            "variable defaults too"
        );
    }

    #[test]
    fn brackets_in_strings_and_comments_do_not_count() {
        let deep = "[".repeat(100);
        for text in [
            format!("{{ a(s: \"{deep}\") }}"),
            format!("{{ a(s: \"\\\"{deep}\") }}"),
            format!("{{ a(s: \"\"\"{deep} \\\"\"\" {deep}\"\"\") }}"),
            format!("# {deep}\n{{ a }}"),
        ] {
            assert!(check_graphql(&text, 3).is_ok(), "{text}");
        }
        let after = format!("{{ a(s: \"x\") {} }}", "[".repeat(10));
        assert!(
            check_graphql(&after, 3).is_err(),
            "counting resumes after a string"
        );
    }

    #[test]
    fn unterminated_strings_and_stray_closers_end_quietly() {
        for text in ["\"", "\"\"\"", "\"\\", "}}}]])", "#", "{ \"\"\" \\\"\"\""] {
            assert!(check_graphql(text, 1).is_ok(), "{text}");
        }
    }
}
