//! A deterministic generator of a realistic multi-tenant support repo (a support bot's few-shot
//! examples, provenance manifests, prompt scopes) and of its traces, with planted leaks of every class
//! the scan knows and decoys that must stay quiet. The labels (what a correct scan reports at
//! severity ≥ high) are kept apart from the scanned tree: [`Corpus::write_to`] writes them beside it.
//!
//! Used by the recall/precision test and by `benches/scan.rs`; [`FewShotStore`] (in `store.rs`) is the
//! same kind of repo at the scale of the performance budget, with trace files of any size. Every planted
//! secret is random text of the right shape, never an issued credential.

use std::fmt::Write as _;
use std::path::Path;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::json;

use super::{PromptInput, ScanInputs, SourceFile};

mod store;

pub use store::{FewShotStore, PlantedOrigin, StoreShape, TraceFileStats, TraceMix, prompt_repo};

/// SplitMix64: small, fast and stable across versions of everything.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    pub fn chars(&mut self, n: usize, alphabet: &str) -> String {
        let a: Vec<char> = alphabet.chars().collect();
        (0..n).map(|_| *self.pick(&a)).collect()
    }

    pub fn digits(&mut self, n: usize) -> String {
        self.chars(n, DIGITS)
    }
}

const DIGITS: &str = "0123456789";
const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const UPPER_ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const URLSAFE: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
const BASE64: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// What a correct scan reports at severity ≥ high.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Label {
    pub rule: String,
    pub path: String,
    pub example_id: Option<String>,
    /// For findings outside examples (a secret in a `.prompt` file).
    pub line: Option<usize>,
}

/// The generated repo, traces and labels.
pub struct Corpus {
    pub inputs: ScanInputs,
    /// promptctl JSONL.
    pub traces: Vec<u8>,
    pub labels: Vec<Label>,
    /// Raw planted values (secrets, card numbers, IBANs, SSNs) that no output may contain.
    pub planted: Vec<String>,
    pub tenants: Vec<String>,
    /// Pieces the bench generator reuses.
    support: PromptPlan,
    billing: PromptPlan,
}

/// What the trace generator needs to know about a prompt.
#[derive(Clone)]
struct PromptPlan {
    name: String,
    system: String,
    /// Current examples as (user, assistant) turns, rendered after deploy.
    examples: Vec<(String, String)>,
    /// The previous version's examples, rendered before deploy (same count).
    old_examples: Vec<(String, String)>,
    deployed_at: Timestamp,
}

const TENANTS: &[&str] = &[
    "acme",
    "globex",
    "initech",
    "umbrella",
    "brightside",
    "kestrel",
    "orchid",
    "northwind",
    "hooli",
    "vandelay",
    "wonka",
    "stark",
    "wayne",
    "tyrell",
    "cyberdyne",
    "soylent",
    "gringotts",
    "duff",
    "oceanic",
    "monarch",
    "aperture",
    "blackmesa",
    "massive",
    "octan",
    "paper-street",
    "prestige",
    "sterling",
    "virtucon",
    "zorg",
    "nakatomi",
    "ollivander",
    "pied-piper",
    "dunder",
    "bluth",
    "krusty",
    "lacroix",
    "gekko",
    "rekall",
    "tessier",
    "yoyodyne",
];

const FIRST: &[&str] =
    &["Dana", "Priya", "Marco", "Aiko", "Sven", "Lena", "Omar", "Grace", "Tomás", "Wei", "Nadia", "Jonas"];
const LAST: &[&str] = &[
    "Whitfield",
    "Raman",
    "Bellini",
    "Tanaka",
    "Lindqvist",
    "Hofer",
    "Haddad",
    "Mbeki",
    "Ortega",
    "Zhang",
    "Petrova",
    "Keller",
];
const PRODUCTS: &[&str] = &[
    "standing desk",
    "espresso grinder",
    "router",
    "hiking boots",
    "label printer",
    "webcam",
    "air purifier",
    "keyboard",
    "monitor arm",
    "water filter",
];
const CITIES: &[&str] = &["Lyon", "Austin", "Leeds", "Osaka", "Porto", "Denver", "Graz", "Tampere", "Cork", "Halifax"];
const WEEKDAYS: &[&str] = &["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"];

/// User message templates: every one has a fill, so that two tenants never share long runs by accident.
const USER_TEMPLATES: &[&str] = &[
    "The {product} I ordered on {weekday} still shows as processing, order {order}.",
    "Can you change the delivery address for order {order} to our office in {city}?",
    "I got a {product} with a cracked casing, what are my options? Order {order}.",
    "We were billed {amount} instead of the quoted price on invoice {order}.",
    "Is there a way to add a second user to our account before {weekday}?",
    "My {product} stopped working after the firmware update yesterday in {city}.",
    "Please cancel order {order}, we found a local supplier in {city}.",
    "Hi, it's {name}. The courier left the {product} at the wrong door again.",
    "Do you ship the {product} to {city} and how long does it usually take?",
    "Our finance team needs a VAT invoice for order {order} by {weekday}.",
    "{name} here, the replacement {product} arrived but the charger is missing.",
    "The tracking number for {order} says delivered but nothing came to {city}.",
];

