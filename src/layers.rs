//! Stage 4: [`Closure`] → [`LayerPlan`]. Pure: no I/O.
//!
//! One layer per store path while the count allows; past the maximum, the
//! least popular paths are merged into one layer. The rootfs extras armorred
//! makes (passwd, writable dirs, links) always go in a final layer of their own.
//!
//! Why popularity and not Nixery's dominator tree: with one path per layer, a
//! layer's bytes depend only on that store path, so glibc, openssl, zlib and
//! pcre2 give byte-identical layers in both tiers and across images, and the
//! registry stores them once. Popularity (how many closure members depend on
//! a path, as in nixpkgs' `referencesByPopularity`) only decides which paths
//! lose their own layer when the cap is hit: the rarely shared leaves, whose
//! merge costs the least sharing. A dominator tree would instead bundle a
//! path with everything only it reaches, which changes the bundle whenever
//! any member changes.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::closure::Closure;
use crate::store_path::StorePath;

/// One planned layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LayerSpec {
    /// Store paths copied verbatim (one, or several merged).
    StorePaths { paths: Vec<StorePath> },
    /// The rootfs extras made by armorred.
    Rootfs,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerPlan {
    pub layers: Vec<LayerSpec>,
    pub max_layers: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayerPlanError {
    #[error("max layers must be at least 2 (one for the closure, one for the rootfs), got {0}")]
    TooFewLayers(usize),
}

impl LayerPlan {
    pub fn new(closure: &Closure, max_layers: usize) -> Result<LayerPlan, LayerPlanError> {
        if max_layers < 2 {
            return Err(LayerPlanError::TooFewLayers(max_layers));
        }
        let ranked = rank_by_popularity(closure);
        // Reserve one layer for the rootfs extras.
        let store_layers = max_layers - 1;
        let mut layers: Vec<LayerSpec> = Vec::new();
        if ranked.len() <= store_layers {
            layers.extend(
                ranked
                    .into_iter()
                    .map(|p| LayerSpec::StorePaths { paths: vec![p] }),
            );
        } else {
            let keep = store_layers - 1;
            let (own, rest) = ranked.split_at(keep);
            layers.extend(own.iter().map(|p| LayerSpec::StorePaths {
                paths: vec![p.clone()],
            }));
            let mut merged = rest.to_vec();
            merged.sort();
            layers.push(LayerSpec::StorePaths { paths: merged });
        }
        layers.push(LayerSpec::Rootfs);
        Ok(LayerPlan { layers, max_layers })
    }

    pub fn store_path_count(&self) -> usize {
        self.layers
            .iter()
            .map(|l| match l {
                LayerSpec::StorePaths { paths } => paths.len(),
                LayerSpec::Rootfs => 0,
            })
            .sum()
    }
}

/// One layer of a plan as `armorred plan --layers` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedLayer {
    /// 1-based, in image order (lowest layer first).
    pub index: usize,
    pub kind: PlannedKind,
    /// Empty for the rootfs layer.
    pub paths: Vec<PlannedPath>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlannedKind {
    /// One store path, a layer of its own (shared across images and tiers).
    StorePath,
    /// The least popular paths, merged past the layer cap.
    Merged,
    /// passwd, group, writable directories and links made by armorred.
    Rootfs,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedPath {
    pub path: StorePath,
    /// Closure members that depend on it.
    pub popularity: usize,
    pub nar_size: u64,
}

impl LayerPlan {
    /// The plan with each path's popularity and size, for display.
    pub fn describe(&self, closure: &Closure) -> Vec<PlannedLayer> {
        let pop = popularity(closure);
        self.layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let (kind, paths) = match l {
                    LayerSpec::StorePaths { paths } if paths.len() == 1 => {
                        (PlannedKind::StorePath, paths.as_slice())
                    }
                    LayerSpec::StorePaths { paths } => (PlannedKind::Merged, paths.as_slice()),
                    LayerSpec::Rootfs => (PlannedKind::Rootfs, &[][..]),
                };
                PlannedLayer {
                    index: i + 1,
                    kind,
                    paths: paths
                        .iter()
                        .map(|p| PlannedPath {
                            path: p.clone(),
                            popularity: pop.get(p).copied().unwrap_or(0),
                            nar_size: closure.paths.get(p).map_or(0, |i| i.nar_size),
                        })
                        .collect(),
                }
            })
            .collect()
    }
}

/// Popularity of each path: how many closure members (itself excluded) reach
/// it. Sorted most popular first; ties by larger NAR size, then by path, so
/// the order is a pure function of the graph.
pub fn popularity(closure: &Closure) -> BTreeMap<StorePath, usize> {
    let mut pop: BTreeMap<StorePath, usize> =
        closure.paths.keys().map(|p| (p.clone(), 0)).collect();
    for p in closure.paths.keys() {
        for q in closure.reachable_from(p) {
            if &q != p {
                *pop.entry(q).or_default() += 1;
            }
        }
    }
    pop
}

