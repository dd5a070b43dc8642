//! A batch of builds, planned then executed: [`BatchPlan::new`] decides what
//! will be built (recipes × tiers, each for the platforms this machine can
//! build, in recipe order) and how many at once; [`execute`] runs the plan
//! through the pipeline, hands each finished image to the caller's `ship`
//! step (push, archive), and keeps every result for the summary.

use anyhow::{Context, Result};
use serde::Serialize;

use crate::error::InputError;
use crate::nix;
use crate::pipeline::{self, BuildContext, BuildOutcome, Targets};
use crate::platform::{self, NixCapabilities, PlatformSelection, SkippedPlatform, System};
use crate::recipe::Recipe;
use crate::tier::Tier;

/// What the user asked for.
pub struct BatchRequest<'a> {
    pub tiers: Vec<Tier>,
    /// Nix systems asked for; empty means the recipe's own list.
    pub platforms: &'a [String],
    /// Images built at once, each its own Nix build.
    pub jobs: usize,
    /// Keep going past a failure (`build --all`); otherwise the first
    /// failure is the batch's error and stops what has not started.
    pub keep_going: bool,
}

/// One image to build: a recipe's tier, for its targets.
pub struct Job<'r> {
    pub recipe: &'r Recipe,
    pub tier: Tier,
    pub targets: Targets,
}

/// An image that was not built, and why.
#[derive(Debug, Serialize)]
pub struct Failure {
    pub image: String,
    pub tier: Tier,
    pub error: String,
}

pub struct BatchPlan<'r> {
    /// In the order they start.
    pub jobs: Vec<Job<'r>>,
    /// Recipes whose platforms could not be chosen (only when keeping going).
    pub failures: Vec<Failure>,
    /// Listed platforms this machine cannot build, each with how to build it.
    pub skipped_platforms: Vec<SkippedPlatform>,
    pub jobs_at_once: usize,
    pub keep_going: bool,
}

impl<'r> BatchPlan<'r> {
    pub fn new(
        recipes: &'r [Recipe],
        request: &BatchRequest<'_>,
        ctx: &BuildContext<'_>,
    ) -> Result<BatchPlan<'r>> {
        let mut plan = BatchPlan {
            jobs: Vec::new(),
            failures: Vec::new(),
            skipped_platforms: Vec::new(),
            jobs_at_once: request.jobs.max(1),
            keep_going: request.keep_going,
        };
        for r in recipes {
            match platform_selection(r, request.platforms, ctx) {
                Ok(s) => {
                    for p in &s.skipped {
                        tracing::warn!("{p}");
                    }
                    plan.skipped_platforms.extend(s.skipped);
                    let targets = Targets {
                        systems: s.build,
                        index: s.index,
                    };
                    for &tier in &request.tiers {
                        plan.jobs.push(Job {
                            recipe: r,
                            tier,
                            targets: targets.clone(),
                        });
                    }
                }
                Err(e) if !request.keep_going => return Err(e),
                Err(e) => {
                    tracing::error!("{e:#}");
                    for &tier in &request.tiers {
                        plan.failures.push(Failure {
                            image: r.image.name.clone(),
                            tier,
                            error: format!("{e:#}"),
                        });
                    }
                }
            }
        }
        Ok(plan)
    }
}

/// Which of `r`'s platforms to build here. Nix is asked what it can build
/// only when a platform other than this machine's is wanted.
fn platform_selection(
    r: &Recipe,
    wanted: &[String],
    ctx: &BuildContext<'_>,
) -> Result<PlatformSelection> {
    let listed = r.platforms();
    let chosen = platform::selected(&r.image.name, &listed, wanted).map_err(InputError::Invalid)?;
    let host = System::host().unwrap_or(System::X86_64_LINUX);
    let nix = if chosen.iter().all(|p| p == host.as_str()) {
        NixCapabilities::local(&host)
    } else {
        nix::capabilities(&ctx.nix.options).context("asking Nix which platforms it can build")?
    };
    let package_set = ctx.plan_options.package_set;
    Ok(
        platform::select(&r.image.name, &listed, wanted, &nix, package_set)
            .map_err(InputError::Invalid)?,
    )
}

/// What a batch did: the images built (each with what `ship` returned for
/// it), in plan order, and the ones that failed.
pub struct BatchOutcome<T> {
    pub built: Vec<(BuildOutcome, T)>,
    pub failures: Vec<Failure>,
    pub skipped_platforms: Vec<SkippedPlatform>,
}

