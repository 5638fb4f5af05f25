//! Redis glob patterns (`KEYS`, `SCAN MATCH`): `*`, `?`, `[abc]`, `[^a-z]`, `\x`, over bytes.
//!
//! INVARIANT: matching is iterative with one backtrack point (the last `*`), so a hostile
//! pattern costs at most O(pattern × key), never exponential time.

/// Whether `key` matches `pattern`.
pub fn matches(pattern: &[u8], key: &[u8]) -> bool {
    let (mut p, mut k) = (0, 0);
    // Where to resume after the last `*`: (pattern index after it, key index it matched up to).
    let mut star: Option<(usize, usize)> = None;
    while k < key.len() {
        if p < pattern.len() {
            if pattern[p] == b'*' {
                p += 1;
                star = Some((p, k));
                continue;
            }
            if let Some(next) = match_one(pattern, p, key[k]) {
                p = next;
                k += 1;
                continue;
            }
        }
        match star {
            Some((after, matched)) => {
                p = after;
                k = matched + 1;
                star = Some((after, matched + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// If the pattern element at `p` matches `byte`, the index after the element.
fn match_one(pattern: &[u8], p: usize, byte: u8) -> Option<usize> {
    match pattern[p] {
        b'?' => Some(p + 1),
        b'\\' if p + 1 < pattern.len() => (pattern[p + 1] == byte).then_some(p + 2),
        b'[' => match_class(pattern, p + 1, byte),
        literal => (literal == byte).then_some(p + 1),
    }
}

/// Match a `[...]` class whose body starts at `p`; the index after `]` when `byte` is in it.
fn match_class(pattern: &[u8], mut p: usize, byte: u8) -> Option<usize> {
    let negate = pattern.get(p) == Some(&b'^');
    if negate {
        p += 1;
    }
    let mut hit = false;
    loop {
        match pattern.get(p) {
            // An unterminated class ends at the pattern's end (as in Redis).
            None => break,
            Some(b']') => {
                p += 1;
                break;
            }
            Some(b'\\') if p + 1 < pattern.len() => {
                hit |= pattern[p + 1] == byte;
                p += 2;
            }
            Some(&low) if pattern.get(p + 1) == Some(&b'-') && p + 2 < pattern.len() => {
                let high = pattern[p + 2];
                let (low, high) = if low <= high { (low, high) } else { (high, low) };
                hit |= (low..=high).contains(&byte);
                p += 3;
            }
            Some(&literal) => {
                hit |= literal == byte;
                p += 1;
            }
        }
    }
    (hit != negate).then_some(p)
}

/// The literal prefix every key matching `pattern` starts with (up to its first special byte).
pub fn literal_prefix(pattern: &[u8]) -> &[u8] {
    let end = pattern.iter().position(|b| matches!(b, b'*' | b'?' | b'[' | b'\\'));
    &pattern[..end.unwrap_or(pattern.len())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_glob_cases() {
        let yes = [
            ("*", ""),
            ("*", "abc"),
            ("h?llo", "hello"),
            ("h*llo", "heeeello"),
            ("h[ae]llo", "hallo"),
            ("h[^e]llo", "hallo"),
            ("h[a-b]llo", "hbllo"),
            ("h\\*", "h*"),
            ("user:*:name", "user:42:name"),
            ("a*b*c", "aXXbYYc"),
        ];
        for (pattern, key) in yes {
            assert!(matches(pattern.as_bytes(), key.as_bytes()), "{pattern} {key}");
        }
        let no = [
            ("h?llo", "hllo"),
            ("h[ae]llo", "hillo"),
            ("h[^e]llo", "hello"),
            ("h\\*", "hx"),
            ("a*b", "aXc"),
            ("abc", "ab"),
        ];
        for (pattern, key) in no {
            assert!(!matches(pattern.as_bytes(), key.as_bytes()), "{pattern} {key}");
        }
    }

    #[test]
    fn hostile_patterns_finish_quickly() {
        let pattern = "*a".repeat(50) + "b";
        assert!(!matches(pattern.as_bytes(), &[b'a'; 5000]));
        assert_eq!(literal_prefix(b"user:*"), b"user:");
        assert_eq!(literal_prefix(b"plain"), b"plain");
    }
}