fn rank_by_popularity(closure: &Closure) -> Vec<StorePath> {
    let pop = popularity(closure);
    let mut ranked: Vec<StorePath> = closure.paths.keys().cloned().collect();
    ranked.sort_by(|a, b| {
        let size = |p: &StorePath| closure.paths[p].nar_size;
        pop[b]
            .cmp(&pop[a])
            .then(size(b).cmp(&size(a)))
            .then(a.cmp(b))
    });
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::closure::tests::{closure, sp};

    fn nginx_like() -> Closure {
        closure(&[
            (
                "nginx-1.22.1",
                3_000,
                &["openssl-3.0.15", "pcre2-10.42", "zlib-1.2.13", "glibc-2.36"],
            ),
            ("openssl-3.0.15", 6_000, &["glibc-2.36"]),
            ("pcre2-10.42", 1_000, &["glibc-2.36"]),
            ("zlib-1.2.13", 200, &["glibc-2.36"]),
            ("glibc-2.36", 9_000, &[]),
        ])
    }

    fn names(plan: &LayerPlan) -> Vec<Vec<String>> {
        plan.layers
            .iter()
            .map(|l| match l {
                LayerSpec::StorePaths { paths } => {
                    paths.iter().map(|p| p.name().to_string()).collect()
                }
                LayerSpec::Rootfs => vec!["<rootfs>".to_string()],
            })
            .collect()
    }

    #[test]
    fn one_layer_per_path_under_the_cap() {
        let plan = LayerPlan::new(&nginx_like(), 100).unwrap();
        assert_eq!(
            names(&plan),
            vec![
                vec!["glibc-2.36"],
                vec!["openssl-3.0.15"],
                vec!["pcre2-10.42"],
                vec!["zlib-1.2.13"],
                vec!["nginx-1.22.1"],
                vec!["<rootfs>"],
            ]
        );
        assert_eq!(plan.store_path_count(), 5);
    }

    #[test]
    fn merges_least_popular_past_the_cap() {
        for max in 2..=7 {
            let plan = LayerPlan::new(&nginx_like(), max).unwrap();
            assert!(plan.layers.len() <= max, "max {max}: {:?}", names(&plan));
            assert_eq!(plan.store_path_count(), 5, "every path is kept");
        }
        let plan = LayerPlan::new(&nginx_like(), 4).unwrap();
        // glibc (4 dependants) and openssl (size wins the tie) keep their layers.
        assert_eq!(names(&plan)[0], ["glibc-2.36"]);
        assert_eq!(names(&plan)[1], ["openssl-3.0.15"]);
        assert_eq!(names(&plan)[2].len(), 3);
        assert_eq!(names(&plan)[3], ["<rootfs>"]);
    }

    #[test]
    fn deterministic_and_rejects_tiny_caps() {
        let a = LayerPlan::new(&nginx_like(), 3).unwrap();
        let b = LayerPlan::new(&nginx_like(), 3).unwrap();
        assert_eq!(a, b);
        assert_eq!(
            LayerPlan::new(&nginx_like(), 1),
            Err(LayerPlanError::TooFewLayers(1))
        );
    }

    #[test]
    fn shared_dependencies_get_the_same_layer_in_both_tiers() {
        // Locked nginx differs, its dependencies do not.
        let mut locked = nginx_like();
        let old = sp("nginx-1.22.1");
        let info = locked.paths.remove(&old).unwrap();
        locked.paths.insert(sp("nginx-locked-1.22.1"), info);
        let h = LayerPlan::new(&nginx_like(), 100).unwrap();
        let l = LayerPlan::new(&locked, 100).unwrap();
        for dep in ["glibc-2.36", "openssl-3.0.15", "pcre2-10.42", "zlib-1.2.13"] {
            let single = LayerSpec::StorePaths {
                paths: vec![sp(dep)],
            };
            assert!(
                h.layers.contains(&single) && l.layers.contains(&single),
                "{dep}"
            );
        }
    }

    #[test]
    fn describe_marks_merged_layers() {
        let c = nginx_like();
        let d = LayerPlan::new(&c, 4).unwrap().describe(&c);
        let kinds: Vec<PlannedKind> = d.iter().map(|l| l.kind).collect();
        assert_eq!(
            kinds,
            [
                PlannedKind::StorePath,
                PlannedKind::StorePath,
                PlannedKind::Merged,
                PlannedKind::Rootfs
            ]
        );
        assert_eq!(d[0].index, 1);
        assert_eq!(
            (d[0].paths[0].popularity, d[0].paths[0].nar_size),
            (4, 9_000)
        );
        assert_eq!(d[2].paths.len(), 3);
        assert!(d[3].paths.is_empty());
    }

    #[test]
    fn popularity_counts_dependants() {
        let pop = popularity(&nginx_like());
        assert_eq!(pop[&sp("glibc-2.36")], 4);
        assert_eq!(pop[&sp("openssl-3.0.15")], 1);
        assert_eq!(pop[&sp("nginx-1.22.1")], 0);
    }
}
