//! The job dependency DAG.
//!
//! This module owns the dependency structure between jobs and every question
//! the runner asks about it: a deterministic execution order, layers, the
//! critical path, and which jobs are upstream or downstream of a set of jobs.
//! Nodes are the caller's job indices (file order), `0..len()`.
//!
//! Invariants a [`Dag`] keeps once constructed:
//! - it is acyclic; construction fails with a [`Cycle`] otherwise, so no other
//!   method has to cope with cycles;
//! - adjacency is stored twice in compressed sparse row form (petgraph's
//!   [`Csr`]), once per direction, with every neighbour list free of
//!   duplicates and sorted ascending, so [`Dag::needs`] and
//!   [`Dag::dependents`] are O(1) slices and every traversal is deterministic;
//! - the topological order is computed once and cached.
//!
//! Every algorithm here is iterative and runs in O(V + E) time and memory
//! (apart from the O(V log V) heap in the topological sort), because job files
//! with 100,000 jobs are expected and recursion would overflow the stack.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;

use petgraph::Directed;
use petgraph::csr::Csr;

/// One direction of the dependency relation: row `i` lists the neighbours of
/// node `i`, ascending and without duplicates.
pub type Adjacency = Csr<(), (), Directed, usize>;

/// An acyclic job dependency graph with a cached deterministic topological order.
#[derive(Debug, Clone)]
pub struct Dag {
    /// Edges `need -> dependent`: the direction work flows in.
    dependents: Adjacency,
    /// Edges `dependent -> need`: the reverse of `dependents`.
    needs: Adjacency,
    /// Smallest-index-first Kahn order; see [`Dag::order`].
    order: Vec<usize>,
}

/// A dependency cycle, reported by [`Dag::new`].
///
/// `path[k]` needs `path[k + 1]`, and the last node needs `path[0]`; the first
/// node is not repeated at the end (a needs b needs c needs a is
/// `vec![a, b, c]`, a self-dependency of `a` is `vec![a]`). It is the cycle
/// closed first by a depth-first search over needs that tries start nodes in
/// ascending index order and visits each node's needs in ascending order;
/// `path[0]` is the node where that search closed the cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    /// The node indices on the cycle, in needs order.
    pub path: Vec<usize>,
}

impl fmt::Display for Cycle {
    /// Formats as `dependency cycle: 0 -> 2 -> 1 -> 0`, where each arrow means
    /// "needs".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("dependency cycle: ")?;
        for node in &self.path {
            write!(f, "{node} -> ")?;
        }
        match self.path.first() {
            Some(first) => write!(f, "{first}"),
            None => f.write_str("(empty)"),
        }
    }
}

impl std::error::Error for Cycle {}

impl Dag {
    /// Builds the graph where `needs[i]` lists the nodes node `i` depends on
    /// (edges `need -> i`).
    ///
    /// Duplicate entries in a needs list are ignored. A node that needs itself
    /// is a cycle of one node.
    ///
    /// # Errors
    ///
    /// Returns the first [`Cycle`] found (see [`Cycle`] for which one) if the
    /// graph is not acyclic.
    ///
    /// # Panics
    ///
    /// Panics if an entry of `needs` is not below `needs.len()`.
    pub fn new(needs: &[Vec<usize>]) -> Result<Dag, Cycle> {
        let n = needs.len();
        let (forward, backward) = sorted_edges(needs);
        let dependents = csr_from_sorted(&forward, n);
        let needs = csr_from_sorted(&backward, n);
        let order = kahn(&dependents, &needs);
        if order.len() < n {
            return Err(find_cycle(&needs, &order));
        }
        Ok(Dag {
            dependents,
            needs,
            order,
        })
    }

    /// Number of nodes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether the graph has no nodes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Direct dependencies of `node`, ascending, without duplicates.
    ///
    /// # Panics
    ///
    /// Panics if `node >= self.len()`.
    #[must_use]
    pub fn needs(&self, node: usize) -> &[usize] {
        self.needs.neighbors_slice(node)
    }