const ASSISTANT_TEMPLATES: &[&str] = &[
    "Thanks {name}, I have escalated order {order} to our logistics team in {city}.",
    "I've issued a prepaid return label for the {product}; it should reach you by {weekday}.",
    "A refund of {amount} has been approved for order {order} and will post in 3-5 days.",
    "I've updated the address on order {order}; the {product} will ship from {city}.",
    "Sorry about that, {name}. A replacement {product} is on its way, reference {order}.",
    "Your VAT invoice for order {order} is attached; let me know if {city} needs another copy.",
];

const SYSTEM_SUPPORT: &str = "You are Ferris, the support agent for Parcelwise. Be concise, apologize once, never promise dates you cannot keep, and never reveal internal notes or other customers' details.";
const SYSTEM_BILLING: &str = "You are the billing assistant for Acme's Parcelwise account. Answer only billing questions and cite invoice numbers.";

/// Stock customer phrasing many tenants write themselves (and one synthetic example repeats).
const COMMON_PHRASE: &str =
    "Hi, I was charged twice for my subscription this month and I would like a refund for the duplicate charge please.";

struct Fill<'r> {
    rng: &'r mut Rng,
}

impl Fill<'_> {
    fn render(&mut self, template: &str) -> String {
        let mut out = template.to_string();
        while let Some(start) = out.find('{') {
            let Some(len) = out[start..].find('}') else {
                break;
            };
            let key = out[start + 1..start + len].to_string();
            let value = self.value(&key);
            out.replace_range(start..start + len + 1, &value);
        }
        out
    }

    fn value(&mut self, key: &str) -> String {
        match key {
            "product" => self.rng.pick(PRODUCTS).to_string(),
            "weekday" => self.rng.pick(WEEKDAYS).to_string(),
            "city" => self.rng.pick(CITIES).to_string(),
            "order" => format!("A{}", self.rng.digits(8)),
            "amount" => format!("${}.{}", 20 + self.rng.below(400), self.rng.digits(2)),
            "name" => format!("{} {}", self.rng.pick(FIRST), self.rng.pick(LAST)),
            _ => key.to_string(),
        }
    }

    fn sentences(&mut self, templates: &[&str], n: usize) -> String {
        (0..n)
            .map(|_| {
                let t = *self.rng.pick(templates);
                self.render(t)
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// One few-shot example as generated.
struct ExampleSpec {
    id: String,
    input: String,
    output: String,
    provenance: Option<serde_json::Value>,
}

fn example(
    id: &str,
    input: impl Into<String>,
    output: impl Into<String>,
    provenance: serde_json::Value,
) -> ExampleSpec {
    ExampleSpec { id: id.to_string(), input: input.into(), output: output.into(), provenance: Some(provenance) }
}

fn synthetic(id: &str) -> serde_json::Value {
    json!({"id": id, "source": "synthetic"})
}

fn mined(id: &str, tenant: &str) -> serde_json::Value {
    json!({"id": id, "source": "mined_trace", "source_tenant": tenant, "source_trace_ids": [format!("tr-{id}")],
           "redaction": "names and order numbers replaced", "approved_by": "lena.hofer", "approved_at": "2026-10-12"})
}

/// Random values in the shape each secret rule expects, with the rule id.
fn planted_secrets(rng: &mut Rng) -> Vec<(&'static str, String, String)> {
    let jwt = format!("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ{}.{}", rng.chars(60, URLSAFE), rng.chars(43, URLSAFE));
    let pem_body: Vec<String> = (0..3).map(|_| rng.chars(64, BASE64)).collect();
    vec![
        (
            "secret.openai_api_key",
            format!("sk-proj-{}", rng.chars(64, URLSAFE)),
            "Our bot config says OPENAI_API_KEY={}, is that why replies fail?",
        ),
        (
            "secret.anthropic_api_key",
            format!("sk-ant-api03-{}AA", rng.chars(93, URLSAFE)),
            "We set ANTHROPIC_API_KEY={} in the integration settings.",
        ),
        (
            "secret.aws_access_key_id",
            format!("AKIA{}", rng.chars(16, UPPER_ALNUM)),
            "The export job uses aws_access_key_id = {} for the bucket.",
        ),
        (
            "secret.aws_secret_access_key",
            rng.chars(40, &format!("{ALNUM}/+")),
            "and aws_secret_access_key = {} in the same file.",
        ),
        (
            "secret.github_token",
            format!("ghp_{}", rng.chars(36, ALNUM)),
            "Our CI pushes with GITHUB_TOKEN={} to the webhook repo.",
        ),
        (
            "secret.slack_token",
            format!("xoxb-{}-{}-{}", rng.digits(12), rng.digits(13), rng.chars(24, ALNUM)),
            "Notifications go through SLACK_BOT_TOKEN={} now.",
        ),
        (
            "secret.slack_webhook",
            format!(
                "https://hooks.slack.com/services/T{}/B{}/{}",
                rng.chars(8, UPPER_ALNUM),
                rng.chars(10, UPPER_ALNUM),
                rng.chars(24, ALNUM)
            ),
            "Alerts post to {} when a parcel is lost.",
        ),
        (
            "secret.stripe_live_key",
            format!("sk_live_{}", rng.chars(24, ALNUM)),
            "Billing runs with STRIPE_KEY={} on the server.",
        ),
        (
            "secret.google_api_key",
            format!("AIza{}", rng.chars(35, URLSAFE)),
            "Maps lookups use GOOGLE_API_KEY={} for addresses.",
        ),
        ("secret.jwt", jwt, "The portal sent Authorization: Bearer {} and got a 401."),
        (
            "secret.private_key",
            format!("-----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----", pem_body.join("\n")),
            "Here is the key from our SFTP setup:\n{}",
        ),
        (
            "secret.database_uri",
            format!("postgres://billing:{}@db-prod.internal:5432/billing", rng.chars(18, ALNUM)),
            "Reports read from DATABASE_URL={} every night.",
        ),
    ]
    .into_iter()
    .map(|(rule, value, template)| (rule, value.clone(), template.replace("{}", &value)))
    .collect()
}

fn luhn_complete(prefix: &str) -> String {
    let digits: Vec<u32> = prefix.bytes().map(|b| u32::from(b - b'0')).collect();
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    format!("{prefix}{}", (10 - sum % 10) % 10)
}

fn card_number(rng: &mut Rng) -> String {
    let n = luhn_complete(&format!("4{}", rng.digits(14)));
    n.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).unwrap_or("")).collect::<Vec<_>>().join(" ")
}

fn german_iban(rng: &mut Rng) -> String {
    let bban = rng.digits(18);
    let numeric = format!("{bban}131400");
    let rem = numeric.bytes().fold(0u32, |r, b| (r * 10 + u32::from(b - b'0')) % 97);
    let compact = format!("DE{:02}{bban}", 98 - rem);
    compact.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).unwrap_or("")).collect::<Vec<_>>().join(" ")
}

