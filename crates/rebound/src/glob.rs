//! Include and exclude patterns: the glob syntax of the configuration (README,
//! "Configuration"), matched against a protected file's relative path
//! (docs/design.md sections 7 and 10).
//!
//! The syntax is the one rebound has always read (globset's, with `*` and `?`
//! never matching `/` and `\` escaping): `?` one character but `/`; `*` any run of
//! characters without `/`; `**` as a whole component: at the start (`**/x`: `x` in
//! any directory, the root included), at the end (`x/**`: everything below `x`),
//! in the middle (`x/**/y`: zero or more directories between), or alone (every
//! path); `**` anywhere else counts as `*`; `[ab]`, `[a-z]`, `[!ab]` or `[^ab]`
//! one character of (or not of) a class (a negated class can match `/`; `]` first
//! and `-` first or last are literal; no escapes inside a class); `{a,b}` either
//! pattern (nested braces allowed, empty alternatives dropped); `\c` the character
//! `c`. Rejected: an unclosed `[` or `{`, a `}` without `{`, a range running
//! backwards (`[z-a]`), a trailing `\`, braces nested over [`MAX_NESTING`] deep, a
//! pattern over [`MAX_PATTERN`] bytes.
//!
//! Own code instead of globset (which rebound used before): globset compiles every
//! pattern to a regular expression, and its regex engine was about 430 KB of the
//! binary's 2.7 MB of code, for patterns that are mostly `**`, `dir/**` and a few
//! names (docs/performance.md, "Footprint"). The grammar and the matching are
//! globset's; the tests check them against globset (a dev-dependency) on generated
//! patterns and paths. One deliberate difference: `?` and a class match one
//! *character*, where globset matched one byte (so `?` never matched `é`, two bytes
//! in UTF-8); for ASCII text the two are the same.
//!
//! Matching is a Thompson automaton run breadth-first (time linear in the path's
//! length times the pattern's, whatever the path holds: file names are not trusted),
//! after quick tests that settle the common patterns without it: `**`, a literal
//! path, `dir/**`, and the literal text a path must start and end with.

use std::fmt;

/// Why a pattern is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GlobError {
    /// `[` without its `]`.
    UnclosedClass,
    /// A range like `z-a` in a class.
    InvalidRange(char, char),
    /// `}` without `{`.
    UnopenedAlternates,
    /// `{` without `}`.
    UnclosedAlternates,
    /// `\` at the end of the pattern.
    DanglingEscape,
    /// Braces nested deeper than [`MAX_NESTING`].
    TooDeep,
    /// A pattern longer than [`MAX_PATTERN`] bytes.
    TooLong,
}

/// Deepest nesting of `{...}`: the compiled form is built and dropped recursively,
/// and no real pattern nests more than a few levels (globset 0.4.22 set the same
/// bound; 0.4.21 overflowed the stack).
pub const MAX_NESTING: usize = 100;

/// Longest pattern, in bytes: 4 times a path's longest (4096 bytes), room for a
/// long list of names in `{...}`; it bounds the compiled automaton (about 40 bytes a
/// character) and the work per path matched.
pub const MAX_PATTERN: usize = 16 * 1024;

impl fmt::Display for GlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GlobError::UnclosedClass => f.write_str("unclosed character class: `[` without `]`"),
            GlobError::InvalidRange(a, b) => {
                write!(f, "invalid range `{a}-{b}` in a character class")
            }
            GlobError::UnopenedAlternates => f.write_str("`}` without a `{` before it"),
            GlobError::UnclosedAlternates => f.write_str("unclosed alternatives: `{` without `}`"),
            GlobError::DanglingEscape => {
                f.write_str("a `\\` at the end escapes nothing (write `\\\\` for a backslash)")
            }
            GlobError::TooDeep => write!(f, "`{{...}}` nested more than {MAX_NESTING} deep"),
            GlobError::TooLong => write!(
                f,
                "longer than {MAX_PATTERN} bytes: split it into several patterns"
            ),
        }
    }
}

/// A pattern as parsed (globset's tokens).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(char),
    /// `?`
    Any,
    /// `*`
    Star,
    /// `**/` at the start: `(/?|.*/)`.
    RecursivePrefix,
    /// `/**` at the end: `/.*`.
    RecursiveSuffix,
    /// `/**/` inside: `(/|/.*/)`.
    RecursiveMiddle,
    Class(Class),
    Alt(Vec<Vec<Tok>>),
}