    /// Direct dependents of `node`, ascending, without duplicates.
    ///
    /// # Panics
    ///
    /// Panics if `node >= self.len()`.
    #[must_use]
    pub fn dependents(&self, node: usize) -> &[usize] {
        self.dependents.neighbors_slice(node)
    }

    /// The graph as petgraph sees it, with edges `need -> dependent`, for
    /// petgraph algorithms and DOT output.
    #[must_use]
    pub fn graph(&self) -> &Adjacency {
        &self.dependents
    }

    /// Deterministic topological order: every node comes after all of its
    /// needs, and whenever several nodes are ready the smallest index goes
    /// first (Kahn's algorithm with a min-heap).
    #[must_use]
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// Layer `k` holds the nodes whose longest chain of needs down to a root
    /// (a node without needs) has `k` edges; each layer is sorted ascending.
    /// Empty graph -> no layers.
    #[must_use]
    pub fn layers(&self) -> Vec<Vec<usize>> {
        let mut depth = vec![0usize; self.len()];
        let mut count = 0;
        // Topological order guarantees every need's depth is final before use.
        for &node in &self.order {
            let d = self
                .needs(node)
                .iter()
                .map(|&need| depth[need] + 1)
                .max()
                .unwrap_or(0);
            depth[node] = d;
            count = count.max(d + 1);
        }
        let mut layers = vec![Vec::new(); count];
        // Visiting nodes by index keeps each layer sorted without a sort.
        for (node, &d) in depth.iter().enumerate() {
            layers[d].push(node);
        }
        layers
    }

    /// The critical path: among paths from a root (no needs) to a sink (no
    /// dependents), the one with the largest sum of `weight(node)`, listed
    /// from root to sink, together with that sum. Empty graph ->
    /// `(vec![], 0.0)`.
    ///
    /// `weight` is called exactly once per node, in [`Dag::order`]. Ties go
    /// to the smaller index: first when choosing the sink, then for each
    /// predecessor while walking back from it. Weights should be finite; NaN
    /// does not panic but makes the choice among tied paths unspecified.
    pub fn critical_path(&self, weight: impl Fn(usize) -> f64) -> (Vec<usize>, f64) {
        let n = self.len();
        let mut best = vec![0.0f64; n];
        let mut pred = vec![None::<usize>; n];
        for &node in &self.order {
            let mut chosen: Option<usize> = None;
            // Needs are ascending, so a strict comparison keeps the smallest
            // index among equally heavy predecessors.
            for &need in self.needs(node) {
                if chosen.is_none_or(|c| best[need] > best[c]) {
                    chosen = Some(need);
                }
            }
            best[node] = weight(node) + chosen.map_or(0.0, |c| best[c]);
            pred[node] = chosen;
        }
        let mut end: Option<usize> = None;
        for node in (0..n).filter(|&node| self.dependents(node).is_empty()) {
            if end.is_none_or(|e| best[node] > best[e]) {
                end = Some(node);
            }
        }
        let Some(end) = end else {
            return (Vec::new(), 0.0);
        };
        let mut path = vec![end];
        let mut cursor = end;
        while let Some(prev) = pred[cursor] {
            path.push(prev);
            cursor = prev;
        }
        path.reverse();
        (path, best[end])
    }

    /// Every node that transitively depends on any of `roots`, ascending. A
    /// root is included only if it depends on another root.
    ///
    /// # Panics
    ///
    /// Panics if a root is not below `self.len()`.
    #[must_use]
    pub fn descendants(&self, roots: &[usize]) -> Vec<usize> {
        reach(&self.dependents, roots)
    }

    /// Every node that any of `roots` transitively needs, ascending. A root is
    /// included only if another root needs it.
    ///
    /// # Panics
    ///
    /// Panics if a root is not below `self.len()`.
    #[must_use]
    pub fn ancestors(&self, roots: &[usize]) -> Vec<usize> {
        reach(&self.needs, roots)
    }
}

/// A `(source, target)` pair, the edge form [`Csr::from_sorted_edges`] takes.
type Edge = (usize, usize);

