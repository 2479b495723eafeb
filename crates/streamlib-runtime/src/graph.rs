//! Graph checks that need no running parts: topological order and cycles.

/// Orders `n` nodes so every edge `(from, to)` goes forward, or returns the nodes left on
/// cycles (Kahn's algorithm).
pub(crate) fn topological_order(
    n: usize,
    edges: &[(usize, usize)],
) -> Result<Vec<usize>, Vec<usize>> {
    let mut indegree = vec![0usize; n];
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(from, to) in edges {
        indegree[to] += 1;
        out[from].push(to);
    }
    let mut ready: Vec<usize> = (0..n).rev().filter(|&i| indegree[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop() {
        order.push(i);
        for &j in out[i].iter().rev() {
            indegree[j] -= 1;
            if indegree[j] == 0 {
                ready.push(j);
            }
        }
    }
    if order.len() == n {
        Ok(order)
    } else {
        Err((0..n).filter(|&i| indegree[i] > 0).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_a_diamond() {
        let order = topological_order(4, &[(0, 1), (0, 2), (1, 3), (2, 3)]).unwrap_or_default();
        let pos = |i| order.iter().position(|&x| x == i).unwrap_or(usize::MAX);
        assert!(pos(0) < pos(1) && pos(1) < pos(3) && pos(2) < pos(3));
    }

    #[test]
    fn finds_cycles() {
        assert_eq!(
            topological_order(3, &[(0, 1), (1, 2), (2, 1)]),
            Err(vec![1, 2])
        );
    }
}