fn ssn(rng: &mut Rng) -> String {
    format!("{}-{:02}-{:04}", 100 + rng.below(500), 1 + rng.below(98), 1 + rng.below(9998))
}

/// Traces that carry planted text, by tenant (`""`: a record without tenant id).
struct Plants {
    /// (tenant, prompt, before deploy?, role: user | tool | output, text)
    messages: Vec<(String, &'static str, bool, &'static str, String)>,
}

/// The standard corpus (seed 7): 3 prompts, 2 example files, 40 tenants.
pub fn support_corpus() -> Corpus {
    build_corpus(7, 24)
}

/// A corpus with `records_per_tenant` trace records per tenant.
pub fn build_corpus(seed: u64, records_per_tenant: usize) -> Corpus {
    let mut rng = Rng::new(seed);
    let mut labels = Vec::new();
    let mut planted = Vec::new();
    let mut plants = Plants { messages: Vec::new() };
    let support_path = "prompts/support-reply.examples.yaml";
    let billing_path = "prompts/billing/billing-help.examples.jsonl";
    let label = |rule: &str, path: &str, ex: Option<&str>| Label {
        rule: rule.to_string(),
        path: path.to_string(),
        example_id: ex.map(str::to_string),
        line: None,
    };

    // --- support-reply examples ---
    let mut ex: Vec<ExampleSpec> = Vec::new();
    ex.push(example(
        "ex-01",
        "My order #4411 never arrived and the tracking page has not moved since Tuesday.",
        "I'm sorry to hear that. I've opened a trace with the carrier and will update you within 24 hours.",
        synthetic("ex-01"),
    ));
    ex.push(ExampleSpec {
        id: "ex-02".into(),
        input: "How do I reset my password if I no longer have access to my old email?".into(),
        output: "Use the 'Forgot password' link and choose 'I can't access this email'; we'll verify you by phone."
            .into(),
        provenance: None,
    });
    ex.push(example("ex-03", COMMON_PHRASE, "I'm sorry about the double charge. I've refunded the duplicate; it will show on your statement in 3-5 business days.", synthetic("ex-03")));
    let origin_exposed = format!(
        "Hi, this is {} from Brightside Dental in {}: our second clinic got the shipment of 40 chairs meant for the main office, and the driver refused to take them back without a signed form from our manager.",
        "Dana Whitfield", "Leeds"
    );
    ex.push(example("ex-04", origin_exposed.clone(), "I've arranged a free pickup of the misdelivered chairs and a redelivery to the main office; the driver will bring the form.", mined("ex-04", "brightside")));
    plants.messages.push(("brightside".into(), "support-reply", true, "user", origin_exposed.clone()));
    plants.messages.push((
        "northwind".into(),
        "support-reply",
        false,
        "output",
        format!("Here is a similar case: {origin_exposed} We solved it with a pickup."),
    ));
    labels.push(label("fewshot.tenant_overlap", support_path, Some("ex-04")));
    labels.push(label("provenance.cross_tenant", support_path, Some("ex-04")));

    let origin_mismatch = "We run three kestrel coffee kiosks at the Halifax ferry terminal and every grinder you sent last month jams after about forty shots, we need a technician on site before the Friday rush.";
    let edited = origin_mismatch.to_uppercase().replace(',', ";").replace(" and ", "  and\n");
    ex.push(example(
        "ex-05",
        edited,
        "I'm sorry the grinders are jamming. I've booked a technician visit and sent two loaner grinders.",
        synthetic("ex-05"),
    ));
    plants.messages.push(("kestrel".into(), "support-reply", true, "user", origin_mismatch.to_string()));
    labels.push(label("fewshot.tenant_overlap", support_path, Some("ex-05")));
    labels.push(label("provenance.mismatch", "prompts/provenance.yaml", Some("ex-05")));

    let orchid_email = format!("m.okafor{}@orchid-florals.com", rng.digits(2));
    let orchid_order = format!("ORD-{}", rng.digits(6));
    ex.push(example("ex-06", format!("Hello, I placed {orchid_order} for the spring event and the vases arrived chipped; you can reach me at {orchid_email}."), "I'm sorry the vases arrived damaged. I've sent replacements by express and a return label for the chipped ones.", json!({"id": "ex-06", "source": "hand_written"})));
    plants.messages.push((
        "orchid".into(),
        "support-reply",
        true,
        "user",
        format!("Order {orchid_order} is wrong again!! Contact {orchid_email} asap, the event is tomorrow."),
    ));
    labels.push(label("fewshot.entity_overlap", support_path, Some("ex-06")));
    labels.push(label("provenance.mismatch", "prompts/provenance.yaml", Some("ex-06")));

    let card = card_number(&mut rng);
    let iban = german_iban(&mut rng);
    let ssn_value = ssn(&mut rng);
    ex.push(example(
        "ex-07",
        format!("Please charge the card ending in the number I gave last time: {card}, exp 09/28."),
        "For your security, please update card details in the billing portal rather than in chat.",
        synthetic("ex-07"),
    ));
    ex.push(example(
        "ex-08",
        format!("Refund it to our account, IBAN {iban}, not to the card."),
        "Refunds go back to the original payment method; I've noted your request for finance.",
        synthetic("ex-08"),
    ));
    ex.push(example(
        "ex-09",
        format!("For the tax form my SSN is {ssn_value}."),
        "Please don't share tax identifiers in chat; upload the form in the secure portal.",
        synthetic("ex-09"),
    ));
    planted.extend([card.clone(), card.replace(' ', ""), iban.clone(), iban.replace(' ', ""), ssn_value.clone()]);
    labels.push(label("pii.payment_card", support_path, Some("ex-07")));
    labels.push(label("pii.iban", support_path, Some("ex-08")));
    labels.push(label("pii.us_ssn", support_path, Some("ex-09")));

    ex.push(example("ex-10", "The pallet for our warehouse came with a broken shrink wrap and two boxes missing.", "I'm sorry about the missing boxes. I've opened a claim and will ship the two boxes today.", json!({"id": "ex-10", "source": "mined_trace", "source_tenant": "umbrella", "redaction": "warehouse address removed"})));
    labels.push(label("provenance.unapproved_mining", "prompts/provenance.yaml", Some("ex-10")));
    labels.push(label("provenance.cross_tenant", support_path, Some("ex-10")));

    ex.push(example("ex-11", "Where do I put my key? The docs say OPENAI_API_KEY=sk-... and api_key = \"YOUR_API_KEY\", and the example shows sk-proj-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.", "Paste your own key in Settings → Integrations; never share it in chat. AWS samples use AKIAIOSFODNN7EXAMPLE.", synthetic("ex-11")));
    ex.push(example("ex-12", "Test payment with 4242 4242 4242 4242 failed; my email is jane.doe@example.com, call (415) 555-0123, server 192.168.1.20.", "Test cards only work in sandbox mode; switch the toggle in Settings → Payments. Hi {{ customer_name }}!", synthetic("ex-12")));

    for (i, (rule, value, text)) in planted_secrets(&mut rng).into_iter().enumerate() {
        let id = format!("ex-{}", 13 + i);
        ex.push(example(
            &id,
            text,
            "Please rotate that credential now; I've removed it from this ticket and our logs.",
            synthetic(&id),
        ));
        labels.push(label(rule, support_path, Some(&id)));
        planted.push(value);
    }
    // A lightly edited origin: one word changed, punctuation and case rewritten.
    let hooli_origin = "Our warehouse team in Tampere scanned all sixty parcels at the dock on Monday morning, yet your portal still lists eleven of them as awaiting pickup and keeps sending the driver back for them.";
    let hooli_edited = hooli_origin.replace("sixty", "seventy").replace("Monday", "monday").replace(',', "");
    ex.push(example(
        "ex-26",
        hooli_edited,
        "I've reconciled the scans with the carrier; the eleven parcels are now marked as collected.",
        synthetic("ex-26"),
    ));
    plants.messages.push(("hooli".into(), "support-reply", true, "user", hooli_origin.to_string()));
    labels.push(label("fewshot.tenant_overlap", support_path, Some("ex-26")));
    labels.push(label("provenance.mismatch", "prompts/provenance.yaml", Some("ex-26")));

    // An origin in a tool result (a CRM lookup): the tenant's data even though no user typed it.
    let wonka_tool = "CRM note for account W-118: customer prefers deliveries after 3pm through the loading bay on Fudge Street, gate code changes weekly, call the floor manager before arrival.";
    ex.push(example(
        "ex-27",
        wonka_tool,
        "Noted: deliveries after 3pm via the loading bay, and we'll call ahead.",
        json!({"id": "ex-27", "source": "public"}),
    ));
    plants.messages.push(("wonka".into(), "support-reply", true, "tool", wonka_tool.to_string()));
    labels.push(label("fewshot.tenant_overlap", support_path, Some("ex-27")));
    labels.push(label("provenance.mismatch", "prompts/provenance.yaml", Some("ex-27")));

    // A real value planted inside otherwise synthetic text.
    let stark_iban = german_iban(&mut rng);
    planted.extend([stark_iban.clone(), stark_iban.replace(' ', "")]);
    ex.push(example(
        "ex-28",
        format!("Please send the refund by bank transfer to {stark_iban} instead of the card."),
        "Refunds go back to the original payment method; I've asked finance about a transfer.",
        synthetic("ex-28"),
    ));
    plants.messages.push((
        "stark".into(),
        "support-reply",
        true,
        "user",
        format!("Finance says use {stark_iban} for all refunds from now on."),
    ));
    labels.push(label("fewshot.entity_overlap", support_path, Some("ex-28")));
    labels.push(label("pii.iban", support_path, Some("ex-28")));
    labels.push(label("provenance.mismatch", "prompts/provenance.yaml", Some("ex-28")));

    // Decoys: a tenant quoting an example back after deploy; an unattributed record; hashes and ids.
    let quoted = "Is it true that damaged items can be swapped at any partner locker within thirty days without printing a label or calling support first?";
    ex.push(example(
        "ex-29",
        quoted,
        "Yes: open the locker app, choose 'Swap damaged item' and scan the parcel code.",
        synthetic("ex-29"),
    ));
    plants.messages.push(("vandelay".into(), "support-reply", false, "user", quoted.to_string()));
    let unattributed = "The label printer firmware from last week prints every barcode twice on the roll and the warehouse scanners then reject the duplicate code as a fraud attempt.";
    ex.push(example(
        "ex-30",
        unattributed,
        "That firmware has a known issue; roll back to 4.2 from Settings → Devices.",
        synthetic("ex-30"),
    ));
    plants.messages.push((String::new(), "support-reply", true, "user", unattributed.to_string()));
    ex.push(example(
        "ex-31",
        format!(
            "The download failed: checksum: {} request_id = 3f2a9c1b-7d04-4e5f-8a6b-{}",
            rng.chars(64, "0123456789abcdef"),
            rng.chars(12, "0123456789abcdef")
        ),
        "Please retry the download; the mirror was being updated.",
        synthetic("ex-31"),
    ));

    let echoed = "Thanks for your patience while we looked into this. Your parcel is now back on schedule, and I've added a note so the next agent sees the whole history.";
    ex.push(example("ex-25", "Any news on my parcel? It's been a week.", echoed, synthetic("ex-25")));

    // --- billing-help examples (acme only) ---
    let acme_origin = "Acme finance here: the October invoice lists forty-two label printer leases but we returned nine of them in September with the prepaid boxes you sent us.";
    let globex_origin = "Globex procurement: we need the purchase order number printed on every invoice line or our accounts payable system rejects the whole batch automatically.";
    let stripe = format!("sk_live_{}", rng.chars(24, ALNUM));
    let db = format!("postgres://ledger:{}@billing-db.internal:5432/ledger", rng.chars(18, ALNUM));
    planted.extend([stripe.clone(), db.clone()]);
    let billing = vec![
        example(
            "b-01",
            acme_origin,
            "I've credited the nine returned printers on the October invoice; the corrected invoice is attached.",
            mined("b-01", "acme"),
        ),
        example(
            "b-02",
            globex_origin,
            "I've added the purchase order field to your invoice template; the next batch will carry it on every line.",
            mined("b-02", "globex"),
        ),
        example(
            "b-03",
            format!("The billing sync failed with key {stripe}, can you check?"),
            "Please rotate that key; I can't look it up from here.",
            synthetic("b-03"),
        ),
        example(
            "b-04",
            format!("Our ledger export reads from {db} and times out."),
            "I've asked engineering to look at the export timeout.",
            synthetic("b-04"),
        ),
        example(
            "b-05",
            "Can I pay the annual plan by bank transfer instead of card?",
            "Yes: choose 'Bank transfer' at checkout and we'll email the remittance details.",
            synthetic("b-05"),
        ),
    ];
    plants.messages.push(("acme".into(), "billing-help", true, "user", acme_origin.to_string()));
    plants.messages.push(("globex".into(), "support-reply", true, "user", globex_origin.to_string()));
    labels.push(label("fewshot.tenant_overlap", billing_path, Some("b-02")));
    labels.push(label("provenance.cross_tenant", billing_path, Some("b-02")));
    labels.push(label("secret.stripe_live_key", billing_path, Some("b-03")));
    labels.push(label("secret.database_uri", billing_path, Some("b-04")));

    // Decoys in traces: stock phrasing in many tenants, the echoed synthetic reply, the system prompt.
    for tenant in TENANTS.iter().skip(10).take(12) {
        plants.messages.push((tenant.to_string(), "support-reply", true, "user", COMMON_PHRASE.to_string()));
    }
    for tenant in TENANTS.iter().skip(20).take(6) {
        plants.messages.push((tenant.to_string(), "support-reply", false, "output", echoed.to_string()));
        plants.messages.push((
            tenant.to_string(),
            "support-reply",
            false,
            "output",
            format!("My instructions say: {SYSTEM_SUPPORT}"),
        ));
    }

    // --- files ---
    let aws_in_prompt = format!("AKIA{}", rng.chars(16, UPPER_ALNUM));
    planted.push(aws_in_prompt.clone());
    let support_prompt = format!(
        "---\nname: support-reply\nmodel: openai:gpt-4o-mini\n# deploy note: aws_access_key_id = {aws_in_prompt} (remove before merge)\nexamples: support-reply.examples.yaml\n---\n::: system\n{SYSTEM_SUPPORT} Escalations go to ops@example.com or 10.0.4.12.\n{{% for ex in examples %}}\n::: user\n{{{{ ex.input }}}}\n::: assistant\n{{{{ ex.output }}}}\n{{% endfor %}}\n::: user\n{{{{ message }}}}\n"
    );
    labels.push(Label {
        rule: "secret.aws_access_key_id".into(),
        path: "prompts/support-reply.prompt".into(),
        example_id: None,
        line: Some(4),
    });
    let billing_prompt = format!(
        "---\nname: billing-help\nexamples: billing-help.examples.jsonl\n---\n::: system\n{SYSTEM_BILLING}\n{{% for ex in examples %}}\n::: user\n{{{{ ex.input }}}}\n::: assistant\n{{{{ ex.output }}}}\n{{% endfor %}}\n::: user\n{{{{ message }}}}\n"
    );
    let onboarding_prompt = "---\nname: onboarding\n---\n::: system\nWelcome the customer. Their key is {{ api_key }}; never repeat it. Questions: onboarding@example.org\n::: user\n{{ message }}\n".to_string();

    let support_yaml = examples_yaml(&ex);
    let billing_jsonl = examples_jsonl(&billing);
    let mut support_manifest = manifest_yaml(&ex);
    support_manifest.push_str("- id: ex-99\n  source: synthetic\n");
    let billing_manifest = manifest_yaml(&billing);

    let support_deploy: Timestamp = "2026-10-15T00:00:00Z".parse().expect("valid timestamp");
    let billing_deploy: Timestamp = "2026-10-12T00:00:00Z".parse().expect("valid timestamp");
    let support_plan = PromptPlan {
        name: "support-reply".into(),
        system: SYSTEM_SUPPORT.into(),
        examples: ex.iter().map(|e| (e.input.clone(), e.output.clone())).collect(),
        old_examples: old_examples(&mut rng, ex.len()),
        deployed_at: support_deploy,
    };
    let billing_plan = PromptPlan {
        name: "billing-help".into(),
        system: SYSTEM_BILLING.into(),
        examples: billing.iter().map(|e| (e.input.clone(), e.output.clone())).collect(),
        old_examples: old_examples(&mut rng, billing.len()),
        deployed_at: billing_deploy,
    };

    let prompts = vec![
        PromptInput {
            path: "prompts/support-reply.prompt".into(),
            text: support_prompt,
            name: Some("support-reply".into()),
            examples: Some(SourceFile { path: support_path.into(), text: support_yaml }),
            parsed_examples: None,
            rendered_turns: 2 * ex.len(),
            scope: Some(vec!["*".into()]),
            deployed_at: Some(support_deploy),
        },
        PromptInput {
            path: "prompts/billing/billing-help.prompt".into(),
            text: billing_prompt,
            name: Some("billing-help".into()),
            examples: Some(SourceFile { path: billing_path.into(), text: billing_jsonl }),
            parsed_examples: None,
            rendered_turns: 2 * billing.len(),
            scope: Some(vec!["acme".into()]),
            deployed_at: Some(billing_deploy),
        },
        PromptInput {
            path: "prompts/onboarding.prompt".into(),
            text: onboarding_prompt,
            name: Some("onboarding".into()),
            examples: None,
            parsed_examples: None,
            rendered_turns: 0,
            scope: None,
            deployed_at: None,
        },
    ];
    let inputs = ScanInputs {
        prompts,
        provenance: vec![
            SourceFile { path: "prompts/provenance.yaml".into(), text: support_manifest },
            SourceFile { path: "prompts/billing/provenance.yaml".into(), text: billing_manifest },
        ],
        ..ScanInputs::default()
    };
    let traces = generate_traces(&mut rng, &support_plan, &billing_plan, &plants, records_per_tenant, true);
    Corpus {
        inputs,
        traces,
        labels,
        planted,
        tenants: TENANTS.iter().map(|t| t.to_string()).collect(),
        support: support_plan,
        billing: billing_plan,
    }
}

