//! Which node should run a feed: weighted rendezvous (highest-random-weight) hashing.
//!
//! Every node computes the same answer from the same live-node list, without talking to
//! the others. A node joining takes only the feeds it now wins (about `w / W` of them); a
//! node leaving gives up only its own feeds. The hash is spelled out here (FNV-1a, then a
//! SplitMix64 finaliser) because the answer must agree across processes, builds and
//! Rust versions, which `std`'s hasher does not promise.

use std::collections::BTreeMap;

/// A live node as the assignment sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub name: String,
    /// Relative capacity (> 0): a node of weight 2 gets about twice the feeds of weight 1.
    pub weight: f64,
}

/// The node that should own `feed`, or `None` when there is no candidate with a positive,
/// finite weight. Ties (practically impossible) go to the smaller name.
pub fn owner<'a>(feed: &str, nodes: &'a [Candidate]) -> Option<&'a Candidate> {
    nodes
        .iter()
        .filter(|n| n.weight.is_finite() && n.weight > 0.0)
        .map(|n| (score(feed, n), n))
        .max_by(|(sa, na), (sb, nb)| sa.total_cmp(sb).then_with(|| nb.name.cmp(&na.name)))
        .map(|(_, n)| n)
}

/// The owner of every feed (feeds without a possible owner are left out).
pub fn plan<'a, I>(feeds: I, nodes: &[Candidate]) -> BTreeMap<String, String>
where
    I: IntoIterator<Item = &'a str>,
{
    feeds
        .into_iter()
        .filter_map(|f| owner(f, nodes).map(|n| (f.to_owned(), n.name.clone())))
        .collect()
}

/// How many feeds change owner between two plans (feeds present in both).
pub fn moves(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> usize {
    before
        .iter()
        .filter(|(feed, node)| after.get(*feed).is_some_and(|n| n != *node))
        .count()
}

/// Weighted HRW score: `-w / ln(u)` with `u` uniform in (0, 1) from the hash of the pair.
/// The largest score wins; with equal weights this is plain rendezvous hashing.
fn score(feed: &str, node: &Candidate) -> f64 {
    let h = mix(fnv1a(
        node.name.as_bytes(),
        fnv1a(feed.as_bytes(), FNV_OFFSET),
    ));
    // 53 random bits, shifted into (0, 1): never 0 (ln 0) and never 1 (ln 1 = 0).
    let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    -node.weight / u.ln()
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a(bytes: &[u8], mut h: u64) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    // A separator, so ("ab", "c") and ("a", "bc") hash apart.
    (h ^ 0xff).wrapping_mul(FNV_PRIME)
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nodes(n: usize) -> Vec<Candidate> {
        (0..n)
            .map(|i| Candidate {
                name: format!("node-{i}"),
                weight: 1.0,
            })
            .collect()
    }

    fn feeds(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("cam-{i}")).collect()
    }

    #[test]
    fn the_answer_is_pinned_across_builds() {
        // Every node of a cluster must compute the same owner: a change of hash is a
        // breaking change of the cluster protocol, caught here.
        let n = nodes(3);
        let got: Vec<_> = ["cam-0", "cam-1", "cam-2", "cam-3", "lobby"]
            .iter()
            .map(|f| owner(f, &n).map(|c| c.name.clone()).unwrap_or_default())
            .collect();
        assert_eq!(got, PINNED);
    }
    const PINNED: [&str; 5] = ["node-1", "node-0", "node-2", "node-2", "node-1"];

    #[test]
    fn load_follows_weight() {
        let mut n = nodes(4);
        n[0].weight = 3.0;
        let fs = feeds(6000);
        let p = plan(fs.iter().map(String::as_str), &n);
        let heavy = p.values().filter(|v| *v == "node-0").count();
        // Expected 3/6 of 6000 = 3000; allow 5%.
        assert!((2850..=3150).contains(&heavy), "{heavy}");
        for i in 1..4 {
            let light = p.values().filter(|v| **v == format!("node-{i}")).count();
            assert!((900..=1100).contains(&light), "node-{i}: {light}");
        }
    }

    #[test]
    fn no_owner_without_a_usable_node() {
        assert!(owner("cam", &[]).is_none());
        let bad = [Candidate {
            name: "x".into(),
            weight: 0.0,
        }];
        assert!(owner("cam", &bad).is_none());
    }

    proptest! {
        #[test]
        fn a_leaving_node_moves_only_its_own_feeds(n in 2usize..12, gone in 0usize..12, f in 1usize..300) {
            let gone = gone % n;
            let all = nodes(n);
            let mut rest = all.clone();
            let left = rest.remove(gone);
            let fs = feeds(f);
            let before = plan(fs.iter().map(String::as_str), &all);
            let after = plan(fs.iter().map(String::as_str), &rest);
            for feed in &fs {
                if before[feed] != left.name {
                    prop_assert_eq!(&before[feed], &after[feed]);
                }
            }
            let own = before.values().filter(|v| **v == left.name).count();
            prop_assert_eq!(moves(&before, &after), own);
        }

        #[test]
        fn a_joining_node_takes_feeds_only_for_itself(n in 1usize..12, f in 1usize..300) {
            let before_nodes = nodes(n);
            let after_nodes = nodes(n + 1);
            let fs = feeds(f);
            let before = plan(fs.iter().map(String::as_str), &before_nodes);
            let after = plan(fs.iter().map(String::as_str), &after_nodes);
            let newcomer = format!("node-{n}");
            for feed in &fs {
                if before[feed] != after[feed] {
                    prop_assert_eq!(&after[feed], &newcomer);
                }
            }
        }
    }
}
