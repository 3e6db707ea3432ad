//! The core crate's modules depend downward only: no module imports (through `crate::` or
//! `super::` paths) one that imports it back, directly or around a circle. A module and its
//! own submodules are one unit here (a parent re-exports its children; a child may use its
//! parent's items). Fails with the circles found.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every module of `shared/src` by path (`a::b`), with its source (unit tests cut off).
fn modules() -> BTreeMap<String, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/src");
    let mut found = BTreeMap::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(&root).unwrap().with_extension("");
            let mut parts: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
                parts.pop();
            }
            let source = std::fs::read_to_string(&path).unwrap();
            let source = match source.find("#[cfg(test)]\nmod tests") {
                Some(at) => source[..at].to_owned(),
                None => source,
            };
            found.insert(parts.join("::"), source);
        }
    }
    found
}

/// The longest module named by `path` (`a::b::Item` → `a::b` when that is a module).
fn resolve(modules: &BTreeMap<String, String>, path: &[&str]) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|candidate| modules.contains_key(candidate))
}

fn related(a: &str, b: &str) -> bool {
    a == b || a.starts_with(&format!("{b}::")) || b.starts_with(&format!("{a}::")) || b.is_empty()
}

/// The modules each module's `crate::` and `super::` paths name (braced lists expanded).
fn edges(modules: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph = BTreeMap::new();
    for (module, source) in modules {
        let is_mod_file = modules
            .keys()
            .any(|m| m.starts_with(&format!("{module}::")));
        let base: Vec<&str> = module.split("::").filter(|s| !s.is_empty()).collect();
        let mut out = BTreeSet::new();
        for (prefix, anchor) in [
            ("crate::", Vec::new()),
            ("super::", {
                // `super` of `a/b.rs` is `a`; of `a/b/mod.rs` (module a::b) it is `a` too.
                let _ = is_mod_file;
                base[..base.len().saturating_sub(1)].to_vec()
            }),
        ] {
            let mut rest = source.as_str();
            while let Some(at) = rest.find(prefix) {
                // Not part of a longer identifier (`my_crate::`).
                let before = rest[..at].chars().last();
                rest = &rest[at + prefix.len()..];
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                let end = rest
                    .find(|c: char| {
                        !(c.is_alphanumeric()
                            || c == '_'
                            || c == ':'
                            || c == '{'
                            || c == '}'
                            || c == ','
                            || c == ' '
                            || c == '\n'
                            || c == '*')
                    })
                    .unwrap_or(rest.len());
                let text = &rest[..end];
                let (head, braced) = match text.find('{') {
                    Some(open) => (
                        &text[..open],
                        text[open + 1..].split('}').next().unwrap_or(""),
                    ),
                    None => (text.split([' ', '\n', ',', '}']).next().unwrap_or(""), ""),
                };
                let head = head.trim_end_matches(':');
                let mut targets = vec![head.to_owned()];
                for item in braced.split(',') {
                    let item = item.trim().split([' ', ':']).next().unwrap_or("");
                    if !item.is_empty() && item != "self" {
                        targets.push(format!("{head}::{item}"));
                    }
                }
                for target in targets {
                    let mut path: Vec<&str> = anchor.clone();
                    path.extend(target.split("::").filter(|s| !s.is_empty()));
                    if let Some(found) = resolve(modules, &path) {
                        if !related(module, &found) {
                            out.insert(found);
                        }
                    }
                }
            }
        }
        graph.insert(module.clone(), out);
    }
    graph
}

/// Strongly connected components of more than one module (Tarjan).
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on: BTreeSet<&'g str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on.insert(v);
        for w in &s.graph[v] {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                component.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !state.index.contains_key(v.as_str()) {
            visit(&mut state, v);
        }
    }
    state.found
}

#[test]
fn core_modules_depend_downward_only() {
    let modules = modules();
    assert!(modules.len() > 40, "read {} modules", modules.len());
    let graph = edges(&modules);
    // The reader sees real imports (a known edge), so an empty answer means something.
    assert!(
        graph["invitations::send"].contains("tenants"),
        "{:?}",
        graph["invitations::send"]
    );
    assert!(
        graph["auth::refresh"].contains("auth::service"),
        "{:?}",
        graph["auth::refresh"]
    );
    let found = circles(&graph);
    assert!(
        found.is_empty(),
        "import circles among shared/src modules: {found:#?}"
    );
}

#[test]
fn the_reader_finds_a_circle_when_there_is_one() {
    let mut modules = BTreeMap::new();
    modules.insert("a".to_owned(), "use crate::b::Thing;".to_owned());
    modules.insert("b".to_owned(), "use crate::c::{x, y};".to_owned());
    modules.insert("c".to_owned(), "fn f() { super::a::go() }".to_owned());
    modules.insert("d".to_owned(), "use crate::a;".to_owned());
    let found = circles(&edges(&modules));
    assert_eq!(
        found,
        vec![vec!["a".to_owned(), "b".to_owned(), "c".to_owned()]]
    );
}