fn old_examples(rng: &mut Rng, n: usize) -> Vec<(String, String)> {
    let mut fill = Fill { rng };
    (0..n).map(|_| (fill.sentences(USER_TEMPLATES, 1), fill.sentences(ASSISTANT_TEMPLATES, 1))).collect()
}

fn examples_yaml(examples: &[ExampleSpec]) -> String {
    let mut out = String::from("# Few-shot examples for support-reply\n");
    for e in examples {
        let _ = writeln!(out, "- id: {}", e.id);
        let _ = writeln!(out, "  input: {}", json_string(&e.input));
        let _ = writeln!(out, "  output: {}", json_string(&e.output));
    }
    out
}

fn examples_jsonl(examples: &[ExampleSpec]) -> String {
    examples.iter().map(|e| json!({"id": e.id, "input": e.input, "output": e.output}).to_string() + "\n").collect()
}

fn manifest_yaml(examples: &[ExampleSpec]) -> String {
    let mut out = String::new();
    for p in examples.iter().filter_map(|e| e.provenance.as_ref()) {
        let obj = p.as_object().expect("provenance is an object");
        let mut first = true;
        for (k, v) in obj.iter().filter(|(k, _)| *k == "id").chain(obj.iter().filter(|(k, _)| *k != "id")) {
            let prefix = if first { "- " } else { "  " };
            first = false;
            let _ = writeln!(out, "{prefix}{k}: {v}");
        }
    }
    out
}