/// Runs `plan`: `jobs_at_once` images at a time, each built by the pipeline
/// and then passed to `ship`. Keeping going, a failure is recorded and the
/// rest go on; otherwise it stops what has not started and is returned.
pub fn execute<T: Send>(
    plan: BatchPlan<'_>,
    ctx: &BuildContext<'_>,
    ship: impl Fn(&BuildOutcome) -> Result<T> + Sync,
) -> Result<BatchOutcome<T>> {
    let BatchPlan {
        jobs,
        mut failures,
        skipped_platforms,
        jobs_at_once,
        keep_going,
    } = plan;
    let results = crate::parallel::map_until(
        &jobs,
        jobs_at_once,
        |job| {
            let shipped = pipeline::build_one(ctx, job.recipe, job.tier, &job.targets)
                .and_then(|o| ship(&o).map(|t| (o, t)));
            let name = &job.recipe.image.name;
            match &shipped {
                Ok((o, _)) => ctx
                    .reporter
                    .finished(name, job.tier, Ok(&o.manifest_digest)),
                Err(e) => ctx.reporter.finished(name, job.tier, Err(&e.to_string())),
            }
            shipped
        },
        |res| !keep_going && res.is_err(),
    );
    let mut built = Vec::new();
    for (job, res) in jobs.iter().zip(results) {
        match res {
            Some(Ok(done)) => built.push(done),
            // A single image's failure is the batch's failure.
            Some(Err(e)) if !keep_going => return Err(e),
            Some(Err(e)) => {
                tracing::error!("{} ({}) failed: {e:#}", job.recipe.image.name, job.tier);
                failures.push(Failure {
                    image: job.recipe.image.name.clone(),
                    tier: job.tier,
                    error: format!("{e:#}"),
                });
            }
            // Not started: an earlier image failed, and its error returned.
            None => {}
        }
    }
    Ok(BatchOutcome {
        built,
        failures,
        skipped_platforms,
    })
}

impl<T> BatchOutcome<T> {
    /// One line per image (ok with its digest, or FAILED with the first line
    /// of why), then the counts.
    pub fn summary_table(&self) -> String {
        let mut table = String::from("build summary:\n");
        for (o, _) in &self.built {
            table.push_str(&format!(
                "  ok      {:<20} {:<9} {}\n",
                o.image, o.tier, o.manifest_digest
            ));
        }
        for f in &self.failures {
            table.push_str(&format!(
                "  FAILED  {:<20} {:<9} {}\n",
                f.image,
                f.tier,
                f.error.lines().next().unwrap_or("")
            ));
        }
        table.push_str(&format!(
            "  {} built, {} failed\n",
            self.built.len(),
            self.failures.len()
        ));
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nix::NixEnv;
    use crate::oci::facts::ScanLayers;
    use crate::oci::image::DirectLayers;
    use crate::pipeline::LogReporter;
    use crate::plan::PlanOptions;
    use std::path::Path;

    fn recipe(name: &str) -> Recipe {
        let text = crate::recipe::tests_support::NGINX
            .replace("name = \"nginx\"", &format!("name = \"{name}\""));
        Recipe::parse(&text, &Path::new("recipes").join(format!("{name}.toml"))).unwrap()
    }

    fn ctx() -> BuildContext<'static> {
        BuildContext {
            plan_options: PlanOptions::default(),
            nix: NixEnv::default(),
            out_dir: "out".into(),
            compression: Default::default(),
            layer_jobs: 1,
            layers: &DirectLayers,
            facts: &ScanLayers,
            reporter: &LogReporter,
            sign_key: None,
        }
    }

    fn request(platforms: &[String], keep_going: bool) -> BatchRequest<'_> {
        BatchRequest {
            tiers: vec![Tier::Hardened, Tier::Locked],
            platforms,
            jobs: 0,
            keep_going,
        }
    }

    #[test]
    fn jobs_are_recipes_times_tiers_in_order_for_this_machine() {
        let recipes = [recipe("a"), recipe("b")];
        let plan = BatchPlan::new(&recipes, &request(&[], false), &ctx()).unwrap();
        let order: Vec<(&str, Tier)> = plan
            .jobs
            .iter()
            .map(|j| (j.recipe.image.name.as_str(), j.tier))
            .collect();
        assert_eq!(
            order,
            [
                ("a", Tier::Hardened),
                ("a", Tier::Locked),
                ("b", Tier::Hardened),
                ("b", Tier::Locked)
            ]
        );
        let host = System::host().unwrap_or(System::X86_64_LINUX);
        assert!(plan
            .jobs
            .iter()
            .all(|j| j.targets.systems == [host.clone()] && !j.targets.index));
        // At least one image at a time, whatever was asked.
        assert_eq!(plan.jobs_at_once, 1);
        assert!(plan.failures.is_empty());
    }

    #[test]
    fn an_unlisted_platform_fails_the_batch_or_each_tier_when_keeping_going() {
        let recipes = [recipe("a")];
        let wanted = vec!["riscv64-linux".to_string()];
        let err = BatchPlan::new(&recipes, &request(&wanted, false), &ctx())
            .err()
            .expect("an unlisted platform is an error");
        assert!(
            format!("{err:#}").contains("--platform riscv64-linux"),
            "{err:#}"
        );
        let plan = BatchPlan::new(&recipes, &request(&wanted, true), &ctx()).unwrap();
        assert!(plan.jobs.is_empty());
        let failed: Vec<Tier> = plan.failures.iter().map(|f| f.tier).collect();
        assert_eq!(failed, [Tier::Hardened, Tier::Locked]);
    }
}
