//! The library's modules import one another without a circle: a module that a newcomer reads
//! first never needs one that needs it back. Each file of `src/` is a module; an edge is any
//! path it names (`use` trees, `crate::…`, `super::…`, and `use child::…`) outside comments and
//! its `#[cfg(test)]` module. The same check as `cargo modules dependencies --lib --acyclic`,
//! without building that tool.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path (`controller::cache::pod_cache`, `` for the crate root) -> its file's text.
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
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
            let relative = path.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            match parts.last().map(String::as_str) {
                Some("lib") if parts.len() == 1 => parts.clear(),
                Some("main") if parts.len() == 1 => continue, // the binary, not the library
                Some("mod") => {
                    parts.pop();
                }
                // Unit tests kept in a file of their own are test code.
                Some("tests") if parts.len() > 1 => continue,
                _ => {}
            }
            found.insert(parts.join("::"), std::fs::read_to_string(&path).unwrap());
        }
    }
    found
}

/// The text without comments and without the `#[cfg(test)]` module.
fn code_of(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod tests"))
        {
            break; // the test module is the file's last item, by convention
        }
        let code = match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// Every path of a `use` tree: `a::{b, c::{d, e}}` -> `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<String> {
    let tree: String = without_renames(tree)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let Some(open) = tree.find('{') else {
        return vec![tree];
    };
    let close = tree
        .rfind('}')
        .filter(|close| *close > open)
        .unwrap_or(tree.len());
    let prefix = &tree[..open];
    let inner = &tree[open + 1..close];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .flat_map(|p| expand(&format!("{prefix}{p}")))
        .collect()
}

/// `a::b as c` -> `a::b`.
fn without_renames(tree: &str) -> String {
    let words: Vec<&str> = tree.split_whitespace().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < words.len() {
        if words[i] == "as" && i + 1 < words.len() {
            // Keep what follows the new name (`,` or `}`).
            let rest = words[i + 1].trim_start_matches(|c: char| c.is_alphanumeric() || c == '_');
            out.push_str(rest);
            i += 2;
            continue;
        }
        out.push(' ');
        out.push_str(words[i]);
        i += 1;
    }
    out
}

/// The paths a module's code names: its `use` trees, then the paths written in place.
fn paths(code: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut rest_of_code = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("use ") {
        let before = rest[..at].chars().last();
        let statement_start = before.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        let end = rest[at..].find(';').map(|e| at + e);
        match end {
            Some(end) if statement_start => {
                rest_of_code.push_str(&rest[..at]);
                paths.extend(expand(&rest[at + 4..end]));
                rest = &rest[end + 1..];
            }
            _ => {
                rest_of_code.push_str(&rest[..at + 4]);
                rest = &rest[at + 4..];
            }
        }
    }
    rest_of_code.push_str(rest);
    for prefix in ["crate::", "super::"] {
        let mut rest = rest_of_code.as_str();
        while let Some(at) = rest.find(prefix) {
            let path: String = rest[at..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            paths.push(path.trim_end_matches(':').to_string());
            rest = &rest[at + prefix.len()..];
        }
    }
    paths
}

/// The module a path names, from module `from`: its longest prefix that is a module.
fn target(path: &str, from: &str, modules: &BTreeSet<String>) -> Option<String> {
    let from_parts: Vec<&str> = from.split("::").filter(|p| !p.is_empty()).collect();
    let mut segments: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
    let mut base: Vec<&str> = match segments.first().copied() {
        Some("crate") => {
            segments.remove(0);
            Vec::new()
        }
        Some("super") => {
            let mut base = from_parts.clone();
            while segments.first() == Some(&"super") {
                segments.remove(0);
                base.pop();
            }
            base
        }
        Some("self") => {
            segments.remove(0);
            from_parts.clone()
        }
        // `use child::Item` in a module with that child.
        Some(first) if modules.contains(&[from_parts.as_slice(), &[first]].concat().join("::")) => {
            from_parts.clone()
        }
        _ => return None,
    };
    let mut best = None;
    for segment in segments {
        base.push(segment);
        let name = base.join("::");
        if modules.contains(&name) {
            best = Some(name);
        }
    }
    best
}

/// Module -> the modules it names.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let found = modules(src);
    let names: BTreeSet<String> = found.keys().cloned().collect();
    found
        .iter()
        .map(|(module, text)| {
            let edges = paths(&code_of(text))
                .iter()
                .filter_map(|p| target(p, module, &names))
                .filter(|t| t != module)
                .collect();
            (module.clone(), edges)
        })
        .collect()
}

/// One circle of `graph`, if it has any.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_string());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_library_has_no_module_circle() {
    let graph = graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(
        graph.contains_key("controller::plan"),
        "modules found: {graph:?}"
    );
    if let Some(found) = circle(&graph) {
        panic!("module circle: {}", found.join(" -> "));
    }
}

/// Every module `from` reaches through the graph.
fn reachable(graph: &BTreeMap<String, BTreeSet<String>>, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_string()];
    while let Some(node) = todo.pop() {
        for next in graph.get(&node).into_iter().flatten() {
            if seen.insert(next.clone()) {
                todo.push(next.clone());
            }
        }
    }
    seen
}

#[test]
fn the_decisions_never_see_the_caches_or_the_throttle() {
    let graph = graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    for decision in ["plan", "status", "events", "poll", "writes"] {
        let module = format!("controller::{decision}");
        assert!(
            graph.contains_key(&module),
            "{module} is gone: update this test"
        );
        let machinery: Vec<String> = reachable(&graph, &module)
            .into_iter()
            .filter(|m| m.starts_with("controller::cache") || m.starts_with("controller::throttle"))
            .collect();
        assert!(machinery.is_empty(), "{module} reaches {machinery:?}");
    }
}

#[test]
fn the_check_sees_every_kind_of_path() {
    let modules: BTreeSet<String> = ["", "a", "a::b", "a::c", "d"]
        .into_iter()
        .map(String::from)
        .collect();
    let named = |code: &str, from: &str| -> BTreeSet<String> {
        paths(&code_of(code))
            .iter()
            .filter_map(|p| target(p, from, &modules))
            .collect()
    };
    let set = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        named("use crate::a::{b::X, c};", "d"),
        set(&["a::b", "a::c"])
    );
    assert_eq!(named("let x = super::c::f();", "a::b"), set(&["a::c"]));
    assert_eq!(named("use b::Thing;", "a"), set(&["a::b"]));
    assert_eq!(named("use crate::d as e;", "a"), set(&["d"]));
    assert_eq!(named("// crate::d in a comment\n", "a"), set(&[]));
    assert_eq!(
        named(
            "fn f() {}\n#[cfg(test)]\nmod tests {\n use crate::d;\n}\n",
            "a"
        ),
        set(&[])
    );
    let mut circular = BTreeMap::new();
    circular.insert("a".to_string(), set(&["b"]));
    circular.insert("b".to_string(), set(&["c"]));
    circular.insert("c".to_string(), set(&["a"]));
    assert_eq!(
        circle(&circular).map(|c| c.join(" -> ")),
        Some("a -> b -> c -> a".to_string())
    );
    circular.insert("c".to_string(), set(&[]));
    assert_eq!(circle(&circular), None);
}