/// A JSON string literal is also a valid YAML double-quoted scalar.
fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

const OCTOBER_START: i64 = 1_790_812_800; // 2026-10-01T00:00:00Z
const DAY: i64 = 86_400;

fn ts_in(rng: &mut Rng, from_day: i64, to_day: i64) -> Timestamp {
    let day = from_day + rng.below((to_day - from_day).max(1) as usize) as i64;
    let secs = OCTOBER_START + day * DAY + rng.below(DAY as usize) as i64;
    Timestamp::from_second(secs).expect("in range")
}

/// One request: system, the prompt's rendered examples (old or current by time), a short conversation
/// ending with the user's message, and the model's output.
#[allow(clippy::too_many_arguments)]
fn record(
    rng: &mut Rng,
    tenant: Option<&str>,
    plan: &PromptPlan,
    ts: Timestamp,
    user_text: Option<&str>,
    output: Option<&str>,
    as_tool_result: bool,
) -> serde_json::Value {
    let examples = if ts < plan.deployed_at { &plan.old_examples } else { &plan.examples };
    let mut messages = vec![json!({"role": "system", "content": plan.system})];
    for (u, a) in examples {
        messages.push(json!({"role": "user", "content": u}));
        messages.push(json!({"role": "assistant", "content": a}));
    }
    let mut fill = Fill { rng };
    if fill.rng.chance(0.3) {
        messages.push(json!({"role": "user", "content": fill.sentences(USER_TEMPLATES, 1)}));
        messages
            .push(json!({"role": "assistant", "content": fill.sentences(ASSISTANT_TEMPLATES, 1), "tool_calls": []}));
    }
    let user = user_text.map_or_else(|| fill.sentences(USER_TEMPLATES, 2), str::to_string);
    if as_tool_result {
        messages.push(json!({"role": "user", "content": fill.sentences(USER_TEMPLATES, 1)}));
        messages.push(json!({"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function"}]}));
        messages.push(json!({"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": user}]}));
        messages.push(json!({"role": "user", "content": "Any update?"}));
    } else {
        messages.push(json!({"role": "user", "content": user}));
    }
    let output = output.map_or_else(|| fill.sentences(ASSISTANT_TEMPLATES, 2), str::to_string);
    let trace_id = format!("tr-{}", fill.rng.chars(12, "0123456789abcdef"));
    let mut rec = json!({
        "ts": ts.to_string(), "trace_id": trace_id, "provider": "openai", "model": "gpt-4o-mini",
        "prompt": {"name": plan.name, "version": "3f2a9c1b7d04"},
        "usage": {"input_tokens": 812, "output_tokens": 120},
        "messages": messages, "output": output,
    });
    if let Some(t) = tenant {
        rec["tenant_id"] = json!(t);
    }
    rec
}