/// Deduplicated edges in both directions, each sorted the way
/// [`Csr::from_sorted_edges`] demands: `(need, dependent)` pairs and
/// `(dependent, need)` pairs, each ordered by source then target.
///
/// Two stable counting sorts replace a comparison sort so construction stays
/// linear even for nodes with huge needs lists.
fn sorted_edges(needs: &[Vec<usize>]) -> (Vec<Edge>, Vec<Edge>) {
    let n = needs.len();
    // `seen[m] == i` means edge m -> i was already recorded, which dedups in
    // O(1) per entry without sorting or clearing between nodes.
    let mut seen = vec![usize::MAX; n];
    let mut by_dependent = Vec::new();
    for (node, list) in needs.iter().enumerate() {
        for &need in list {
            assert!(
                need < n,
                "node {node} needs {need}, but there are only {n} nodes"
            );
            if seen[need] != node {
                seen[need] = node;
                by_dependent.push((need, node));
            }
        }
    }
    // `by_dependent` is ordered by dependent, so a stable sort by need yields
    // (need, dependent) order.
    let forward = counting_sort(&by_dependent, n, |&(need, _)| need);
    // Likewise, a stable sort of `forward` by dependent orders each node's
    // needs ascending.
    let backward = counting_sort(&forward, n, |&(_, node)| node)
        .into_iter()
        .map(|(need, node)| (node, need))
        .collect();
    (forward, backward)
}

/// Stable sort of `items` by `key`, where every key is below `n`.
fn counting_sort<T: Copy + Default>(items: &[T], n: usize, key: impl Fn(&T) -> usize) -> Vec<T> {
    let mut start = vec![0usize; n + 1];
    for item in items {
        start[key(item) + 1] += 1;
    }
    for k in 0..n {
        start[k + 1] += start[k];
    }
    let mut out = vec![T::default(); items.len()];
    for item in items {
        let slot = &mut start[key(item)];
        out[*slot] = *item;
        *slot += 1;
    }
    out
}

/// Builds a [`Csr`] with exactly `n` nodes from edges sorted by source then
/// target, without duplicates.
fn csr_from_sorted(edges: &[Edge], n: usize) -> Adjacency {
    let mut csr = Adjacency::from_sorted_edges(edges)
        .expect("edges are sorted and deduplicated by construction");
    // `from_sorted_edges` only knows about nodes that touch an edge, so
    // isolated trailing nodes have to be appended.
    while csr.node_count() < n {
        csr.add_node(());
    }
    csr
}

/// Kahn's algorithm, smallest ready index first. Returns fewer than
/// `node_count` nodes exactly when the graph has a cycle.
fn kahn(dependents: &Adjacency, needs: &Adjacency) -> Vec<usize> {
    let n = needs.node_count();
    let mut pending: Vec<usize> = (0..n)
        .map(|node| needs.neighbors_slice(node).len())
        .collect();
    let mut ready: BinaryHeap<Reverse<usize>> = (0..n)
        .filter(|&node| pending[node] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(node)) = ready.pop() {
        order.push(node);
        for &dependent in dependents.neighbors_slice(node) {
            pending[dependent] -= 1;
            if pending[dependent] == 0 {
                ready.push(Reverse(dependent));
            }
        }
    }
    order
}

/// DFS colours: white is unvisited, grey is on the current path, black is
/// finished.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Colour {
    White,
    Grey,
    Black,
}

