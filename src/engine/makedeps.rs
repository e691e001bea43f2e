//! The dependency file a C compiler writes with `-MD -MF FILE` (make syntax): every source
//! and header the compile read. ld's `--dependency-file` (rustc/linkdeps.rs) is read the
//! same way.

/// The prerequisites of every rule, in order, without duplicates. Handles line continuations
/// and make's escapes (`\ ` for a space, `$$` for `$`, `\#` for `#`, `\\` for `\`).
pub fn parse(text: &str) -> Vec<String> {
    let joined = text.replace("\\\r\n", " ").replace("\\\n", " ");
    let mut out: Vec<String> = Vec::new();
    for line in joined.lines() {
        let Some(colon) = rule_colon(line) else { continue };
        for word in words(&line[colon + 1..]) {
            if !out.contains(&word) {
                out.push(word);
            }
        }
    }
    out
}

/// The colon that ends a rule's targets: the first one followed by white space or the end
/// (so `C:\x` or `a:b` inside a name do not count).
fn rule_colon(line: &str) -> Option<usize> {
    let b = line.as_bytes();
    (0..b.len()).find(|&i| b[i] == b':' && (i + 1 == b.len() || b[i + 1] == b' ' || b[i + 1] == b'\t'))
}

fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if matches!(chars.peek(), Some(' ') | Some('#') | Some('\\')) => cur.push(chars.next().unwrap_or(' ')),
            '$' if chars.peek() == Some(&'$') => {
                chars.next();
                cur.push('$');
            }
            ' ' | '\t' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_gcc_output_with_continuations_and_escapes() {
        let d = "/t/out/x.o: src/a\\ b.c /usr/include/stdio.h \\\n include/c$$d.h \\\n  src/a\\ b.c\n";
        assert_eq!(parse(d), vec!["src/a b.c", "/usr/include/stdio.h", "include/c$d.h"]);
    }

    #[test]
    fn phony_rules_add_nothing_new() {
        let d = "x.o: a.c b.h\nb.h:\n";
        assert_eq!(parse(d), vec!["a.c", "b.h"]);
    }
}