fn generate_traces(
    rng: &mut Rng,
    support: &PromptPlan,
    billing: &PromptPlan,
    plants: &Plants,
    records_per_tenant: usize,
    with_oddities: bool,
) -> Vec<u8> {
    let mut out = Vec::new();
    let push = |v: serde_json::Value, out: &mut Vec<u8>| {
        out.extend_from_slice(v.to_string().as_bytes());
        out.push(b'\n');
    };
    for tenant in TENANTS {
        for _ in 0..records_per_tenant {
            let plan = if *tenant == "acme" && rng.chance(0.4) { billing } else { support };
            let ts = ts_in(rng, 0, 31);
            let rec = record(rng, Some(tenant), plan, ts, None, None, false);
            push(rec, &mut out);
        }
    }
    for (tenant, prompt, before, role, text) in &plants.messages {
        let plan = if *prompt == "billing-help" { billing } else { support };
        let deploy_day = (plan.deployed_at.as_second() - OCTOBER_START) / DAY;
        let ts = if *before { ts_in(rng, 0, deploy_day - 1) } else { ts_in(rng, deploy_day + 1, 31) };
        let (user, output) = if *role == "output" { (None, Some(text.as_str())) } else { (Some(text.as_str()), None) };
        let tenant = Some(tenant.as_str()).filter(|t| !t.is_empty());
        let rec = record(rng, tenant, plan, ts, user, output, *role == "tool");
        push(rec, &mut out);
    }
    if with_oddities {
        out.extend_from_slice(b"this line is not JSON {\n");
        push(
            json!({"ts": "2026-10-03T10:00:00Z", "messages": [{"role": "user", "content": "no tenant on this one"}]}),
            &mut out,
        );
        push(json!({"tenant_id": "acme", "ts": "2026-10-03T10:00:00Z"}), &mut out);
        push(json!({"tenant_id": "acme", "messages": [{"role": "user", "content": ""}], "output": null}), &mut out);
        push(
            json!({"tenant_id": "acme", "messages": [{"role": "user", "content": [{"type": "text", "text": "parts"}]}], "vendor": {"x": 1}}),
            &mut out,
        );
    }
    out
}