/// Finds the first cycle of an iterative depth-first search over `needs`,
/// starting nodes in ascending order. Must only be called when `placed` (the
/// partial Kahn order) is missing nodes, i.e. when a cycle exists.
fn find_cycle(needs: &Adjacency, placed: &[usize]) -> Cycle {
    let n = needs.node_count();
    let mut colour = vec![Colour::White; n];
    // Nodes Kahn placed only need placed nodes, so a search from them can
    // never reach a cycle; starting them black skips that work without
    // changing which cycle is found first.
    for &node in placed {
        colour[node] = Colour::Black;
    }
    // Each frame is a node on the current path and the position of the next
    // need to try; the explicit stack replaces recursion so a 100,000-node
    // cycle cannot overflow the call stack.
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for start in 0..n {
        if colour[start] != Colour::White {
            continue;
        }
        colour[start] = Colour::Grey;
        stack.push((start, 0));
        while let Some(frame) = stack.last_mut() {
            let (node, next) = *frame;
            let Some(&need) = needs.neighbors_slice(node).get(next) else {
                colour[node] = Colour::Black;
                stack.pop();
                continue;
            };
            frame.1 += 1;
            match colour[need] {
                Colour::White => {
                    colour[need] = Colour::Grey;
                    stack.push((need, 0));
                }
                Colour::Grey => {
                    // Grey nodes are exactly the stack, so `need` is on it.
                    let from = stack
                        .iter()
                        .rposition(|&(on_path, _)| on_path == need)
                        .expect("grey nodes are on the DFS stack");
                    let path = stack[from..].iter().map(|&(on_path, _)| on_path).collect();
                    return Cycle { path };
                }
                Colour::Black => {}
            }
        }
    }
    unreachable!("Kahn's algorithm left nodes unplaced, so a cycle must exist")
}

