//! The server-side assignors of the consumer group protocol (KIP-848): `uniform` (the
//! default) and `range`. An assignor is a pure function from members, their subscriptions,
//! the topics' partition counts and the previous target assignment to a new target.

use std::collections::{BTreeMap, BTreeSet};

/// Partitions per topic, by topic name.
pub type Assignment = BTreeMap<String, BTreeSet<i32>>;

pub const UNIFORM: &str = "uniform";
pub const RANGE: &str = "range";
pub const DEFAULT_ASSIGNOR: &str = UNIFORM;

pub fn is_supported(name: &str) -> bool {
    name == UNIFORM || name == RANGE
}

/// What an assignor needs about one member.
pub struct MemberSpec<'a> {
    pub subscribed: &'a BTreeSet<String>,
    /// The member's previous target, which `uniform` keeps as far as balance allows.
    pub previous: Option<&'a Assignment>,
}

/// Assigns every partition of every subscribed topic to exactly one subscribed member.
pub fn assign(
    assignor: &str,
    members: &BTreeMap<String, MemberSpec<'_>>,
    partitions: &BTreeMap<String, i32>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members
        .keys()
        .map(|m| (m.clone(), Assignment::new()))
        .collect();
    if assignor == RANGE {
        range(members, partitions, &mut out);
    } else {
        uniform(members, partitions, &mut out);
    }
    out
}

/// Per topic, the subscribed members (by member id) take contiguous ranges, the first ones
/// one partition more when the count does not divide evenly.
fn range(
    members: &BTreeMap<String, MemberSpec<'_>>,
    partitions: &BTreeMap<String, i32>,
    out: &mut BTreeMap<String, Assignment>,
) {
    for (topic, &count) in partitions {
        let subscribers: Vec<&String> = members
            .iter()
            .filter(|(_, m)| m.subscribed.contains(topic))
            .map(|(id, _)| id)
            .collect();
        if subscribers.is_empty() {
            continue;
        }
        let n = subscribers.len() as i32;
        let (each, extra) = (count / n, count % n);
        let mut next = 0;
        for (i, member) in subscribers.iter().enumerate() {
            let take = each + i32::from((i as i32) < extra);
            let slot = out.get_mut(*member).expect("every member has a slot");
            if take > 0 {
                slot.entry(topic.clone())
                    .or_default()
                    .extend(next..next + take);
            }
            next += take;
        }
    }
}

/// Balanced and sticky: a partition stays with its previous owner while that owner is still
/// subscribed and not above its fair share; the rest go to the least loaded subscriber; then
/// partitions move from the most to the least loaded member until no move can improve balance.
fn uniform(
    members: &BTreeMap<String, MemberSpec<'_>>,
    partitions: &BTreeMap<String, i32>,
    out: &mut BTreeMap<String, Assignment>,
) {
    let all: Vec<(&String, i32)> = partitions
        .iter()
        .flat_map(|(t, &n)| (0..n).map(move |p| (t, p)))
        .filter(|(t, _)| members.values().any(|m| m.subscribed.contains(*t)))
        .collect();
    if members.is_empty() || all.is_empty() {
        return;
    }
    let fair = all.len().div_ceil(members.len());
    let mut load: BTreeMap<&String, usize> = members.keys().map(|m| (m, 0)).collect();
    let eligible = |member: &String, topic: &String| members[member].subscribed.contains(topic);
    let mut unassigned = Vec::new();
    for &(topic, p) in &all {
        let keeper = members.iter().find(|(id, m)| {
            m.previous
                .is_some_and(|prev| prev.get(topic).is_some_and(|ps| ps.contains(&p)))
                && eligible(id, topic)
                && load[*id] < fair
        });
        match keeper {
            Some((id, _)) => {
                *load.get_mut(id).expect("member") += 1;
                out.get_mut(id)
                    .expect("slot")
                    .entry(topic.clone())
                    .or_default()
                    .insert(p);
            }
            None => unassigned.push((topic, p)),
        }
    }
    for (topic, p) in unassigned {
        let Some(id) = load
            .iter()
            .filter(|(id, _)| eligible(id, topic))
            .min_by_key(|(id, n)| (**n, **id))
            .map(|(id, _)| (*id).clone())
        else {
            continue;
        };
        *load.get_mut(&id).expect("member") += 1;
        out.get_mut(&id)
            .expect("slot")
            .entry(topic.clone())
            .or_default()
            .insert(p);
    }
    rebalance(members, out, all.len());
}