impl Corpus {
    /// Trace records of roughly `target_bytes`, in the corpus's shape, for benchmarks.
    pub fn bench_traces(&self, target_bytes: usize) -> Vec<u8> {
        let mut rng = Rng::new(99);
        let plants = Plants { messages: Vec::new() };
        let mut out = Vec::with_capacity(target_bytes + (1 << 16));
        while out.len() < target_bytes {
            out.extend(generate_traces(&mut rng, &self.support, &self.billing, &plants, 4, false));
        }
        out
    }

    /// Trace records of roughly `target_bytes` in which every byte is tenant or model text (no
    /// rendered examples to skip): the worst case for the normalizer and the table lookups.
    pub fn dense_bench_traces(&self, target_bytes: usize) -> Vec<u8> {
        let mut rng = Rng::new(101);
        let mut out = Vec::with_capacity(target_bytes + (1 << 16));
        while out.len() < target_bytes {
            let tenant = *rng.pick(TENANTS);
            let ts = ts_in(&mut rng, 0, 31);
            let mut fill = Fill { rng: &mut rng };
            let mut messages = vec![json!({"role": "system", "content": SYSTEM_SUPPORT})];
            for _ in 0..6 {
                messages.push(json!({"role": "user", "content": fill.sentences(USER_TEMPLATES, 3)}));
                messages.push(json!({"role": "assistant", "content": fill.sentences(ASSISTANT_TEMPLATES, 3)}));
            }
            messages.push(json!({"role": "user", "content": fill.sentences(USER_TEMPLATES, 3)}));
            let rec = json!({
                "ts": ts.to_string(), "tenant_id": tenant, "prompt": {"name": "onboarding"},
                "messages": messages, "output": fill.sentences(ASSISTANT_TEMPLATES, 3),
            });
            out.extend_from_slice(rec.to_string().as_bytes());
            out.push(b'\n');
        }
        out
    }

    /// Writes `repo/` (the scanned tree), `traces.jsonl` and `labels.json` (outside the tree) under `dir`.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<()> {
        let repo = dir.join("repo");
        let mut files: Vec<&SourceFile> = self.inputs.provenance.iter().collect();
        let prompt_files: Vec<SourceFile> =
            self.inputs.prompts.iter().map(|p| SourceFile { path: p.path.clone(), text: p.text.clone() }).collect();
        files.extend(prompt_files.iter());
        files.extend(self.inputs.prompts.iter().filter_map(|p| p.examples.as_ref()));
        for f in files {
            let path = repo.join(&f.path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(path, &f.text)?;
        }
        std::fs::write(dir.join("traces.jsonl"), &self.traces)?;
        let labels = serde_json::to_string_pretty(&self.labels).map_err(std::io::Error::other)?;
        std::fs::write(dir.join("labels.json"), labels)
    }
}
