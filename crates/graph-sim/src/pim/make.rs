//! Seed-generated PIM content of a mailbox or a group calendar.

use rand::Rng;

use super::{Mailbox, calendar, contacts, item_id, todo};
use crate::Sim;
use crate::delta::DeltaLog;
use crate::rng::{SimRng, rng_for};

/// How many items a generated container holds, scaled by `content_scale`.
pub(crate) fn scaled(sim: &Sim, base: usize) -> usize {
    let s = sim.cfg.content_scale.max(0.0);
    ((base as f64) * s).round() as usize
}

/// The empty mailbox of `owner` (well-known containers only).
fn empty(sim: &Sim, owner_id: &str, name: &str, address: &str, is_group: bool) -> Mailbox {
    let seed = sim.seed();
    let mut mb = Mailbox {
        owner_id: owner_id.to_string(),
        owner_name: name.to_string(),
        owner_address: address.to_string(),
        is_group,
        default_folder: item_id(seed, &["pim", owner_id, "folder", "contacts"]),
        folders: DeltaLog::new(),
        default_calendar: item_id(seed, &["pim", owner_id, "calendar", "default"]),
        calendars: Vec::new(),
        default_list: item_id(seed, &["pim", owner_id, "list", "default"]),
        lists: DeltaLog::new(),
        created_count: 0,
    };
    let at = crate::generation_anchor() - chrono::Duration::days(400);
    if !is_group {
        contacts::add_default_folder(&mut mb, at);
        todo::add_default_list(&mut mb, at);
    }
    calendar::add_default_calendar(&mut mb, at);
    mb
}

pub(crate) fn user_mailbox(
    sim: &Sim,
    id: &str,
    name: &str,
    address: &str,
    generated: bool,
) -> Mailbox {
    let mut mb = empty(sim, id, name, address, false);
    if !generated {
        return mb;
    }
    let mut rng = rng_for(sim.seed(), &["pim", id]);
    let people = colleagues(sim, &mut rng, 8);
    contacts::generate(sim, &mut mb, &mut rng);
    calendar::generate(sim, &mut mb, &mut rng, &people);
    todo::generate(sim, &mut mb, &mut rng);
    mb
}

pub(crate) fn group_mailbox(
    sim: &Sim,
    id: &str,
    name: &str,
    address: &str,
    members: &[(String, String)],
    generated: bool,
) -> Mailbox {
    let mut mb = empty(sim, id, name, address, true);
    if !generated {
        return mb;
    }
    let mut rng = rng_for(sim.seed(), &["pim", "group", id]);
    let mut people = members.to_vec();
    if people.is_empty() {
        people = colleagues(sim, &mut rng, 4);
    }
    calendar::generate(sim, &mut mb, &mut rng, &people);
    mb
}

/// Up to `n` people of the tenant (display name, address) to invite.
pub(crate) fn colleagues(sim: &Sim, rng: &mut SimRng, n: usize) -> Vec<(String, String)> {
    let dir = sim.directory.read();
    // Seed-generated users only (deleted ones too), so a mailbox generated
    // again after eviction is the same whatever happened in the directory.
    let users: Vec<(String, String)> = dir
        .users
        .iter()
        .filter(|u| u.generated && u.has_mailbox)
        .take(200)
        .map(|u| {
            (
                u.display_name.clone(),
                u.mail.clone().unwrap_or_else(|| u.upn.clone()),
            )
        })
        .collect();
    if users.is_empty() {
        return vec![("Megan Bowen".into(), format!("meganb@{}", sim.cfg.domain))];
    }
    (0..n)
        .map(|_| users[rng.random_range(0..users.len())].clone())
        .collect()
}
