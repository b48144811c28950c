//! Deterministic randomness. Every generated thing (a user, a mailbox, a
//! message, a file's bytes) draws from its own generator seeded by the tenant
//! seed and a path of labels, so any part of the tenant can be generated on
//! its own, in any order, and is the same every time.

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub type SimRng = ChaCha8Rng;

/// A generator for the thing named by `labels` in the tenant seeded by `seed`.
pub fn rng_for(seed: u64, labels: &[&str]) -> SimRng {
    SimRng::from_seed(seed_bytes(seed, labels))
}

fn seed_bytes(seed: u64, labels: &[&str]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(&seed.to_le_bytes());
    for l in labels {
        h.update(&(l.len() as u64).to_le_bytes());
        h.update(l.as_bytes());
    }
    *h.finalize().as_bytes()
}

/// A GUID that is stable for `(seed, labels)`, formatted like Azure AD object ids.
pub fn stable_guid(seed: u64, labels: &[&str]) -> uuid::Uuid {
    let b = seed_bytes(seed, labels);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&b[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

pub const FIRST_NAMES: &[&str] = &[
    "Adele",
    "Alex",
    "Allan",
    "Christie",
    "Debra",
    "Diego",
    "Emily",
    "Enrico",
    "Grady",
    "Henrietta",
    "Irvin",
    "Isaiah",
    "Johanna",
    "Joni",
    "Lee",
    "Lidia",
    "Lynne",
    "Megan",
    "Miriam",
    "Nestor",
    "Patti",
    "Pradeep",
    "Amara",
    "Björn",
    "Chloé",
    "Dmitri",
    "Eun-ji",
    "Farah",
    "Giulia",
    "Hiroshi",
    "Ingrid",
    "Jamal",
    "Kofi",
    "Laila",
    "Mateo",
    "Noémie",
    "Oskar",
    "Priya",
    "Quentin",
    "Rosa",
    "Søren",
    "Tomás",
    "Uma",
    "Valentina",
    "Wei",
    "Ximena",
    "Yusuf",
    "Zofia",
    "Zoë",
    "Ngozi",
];

pub const LAST_NAMES: &[&str] = &[
    "Vance",
    "Wilber",
    "Deyoung",
    "Cline",
    "Berg",
    "Siciliani",
    "Braun",
    "Gray",
    "Archer",
    "Sherman",
    "Moreno",
    "Patel",
    "Lauer",
    "Sullivan",
    "Gu",
    "Holloway",
    "Valdez",
    "Bowen",
    "Wilson",
    "Stevens",
    "Ahmed",
    "Okafor",
    "Müller",
    "García",
    "Kowalski",
    "Nakamura",
    "Rossi",
    "Dubois",
    "Novak",
    "Larsen",
    "Hansen",
    "Fernández",
    "Kim",
    "Nguyen",
    "O'Brien",
    "Schmidt",
    "Jensen",
    "Popescu",
    "Yılmaz",
    "Costa",
];

pub const DEPARTMENTS: &[&str] = &[
    "Sales",
    "Marketing",
    "Finance",
    "Legal",
    "Engineering",
    "Operations",
    "Human Resources",
    "Research & Development",
    "Customer Support",
    "IT",
];

pub const JOB_TITLES: &[&str] = &[
    "Account Manager",
    "Marketing Specialist",
    "Financial Analyst",
    "Corporate Counsel",
    "Software Engineer",
    "Operations Lead",
    "HR Partner",
    "Research Scientist",
    "Support Engineer",
    "Systems Administrator",
    "Director",
    "Product Manager",
    "Designer",
    "Accountant",
];

/// (city, country, office)
pub const CITIES: &[(&str, &str, &str)] = &[
    ("Seattle", "United States", "18/2111"),
    ("London", "United Kingdom", "LON-4/101"),
    ("Berlin", "Germany", "BER-2/210"),
    ("Paris", "France", "PAR-1/015"),
    ("Tokyo", "Japan", "TYO-7/702"),
    ("São Paulo", "Brazil", "SAO-3/303"),
    ("Sydney", "Australia", "SYD-12/01"),
    ("Toronto", "Canada", "TOR-5/520"),
];

pub const COMPANIES: &[&str] = &["Contoso", "Contoso Europe", "Contoso Asia Pacific"];

pub const WORDS: &[&str] = &[
    "quarterly",
    "report",
    "budget",
    "review",
    "meeting",
    "project",
    "launch",
    "customer",
    "contract",
    "proposal",
    "invoice",
    "schedule",
    "design",
    "update",
    "roadmap",
    "team",
    "offsite",
    "training",
    "security",
    "audit",
    "release",
    "draft",
    "final",
    "notes",
    "agenda",
    "forecast",
    "pipeline",
    "migration",
    "backup",
    "policy",
    "hiring",
    "onboarding",
    "feedback",
    "summary",
    "analysis",
    "strategy",
    "planning",
    "workshop",
    "deadline",
    "approval",
    "renewal",
    "partner",
    "vendor",
    "shipment",
    "inventory",
    "campaign",
    "webinar",
    "survey",
    "benchmark",
    "prototype",
    "résumé",
    "naïve",
    "façade",
    "Übersicht",
    "日本語",
    "données",
    "señal",
    "øvelse",
    "📎",
    "✓",
];

pub fn pick<'a, T>(rng: &mut SimRng, items: &'a [T]) -> &'a T {
    items.choose(rng).expect("non-empty constant list")
}

/// A few words, first letter capitalised, like a subject line.
pub fn title(rng: &mut SimRng, min: usize, max: usize) -> String {
    let n = rng.random_range(min..=max);
    let mut out = String::new();
    for i in 0..n {
        let w = *pick(rng, WORDS);
        if i == 0 {
            let mut c = w.chars();
            if let Some(f) = c.next() {
                out.extend(f.to_uppercase());
                out.push_str(c.as_str());
            }
        } else {
            out.push(' ');
            out.push_str(w);
        }
    }
    out
}

/// A paragraph of `sentences` sentences.
pub fn paragraph(rng: &mut SimRng, sentences: usize) -> String {
    let mut out = String::new();
    for i in 0..sentences {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&title(rng, 5, 14));
        out.push('.');
    }
    out
}

/// Deterministic bytes for generated file and attachment content.
/// `compressible` content looks like text; otherwise it is high-entropy.
pub fn content_bytes(seed: u64, labels: &[&str], len: usize, compressible: bool) -> Vec<u8> {
    let mut rng = rng_for(seed, labels);
    if compressible {
        let mut out = Vec::with_capacity(len + 64);
        while out.len() < len {
            out.extend_from_slice(paragraph(&mut rng, 3).as_bytes());
            out.push(b'\n');
        }
        out.truncate(len);
        out
    } else {
        let mut out = vec![0u8; len];
        rng.fill(&mut out[..]);
        out
    }
}

/// Hex BLAKE3 of some bytes: the content hash used by ground-truth dumps.
pub fn hash_hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}