/// `[...]`: one character of (or, negated, not of) the ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Class {
    negated: bool,
    ranges: Vec<(char, char)>,
}

impl Class {
    fn accepts(&self, c: char) -> bool {
        self.ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != self.negated
    }
}

/// The character of a literal token.
fn lit(t: &Tok) -> Option<char> {
    match t {
        Tok::Lit(c) => Some(*c),
        _ => None,
    }
}

struct Parser<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    prev: Option<char>,
    cur: Option<char>,
    /// Where each open `{` started in `branches`.
    alt_stack: Vec<usize>,
    /// The branches being parsed; tokens go to the last one.
    branches: Vec<Vec<Tok>>,
}

impl Parser<'_> {
    fn bump(&mut self) -> Option<char> {
        self.prev = self.cur;
        self.cur = self.chars.next();
        self.cur
    }

    fn peek(&mut self) -> Option<char> {
        self.chars.peek().copied()
    }

    fn push(&mut self, t: Tok) {
        // `branches` is never empty: it starts with one and a `}` only takes away
        // the branches its `{` added.
        if let Some(b) = self.branches.last_mut() {
            b.push(t);
        }
    }

    fn parse(mut self) -> Result<Vec<Tok>, GlobError> {
        while let Some(c) = self.bump() {
            match c {
                '?' => self.push(Tok::Any),
                '*' => self.star(),
                '[' => self.class()?,
                '{' => {
                    if self.alt_stack.len() >= MAX_NESTING {
                        return Err(GlobError::TooDeep);
                    }
                    self.alt_stack.push(self.branches.len());
                    self.branches.push(Vec::new());
                }
                '}' => {
                    let start = self.alt_stack.pop().ok_or(GlobError::UnopenedAlternates)?;
                    let alts: Vec<Vec<Tok>> = self.branches.drain(start..).collect();
                    self.push(Tok::Alt(alts));
                }
                ',' if !self.alt_stack.is_empty() => self.branches.push(Vec::new()),
                '\\' => {
                    let c = self.bump().ok_or(GlobError::DanglingEscape)?;
                    self.push(Tok::Lit(c));
                }
                c => self.push(Tok::Lit(c)),
            }
        }
        if self.branches.len() > 1 {
            return Err(GlobError::UnclosedAlternates);
        }
        Ok(self.branches.pop().unwrap_or_default())
    }

    /// After a `*`: one `*`, or `**` as a whole component (or as two `*`).
    fn star(&mut self) {
        let prev = self.prev;
        if self.peek() != Some('*') {
            self.push(Tok::Star);
            return;
        }
        self.bump();
        let have_tokens = self.branches.last().is_some_and(|b| !b.is_empty());
        if !have_tokens {
            if self.peek().is_some_and(|c| c != '/') {
                self.push(Tok::Star);
                self.push(Tok::Star);
            } else {
                self.push(Tok::RecursivePrefix);
                self.bump();
            }
            return;
        }
        if prev != Some('/')
            && (self.branches.len() <= 1 || (prev != Some(',') && prev != Some('{')))
        {
            self.push(Tok::Star);
            self.push(Tok::Star);
            return;
        }
        let is_suffix = match self.peek() {
            None => {
                self.bump();
                true
            }
            Some(',' | '}') if self.branches.len() >= 2 => true,
            Some('/') => {
                self.bump();
                false
            }
            Some(_) => {
                self.push(Tok::Star);
                self.push(Tok::Star);
                return;
            }
        };
        let last = self.branches.last_mut().and_then(Vec::pop);
        self.push(match last {
            Some(Tok::RecursivePrefix) => Tok::RecursivePrefix,
            Some(Tok::RecursiveSuffix) => Tok::RecursiveSuffix,
            _ if is_suffix => Tok::RecursiveSuffix,
            _ => Tok::RecursiveMiddle,
        });
    }

    /// After a `[`: the class up to its `]`.
    fn class(&mut self) -> Result<(), GlobError> {
        let negated = matches!(self.peek(), Some('!' | '^'));
        if negated {
            self.bump();
        }
        let mut ranges: Vec<(char, char)> = Vec::new();
        let mut first = true;
        let mut in_range = false;
        loop {
            let c = self.bump().ok_or(GlobError::UnclosedClass)?;
            match c {
                ']' if !first => break,
                '-' if first => ranges.push(('-', '-')),
                '-' if !in_range => in_range = true,
                c => {
                    match ranges.last_mut() {
                        Some(r) if in_range => {
                            if c < r.0 {
                                return Err(GlobError::InvalidRange(r.0, c));
                            }
                            r.1 = c;
                        }
                        _ => ranges.push((c, c)),
                    }
                    in_range = false;
                }
            }
            first = false;
        }
        if in_range {
            ranges.push(('-', '-'));
        }
        self.push(Tok::Class(Class { negated, ranges }));
        Ok(())
    }
}