/// Nodes reachable from `roots` by at least one edge of `adjacency`,
/// ascending.
fn reach(adjacency: &Adjacency, roots: &[usize]) -> Vec<usize> {
    let mut reached = vec![false; adjacency.node_count()];
    // Seeding with the roots' neighbours rather than the roots keeps a root
    // out of the result unless some edge leads to it.
    let mut stack: Vec<usize> = Vec::new();
    for &root in roots {
        stack.extend_from_slice(adjacency.neighbors_slice(root));
    }
    while let Some(node) = stack.pop() {
        if !reached[node] {
            reached[node] = true;
            stack.extend(
                adjacency
                    .neighbors_slice(node)
                    .iter()
                    .filter(|&&next| !reached[next]),
            );
        }
    }
    // A scan in index order yields the ascending result without sorting.
    reached
        .iter()
        .enumerate()
        .filter_map(|(node, &hit)| hit.then_some(node))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn dag(needs: &[Vec<usize>]) -> Dag {
        Dag::new(needs).expect("test graph is acyclic")
    }

    fn cycle(needs: &[Vec<usize>]) -> Vec<usize> {
        Dag::new(needs).expect_err("test graph has a cycle").path
    }

    /// 0 is the root, 1 and 2 need 0, 3 needs both.
    fn diamond() -> Vec<Vec<usize>> {
        vec![vec![], vec![0], vec![0], vec![2, 1]]
    }

    fn chain(n: usize) -> Vec<Vec<usize>> {
        (0..n)
            .map(|i| if i == 0 { vec![] } else { vec![i - 1] })
            .collect()
    }

    #[test]
    fn empty_graph() {
        let g = dag(&[]);
        assert!(g.is_empty());
        assert_eq!(g.len(), 0);
        assert!(g.order().is_empty());
        assert!(g.layers().is_empty());
        assert_eq!(g.critical_path(|_| 1.0), (vec![], 0.0));
        assert!(g.descendants(&[]).is_empty());
        assert!(g.ancestors(&[]).is_empty());
    }

    #[test]
    fn single_node() {
        let g = dag(&[vec![]]);
        assert_eq!(g.len(), 1);
        assert!(!g.is_empty());
        assert_eq!(g.order(), &[0]);
        assert_eq!(g.layers(), vec![vec![0]]);
        assert_eq!(g.critical_path(|_| 2.5), (vec![0], 2.5));
        assert!(g.needs(0).is_empty());
        assert!(g.dependents(0).is_empty());
    }

    #[test]
    fn chain_of_four() {
        // Declared out of file order to check the order follows needs.
        let g = dag(&[vec![1], vec![2], vec![3], vec![]]);
        assert_eq!(g.order(), &[3, 2, 1, 0]);
        assert_eq!(g.layers(), vec![vec![3], vec![2], vec![1], vec![0]]);
        assert_eq!(g.critical_path(|_| 1.0), (vec![3, 2, 1, 0], 4.0));
        assert_eq!(g.needs(1), &[2]);
        assert_eq!(g.dependents(1), &[0]);
    }

    #[test]
    fn diamond_adjacency_and_order() {
        let g = dag(&diamond());
        assert_eq!(g.needs(3), &[1, 2]);
        assert_eq!(g.dependents(0), &[1, 2]);
        assert_eq!(g.order(), &[0, 1, 2, 3]);
        assert_eq!(g.graph().edge_count(), 4);
    }

    #[test]
    fn order_breaks_ties_by_index() {
        // 4 becomes ready before 1 and 2 (it only needs 3), but smaller
        // ready indices still go first once they are ready.
        let g = dag(&[vec![3], vec![0], vec![], vec![], vec![3]]);
        assert_eq!(g.order(), &[2, 3, 0, 1, 4]);
        let again = dag(&[vec![3], vec![0], vec![], vec![], vec![3]]);
        assert_eq!(g.order(), again.order());
        // Independent nodes come out in file order.
        assert_eq!(dag(&[vec![], vec![], vec![]]).order(), &[0, 1, 2]);
    }

    #[test]
    fn diamond_layers() {
        assert_eq!(dag(&diamond()).layers(), vec![vec![0], vec![1, 2], vec![3]]);
        // Layer is the longest chain, not the shortest: 3 needs 0 directly
        // and through 1.
        let g = dag(&[vec![], vec![0], vec![], vec![0, 1, 2]]);
        assert_eq!(g.layers(), vec![vec![0, 2], vec![1], vec![3]]);
    }

    #[test]
    fn critical_path_weighted() {
        let g = dag(&diamond());
        let weights = [1.0, 2.0, 5.0, 1.0];
        assert_eq!(g.critical_path(|i| weights[i]), (vec![0, 2, 3], 7.0));
        // A heavy isolated node beats a long light chain.
        let g = dag(&[vec![], vec![0], vec![1], vec![]]);
        let weights = [1.0, 1.0, 1.0, 10.0];
        assert_eq!(g.critical_path(|i| weights[i]), (vec![3], 10.0));
    }

    #[test]
    fn critical_path_unit_weights_ties() {
        // Both branches of the diamond tie; the smaller index wins.
        assert_eq!(dag(&diamond()).critical_path(|_| 1.0), (vec![0, 1, 3], 3.0));
        // Two equal chains 0->1 and 2->3: the smaller sink wins.
        let g = dag(&[vec![], vec![0], vec![], vec![2]]);
        assert_eq!(g.critical_path(|_| 1.0), (vec![0, 1], 2.0));
    }

    #[test]
    fn critical_path_calls_weight_once_per_node() {
        let calls = std::cell::Cell::new(0);
        dag(&diamond()).critical_path(|_| {
            calls.set(calls.get() + 1);
            1.0
        });
        assert_eq!(calls.get(), 4);
    }

    #[test]
    fn self_cycle() {
        assert_eq!(cycle(&[vec![], vec![1]]), vec![1]);
        assert_eq!(cycle(&[vec![0, 0]]), vec![0]);
    }

    #[test]
    fn three_cycle_path_exact() {
        // 0 needs 2, 2 needs 1, 1 needs 0.
        let needs = vec![vec![2], vec![0], vec![1]];
        assert_eq!(cycle(&needs), vec![0, 2, 1]);
        let err = Dag::new(&needs).unwrap_err();
        assert_eq!(err.to_string(), "dependency cycle: 0 -> 2 -> 1 -> 0");
    }

    #[test]
    fn cycle_found_from_first_start_node() {
        // 0 reaches the cycle 1 -> 2 -> 1 and is not on it; a second cycle
        // 3 -> 4 -> 3 is found later and must not be reported.
        let needs = vec![vec![1], vec![2], vec![1], vec![4], vec![3]];
        assert_eq!(cycle(&needs), vec![1, 2]);
    }

    #[test]
    fn cycle_reachable_only_from_later_start() {
        // Nodes 0..3 are a valid chain; the cycle 4 -> 5 -> 6 -> 4 is not
        // reachable from them.
        let needs = vec![vec![], vec![0], vec![1], vec![2], vec![5], vec![6], vec![4]];
        assert_eq!(cycle(&needs), vec![4, 5, 6]);
        // Same cycle, but an earlier node downstream of it is the first start
        // node that reaches it.
        let needs = vec![vec![], vec![0, 3], vec![], vec![4], vec![3]];
        assert_eq!(cycle(&needs), vec![3, 4]);
    }

    #[test]
    fn duplicate_needs_are_ignored() {
        let g = dag(&[vec![], vec![0, 0, 0], vec![1, 0, 1, 0]]);
        assert_eq!(g.needs(1), &[0]);
        assert_eq!(g.needs(2), &[0, 1]);
        assert_eq!(g.dependents(0), &[1, 2]);
        assert_eq!(g.graph().edge_count(), 3);
        assert_eq!(g.layers(), vec![vec![0], vec![1], vec![2]]);
    }

    #[test]
    #[should_panic(expected = "node 1 needs 2, but there are only 2 nodes")]
    fn out_of_range_need_panics() {
        let _ = Dag::new(&[vec![], vec![2]]);
    }

    #[test]
    fn descendants_and_ancestors() {
        // 0 -> 1 -> 3, 0 -> 2 -> 3, 4 isolated, 5 needs 3.
        let g = dag(&[vec![], vec![0], vec![0], vec![1, 2], vec![], vec![3]]);
        assert_eq!(g.descendants(&[0]), vec![1, 2, 3, 5]);
        assert_eq!(g.descendants(&[1]), vec![3, 5]);
        assert_eq!(g.descendants(&[0, 1]), vec![1, 2, 3, 5]);
        assert!(g.descendants(&[4]).is_empty());
        assert!(g.descendants(&[5]).is_empty());
        assert_eq!(g.ancestors(&[5]), vec![0, 1, 2, 3]);
        assert_eq!(g.ancestors(&[3, 1]), vec![0, 1, 2]);
        assert!(g.ancestors(&[0, 4]).is_empty());
        assert_eq!(g.ancestors(&[1, 1]), vec![0]);
    }

    #[test]
    fn long_chain_is_iterative() {
        let n = 100_000;
        let g = dag(&chain(n));
        assert!(g.order().iter().copied().eq(0..n));
        assert_eq!(g.layers().len(), n);
        let (path, total) = g.critical_path(|_| 1.0);
        assert_eq!(path.len(), n);
        #[allow(clippy::cast_precision_loss)]
        let expected = n as f64;
        assert!((total - expected).abs() < f64::EPSILON);
        assert_eq!(g.descendants(&[0]).len(), n - 1);
        assert_eq!(g.ancestors(&[n - 1]).len(), n - 1);
    }

    #[test]
    fn long_cycle_is_iterative() {
        let n = 100_000;
        let mut needs = chain(n);
        // The first node needs the last: 0 needs n-1 needs n-2 ... needs 0.
        needs[0].push(n - 1);
        let path = cycle(&needs);
        assert_eq!(path.len(), n);
        assert_eq!(path[0], 0);
        assert_eq!(path[1], n - 1);
        assert_eq!(path[n - 1], 1);
    }

    /// Run with `cargo test --release -- --ignored --nocapture timing`.
    #[test]
    #[ignore = "timing report, run in release"]
    fn timing_100k_nodes() {
        let n = 100_000;
        // Deterministic LCG so every run times the same graph.
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |bound: usize| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            usize::try_from(state >> 33).expect("31 bits fit in usize") % bound
        };
        let needs: Vec<Vec<usize>> = (0..n)
            .map(|i| {
                if i == 0 {
                    vec![]
                } else {
                    vec![next(i), next(i)]
                }
            })
            .collect();
        let started = Instant::now();
        let g = dag(&needs);
        let built = started.elapsed();
        let order_len = g.order().len();
        let layers = g.layers();
        let (path, total) = g.critical_path(|i| f64::from(u32::try_from(i % 7).unwrap()));
        let elapsed = started.elapsed();
        println!(
            "100k nodes, {} edges: new {built:?}, new+order+layers+critical_path {elapsed:?} \
             (order {order_len}, {} layers, critical path {} nodes, weight {total})",
            g.graph().edge_count(),
            layers.len(),
            path.len(),
        );
    }
}