/// Moves single partitions from a member to a less loaded one (subscribed to its topic) while
/// that narrows the gap by at least two. Bounded by the number of partitions.
fn rebalance(
    members: &BTreeMap<String, MemberSpec<'_>>,
    out: &mut BTreeMap<String, Assignment>,
    partitions: usize,
) {
    let count = |a: &Assignment| a.values().map(BTreeSet::len).sum::<usize>();
    for _ in 0..partitions {
        let mut best: Option<(String, String, String, i32)> = None;
        'search: for (from, from_a) in out.iter() {
            for (to, to_a) in out.iter() {
                if count(from_a) < count(to_a) + 2 {
                    continue;
                }
                for (topic, ps) in from_a {
                    if members[to].subscribed.contains(topic)
                        && let Some(&p) = ps.iter().next_back()
                    {
                        best = Some((from.clone(), to.clone(), topic.clone(), p));
                        break 'search;
                    }
                }
            }
        }
        let Some((from, to, topic, p)) = best else {
            return;
        };
        let from_topics = out.get_mut(&from).expect("member");
        let ps = from_topics.get_mut(&topic).expect("topic");
        ps.remove(&p);
        if ps.is_empty() {
            from_topics.remove(&topic);
        }
        out.get_mut(&to)
            .expect("member")
            .entry(topic)
            .or_default()
            .insert(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs(topics: &[&str]) -> BTreeSet<String> {
        topics.iter().map(|t| t.to_string()).collect()
    }

    /// Members named `names`, all subscribed to `subscribed`, each with what `previous`
    /// says it held.
    fn members<'a>(
        names: &[&str],
        subscribed: &'a BTreeSet<String>,
        previous: impl Fn(&str) -> Option<&'a Assignment>,
    ) -> BTreeMap<String, MemberSpec<'a>> {
        names
            .iter()
            .map(|m| {
                let spec = MemberSpec {
                    subscribed,
                    previous: previous(m),
                };
                (m.to_string(), spec)
            })
            .collect()
    }

    fn sizes(a: &BTreeMap<String, Assignment>) -> Vec<usize> {
        a.values()
            .map(|x| x.values().map(BTreeSet::len).sum())
            .collect()
    }

    #[test]
    fn uniform_balances_and_keeps_what_it_can() {
        let t = subs(&["t"]);
        let parts = BTreeMap::from([("t".to_string(), 6)]);
        let first = assign(UNIFORM, &members(&["a", "b"], &t, |_| None), &parts);
        assert_eq!(sizes(&first), vec![3, 3]);
        let three = members(&["a", "b", "c"], &t, |m| first.get(m));
        let second = assign(UNIFORM, &three, &parts);
        assert_eq!(sizes(&second), vec![2, 2, 2]);
        for m in ["a", "b"] {
            assert!(
                second[m]["t"].is_subset(&first[m]["t"]),
                "{m} kept its partitions"
            );
        }
    }

    #[test]
    fn range_splits_each_topic_into_contiguous_ranges() {
        let t = subs(&["t", "u"]);
        let parts = BTreeMap::from([("t".to_string(), 5), ("u".to_string(), 2)]);
        let got = assign(RANGE, &members(&["a", "b"], &t, |_| None), &parts);
        assert_eq!(got["a"]["t"], BTreeSet::from([0, 1, 2]));
        assert_eq!(got["b"]["t"], BTreeSet::from([3, 4]));
        assert_eq!(got["a"]["u"], BTreeSet::from([0]));
        assert_eq!(got["b"]["u"], BTreeSet::from([1]));
    }

    #[test]
    fn members_get_only_topics_they_subscribe_to() {
        let (t, u) = (subs(&["t"]), subs(&["u"]));
        let parts = BTreeMap::from([("t".to_string(), 4), ("u".to_string(), 1)]);
        let members = BTreeMap::from([
            (
                "a".to_string(),
                MemberSpec {
                    subscribed: &t,
                    previous: None,
                },
            ),
            (
                "b".to_string(),
                MemberSpec {
                    subscribed: &u,
                    previous: None,
                },
            ),
        ]);
        let got = assign(UNIFORM, &members, &parts);
        assert_eq!(got["a"].keys().collect::<Vec<_>>(), vec!["t"]);
        assert_eq!(got["b"]["u"], BTreeSet::from([0]));
        assert_eq!(got["a"]["t"].len(), 4);
    }
}