/// What one step of the automaton reads.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pred {
    Lit(char),
    /// Any character but `/`.
    NotSlash,
    /// Any character.
    Any,
    Class(Class),
}

impl Pred {
    fn accepts(&self, c: char) -> bool {
        match self {
            Pred::Lit(l) => *l == c,
            Pred::NotSlash => c != '/',
            Pred::Any => true,
            Pred::Class(class) => class.accepts(c),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Inst {
    /// Read one character the predicate accepts, go on at the next instruction.
    Char(Pred),
    /// Go on at both.
    Split(usize, usize),
    Jump(usize),
    Match,
}

/// The program of one pattern.
#[derive(Debug, Clone, Default)]
struct Prog(Vec<Inst>);

impl Prog {
    fn here(&self) -> usize {
        self.0.len()
    }

    /// `pred*`
    fn repeat(&mut self, pred: Pred) {
        let start = self.here();
        self.0.push(Inst::Split(start + 1, 0));
        self.0.push(Inst::Char(pred));
        self.0.push(Inst::Jump(start));
        let end = self.here();
        self.0[start] = Inst::Split(start + 1, end);
    }

    /// `(body)?`
    fn optional(&mut self, body: impl FnOnce(&mut Prog)) {
        let start = self.here();
        self.0.push(Inst::Split(start + 1, 0));
        body(self);
        let end = self.here();
        self.0[start] = Inst::Split(start + 1, end);
    }

    fn seq(&mut self, toks: &[Tok]) {
        for t in toks {
            match t {
                Tok::Lit(c) => self.0.push(Inst::Char(Pred::Lit(*c))),
                Tok::Any => self.0.push(Inst::Char(Pred::NotSlash)),
                Tok::Star => self.repeat(Pred::NotSlash),
                Tok::Class(class) => self.0.push(Inst::Char(Pred::Class(class.clone()))),
                // `(/?|.*/)` is `(.*/)?`: `/` alone is `.*/` with nothing before it.
                Tok::RecursivePrefix => self.optional(|p| {
                    p.repeat(Pred::Any);
                    p.0.push(Inst::Char(Pred::Lit('/')));
                }),
                Tok::RecursiveSuffix => {
                    self.0.push(Inst::Char(Pred::Lit('/')));
                    self.repeat(Pred::Any);
                }
                // `(/|/.*/)` is `/(.*/)?`.
                Tok::RecursiveMiddle => {
                    self.0.push(Inst::Char(Pred::Lit('/')));
                    self.optional(|p| {
                        p.repeat(Pred::Any);
                        p.0.push(Inst::Char(Pred::Lit('/')));
                    });
                }
                Tok::Alt(branches) => {
                    // An empty alternative matches nothing here (globset drops it);
                    // with none left the braces match the empty text.
                    let alts: Vec<&Vec<Tok>> = branches.iter().filter(|b| !void(b)).collect();
                    let mut jumps = Vec::new();
                    for (i, b) in alts.iter().enumerate() {
                        if i + 1 < alts.len() {
                            let split = self.here();
                            self.0.push(Inst::Split(split + 1, 0));
                            self.seq(b);
                            jumps.push(self.here());
                            self.0.push(Inst::Jump(0));
                            let next = self.here();
                            self.0[split] = Inst::Split(split + 1, next);
                        } else {
                            self.seq(b);
                        }
                    }
                    let end = self.here();
                    for j in jumps {
                        self.0[j] = Inst::Jump(end);
                    }
                }
            }
        }
    }

    /// Whether the whole of `text` is accepted: the automaton's states advanced one
    /// character at a time, each state at most once per step.
    fn accepts(&self, text: &str) -> bool {
        let n = self.0.len();
        let mut cur: Vec<usize> = Vec::with_capacity(n);
        let mut next: Vec<usize> = Vec::with_capacity(n);
        // The step in which each instruction was last added (0: never).
        let mut seen: Vec<usize> = vec![0; n];
        let mut stack: Vec<usize> = Vec::new();
        let mut step = 1;
        self.add(0, step, &mut cur, &mut seen, &mut stack);
        for c in text.chars() {
            if cur.is_empty() {
                return false;
            }
            step += 1;
            next.clear();
            for &pc in &cur {
                if let Some(Inst::Char(p)) = self.0.get(pc) {
                    if p.accepts(c) {
                        self.add(pc + 1, step, &mut next, &mut seen, &mut stack);
                    }
                }
            }
            std::mem::swap(&mut cur, &mut next);
        }
        cur.iter()
            .any(|&pc| matches!(self.0.get(pc), Some(Inst::Match)))
    }

    /// Adds `pc` and every state reached from it without reading.
    fn add(
        &self,
        pc: usize,
        step: usize,
        list: &mut Vec<usize>,
        seen: &mut [usize],
        stack: &mut Vec<usize>,
    ) {
        stack.push(pc);
        while let Some(pc) = stack.pop() {
            match seen.get_mut(pc) {
                Some(s) if *s != step => *s = step,
                _ => continue,
            }
            match self.0.get(pc) {
                Some(Inst::Split(a, b)) => {
                    stack.push(*b);
                    stack.push(*a);
                }
                Some(Inst::Jump(a)) => stack.push(*a),
                Some(_) => list.push(pc),
                None => {}
            }
        }
    }
}

/// How a pattern is matched.
#[derive(Debug, Clone)]
enum Matcher {
    /// `**`: every path.
    All,
    /// No glob syntax: exactly this path.
    Exact(String),
    /// `dir/**`: every path starting with this text (`dir/`).
    Below(String),
    /// Anything else: the literal text a match starts and ends with (quick
    /// refusals), then the automaton.
    Prog {
        prefix: String,
        suffix: String,
        prog: Prog,
    },
}

/// One compiled pattern.
#[derive(Debug, Clone)]
pub struct Glob(Matcher);

/// Whether a branch compiles to nothing at all (no tokens, or only braces whose
/// alternatives all do): globset leaves such an alternative out.
fn void(toks: &[Tok]) -> bool {
    toks.iter().all(|t| match t {
        Tok::Alt(bs) => bs.iter().all(|b| void(b)),
        _ => false,
    })
}

/// The text of a pattern made of literal tokens only.
fn literal(toks: &[Tok]) -> Option<String> {
    toks.iter().map(lit).collect()
}

impl Glob {
    /// Parses and compiles `pattern`.
    pub fn new(pattern: &str) -> Result<Glob, GlobError> {
        if pattern.len() > MAX_PATTERN {
            return Err(GlobError::TooLong);
        }
        let toks = Parser {
            chars: pattern.chars().peekable(),
            prev: None,
            cur: None,
            alt_stack: Vec::new(),
            branches: vec![Vec::new()],
        }
        .parse()?;
        let matcher = if toks == [Tok::RecursivePrefix] {
            Matcher::All
        } else if let Some(s) = literal(&toks) {
            Matcher::Exact(s)
        } else if let Some((Tok::RecursiveSuffix, head)) = toks.split_last() {
            match literal(head) {
                Some(mut s) => {
                    s.push('/');
                    Matcher::Below(s)
                }
                None => Matcher::prog(&toks),
            }
        } else {
            Matcher::prog(&toks)
        };
        Ok(Glob(matcher))
    }

    /// Whether `path` (relative, `/`-separated) matches the whole pattern.
    pub fn is_match(&self, path: &str) -> bool {
        match &self.0 {
            Matcher::All => true,
            Matcher::Exact(s) => path == s,
            Matcher::Below(s) => path.starts_with(s.as_str()),
            Matcher::Prog {
                prefix,
                suffix,
                prog,
            } => {
                path.len() >= prefix.len() + suffix.len()
                    && path.starts_with(prefix.as_str())
                    && path.ends_with(suffix.as_str())
                    && prog.accepts(path)
            }
        }
    }
}

impl Matcher {
    fn prog(toks: &[Tok]) -> Matcher {
        let prefix: String = toks.iter().map_while(lit).collect();
        let mut suffix: Vec<char> = toks.iter().rev().map_while(lit).collect();
        suffix.reverse();
        let mut prog = Prog::default();
        prog.seq(toks);
        prog.0.push(Inst::Match);
        Matcher::Prog {
            prefix,
            suffix: suffix.into_iter().collect(),
            prog,
        }
    }
}

/// Several patterns: a path matches the set if it matches any of them.
#[derive(Debug, Clone)]
pub struct GlobSet(Vec<Glob>);

impl From<Vec<Glob>> for GlobSet {
    fn from(globs: Vec<Glob>) -> GlobSet {
        GlobSet(globs)
    }
}

impl GlobSet {
    /// Whether any pattern matches `path`.
    pub fn is_match(&self, path: &str) -> bool {
        self.0.iter().any(|g| g.is_match(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(p: &str, path: &str) -> bool {
        Glob::new(p).unwrap().is_match(path)
    }

    /// globset as rebound configured it before this module replaced it.
    fn reference(p: &str) -> Result<globset::GlobMatcher, globset::Error> {
        Ok(globset::GlobBuilder::new(p)
            .literal_separator(true)
            .backslash_escape(true)
            .build()?
            .compile_matcher())
    }

    #[test]
    fn the_patterns_of_the_documentation_and_examples() {
        assert!(m("**", "a"));
        assert!(m("**", "a/b/c"));
        assert!(m("app/**", "app/x"));
        assert!(m("app/**", "app/x/y"));
        assert!(!m("app/**", "app"));
        assert!(!m("app/**", "apps/x"));
        assert!(m("apn_cfg.json", "apn_cfg.json"));
        assert!(!m("apn_cfg.json", "x/apn_cfg.json"));
        assert!(m("*.conf", "a.conf"));
        assert!(!m("*.conf", "d/a.conf"));
        assert!(m("**/*.conf", "a.conf"));
        assert!(m("**/*.conf", "d/e/a.conf"));
        assert!(!m("**/*.conf", "d/e/a.confx"));
        assert!(m("certs/*.pem", "certs/a.pem"));
        assert!(!m("certs/*.pem", "certs/x/a.pem"));
        assert!(m("a/**/b", "a/b"));
        assert!(m("a/**/b", "a/x/y/b"));
        assert!(!m("a/**/b", "ab"));
        assert!(m("{a,b}/c", "b/c"));
        assert!(m("[a-c]?", "bz"));
        assert!(!m("[!a-c]?", "bz"));
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "a"));
        assert!(m("a**b", "axyb"));
        assert!(!m("a**b", "a/b"));
    }

    #[test]
    fn bad_patterns_are_refused_with_what_is_wrong() {
        assert_eq!(Glob::new("[ab").unwrap_err(), GlobError::UnclosedClass);
        assert_eq!(
            Glob::new("[z-a]").unwrap_err(),
            GlobError::InvalidRange('z', 'a')
        );
        assert_eq!(Glob::new("a}").unwrap_err(), GlobError::UnopenedAlternates);
        assert_eq!(
            Glob::new("{a,b").unwrap_err(),
            GlobError::UnclosedAlternates
        );
        assert_eq!(Glob::new("a\\").unwrap_err(), GlobError::DanglingEscape);
        // Bounds: an error, not a stack overflow or a huge automaton.
        let deep = format!(
            "{}a{}",
            "{".repeat(MAX_NESTING + 1),
            "}".repeat(MAX_NESTING + 1)
        );
        assert_eq!(Glob::new(&deep).unwrap_err(), GlobError::TooDeep);
        let ok = format!("{}a{}", "{".repeat(MAX_NESTING), "}".repeat(MAX_NESTING));
        assert!(m(&ok, "a"));
        assert_eq!(
            Glob::new(&"{a,".repeat(5_000)).unwrap_err(),
            GlobError::TooDeep
        );
        assert_eq!(
            Glob::new(&"a".repeat(MAX_PATTERN + 1)).unwrap_err(),
            GlobError::TooLong
        );
        let long = format!(
            "{{{}}}",
            (0..2000)
                .map(|i| format!("f{i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert!(long.len() <= MAX_PATTERN && m(&long, "f1999") && !m(&long, "f2000"));
    }

    #[test]
    fn characters_not_bytes() {
        // The documented difference from globset.
        assert!(m("?", "é"));
        assert!(m("[é]x", "éx"));
        assert!(m("[!a]", "é"));
        assert!(!reference("?").unwrap().is_match("é"));
        // Not a difference: beyond `?` and classes, text is text.
        for (p, path) in [
            ("**", "a\nb"),
            ("d/**", "d/a\nb"),
            ("*é*", "xéy"),
            ("**/é", "a/é"),
        ] {
            assert!(m(p, path));
            assert!(reference(p).unwrap().is_match(path));
        }
    }

    #[test]
    fn a_hostile_path_against_a_hostile_pattern_is_linear() {
        // A backtracking matcher takes exponential time here.
        let p = "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b";
        let path = "a".repeat(4000);
        assert!(!m(p, &path));
        let p = "{**/a,a/**,*a*}{**/a,a/**,*a*}{**/a,a/**,*a*}b";
        let path = "a/".repeat(2000);
        assert!(!m(p, &path));
    }

    /// Pattern text built from the pieces that matter to the grammar.
    fn pattern() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("a"),
            Just("b"),
            Just("."),
            Just("/"),
            Just("*"),
            Just("**"),
            Just("?"),
            Just("["),
            Just("]"),
            Just("!"),
            Just("^"),
            Just("-"),
            Just("{"),
            Just("}"),
            Just(","),
            Just("\\"),
            Just("[a-c]"),
            Just("[!b]"),
            Just("{a,b/c}"),
            Just("**/"),
            Just("/**"),
            Just("/**/"),
        ];
        proptest::collection::vec(piece, 0..8).prop_map(|v| v.concat())
    }

    fn path() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("a"),
            Just("b"),
            Just("c"),
            Just("."),
            Just("/"),
            Just("-"),
            Just("*"),
            Just("["),
            Just("]"),
            Just("{"),
            Just(","),
            Just("\\"),
            Just("^"),
            Just("\n"),
        ];
        proptest::collection::vec(piece, 1..10).prop_map(|v| v.concat())
    }

    proptest! {
        // globset builds a regular expression per pattern, slowly in the test profile.
        #![proptest_config(ProptestConfig::with_cases(4_000))]

        /// Same patterns accepted and refused as globset, and the same paths matched
        /// (ASCII text: the documented difference aside).
        #[test]
        fn matches_exactly_what_globset_matched(p in pattern(), paths in proptest::collection::vec(path(), 1..6)) {
            match (Glob::new(&p), reference(&p)) {
                (Ok(ours), Ok(theirs)) => {
                    for path in &paths {
                        prop_assert_eq!(ours.is_match(path), theirs.is_match(path), "pattern {:?} path {:?}", p, path);
                    }
                }
                (Err(_), Err(_)) => {}
                (ours, theirs) => prop_assert!(false, "pattern {:?}: ours {:?}, globset {:?}", p, ours.map(|_| ()), theirs.map(|_| ())),
            }
        }

        /// Paths built to match: a pattern's own literal pieces in its shape.
        #[test]
        fn matching_paths_agree_too(dirs in proptest::collection::vec("[abc.]{1,3}", 0..4), name in "[abc.]{1,4}") {
            let path = dirs.iter().map(String::as_str).chain([name.as_str()]).collect::<Vec<_>>().join("/");
            for p in ["**", "**/*", "*", "a/**", "**/a", "**/*.a", "a/**/b", "*/*", "{a,b}/**", "[a-b]*/**/?", "**/{a,b.c}", "a*/**"] {
                let ours = Glob::new(p).unwrap();
                let theirs = reference(p).unwrap();
                prop_assert_eq!(ours.is_match(&path), theirs.is_match(&path), "pattern {:?} path {:?}", p, path);
            }
        }
    }
}
