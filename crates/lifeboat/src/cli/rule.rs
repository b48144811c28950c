//! `lifeboat rule ...`: bulk activation rules (SPEC F-C5).

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use std::path::PathBuf;

use catalog::{Deactivation, NewRule, RuleDefinition, RuleId, RuleMode, UrlMatch};

use super::Ctx;

#[derive(Subcommand)]
pub enum RuleCmd {
    /// Create a rule and apply it now (after a fresh discovery). Choose one
    /// of --property/--value, --group, --url-*, --csv.
    Create {
        /// The task.
        #[arg(long)]
        task: String,
        /// A directory property (department, city, companyName, country,
        /// jobTitle, officeLocation, ageGroup, accountEnabled).
        #[arg(long, requires = "values")]
        property: Option<String>,
        /// Accepted values of --property (repeat for several).
        #[arg(long = "value")]
        values: Vec<String>,
        /// Members of this Microsoft 365 group (Graph id).
        #[arg(long)]
        group: Option<String>,
        /// Sites whose URL begins with this.
        #[arg(long)]
        url_begins_with: Option<String>,
        /// Sites whose URL ends with this.
        #[arg(long)]
        url_ends_with: Option<String>,
        /// Sites whose URL contains this.
        #[arg(long)]
        url_contains: Option<String>,
        /// A CSV file with an "Account Email" column.
        #[arg(long)]
        csv: Option<PathBuf>,
        /// Re-evaluate the rule after every daily discovery.
        #[arg(long)]
        recurring: bool,
        /// For recurring rules: keep, pause or delete entities that leave the rule.
        #[arg(long, default_value = "keep")]
        on_leave: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// List a task's rules.
    List {
        /// The task.
        #[arg(long)]
        task: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Delete a rule (the entities it activated stay as they are).
    Delete {
        /// The rule id.
        id: String,
    },
}

pub async fn run_rule(ctx: &Ctx, cmd: RuleCmd) -> Result<()> {
    match cmd {
        RuleCmd::Create {
            task,
            property,
            values,
            group,
            url_begins_with,
            url_ends_with,
            url_contains,
            csv,
            recurring,
            on_leave,
            json,
        } => {
            let task = ctx.task(&task).await?;
            let deactivation: Deactivation = on_leave
                .parse()
                .map_err(|_| anyhow::anyhow!("--on-leave is keep, pause or delete"))?;
            let mut problems = Vec::new();
            let url = |m: UrlMatch, v: String| RuleDefinition::Url {
                match_: m,
                value: v,
            };
            let mut chosen: Vec<RuleDefinition> = Vec::new();
            if let Some(p) = property {
                chosen.push(RuleDefinition::Property {
                    property: p,
                    values,
                });
            }
            if let Some(g) = group {
                chosen.push(RuleDefinition::Group {
                    group_id: g,
                    group_name: String::new(),
                });
            }
            if let Some(v) = url_begins_with {
                chosen.push(url(UrlMatch::BeginsWith, v));
            }
            if let Some(v) = url_ends_with {
                chosen.push(url(UrlMatch::EndsWith, v));
            }
            if let Some(v) = url_contains {
                chosen.push(url(UrlMatch::Contains, v));
            }
            if let Some(f) = csv {
                let text = std::fs::read_to_string(&f)
                    .with_context(|| format!("reading {}", f.display()))?;
                let (emails, p) = catalog::parse_account_csv(&text)?;
                problems = p;
                if emails.is_empty() {
                    for p in &problems {
                        eprintln!("{}:{}: {}", f.display(), p.line, p.reason);
                    }
                    bail!("{} has no usable Account Email rows", f.display());
                }
                chosen.push(RuleDefinition::Csv { emails });
            }
            let definition = match chosen.len() {
                1 => chosen.remove(0),
                0 => bail!("choose what the rule matches: --property, --group, --url-*, or --csv"),
                _ => bail!(
                    "a rule matches one thing: give only one of --property, --group, --url-*, --csv"
                ),
            };
            let rule = ctx
                .rt
                .catalog
                .create_rule(
                    ctx.account,
                    NewRule {
                        task_id: task.id,
                        definition,
                        mode: if recurring {
                            RuleMode::Recurring
                        } else {
                            RuleMode::Once
                        },
                        deactivation,
                    },
                )
                .await?;
            let discovery = worker::discover_task(&ctx.rt, ctx.account, task.id, None).await?;
            // Discovery already applied a recurring rule (with the task's
            // others): that run is the one that activated entities; applying
            // it again would report none activated.
            let rule_id = rule.id.to_string();
            let outcome = match discovery.rules.into_iter().find(|o| o.rule_id == rule_id) {
                Some(o) => o,
                None => worker::apply_rule(&ctx.rt, ctx.account, &rule).await?,
            };
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "rule": rule,
                        "outcome": outcome,
                        "csv_problems": problems,
                    }))?
                );
            } else {
                println!("{}", rule.id);
                eprintln!(
                    "{} entities match; {} activated now{}",
                    outcome.matched,
                    outcome.activated,
                    if outcome.backed_up_elsewhere > 0 {
                        format!(
                            "; {} already backed up in another task",
                            outcome.backed_up_elsewhere
                        )
                    } else {
                        String::new()
                    }
                );
                for p in &problems {
                    eprintln!("CSV line {}: {}", p.line, p.reason);
                }
                for e in &outcome.unmatched {
                    eprintln!("no entity in the task has the address {e}");
                }
            }
            Ok(())
        }
        RuleCmd::List { task, json } => {
            let task = ctx.task(&task).await?;
            let rules = ctx
                .rt
                .catalog
                .list_rules(ctx.account, Some(task.id))
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rules)?);
            } else {
                println!(
                    "{:<36}  {:<9}  {:<8}  {:<16}  matches",
                    "id", "mode", "on leave", "last run"
                );
                for r in rules {
                    let what = match &r.definition {
                        RuleDefinition::Property { property, values } => {
                            format!("{property} in [{}]", values.join(", "))
                        }
                        RuleDefinition::Group {
                            group_id,
                            group_name,
                        } => {
                            format!(
                                "members of {}",
                                if group_name.is_empty() {
                                    group_id
                                } else {
                                    group_name
                                }
                            )
                        }
                        RuleDefinition::Url { match_, value } => format!("URL {match_} {value}"),
                        RuleDefinition::Csv { emails } => {
                            format!("{} addresses from a CSV", emails.len())
                        }
                    };
                    println!(
                        "{:<36}  {:<9}  {:<8}  {:<16}  {what}",
                        r.id,
                        r.mode,
                        r.deactivation,
                        r.last_evaluated_at
                            .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                            .unwrap_or_else(|| "never".into()),
                    );
                }
            }
            Ok(())
        }
        RuleCmd::Delete { id } => {
            let rid: RuleId = id
                .trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("'{id}' is not a rule id"))?;
            match ctx.rt.catalog.delete_rule(ctx.account, rid).await {
                Ok(()) => {
                    eprintln!("rule {id} deleted");
                    Ok(())
                }
                Err(catalog::Error::NotFound(_)) => {
                    bail!("rule {id} not found in account '{}'", ctx.account_name)
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}
